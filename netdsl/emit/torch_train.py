"""The context of the generated PyTorch training script (templates/torch/train.py.j2).

The script's defaults come from the .net file's `train:` section (the paper's
recipe, see train_config.py); what the script does not implement (an
augmentation it has no transform for, say) is listed at the top of the file
and printed when that part is used, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import __version__
from ..ir import Network
from . import format as fmt
from .recipe import check_model_module, recipe_of

# modules train.py imports (besides the standard library's): a model file may not hide them
_SHADOWED = {"torch", "torchvision", "numpy", "sklearn", "train"}


@dataclass
class TrainContext:
    version: str
    source: str
    network: str  # for comments and messages
    network_name: str  # a Python string literal
    module: str
    module_first: bool  # its import sorts before torch's (isort order)
    model_import: str
    placed: bool
    devices_param: str  # build_model's keyword for the device map (placed networks)
    recipe: list[str]  # the RECIPE dict's lines
    classes_param: str | None  # build_model's keyword for the number of classes
    output_features: int
    flat_input: bool
    softmax_output: bool
    aux_outputs: int
    not_implemented: list[str] = field(default_factory=list)


def train_context(net: Network, model_module: str) -> TrainContext:
    check_model_module(model_module, _SHADOWED)
    recipe = recipe_of(net)
    main = net.main_output.node
    placed = any(n.device is not None for n in net.nodes())
    imports = ["INPUT_SHAPE", "build_model"]
    if placed:
        imports.insert(0, "DEVICES")
    value = getattr(net.params.get("classes"), "value", net.params.get("classes"))
    classes = "classes" if isinstance(value, int) and not isinstance(value, bool) else None
    return TrainContext(
        version=__version__,
        source=fmt.comment_text(net.path),
        network=fmt.comment_text(net.name),
        network_name=fmt.py_str(net.name),
        module=model_module,
        module_first=model_module.lower() < "torch",
        model_import=_import_line(model_module, imports),
        placed=placed,
        devices_param=fmt.py_str(_fresh("devices", set(net.params))),
        recipe=recipe.lines(),
        classes_param=fmt.py_str(classes) if classes else None,
        output_features=main.out_shape[0] if len(main.out_shape) == 1 else 0,
        flat_input=len(next(iter(net.inputs.values())).out_shape) == 1,
        softmax_output=main.op == "softmax",
        aux_outputs=sum(1 for o in net.outputs if o.train_only),
        not_implemented=[fmt.py_str(item) for item in recipe.not_implemented],
    )


def _import_line(module: str, names: list[str]) -> str:
    one = f"from {module} import {', '.join(names)}"
    if len(one) <= fmt.LINE:
        return one
    return "\n".join([f"from {module} import ("] + [f"    {n}," for n in names] + [")"])


def _fresh(name: str, taken: set) -> str:
    while name in taken:
        name += "_"
    return name
