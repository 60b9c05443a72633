"""PyTorch backend: one nn.Module class per block definition, torchvision style.

Python decides every name, argument and statement here; the layout of the
file lives in templates/torch/*.j2.

Placement (`@gpu(i)`, `@cpu`): a network with annotations gets a `DEVICES`
table and a `place_devices()` helper that maps each annotated device to one the
machine has (falling back, with one warning, when it has fewer GPUs). Parts
are created on their device (`.to(...)` in `__init__`) and activations are
moved in `forward` only where the data flow crosses from one device to another.
A class whose parts sit on several devices ("mixed") is given the resolved
`placement` (and its own default `device` when it has unannotated parts with
weights), so it never needs a whole-module `.to()` that would undo the split.
Networks without annotations get none of this.

Initial weights (`init=`, `bias_init=`, ...): each class draws the written inits of the
layers it builds itself at the end of its `__init__`, torchvision's way
(`nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")`; one
`for m in self.convs: if isinstance(m, nn.Conv2d): ...` over the modules of a repeat);
the classes of its blocks draw theirs. An unwritten init needs no code: PyTorch (and
each helper class) starts the tensor as netdsl.initializers.TENSORS says.
`build_model(seed=...)` seeds torch first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .. import initializers
from ..errors import NetdslError
from ..initializers import KERAS_NAMED, Init, Resolved
from ..ir import Node
from ..layers import IN_PLACE, READS_FLAT, shape_kind, traits, zeropad_sides
from ..symbolic import Expr, Num, Sym
from . import format as fmt
from .base import (
    MODULE_LEVEL,
    Body,
    ClassModel,
    Emitter,
    FileHeader,
    LayerArg,
    Program,
    Unit,
    anonymous_parts,
    class_doc,
    expr_of,
    file_header,
    fresh_name,
    frozen_guard,
    is_default,
    layer_node,
    refuse_other_values,
    render_expr,
    shape_comment,
    subst_body,
    type_hint,
)
from .pretrained import torch_comment, torch_runtime

BODY = 2  # statements in __init__ and forward sit two levels deep (class, def)
HOME = "@home"  # device key: a mixed class's own default device (its `device` argument)
INPUT = "@input"  # device key: wherever the value came from (not known when generating)


@dataclass
class ClassText:
    name: str
    doc: list[str]
    signature: list[str]  # the whole `def __init__(...)` line(s)
    init: list[str]
    forward_signature: str
    forward: list[str]
    kind: str


@dataclass
class FileContext(FileHeader):
    classes: list[ClassText]
    builder: list[str]
    builder_call: list[str]  # `return Main(...)`, laid out
    seed: str  # build_model's keyword for the seed of the initial weights
    main_class: str
    devices: str | None = None  # the DEVICES table of a placed network
    uses_functional: bool = False  # `from torch.nn import functional as F`
    input_about: str = "(C, H, W) of one example"  # INPUT_SHAPE's comment
    vocab: int | None = None  # VOCAB_SIZE: token-id inputs are below it
    pretrained: str | None = None  # build_model's keyword that loads --weights
    weights_comment: list[str] | None = None  # what PRETRAINED is
    weights_reference: str | None = None  # PRETRAINED's literal
    runtime: str | None = None  # load_by_order's and pretrained_state_dict's text


def _class_code(cls: ClassText) -> list[str]:
    """A class's code lines (not its docstring)."""
    return [*cls.signature, *cls.init, cls.forward_signature, *cls.forward]


class _Facts:
    """What the program's classes contain: weights, placement, their output's device.

    Blocks may be recursive (FractalNet), so the class-level facts are fixed points
    computed over every class at once.
    """

    def __init__(self, classes: list[ClassModel]) -> None:
        self.out_key: dict[int, str] = {}  # filled as classes are rendered (dependencies first)
        self._fixed_point("_stateful", classes, self._stateful_unit)
        self._fixed_point("_mixed", classes, lambda u: u.placed or self.mixed_unit(u))
        self.params = {}  # (placement, device) parameter names of each class
        for cls in classes:
            names = {p.name for p in cls.params}
            placement = fresh_name("placement", names)
            self.params[id(cls)] = (placement, fresh_name("device", names | {placement}))
        # a mixed class takes its own default device when an unannotated part of it
        # has weights (or hands the default on to a mixed part that needs one)
        self._fixed_point("_home", classes, lambda u: not u.placed and self._needs_home_unit(u))

    def _fixed_point(self, table: str, classes: list[ClassModel], test) -> None:
        facts = {id(c): False for c in classes}
        setattr(self, table, facts)  # the tests read it while it grows
        changed = True
        while changed:
            changed = False
            for cls in classes:
                if not facts[id(cls)] and any(test(u) for u in cls.units):
                    facts[id(cls)] = changed = True

    def _cls(self, table: str, cls: ClassModel) -> bool:
        return getattr(self, table)[id(cls)]

    # weights or buffers anywhere inside: such a part is created on its device
    def _stateful_unit(self, u: Unit) -> bool:
        if u.kind == "layer":
            return u.node.params + u.node.buffers > 0
        if u.kind == "merge":
            return False
        if u.kind == "call":
            return self._cls("_stateful", u.cls)
        return any(self.stateful_body(b) for b in _bodies(u))

    def stateful_unit(self, u: Unit) -> bool:
        return self._stateful_unit(u)

    def stateful_body(self, body: Body) -> bool:
        if body.kind == "class":
            return self._cls("_stateful", body.cls)
        return any(self._stateful_unit(u) for u in body.units)

    def stateful_cls(self, cls: ClassModel) -> bool:
        return self._cls("_stateful", cls)

    # parts on more than one device inside: never moved as a whole
    def mixed_unit(self, u: Unit) -> bool:
        if u.kind in ("layer", "merge"):
            return False
        if u.kind == "call":
            return self._cls("_mixed", u.cls)
        return any(self.mixed_body(b) for b in _bodies(u))

    def mixed_body(self, body: Body) -> bool:
        if body.kind == "class":
            return self._cls("_mixed", body.cls)
        return any(u.placed or self.mixed_unit(u) for u in body.units)

    def mixed_cls(self, cls: ClassModel) -> bool:
        return self._cls("_mixed", cls)

    def _needs_home_unit(self, u: Unit) -> bool:
        if not self.mixed_unit(u):
            return self._stateful_unit(u)
        if u.kind == "call":
            return self._cls("_home", u.cls)
        return any(self._needs_home_body(b) for b in _bodies(u))

    def _needs_home_body(self, body: Body) -> bool:
        if body.kind == "class":
            return self._cls("_home", body.cls)
        return any(not u.placed and self._needs_home_unit(u) for u in body.units)

    def needs_home(self, cls: ClassModel) -> bool:
        return self._cls("_mixed", cls) and self._cls("_home", cls)


def _bodies(u: Unit) -> list[Body]:
    if u.kind == "repeat":
        return [u.body] if u.body is not None else []
    if u.kind == "cond":
        return list(u.branches.values())
    if u.kind == "module":
        return [u.body]
    return []


