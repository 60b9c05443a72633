"""The context of the generated Keras training script (templates/keras/train.py.j2).

The script's defaults come from the .net file's `train:` section (the paper's
recipe, see train_config.py); what the script does not implement (an
augmentation it has no layer for, say) is listed at the top of the file and
printed when that part is used, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import __version__
from ..ir import Network
from . import format as fmt

# what the script falls back to where the train section is silent (as the PyTorch script)
_FALLBACK = {
    "optimizer": "sgd",
    "batch_size": 64,
    "epochs": 10,
    "momentum": 0.9,
    "weight_decay": 0.0,
    "nesterov": False,
    "schedule": {"name": "none"},
    "label_smoothing": 0.0,
    "aux_weight": 0.3,
}
_LR = {"sgd": 0.01, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 0.01}
# the Keras preprocessing behind the augment names (train.py maps them)
_IMPLEMENTED_AUGMENT = {"random_crop", "random_resized_crop", "hflip", "color_jitter", "normalize"}
_ORDER = ["optimizer", "lr", "momentum", "weight_decay", "nesterov", "betas", "eps", "alpha",
          "schedule", "batch_size", "epochs", "aux_weight", "label_smoothing", "augment"]


@dataclass
class TrainContext:
    version: str
    source: str
    network: str  # for comments and messages
    network_name: str  # a Python string literal
    module: str
    recipe: list[str]  # the RECIPE dict's lines
    classes_param: str | None  # build_model's keyword for the number of classes
    output_features: int
    softmax_output: bool
    aux_outputs: int
    not_implemented: list[str] = field(default_factory=list)


def train_context(net: Network, model_module: str) -> TrainContext:
    train = dict(net.train)
    recipe = dict(_FALLBACK)
    recipe.update({k: v for k, v in train.items() if k != "dropout"})
    recipe.setdefault("lr", _LR.get(recipe["optimizer"], 0.01))
    if "schedule" in train:
        recipe["schedule"] = dict(train["schedule"])
    augment = [_augment(a) for a in train.get("augment", [])]
    recipe["augment"] = augment
    not_implemented = [f"augment {name}" for name, *_ in augment
                       if name not in _IMPLEMENTED_AUGMENT]
    if "dropout" in train:
        not_implemented.append(f"dropout {train['dropout']} (the model's dropout layers "
                               "set their own rates)")
    recipe = {k: recipe[k] for k in _ORDER if k in recipe}
    main = net.main_output.node
    value = getattr(net.params.get("classes"), "value", None)  # a traced Num
    classes = "classes" if isinstance(value, int) and not isinstance(value, bool) else None
    return TrainContext(
        version=__version__,
        source=fmt.comment_text(net.path),
        network=fmt.comment_text(net.name),
        network_name=fmt.py_str(net.name),
        module=model_module,
        recipe=_dict_lines("RECIPE = ", recipe),
        classes_param=classes,
        output_features=main.out_shape[0] if len(main.out_shape) == 1 else 0,
        softmax_output=main.op == "softmax",
        aux_outputs=sum(1 for o in net.outputs if o.train_only),
        not_implemented=not_implemented,
    )


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


def _dict_lines(prefix: str, value: dict) -> list[str]:
    """A module-level dict, one key per line with a trailing comma (black's layout)."""
    lines = [prefix + "{"]
    for key, item in value.items():
        lines += _item(f"{fmt.py_str(key)}: ", item, 1)
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
