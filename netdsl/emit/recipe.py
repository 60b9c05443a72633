"""The training recipe both generated training scripts start from.

It is the .net file's `train:` section (the paper's recipe, see train_config.py)
with the scripts' own choices where the section is silent, written into
train.py as a `RECIPE` dict whose keys netdsl chose are marked. What neither
script implements (an augmentation it has no transform for, say) is listed, so
the script can print it when that part is used, never drop it silently.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from ..errors import NetdslError
from ..ir import Network
from . import format as fmt

# what the scripts fall back to where the train section is silent
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
# the augment names both scripts implement: a torchvision transform or Keras layer on
# imagefolder images, or (cutout, mixup) a function of every training batch
IMPLEMENTED_AUGMENT = {
    "random_crop",
    "random_resized_crop",
    "hflip",
    "color_jitter",
    "normalize",
    "cutout",
    "mixup",
}
_ORDER = [
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "nesterov",
    "betas",
    "eps",
    "alpha",
    "schedule",
    "batch_size",
    "epochs",
    "aux_weight",
    "label_smoothing",
    "augment",
]
_CHOSEN = "  # netdsl's default"


@dataclass
class Recipe:
    values: dict  # key -> value, in _ORDER
    defaults: set  # the keys netdsl chose (the train section does not set them)
    not_implemented: list[str]  # parts of the train section the scripts cannot follow

    def lines(self, prefix: str = "RECIPE = ") -> list[str]:
        """A module-level dict, one key per line with a trailing comma (black's layout)."""
        lines = [prefix + "{"]
        for key, item in self.values.items():
            entry = _item(f"{fmt.py_str(key)}: ", item, 1)
            if key in self.defaults and len(entry[-1]) + len(_CHOSEN) <= fmt.LINE:
                entry[-1] += _CHOSEN
            lines += entry
        return lines + ["}"]


def check_model_module(name: str, imported: set[str]) -> None:
    """train.py imports the model file by its name: that name must not hide a module the
    script imports (`imported`) or the standard library's."""
    if name in sys.stdlib_module_names or name.lower() in imported:
        raise NetdslError(
            f"a model file named {name}.py would hide the module '{name}' from "
            "train.py; give the model another name with -o"
        )


def recipe_of(net: Network) -> Recipe:
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
    recipe["augment"] = [_augment(a) for a in train.get("augment", [])]
    not_implemented = [
        f"augment {name}" for name, *_ in recipe["augment"] if name not in IMPLEMENTED_AUGMENT
    ]
    if "dropout" in train:
        not_implemented.append(
            f"dropout {train['dropout']} (the model's dropout layers set their own rates)"
        )
    values = {k: recipe[k] for k in _ORDER if k in recipe}
    return Recipe(values, {k for k in values if k not in train}, not_implemented)


def _augment(entry: dict) -> tuple:
    """{"name": "random_crop", "args": [32], "padding": 4} -> ("random_crop", 32, {"padding": 4})."""
    args = [tuple(a) if isinstance(a, list) else a for a in entry.get("args", [])]
    options = {
        k: (tuple(v) if isinstance(v, list) else v)
        for k, v in entry.items()
        if k not in ("name", "args")
    }
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
