"""Python references such as `torchvision.models:resnet50` or `pkg.mod:Net(num_classes=10)`.

A reference is parsed with `ast` and its arguments read as literals, never evaluated, so
importing a model runs only the code the reference names. Both the PyTorch and the Keras
front ends take one.
"""

from __future__ import annotations

import ast
import importlib
import re
from dataclasses import dataclass, field

from ..errors import NetdslError


@dataclass
class Reference:
    text: str  # as given: "torchvision.models:resnet50(num_classes=10)"
    module: str  # "torchvision.models"
    names: list[str]  # the attribute path after the colon: ["resnet50"]
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)

    def fail(self, why: str) -> NetdslError:
        return NetdslError(f"cannot import '{self.text}': {why}")


def parse(reference: str, expected: str) -> Reference:
    """`expected` completes the message for a text that is no reference at all."""
    module, colon, expr = reference.partition(":")
    ref = Reference(reference, module, [])
    if not colon:
        raise ref.fail(f"expected {expected}")
    not_a_call = f"'{expr}' is not NAME or NAME(args)"
    try:
        call = ast.parse(expr.strip(), mode="eval").body
    except SyntaxError:
        raise ref.fail(not_a_call) from None
    if isinstance(call, ast.Call):
        try:
            ref.args = [ast.literal_eval(a) for a in call.args]
            ref.kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
        except ValueError:
            raise ref.fail("arguments must be Python literals") from None
        call = call.func
    while isinstance(call, ast.Attribute):
        ref.names.insert(0, call.attr)
        call = call.value
    if not isinstance(call, ast.Name) or None in ref.kwargs:
        raise ref.fail(not_a_call)
    ref.names.insert(0, call.id)
    return ref


def resolve(ref: Reference):
    """The object the reference names (not yet called)."""
    try:
        target = importlib.import_module(ref.module)
    except ImportError as e:
        raise ref.fail(f"no module {ref.module} ({e})") from None
    for name in ref.names:
        if not hasattr(target, name):
            raise ref.fail(f"{ref.module} has no {'.'.join(ref.names)}")
        target = getattr(target, name)
    return target


def snake(name: str) -> str:
    """A class or model name as a netdsl name: `TinyResNet` -> tiny_res_net,
    `SEBlock` -> se_block, `mobilenet_1.00_224` -> mobilenet_1_00_224."""
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    s = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", "_", s)
    return re.sub(r"\W", "_", s).strip("_").lower()
