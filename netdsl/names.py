"""Which DSL names may reach generated code, and how they are spelled there.

Block names become class names, parameters become Python parameters, labels
become attribute and Keras layer names. Anything that could shadow Python or
the generated program's own names is refused with a located error.
"""

from __future__ import annotations

import builtins
import keyword
import re

from .errors import NetdslError, Span
from .resources import helper_names

MAX_NAME = 64
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Parameters become Python parameters beside these names in generated code;
# other clashes (attribute or variable names) are mangled by the emitters.
RESERVED = {
    "self",
    "cls",
    "in_channels",
    "name",
    "nn",
    "torch",
    "F",
    "Tensor",
    "keras",
    "layers",
    "ops",
    "math",
    "np",
    "typing",
    "build_model",
    "INPUT_SHAPE",
    "VOCAB_SIZE",
}
# A block's parameters sit beside its input tensor, `x` (Keras: `def block(x, c, name=None)`),
# and a network's are build_model's keywords beside its variables; repeat indices and
# computed numbers (`n = (depth - 2) // 6`) become local variables beside the generated
# code's own.
_PARAMETERS = (
    RESERVED
    | {
        "x",
        "inputs",
        "training_outputs",
        "model",
        "example",
        "result",
        "INPUT_SHAPES",
    }
    | helper_names()
)  # the classes and functions templates/*/helpers/ add to a file
_LOCALS = _PARAMETERS | {
    "layers",
    "channels",
    "outputs",
    "forward",
    "training",
    "device",
    "devices",
    "warnings",
    "place_devices",
    "DEVICES",
    "INPUT_SHAPES",
}
_RESERVED_FOR = {
    "parameter": _PARAMETERS,
    "block": RESERVED,
    "network": RESERVED,
    "index": _LOCALS,
    "function": _LOCALS,  # a module-level function of the generated file
    "function parameter": {"math"},  # a parameter of that function
}


def check_identifier(name: str, span: Span | None, what: str, local: bool = False) -> str:
    """`name` as the DSL `what` (block, parameter, label, ...); `local` when it becomes a
    local variable of generated code (a value computed from parameters)."""
    reserved = _LOCALS if local else _RESERVED_FOR.get(what, ())
    problem = None
    if not _IDENT.match(name):
        problem = "is not a plain identifier"
    elif len(name) > MAX_NAME:
        problem = f"is longer than {MAX_NAME} characters"
    elif name.startswith("__") or name.endswith("__"):
        problem = "may not start or end with a double underscore"
    elif keyword.iskeyword(name) or keyword.issoftkeyword(name):
        problem = "is a Python keyword"
    elif hasattr(builtins, name):
        problem = "is a Python built-in name"
    elif name in reserved:
        problem = "is reserved for the generated code"
    if problem:
        raise NetdslError(
            f"{what} name '{name}' {problem}",
            span,
            hint=f"choose another name, e.g. '{_suggest(name)}'",
        )
    return name


def _suggest(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_")[: MAX_NAME - 4] or "value"
    if cleaned[0].isdigit():
        cleaned = "n" + cleaned
    return (
        cleaned + "_"
        if keyword.iskeyword(cleaned) or hasattr(builtins, cleaned) or cleaned in RESERVED
        else cleaned + "2"
    )


def class_name(block: str) -> str:
    """conv_bn -> ConvBn, se_resnet -> SeResnet."""
    return "".join(part[:1].upper() + part[1:] for part in block.split("_") if part) or "Block"
