"""Habits from PyTorch and Keras, recognised and answered in netdsl's words.

People write what their framework taught them: `Conv2d(3, 64, 3)`, `activation=relu`,
`input 224x224x3`, `conv(3, 64)` with the input channels first. netdsl would report these
as an unknown name, an unknown argument or a shape that falls to zero; this module
recognises them and says how netdsl writes the same thing, with the user's own numbers.
It only reads and words messages; the elaborator and the parser decide what to raise.
"""

from __future__ import annotations

import re
from functools import cache

from . import ast
from .errors import NetdslError, SourceRegistry, Span

INFERRED = object()  # an argument netdsl infers from the input (in_channels, num_features)

# Keyword arguments of PyTorch and Keras layers, and netdsl's name for each.
KEYWORDS = {
    "activation": "act",
    "kernel_size": "k",
    "pool_size": "k",
    "strides": "s",
    "stride": "s",
    "padding": "p",
    "filters": "c",
    "out_channels": "c",
    "units": "n",
    "out_features": "n",
    "use_bias": "bias",
    "bias": "bias",
    "dilation": "d",
    "dilation_rate": "d",
    "groups": "g",
    "rate": "p",
    "p": "p",
    "depth_multiplier": "m",
    "negative_slope": "slope",
    "epsilon": "eps",
    "eps": "eps",
    "momentum": "momentum",
    "output_size": "size",
    "scale_factor": "scale",
    "upscale_factor": "r",
    "in_channels": INFERRED,
    "in_features": INFERRED,
    "num_features": INFERRED,
    "normalized_shape": INFERRED,
    "num_channels": INFERRED,
}

_CONV = (None, "c", "k", "s", "p", "d", "g", "bias")  # PyTorch's Conv2d(in, out, k, ...)
_KERAS_CONV = ("c", "k", "s", "p")
_TORCH_POOL = ("k", "s", "p")
_KERAS_POOL = ("k", "s", "p")

# A framework's class -> (framework, netdsl layer, its positional arguments as netdsl names;
# None: inferred or without a netdsl counterpart). Names that both frameworks use are listed
# once, as "PyTorch and Keras".
FRAMEWORK_LAYERS = {
    "Conv2d": ("PyTorch", "conv", _CONV),
    "Conv2D": ("Keras", "conv", _KERAS_CONV),
    "ConvTranspose2d": ("PyTorch", "conv_transpose", (None, "c", "k", "s", "p")),
    "Conv2DTranspose": ("Keras", "conv_transpose", _KERAS_CONV),
    "DepthwiseConv2D": ("Keras", "dwconv", ("k", "s", "p", "m")),
    "SeparableConv2D": ("Keras", "sepconv", _KERAS_CONV),
    "Linear": ("PyTorch", "fc", (None, "n", "bias")),
    "Dense": ("Keras", "fc", ("n", "act")),
    "MaxPool2d": ("PyTorch", "maxpool", _TORCH_POOL),
    "MaxPooling2D": ("Keras", "maxpool", _KERAS_POOL),
    "AvgPool2d": ("PyTorch", "avgpool", _TORCH_POOL),
    "AveragePooling2D": ("Keras", "avgpool", _KERAS_POOL),
    "AdaptiveAvgPool2d": ("PyTorch", "adaptive_avgpool", ("size",)),
    "AdaptiveMaxPool2d": ("PyTorch", "adaptive_maxpool", ("size",)),
    "GlobalAveragePooling2D": ("Keras", "gap", ()),
    "GlobalAvgPool2D": ("Keras", "gap", ()),
    "GlobalMaxPooling2D": ("Keras", "gmp", ()),
    "GlobalMaxPool2D": ("Keras", "gmp", ()),
    "BatchNorm2d": ("PyTorch", "bn", (None, "eps", "momentum")),
    "BatchNorm1d": ("PyTorch", "bn", (None, "eps", "momentum")),
    "BatchNormalization": ("Keras", "bn", ()),
    "LayerNorm": ("PyTorch", "layernorm", (None, "eps")),
    "LayerNormalization": ("Keras", "layernorm", ()),
    "GroupNorm": ("PyTorch", "groupnorm", ("g", None, "eps")),
    "GroupNormalization": ("Keras", "groupnorm", ("g",)),
    "Dropout": ("PyTorch and Keras", "dropout", ("p",)),
    "Flatten": ("PyTorch and Keras", "flatten", ()),
    "ReLU": ("PyTorch and Keras", "relu", ()),
    "ReLU6": ("PyTorch", "relu6", ()),
    "LeakyReLU": ("PyTorch and Keras", "leaky_relu", ("slope",)),
    "ELU": ("PyTorch and Keras", "elu", ("alpha",)),
    "GELU": ("PyTorch", "gelu", ()),
    "SiLU": ("PyTorch", "silu", ()),
    "Hardswish": ("PyTorch", "hardswish", ()),
    "Hardsigmoid": ("PyTorch", "hardsigmoid", ()),
    "Sigmoid": ("PyTorch", "sigmoid", ()),
    "Tanh": ("PyTorch", "tanh", ()),
    "Softmax": ("PyTorch and Keras", "softmax", ()),
    "Identity": ("PyTorch", "id", ()),
    "ZeroPad2d": ("PyTorch", "zeropad", ("p",)),
    "ZeroPadding2D": ("Keras", "zeropad", ("p",)),
    "Upsample": ("PyTorch", "upsample", ("size", "scale")),
    "UpSampling2D": ("Keras", "upsample", ("scale",)),
    "PixelShuffle": ("PyTorch", "pixel_shuffle", ("r",)),
}
_KERAS_ONLY = {"size": "scale"}  # UpSampling2D(size=2) is netdsl's scale


