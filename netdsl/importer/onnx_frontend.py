"""The ONNX front end of `netdsl import`: an .onnx file to graph.Imported.

Each ONNX node that computes on the data becomes a netdsl op, its numbers read from the
node's attributes and its initializers' shapes (a Conv's weight gives the channels and the
kernel, a Gemm's the features). Nodes that only compute shapes (Shape, Gather, Concat of
sizes, Constant) are left out. Scopes come from what the exporter kept:

* torch.onnx.export (dynamo, and `netdsl export`) records each node's module scopes and
  their classes as metadata (`pkg.torch.onnx.name_scopes`, `...class_hierarchy`): the
  innermost torch.nn layer names the netdsl layer, the modules above it are its path,
  and their classes are the modules' kinds;
* the TorchScript exporter names nodes `/layer1/layer1.0/conv1/Conv`: the scopes are the
  path, and a scope that holds one node alone is that node's layer.

An exporter that folds each BatchNorm into the convolution before it (onnxscript's
FuseBatchNormIntoConv, which `netdsl export` applies) leaves the BatchNorm's scope and
arguments in the fused node's metadata: the import writes the convolution (without bias,
named after its weight) and the BatchNorm back. A Flatten (or Reshape to N x C) of a
C x 1 x 1 tensor read by a fully connected layer alone is left out, as the .net language
writes `gap + fc` (fc reads C x 1 x 1 itself).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from ..errors import NetdslError
from .graph import Imported, Layer, Module
from .reference import snake

SHAPE_OPS = {"Shape", "Size", "Constant", "ConstantOfShape"}  # never data
ACTIVATIONS = {
    "Relu": "relu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "HardSwish": "hardswish",
    "Softplus": "softplus",
}
FUSED_BN = "FuseBatchNormIntoConv"
GENERIC_GRAPH_NAMES = {"main_graph", "torch_jit", "torch-jit-export", "tf2onnx", ""}


def read(path, inputs=None) -> Imported:
    """`path`: an .onnx file. `inputs`: a shape (C, H, W) or {name: shape} for an input
    whose size the file leaves open."""
    try:
        import onnx
    except ImportError:
        raise NetdslError(
            "importing an ONNX file needs the onnx package: pip install onnx"
        ) from None
    path = Path(path)
    try:
        model = onnx.load(str(path))
    except FileNotFoundError:
        raise NetdslError(f"cannot import {path}: no such file") from None
    except Exception as e:  # noqa: BLE001 - protobuf's errors have no common base
        raise NetdslError(f"cannot import {path}: not an ONNX model ({e})") from None
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001, S110 - shapes the file already has are enough
        pass
    return _Reader(model, path, inputs).run()


def _attrs(node) -> dict:
    from onnx import helper

    values = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        values[a.name] = v.decode() if isinstance(v, bytes) else v
    return values


def _meta(node) -> dict:
    return {p.key: p.value for p in node.metadata_props}


def _float(v) -> float:
    """A float32 attribute as the number it was written as (1e-05, not 9.99999974e-06)."""
    import numpy as np

    return float(str(np.float32(v)))


def _one(values, what: str):
    """A size that is the same in every direction as one number, else a tuple."""
    values = tuple(int(v) for v in values)
    return values[0] if len(set(values)) == 1 else values


class _Reader:
    def __init__(self, model, path: Path, inputs) -> None:
        import numpy as np
        from onnx import numpy_helper

        self.model, self.graph, self.path = model, model.graph, path
        self.np = np
        self.inits = {i.name: i for i in self.graph.initializer}
        self.constants: dict[str, object] = {}  # Constant nodes' values (small tensors)
        for node in self.graph.node:
            if node.op_type == "Constant" and node.attribute:
                attr = node.attribute[0]  # value, value_ints, value_float, ...
                value = _attrs(node)[attr.name]
                if attr.name == "value":
                    value = numpy_helper.to_array(attr.t)
                self.constants[node.output[0]] = np.asarray(value)
        self.shapes = {}
        for info in [*self.graph.value_info, *self.graph.input, *self.graph.output]:
            dims = info.type.tensor_type.shape.dim
            self.shapes[info.name] = tuple(
                d.dim_value if d.HasField("dim_value") else None for d in dims
            )
        self.readers: dict[str, list] = {}
        for node in self.graph.node:
            for v in node.input:
                self.readers.setdefault(v, []).append(node)
        meta = {p.key: p.value for p in model.metadata_props}
        graph_name = "" if self.graph.name in GENERIC_GRAPH_NAMES else self.graph.name
        self.name = _snake(meta.get("netdsl.network") or graph_name or path.stem)
        self.imported = Imported(self.name, str(path), {})
        self.value: dict[str, str] = {}  # ONNX value -> netdsl layer (or input) name
        self.names: set[str] = set()
        self._inputs(inputs)

    # -- inputs and scopes -------------------------------------------------------------------

    def _inputs(self, given) -> None:
        data = [i for i in self.graph.input if i.name not in self.inits]
        if len(data) != 1:
            raise NetdslError(f"cannot import {self.path}: it takes {len(data)} inputs, not one")
        name = data[0].name
        shape = self.shapes.get(name, ())[1:]
        if isinstance(given, dict):
            given = next(iter(given.values()), None)
        if given is not None:
            shape = tuple(given)
        elif not shape or None in shape:
            raise NetdslError(
                f"cannot import {self.path}: its input '{name}' has no fixed size "
                f"({'x'.join(str(d or '?') for d in shape)}); give one with --input, e.g. --input 3x224x224"
            )
        self.imported.inputs["x"] = tuple(shape)
        self.value[name] = "x"
        self.input_shape = tuple(shape)

    def _scopes(self, node) -> tuple[list[str], list[str | None]]:
        """The node's module scopes, outermost first ("" for the model), and their classes."""
        meta = _meta(node)
        scopes = meta.get("pkg.torch.onnx.name_scopes")
        if scopes:
            names = ast.literal_eval(scopes)[:-1]
            classes = ast.literal_eval(meta.get("pkg.torch.onnx.class_hierarchy", "[]"))[:-1]
            if len(classes) != len(names):
                classes = [None] * len(names)
            return names, classes
        # TorchScript: /layer1/layer1.0/conv1/Conv (older versions: /layer1/0/conv1/Conv)
        full, prefix = [""], ""
        for part in [p for p in node.name.split("/") if p][:-1]:
            prefix = part if not prefix or part.startswith(prefix + ".") else f"{prefix}.{part}"
            full.append(prefix)
        return full, [None] * len(full)

    # -- the walk ----------------------------------------------------------------------------

    def run(self) -> Imported:
        data = set(self.value)
        nodes = []
        for node in self.graph.node:
            # CastLike's second input only lends its type
            read = node.input[:1] if node.op_type == "CastLike" else node.input
            if node.op_type not in SHAPE_OPS and any(v in data for v in read):
                data.update(node.output)
                nodes.append(node)
        self.data = data
        counts: dict[str, int] = {}
        self.parents: set[str] = set()  # scopes with scopes inside
        for node in nodes:
            scopes, _ = self._scopes(node)
            counts[scopes[-1]] = counts.get(scopes[-1], 0) + 1
            self.parents.update(scopes[:-1])
        self.counts = counts
        self.skip: set[str] = set()
        for node in nodes:
            if node.name in self.skip:
                continue
            self._node(node)
        self.imported.outputs = [self.value[o.name] for o in self.graph.output[:1]]
        return self.imported

    def _place(self, node) -> tuple[str, tuple[str, ...]]:
        """The layer's name and path: the innermost scope, when it is a torch.nn layer (its
        class says so, or it holds this node alone); else the node's own name in it."""
        scopes, classes = self._scopes(node)
        for scope, cls in zip(scopes[1:], classes[1:]):
            key = tuple(scope.split("."))
            if key not in self.imported.modules:
                self.imported.modules[key] = Module(key, cls)
        inner, cls = scopes[-1], classes[-1]
        leaf = (cls or "").startswith("torch.nn.modules.") and ".container." not in (cls or "")
        alone = self.counts.get(inner) == 1 and inner not in self.parents
        if inner and (leaf or (cls is None and alone)):
            path = tuple(inner.split("."))
            self.imported.modules.pop(path, None)  # a layer, not a module of layers
            return inner, path[:-1]
        own = node.name.rsplit("/", 1)[-1] or node.op_type
        if ast.literal_eval(_meta(node).get("pkg.torch.onnx.name_scopes", "['']"))[-1:] != [""]:
            own = ast.literal_eval(_meta(node)["pkg.torch.onnx.name_scopes"])[-1]
        own = re.sub(r"\W", "_", own)
        return (f"{inner}.{own}" if inner else own), tuple(inner.split(".")) if inner else ()

    def _emit(self, node, op: str, args: dict, inputs: list[str], place=None, output=None) -> str:
        name, path = place or self._place(node)
        if name in self.names:
            n = 2
            while f"{name}_{n}" in self.names:
                n += 1
            name = f"{name}_{n}"
        self.names.add(name)
        source = f"ONNX {node.op_type} node '{node.name}'"
        self.imported.layers.append(Layer(name, op, args, inputs, path, source))
        self.value[output or node.output[0]] = name
        return name

    def _unsupported(self, node, why: str = "netdsl has no such layer") -> NetdslError:
        return NetdslError(
            f"cannot import ONNX {node.op_type} node '{node.name}' from {self.path}: {why}"
        )

    def _x(self, node, i: int = 0) -> str:
        v = node.input[i]
        if v not in self.value:
            raise self._unsupported(node, f"its input '{v}' is not computed from the model's input")
        return self.value[v]

    def _const(self, name: str):
        from onnx import numpy_helper

        if name in self.inits:
            return numpy_helper.to_array(self.inits[name])
        return self.constants.get(name)

    def _shape(self, value: str):
        return self.shapes.get(value)

    # -- one node ----------------------------------------------------------------------------

    def _node(self, node) -> None:  # noqa: C901 - one case per ONNX op
        op, a = node.op_type, _attrs(node)
        data_inputs = [v for v in node.input if v in self.data]
        if op == "Conv":
            self._conv(node, a)
        elif op == "BatchNormalization":
            self._emit(
                node,
                "bn",
                {"eps": _float(a.get("epsilon", 1e-5)), "momentum": _momentum(a)},
                [self._x(node)],
            )
        elif op in ACTIVATIONS:
            self._emit(node, ACTIVATIONS[op], {}, [self._x(node)])
        elif op == "Clip":
            low, high = (self._const(v) if v else None for v in [*node.input[1:3], "", ""][:2])
            low = a.get("min", low)
            high = a.get("max", high)
            if low is None or high is None or float(low) != 0.0 or float(high) != 6.0:
                raise self._unsupported(node, "only Clip(0, 6) (relu6) has a netdsl layer")
            self._emit(node, "relu6", {}, [self._x(node)])
        elif op == "HardSigmoid":
            if abs(a.get("alpha", 0.2) - 1 / 6) > 1e-6 or abs(a.get("beta", 0.5) - 0.5) > 1e-6:
                raise self._unsupported(
                    node, "only PyTorch's hardsigmoid (alpha 1/6) has a netdsl layer"
                )
            self._emit(node, "hardsigmoid", {}, [self._x(node)])
        elif op == "LeakyRelu":
            self._emit(node, "leaky_relu", {"slope": _float(a.get("alpha", 0.01))}, [self._x(node)])
        elif op == "Elu":
            self._emit(node, "elu", {"alpha": _float(a.get("alpha", 1.0))}, [self._x(node)])
        elif op == "Softmax":
            self._emit(node, "softmax", {}, [self._x(node)])
        elif op in ("MaxPool", "AveragePool"):
            self._pool(node, a)
        elif op in ("GlobalAveragePool", "GlobalMaxPool"):
            self._emit(node, "gap" if op == "GlobalAveragePool" else "gmp", {}, [self._x(node)])
        elif op == "ReduceMean":
            self._reduce_mean(node, a)
        elif op in ("Flatten", "Reshape"):
            self._flatten(node, a)
        elif op in ("Gemm", "MatMul"):
            self._linear(node, a)
        elif op in ("Add", "Mul", "Sum") and len(data_inputs) >= 2:
            merge = "mul" if op == "Mul" else "add"
            self._emit(node, merge, {}, [self._x(node, i) for i in range(len(node.input))])
        elif op == "Mul" and len(data_inputs) == 1:
            factor = self._const(next(v for v in node.input if v not in self.data))
            if factor is None or factor.size != 1:
                raise self._unsupported(
                    node, "a product with a tensor of weights has no netdsl layer"
                )
            self._emit(
                node, "scale", {"s": _float(factor.reshape(()))}, [self.value[data_inputs[0]]]
            )
        elif op == "Concat":
            if a.get("axis") not in (1, -3) or len(data_inputs) != len(node.input):
                raise self._unsupported(
                    node, f"netdsl concatenates channels (axis 1), not axis {a.get('axis')}"
                )
            self._emit(node, "concat", {}, [self._x(node, i) for i in range(len(node.input))])
        elif op == "Dropout":
            ratio = self._const(node.input[1]) if len(node.input) > 1 and node.input[1] else None
            p = float(ratio) if ratio is not None else a.get("ratio", 0.5)
            self._emit(node, "dropout", {"p": _float(p)}, [self._x(node)])
        elif op in ("Identity", "Cast", "CastLike"):
            self.value[node.output[0]] = self._x(node)
        elif op == "Pad":
            self._pad(node, a)
        else:
            raise self._unsupported(node)

    def _conv(self, node, a) -> None:
        weight = self.inits.get(node.input[1])
        if weight is None:
            raise self._unsupported(node, "its weight is not an initializer")
        out_c, _, kh, kw = weight.dims
        groups = a.get("group", 1)
        args = {
            "k": _one(a.get("kernel_shape", (kh, kw)), "k"),
            "s": _one(a.get("strides", (1, 1)), "s"),
        }
        args["p"] = self._pads(node, a)
        args["d"] = _one(a.get("dilations", (1, 1)), "d")
        in_c = (self._shape(node.input[0]) or (None, None))[1]
        # a bias the file holds; one computed from constants is an exporter's stand-in for
        # none (zeros expanded to the channels: torch.onnx.export(optimize=False))
        bias = len(node.input) > 2 and node.input[2] in self.inits
        fused = FUSED_BN in _meta(node).get("pkg.onnxscript.rewriter.rule_name", "")
        weight_name = node.input[1]
        conv_place = None
        if fused or weight_name.endswith(".weight"):
            layer = weight_name[: -len(".weight")] if weight_name.endswith(".weight") else None
            if layer:
                conv_place = (layer, tuple(layer.split("."))[:-1])
        if fused:
            bias = False  # the BatchNorm's shift became the bias
        output = node.output[0]
        x = self._x(node)
        target = f"{output}#conv" if fused else output
        if groups > 1 and in_c is not None and groups == in_c and out_c % in_c == 0:
            conv = {**args, "m": out_c // in_c, "bias": bias}
            self._emit(node, "dwconv", conv, [x], conv_place, target)
        else:
            conv = {"c": int(out_c), **args, "g": int(groups), "bias": bias}
            self._emit(node, "conv", conv, [x], conv_place, target)
        if fused:
            momentum, eps = _fused_bn_args(_meta(node))
            self._emit(
                node, "bn", {"eps": eps, "momentum": momentum}, [self.value[target]], None, output
            )

    def _pads(self, node, a):
        auto = a.get("auto_pad", "NOTSET")
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            return "same"
        pads = a.get("pads", (0, 0, 0, 0))
        begin, end = pads[: len(pads) // 2], pads[len(pads) // 2 :]
        if tuple(begin) != tuple(end):
            raise self._unsupported(
                node, f"its padding {list(pads)} differs between sides; netdsl pads both alike"
            )
        return _one(begin, "p")

    def _pool(self, node, a) -> None:
        k = _one(a["kernel_shape"], "k")
        args = {"k": k, "s": _one(a.get("strides", (1, 1)), "s"), "p": self._pads(node, a)}
        if node.op_type == "MaxPool":
            args |= {
                "d": _one(a.get("dilations", (1, 1)), "d"),
                "ceil": bool(a.get("ceil_mode", 0)),
            }
            self._emit(node, "maxpool", args, [self._x(node)])
        else:
            args |= {
                "ceil": bool(a.get("ceil_mode", 0)),
                "count_pad": bool(a.get("count_include_pad", 0)),
            }
            self._emit(node, "avgpool", args, [self._x(node)])

    def _reduce_mean(self, node, a) -> None:
        axes = a.get("axes")
        if axes is None and len(node.input) > 1:
            axes = self._const(node.input[1])
        if axes is None:  # computed from constants: read the shapes instead
            in_shape, out_shape = self._shape(node.input[0]), self._shape(node.output[0])
            if (
                in_shape
                and out_shape
                and len(in_shape) == 4
                and out_shape[1:]
                in (
                    (in_shape[1], 1, 1),
                    (in_shape[1],),
                )
            ):
                axes = [2, 3]
        if axes is None or sorted(int(x) % 4 for x in list(axes)) != [2, 3]:
            raise self._unsupported(
                node,
                "only a mean over height and width (global average pooling) has a netdsl layer",
            )
        name = self._emit(node, "gap", {}, [self._x(node)])
        if not a.get("keepdims", 1):
            self._flat(node, name, node.output[0], suffix="_flat")

    def _flatten(self, node, a) -> None:
        x = self._x(node)
        in_shape = self._shape(node.input[0])
        out_shape = self._shape(node.output[0])
        if node.op_type == "Flatten" and a.get("axis", 1) != 1:
            raise self._unsupported(
                node, "netdsl's flatten keeps the batch dimension alone (axis 1)"
            )
        if node.op_type == "Reshape" and (out_shape is None or len(out_shape) != 2):
            raise self._unsupported(
                node, "only a reshape to N x features (a flatten) has a netdsl layer"
            )
        if in_shape is not None and len(in_shape) == 2:
            self.value[node.output[0]] = x  # already flat
            return
        readers = self.readers.get(node.output[0], [])
        if (
            in_shape is not None
            and tuple(in_shape[2:]) == (1, 1)
            and readers
            and all(r.op_type in ("Gemm", "MatMul") for r in readers)
        ):
            self.value[node.output[0]] = x  # `gap + fc`: fc reads C x 1 x 1
            return
        self._emit(node, "flatten", {}, [x])

    def _flat(self, node, name: str, output: str, suffix: str) -> None:
        readers = self.readers.get(output, [])
        if readers and all(r.op_type in ("Gemm", "MatMul") for r in readers):
            return  # fc reads C x 1 x 1
        path = self.imported.layers[-1].path
        layer = Layer(
            f"{name}{suffix}",
            "flatten",
            {},
            [name],
            path,
            f"ONNX {node.op_type} node '{node.name}'",
        )
        self.imported.layers.append(layer)
        self.value[output] = layer.name

    def _linear(self, node, a) -> None:
        weight = self._const(node.input[1])
        if weight is None or weight.ndim != 2:
            raise self._unsupported(node, "its weight is not a matrix of the file's")
        if node.op_type == "Gemm":
            if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
                raise self._unsupported(
                    node, "only Gemm(transA=0, alpha=1, beta=1) is a fully connected layer"
                )
            n = weight.shape[0] if a.get("transB", 0) else weight.shape[1]
            bias = len(node.input) > 2 and bool(node.input[2])
            output = node.output[0]
        else:  # MatMul, and the Add of a bias after it
            n, bias, output = weight.shape[1], False, node.output[0]
            readers = self.readers.get(output, [])
            if len(readers) == 1 and readers[0].op_type == "Add":
                other = [v for v in readers[0].input if v != output]
                if other and self._const(other[0]) is not None:
                    bias, output = True, readers[0].output[0]
                    self.skip.add(readers[0].name)
        place = None
        if node.input[1].endswith(".weight"):
            layer = node.input[1][: -len(".weight")]
            place = (layer, tuple(layer.split("."))[:-1])
        self._emit(node, "fc", {"n": int(n), "bias": bias}, [self._x(node)], place, output)

    def _pad(self, node, a) -> None:
        pads = a.get("pads")
        if pads is None and len(node.input) > 1:
            pads = self._const(node.input[1])
        mode = a.get("mode", "constant")
        value = self._const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if pads is None or mode != "constant" or (value is not None and float(value) != 0.0):
            raise self._unsupported(node, "only zero padding has a netdsl layer")
        pads = [int(p) for p in pads]
        if len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)):
            raise self._unsupported(node, "netdsl pads height and width only")
        top, left, bottom, right = pads[2], pads[3], pads[6], pads[7]
        self._emit(node, "zeropad", {"p": (left, right, top, bottom)}, [self._x(node)])


def _momentum(a: dict) -> float:
    """ONNX's momentum keeps that much of the running statistic; PyTorch's is the rest."""
    return round(1.0 - _float(a.get("momentum", 0.9)), 6)


def _fused_bn_args(meta: dict) -> tuple[float, float]:
    """(momentum, eps) of the BatchNorm folded into a Conv, from the fx node that the
    exporter kept (`_native_batch_norm_legit_no_training(x, w, b, mean, var, 0.1, 1e-05)`)."""
    found = re.search(r",\s*([-\d.e]+),\s*([-\d.e]+)\)", meta.get("pkg.torch.onnx.fx_node", ""))
    if not found:
        return 0.1, 1e-5
    return float(found.group(1)), float(found.group(2))


def _snake(name: str) -> str:
    name = snake(name)
    return name if name[:1].isalpha() else f"net_{name}"
