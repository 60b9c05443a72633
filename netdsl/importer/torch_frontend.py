"""The PyTorch front end of `netdsl import`: an nn.Module (or a torch.export program) to
graph.Imported.

A model is traced once with torch.fx, its torch.nn layers kept whole (leaves) and everything
else traced through, so functional code (`torch.flatten`, `+=`, `torch.cat`, `F.relu`,
`x.mean`) becomes ops too; fx records each node's module stack, which gives every layer the
module path (and class) that made it. A `.pt2` file (torch.export.save) carries the same
stack as metadata on its ATen graph. torch is imported by the functions, never by the module.
"""

from __future__ import annotations

import operator
import re

from ..errors import NetdslError
from .graph import Imported, Layer, Module
from .reference import parse, resolve, snake

# torch.nn classes netdsl has no layer for, and why (the message names the op and the path)
REASONS = {
    "RNN": "netdsl has no recurrent layers",
    "LSTM": "netdsl has no recurrent layers",
    "GRU": "netdsl has no recurrent layers",
    "Transformer": "netdsl has no encoder-decoder transformer layer",
    "TransformerEncoderLayer": "write it with attention, layernorm and fc",
    "Conv1d": "netdsl's convolutions are 2-D",
    "Conv3d": "netdsl's convolutions are 2-D",
    "BatchNorm1d": "netdsl's bn is 2-D (batch norm of a flat tensor is not in the language)",
}
CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")
TORCHVISION_DEFAULT = (3, 224, 224)
# torchvision.ops / model classes that are one netdsl layer each
LEAF_CLASSES = ("StochasticDepth", "Permute", "LayerNorm2d")
ATEN_ACTIVATIONS = {
    "relu": "relu",
    "hardtanh": "relu6",
    "silu": "silu",
    "sigmoid": "sigmoid",
    "hardswish": "hardswish",
    "hardsigmoid": "hardsigmoid",
    "gelu": "gelu",
    "tanh": "tanh",
}
SHAPE_ARITHMETIC = (
    operator.floordiv,
    operator.mul,
    operator.add,
    operator.sub,
    operator.truediv,
    operator.eq,
    operator.ne,
)


def read(source, inputs=None) -> Imported:
    """`source`: `pkg.mod:attr`, `pkg.mod:attr(args...)`, a `.pt2` path or an nn.Module.
    `inputs`: {name: shape} or a shape (C, H, W); default: the model's, else 3x224x224."""
    if isinstance(source, str) and source.endswith(".pt2"):
        return _read_exported(source, inputs)
    if isinstance(source, str):
        model, origin, name = _build(source)
    else:
        model, origin, name = source, type(source).__qualname__, _snake(type(source).__name__)
    shape, said = _input_shape(model, origin, inputs)
    imported = _trace(model, name, origin, shape)
    if said:
        imported.notes.append(said)
    return imported


# ---- the source ---------------------------------------------------------------------------------


def _build(reference: str):
    """`torchvision.models:resnet50` or `pkg.mod:Net(num_classes=10)` -> (module, origin, name)."""
    import torch

    ref = parse(
        reference,
        "a Python reference such as torchvision.models:resnet50, or a .pt2, .onnx, .keras "
        "or .h5 file",
    )
    target = resolve(ref)
    model = (
        target(*ref.args, **ref.kwargs)
        if callable(target) and not isinstance(target, torch.nn.Module)
        else target
    )
    if not isinstance(model, torch.nn.Module):
        raise ref.fail(f"it gives a {type(model).__name__}, not a torch.nn.Module")
    return model, reference, _snake(ref.names[-1])


def _snake(name: str) -> str:
    return snake(name) or "imported"


def _input_shape(model, origin: str, inputs):
    """(shape, how it was chosen, for the header) from --input or the model."""
    if isinstance(inputs, dict) and inputs:
        return tuple(next(iter(inputs.values()))), ""
    if inputs:
        return tuple(inputs), ""
    if type(model).__module__.startswith("torchvision."):
        return TORCHVISION_DEFAULT, "input 3x224x224: torchvision classifiers' default"
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            return (module.in_channels, 224, 224), (
                f"input {module.in_channels}x224x224: the first conv's channels at 224x224; "
                "--input sets another"
            )
        if isinstance(module, torch.nn.Linear):
            return (module.in_features,), f"input {module.in_features}: the first fc's features"
    raise NetdslError("cannot tell the model's input shape: give it with --input, e.g. 3x224x224")


# ---- tracing -----------------------------------------------------------------------------------


def _is_leaf_class(module) -> bool:
    import torch

    cls = type(module)
    if cls.__module__.startswith("torch.nn") and cls.__name__ not in CONTAINERS:
        return True
    return cls.__name__ in LEAF_CLASSES or isinstance(module, torch.nn.Identity)


