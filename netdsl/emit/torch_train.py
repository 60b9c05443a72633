"""The context of the generated PyTorch training script (templates/torch/train.py.j2).

The script's defaults come from the .net file's `train:` section (the paper's
recipe, see train_config.py); what the script does not implement (an
augmentation it has no transform for, say) is listed at the top of the file
and printed when that part is used, never silently dropped.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from .. import __version__
from ..errors import NetdslError
from ..ir import Network
from . import format as fmt

# what the script falls back to where the train section is silent
_FALLBACK = {
    "optimizer": "sgd",
    "batch_size": 64,
    "epochs": 10,
    "weight_decay": 0.0,
    "schedule": {"name": "none"},
    "label_smoothing": 0.0,
    "aux_weight": 0.3,
}
_LR = {"sgd": 0.01, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 0.01}
# modules train.py imports (besides the standard library's): a model file may not hide them
_SHADOWED = {"torch", "torchvision", "numpy", "sklearn", "train"}
# the torchvision transforms behind the augment names (train.py maps them)
_IMPLEMENTED_AUGMENT = {"random_crop", "random_resized_crop", "hflip", "color_jitter", "normalize"}


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
    if model_module in sys.stdlib_module_names or model_module.lower() in _SHADOWED:
        raise NetdslError(f"a model file named {model_module}.py would hide the module "
                          f"'{model_module}' from train.py; give the model another name with -o")
    train = dict(net.train)
    recipe = dict(_FALLBACK)
    recipe.update({k: v for k, v in train.items() if k != "dropout"})
    recipe.setdefault("lr", _LR.get(recipe["optimizer"], 0.01))
    if recipe["optimizer"] == "sgd":
        recipe.setdefault("momentum", 0.9)
        recipe.setdefault("nesterov", False)
    elif recipe["optimizer"] == "rmsprop":
        recipe.setdefault("momentum", 0.0)
    if "schedule" in train:
        recipe["schedule"] = dict(train["schedule"])
    augment = [_augment(a) for a in train.get("augment", [])]
    recipe["augment"] = augment
    not_implemented = [f"augment {name}" for name, *_ in augment
                       if name not in _IMPLEMENTED_AUGMENT]
    if "dropout" in train:
        not_implemented.append(f"dropout {train['dropout']} (the model's dropout layers "
                               "set their own rates)")
    order = ["optimizer", "lr", "momentum", "weight_decay", "nesterov", "betas", "eps", "alpha",
             "schedule", "batch_size", "epochs", "aux_weight", "label_smoothing", "augment"]
    recipe = {k: recipe[k] for k in order if k in recipe}
    defaults = {k for k in recipe if k not in train}
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
        recipe=_dict_lines("RECIPE = ", recipe, defaults),
        classes_param=fmt.py_str(classes) if classes else None,
        output_features=main.out_shape[0] if len(main.out_shape) == 1 else 0,
        flat_input=len(next(iter(net.inputs.values())).out_shape) == 1,
        softmax_output=main.op == "softmax",
        aux_outputs=sum(1 for o in net.outputs if o.train_only),
        not_implemented=[fmt.py_str(item) for item in not_implemented],
    )


def _import_line(module: str, names: list[str]) -> str:
    one = f"from {module} import {', '.join(names)}"
    if len(one) <= fmt.LINE:
        return one
    return "\n".join([f"from {module} import ("] + [f"    {n}," for n in names] + [")"])


def _augment(entry: dict) -> tuple:
    """{"name": "random_crop", "args": [32], "padding": 4} -> ("random_crop", 32, {"padding": 4})."""
    args = [tuple(a) if isinstance(a, list) else a for a in entry.get("args", [])]
    options = {k: (tuple(v) if isinstance(v, list) else v) for k, v in entry.items()
               if k not in ("name", "args")}
    return (entry["name"], *args) + ((options,) if options else ())


def _python(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{fmt.py_str(k)}: {_python(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_python(v) for v in value) + "]"
    if isinstance(value, tuple):
        inner = ", ".join(_python(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return fmt.literal(value)


def _dict_lines(prefix: str, value: dict, defaults: set) -> list[str]:
    """A module-level dict, one key per line with a trailing comma (black's layout);
    the keys in `defaults` are marked as netdsl's choices."""
    lines = [prefix + "{"]
    for key, item in value.items():
        entry = _item(f"{fmt.py_str(key)}: ", item, 1)
        if key in defaults and len(entry[-1]) + len("  # netdsl's default") <= fmt.LINE:
            entry[-1] += "  # netdsl's default"
        lines += entry
    return lines + ["}"]


def _item(prefix: str, value, indent: int) -> list[str]:
    pad = fmt.INDENT * indent
    one = f"{pad}{prefix}{_python(value)},"
    if len(one) <= fmt.LINE or not isinstance(value, (dict, list, tuple)) or not value:
        return [one]
    if isinstance(value, dict):
        open_, close, items = "{", "}", [(f"{fmt.py_str(k)}: ", v) for k, v in value.items()]
    else:
        open_, close = ("[", "]") if isinstance(value, list) else ("(", ")")
        items = [("", v) for v in value]
    lines = [f"{pad}{prefix}{open_}"]
    for p, v in items:
        lines += _item(p, v, indent + 1)
    return lines + [f"{pad}{close},"]


def _fresh(name: str, taken: set) -> str:
    while name in taken:
        name += "_"
    return name
