"""The Keras front end of `netdsl import`: a Keras 3 model to graph.Imported.

SOURCE is a saved model (`.keras`, or a legacy `.h5`) or a Python reference to a Keras
model function, `keras.applications:MobileNet` or `keras.applications:MobileNet(alpha=0.5)`:
the call's arguments are read with `ast` as literals (never evaluated) and `weights=None`
is always passed, so nothing downloads. Keras and TensorFlow are imported by `read`.

Each layer of the functional graph becomes a netdsl op, in the graph's order (which is the
order of its weights), with netdsl's channels-first shapes (C x H x W). Keras writes what
PyTorch and netdsl write otherwise:

* BatchNormalization's momentum keeps that much of the running statistic: netdsl's (and
  PyTorch's) momentum is 1 minus it; epsilon is copied;
* `padding="same"` with a stride pads TensorFlow's way, the extra row and column at the
  bottom and right: a zeropad before the layer where the sides differ;
* a layer's `activation=` becomes the activation op after it;
* Reshape to (C,) of a C x 1 x 1 tensor, and Flatten, are flatten (Keras flattens H, W, C
  where netdsl flattens C, H, W: the same features, in another order).

Scopes come from the layer names: every `_`-separated part that holds a number opens a
scope (`conv2_block1_1_conv` is in conv2 / block1 / 1; MobileNet's `conv_dw_1`,
`conv_dw_1_bn`, `conv_pw_1_relu` and `conv_pad_1` are all in 1); a name Keras made up from
the class (`reshape_2`, `global_average_pooling2d`) opens none. Scopes have no kind: recovery
groups them by their structure.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import NetdslError
from .graph import Imported, Layer, Module
from .reference import parse, resolve, snake

ACTIVATIONS = {
    "relu": "relu",
    "relu6": "relu6",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "softmax": "softmax",
    "swish": "silu",
    "silu": "silu",
    "hard_sigmoid": "hardsigmoid",
    "hard_swish": "hardswish",
    "hard_silu": "hardswish",
    "gelu": "gelu",
    "elu": "elu",
}
MERGES = {"Add": "add", "Multiply": "mul", "Concatenate": "concat", "Average": "mean"}


def read(source, inputs=None) -> Imported:
    """`source`: a `.keras`/`.h5` path, `module:Function(args...)`, or a keras.Model.
    `inputs`: a shape (C, H, W) (or {name: shape}) to build a keras.applications model at."""
    if isinstance(inputs, dict):
        inputs = next(iter(inputs.values()), None)
    if not isinstance(source, str):
        model, origin = source, type(source).__name__
    elif source.endswith((".keras", ".h5")):
        model, origin = _load(source), source
    else:
        model, origin = _build(source, inputs), source
    return _Reader(model, origin, inputs).run()


def _keras():
    try:
        import keras
    except ImportError:
        raise NetdslError("importing a Keras model needs Keras 3: pip install keras") from None
    return keras


def _load(path: str):
    keras = _keras()
    if not Path(path).is_file():
        raise NetdslError(f"cannot import {path}: no such file")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as e:  # noqa: BLE001 - Keras raises many kinds for one bad file
        raise NetdslError(f"cannot import {path}: Keras cannot load it ({e})") from None


def _build(reference: str, inputs):
    """`keras.applications:MobileNet(alpha=0.5)` called with literal arguments and
    weights=None (and input_shape, channels last, when --input gives one)."""
    ref = parse(reference, "a .keras file or a reference such as keras.applications:MobileNet")
    args, kwargs = ref.args, ref.kwargs
    if kwargs.get("weights") is not None:
        raise ref.fail(
            "netdsl imports the architecture only (weights=None); "
            "load published weights into the compiled model with compile --weights"
        )
    _keras()
    target = resolve(ref)
    kwargs["weights"] = None
    if inputs is not None:
        c, h, w = inputs
        kwargs["input_shape"] = (h, w, c)
    try:
        return target(*args, **kwargs)
    except (TypeError, ValueError) as e:
        raise NetdslError(f"cannot import '{reference}': {e}") from None


def _snake(name: str) -> str:
    return snake(name) or "model"


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _one(values) -> int | tuple:
    return values[0] if values[0] == values[1] else tuple(values)


def _same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow's "same" padding of one axis: (before, after), the extra one after."""
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