class _ClassState:
    """Rendering state of one class: how symbols print, which locals and devices exist."""

    def __init__(self, cls: ClassModel, facts: _Facts) -> None:
        self.cls = cls
        self.renames = {k: Sym(v) for k, v in cls.renames.items()}
        # a block on tokens takes its width as `dim` (torchvision's hidden_dim), not in_channels
        self.channels = "in_channels"
        taken = {p.name for p in cls.params} | {name for name, _ in cls.locals}
        if (
            cls.kind == "block"
            and cls.in_shapes
            and shape_kind(cls.in_shapes[0]) == "tokens"
            and "in_channels" not in cls.renames
            and "dim" not in taken
        ):
            self.channels = "dim"
            self.renames["in_channels"] = Sym("dim")
        self.declared_layers = False
        self.network = cls.kind == "network"
        self.mixed = facts.mixed_cls(cls)
        self.home = "cuda:0" if self.network else HOME  # where unannotated weights go
        self.uses_home = False
        self.device_attrs: dict[str, str] = {}  # device key -> attribute
        self._taken = {u.attr for u in cls.units}
        self.home_attr = fresh_name("device", self._taken)  # self.device
        self._taken.add(self.home_attr)
        self.placement, self.home_param = facts.params[id(cls)]
        self.devices_param = fresh_name("devices", {p.name for p in cls.params})
        self.loop_var = "m"  # the module of a loop over an nn.Sequential's (initial weights)

    def expr(self, value) -> str:
        e = expr_of(value) if not isinstance(value, Expr) else value
        if self.renames:
            e = e.subst(self.renames)
        return e.render()

    def target(self, unit: Unit) -> str | None:
        """The device key a unit of a mixed class runs on (None: no placement here)."""
        if not self.mixed:
            return None
        return unit.device if unit.placed else self.home

    def device(self, key: str) -> str:
        """`self.gpu1` for a device key; records that the class needs that attribute."""
        if key == HOME:
            self.uses_home = True
            return f"self.{self.home_attr}"
        if key not in self.device_attrs:
            base = f"gpu{key.split(':')[1]}" if key.startswith("cuda:") else "host"
            name = base
            while name in self._taken:
                name += "_device"
            self._taken.add(name)
            self.device_attrs[key] = name
        return f"self.{self.device_attrs[key]}"


# ---- op -> constructor: the PyTorch backend's table ---------------------------------------


class _LayerCall:
    """What an entry of LAYERS needs: the node's attributes as Python text, and the file."""

    def __init__(self, emitter: TorchEmitter, unit: Unit, scope: _ClassState) -> None:
        self.emitter = emitter
        self.node = unit.node
        self.a = unit.node.attrs
        self.e = scope.expr if scope is not None else lambda v: expr_of(v).render()
        self.inplace = ["inplace=True"] if unit.overwrites else []

    def kw(self, name: str, value, default) -> list[str]:
        """`name=value`, or nothing where the value is PyTorch's default."""
        return [] if is_default(value, default) else [f"{name}={self.e(value)}"]

    def helper(self, name: str) -> str:
        """A class (or function) from templates/torch/helpers/, written into the file once."""
        self.emitter.helpers.add(name)
        return name

    @staticmethod
    def tensor_size(variable: str) -> str:
        """A size taken from a named tensor (`size=img`): its height and width, at run time."""
        return f"{variable}.shape[-2:]"

    def window(self) -> list[str]:
        a = self.a
        return (
            self.kw("stride", a["s"], 1)
            + self.kw("padding", a["p"], 0)
            + self.kw("dilation", a["d"], 1)
        )


def _conv(c: _LayerCall):
    a, e = c.a, c.e
    args = [e(a["in_channels"]), e(a["c"]), f"kernel_size={e(a['k'])}", *c.window()]
    return "nn.Conv2d", args + c.kw("groups", a["g"], 1) + c.kw("bias", a["bias"], True)


def _dwconv(c: _LayerCall):
    a, e = c.a, c.e
    cin = e(a["in_channels"])
    out = cin if is_default(a["m"], 1) else e(a["in_channels"] * a["m"])
    args = [cin, out, f"kernel_size={e(a['k'])}", *c.window(), f"groups={cin}"]
    return "nn.Conv2d", args + c.kw("bias", a["bias"], True)


def _sepconv(c: _LayerCall):
    a, e = c.a, c.e
    args = [e(a["in_channels"]), e(a["c"]), f"kernel_size={e(a['k'])}", *c.window()]
    args += c.kw("depth_multiplier", a["m"], 1) + c.kw("bias", a["bias"], True)
    return c.helper("SeparableConv2d"), args


def _pool(cls: str):
    def emit(c: _LayerCall):
        a, e = c.a, c.e
        args = [e(a["k"])]
        if e(a["s"]) != e(a["k"]):
            args.append(f"stride={e(a['s'])}")
        args += c.kw("padding", a["p"], 0)
        if "d" in a:
            args += c.kw("dilation", a["d"], 1)
        args += c.kw("ceil_mode", a["ceil"], False)
        if "count_pad" in a:
            args += c.kw("count_include_pad", a["count_pad"], True)
        return cls, args

    return emit


def _bn(c: _LayerCall):
    a, e = c.a, c.e
    cls = "nn.BatchNorm2d" if len(c.node.shape) == 3 else "nn.BatchNorm1d"
    scale = a.get("scale", True)
    if not is_default(scale, True):
        if not is_default(scale, False):
            raise NetdslError(
                "the torch backend needs bn's scale to be true or false "
                "where the block is written, not a parameter",
                c.node.span,
            )
        cls = c.helper(cls[3:] + "NoScale")  # without the scale gamma: a helper class
    args = [e(a["num_features"])] + c.kw("eps", a["eps"], 1e-5)
    return cls, args + c.kw("momentum", a["momentum"], 0.1)


def _layernorm(c: _LayerCall):
    # an image: over the channels at each position (a helper that moves C last and back)
    cls = c.helper("LayerNorm2d") if len(c.node.shape) == 3 else "nn.LayerNorm"
    return cls, [c.e(c.a["num_features"])] + c.kw("eps", c.a["eps"], 1e-5)


def _groupnorm(c: _LayerCall):
    a, e = c.a, c.e
    return "nn.GroupNorm", [e(a["g"]), e(a["num_features"])] + c.kw("eps", a["eps"], 1e-5)


def _instancenorm(c: _LayerCall):
    a, e = c.a, c.e
    args = [e(a["num_features"])] + c.kw("eps", a["eps"], 1e-5)
    return "nn.InstanceNorm2d", args + c.kw("affine", a["affine"], False)


def _layer_scale(c: _LayerCall):
    # gamma of shape (C, 1, 1) on an image, as torchvision's ConvNeXt holds it; (C,) flat
    args = [c.e(c.a["channels"])] + c.kw("init_value", c.a["init"], 1e-6)
    return c.helper("LayerScale"), args + ([] if len(c.node.shape) == 3 else ["image=False"])


def _pointwise_fc(c: _LayerCall):
    # nn.Linear on the channels at each position (a helper that moves C last and back)
    args = [c.e(c.a["in_features"]), c.e(c.a["n"])] + c.kw("bias", c.a["bias"], True)
    return c.helper("PointwiseLinear"), args


def _lrn(c: _LayerCall):
    a, e = c.a, c.e
    args = [e(a["n"]), f"alpha={e(a['alpha'])}", f"beta={e(a['beta'])}", f"k={e(a['k'])}"]
    return "nn.LocalResponseNorm", args


def _zeropad(c: _LayerCall):
    p, e = c.a["p"], c.e
    if isinstance(p, Num):
        return "nn.ZeroPad2d", [e(p)]
    left, right, top, bottom = zeropad_sides(p)
    return "nn.ZeroPad2d", [f"({e(left)}, {e(right)}, {e(top)}, {e(bottom)})"]


def _crop(c: _LayerCall):
    left, right, top, bottom = (c.e(v) for v in zeropad_sides(c.a["p"]))
    return c.helper("Crop2d"), [f"({left}, {right}, {top}, {bottom})"]