def source_text(span: Span | None) -> str | None:
    """The text a one-line span covers, as written."""
    if span is None or span.end_line != span.line or not span.end_column:
        return None
    line = SourceRegistry.line(span.file, span.line)
    if line is None:
        return None
    return line[span.column - 1 : span.end_column - 1]


def _atom(expr) -> str | None:
    """An argument as a netdsl atom: `3`, `(1, 7)`, `relu`, `same`, `true`; None: left out."""
    if isinstance(expr, ast.Number):
        return str(expr.value)
    if isinstance(expr, ast.Bool):
        return "true" if expr.value else "false"
    if isinstance(expr, ast.String):
        if expr.value in ("valid", "linear"):
            return None  # Keras' defaults: no padding, no activation
        return expr.value
    name = expr.id if isinstance(expr, ast.Name) else None
    if isinstance(expr, ast.Call) and not expr.args and not expr.kwargs:
        name = expr.name
    if name is not None:
        return {"True": "true", "False": "false", "None": None}.get(name, name)
    if isinstance(expr, ast.Tuple):
        items = [_atom(i) for i in expr.items]
        if any(i is None for i in items):
            return None
        if len(set(items)) == 1 and len(items) == 2:
            return items[0]  # (3, 3): netdsl's 3
        return "(" + ", ".join(items) + ")"
    text = source_text(expr.span)
    if text is None:
        return None
    return text if text.startswith("(") or " " not in text else f"({text})"


def framework_call(call: ast.Call, shown: str | None = None, framework=None) -> str | None:
    """The hint for a PyTorch or Keras class written as a layer: how netdsl writes it."""
    found = FRAMEWORK_LAYERS.get(call.name)
    if found is None or not call.parenthesised:  # `UpSampling2D 2` is a netdsl call misnamed
        return None
    written_by, layer, positional = found
    framework = framework or written_by
    given: dict = {}
    inferred = False
    for name, expr in zip(positional, call.args):
        if name is None:
            inferred = True
        else:
            given[name] = expr
    for key, expr, _ in call.kwargs:
        target = KEYWORDS.get(key, key if key in ("size", "mode", "alpha") else None)
        if framework == "Keras" and key in _KERAS_ONLY:
            target = _KERAS_ONLY[key]
        if target is INFERRED:
            inferred = True
        elif target is not None:
            given[target] = expr
    spelling = _spelling(layer, {k: a for k, v in given.items() if (a := _atom(v)) is not None})
    written = shown or source_text(call.span) or call.name
    writes = "write" if " and " in framework else "writes"
    hint = f"{written} is how {framework} {writes} it; in netdsl: `{spelling}`"
    if inferred:
        hint += f" (the {'input features are' if layer == 'fc' else 'input channels are'} inferred)"
    return hint


