"""What both generated training scripts start from: the recipe, the header, the runtime.

The recipe is the .net file's `train:` section (the paper's recipe, see
train_config.py) with the scripts' own choices where the section is silent,
written into train.py as a `RECIPE` dict whose keys netdsl chose are marked. What
neither script implements (an augmentation it has no transform for, say) is
listed, so the script can print it when that part is used, never drop it silently.

Below that header, train.py is netdsl's runtime: the modules of netdsl/runtime/
(common.py and the framework's), their text copied verbatim after their imports,
which join the header's (see netdsl/runtime/__init__.py).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from functools import cache
from importlib import resources

from .. import __version__
from ..errors import NetdslError
from ..ir import Network
from ..layers import shape_kind
from ..runtime import COPY_MARK
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


@dataclass
class ScriptContext:
    """What both train.py templates fill in (the framework's adds its own fields)."""

    version: str
    source: str
    network: str  # for comments and messages
    network_name: str  # a Python string literal
    module: str
    recipe: list[str]  # the RECIPE dict's lines
    not_implemented: list[str]  # Python string literals
    classes_param: str | None  # build_model's keyword for the class count (a literal)
    output_features: int
    softmax_output: bool
    aux_outputs: int
    vocab: int | None  # the input is token ids below this (None: it is not)
    language_model: bool  # token ids in, next-token logits (N x vocab) out
    causal: bool  # no position can see a later one (every attention is causal)
    imports: list[str]  # the import block, blank lines between its groups
    runtime: str  # netdsl's runtime, below the header


def script_fields(
    net: Network, model_module: str, shadowed: set[str], runtime: str, model_imports: list[str]
) -> dict:
    """The ScriptContext fields of a train.py importing the model from `model_module`
    with `model_imports` and running the runtime module `runtime` (after common's)."""
    check_model_module(model_module, shadowed)
    recipe = recipe_of(net)
    main = net.main_output.node
    value = getattr(net.params.get("classes"), "value", None)  # a traced Num
    classes = isinstance(value, int) and not isinstance(value, bool)
    modules = ["common", runtime]
    return {
        "version": __version__,
        "source": fmt.comment_text(net.path),
        "network": fmt.comment_text(net.name),
        "network_name": fmt.py_str(net.name),
        "module": model_module,
        "recipe": recipe.lines(),
        "not_implemented": [fmt.py_str(item) for item in recipe.not_implemented],
        "classes_param": fmt.py_str("classes") if classes else None,
        "output_features": main.out_shape[0] if len(main.out_shape) == 1 else 0,
        "softmax_output": main.op == "softmax",
        "aux_outputs": sum(1 for o in net.outputs if o.train_only),
        **token_fields(net),
        "imports": import_block(modules, model_imports),
        "runtime": runtime_text(modules),
    }


def token_fields(net: Network) -> dict:
    """vocab, language_model and causal: whether train.py trains the network as a
    language model (token ids in, logits over the same vocabulary at each position out:
    the targets are the inputs shifted by one), and whether that is sound (no position
    sees the later ones it is asked to predict)."""
    first = next(iter(net.inputs.values()))
    vocab = first.shape.vocab if shape_kind(first.shape) == "ids" else None
    out = net.main_output.node.out_shape
    language_model = vocab is not None and out == (first.out_shape[0], vocab)
    causal = all(
        n.op != "image" and (n.op != "attention" or n.value("causal")) for n in net.nodes()
    )
    return {"vocab": vocab, "language_model": language_model, "causal": causal}


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


# ---- the runtime, copied below the header -----------------------------------------------


@dataclass(frozen=True)
class _Import:
    group: int  # 0: __future__, 1: the standard library, 2: the rest (isort's sections)
    straight: bool  # `import x` (before the `from x import y` of its group)
    module: str
    text: str  # the statement as written

    def key(self) -> tuple:
        return (self.group, not self.straight, self.module.lower(), self.text)


def _imports(source: str) -> list[_Import]:
    """The absolute imports at the top level of `source`, as written."""
    found = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import):
            module, straight = node.names[0].name, True
        elif isinstance(node, ast.ImportFrom) and not node.level:
            module, straight = node.module or "", False
        else:
            continue  # not an import, or a runtime module's `from .common import ...`
        top = module.split(".")[0]
        group = 0 if top == "__future__" else 1 if top in sys.stdlib_module_names else 2
        found.append(_Import(group, straight, module, ast.get_source_segment(source, node)))
    return found


@cache
def _runtime_module(name: str) -> tuple[tuple[_Import, ...], str]:
    """A runtime module's imports, and its text after COPY_MARK (what train.py copies)."""
    path = resources.files("netdsl.runtime").joinpath(f"{name}.py")
    source = path.read_text(encoding="utf-8")
    head, mark, body = source.partition(f"\n{COPY_MARK}\n")
    if not mark or COPY_MARK in body:
        raise RuntimeError(f"netdsl/runtime/{name}.py: one line must be {COPY_MARK!r}")
    return tuple(_imports(head)), body.strip("\n")


def import_block(modules: list[str], extra: list[str]) -> list[str]:
    """The import block of a train.py running the runtime `modules`, with the `extra`
    statements (the model's): each statement once, in isort's order, a blank line
    between the groups."""
    found = {i for name in modules for i in _runtime_module(name)[0]}
    found |= {i for text in extra for i in _imports(text)}
    lines: list[str] = []
    group = 0
    for item in sorted(found, key=_Import.key):
        if lines and item.group != group:
            lines.append("")
        lines.append(item.text)
        group = item.group
    return lines


def runtime_text(modules: list[str]) -> str:
    """The runtime modules' copied text, each under a line naming where it lives."""
    sections = []
    for name in modules:
        title = f"# ==== netdsl's runtime: netdsl/runtime/{name}.py, copied verbatim "
        sections.append(f"{title.ljust(fmt.LINE, '=')}\n\n\n{_runtime_module(name)[1]}")
    return "\n\n\n".join(sections)