def _chunk(c: _LayerCall):
    return c.helper("Chunk"), [c.e(c.a["n"]), c.e(c.a["i"])]


def _channels(c: _LayerCall):
    return c.helper("ChannelSlice"), [c.e(c.a["start"]), c.e(c.a["stop"])]


def _conv_transpose(c: _LayerCall):
    a, e = c.a, c.e
    args = [e(a["in_channels"]), e(a["c"]), f"kernel_size={e(a['k'])}"]
    args += c.kw("stride", a["s"], 1) + c.kw("padding", a["p"], 0)
    args += c.kw("output_padding", a["output_padding"], 0) + c.kw("groups", a["g"], 1)
    return "nn.ConvTranspose2d", args + c.kw("bias", a["bias"], True) + c.kw("dilation", a["d"], 1)


def _upsample(c: _LayerCall):
    a, e = c.a, c.e
    if a.get("scale") is not None:
        args = [f"scale_factor={e(a['scale'])}"]
    else:
        args = [f"size={e(a['size'])}"]
    if a["mode"] != "nearest":
        args += [f"mode={fmt.py_str(a['mode'])}", f"align_corners={e(a['align_corners'])}"]
    return "nn.Upsample", args


# ---- op -> forward call: a layer whose size is a named tensor's (`upsample size=img`)
# reads that tensor in forward, so it is a call there (no module): (function, arguments)


def _interpolate(c: _LayerCall, x: str, like: str):
    a = c.a
    args = [x, f"size={c.tensor_size(like)}"]
    if a["mode"] != "nearest":
        args += [f"mode={fmt.py_str(a['mode'])}", f"align_corners={c.e(a['align_corners'])}"]
    c.emitter.uses_functional = True
    return "F.interpolate", args


def _center_crop(c: _LayerCall, x: str, like: str):
    return c.helper("center_crop"), [x, c.tensor_size(like)]


FUNCTIONS = {"upsample": _interpolate, "crop": _center_crop}


def functional(node) -> bool:
    """A layer that reads a second tensor (its size): a call in forward, not a module."""
    return len(node.inputs) > 1


def _module(cls: str, *args: str):
    """An op whose module takes fixed arguments (and `inplace=True` where it can run in place)."""

    def emit(c: _LayerCall):
        return cls, [*args, *(c.inplace if IN_PLACE in traits(c.node.op) else [])]

    return emit


def _with_arg(cls: str, arg: str, keyword: str | None = None, default=None):
    """An op whose module takes one DSL argument (by `keyword` when it has a default)."""

    def emit(c: _LayerCall):
        value = c.a[arg]
        args = c.kw(keyword, value, default) if keyword else [c.e(value)]
        return cls, args + (c.inplace if IN_PLACE in traits(c.node.op) else [])

    return emit


def _helper(cls: str, arg: str):
    def emit(c: _LayerCall):
        return c.helper(cls), [c.e(c.a[arg])]

    return emit


# ---- token layers: (B, N, D) sequences, batch first as torchvision's VisionTransformer --------


def _fc(c: _LayerCall):
    # on tokens, nn.Linear maps the last dimension (each token's D features)
    args = [c.e(c.a["in_features"]), c.e(c.a["n"])] + c.kw("bias", c.a["bias"], True)
    return "nn.Linear", args


def _softmax(c: _LayerCall):
    # an image's or a flat tensor's channels are dimension 1; a token's features the last
    return "nn.Softmax", ["dim=-1" if len(c.node.shape) == 2 else "dim=1"]


def _gelu(c: _LayerCall):
    return "nn.GELU", [] if is_default(c.a["approximate"], False) else ['approximate="tanh"']


def _to_image(c: _LayerCall):
    _, h, w = c.node.out_shape
    return c.helper("ToImage"), [c.e(h), c.e(w)]


def _patch_embed(c: _LayerCall):
    a, e = c.a, c.e
    args = [e(a["in_channels"]), e(a["d"]), e(a["p"])] + c.kw("bias", a["bias"], True)
    return c.helper("PatchEmbed"), args


def _cls_token(c: _LayerCall):
    return c.helper("ClassToken"), [c.e(c.a["dim"])] + c.kw("n", c.a["n"], 1)


def _pos_embed(c: _LayerCall):
    return c.helper("PositionEmbedding"), [c.e(c.a["tokens"]), c.e(c.a["dim"])]


def _attention(c: _LayerCall):
    a, e = c.a, c.e
    args = [e(a["dim"]), e(a["heads"])] + c.kw("dropout", a["dropout"], 0.0)
    args += c.kw("bias", a["bias"], True) + c.kw("causal", a["causal"], False)
    return c.helper("SelfAttention"), args


def _token_pool(c: _LayerCall):
    mode = c.a["mode"]
    return c.helper("TokenPool"), [] if mode == "cls" else [f"mode={fmt.py_str(mode)}"]


def _embedding(c: _LayerCall):
    return "nn.Embedding", [c.e(c.a["vocab"]), c.e(c.a["d"])]


LAYERS = {
    "conv": _conv,
    "dwconv": _dwconv,
    "sepconv": _sepconv,
    "maxpool": _pool("nn.MaxPool2d"),
    "avgpool": _pool("nn.AvgPool2d"),
    "gap": _module("nn.AdaptiveAvgPool2d", "1"),
    "gmp": _module("nn.AdaptiveMaxPool2d", "1"),
    "adaptive_avgpool": _with_arg("nn.AdaptiveAvgPool2d", "size"),
    "adaptive_maxpool": _with_arg("nn.AdaptiveMaxPool2d", "size"),
    "fc": _fc,
    "flatten": _module("nn.Flatten"),
    "bn": _bn,
    "layernorm": _layernorm,
    "groupnorm": _groupnorm,
    "instancenorm": _instancenorm,
    "layer_scale": _layer_scale,
    "pointwise_fc": _pointwise_fc,
    "lrn": _lrn,
    "dropout": _with_arg("nn.Dropout", "p", "p", 0.5),
    "drop_path": _helper("DropPath", "p"),
    "zeropad": _zeropad,
    "crop": _crop,
    "chunk": _chunk,
    "channels": _channels,
    "conv_transpose": _conv_transpose,
    "upsample": _upsample,
    "pixel_shuffle": _with_arg("nn.PixelShuffle", "r"),
    "pixel_unshuffle": _with_arg("nn.PixelUnshuffle", "r"),
    "shuffle": _with_arg("nn.ChannelShuffle", "g"),
    "scale": _helper("Scale", "s"),
    "softmax": _softmax,
    "relu": _module("nn.ReLU"),
    "relu6": _module("nn.ReLU6"),
    "sigmoid": _module("nn.Sigmoid"),
    "tanh": _module("nn.Tanh"),
    "gelu": _gelu,
    "silu": _module("nn.SiLU"),
    "hardswish": _module("nn.Hardswish"),
    "hardsigmoid": _module("nn.Hardsigmoid"),
    "leaky_relu": _with_arg("nn.LeakyReLU", "slope", "negative_slope", 0.01),
    "elu": _with_arg("nn.ELU", "alpha", "alpha", 1.0),
    "tokens": lambda c: (c.helper("Tokens"), []),
    "image": _to_image,
    "patch_embed": _patch_embed,
    "cls_token": _cls_token,
    "pos_embed": _pos_embed,
    "attention": _attention,
    "token_pool": _token_pool,
    "embedding": _embedding,
}


# ---- initial weights: a layer's written inits as torch.nn.init calls ----------------------