class _Reader:
    def __init__(self, model, origin: str, inputs) -> None:
        self.model = model
        name = _snake(getattr(model, "name", "") or "model")
        self.imported = Imported(name, origin, {})
        self.value: dict[int, str] = {}  # id(KerasTensor) -> netdsl name
        self.shape: dict[str, tuple] = {}  # netdsl name -> channels-first shape
        self.names: set[str] = set()

    def run(self) -> Imported:
        model = self.model
        if len(model.inputs) != 1:
            raise NetdslError(
                f"cannot import {self.imported.origin}: it takes {len(model.inputs)} inputs, not one"
            )
        tensor = model.inputs[0]
        shape = tuple(tensor.shape[1:])
        if None in shape:
            raise NetdslError(
                f"cannot import {self.imported.origin}: its input has no fixed size "
                f"({'x'.join(str(d or '?') for d in shape)}); build it with an input_shape"
            )
        shape = (shape[-1], *shape[:-1]) if len(shape) == 3 else shape
        self.imported.inputs["x"] = tuple(int(d) for d in shape)
        self.value[id(tensor)] = "x"
        self.shape["x"] = self.imported.inputs["x"]
        for layer in model.layers:
            if type(layer).__name__ == "InputLayer":
                continue
            self._layer(layer)
        self.imported.outputs = [self.value[id(model.outputs[0])]]
        self._logits()
        return self.imported

    def _logits(self) -> None:
        """A classifier's closing softmax (keras.applications' classifier_activation) is left
        out: netdsl networks end in logits, and the training script's loss applies the softmax
        (keeping it would apply it twice)."""
        layers = self.imported.layers
        last = layers[-1] if layers else None
        if last is None or last.op != "softmax" or self.imported.outputs != [last.name]:
            return
        layers.pop()
        self.imported.outputs = [last.inputs[0]]
        self.imported.notes.append(
            f"The closing softmax ({last.name}) is left out: netdsl networks end in logits, "
            "and the training script's loss applies it."
        )

    # -- names and scopes --------------------------------------------------------------------

    def _path(self, layer) -> tuple[str, ...]:
        name = layer.name
        auto = type(layer).__name__.lower()
        if re.fullmatch(rf"{re.escape(auto)}\d*", name.replace("_", "")):
            return ()  # a name Keras made up: reshape_2, global_average_pooling2d
        parts = name.split("_")
        path = tuple(p for p in parts[:-1] if re.search(r"\d", p))
        if re.search(r"\d", parts[-1]):
            path += (parts[-1],)  # conv_dw_1 is in 1, conv1 in conv1 (with conv1_bn)
        for depth in range(1, len(path) + 1):
            key = path[:depth]
            if key not in self.imported.modules:
                self.imported.modules[key] = Module(key, None)  # grouped by structure
        return path

    def _emit(self, layer, op: str, args: dict, inputs: list[str], name: str | None = None) -> str:
        name = name or layer.name
        while name in self.names:
            name += "_"
        self.names.add(name)
        source = f"keras.layers.{type(layer).__name__} '{layer.name}'"
        self.imported.layers.append(Layer(name, op, args, inputs, self._path(layer), source))
        return name

    def _inputs(self, layer) -> list[str]:
        node = layer._inbound_nodes[0]
        found = []
        for tensor in node.input_tensors:
            if id(tensor) not in self.value:
                raise self._unsupported(layer, "its input does not come from the model's input")
            found.append(self.value[id(tensor)])
        return found

    def _output(self, layer, name: str) -> None:
        self.value[id(layer._inbound_nodes[0].output_tensors[0])] = name

    def _unsupported(self, layer, why: str = "netdsl has no such layer") -> NetdslError:
        kind = type(layer).__name__
        return NetdslError(
            f"cannot import keras.layers.{kind} '{layer.name}' from {self.imported.origin}: {why}"
        )

    # -- one layer ---------------------------------------------------------------------------

    def _layer(self, layer) -> None:  # noqa: C901 - one case per Keras layer class
        kind = type(layer).__name__
        if len(layer._inbound_nodes) != 1:
            raise self._unsupported(layer, "it is called more than once (shared weights)")
        c = layer.get_config()
        inputs = self._inputs(layer)
        x = inputs[0]
        in_shape = self.shape.get(x)
        out = None
        if kind in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D"):
            out = self._conv(layer, kind, c, x, in_shape)
        elif kind == "BatchNormalization":
            if c["axis"] not in (-1, 3, [-1], [3]):
                raise self._unsupported(layer, "netdsl normalises the channels (axis -1)")
            args = {"eps": float(c["epsilon"]), "momentum": round(1.0 - float(c["momentum"]), 6)}
            if not c.get("scale", True):
                args["scale"] = False
            if not c.get("center", True):
                raise self._unsupported(layer, "netdsl's bn always learns a shift (center=True)")
            out = self._emit(layer, "bn", args, [x])
        elif kind == "ReLU":
            out = self._relu(layer, c, x)
        elif kind == "Activation":
            out = self._activation(layer, c["activation"], x, layer.name)
        elif kind == "Softmax":
            out = self._emit(layer, "softmax", {}, [x])
        elif kind == "LeakyReLU":
            out = self._emit(
                layer,
                "leaky_relu",
                {"slope": float(c.get("negative_slope", c.get("alpha", 0.3)))},
                [x],
            )
        elif kind == "ZeroPadding2D":
            (top, bottom), (left, right) = c["padding"]
            out = self._emit(layer, "zeropad", {"p": (left, right, top, bottom)}, [x])
        elif kind in ("MaxPooling2D", "AveragePooling2D"):
            out = self._pool(layer, kind, c, x, in_shape)
        elif kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
            op = "gap" if kind == "GlobalAveragePooling2D" else "gmp"
            out = self._emit(layer, op, {}, [x])
            self.shape[out] = (in_shape[0], 1, 1)
            if not c.get("keepdims", False):
                self.shape[out] = (in_shape[0],)  # a C x 1 x 1 netdsl reads as flat where it must
        elif kind in ("Reshape", "Flatten"):
            out = self._reshape(layer, kind, c, x, in_shape)
        elif kind == "Dropout":
            out = self._emit(layer, "dropout", {"p": float(c["rate"])}, [x])
        elif kind == "Dense":
            out = self._emit(layer, "fc", {"n": int(c["units"]), "bias": bool(c["use_bias"])}, [x])
            self.shape[out] = (int(c["units"]),)
            out = self._activation(layer, c.get("activation", "linear"), out, f"{layer.name}_act")
        elif kind in MERGES:
            if kind == "Concatenate" and c.get("axis", -1) not in (-1, 3):
                raise self._unsupported(layer, "netdsl concatenates channels (axis -1)")
            out = self._emit(layer, MERGES[kind], {}, inputs)
            if kind == "Concatenate" and in_shape is not None:
                channels = sum(self.shape[v][0] for v in inputs)
                self.shape[out] = (channels, *in_shape[1:])
        else:
            raise self._unsupported(layer)
        if out not in self.shape:
            self.shape[out] = self._out_shape(layer, in_shape)
        self._output(layer, out)

    def _out_shape(self, layer, in_shape) -> tuple:
        shape = tuple(layer._inbound_nodes[0].output_tensors[0].shape[1:])
        return (shape[-1], *shape[:-1]) if len(shape) == 3 else shape

    def _padding(self, layer, c, x, in_shape, k, s, d) -> tuple[str, int | tuple]:
        """(the value the layer reads, its netdsl p) for padding "valid" or "same"."""
        if c["padding"] == "valid":
            return x, 0
        (top, bottom), (left, right) = (
            _same_pads(in_shape[1], k[0], s[0], d[0]),
            _same_pads(in_shape[2], k[1], s[1], d[1]),
        )
        if top == bottom and left == right:
            return x, _one((top, left))
        pad = self._emit(
            layer, "zeropad", {"p": (left, right, top, bottom)}, [x], f"{layer.name}_pad"
        )
        self.shape[pad] = (in_shape[0], in_shape[1] + top + bottom, in_shape[2] + left + right)
        return pad, 0

    def _conv(self, layer, kind, c, x, in_shape) -> str:
        k, s = _pair(c["kernel_size"]), _pair(c["strides"])
        d = _pair(c.get("dilation_rate", 1))
        x, p = self._padding(layer, c, x, in_shape, k, s, d)
        args = {"k": _one(k), "s": _one(s), "p": p, "d": _one(d)}
        if kind == "DepthwiseConv2D":
            args |= {"m": int(c.get("depth_multiplier", 1)), "bias": bool(c["use_bias"])}
            out = self._emit(layer, "dwconv", args, [x])
        elif kind == "SeparableConv2D":
            args = {"c": int(c["filters"]), **args, "m": int(c.get("depth_multiplier", 1))}
            out = self._emit(layer, "sepconv", {**args, "bias": bool(c["use_bias"])}, [x])
        else:
            args = {
                "c": int(c["filters"]),
                **args,
                "g": int(c.get("groups", 1)),
                "bias": bool(c["use_bias"]),
            }
            out = self._emit(layer, "conv", args, [x])
        self.shape[out] = self._out_shape(layer, in_shape)
        return self._activation(layer, c.get("activation", "linear"), out, f"{layer.name}_act")

    def _pool(self, layer, kind, c, x, in_shape) -> str:
        k = _pair(c["pool_size"])
        s = _pair(c["strides"] if c.get("strides") is not None else c["pool_size"])
        x, p = (
            self._padding(layer, c, x, in_shape, k, s, (1, 1))
            if kind == "MaxPooling2D"
            else (x, None)
        )
        if kind == "MaxPooling2D":
            return self._emit(layer, "maxpool", {"k": _one(k), "s": _one(s), "p": p}, [x])
        if c["padding"] == "same":
            (top, bottom), (left, right) = (
                _same_pads(in_shape[1], k[0], s[0], 1),
                _same_pads(in_shape[2], k[1], s[1], 1),
            )
            if (top, left) != (bottom, right):
                raise self._unsupported(
                    layer,
                    "its one-sided 'same' padding is not counted in the average, which netdsl cannot write",
                )
            return self._emit(
                layer,
                "avgpool",
                {"k": _one(k), "s": _one(s), "p": _one((top, left)), "count_pad": False},
                [x],
            )
        return self._emit(layer, "avgpool", {"k": _one(k), "s": _one(s)}, [x])

    def _relu(self, layer, c, x) -> str:
        if c.get("threshold", 0.0):
            raise self._unsupported(layer, "netdsl's relu has no threshold")
        slope = float(c.get("negative_slope", 0.0) or 0.0)
        top = c.get("max_value")
        if slope and top is None:
            return self._emit(layer, "leaky_relu", {"slope": slope}, [x])
        if slope:
            raise self._unsupported(layer, "a leaky relu with a ceiling has no netdsl layer")
        if top is None:
            return self._emit(layer, "relu", {}, [x])
        if float(top) == 6.0:
            return self._emit(layer, "relu6", {}, [x])
        raise self._unsupported(layer, f"relu capped at {top} has no netdsl layer (relu6 has)")

    def _activation(self, layer, activation, x: str, name: str) -> str:
        if isinstance(activation, dict):
            activation = activation.get("config", {}).get("name", activation.get("class_name"))
        if activation in (None, "linear"):
            return x
        op = ACTIVATIONS.get(activation)
        if op is None:
            raise self._unsupported(layer, f"the activation '{activation}' has no netdsl layer")
        out = self._emit(layer, op, {}, [x], name)
        self.shape[out] = self.shape.get(x)
        return out

    def _reshape(self, layer, kind, c, x, in_shape) -> str:
        if in_shape is not None and len(in_shape) == 1:
            return x  # already flat
        if kind == "Reshape" and (
            len(c["target_shape"]) != 1 or in_shape is None or in_shape[1:] != (1, 1)
        ):
            raise self._unsupported(
                layer,
                f"only a reshape of C x 1 x 1 to (C,) has a netdsl layer, not {tuple(c['target_shape'])}",
            )
        return self._emit(layer, "flatten", {}, [x])
