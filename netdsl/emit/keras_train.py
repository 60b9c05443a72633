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
from .recipe import check_model_module, recipe_of


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


# modules train.py imports (besides the standard library's): a model file may not hide them
_SHADOWED = {"keras", "numpy", "tensorflow", "torch", "jax", "sklearn", "scipy", "train"}


def train_context(net: Network, model_module: str) -> TrainContext:
    check_model_module(model_module, _SHADOWED)
    recipe = recipe_of(net)
    main = net.main_output.node
    value = getattr(net.params.get("classes"), "value", None)  # a traced Num
    classes = "classes" if isinstance(value, int) and not isinstance(value, bool) else None
    return TrainContext(
        version=__version__,
        source=fmt.comment_text(net.path),
        network=fmt.comment_text(net.name),
        network_name=fmt.py_str(net.name),
        module=model_module,
        recipe=recipe.lines(),
        classes_param=classes,
        output_features=main.out_shape[0] if len(main.out_shape) == 1 else 0,
        softmax_output=main.op == "softmax",
        aux_outputs=sum(1 for o in net.outputs if o.train_only),
        not_implemented=[fmt.py_str(item) for item in recipe.not_implemented],
    )