# helper classes that are subclasses of a torch.nn class (`isinstance` sees them as one)
_SUBCLASS_OF = {
    "PatchEmbed": "nn.Conv2d",
    "PointwiseLinear": "nn.Linear",
    "LayerNorm2d": "nn.LayerNorm",
    "BatchNorm1dNoScale": "nn.BatchNorm1d",
    "BatchNorm2dNoScale": "nn.BatchNorm2d",
    "SelfAttention": "nn.MultiheadAttention",
}
_MATH_HELPERS = {"variance_scaling_", "torch_default_bias_"}


def _init_call(c: _LayerCall, r: Resolved, ref: str) -> tuple[str, list[str], str]:
    """(function, arguments, comment) of the statement that draws tensor `r` of the
    module `ref` from its written init: torch.nn.init's spelling of each family."""
    init, family = r.init, r.init.family
    tensor = f"{ref}.{r.tensor.role}"

    def kw(name: str, default) -> list[str]:
        value = init[name]
        if isinstance(value, str):
            return [] if value == default else [f"{name}={fmt.py_str(value)}"]
        if value.is_const and value.value == default and not isinstance(value.value, bool):
            return []
        return [f"{name}={c.e(value)}"]

    if family in ("zeros", "ones"):
        return f"nn.init.{family}_", [tensor], ""
    if family == "constant":
        value = init["value"]
        if value.is_const and value.value in (0, 1) and not isinstance(value.value, bool):
            return f"nn.init.{('zeros', 'ones')[int(value.value)]}_", [tensor], ""
        return "nn.init.constant_", [tensor, c.e(value)], ""
    if family == "normal":
        return "nn.init.normal_", [tensor, *kw("mean", 0), *kw("std", 1)], ""
    if family == "uniform":
        if kw("a", 0) or kw("b", 1):
            return "nn.init.uniform_", [tensor, c.e(init["a"]), c.e(init["b"])], ""
        return "nn.init.uniform_", [tensor], ""
    if family == "trunc_normal":
        args = [*kw("mean", 0), *kw("std", 1), *kw("a", -2), *kw("b", 2)]
        return "nn.init.trunc_normal_", [tensor, *args], ""
    if family in ("xavier_uniform", "xavier_normal", "orthogonal"):
        return f"nn.init.{family}_", [tensor, *kw("gain", 1)], ""
    if family in ("kaiming_uniform", "kaiming_normal"):
        args = [*kw("a", 0), *kw("mode", "fan_in"), *kw("nonlinearity", "leaky_relu")]
        return f"nn.init.{family}_", [tensor, *args], ""
    if family == "torch_default":
        if r.tensor.bias:  # U(+-1/sqrt(fan_in)) of its weight
            weight = f"{ref}.{r.tensor.role.replace('bias', 'weight')}"
            return c.helper("torch_default_bias_"), [tensor, weight], "PyTorch's default"
        return "nn.init.kaiming_uniform_", [tensor, "a=math.sqrt(5)"], "PyTorch's default"
    # Keras' VarianceScaling and its named forms (glorot_*, he_*, lecun_*)
    if family in KERAS_NAMED:
        scale, mode, dist = KERAS_NAMED[family]
        args = [] if scale == 1 else [f"scale={scale!r}"]
        args += [] if mode == "fan_in" else [f"mode={fmt.py_str(mode)}"]
        args += [] if dist == "truncated_normal" else [f"distribution={fmt.py_str(dist)}"]
        return c.helper("variance_scaling_"), [tensor, *args], f"Keras' {family}"
    args = [*kw("scale", 1), *kw("mode", "fan_in"), *kw("distribution", "truncated_normal")]
    return c.helper("variance_scaling_"), [tensor, *args], ""


def _optional(node: Node, r: Resolved) -> str | None:
    """The tensor, if a class parameter decides whether it exists (`bias=b`): its init
    is then guarded by `if ... is not None`."""
    a = node.attrs
    if r.tensor.bias and node.op not in ("bn", "layernorm", "groupnorm", "instancenorm"):
        flag = a.get("bias")
    elif node.op == "instancenorm":
        flag = a.get("affine")
    else:
        return None
    return r.tensor.role if isinstance(flag, Num) and not flag.is_const else None


# ---- merge -> forward statement (joins are expressions in forward, not modules) ---------


def _add(out: str, args: list[str], overwrites: bool, indent: int) -> list[str]:
    if overwrites and out in args:  # one operand is a fresh tensor nothing else reads: add into it
        return _expression(f"{out} += ", args[1 - args.index(out)], indent)
    return _expression(f"{out} = ", " + ".join(args), indent)


MERGES = {
    "concat": lambda out, args, _, indent: fmt.statement(
        f"{out} = ", "torch.cat", [f"[{', '.join(args)}]", "1"], indent
    ),
    "add": _add,
    "mul": lambda out, args, _, indent: _expression(f"{out} = ", " * ".join(args), indent),
    "mean": lambda out, args, _, indent: _expression(
        f"{out} = ", f"({' + '.join(args)}) / {len(args)}", indent
    ),
}
UNSUPPORTED: dict[str, str] = {}  # op -> why PyTorch code cannot express it