_PREFIX = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]*\.)+$")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def qualified_call(text: str, pos: int, path: str) -> NetdslError | None:
    """`nn.ReLU()`, `layers.Dense(10)`: a framework's class with its module, a syntax
    error at text[pos] (the class name, after the dot). None when it is not one."""
    line_start = text.rfind("\n", 0, pos) + 1
    prefix = _PREFIX.search(text[line_start:pos])
    name = _NAME.match(text, pos)
    if prefix is None or name is None or name[0] not in FRAMEWORK_LAYERS:
        return None
    end = name.end()
    if text[end : end + 1] == "(":
        depth = 0
        for i in range(end, len(text)):
            if text[i] == "\n":
                return None
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            if depth == 0:
                end = i + 1
                break
    written = text[pos:end]
    from .parser import parse

    try:
        module = parse(f"network n:\n    {written}\n", f"{path} ({written})")
        call = module.networks[0].body[0].expr
    except (NetdslError, IndexError, AttributeError):
        return None
    if not isinstance(call, ast.Call):
        return None
    start = line_start + prefix.start()
    line = text.count("\n", 0, pos) + 1
    column = start - line_start + 1
    module = prefix[0].split(".")[-2]
    framework = "PyTorch" if module in ("nn", "torch") else "Keras" if module != "F" else None
    return NetdslError(
        f"syntax error: netdsl's layer names take no module prefix ('{prefix[0]}')",
        Span(path, line, column, line, column + end - start),
        hint=framework_call(call, shown=text[start:end], framework=framework),
    )


_MODULES = ("nn", "torch", "F", "layers", "keras", "tf")


def module_hint(name: str) -> str | None:
    """`nn.ReLU` without brackets: the module's name reads as an unknown name."""
    if name not in _MODULES:
        return None
    return f"netdsl's layer names take no module prefix ('{name}.'): write relu, conv 64 k=3, ..."


def _spelling(layer: str, args: dict) -> str:
    """netdsl's text for a layer and its arguments: the first positional one bare, the
    others by name, and the shorthands where they say the same (`maxpool2`, `conv3 64`)."""
    from .layers import CATALOGUE

    if layer in ("adaptive_avgpool", "adaptive_maxpool") and args.get("size") in ("1", None):
        return "gap" if layer == "adaptive_avgpool" else "gmp"
    spec = CATALOGUE[layer] if layer != "id" else None
    if spec is None:
        return "id"
    if layer in ("maxpool", "avgpool"):
        k = args.get("k", "2")
        if args.get("s") in (None, k) and args.get("p") in (None, "0") and k.isdigit():
            return f"{layer}{k}"
    if layer == "conv" and args.get("p") == "same" and args.get("k", "").isdigit():
        rest = {n: v for n, v in args.items() if n not in ("c", "k", "p")}
        return " ".join([f"conv{args['k']}", args.get("c", "..."), *_named(rest)])
    words = [layer]
    first = spec.positional[0] if spec.positional else None
    for arg in spec.args:
        if arg.name not in args and arg.default is _required():
            args[arg.name] = "..."  # Conv2d(3, 64) gives no kernel
    if first is not None and first in args:
        words.append(args.pop(first))
    words.extend(_named({a.name: args[a.name] for a in spec.args if a.name in args}))
    return " ".join(words)


def _required():
    from .layers import REQUIRED

    return REQUIRED


def _named(args: dict) -> list[str]:
    return [f"{name}={value}" for name, value in args.items()]


def keyword_hint(layer, shown: str, name: str, value) -> str | None:
    """The hint for a framework's keyword given to a netdsl layer (`activation=relu`)."""
    target = KEYWORDS.get(name)
    if target is None or target == name:
        return None
    if target is INFERRED:
        return f"netdsl infers {name} from the input: leave it out"
    text = _value_text(value)
    if layer.arg(target) is None:
        if target == "act":
            return f"{shown} has no activation argument: add it as a layer, `{shown} ... + {text}`"
        return None
    return f"netdsl calls it {target}: `{target}={text}`"