def _trace(model, name: str, origin: str, shape: tuple) -> Imported:
    import torch
    from torch import fx
    from torch.fx.passes.shape_prop import ShapeProp

    class Tracer(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return _is_leaf_class(m)

    model = model.eval()
    tracer = Tracer()
    try:
        graph = tracer.trace(model)
    except Exception as e:  # fx raises whatever the model's Python does on a Proxy
        raise NetdslError(
            f"cannot import {origin}: torch.fx cannot trace its forward ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''})",
            hint="netdsl import traces the model symbolically; data-dependent control flow "
            "in forward() stops it",
        ) from None
    gm = fx.GraphModule(tracer.root, graph)
    example = torch.randn(1, *shape)
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(example)
    except Exception as e:
        cause = getattr(e, "__cause__", None) or e
        raise NetdslError(
            f"cannot import {origin}: it does not run on a 1x{'x'.join(map(str, shape))} "
            f"input ({type(cause).__name__}: {str(cause).splitlines()[0][:200]})",
            hint="give the input shape with --input CxHxW",
        ) from None
    return _Converter(model, name, origin, shape).run(gm)


def _shape(node) -> tuple | None:
    meta = node.meta.get("tensor_meta") if hasattr(node, "meta") else None
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _pair1(v):
    """An int for a square (h, w) pair, else the pair."""
    if isinstance(v, (tuple, list)):
        v = tuple(int(x) for x in v)
        return v[0] if len(set(v)) == 1 else v
    return int(v)


class _Converter:
    """fx nodes -> netdsl layers (one node may give none, one or two layers)."""

    def __init__(self, model, name, origin, shape) -> None:
        self.model = model
        self.modules = dict(model.named_modules())
        self.imported = Imported(name, origin, {"x": tuple(shape)})
        self.value: dict = {}  # fx node -> netdsl value name (or a Python value)
        self.names: set = {"x"}
        self.channels_last: set = set()  # fx nodes ConvNeXt holds as N, H, W, C

    def run(self, gm) -> Imported:
        for node in gm.graph.nodes:
            if node.op == "placeholder":
                if self.value:
                    raise NetdslError(
                        f"cannot import {self.imported.origin}: it takes several inputs"
                    )
                self.value[node] = "x"
            elif node.op == "output":
                out = node.args[0]
                if isinstance(out, (tuple, list)):
                    out = out[0]
                self.imported.outputs = [self._val(out)]
            elif node.op == "get_attr":
                self.value[node] = ("parameter", node.target)  # ConvNeXt's layer scale
            else:
                self._node(node)
        self._check_all_used(gm)
        for path, module in self.modules.items():
            if path:
                cls = type(module)
                key = tuple(path.split("."))
                self.imported.modules[key] = Module(key, f"{cls.__module__}.{cls.__qualname__}")
        return self.imported

    def _check_all_used(self, gm) -> None:
        """Weights of modules the eval forward never calls (GoogLeNet's and Inception's
        train-time aux heads) would not pair with the imported model's: say so."""
        called, whole = set(), set()  # modules entered; leaves called whole (all inside)
        for node in gm.graph.nodes:
            if node.op in ("call_module", "get_attr"):
                whole.add(str(node.target))
            for key, value in (node.meta.get("nn_module_stack") or {}).items():
                called.add(value[0] if isinstance(value, tuple) else key)
        called |= whole
        for path, module in self.modules.items():
            own = list(module.parameters(recurse=False)) + list(module.buffers(recurse=False))
            if not path or not own or path in called:
                continue
            if any(path.startswith(leaf + ".") for leaf in whole):
                continue
            parts = path.split(".")
            top = next(
                ".".join(parts[:i])
                for i in range(1, len(parts) + 1)
                if ".".join(parts[:i]) not in called
            )
            cls = type(self.modules[top])
            raise NetdslError(
                f"cannot import {cls.__module__}.{cls.__qualname__} at {top}: its forward "
                "does not run in eval mode (a train-time head?), so its weights would not "
                "pair with the imported model's",
                hint="build the model without it (torchvision: aux_logits=False)",
            )

    # -- helpers ------------------------------------------------------------------------------

    def _path(self, node, leaf: bool) -> tuple[str, ...]:
        stack = node.meta.get("nn_module_stack") or {}
        paths = [v[0] if isinstance(v, tuple) else k for k, v in stack.items()]
        path = paths[-1] if paths else ""
        if leaf and node.op == "call_module":
            path = path.rpartition(".")[0] if path == node.target else path
            if path == node.target:
                path = ""
        return tuple(p for p in path.split(".") if p) if path else ()

    def _val(self, arg):
        if hasattr(arg, "op"):
            v = self.value.get(arg)
            return v
        return arg

    def _emit(self, node, op: str, args: dict, inputs: list, source: str, suffix="") -> str:
        name = node.target if node.op == "call_module" else node.name
        name = f"{name}{suffix}"
        if name in self.names:  # a module called twice (torchvision's one `self.relu`)
            n = 2
            while f"{name}_{n}" in self.names:
                n += 1
            name = f"{name}_{n}"
        self.names.add(name)
        path = self._path(node, node.op == "call_module")
        self.imported.layers.append(Layer(name, op, args, inputs, path, source))
        self.value[node] = name
        return name

    def _where(self, node) -> str:
        if node.op == "call_module":
            return node.target
        return ".".join(self._path(node, False)) or "the model's forward"

    def _unsupported(self, node, what: str, why: str) -> NetdslError:
        reason = f": {why}" if why else ": netdsl has no such layer"
        return NetdslError(f"cannot import {what} at {self._where(node)}{reason}")

    def _alias(self, node, arg) -> None:
        self.value[node] = self._val(arg)

    # -- dispatch -------------------------------------------------------------------------------

    def _node(self, node) -> None:
        if node.op == "call_module":
            module = self.modules[node.target]
            self._module(node, module)
        elif node.op == "call_function":
            self._function(node, node.target)
        elif node.op == "call_method":
            self._method(node)

    def _input(self, node, i=0):
        arg = node.args[i] if len(node.args) > i else None
        v = self._val(arg)
        if not isinstance(v, str):
            if node.op == "call_module":
                cls = type(self.modules[node.target])
                what = f"{cls.__module__.split('.modules')[0]}.{cls.__name__}"
            else:
                what = f"'{getattr(node.target, '__name__', node.target)}'"
            read = f"the tensor attribute {v[1]}" if isinstance(v, tuple) else "a size or constant"
            raise self._unsupported(node, what, f"it reads {read}, not the model's data")
        return v

    def _permute(self, node, dims: list, source: str) -> None:
        """ConvNeXt's channels-last detour: (0, 2, 3, 1) there, (0, 3, 1, 2) back; the
        layers between act on the channels of each position (layernorm, pointwise_fc)."""
        source_node = node.args[0]
        if dims == [0, 2, 3, 1] and source_node not in self.channels_last:
            self._alias(node, source_node)
            self.channels_last.add(node)
        elif dims == [0, 3, 1, 2] and source_node in self.channels_last:
            self._alias(node, source_node)
        else:
            raise self._unsupported(node, f"a permute to {tuple(dims)}", "")

    def _module(self, node, m) -> None:
        self._module_layer(node, m)
        if node.args and node.args[0] in self.channels_last and type(m).__name__ != "Permute":
            self.channels_last.add(node)

    def _module_layer(self, node, m) -> None:  # noqa: C901 - one case per layer class
        import torch.nn as nn

        cls = type(m)
        source = f"{cls.__module__.split('.modules')[0]}.{cls.__name__} at {node.target}"
        x = self._input(node)
        in_shape = _shape(node.args[0])
        emit = lambda op, args=None: self._emit(node, op, args or {}, [x], source)  # noqa: E731
        if isinstance(m, nn.Conv2d):
            if m.padding_mode != "zeros":
                raise self._unsupported(
                    node,
                    f"torch.nn.Conv2d(padding_mode='{m.padding_mode}')",
                    "netdsl pads with zeros",
                )
            pad = m.padding
            if isinstance(pad, str):
                pad = "same" if pad == "same" else 0
            else:
                pad = _pair1(pad)
            args = {
                "k": _pair1(m.kernel_size),
                "s": _pair1(m.stride),
                "p": pad,
                "d": _pair1(m.dilation),
            }
            bias = m.bias is not None
            if m.groups > 1 and m.groups == m.in_channels and m.out_channels % m.in_channels == 0:
                emit("dwconv", {**args, "m": m.out_channels // m.in_channels, "bias": bias})
            else:
                emit("conv", {"c": m.out_channels, **args, "g": m.groups, "bias": bias})
        elif isinstance(m, nn.ConvTranspose2d):
            emit(
                "conv_transpose",
                {
                    "c": m.out_channels,
                    "k": _pair1(m.kernel_size),
                    "s": _pair1(m.stride),
                    "p": _pair1(m.padding),
                    "output_padding": _pair1(m.output_padding),
                    "g": m.groups,
                    "d": _pair1(m.dilation),
                    "bias": m.bias is not None,
                },
            )
        elif isinstance(m, nn.BatchNorm2d):
            if not m.affine or not m.track_running_stats or m.momentum is None:
                raise self._unsupported(
                    node,
                    "torch.nn.BatchNorm2d without affine or running statistics",
                    "netdsl's bn has both",
                )
            emit("bn", {"eps": m.eps, "momentum": m.momentum})
        elif isinstance(m, nn.Linear):
            if node.args[0] in self.channels_last:
                emit("pointwise_fc", {"n": m.out_features, "bias": m.bias is not None})
                return
            if in_shape is not None and len(in_shape) == 4:
                raise self._unsupported(
                    node, "torch.nn.Linear on an image", "netdsl's fc reads a flat tensor"
                )
            emit("fc", {"n": m.out_features, "bias": m.bias is not None})
        elif isinstance(
            m, (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh)
        ):
            emit(
                {
                    nn.ReLU: "relu",
                    nn.ReLU6: "relu6",
                    nn.SiLU: "silu",
                    nn.Hardswish: "hardswish",
                    nn.Hardsigmoid: "hardsigmoid",
                    nn.Sigmoid: "sigmoid",
                    nn.Tanh: "tanh",
                }[cls]
            )
        elif isinstance(m, nn.GELU):
            emit("gelu", {"approximate": True} if m.approximate == "tanh" else {})
        elif isinstance(m, nn.LeakyReLU):
            emit("leaky_relu", {"slope": m.negative_slope})
        elif isinstance(m, nn.ELU):
            emit("elu", {"alpha": m.alpha})
        elif isinstance(m, nn.Softmax):
            emit("softmax")
        elif isinstance(m, nn.MaxPool2d):
            if m.return_indices:
                raise self._unsupported(node, "torch.nn.MaxPool2d(return_indices=True)", "")
            k = _pair1(m.kernel_size)
            s = _pair1(m.stride if m.stride is not None else m.kernel_size)
            emit(
                "maxpool",
                {
                    "k": k,
                    "s": s,
                    "p": _pair1(m.padding),
                    "d": _pair1(m.dilation),
                    "ceil": bool(m.ceil_mode),
                },
            )
        elif isinstance(m, nn.AvgPool2d):
            k = _pair1(m.kernel_size)
            s = _pair1(m.stride if m.stride is not None else m.kernel_size)
            if m.divisor_override:
                raise self._unsupported(node, "torch.nn.AvgPool2d(divisor_override=...)", "")
            emit(
                "avgpool",
                {
                    "k": k,
                    "s": s,
                    "p": _pair1(m.padding),
                    "ceil": bool(m.ceil_mode),
                    "count_pad": bool(m.count_include_pad),
                },
            )
        elif isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            self._adaptive(
                node,
                x,
                m.output_size,
                "avg" if isinstance(m, nn.AdaptiveAvgPool2d) else "max",
                source,
                in_shape,
            )
        elif isinstance(m, nn.Dropout):
            emit("dropout", {"p": float(m.p)})
        elif isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise self._unsupported(
                    node,
                    f"torch.nn.Flatten({m.start_dim}, {m.end_dim})",
                    "netdsl's flatten keeps the batch alone",
                )
            self._flatten(node, x, source, in_shape)
        elif isinstance(m, nn.Identity):
            self._alias(node, node.args[0])
        elif cls.__name__ == "Permute":
            self._permute(node, list(m.dims), source)
        elif isinstance(m, nn.MultiheadAttention):
            if not m.batch_first or len({id(a) for a in node.args[:3]}) != 1:
                raise self._unsupported(
                    node,
                    "torch.nn.MultiheadAttention",
                    "netdsl's attention is batch-first self-attention",
                )
            emit(
                "attention",
                {
                    "heads": m.num_heads,
                    "bias": m.in_proj_bias is not None,
                    "dropout": float(m.dropout),
                },
            )
            self.value[node] = ("outputs", self.value[node])
        elif isinstance(m, nn.LayerNorm):
            emit("layernorm", {"eps": m.eps})
        elif isinstance(m, nn.GroupNorm):
            emit("groupnorm", {"g": m.num_groups, "eps": m.eps})
        elif isinstance(m, nn.LocalResponseNorm):
            emit("lrn", {"n": m.size, "alpha": m.alpha, "beta": m.beta, "k": m.k})
        elif isinstance(m, nn.ChannelShuffle):
            emit("shuffle", {"g": m.groups})
        elif isinstance(m, nn.PixelShuffle):
            emit("pixel_shuffle", {"r": m.upscale_factor})
        elif isinstance(m, nn.ZeroPad2d):
            emit("zeropad", {"p": tuple(m.padding)})
        elif cls.__name__ == "StochasticDepth":
            if m.mode != "row":
                raise self._unsupported(
                    node, "StochasticDepth(mode='batch')", "netdsl's drop_path drops per sample"
                )
            emit("drop_path", {"p": float(m.p)})
        else:
            qual = f"{cls.__module__.split('.modules')[0]}.{cls.__name__}"
            if qual.startswith("torch.nn"):
                qual = f"torch.nn.{cls.__name__}"
            raise self._unsupported(
                node, qual, REASONS.get(cls.__name__, "netdsl has no such layer")
            )

    def _adaptive(self, node, x, size, kind, source, in_shape) -> None:
        size = _pair1(
            size if not isinstance(size, (tuple, list)) or None not in size else in_shape[-2:]
        )
        if size == 1:
            self._emit(node, "gap" if kind == "avg" else "gmp", {}, [x], source)
        else:  # kept where it is the identity (VGG at 224x224): other inputs need it
            self._emit(node, f"adaptive_{kind}pool", {"size": size}, [x], source)

    def _flatten(self, node, x, source, in_shape) -> None:
        if in_shape is not None and len(in_shape) == 2:
            self._alias(node, node.args[0])
        else:
            self._emit(node, "flatten", {}, [x], source)

    # -- functions and methods ------------------------------------------------------------------

    def _function(self, node, fn) -> None:  # noqa: C901
        import torch
        import torch.nn.functional as F

        name = getattr(fn, "__name__", str(fn))
        source = f"{name} at {self._where(node)}"
        tensors = [a for a in node.args if hasattr(a, "op") and self._val(a) is not None]
        if fn in SHAPE_ARITHMETIC and not any(isinstance(self._val(a), str) for a in tensors):
            self.value[node] = None  # arithmetic on sizes (x.size() // groups)
        elif fn is torch._assert:
            self.value[node] = None  # a check of the input's size, nothing computed
        elif fn is torch.transpose and self._shuffle_step(node, "transpose"):
            pass
        elif fn in (operator.add, torch.add) and self._parameter(tensors) is not None:
            # ViT's `input + self.pos_embedding`: a learnt vector per position
            x = [a for a in tensors if isinstance(self._val(a), str)][0]
            self._emit(node, "pos_embed", {}, [self._val(x)], source)
        elif fn in (operator.add, operator.iadd, torch.add) and len(tensors) == 2:
            self._emit(node, "add", {}, [self._val(t) for t in node.args[:2]], source)
        elif fn in (operator.mul, torch.mul) and any(
            isinstance(self._val(a), tuple) and self._val(a)[0] == "parameter" for a in tensors
        ):
            x = [a for a in tensors if not isinstance(self._val(a), tuple)][0]
            self._emit(node, "layer_scale", {}, [self._val(x)], source)
        elif fn in (operator.mul, operator.imul, torch.mul) and len(tensors) == 2:
            self._emit(node, "mul", {}, [self._val(t) for t in node.args[:2]], source)
        elif fn in (operator.mul, operator.imul, torch.mul) and len(tensors) == 1:
            factor = [a for a in node.args if not hasattr(a, "op")][0]
            self._emit(node, "scale", {"s": float(factor)}, [self._val(tensors[0])], source)
        elif fn is torch.cat and self._parameter(node.args[0]) is not None:
            # ViT's `torch.cat([class_token.expand(n, -1, -1), x], dim=1)`
            parts = [self._val(a) for a in node.args[0]]
            if len(parts) != 2 or not isinstance(parts[0], tuple) or not isinstance(parts[1], str):
                raise self._unsupported(node, "torch.cat of a parameter and tokens", "")
            self._emit(node, "cls_token", {}, [parts[1]], source)
        elif fn is torch.cat:
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
            if dim != 1:
                raise self._unsupported(
                    node, f"torch.cat(dim={dim})", "netdsl concatenates channels"
                )
            self._emit(node, "concat", {}, [self._val(t) for t in node.args[0]], source)
        elif fn is torch.flatten:
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            if start != 1:
                raise self._unsupported(node, f"torch.flatten(start_dim={start})", "")
            self._flatten(node, self._input(node), source, _shape(node.args[0]))
        elif fn in (
            F.relu,
            torch.relu,
            F.relu6,
            F.silu,
            F.hardswish,
            F.hardsigmoid,
            torch.sigmoid,
            F.sigmoid,
            torch.tanh,
            F.gelu,
        ):
            op = {
                "relu": "relu",
                "relu6": "relu6",
                "silu": "silu",
                "hardswish": "hardswish",
                "hardsigmoid": "hardsigmoid",
                "sigmoid": "sigmoid",
                "tanh": "tanh",
                "gelu": "gelu",
            }[name]
            self._emit(node, op, {}, [self._input(node)], source)
        elif fn is F.hardtanh and node.args[1:3] == (0.0, 6.0):
            self._emit(node, "relu6", {}, [self._input(node)], source)
        elif fn in (F.adaptive_avg_pool2d, F.adaptive_max_pool2d):
            size = node.args[1] if len(node.args) > 1 else node.kwargs["output_size"]
            self._adaptive(
                node,
                self._input(node),
                size,
                "avg" if "avg" in name else "max",
                source,
                _shape(node.args[0]),
            )
        elif fn in (F.avg_pool2d, F.max_pool2d, F.max_pool2d_with_indices):
            self._pool_function(node, "avg" if "avg" in name else "max", source)
        elif fn is F.dropout:
            p = node.args[1] if len(node.args) > 1 else node.kwargs.get("p", 0.5)
            self._emit(node, "dropout", {"p": float(p)}, [self._input(node)], source)
        elif fn is operator.getitem:
            self._getitem(node)
        elif fn is getattr:
            self.value[node] = None  # a shape attribute, read by a reshape
        else:
            raise self._unsupported(
                node,
                f"the function {getattr(fn, '__module__', '') or ''}.{name}".replace("..", "."),
                "",
            )

    def _shuffle_step(self, node, what: str) -> bool:
        """ShuffleNet's channel shuffle, `view(b, g, c // g, h, w)`, `transpose(1, 2)`,
        `view(b, -1, h, w)`, is `shuffle g`; True when `node` is one of those steps."""
        base = self._val(node.args[0])
        out_shape = _shape(node)
        if what in ("view", "reshape") and isinstance(base, str):
            if out_shape is not None and len(out_shape) == 5:
                self.value[node] = ("grouped", base, out_shape[1])
                return True
        elif what == "transpose" and isinstance(base, tuple) and base[0] == "grouped":
            if sorted(d % 5 for d in node.args[1:3]) == [1, 2]:
                self.value[node] = ("shuffled", base[1], base[2])
                return True
        elif what in ("view", "reshape") and isinstance(base, tuple) and base[0] == "shuffled":
            if out_shape is not None and len(out_shape) == 4:
                source = f"channel shuffle at {self._where(node)}"
                self._emit(node, "shuffle", {"g": base[2]}, [base[1]], source)
                return True
        return False

    def _pool_function(self, node, kind: str, source: str) -> None:
        names = ["input", "kernel_size", "stride", "padding"]
        names += ["ceil_mode", "count_include_pad"] if kind == "avg" else ["dilation", "ceil_mode"]
        given = dict(zip(names, node.args))
        given.update(node.kwargs)
        k = _pair1(given["kernel_size"])
        stride = given.get("stride")
        args = {"k": k, "s": _pair1(stride) if stride not in (None, [], ()) else k}
        args["p"] = _pair1(given.get("padding", 0))
        args["ceil"] = bool(given.get("ceil_mode", False))
        if kind == "avg":
            args["count_pad"] = bool(given.get("count_include_pad", True))
        else:
            args["d"] = _pair1(given.get("dilation", 1))
        self._emit(node, f"{kind}pool", args, [self._input(node)], source)

    def _method(self, node) -> None:
        method = node.target
        source = f"Tensor.{method} at {self._where(node)}"
        in_shape = _shape(node.args[0])
        out_shape = _shape(node)
        if method in ("relu", "relu_", "sigmoid", "sigmoid_", "tanh"):
            self._emit(node, method.rstrip("_"), {}, [self._input(node)], source)
        elif method in ("contiguous", "clone") and isinstance(self._val(node.args[0]), tuple):
            self.value[node] = self._val(node.args[0])
        elif method in ("contiguous", "clone"):
            self._alias(node, node.args[0])
        elif method in ("size", "dim"):
            self.value[node] = None
        elif method in ("view", "reshape", "transpose") and self._shuffle_step(node, method):
            pass
        elif method == "expand" and isinstance(self._val(node.args[0]), tuple):
            self.value[node] = self._val(node.args[0])  # a parameter, broadcast over the batch
        elif (
            method in ("view", "reshape")
            and in_shape is not None
            and out_shape is not None
            and len(in_shape) == 4
            and len(out_shape) == 3
            and out_shape[1:] == (in_shape[1], in_shape[2] * in_shape[3])
        ):
            self.value[node] = ("positions", self._input(node))  # C x H*W: tokens, transposed
        elif method == "permute" and isinstance(self._val(node.args[0]), tuple):
            base = self._val(node.args[0])
            dims = [d for d in node.args[1:]] if len(node.args) > 2 else list(node.args[1])
            if base[0] != "positions" or dims != [0, 2, 1]:
                raise self._unsupported(node, f"a permute to {tuple(dims)}", "")
            self._emit(node, "tokens", {}, [base[1]], source)
        elif (
            method in ("view", "reshape", "flatten")
            and out_shape is not None
            and len(out_shape) == 2
        ):
            self._flatten(node, self._input(node), source, in_shape)
        elif method == "mean" and in_shape is not None and len(in_shape) == 4:
            dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
            dims = tuple(d % 4 for d in (dims if isinstance(dims, (tuple, list)) else [dims]))
            keep = node.kwargs.get("keepdim", node.args[2] if len(node.args) > 2 else False)
            if sorted(dims) != [2, 3]:
                raise self._unsupported(node, f"Tensor.mean(dim={dims})", "")
            name = self._emit(node, "gap", {}, [self._input(node)], source)
            if not keep:
                self.imported.layers.append(
                    Layer(f"{name}_flat", "flatten", {}, [name], self._path(node, False), source)
                )
                self.value[node] = f"{name}_flat"
        elif method in ("add", "add_") and sum(hasattr(a, "op") for a in node.args) == 2:
            self._emit(node, "add", {}, [self._val(a) for a in node.args[:2]], source)
        elif method in ("mul", "mul_") and sum(hasattr(a, "op") for a in node.args) == 2:
            self._emit(node, "mul", {}, [self._val(a) for a in node.args[:2]], source)
        elif method == "chunk":
            n = node.args[1]
            dim = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0)
            if dim != 1:
                raise self._unsupported(node, f"Tensor.chunk(dim={dim})", "")
            self.value[node] = ("chunk", self._input(node), n)
        elif method in ("view", "reshape") and out_shape is not None:
            shape = "x".join(str(d) for d in out_shape[1:])
            raise self._unsupported(
                node,
                f"Tensor.{method} to {shape}",
                "netdsl reshapes only by flatten (and shuffle's view-transpose-view)",
            )
        else:
            raise self._unsupported(node, f"the method Tensor.{method}", "")

    def _parameter(self, args):
        """The parameter among `args` (fx nodes), if one is."""
        for a in args:
            v = self._val(a) if hasattr(a, "op") else None
            if isinstance(v, tuple) and v[0] == "parameter":
                return v
        return None

    def _getitem(self, node) -> None:
        base = self._val(node.args[0])
        index = node.args[1]
        if isinstance(base, tuple) and base and base[0] == "outputs":
            self.value[node] = base[1] if index == 0 else None  # attention's (output, weights)
        elif isinstance(base, str) and index == (slice(None), 0):
            # ViT's `x[:, 0]`: the class token's features
            self._emit(node, "token_pool", {}, [base], f"x[:, 0] at {self._where(node)}")
        elif isinstance(base, tuple) and base and base[0] == "chunk":
            _, x, n = base
            self._emit(
                node, "chunk", {"n": n, "i": node.args[1]}, [x], f"chunk at {self._where(node)}"
            )
        elif base is None:
            self.value[node] = None
        else:
            raise self._unsupported(node, "indexing a tensor", "")


# ---- torch.export programs ----------------------------------------------------------------------


def _read_exported(path: str, inputs) -> Imported:
    import torch

    try:
        program = torch.export.load(path)
    except Exception as e:
        raise NetdslError(f"cannot read {path} as a torch.export program: {e}") from None
    return _ExportConverter(program, path, inputs).run()


class _ExportConverter:
    """ATen nodes of an exported program -> netdsl layers, paths from nn_module_stack."""

    def __init__(self, program, path, inputs) -> None:
        self.program = program
        sig = program.graph_signature
        self.params = {**sig.inputs_to_parameters, **sig.inputs_to_buffers}
        self.state = program.state_dict
        user = [s for s in sig.user_inputs]
        if len(user) != 1:
            raise NetdslError(f"cannot import {path}: it takes {len(user)} inputs, netdsl one")
        self.user = user[0]
        stem = re.sub(r"\W", "_", path.rsplit("/", 1)[-1].removesuffix(".pt2"))
        self.imported = Imported(stem or "imported", path, {})
        self.value: dict = {}
        self.kinds: dict = {}
        self.inputs = inputs

    def _path(self, node) -> tuple[str, ...]:
        stack = node.meta.get("nn_module_stack") or {}
        path = ""
        for value in stack.values():
            path, kind = value[0], value[1]
            key = tuple(p for p in _clean(path).split(".") if p)
            if key:
                self.kinds.setdefault(
                    key, kind if isinstance(kind, str) else f"{kind.__module__}.{kind.__qualname__}"
                )
        return tuple(p for p in _clean(path).split(".") if p)

    def _param_shape(self, node):
        name = self.params.get(node.name)
        t = self.state.get(name) if name else None
        return None if t is None else tuple(t.shape)

    def _emit(self, node, op, args, inputs, path=None):
        path = self._path(node) if path is None else path
        name = node.name
        self.imported.layers.append(
            Layer(name, op, args, inputs, path, f"{node.target} at {'.'.join(path)}")
        )
        self.value[node] = name

    def run(self) -> Imported:  # noqa: C901
        import torch

        aten = torch.ops.aten
        skip_leaf = {}
        for node in self.program.graph.nodes:
            if node.op == "placeholder":
                if node.name == self.user:
                    shape = tuple(node.meta["val"].shape[1:])
                    self.imported.inputs = {"x": tuple(self.inputs) if self.inputs else shape}
                    self.value[node] = "x"
                continue
            if node.op == "output":
                self.imported.outputs = [self.value.get(node.args[0][0])]
                continue
            if node.op != "call_function":
                continue
            t = node.target
            args = node.args
            v = lambda a: self.value.get(a) if hasattr(a, "op") else a  # noqa: E731
            full = self._path(node)
            leaf_path = full[:-1] if full else full  # the module that owns the layer
            out_shape = (
                tuple(node.meta["val"].shape) if hasattr(node.meta.get("val"), "shape") else None
            )
            in_shape = (
                tuple(args[0].meta["val"].shape)
                if hasattr(args[0], "meta") and hasattr(args[0].meta.get("val"), "shape")
                else None
            )
            if t in (aten.conv2d.default, aten.convolution.default):
                w = self._param_shape(args[1])
                stride, pad, dil = list(args[3:6]) + [[1, 1], [0, 0], [1, 1]][len(args[3:6]) :]
                groups = (
                    args[6]
                    if t is aten.conv2d.default and len(args) > 6
                    else (args[8] if len(args) > 8 else 1)
                )
                bias = len(args) > 2 and args[2] is not None
                kargs = {
                    "k": _pair1(w[2:]),
                    "s": _pair1(stride),
                    "p": _pair1(pad),
                    "d": _pair1(dil),
                }
                cin = in_shape[1]
                if groups > 1 and groups == cin and w[0] % cin == 0:
                    self._emit(
                        node,
                        "dwconv",
                        {**kargs, "m": w[0] // cin, "bias": bias},
                        [v(args[0])],
                        leaf_path,
                    )
                else:
                    self._emit(
                        node,
                        "conv",
                        {"c": w[0], **kargs, "g": groups, "bias": bias},
                        [v(args[0])],
                        leaf_path,
                    )
            elif t in (aten._native_batch_norm_legit_no_training.default, aten.batch_norm.default):
                eps = args[6] if t is aten._native_batch_norm_legit_no_training.default else args[7]
                mom = args[5] if t is aten._native_batch_norm_legit_no_training.default else args[6]
                self._emit(node, "bn", {"eps": eps, "momentum": mom}, [v(args[0])], leaf_path)
            elif t is operator.getitem and node.args[0] in self.value and node.args[1] == 0:
                self.value[node] = self.value[node.args[0]]
            elif str(t).split(".")[1].rstrip("_") in ATEN_ACTIVATIONS and (
                not str(t).startswith("aten.hardtanh") or tuple(args[1:3]) == (0.0, 6.0)
            ):
                op = ATEN_ACTIVATIONS[str(t).split(".")[1].rstrip("_")]
                path = leaf_path if self._is_leaf(full) else full
                self._emit(node, op, {}, [v(args[0])], path)
            elif t in (aten.max_pool2d.default, aten.max_pool2d_with_indices.default):
                k = _pair1(args[1])
                s = _pair1(args[2]) if len(args) > 2 and args[2] else k
                p = _pair1(args[3]) if len(args) > 3 else 0
                d = _pair1(args[4]) if len(args) > 4 else 1
                ceil = bool(args[5]) if len(args) > 5 else False
                self._emit(
                    node,
                    "maxpool",
                    {"k": k, "s": s, "p": p, "d": d, "ceil": ceil},
                    [v(args[0])],
                    leaf_path,
                )
            elif t is aten.avg_pool2d.default:
                k = _pair1(args[1])
                s = _pair1(args[2]) if len(args) > 2 and args[2] else k
                p = _pair1(args[3]) if len(args) > 3 else 0
                self._emit(
                    node,
                    "avgpool",
                    {
                        "k": k,
                        "s": s,
                        "p": p,
                        "ceil": bool(args[4]) if len(args) > 4 else False,
                        "count_pad": bool(args[5]) if len(args) > 5 else True,
                    },
                    [v(args[0])],
                    leaf_path,
                )
            elif t in (aten.adaptive_avg_pool2d.default, aten.mean.dim):
                if out_shape is not None and out_shape[-2:] == tuple(in_shape[-2:]):
                    self.value[node] = v(args[0])
                elif t is aten.mean.dim or _pair1(args[1]) == 1:
                    self._emit(
                        node, "gap", {}, [v(args[0])], leaf_path if self._is_leaf(full) else full
                    )
                    if out_shape is not None and len(out_shape) == 2:
                        gap = self.value[node]
                        self.imported.layers.append(
                            Layer(gap + "_flat", "flatten", {}, [gap], full)
                        )
                        self.value[node] = gap + "_flat"
                else:
                    self._emit(
                        node, "adaptive_avgpool", {"size": _pair1(args[1])}, [v(args[0])], leaf_path
                    )
            elif t in (aten.add.Tensor, aten.add_.Tensor) and all(
                hasattr(a, "op") for a in args[:2]
            ):
                self._emit(node, "add", {}, [v(args[0]), v(args[1])], full)
            elif t in (aten.mul.Tensor,) and all(hasattr(a, "op") for a in args[:2]):
                self._emit(node, "mul", {}, [v(args[0]), v(args[1])], full)
            elif t is aten.cat.default:
                self._emit(node, "concat", {}, [v(a) for a in args[0]], full)
            elif t in (aten.flatten.using_ints, aten.view.default, aten.reshape.default):
                if in_shape is not None and len(in_shape) == 2:
                    self.value[node] = v(args[0])
                else:
                    self._emit(
                        node,
                        "flatten",
                        {},
                        [v(args[0])],
                        leaf_path if self._is_leaf(full) else full,
                    )
            elif t in (aten.linear.default,):
                w = self._param_shape(args[1])
                self._emit(
                    node,
                    "fc",
                    {"n": w[0], "bias": len(args) > 2 and args[2] is not None},
                    [v(args[0])],
                    leaf_path,
                )
            elif t in (
                aten.dropout.default,
                aten.dropout_.default,
                aten.clone.default,
                aten.detach.default,
                aten.alias.default,
            ):
                if t in (aten.dropout.default, aten.dropout_.default):
                    self._emit(node, "dropout", {"p": float(args[1])}, [v(args[0])], leaf_path)
                else:
                    self.value[node] = v(args[0])
            else:
                where = ".".join(full) or "the model's forward"
                raise NetdslError(
                    f"cannot import the ATen op {t} at {where}: netdsl has no such layer"
                )
        for key, kind in self.kinds.items():
            self.imported.modules[key] = Module(key, kind)
        # layers' owners: drop leaf modules (a Conv2d's own path) from the module table
        owners = {layer.path for layer in self.imported.layers}
        self.imported.modules = {
            k: m for k, m in self.imported.modules.items() if any(o[: len(k)] == k for o in owners)
        }
        del skip_leaf
        return self.imported

    def _is_leaf(self, path) -> bool:
        kind = self.kinds.get(path, "")
        return (
            bool(path)
            and kind.startswith("torch.nn.modules")
            and not any(kind.endswith(c) for c in CONTAINERS)
        )


def _clean(path: str) -> str:
    """torch.export writes `L['self'].layer1[0]` or `layer1.0`: the dotted form."""
    path = re.sub(r"^L\['self'\]\.?", "", path)
    path = re.sub(r"\[(\d+)\]", r".\1", path)
    path = re.sub(r"\['([^']*)'\]", r".\1", path)
    return path.strip(".")