class TorchEmitter(Emitter):
    """nn.Module classes; aux heads run where they tap the flow, under `if self.training:`."""

    target = "torch"
    LAYERS = LAYERS
    MERGES = MERGES
    UNSUPPORTED = UNSUPPORTED
    FUNCTIONS = FUNCTIONS

    # -- context -------------------------------------------------------------------

    def context(self, program: Program) -> FileContext:
        net = program.network
        self.network = net
        self.helpers: set[str] = set()
        self.uses_functional = False
        self.facts = _Facts(program.classes)
        self.devices: set[str] = set()
        self.parts = anonymous_parts(program)
        self.tied: set[int] = set()  # the fc nodes whose weight is an embedding's
        classes = [self._class(c) for c in program.classes]
        for node in net.nodes():  # a tie inside a repeat, or across two classes
            if node.op == "fc" and node.attrs.get("tie") is not None and id(node) not in self.tied:
                raise _untied(node)
        main = program.main
        builder_params = [self._param_text(p) for p in main.params]
        call_args = [f"{p.name}={p.name}" for p in main.params]
        devices = None
        if self.facts.mixed_cls(main):
            self.helpers.add("place_devices")
            name = fresh_name("devices", {p.name for p in main.params})
            builder_params.append(f"{name}: dict[str, str] | None = None")
            call_args.append(f"{name}={name}")
            names = [fmt.py_str(d) for d in sorted(self.devices, key=_device_order)]
            if len(names) == 1:
                names[0] += ","  # a one-element tuple
            devices = "\n".join(fmt.statement("DEVICES = ", "", names, 0))
        seed = fresh_name("seed", {p.name for p in main.params})
        builder_params.append(f"{seed}: int | None = None")
        builder_call = fmt.statement("return ", main.name, call_args, 1)
        weights = {}
        if self.weights is not None:  # --weights: build_model(pretrained=...)
            taken = {p.name for p in main.params} | {seed}
            pretrained = fresh_name("pretrained", taken)
            builder_params.append(f"{pretrained}: bool = False")
            model = fresh_name("model", taken)
            builder_call = [
                *fmt.statement(f"{model} = ", main.name, call_args, 1),
                f"    if {pretrained}:",
                f"        load_pretrained({model}, PRETRAINED, __file__)",
                f"    return {model}",
            ]
            weights = dict(
                pretrained=pretrained,
                weights_comment=torch_comment(self.weights),
                weights_reference=fmt.py_str(self.weights.reference),
                runtime=torch_runtime(),
            )
        builder_sig = fmt.statement(
            "def build_model", "", builder_params, 0, suffix=f" -> {main.name}:"
        )
        code = [*builder_sig, *(line for c in classes for line in _class_code(c))]
        header = file_header(net, self.helpers, code=code)
        header["uses_math"] = header["uses_math"] or bool(self.helpers & _MATH_HELPERS)
        return FileContext(
            **header,
            classes=classes,
            builder=builder_sig,
            seed=seed,
            builder_call=builder_call,
            main_class=main.name,
            devices=devices,
            uses_functional=self.uses_functional,
            **_input_facts(net),
            **weights,
        )

    def _param_text(self, p) -> str:
        if p.layer:  # torchvision's `activation_layer: Callable[..., nn.Module] = nn.ReLU`
            hint = f"{p.name}: Callable[..., nn.Module]"
            return hint if p.required else f"{hint} = {self._layer_value(p.default)}"
        hint = type_hint(p.value if p.value is not None else p.default)
        if p.default is not None and p.value is not None:
            other = type_hint(p.default)
            if {hint, other} == {"float", "int"}:  # an int is a float to a type checker
                hint = "float"
            elif other != hint:  # e.g. p=same by default, a number where it is called
                hint = " | ".join(sorted({hint, other}, key=lambda h: (h == "str", h)))
        if p.computed is not None:
            return f"{p.name}: {hint} | None = None"
        if p.required:
            return f"{p.name}: {hint}"
        return f"{p.name}: {hint} = {fmt.literal(p.default)}"

    def _class(self, cls: ClassModel) -> ClassText:
        scope = _ClassState(cls, self.facts)
        init: list[str] = []
        for unit in cls.units:
            init += self._init_unit(unit, scope)
        init += self._ties(cls)
        init += self._weight_inits(cls, scope)
        forward = self._forward(cls, scope)
        # the constructor's head comes last: it depends on what the body used
        params = ["self"]
        if cls.uses_in_channels:
            params.append(f"{scope.channels}: int")
        params += [self._param_text(p) for p in cls.params]
        head = ["super().__init__()"]
        if cls.kind == "network":
            head += frozen_guard(self.network, 2)
        if scope.mixed and scope.network:
            params.append(f"{scope.devices_param}: dict[str, str] | None = None")
        elif scope.mixed:
            params.append(f"{scope.placement}: dict[str, torch.device]")
            if scope.uses_home:
                params.append(f"{scope.home_param}: torch.device")
        for p in cls.params:
            if p.computed is not None:
                head += [f"if {p.name} is None:", f"    {p.name} = {scope.expr(p.computed)}"]
        for name, value in cls.locals:  # (head is indented below)
            lines = fmt.assignment(name, scope.expr(value), BODY)
            head += [line.removeprefix(fmt.INDENT * BODY) for line in lines]
        if scope.mixed:
            if scope.network:
                head.append("# where the @gpu/@cpu parts run on this machine")
                head.append(f"{scope.placement} = place_devices({scope.devices_param})")
            if scope.uses_home:
                head.append(f"self.{scope.home_attr} = {scope.home_param}")
            for key, attr in sorted(
                scope.device_attrs.items(), key=lambda kv: _device_order(kv[0])
            ):
                head.append(f"self.{attr} = {scope.placement}[{fmt.py_str(key)}]")
                self.devices.add(key)
        assert scope.uses_home == (
            scope.mixed and not scope.network and self.facts.needs_home(cls)
        ), cls.name
        signature = fmt.statement("def __init__", "", params, 1, suffix=" -> None:")
        init = _indent(head, BODY) + init
        args = ", ".join(f"{name}: Tensor" for name in cls.inputs)
        returns = (
            "Tensor"
            if len([o for o in cls.outputs if not o[2]]) == 1 and not any(o[2] for o in cls.outputs)
            else "Tensor | tuple[Tensor, ...]"
        )
        forward_sig = f"def forward(self, {args}) -> {returns}:"
        if len(forward_sig) + 4 > fmt.LINE:
            forward_sig = "\n".join(
                fmt.statement(
                    "def forward",
                    "",
                    ["self"] + [f"{name}: Tensor" for name in cls.inputs],
                    1,
                    suffix=f" -> {returns}:",
                )
            )[4:]
        return ClassText(cls.name, self._doc(cls), signature, init, forward_sig, forward, cls.kind)

    def _ties(self, cls: ClassModel) -> list[str]:
        """`self.lm_head.weight = self.wte.weight`: an fc whose weight is an embedding's
        table (`fc n tie=wte`), both modules of this class (GPT-2's tied embeddings)."""
        pad = fmt.INDENT * BODY
        lines = []
        for unit in cls.units:
            if unit.kind != "layer" or unit.param or unit.node.attrs.get("tie") is None:
                continue
            sources = set()
            for node, owner in unit.items:
                tie = node.attrs["tie"]
                source = next(
                    (
                        u
                        for u in cls.units
                        if u.kind == "layer"
                        and not u.param
                        and any(n is tie.node and o is owner for n, o in u.items)
                    ),
                    None,
                )
                if source is None:
                    raise _untied(node)
                sources.add(source.attr)
            if len(sources) != 1:  # instances tied to different modules of the class
                raise _untied(unit.node)
            self.tied.update(id(node) for node, _ in unit.items)
            lines.append(f"{pad}self.{unit.attr}.weight = self.{sources.pop()}.weight  # tied")
        return lines

    def _doc(self, cls: ClassModel) -> list[str]:
        if cls.kind == "network":
            return [f"The {cls.name} network, from:", ""] + fmt.docstring_text(cls.doc)
        return class_doc(cls, self.parts)

    # -- __init__ ----------------------------------------------------------------------

    def _init_unit(self, unit: Unit, scope: _ClassState) -> list[str]:
        """Constructor lines (fully indented) that create one unit's module."""
        target = f"self.{unit.attr} = "
        where = scope.target(unit)
        if unit.kind == "merge" or (unit.kind == "layer" and functional(unit.node)):
            return []
        if unit.kind == "cond":
            return self._init_cond(unit, scope, target, where)
        if unit.kind == "repeat":
            return self._init_repeat(unit, scope, target, where)
        func, args, suffix = self._ctor(unit, scope, BODY, where)
        return fmt.statement(target, func, args, BODY, suffix=suffix)

    def _init_cond(self, unit: Unit, scope: _ClassState, target: str, where) -> list[str]:
        cond = scope.expr(unit.cond)
        pad = fmt.INDENT * BODY
        lines: list[str] = []
        if len(unit.branches) == 2:
            for taken, keyword in ((True, f"if {cond}:"), (False, "else:")):
                func, args, suffix = self._body_ctor(unit.branches[taken], scope, BODY + 1, where)
                lines.append(pad + keyword)
                lines += fmt.statement(target, func, args, BODY + 1, suffix=suffix)
            return lines
        ((taken, body),) = unit.branches.items()
        test = f"not ({cond})" if taken else cond
        lines += [f"{pad}if {test}:"] + refuse_other_values(f"({cond}) == {taken}", BODY + 1)
        func, args, suffix = self._body_ctor(body, scope, BODY, where)
        return lines + fmt.statement(target, func, args, BODY, suffix=suffix)

    def _init_repeat(self, unit: Unit, scope: _ClassState, target: str, where) -> list[str]:
        pad = fmt.INDENT * BODY
        count = scope.expr(unit.count)
        if unit.body is None:
            return [f"{pad}{target}nn.Sequential()  # {fmt.comment_text(count)} times: none here"]
        loop = unit.loop_var
        loop_name = scope.cls.renames.get(loop, "channels")
        uses_loop = loop in _body_symbols(unit.body)
        body = unit.body
        unchanged = unit.update is None or render_expr(unit.update) in (
            render_expr(unit.init),
            render_expr(Sym(loop)),
        )
        if uses_loop and unchanged:
            # every iteration sees the same channels: build identical modules
            body = subst_body(body, {loop: unit.init})
            uses_loop = False
        # a body with parts on several devices places each part itself; otherwise the
        # whole stack moves to the repeat's device at once
        mixed = where is not None and self.facts.mixed_body(body)
        inner = where if mixed else None
        suffix = (
            self._to(where, scope)
            if where is not None and not mixed and self.facts.stateful_body(body)
            else ""
        )
        var, iterable = "_", f"range({count})"
        if unit.index is not None:
            symbol, start, stop = unit.index
            if symbol in _body_symbols(body) or (
                uses_loop and unit.update is not None and symbol in unit.update.symbols
            ):
                var = scope.cls.renames.get(symbol, symbol.lstrip("#"))
                iterable = (
                    f"range({scope.expr(stop)})"
                    if render_expr(start) == "0"
                    else f"range({scope.expr(start)}, {scope.expr(stop)})"
                )
        if not uses_loop and body.kind != "chain":
            func, args, item_suffix = self._body_ctor(body, scope, BODY + 1, inner)
            one = f"*[{fmt.call(func, args)}{item_suffix} for {var} in {iterable}]"
            if len(fmt.INDENT * (BODY + 1) + one) + 1 <= fmt.LINE:
                return fmt.statement(target, "nn.Sequential", [one], BODY, suffix=suffix)
            # the comprehension split as ruff splits it: the item, then its `for`
            inner_pad = fmt.INDENT * (BODY + 2)
            item = fmt.call(func, args) + item_suffix
            if len(inner_pad + item) > fmt.LINE:
                item = fmt.nested_call(func, args, BODY + 1) + item_suffix
            return [
                f"{pad}{target}nn.Sequential(",
                f"{pad}{fmt.INDENT}*[",
                f"{inner_pad}{item}",
                f"{inner_pad}for {var} in {iterable}",
                f"{pad}{fmt.INDENT}],",
                f"{pad}){suffix}",
            ]
        lines = [
            f"{pad}layers = []" if scope.declared_layers else f"{pad}layers: list[nn.Module] = []"
        ]
        scope.declared_layers = True
        if uses_loop:
            lines += fmt.assignment(loop_name, scope.expr(unit.init), BODY)
        lines.append(f"{pad}for {var} in {iterable}:")
        if body.kind == "chain":
            items = [self._ctor_text(u, scope, BODY + 1, inner) for u in body.units]
            lines += _list_extend(items, BODY + 1)
        else:
            func, args, item_suffix = self._body_ctor(body, scope, BODY + 2, inner)
            item = fmt.nested_call(func, args, BODY + 1) + item_suffix
            lines += fmt.statement("", "layers.append", [item], BODY + 1)
        if (
            uses_loop
            and unit.update is not None
            and render_expr(unit.update) != render_expr(Sym(loop))
        ):
            lines += fmt.assignment(loop_name, scope.expr(unit.update), BODY + 1)
        lines.append(f"{pad}{target}nn.Sequential(*layers){suffix}")
        return lines

    def _ctor_text(self, unit: Unit, scope: _ClassState, indent: int, where=None) -> str:
        """A constructor call used as an argument of a statement at `indent`."""
        func, args, suffix = self._ctor(unit, scope, indent, where)
        return fmt.nested_call(func, args, indent) + suffix

    def _to(self, where: str | None, scope: _ClassState) -> str:
        return f".to({scope.device(where)})" if where is not None else ""

    def _placed(
        self,
        func: str,
        args: list[str],
        stateful: bool,
        mixed_cls: ClassModel | None,
        scope: _ClassState,
        where: str | None,
    ) -> tuple[str, list[str], str]:
        """Put a constructed module on its device: `.to(...)`, or hand a mixed class the
        placement (and its default device) so that it places its own parts."""
        if where is None:
            return func, args, ""
        if mixed_cls is not None:
            placement, home = self.facts.params[id(mixed_cls)]
            extra = [f"{placement}={scope.placement}"]
            if self.facts.needs_home(mixed_cls):
                extra.append(f"{home}={scope.device(where)}")
            return func, args + extra, ""
        return func, args, self._to(where, scope) if stateful else ""

    def _body_ctor(
        self, body: Body, scope: _ClassState, indent: int, where: str | None = None
    ) -> tuple[str, list[str], str]:
        if body.kind == "identity":
            return "nn.Identity", [], ""
        if body.kind == "single":
            return self._ctor(body.units[0], scope, indent, where)
        if body.kind == "chain":
            if where is not None and self.facts.mixed_body(body):
                items = [self._ctor_text(u, scope, indent, where) for u in body.units]
                return "nn.Sequential", items, ""
            items = [self._ctor_text(u, scope, indent) for u in body.units]
            return (
                "nn.Sequential",
                items,
                self._to(where, scope)
                if where is not None and self.facts.stateful_body(body)
                else "",
            )
        args = []
        for keyword, value in body.args:
            text = self._arg_text(value, scope)
            args.append(text if keyword is None else f"{keyword}={text}")
        mixed = body.cls if self.facts.mixed_cls(body.cls) else None
        return self._placed(
            body.cls.name, args, self.facts.stateful_cls(body.cls), mixed, scope, where
        )

    def _ctor(
        self, unit: Unit, scope: _ClassState, indent: int, where: str | None = None
    ) -> tuple[str, list[str], str]:
        if unit.kind == "call":
            args = []
            for keyword, value in unit.args:
                text = self._arg_text(value, scope)
                args.append(text if keyword is None else f"{keyword}={text}")
            mixed = unit.cls if self.facts.mixed_cls(unit.cls) else None
            return self._placed(
                unit.cls.name, args, self.facts.stateful_cls(unit.cls), mixed, scope, where
            )
        if unit.kind == "module":
            return self._body_ctor(unit.body, scope, indent, where)
        if unit.kind in ("repeat", "cond"):  # only inside unrolled repeats
            raise NetdslError(
                "the torch backend cannot nest this repeat or conditional here", unit.scope.span
            )
        func, args = self._layer(unit, scope)
        return (
            func,
            args,
            self._to(where, scope) if where is not None and self.facts.stateful_unit(unit) else "",
        )

    def _layer_value(self, frag) -> str:
        """A layer value as a constructor: `nn.Hardswish`, `partial(nn.LeakyReLU, 0.2)`."""
        node = layer_node(frag)
        if node is None:
            return "nn.Identity"
        stand_in = Unit("layer", "", node=node)
        func, args = self.LAYERS[node.op](_LayerCall(self, stand_in, None))
        return f"partial({func}, {', '.join(args)})" if args else func

    def _arg_text(self, value, scope: _ClassState) -> str:
        if isinstance(value, LayerArg):
            own = {p.symbol: p.name for p in scope.cls.params if p.layer}
            if value.param in own:
                return own[value.param]
            if value.choice:  # `nn.Hardswish if settings[i][4] else nn.ReLU`
                cond, then, orelse = value.choice
                return (
                    f"{self._layer_value(then)} if {scope.expr(cond)} "
                    f"else {self._layer_value(orelse)}"
                )
            return self._layer_value(value.frag)
        return scope.expr(value)

    def _layer(self, unit: Unit, scope: _ClassState) -> tuple[str, list[str]]:
        if unit.param:  # the class's layer parameter: `act_layer(inplace=True)`
            name = next(p.name for p in scope.cls.params if p.layer and p.symbol == unit.param)
            nodes = [item for item, _ in unit.items if isinstance(item, Node)]
            in_place = unit.overwrites and all(IN_PLACE in traits(n.op) for n in nodes)
            return name, ["inplace=True"] if in_place else []
        return self.LAYERS[unit.node.op](_LayerCall(self, unit, scope))

    # -- initial weights -------------------------------------------------------------

    def _weight_inits(self, cls: ClassModel, scope: _ClassState) -> list[str]:
        """The written inits of the layers this class builds itself, after building them
        (torchvision's way); the classes of its blocks initialise theirs."""
        taken = {p.name for p in cls.params} | {name for name, _ in cls.locals}
        taken |= {scope.channels, "layers", *scope.cls.renames.values()}
        scope.loop_var = fresh_name("m", taken)
        lines: list[str] = []
        for unit in cls.units:
            lines += self._unit_inits(unit, f"self.{unit.attr}", scope, BODY)
        return lines

    def _unit_inits(self, unit: Unit, ref: str, scope: _ClassState, indent: int) -> list[str]:
        if unit.kind == "layer":
            if unit.param or functional(unit.node):
                return []
            return self._layer_inits(unit, ref, scope, indent)
        if unit.kind == "module":
            return self._body_inits(unit.body, ref, scope, indent)
        if unit.kind == "cond":
            return self._cond_inits(unit, ref, scope, indent)
        if unit.kind == "repeat":
            return self._repeat_inits(unit, ref, scope, indent)
        return []  # a call or a merge: a class of its own, or no weights

    def _layer_inits(self, unit: Unit, ref: str, scope: _ClassState, indent: int) -> list[str]:
        call = _LayerCall(self, unit, scope)
        lines: list[str] = []
        for r in initializers.resolve(unit.node):
            if not r.written:
                continue
            func, args, comment = _init_call(call, r, ref)
            optional = _optional(unit.node, r)
            if optional is not None:  # `bias=b`: no bias where b is false
                lines.append(f"{fmt.INDENT * indent}if {ref}.{optional} is not None:")
                lines += fmt.with_comment(
                    fmt.statement("", func, args, indent + 1), comment, indent + 1
                )
            else:
                lines += fmt.with_comment(fmt.statement("", func, args, indent), comment, indent)
        return lines

    def _body_inits(self, body: Body, ref: str, scope: _ClassState, indent: int) -> list[str]:
        if body.kind == "single":
            return self._unit_inits(body.units[0], ref, scope, indent)
        if body.kind == "chain":  # an nn.Sequential of the units' modules
            lines = []
            for i, u in enumerate(body.units):
                lines += self._unit_inits(u, f"{ref}[{i}]", scope, indent)
            return lines
        return []  # identity, or a class of its own

    def _cond_inits(self, unit: Unit, ref: str, scope: _ClassState, indent: int) -> list[str]:
        pad = fmt.INDENT * indent
        inits = {t: self._body_inits(b, ref, scope, indent + 1) for t, b in unit.branches.items()}
        if len(inits) == 1:  # the other value is refused when the module is built
            (lines,) = inits.values()
            return [line.removeprefix(fmt.INDENT) for line in lines]
        cond = scope.expr(unit.cond)
        if inits[True] and inits[False]:
            return [f"{pad}if {cond}:", *inits[True], f"{pad}else:", *inits[False]]
        if inits[True]:
            return [f"{pad}if {cond}:", *inits[True]]
        if inits[False]:
            return [f"{pad}if not ({cond}):", *inits[False]]
        return []

    def _repeat_inits(self, unit: Unit, ref: str, scope: _ClassState, indent: int) -> list[str]:
        """The modules of a repeat's nn.Sequential: one per iteration, or (a chain) the
        chain's modules one after another. One loop over them, torchvision's way
        (`if isinstance(m, nn.Conv2d): ...`), where the class tells the layers apart;
        a slice (`self.convs[::3]`) where two layers of one class start differently; the
        index beside each module (`for i, m in zip(range(n), self.convs)`) where the
        init reads it."""
        body = unit.body
        if body is None:
            return []
        if unit.update is not None and render_expr(unit.update) not in (
            render_expr(unit.init),
            render_expr(Sym(unit.loop_var)),
        ):
            if unit.loop_var in _init_symbols(body):  # the channels change each repetition
                raise NetdslError(
                    "the torch backend cannot write an init that reads the channels of "
                    "each repetition",
                    unit.scope.span,
                    hint="write the init in terms of the block's parameters",
                )
        else:  # every repetition sees the same channels (as _init_repeat builds them)
            body = subst_body(body, {unit.loop_var: unit.init})
        pad = fmt.INDENT * indent
        m = scope.loop_var
        each = f"{m} in {{}}"  # `m in self.convs`, or with the index: `i, m in zip(...)`
        if unit.index is not None and unit.index[0] in _init_symbols(body):
            symbol, start, stop = unit.index
            var = scope.cls.renames.get(symbol, symbol.lstrip("#"))
            iterable = (
                f"range({scope.expr(stop)})"
                if render_expr(start) == "0"
                else f"range({scope.expr(start)}, {scope.expr(stop)})"
            )
            each = f"{var}, {m} in zip({iterable}, {{}})"
        if body.kind != "chain":
            lines = self._body_inits(body, m, scope, indent + 1)
            return [f"{pad}for {each.format(ref)}:", *lines] if lines else []
        n = len(body.units)
        inner = [self._unit_inits(u, m, scope, indent + 2) for u in body.units]
        kinds = [self._module_class(u, scope) for u in body.units]
        done: set[int] = set()
        tests: list[tuple[str, list[str]]] = []
        for i, (cls, lines) in enumerate(zip(kinds, inner)):
            if not lines or i in done or cls is None or not each.startswith(f"{m} in"):
                continue
            # what `isinstance(m, cls)` picks: cls's layers and its helper subclasses'
            seen = [
                j for j, k in enumerate(kinds) if k is not None and cls in (k, _SUBCLASS_OF.get(k))
            ]
            if all(inner[j] == lines for j in seen):
                tests.append((cls, lines))
                done.update(seen)
        out: list[str] = []
        if tests:
            out.append(f"{pad}for {each.format(ref)}:")
            for k, (cls, lines) in enumerate(tests):
                out.append(f"{pad}{fmt.INDENT}{'el' if k else ''}if isinstance({m}, {cls}):")
                out += lines
        for i, lines in enumerate(inner):
            if lines and i not in done:
                head = f"{pad}for {each.format(f'{ref}[{i or str()}::{n}]')}:"
                out += [head, *(line.removeprefix(fmt.INDENT) for line in lines)]
        return out

    def _module_class(self, unit: Unit, scope: _ClassState) -> str | None:
        """The class of a layer unit's module (`nn.Conv2d`); None for anything else."""
        if unit.kind != "layer" or unit.param or functional(unit.node):
            return None
        return self._layer(unit, scope)[0]

    # -- forward -------------------------------------------------------------------

    def _forward(self, cls: ClassModel, scope: _ClassState) -> list[str]:
        """The forward pass in DSL order; train-only parts (aux heads) where they tap the
        flow, under `if self.training:`."""
        names = self._output_names(cls)
        devices = {v: INPUT for v in cls.inputs}  # variable -> device key (mixed classes)
        lines: list[str] = []
        in_train_block = False
        for unit in cls.units:
            if unit.train_only and not in_train_block:
                lines.append(fmt.INDENT * BODY + "if self.training:")
            in_train_block = unit.train_only
            lines += self._forward_unit(unit, scope, BODY + unit.train_only, names, devices)
        eval_outs = [names.get(v, v) for _, v, train in cls.outputs if not train]
        train_outs = [names.get(v, v) for _, v, train in cls.outputs if train]
        pad = fmt.INDENT * BODY
        if train_outs:
            if not in_train_block:
                lines.append(pad + "if self.training:")
            lines.append(f"{pad}    return {', '.join(eval_outs + train_outs)}")
        lines.append(f"{pad}return {', '.join(eval_outs)}")
        out_var = cls.outputs[0][1] if cls.outputs else None
        self.facts.out_key[id(cls)] = devices.get(names.get(out_var, out_var), INPUT)
        return lines

    def _output_names(self, cls: ClassModel) -> dict[str, str]:
        """Train-only outputs keep their DSL name (`aux1`) as their variable when it is free."""
        used = set(cls.inputs) | {u.output for u in cls.units}
        names = {}
        for name, var, train in cls.outputs:
            candidate = _safe_var(name)
            if train and candidate not in used | MODULE_LEVEL and var not in cls.inputs:
                names[var] = candidate
                used.add(candidate)
        return names

    def _forward_unit(
        self, unit: Unit, scope: _ClassState, indent: int, names: dict, devices: dict
    ) -> list[str]:
        cls = scope.cls
        comment = shape_comment(unit, cls.in_shapes, cls.renames)
        out = names.get(unit.output, unit.output)
        ins = [names.get(v, v) for v in unit.inputs]
        args = self._moves(unit, scope, ins, out, devices) if scope.mixed else ins
        prefix = f"{out} = "
        if unit.kind == "merge":
            lines = self.MERGES[unit.node.op](out, args, unit.overwrites, indent)
        elif unit.kind == "layer" and functional(unit.node):
            call = _LayerCall(self, unit, scope)
            func, call_args = self.FUNCTIONS[unit.node.op](call, *args)
            lines = fmt.statement(prefix, func, call_args, indent)
        else:
            arg = args[0]
            if (
                unit.kind == "layer"
                and READS_FLAT in traits(unit.node.op)
                and len(unit.node.in_shapes[0]) == 3
            ):
                arg = f"torch.flatten({arg}, 1)"
            # a block's tensor parameters follow its input: `x = self.cell(x, a)`
            extra = args[1:] if unit.kind == "call" else []
            lines = fmt.statement(prefix, f"self.{unit.attr}", [arg, *extra], indent)
        return fmt.with_comment(lines, comment, indent)

    def _moves(
        self, unit: Unit, scope: _ClassState, ins: list[str], out: str, devices: dict
    ) -> list[str]:
        """Inputs moved to the unit's device where they live elsewhere; records the
        device of the unit's output."""
        where = scope.target(unit)
        here = [devices.get(v, INPUT) for v in ins]
        if unit.kind == "merge":
            if unit.placed:
                devices[out] = where
                return [
                    v if d == where else f"{v}.to({scope.device(where)})" for v, d in zip(ins, here)
                ]
            # an unannotated join runs where its first input is
            first = devices[out] = here[0]
            to = f"{ins[0]}.device" if first in (INPUT, "?") else scope.device(first)
            return ins[:1] + [
                v if d == first != "?" else f"{v}.to({to})" for v, d in zip(ins[1:], here[1:])
            ]
        if self.facts.mixed_unit(unit):
            key = self._out_key(unit)
            devices[out] = here[0] if key == INPUT else where if key == HOME else key
            return ins
        if unit.placed or self.facts.stateful_unit(unit):
            devices[out] = where
            return [
                v if d == where else f"{v}.to({scope.device(where)})" for v, d in zip(ins, here)
            ]
        devices[out] = here[0]  # no weights: runs where its input is
        return ins

    def _out_key(self, unit: Unit) -> str:
        """Where a mixed unit leaves its output, relative to its input and its device."""
        if unit.kind == "call":
            return self.facts.out_key.get(id(unit.cls), INPUT)
        bodies = list(unit.branches.values()) if unit.kind == "cond" else [unit.body]
        keys = {self._body_out_key(b) for b in bodies}
        return keys.pop() if len(keys) == 1 else "?"

    def _body_out_key(self, body: Body) -> str:
        if body.kind == "identity":
            return INPUT
        if body.kind == "class":
            return self.facts.out_key.get(id(body.cls), INPUT)
        key = INPUT
        for u in body.units:
            if self.facts.mixed_unit(u):
                inner = self._out_key(u)
                key = key if inner == INPUT else inner
            elif self.facts.stateful_unit(u):
                key = HOME
        return key