def _value_text(value) -> str:
    from .symbolic import Num, Tup

    if isinstance(value, Num):
        v = value.value
        return ("true" if v else "false") if isinstance(v, bool) else str(v)
    if isinstance(value, Tup):
        return "(" + ", ".join(_value_text(i) for i in value.items) + ")"
    if isinstance(value, str):
        return value
    called = getattr(value, "called_as", None)
    return called if isinstance(called, str) else "..."


def channels_last(dims) -> tuple | None:
    """The C x H x W reading of an image input written H x W x C (`224x224x3`), or None.

    Only a last size that is a usual channel count (1, 3 or 4) after two larger sizes of
    about the same value (an image's height and width) reads so: `3x224x224`, `1x28x28`,
    `4x84x84` and `784` never do."""
    if len(dims) != 3:
        return None
    h, w, c = dims
    if c not in (1, 3, 4) or min(h, w) < 8 or max(h, w) > 2 * min(h, w):
        return None
    return (c, h, w)


PLAUSIBLE_KERNEL = 16  # no network means a kernel this large where channels were meant


def conv_in_channels_first(c: int, k: tuple, shape: tuple) -> bool:
    """`conv(3, 64)` on a 3-channel input: PyTorch's (in_channels, out_channels) order,
    read by netdsl as 3 output channels and a 64 x 64 kernel. A kernel of 16 or more that
    keeps the input's channels is no layer anyone means on an image's 1, 3 or 4 channels,
    nor where it is larger than the map; elsewhere (RepLKNet's 31 x 31) it may be meant."""
    in_channels, *sizes = shape
    larger = any(k_i > size for k_i, size in zip(k, sizes))
    return c == in_channels and min(k) >= PLAUSIBLE_KERNEL and (in_channels <= 4 or larger)


def channels_then_kernel(args) -> bool:
    """`conv(3, 64, 3)`: three numbers whose second is no kernel (netdsl's conv takes c and k
    positionally; `conv 64 3 2`, with a stride, is not this habit)."""
    from .symbolic import Num

    values = [v for v, _ in args]
    return all(isinstance(v, Num) for v in values) and values[1].value >= PLAUSIBLE_KERNEL


def conv_order_hint(shown: str, out, kernel) -> str:
    """How netdsl writes a conv given PyTorch's (in, out[, k]) arguments."""
    k = _value_text(kernel) if kernel is not None else "3"
    return f"netdsl infers the input channels: write `{shown} {_value_text(out)} k={k}`"


@cache
def stdlib_blocks() -> dict[str, tuple[str, ...]]:
    """Each block and function the standard library defines -> the modules defining it."""
    from .loader import read_source
    from .parser import parse
    from .resources import STDLIB_DIR

    found: dict[str, list[str]] = {}
    for path in sorted(STDLIB_DIR.glob("*.net")):
        module = parse(read_source(path), f"netdsl/stdlib/{path.name}")
        for item in (*module.blocks, *module.functions):
            found.setdefault(item.name, []).append(path.stem)
    return {name: tuple(modules) for name, modules in found.items()}


def stdlib_hint(name: str) -> str | None:
    """`bottleneck` used without `use resnet`."""
    modules = stdlib_blocks().get(name)
    if not modules:
        return None
    uses = " or ".join(f"`use {m}`" for m in modules)
    return f"'{name}' is in the standard library: add {uses} at the top of the file"


def parameter_hint(kind: str, owner: str, params, name: str, example) -> str:
    """`width` used as a number in network `net` without being declared."""
    written = []
    for p in params:
        default = source_text(p.default.span) if p.default is not None else None
        written.append(p.name if p.default is None else f"{p.name}={default or '...'}")
    written.append(f"{name}={example}")
    return (
        f"if '{name}' is meant as a number, declare it as a {kind} parameter: "
        f"`{kind} {owner}({', '.join(written)})`"
    )
