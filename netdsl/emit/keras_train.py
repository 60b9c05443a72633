"""The context of the generated Keras training script (templates/keras/train.py.j2).

The script's defaults come from the .net file's `train:` section (the paper's
recipe, see train_config.py); what the script does not implement (an
augmentation it has no layer for, say) is listed at the top of the file and
printed when that part is used, never silently dropped. Below that header comes
the runtime, netdsl/runtime/keras_train.py (see recipe.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ir import Network
from . import format as fmt
from .base import fresh_name
from .recipe import ScriptContext, script_fields

# modules train.py imports (besides the standard library's): a model file may not hide them
_SHADOWED = {"keras", "numpy", "tensorflow", "torch", "jax", "sklearn", "scipy", "train"}


@dataclass
class TrainContext(ScriptContext):
    seed_param: str  # build_model's keyword for the seed of the initial weights


def train_context(net: Network, model_module: str) -> TrainContext:
    # the model module is imported by name (importlib), so import sorting cannot move it
    # above the rest: the header imports it after the import block
    fields = script_fields(net, model_module, _SHADOWED, "keras_train", ["import importlib"])
    # (`seed`, unless the network has a parameter of that name: as the model file names it)
    return TrainContext(**fields, seed_param=fmt.py_str(fresh_name("seed", set(net.params))))