# ---- helpers -----------------------------------------------------------------------


_INPUT_ABOUT = {
    "image": "(C, H, W) of one example",
    "tokens": "(N, D) tokens of one example",
    "flat": "(F,) of one example",
    "ids": "(N,) token ids of one example",
}


def _input_facts(net) -> dict:
    """INPUT_SHAPE's comment and, for token ids, the vocabulary (the first input's)."""
    shape = next(iter(net.inputs.values())).out_shape
    kind = shape_kind(shape)
    return {"input_about": _INPUT_ABOUT[kind], "vocab": shape.vocab if kind == "ids" else None}


def _untied(node: Node) -> NetdslError:
    tie = node.attrs["tie"]
    return NetdslError(
        f"the torch backend cannot tie this fc to `{tie.name}`: the embedding and the fc "
        "must be modules of one class (`self.fc.weight = self.embedding.weight`)",
        node.span,
        hint="write the embedding and `fc ... tie=` in the same block, or both in the "
        "network, outside repeats and conditionals",
    )


def _safe_var(name: str) -> str:
    from .base import _var

    return _var(name) if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else "out"


def _device_order(key: str) -> tuple:
    if key.startswith("cuda:"):
        return (0, int(key.split(":")[1]))
    return (1, key)


def _indent(lines: list[str], levels: int) -> list[str]:
    pad = "    " * levels
    return [pad + line if line else "" for line in lines]


