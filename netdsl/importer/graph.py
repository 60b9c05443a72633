"""What every importer produces and structure recovery reads: a flat graph of netdsl layers.

Each front end (PyTorch modules, torch.export programs, ONNX files, Keras models) maps the
source's operations to netdsl ops one by one and tags each with the module path that made it
(PyTorch's module hierarchy, ONNX node scopes, Keras layer-name prefixes). Structure recovery
(recover.py) turns that flat list back into blocks, repeats and stages, and writes `.net` text.
Nothing here knows a source format, so the front ends share one recovery.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Value = int | float | bool | str | tuple | None


@dataclass
class Layer:
    """One netdsl op application, as the source computed it."""

    name: str  # unique in the model, the source's own: "layer1.0.conv1", "conv_dw_1_bn"
    op: str  # a netdsl op (netdsl.layers.ops()): "conv", "bn", "add", "concat", ...
    args: dict[str, Value]  # by the catalogue's canonical names: {"c": 64, "k": 3, "s": 2}
    inputs: list[str]  # the layers (or model inputs) read, in argument order (concat order)
    path: tuple[str, ...]  # the enclosing module's path: ("layer1", "0") for layer1.0.conv1
    source: str = ""  # for messages: "torch.nn.Conv2d at layer1.0.conv1"


@dataclass
class Module:
    """A scope of the source: a PyTorch module instance, an ONNX scope, a Keras name prefix."""

    path: tuple[str, ...]
    kind: str | None = None  # the defining class ("torchvision.models.resnet.Bottleneck"), if known


@dataclass
class Imported:
    """A whole source model, flattened: layers in execution order (which is parameter order)."""

    name: str  # becomes the network's name: "resnet50"
    origin: str  # what was imported, for the file's header: "torchvision.models:resnet50"
    inputs: dict[str, tuple[int, ...]]  # model input name -> shape without the batch (C, H, W)
    layers: list[Layer] = field(default_factory=list)
    modules: dict[tuple[str, ...], Module] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)  # the layers whose outputs are returned
    command: str = ""  # the command that imported it, for the header: "netdsl import ..."
    notes: list[str] = field(default_factory=list)  # more header lines: how the input was chosen
