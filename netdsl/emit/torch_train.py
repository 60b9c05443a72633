"""The context of the generated PyTorch training script (templates/torch/train.py.j2).

The script's defaults come from the .net file's `train:` section (the paper's
recipe, see train_config.py); what the script does not implement (an
augmentation it has no transform for, say) is listed at the top of the file
and printed when that part is used, never silently dropped. Below that header
comes the runtime, netdsl/runtime/torch_train.py (see recipe.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ir import Network
from . import format as fmt
from .base import fresh_name
from .recipe import ScriptContext, script_fields

# modules train.py imports (besides the standard library's): a model file may not hide them
_SHADOWED = {"torch", "torchvision", "numpy", "sklearn", "train"}


@dataclass
class TrainContext(ScriptContext):
    placed: bool  # parts of the model are pinned to devices: it exports DEVICES
    devices_param: str  # build_model's keyword for the device map (placed networks)
    seed_param: str  # build_model's keyword for the seed of the initial weights


def train_context(net: Network, model_module: str) -> TrainContext:
    placed = any(n.device is not None for n in net.nodes())
    imports = ["INPUT_SHAPE", "build_model"]
    if placed:
        imports.insert(0, "DEVICES")
    model_import = _import_line(model_module, imports)
    return TrainContext(
        **script_fields(net, model_module, _SHADOWED, "torch_train", [model_import]),
        placed=placed,
        devices_param=fmt.py_str(fresh_name("devices", set(net.params))),
        seed_param=fmt.py_str(fresh_name("seed", set(net.params))),
    )


def _import_line(module: str, names: list[str]) -> str:
    one = f"from {module} import {', '.join(names)}"
    if len(one) <= fmt.LINE:
        return one
    return "\n".join([f"from {module} import ("] + [f"    {n}," for n in names] + [")"])