def _expression(prefix: str, expression: str, indent: int) -> list[str]:
    """`out = a + b`, wrapped in parentheses the way black does when it is too long."""
    pad = fmt.INDENT * indent
    one = f"{pad}{prefix}{expression}"
    if len(one) <= fmt.LINE:
        return [one]
    return [f"{pad}{prefix}(", f"{pad}{fmt.INDENT}{expression}", f"{pad})"]


def _list_extend(items: list[str], indent: int) -> list[str]:
    pad = fmt.INDENT * indent
    lines = [f"{pad}layers += ["]
    for item in items:
        first, *rest = item.split("\n")
        lines.append(f"{pad}    {first}" + ("," if not rest else ""))
        for i, r in enumerate(rest):
            lines.append(r + ("," if i == len(rest) - 1 else ""))
    lines.append(f"{pad}]")
    return lines


def _init_symbols(body: Body) -> set[str]:
    """The symbols the inits of a body's layers read."""
    out: set[str] = set()
    units = body.units if body.kind in ("single", "chain") else []
    for u in units:
        if u.kind == "module":
            out |= _init_symbols(u.body)
        elif u.kind == "layer":
            for v in u.node.attrs.values():
                if isinstance(v, Init):
                    out |= {s for _, a in v.args if isinstance(a, Num) for s in a.expr.symbols}
            for arg in initializers.INIT_ARGS:
                v = u.node.attrs.get(arg)
                if isinstance(v, Num):
                    out |= v.expr.symbols
    return out


def _body_symbols(body: Body) -> set[str]:
    from .base import _body_exprs

    out: set[str] = set()
    for e in _body_exprs(body):
        out |= e.symbols
    return out
