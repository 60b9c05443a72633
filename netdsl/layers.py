"""The layer catalogue: the one place that knows what an op is.

Each `LayerSpec` carries everything the rest of the compiler asks about an op:
its argument schema, its shape rule, its parameter and MAC formulas in factored
form (the counts *are* these formulas, and `explain` prints them), its traits
(runs in place, returns a fresh tensor, never negative, ...), the attributes it
derives from its input, and its receptive-field rule. Backends map ops to code
in tables of their own and list what they cannot emit; nothing else keeps a
list of ops.

Shapes follow PyTorch exactly (batch implicit): image tensors are (C, H, W),
token sequences (N, D), flat tensors (F,), and token ids (N,) below a vocabulary
(`TokenIds`, read only by `embedding`). Every dimension is a traced `Num`, so the
rules below compute both the value and the expression behind it. Each op says
which of these kinds it accepts (`LayerSpec.accepts`); `check_input` refuses the
others with the layer to insert.

Parameters count weights, biases and BatchNorm's affine scale and shift;
BatchNorm's running mean and variance are *buffers*. MACs count the
multiply-accumulates of conv and linear layers (batch 1), the convention
of torch.utils.flop_counter and fvcore, plus attention's two matrix products
(Q K^T and A V, per head), the convention of torchvision's published figures;
every other op counts zero.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from . import habits
from .errors import NetdslError, Span, did_you_mean
from .initializers import TENSORS, Init
from .records import record
from .symbolic import Num, TokenIds, Tup
from .values import Fragment, kind_of

REQUIRED = object()

Shape = tuple  # tuple[Num, ...]


def shape_kind(shape) -> str:
    """image (C, H, W), tokens (N, D), flat (F,) or ids (N token ids)."""
    if isinstance(shape, TokenIds):
        return "ids"
    return {3: "image", 2: "tokens"}.get(len(shape), "flat")


class ShapeError(Exception):
    """Raised by a shape rule; the elaborator attaches the source span (and the input's
    shape, unless the message already tells what the input was: `shows_input`)."""

    def __init__(self, message: str, hint: str | None = None, shows_input: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.shows_input = shows_input


@dataclass(frozen=True)
class ArgSpec:
    name: str
    kind: str  # see _CHECKS
    default: object = REQUIRED
    doc: str = ""
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class TensorSize:
    """A size given as a named tensor: its height and width (`upsample size=img`,
    `crop size=x`). The layer's node reads that tensor as its second input; `name` is the
    DSL's spelling of it, which is all that two instances of a block compare."""

    name: str
    shape: tuple = field(default=(), compare=False, repr=False)  # the tensor's, traced
    ref: object = field(default=None, compare=False, repr=False)  # (the elaborator's)

    def __str__(self) -> str:
        return self.name


def size_of(v) -> tuple:
    """The (h, w) an `extent` argument gives: a tensor's height and width, or the pair."""
    return (v.shape[1], v.shape[2]) if isinstance(v, TensorSize) else pair(v)


def center_offsets(size: int, target: int) -> tuple[int, int]:
    """(before, after) removed by a center crop from `size` to `target`, with torchvision's
    center_crop rounding: before = round((size - target) / 2), Python's round (halves to
    even), so an odd difference of 1 or 5 leaves the extra row at the end, 3 or 7 at the
    start."""
    before = int(round((size - target) / 2.0))
    return before, size - target - before


# ---- traits: what passes may assume about an op ------------------------------------------

IN_PLACE = "in place"  # may overwrite its input (ReLU-like): no new activation at inference
FRESH = "fresh"  # returns a new tensor that backward does not need: safe to modify in place
NON_NEGATIVE = "non-negative"  # its output is never negative
KEEPS_SIGN = "keeps sign"  # non-negative inputs give a non-negative output
INFERENCE_IDENTITY = "identity at inference"  # dropout, drop_path
VIEW = "view"  # a view of its input (flatten): no new memory
SAVES_INDICES = "saves indices"  # backward keeps int64 argmax indices (max pooling)
WINDOWED = "windowed"  # a sliding window: k, s, p (and d) give out = floor(...) + 1
READS_FLAT = "reads flat"  # takes a C x 1 x 1 image as its C features (fc after gap)
MINOR = "minor"  # drawn inside the box of the layer before it (activations, norms, ...)


# ---- factored counts and shape derivations (explain prints them as they are) ----------


@record
class Factor:
    """One factor of a product: its value and how to write it (`128/32` for grouped input)."""

    value: int
    text: str = ""

    def __str__(self) -> str:
        return self.text or str(self.value)


@record
class Count:
    """A count as a sum of products, e.g. 96 x 11 x 11 x 3 + 96."""

    formula: str  # symbolic, e.g. "c_out x k x k x c_in + c_out"
    terms: tuple  # tuple[tuple[Factor, ...], ...]
    value: int
    note: str = ""  # e.g. "+ 192 running statistics (buffers)"


def count(formula: str, terms, note: str = "") -> Count:
    """A Count whose value is the sum of its terms' products (empty terms dropped)."""
    factored = tuple(
        tuple(f if isinstance(f, Factor) else Factor(f) for f in term) for term in terms if term
    )
    value = 0
    for term in factored:
        product = 1
        for f in term:
            product *= f.value
        value += product
    return Count(formula, factored, value, note)


# (attrs, input shape, output shape) -> Count; dimensions may be Nums or ints
Formula = Callable[[dict, tuple, tuple], Count]


@record
class Window:
    """One spatial axis of a sliding window: out = floor((n - k_eff + 2p)/s) + 1."""

    axis: str  # "H", "W" or "H = W"
    size: int
    k: int
    s: int
    p: int
    d: int
    ceil: bool
    out: int
    exact: bool  # the division leaves no remainder
    last_dropped: bool = False  # ceil mode: PyTorch dropped a window starting in the padding

    @property
    def k_eff(self) -> int:
        return self.d * (self.k - 1) + 1

    @property
    def numerator(self) -> int:
        return self.size - self.k_eff + 2 * self.p


@record
class Equation:
    """A derived dimension: label = a op b op ... = result (e.g. C = 64 + 32 = 96)."""

    label: str
    operands: tuple
    op: str  # "+" or "x"
    result: int


@record
class Note:
    """A derivation with nothing to compute, e.g. "same shape as the input"."""

    text: str


@dataclass
class Inferred:
    shape: Shape
    params: int = 0
    macs: int = 0
    buffers: int = 0
    derived: dict = field(default_factory=dict)


@dataclass(frozen=True)
class LayerSpec:
    name: str
    doc: str
    category: str
    infer: Callable[[dict, Shape], Inferred]
    args: tuple[ArgSpec, ...] = ()
    positional: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    shorthand: str | None = None  # e.g. "k": conv3 == conv k=3 p=same
    traits: frozenset = frozenset()  # IN_PLACE, FRESH, NON_NEGATIVE, ... (below)
    derived: tuple[str, ...] = ()  # attributes the shape rule adds from the input
    params: Formula | None = None  # factored parameter count; None: no weights
    macs: Formula | None = None  # factored multiply-accumulates; None: zero
    receptive: str = "same"  # "window" | "global" | "flat" | "adaptive" | "same"
    derive: Callable | None = None  # node -> [Window | Equation | Note]: how the shape follows
    named: tuple[str, ...] = ()  # arguments the DSL text of a layer always writes by name
    sign_rule: Callable[[dict], bool] | None = None  # keeps sign only when this holds
    accepts: frozenset = frozenset({"image", "flat"})  # the shape kinds it reads (shape_kind)

    @property
    def has_weights(self) -> bool:
        return self.params is not None

    def keeps_sign(self, attrs: dict) -> bool:
        """Non-negative inputs give a non-negative output."""
        return KEEPS_SIGN in self.traits or (self.sign_rule is not None and self.sign_rule(attrs))

    def arg(self, name: str) -> ArgSpec | None:
        for a in self.args:
            if a.name == name or name in a.aliases:
                return a
        return None

    def bind(
        self,
        args,
        kwargs,
        span: Span,
        presets: dict | None = None,
        defaults: dict | None = None,
        called_as: str | None = None,
    ) -> dict:
        """Match positional and keyword arguments to this layer's schema.

        `args` is a list of (value, span), `kwargs` of (name, value, span);
        `presets` come from a shorthand (conv3 -> k=3), `defaults` from a
        file's `defaults` statement. Returns {arg name: value}.
        """
        shown = called_as or self.name
        bound: dict = {}
        # a shorthand fixes its argument: conv3 takes only c positionally, not a kernel
        positional = tuple(
            p for p in self.positional if not (presets and p in presets and p == self.shorthand)
        )
        if len(args) > len(positional):
            value, vspan = args[len(positional)]
            hint = None
            if isinstance(value, Fragment):
                hint = f"separate layers with '+': `{shown} ... + ...`"
            elif positional == ("c", "k") and len(args) == 3 and habits.channels_then_kernel(args):
                hint = habits.conv_order_hint(shown, args[1][0], args[2][0])  # conv(3, 64, 3)
            elif positional:
                hint = (
                    f"{shown} takes {_plural(len(positional), 'positional argument')} "
                    f"({', '.join(positional)}); give the others by name"
                )
            else:
                hint = f"{shown} takes only keyword arguments" if self.args else None
            raise NetdslError(
                f"{shown} takes {_plural(len(positional), 'positional argument')} but "
                f"{len(args)} {'was' if len(args) == 1 else 'were'} given",
                vspan,
                hint=hint,
            )
        for (value, vspan), name in zip(args, positional):
            bound[name] = (value, vspan)
        for name, value, kspan in kwargs:
            spec = self.arg(name)
            if spec is None:
                names = [a.name for a in self.args] + [al for a in self.args for al in a.aliases]
                hint = habits.keyword_hint(self, shown, name, value) or did_you_mean(name, names)
                if hint is None:
                    hint = (
                        f"{shown} takes {', '.join(a.name for a in self.args)}"
                        if self.args
                        else f"{shown} takes no arguments"
                    )
                raise NetdslError(f"{shown} has no argument '{name}'", kspan, hint=hint)
            if spec.name in bound:
                hint = None
                if spec.name == "k" and len(args) == 2 and positional == ("c", "k"):
                    # `conv 3 64 k=3`: PyTorch's in_channels first
                    hint = habits.conv_order_hint(shown, args[1][0], value)
                raise NetdslError(f"{shown}: argument '{spec.name}' given twice", kspan, hint=hint)
            if presets and spec.name in presets and spec.name == self.shorthand:
                raise NetdslError(
                    f"{shown} fixes {spec.name}={presets[spec.name].value}; "
                    f"use {self.name} {spec.name}=... instead",
                    kspan,
                )
            bound[spec.name] = (value, kspan)
        out: dict = {}
        for spec in self.args:
            if spec.name in bound:
                value, vspan = bound[spec.name]
            elif presets and spec.name in presets:
                value, vspan = presets[spec.name], span
            elif defaults and spec.name in defaults:
                value, vspan = defaults[spec.name]
            elif spec.default is REQUIRED:
                raise NetdslError(
                    f"{shown} needs argument '{spec.name}'",
                    span,
                    hint=_usage(self, shown, positional),
                )
            else:
                out[spec.name] = _default_value(spec.default)
                continue
            out[spec.name] = _check(self, shown, spec, value, vspan)
        return out


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _usage(spec: LayerSpec, shown: str, positional: tuple[str, ...]) -> str:
    parts = [shown] + [f"<{p}>" for p in positional if spec.arg(p).default is REQUIRED]
    example = {
        "conv": "conv 64 k=3 (or conv3 64)",
        "fc": "fc 1000",
        "maxpool": "maxpool 3 s=2",
        "avgpool": "avgpool 2",
    }.get(spec.name)
    return f"write {example}" if example and shown == spec.name else "usage: " + " ".join(parts)


def _default_value(default):
    if isinstance(default, tuple):
        return Tup(Num(d) for d in default)
    if isinstance(default, (int, float, bool)):
        return Num(default)
    return default


# ---- argument kinds --------------------------------------------------------


def _is_int(v) -> bool:
    return isinstance(v, Num) and isinstance(v.value, int) and not isinstance(v.value, bool)


def _is_number(v) -> bool:
    return (
        isinstance(v, Num) and isinstance(v.value, (int, float)) and not isinstance(v.value, bool)
    )


def _ints(v, n_allowed, minimum):
    if _is_int(v):
        return v.value >= minimum
    if isinstance(v, Tup) and len(v) in n_allowed:
        return all(_is_int(i) and i.value >= minimum for i in v.items)
    return False


_CHECKS: dict[str, tuple[Callable, str]] = {
    "count": (lambda v: _is_int(v) and v.value >= 1, "a positive integer"),
    "natural": (lambda v: _is_int(v) and v.value >= 0, "a non-negative integer"),
    "size": (lambda v: _ints(v, (2,), 1), "a positive integer or a pair such as (1, 7)"),
    "pad": (
        lambda v: v == "same" or _ints(v, (2,), 0),
        "a non-negative integer, a pair (h, w), or same",
    ),
    "pad2": (lambda v: _ints(v, (2,), 0), "a non-negative integer or a pair (h, w)"),
    "pad4": (
        lambda v: _ints(v, (2, 4), 0),
        "a non-negative integer, a pair (h, w) or (left, right, top, bottom)",
    ),
    "prob": (lambda v: _is_number(v) and 0 <= v.value < 1, "a probability in [0, 1)"),
    "number": (_is_number, "a number"),
    "positive": (lambda v: _is_number(v) and v.value > 0, "a positive number"),
    "bool": (lambda v: isinstance(v, Num) and isinstance(v.value, bool), "true or false"),
    "act": (lambda v: v is None or isinstance(v, Fragment), "an activation layer such as relu"),
    "mode": (lambda v: v in ("nearest", "bilinear"), "nearest or bilinear"),
    "extent": (
        lambda v: isinstance(v, TensorSize) or _ints(v, (2,), 1),
        "a positive integer, a pair (h, w) or a named tensor (its height and width)",
    ),
    "tensor": (
        lambda v: isinstance(v, TensorSize),
        "a named tensor (its height and width are the size)",
    ),
    "token_pool": (lambda v: v in ("cls", "mean"), "cls (the first token) or mean"),
    "init": (
        lambda v: v is None or isinstance(v, Init) or _is_number(v),
        "an initializer such as kaiming_normal(fan_out, relu), normal(0, 0.01) or zeros, "
        "or a number",
    ),
    "tie": (
        lambda v: v is None or type(v).__name__ == "Tie",
        "a named tensor made by an embedding (its table becomes this layer's weight)",
    ),
}


def _check(layer: LayerSpec, shown: str, spec: ArgSpec, value, span: Span):
    ok, expected = _CHECKS[spec.kind]
    if not ok(value):
        got = kind_of(value)
        if isinstance(value, Num):
            got = (
                f"{value.value!r}"
                if not isinstance(value.value, bool)
                else str(value.value).lower()
            )
        hint = None
        if (
            isinstance(value, Num)
            and isinstance(value.value, float)
            and float(value.value).is_integer()
            and spec.kind in ("count", "natural", "size", "pad", "pad4")
        ):
            hint = "use // for integer division"
        elif spec.kind == "act" and isinstance(value, str) and lookup(value):  # act="relu"
            hint = f"netdsl has no strings here: write the bare word {value} ({spec.name}={value})"
        elif spec.kind != "act":
            hint = getattr(value, "number_hint", None)  # a block given where a number belongs
        raise NetdslError(f"{shown}: '{spec.name}' must be {expected}, got {got}", span, hint=hint)
    return value


# ---- helpers for the rules -------------------------------------------------


def pair(v) -> tuple[Num, Num]:
    if isinstance(v, Tup):
        return v.items[0], v.items[1]
    return v, v


def _image(name: str, shape: Shape) -> tuple[Num, Num, Num]:
    if len(shape) == 2:
        raise ShapeError(*_tokens_to_image(name, shape), shows_input=True)
    if len(shape) != 3:
        raise ShapeError(
            f"{name} needs an image tensor (C x H x W) but got a flat tensor of "
            f"{shape[0].value} features",
            shows_input=True,
        )
    return shape


def fmt_shape(shape) -> str:
    dims = "x".join(str(d.value if isinstance(d, Num) else d) for d in shape)
    return f"{dims} token ids (vocabulary {shape.vocab})" if isinstance(shape, TokenIds) else dims


def _square_side(n: int) -> int | None:
    side = int(round(n**0.5))
    return side if side * side == n else None


def _tokens_to_image(name: str, shape) -> tuple[str, str]:
    """(message, hint) for an image layer given tokens: insert `image h w`."""
    n, d = (_int(x) for x in shape)
    side = _square_side(n)
    grid = f"image {side} {side}" if side else "image h w"
    back = f"a {d} x {side} x {side} image" if side else f"a {d} x h x w image, h x w = {n}"
    return (
        f"{name} needs an image tensor (C x H x W) but got a sequence of {n} tokens of {d}",
        f"insert `{grid}` before {name} (the tokens back to {back})",
    )


def check_input(spec, shape) -> None:
    """Refuse a tensor kind the op does not read, naming the layer that converts it."""
    kind = shape_kind(shape)
    if kind in spec.accepts:
        return
    name = spec.name
    if spec.accepts == {"ids"}:
        raise ShapeError(
            f"{name} reads token ids, but got {fmt_shape(shape)}",
            hint=f"{name} starts a language model: declare `input N tokens of V` and apply it "
            "to the ids",
            shows_input=True,
        )
    if kind == "ids":
        raise ShapeError(
            f"{name} needs numbers, but the input is {fmt_shape(shape)}",
            hint=f"insert `embedding D` before {name} (each id to a learnt vector of D)",
            shows_input=True,
        )
    if kind == "tokens":  # every op reads images or tokens: this one, images
        message, hint = _tokens_to_image(name, shape)
        instead = {"gap": "token_pool mean", "gmp": "token_pool mean", "bn": "layernorm"}
        if name in instead:
            hint = f"on tokens, write `{instead[name]}`; or {hint}"
        raise ShapeError(message, hint, shows_input=True)
    if kind == "image" and "tokens" in spec.accepts:
        c, h, w = (_int(x) for x in shape)
        raise ShapeError(
            f"{name} needs a sequence of tokens (N x D) but got an image {fmt_shape(shape)}",
            hint=f"insert `tokens` before {name} (flatten H x W into N = {h}x{w} = {h * w} "
            f"tokens of {c}), or `patch_embed D p` to cut the image into p x p patches",
            shows_input=True,
        )
    raise ShapeError(
        f"{name} needs a sequence of tokens (N x D) but got {fmt_shape(shape)} features",
        hint=f"{name} reads tokens; a flat tensor has no sequence",
        shows_input=True,
    )


def _window(name, size: Num, k: Num, s: Num, p: Num, d: Num, ceil: bool = False, axis="H") -> Num:
    effective = d * (k - 1) + 1
    span = size + 2 * p - effective
    if ceil:
        # PyTorch: round up, but the last window must start inside the input; so a window
        # a little larger than the (padded) input can still give one output
        out = -((-span) // s) + 1
        if ((out - 1) * s).value >= (size + p).value:
            out = out - 1
    else:
        out = span // s + 1
    if out.value < 1:
        raise ShapeError(
            f"{name}: the {axis} size falls to zero: input {size.value}, padding {p.value}, "
            f"kernel {effective.value}",
            hint="the input is too small here; use a larger input, more padding or fewer "
            "downsampling layers before this one",
            shows_input=True,
        )
    return out


def _spatial(name, attrs, shape, ceil=False):
    c, h, w = _image(name, shape)
    kh, kw = pair(attrs["k"])
    sh, sw = pair(attrs["s"])
    ph, pw = pair(attrs["p"])
    dh, dw = pair(attrs.get("d", Num(1)))
    return (
        c,
        _window(name, h, kh, sh, ph, dh, ceil, "H"),
        _window(name, w, kw, sw, pw, dw, ceil, "W"),
    )


def resolve_same_padding(name: str, attrs: dict) -> None:
    """Turn p=same into the symmetric padding d*(k-1)//2 (odd kernels only)."""
    if attrs.get("p") != "same":
        return
    k, d = attrs["k"], attrs.get("d", Num(1))
    pads = []
    for kk, dd in zip(pair(k), pair(d)):
        if (dd.value * (kk.value - 1)) % 2:
            raise ShapeError(
                f"{name}: p=same needs an odd kernel size, got {kk.value}",
                hint="give the padding explicitly, e.g. p=1, or use zeropad",
            )
        pads.append(dd * (kk - 1) // 2)
    if isinstance(k, Tup) or isinstance(d, Tup):
        attrs["p"] = Tup(pads)
    else:
        attrs["p"] = pads[0]


# ---- parameter and MAC formulas ----------------------------------------------------------


def _int(d) -> int:
    return int(d.value) if isinstance(d, Num) else int(d)


def int_pair(attrs: dict, name: str) -> tuple[int, int]:
    a, b = pair(attrs[name])
    return _int(a), _int(b)


def _kernel(attrs: dict) -> tuple[int, int, str]:
    kh, kw = int_pair(attrs, "k")
    return kh, kw, "k x k" if kh == kw else "k_h x k_w"


def _grouped_in(attrs: dict, in_shape) -> tuple[Factor, str]:
    cin, g = _int(in_shape[0]), _int(attrs["g"])
    if g == 1:
        return Factor(cin), "c_in"
    return Factor(cin // g, f"{cin}/{g}"), "c_in/g"


def _mid(attrs: dict, in_shape) -> int:
    return _int(in_shape[0]) * _int(attrs["m"])


def _has_bias(attrs: dict) -> bool:
    return bool(attrs["bias"].value)


def numel(shape) -> int:
    """The number of values of a tensor of this shape (dimensions Nums or ints)."""
    out = 1
    for d in shape:
        out *= _int(d)
    return out


def _conv_params(attrs, in_shape, out_shape) -> Count:
    kh, kw, kk = _kernel(attrs)
    cin, cin_text = _grouped_in(attrs, in_shape)
    c, bias = _int(out_shape[0]), _has_bias(attrs)
    return count(
        f"c_out x {kk} x {cin_text}" + (" + c_out" if bias else ""),
        [(c, kh, kw, cin), (c,) if bias else ()],
    )


def _conv_macs(attrs, in_shape, out_shape) -> Count:
    kh, kw, kk = _kernel(attrs)
    cin, cin_text = _grouped_in(attrs, in_shape)
    c, h, w = (_int(d) for d in out_shape)
    return count(f"c_out x H_out x W_out x {kk} x {cin_text}", [(c, h, w, kh, kw, cin)])


def _dwconv_params(attrs, in_shape, out_shape) -> Count:
    kh, kw, kk = _kernel(attrs)
    c, bias = _int(out_shape[0]), _has_bias(attrs)
    return count(f"C x {kk}" + (" + C" if bias else ""), [(c, kh, kw), (c,) if bias else ()])


def _dwconv_macs(attrs, in_shape, out_shape) -> Count:
    kh, kw, kk = _kernel(attrs)
    c, h, w = (_int(d) for d in out_shape)
    return count(f"C x H_out x W_out x {kk}", [(c, h, w, kh, kw)])


def _sepconv_params(attrs, in_shape, out_shape) -> Count:
    kh, kw, kk = _kernel(attrs)
    mid, c, bias = _mid(attrs, in_shape), _int(out_shape[0]), _has_bias(attrs)
    return count(
        f"C_mid x {kk} + C_mid x c_out" + (" + c_out" if bias else ""),
        [(mid, kh, kw), (mid, c), (c,) if bias else ()],
    )


def _sepconv_macs(attrs, in_shape, out_shape) -> Count:
    kh, kw, kk = _kernel(attrs)
    mid = _mid(attrs, in_shape)
    c, h, w = (_int(d) for d in out_shape)
    return count(
        f"C_mid x H_out x W_out x {kk} + c_out x H_out x W_out x C_mid",
        [(mid, h, w, kh, kw), (c, h, w, mid)],
    )


def _fc_params(attrs, in_shape, out_shape) -> Count:
    n, bias = _int(out_shape[-1]), _has_bias(attrs)
    if attrs.get("tie") is not None:  # the embedding's table is the weight: counted there
        return count(
            "tied weight (counted at the embedding)" + (" + n_out" if bias else ""),
            [(n,) if bias else (0,)],
        )
    fin = _int(in_shape[-1]) if len(in_shape) == 2 else numel(in_shape)
    return count("n_out x n_in" + (" + n_out" if bias else ""), [(n, fin), (n,) if bias else ()])


def _fc_macs(attrs, in_shape, out_shape) -> Count:
    if len(in_shape) == 2:  # the same linear map at every token
        n_tok, d = (_int(x) for x in in_shape)
        return count("N x n_out x D (at each token)", [(n_tok, _int(out_shape[-1]), d)])
    return count("n_out x n_in", [(_int(out_shape[0]), numel(in_shape))])


def _bn_params(attrs, in_shape, out_shape) -> Count:
    c = _int(out_shape[0])
    note = f"+ {2 * c:,} running mean and variance (buffers, not parameters)"
    if not attrs["scale"].value:
        return count("C (beta only: scale=false)", [(c,)], note)
    return count("2 x C (gamma, beta)", [(2, c)], note)


def _layernorm_params(attrs, in_shape, out_shape) -> Count:
    if len(out_shape) == 2:
        return count("2 x D (gamma, beta)", [(2, _int(out_shape[1]))])
    return count("2 x C (gamma, beta)", [(2, _int(out_shape[0]))])


def _instancenorm_params(attrs, in_shape, out_shape) -> Count:
    if not attrs["affine"].value:
        return count("affine=false: no gamma, beta", [(0,)])
    return count("2 x C (gamma, beta)", [(2, _int(out_shape[0]))])


def _layer_scale_params(attrs, in_shape, out_shape) -> Count:
    if len(out_shape) == 2:
        return count("D (gamma)", [(_int(out_shape[1]),)])
    return count("C (gamma)", [(_int(out_shape[0]),)])


def _pointwise_fc_params(attrs, in_shape, out_shape) -> Count:
    c, n, bias = _int(in_shape[0]), _int(out_shape[0]), _has_bias(attrs)
    return count("n_out x C" + (" + n_out" if bias else ""), [(n, c), (n,) if bias else ()])


def _pointwise_fc_macs(attrs, in_shape, out_shape) -> Count:
    c, (n, h, w) = _int(in_shape[0]), (_int(d) for d in out_shape)
    return count("n_out x C x H x W (at each position)", [(n, c, h, w)])


# ---- shape derivations (what explain shows under each layer) -----------------------------


def _window_record(axis, size, k, s, p, d, ceil, out) -> Window:
    num = size - (d * (k - 1) + 1) + 2 * p
    exact = num % s == 0
    dropped = ceil and not exact and -(-num // s) + 1 != out
    return Window(axis, size, k, s, p, d, ceil, out, exact, dropped)


def windows(node) -> list[Window]:
    """The H and W window derivations of a windowed layer (one when both axes agree)."""
    a = node.attrs
    _, h, w = (_int(d) for d in node.in_shapes[0])
    _, oh, ow = node.out_shape
    (kh, kw), (sh, sw), (ph, pw) = (int_pair(a, n) for n in ("k", "s", "p"))
    dh, dw = int_pair(a, "d") if "d" in a else (1, 1)
    ceil = bool(node.value("ceil")) if "ceil" in a else False
    hw = _window_record("H", h, kh, sh, ph, dh, ceil, oh)
    ww = _window_record("W", w, kw, sw, pw, dw, ceil, ow)
    if (h, kh, sh, ph, dh) == (w, kw, sw, pw, dw):
        return [Window("H = W", h, kh, sh, ph, dh, ceil, oh, hw.exact, hw.last_dropped)]
    return [hw, ww]


def _derive_conv(node) -> list:
    return [Note(f"C = {node.out_shape[0]} output channels"), *windows(node)]


def _derive_dwconv(node) -> list:
    cin, m = _int(node.in_shapes[0][0]), int(node.value("m"))
    return [Equation("C", (cin, m), "x", node.out_shape[0]), *windows(node)]


def _derive_global(node) -> list:
    return [Note("global pooling: H = W = 1")]


def _derive_adaptive(node) -> list:
    return [Note(f"adaptive pooling to {node.out_shape[1]}x{node.out_shape[2]}")]


def _derive_fc(node) -> list:
    if len(node.out_shape) == 2:
        n, d = node.out_shape
        d_in = _int(node.in_shapes[0][1])
        return [Note(f"{d} output features at each of the {n} tokens (from {d_in})")]
    return [Note(f"{node.out_shape[0]} output features (from {numel(node.in_shapes[0])} inputs)")]


def _derive_pointwise_fc(node) -> list:
    n, h, w = node.out_shape
    c = _int(node.in_shapes[0][0])
    return [Note(f"C = {n} output features at each of the {h}x{w} positions (from {c})")]


def _derive_flatten(node) -> list:
    shape = tuple(_int(d) for d in node.in_shapes[0])
    if len(shape) == 1:
        return [Note("already flat")]
    return [Equation("features", shape, "x", node.out_shape[0])]


def _derive_zeropad(node) -> list:
    left, right, top, bottom = (_int(v) for v in zeropad_sides(node.attrs["p"]))
    _, h, w = (_int(d) for d in node.in_shapes[0])
    _, oh, ow = node.out_shape
    return [Equation("H", (h, top, bottom), "+", oh), Equation("W", (w, left, right), "+", ow)]


def _derive_crop(node) -> list:
    _, h, w = (_int(d) for d in node.in_shapes[0])
    _, oh, ow = node.out_shape
    if node.attrs.get("size") is not None:
        (top, bottom), (left, right) = center_offsets(h, oh), center_offsets(w, ow)
        return [
            Note(f"the center, as large as {node.attrs['size'].name}: {oh}x{ow}"),
            Equation("H", (h, top, bottom), "-", oh),
            Equation("W", (w, left, right), "-", ow),
        ]
    left, right, top, bottom = (_int(v) for v in zeropad_sides(node.attrs["p"]))
    return [Equation("H", (h, top, bottom), "-", oh), Equation("W", (w, left, right), "-", ow)]


def _derive_concat(node) -> list:
    out = node.out_shape
    channels = tuple(_int(s[0]) for s in node.in_shapes)
    return [Equation("C" if len(out) == 3 else "features", channels, "+", out[0])]


def _derive_equal(node) -> list:
    return [Note(f"{len(node.in_shapes)} branches of the same shape")]


def _derive_broadcast(node) -> list:
    shapes = ("x".join(str(_int(d)) for d in s) for s in node.in_shapes)
    return [Note("broadcast: " + " * ".join(shapes))]


def derivation(node) -> list:
    """How a node's output shape follows from its input and arguments."""
    if node.op == "input":
        return [Note("the declared input")]
    spec = spec_of(node.op)
    if spec.derive is not None:
        return spec.derive(node)
    return [Note("same shape as the input")]


# ---- rules -----------------------------------------------------------------


def _conv(attrs, shape):
    resolve_same_padding("conv", attrs)
    cin = _image("conv", shape)[0]
    cout, g = attrs["c"], attrs["g"]
    if cin.value % g.value or cout.value % g.value:
        raise ShapeError(
            f"conv: groups={g.value} must divide both input channels ({cin.value}) and output "
            f"channels ({cout.value})",
            hint="choose a group count that divides both",
            shows_input=True,
        )
    out = (cout, *_spatial("conv", attrs, shape)[1:])
    return Inferred(
        out,
        _conv_params(attrs, shape, out).value,
        _conv_macs(attrs, shape, out).value,
        derived={"in_channels": cin},
    )


def _dwconv(attrs, shape):
    resolve_same_padding("dwconv", attrs)
    cin = _image("dwconv", shape)[0]
    cout = cin * attrs["m"]
    out = (cout, *_spatial("dwconv", attrs, shape)[1:])
    params = _dwconv_params(attrs, shape, out).value
    return Inferred(
        out, params, _dwconv_macs(attrs, shape, out).value, derived={"in_channels": cin}
    )


def _sepconv(attrs, shape):
    resolve_same_padding("sepconv", attrs)
    cin = _image("sepconv", shape)[0]
    mid = cin * attrs["m"]
    cout = attrs["c"]
    out = (cout, *_spatial("sepconv", attrs, shape)[1:])
    params = _sepconv_params(attrs, shape, out).value
    macs = _sepconv_macs(attrs, shape, out).value
    return Inferred(out, params, macs, derived={"in_channels": cin, "mid_channels": mid})


def _pool_args(name, attrs):
    if attrs.get("s") is None:
        attrs["s"] = attrs["k"]
    for kk, pp in zip(pair(attrs["k"]), pair(attrs["p"])):
        if 2 * pp.value > kk.value:
            raise ShapeError(
                f"{name}: padding {pp.value} is more than half the kernel {kk.value}",
                hint="PyTorch allows at most k//2 padding for pooling",
            )


def _maxpool(attrs, shape):
    _pool_args("maxpool", attrs)
    c, oh, ow = _spatial("maxpool", attrs, shape, ceil=attrs["ceil"].value)
    return Inferred((c, oh, ow))


def _avgpool(attrs, shape):
    _pool_args("avgpool", attrs)
    c, oh, ow = _spatial("avgpool", attrs, shape, ceil=attrs["ceil"].value)
    return Inferred((c, oh, ow))


def _global(name):
    def rule(attrs, shape):
        c = _image(name, shape)[0]
        return Inferred((c, Num(1), Num(1)))

    return rule


def _adaptive_pool(name):
    def rule(attrs, shape):
        c = _image(name, shape)[0]
        oh, ow = pair(attrs["size"])
        return Inferred((c, oh, ow))

    return rule


def flat_features(name: str, shape: Shape, per_position: str = "") -> Num:
    if len(shape) == 1:
        return shape[0]
    c, h, w = shape
    if h.value == 1 and w.value == 1:
        return c
    also = f"; `{per_position}` applies it at each position" if per_position else ""
    raise ShapeError(
        f"{name} needs a flat input but got {fmt_shape(shape)}",
        hint=f"insert `flatten` (to {c.value * h.value * w.value} features) or `gap` "
        f"(to {c.value}) before {name}{also}",
        shows_input=True,
    )


def _fc(attrs, shape):
    if attrs.get("tie") is not None:
        _check_tie(attrs, shape)
    if len(shape) == 2:  # nn.Linear maps the last dimension: every token alike
        out = (shape[0], attrs["n"])
        params = _fc_params(attrs, shape, out).value
        macs = _fc_macs(attrs, shape, out).value
        return Inferred(out, params, macs, derived={"in_features": shape[1]})
    fin = flat_features("fc", shape, f"pointwise_fc {attrs['n'].value}")
    out = (attrs["n"],)
    params = _fc_params(attrs, shape, out).value
    return Inferred(out, params, _fc_macs(attrs, shape, out).value, derived={"in_features": fin})


def _check_tie(attrs, shape) -> None:
    """`fc n tie=emb` reuses emb's V x D table as its n x D weight: emb must be an embedding's
    output, with V = n and D = the features fc reads."""
    tie = attrs["tie"]
    table = tie.node
    if table.op != "embedding":
        raise ShapeError(
            f"fc: tie={tie.name} names the output of {table.op}, not of an embedding",
            hint=f"name the embedding's own output: `{tie.name} = embedding D`",
        )
    vocab, dim = _int(table.attrs["vocab"]), _int(table.attrs["d"])
    d_in = _int(shape[-1])
    if _int(attrs["n"]) != vocab or d_in != dim:
        raise ShapeError(
            f"fc {_int(attrs['n'])} on {d_in} features cannot share {tie.name}'s table of "
            f"{vocab} x {dim}",
            hint=f"a tied output layer is fc {vocab} on {dim} features (the embedding's rows "
            "and width)",
        )


def _flatten(attrs, shape):
    if len(shape) == 1:
        return Inferred(shape)
    out = shape[0]
    for d in shape[1:]:
        out = out * d
    return Inferred((out,))


def _bn(attrs, shape):
    c = shape[0]  # the shift beta always; the scale gamma unless scale=false
    params = _bn_params(attrs, shape, shape).value
    return Inferred(shape, params, buffers=2 * c.value, derived={"num_features": c})


def _layernorm(attrs, shape):
    # over the channels at each position, over the features, or over D at each token
    c = shape[-1] if len(shape) == 2 else shape[0]
    params = _layernorm_params(attrs, shape, shape).value
    return Inferred(shape, params, derived={"num_features": c})


def _groupnorm(attrs, shape):
    c, g = shape[0], attrs["g"]  # over each group of C/g channels (and all positions)
    if c.value % g.value:
        divisors = [d for d in range(1, c.value + 1) if c.value % d == 0]
        closest = min(divisors, key=lambda d: (abs(d - g.value), -d))
        raise ShapeError(
            f"groupnorm: {g.value} groups do not divide {c.value} channels",
            hint=f"choose a group count that divides the channels, e.g. groupnorm {closest}",
        )
    if numel(shape) == g.value:
        raise ShapeError(
            "groupnorm: each group holds one value, which would normalise to zero "
            "(PyTorch refuses it)",
            hint="use fewer groups, or normalise a larger tensor",
        )
    params = _layernorm_params(attrs, shape, shape).value
    return Inferred(shape, params, derived={"num_features": c})


def _instancenorm(attrs, shape):
    c, h, w = _image("instancenorm", shape)  # over the positions of each channel
    if h.value * w.value == 1:
        raise ShapeError(
            "instancenorm needs more than one position: each channel of a 1x1 image "
            "would normalise to zero (PyTorch refuses it)",
            hint="normalise before the global pooling, or use layernorm over the channels",
        )
    params = _instancenorm_params(attrs, shape, shape).value
    return Inferred(shape, params, derived={"num_features": c})


def _layer_scale(attrs, shape):
    # one learnable factor per channel (per feature of a flat tensor, per D of tokens)
    c = shape[-1] if len(shape) == 2 else shape[0]
    return Inferred(shape, _layer_scale_params(attrs, shape, shape).value, derived={"channels": c})


def _pointwise_fc(attrs, shape):
    c, h, w = _image("pointwise_fc", shape)
    out = (attrs["n"], h, w)
    params = _pointwise_fc_params(attrs, shape, out).value
    macs = _pointwise_fc_macs(attrs, shape, out).value
    return Inferred(out, params, macs, derived={"in_features": c})


def _same(attrs, shape):
    return Inferred(shape)


def _zeropad(attrs, shape):
    c, h, w = _image("zeropad", shape)
    left, right, top, bottom = zeropad_sides(attrs["p"])
    return Inferred((c, h + top + bottom, w + left + right))


def zeropad_sides(p) -> tuple[Num, Num, Num, Num]:
    """(left, right, top, bottom), PyTorch ZeroPad2d's order."""
    if isinstance(p, Tup) and len(p) == 4:
        return p.items
    ph, pw = pair(p)
    return pw, pw, ph, ph


def _crop(attrs, shape):
    c, h, w = _image("crop", shape)
    p, size = attrs.get("p"), attrs.get("size")
    if (p is None) == (size is None):
        raise ShapeError(
            "crop takes the rows and columns to remove or size=, not both"
            if p is not None
            else "crop needs the rows and columns to remove, or size=",
            hint="write crop 4, crop (left, right, top, bottom), or crop size=x "
            "(the center of the input, as large as the tensor x)",
        )
    if size is not None:
        oh, ow = _extent("crop", size)
        if oh.value > h.value or ow.value > w.value:
            raise ShapeError(
                f"crop: the input ({h.value}x{w.value}) is smaller than {size.name}'s "
                f"{oh.value}x{ow.value}; a center crop only removes rows and columns",
                hint="crop the larger tensor to the smaller one's size, or pad (zeropad) "
                "or upsample the smaller one",
            )
        return Inferred((c, oh, ow))
    left, right, top, bottom = zeropad_sides(p)
    out_h, out_w = h - top - bottom, w - left - right
    if out_h.value < 1 or out_w.value < 1:
        raise ShapeError(
            f"crop: removing {top.value}+{bottom.value} rows and "
            f"{left.value}+{right.value} columns leaves nothing",
            hint="crop fewer rows or columns, or crop a larger input",
        )
    return Inferred((c, out_h, out_w))


def _parts(shape) -> str:
    """What a channel selection counts: channels of an image, features of a flat tensor."""
    return "channels" if len(shape) == 3 else "features"


def _chunk(attrs, shape):
    """torch.chunk(x, n, dim=1)[i], with n dividing the channels (equal parts only)."""
    c, n, i = shape[0], attrs["n"], attrs["i"]
    what = _parts(shape)
    if c.value % n.value:
        raise ShapeError(
            f"chunk: {n.value} equal parts do not divide {c.value} {what}",
            hint=f"choose a number of parts that divides {c.value}, or select "
            "channels(start, stop) explicitly",
        )
    if i.value >= n.value:
        raise ShapeError(
            f"chunk: there is no part {i.value} of {n.value} (parts are numbered 0 to "
            f"{n.value - 1})",
            hint=f"write chunk({n.value}, 0) ... chunk({n.value}, {n.value - 1})",
        )
    return Inferred((c // n, *shape[1:]))


def _channels(attrs, shape):
    """x[:, start:stop]: channels start ... stop - 1 (features of a flat tensor)."""
    c, start, stop = shape[0], attrs["start"], attrs["stop"]
    what = _parts(shape)
    if stop.value > c.value:
        raise ShapeError(
            f"channels: stop {stop.value} is past the last of {c.value} {what}",
            hint=f"the {what} are numbered 0 to {c.value - 1}; stop is one past the last selected",
        )
    if start.value >= stop.value:
        raise ShapeError(
            f"channels({start.value}, {stop.value}) selects nothing",
            hint="write channels(start, stop) with start < stop: channels start ... stop - 1",
        )
    return Inferred((stop - start, *shape[1:]))


def _derive_chunk(node) -> list:
    c, n, i = _int(node.in_shapes[0][0]), int(node.value("n")), int(node.value("i"))
    size = c // n
    label = "C" if len(node.out_shape) == 3 else "features"
    return [
        Equation(label, (c, n), "/", size),
        Note(f"part {i} of {n}: {_parts(node.out_shape)} {i * size} to {(i + 1) * size - 1}"),
    ]


def _derive_channels(node) -> list:
    start, stop = int(node.value("start")), int(node.value("stop"))
    label = "C" if len(node.out_shape) == 3 else "features"
    return [Equation(label, (stop, start), "-", stop - start)]


def _shuffle(attrs, shape):
    c = _image("shuffle", shape)[0]
    if c.value % attrs["g"].value:
        raise ShapeError(f"shuffle: {attrs['g'].value} groups do not divide {c.value} channels")
    return Inferred(shape)


def _lrn(attrs, shape):
    _image("lrn", shape)
    return Inferred(shape)


# ---- the catalogue ---------------------------------------------------------

_ACT = ArgSpec("act", "act", None, "activation applied after the layer, e.g. act=relu")
_BIAS = ArgSpec("bias", "bool", True, "learn an additive bias")
_K = ArgSpec("k", "size", REQUIRED, "kernel size", ("kernel",))
_S = ArgSpec("s", "size", 1, "stride", ("stride",))
_P = ArgSpec("p", "pad", 0, "zero padding on each side, or same", ("pad", "padding"))
_D = ArgSpec("d", "size", 1, "dilation", ("dilation",))

_CONV_TRAITS = frozenset({FRESH, WINDOWED})

CATALOGUE: dict[str, LayerSpec] = {}


_INIT_DOCS = {
    "init": "how the weight starts: an initializer such as kaiming_normal(fan_out, relu)",
    "bias_init": "how the bias starts: a number or an initializer such as normal(0, 0.01)",
    "gamma_init": "the scale's starting value (gamma): a number or an initializer",
    "beta_init": "the shift's starting value (beta): a number or an initializer",
    "out_init": "how the output projection's weight starts (default: as init says)",
}


def _with_inits(spec: LayerSpec) -> LayerSpec:
    """A layer with weights takes an init keyword for each kind of tensor it has
    (netdsl.initializers.TENSORS says which, and what each starts from unwritten)."""
    keys = dict.fromkeys(t.arg for t in TENSORS.get(spec.name, ()))
    extra = tuple(ArgSpec(k, "init", None, _INIT_DOCS[k]) for k in keys if not spec.arg(k))
    return replace(spec, args=spec.args + extra) if extra else spec


def _add(spec: LayerSpec) -> None:
    spec = _with_inits(spec)
    for name in (spec.name, *spec.aliases):
        CATALOGUE[name] = spec


_add(
    LayerSpec(
        "conv",
        "2-D convolution (PyTorch Conv2d). Shorthand convN c = conv c k=N p=same.",
        "conv",
        _conv,
        (
            ArgSpec("c", "count", REQUIRED, "output channels", ("out",)),
            _K,
            _S,
            _P,
            _D,
            ArgSpec("g", "count", 1, "groups", ("groups",)),
            _BIAS,
            _ACT,
        ),
        positional=("c", "k"),
        shorthand="k",
        traits=_CONV_TRAITS,
        derived=("in_channels",),
        params=_conv_params,
        macs=_conv_macs,
        receptive="window",
        derive=_derive_conv,
        named=("k", "p"),
    )
)
_add(
    LayerSpec(
        "dwconv",
        "depthwise convolution: one filter per input channel (times m).",
        "conv",
        _dwconv,
        (
            ArgSpec("k", "size", 3, "kernel size", ("kernel",)),
            _S,
            _P,
            _D,
            ArgSpec("m", "count", 1, "depth multiplier", ("multiplier",)),
            _BIAS,
            _ACT,
        ),
        positional=("k",),
        shorthand="k",
        traits=_CONV_TRAITS,
        derived=("in_channels",),
        params=_dwconv_params,
        macs=_dwconv_macs,
        receptive="window",
        derive=_derive_dwconv,
        named=("k", "p"),
    )
)
_add(
    LayerSpec(
        "sepconv",
        "depthwise-separable convolution (Keras SeparableConv2D): depthwise "
        "k x k without bias, then pointwise 1x1 to c channels.",
        "conv",
        _sepconv,
        (
            ArgSpec("c", "count", REQUIRED, "output channels", ("out",)),
            ArgSpec("k", "size", 3, "kernel size", ("kernel",)),
            _S,
            _P,
            _D,
            ArgSpec("m", "count", 1, "depth multiplier", ("multiplier",)),
            _BIAS,
            _ACT,
        ),
        positional=("c", "k"),
        shorthand="k",
        traits=_CONV_TRAITS,
        derived=("in_channels", "mid_channels"),
        params=_sepconv_params,
        macs=_sepconv_macs,
        receptive="window",
        derive=_derive_conv,
        named=("k", "p"),
    )
)
_POOL_S = ArgSpec("s", "size", None, "stride (default: the kernel size)", ("stride",))
_CEIL = ArgSpec("ceil", "bool", False, "ceil mode: keep a last partial window", ("ceil_mode",))
_add(
    LayerSpec(
        "maxpool",
        "max pooling (MaxPool2d). maxpoolN = maxpool N (stride N).",
        "pool",
        _maxpool,
        (_K, _POOL_S, ArgSpec("p", "pad2", 0, "padding", ("pad", "padding")), _D, _CEIL),
        positional=("k",),
        shorthand="k",
        traits=frozenset({FRESH, KEEPS_SIGN, WINDOWED, SAVES_INDICES}),
        receptive="window",
        derive=windows,
    )
)
_add(
    LayerSpec(
        "avgpool",
        "average pooling (AvgPool2d). avgpoolN = avgpool N (stride N).",
        "pool",
        _avgpool,
        (
            _K,
            _POOL_S,
            ArgSpec("p", "pad2", 0, "padding", ("pad", "padding")),
            _CEIL,
            ArgSpec(
                "count_pad",
                "bool",
                True,
                "count padded zeros in the average",
                ("count_include_pad",),
            ),
        ),
        positional=("k",),
        shorthand="k",
        traits=frozenset({FRESH, KEEPS_SIGN, WINDOWED}),
        receptive="window",
        derive=windows,
    )
)
_add(
    LayerSpec(
        "gap",
        "global average pooling to C x 1 x 1.",
        "pool",
        _global("gap"),
        aliases=("global_avgpool",),
        traits=frozenset({FRESH, KEEPS_SIGN}),
        receptive="global",
        derive=_derive_global,
    )
)
_add(
    LayerSpec(
        "gmp",
        "global max pooling to C x 1 x 1.",
        "pool",
        _global("gmp"),
        aliases=("global_maxpool",),
        traits=frozenset({FRESH, KEEPS_SIGN, SAVES_INDICES}),
        receptive="global",
        derive=_derive_global,
    )
)
_add(
    LayerSpec(
        "adaptive_avgpool",
        "adaptive average pooling to a fixed size.",
        "pool",
        _adaptive_pool("adaptive_avgpool"),
        (ArgSpec("size", "size", REQUIRED, "output size"),),
        positional=("size",),
        traits=frozenset({FRESH, KEEPS_SIGN}),
        receptive="adaptive",
        derive=_derive_adaptive,
    )
)
_add(
    LayerSpec(
        "adaptive_maxpool",
        "adaptive max pooling to a fixed size.",
        "pool",
        _adaptive_pool("adaptive_maxpool"),
        (ArgSpec("size", "size", REQUIRED, "output size"),),
        positional=("size",),
        traits=frozenset({FRESH, KEEPS_SIGN, SAVES_INDICES}),
        receptive="adaptive",
        derive=_derive_adaptive,
    )
)
_add(
    LayerSpec(
        "fc",
        "fully connected layer (Linear / Dense). Needs a flat input or C x 1 x 1; on tokens, "
        "the same map at every token.",
        "linear",
        _fc,
        (
            ArgSpec("n", "count", REQUIRED, "output features", ("out",)),
            _BIAS,
            _ACT,
            ArgSpec("tie", "tie", None, "share an embedding's table: tie=<its output's name>"),
        ),
        positional=("n",),
        aliases=("dense", "linear"),
        traits=frozenset({FRESH, READS_FLAT}),
        derived=("in_features",),
        params=_fc_params,
        macs=_fc_macs,
        receptive="flat",
        derive=_derive_fc,
    )
)
_add(
    LayerSpec(
        "pointwise_fc",
        "a fully connected layer applied at every position of a C x H x W image, to its "
        "C channels (ConvNeXt's Linear on channels-last).",
        "linear",
        _pointwise_fc,
        (ArgSpec("n", "count", REQUIRED, "output features", ("out",)), _BIAS, _ACT),
        positional=("n",),
        aliases=("pointwise_linear",),
        traits=frozenset({FRESH}),
        derived=("in_features",),
        params=_pointwise_fc_params,
        macs=_pointwise_fc_macs,
        derive=_derive_pointwise_fc,
    )
)
_add(
    LayerSpec(
        "flatten",
        "flatten C x H x W to C*H*W features.",
        "shape",
        _flatten,
        traits=frozenset({KEEPS_SIGN, VIEW, MINOR}),
        derive=_derive_flatten,
    )
)
_add(
    LayerSpec(
        "bn",
        "batch normalisation (BatchNorm2d, or 1d on flat tensors).",
        "norm",
        _bn,
        (
            ArgSpec("eps", "positive", 1e-5, "added to the variance"),
            ArgSpec("momentum", "prob", 0.1, "running-statistics momentum (PyTorch's)"),
            ArgSpec(
                "scale",
                "bool",
                True,
                "learn the scale gamma; false keeps only the shift "
                "beta, like Keras' BatchNormalization(scale=False) in Inception models",
            ),
        ),
        aliases=("batchnorm",),
        traits=frozenset({FRESH, MINOR}),
        derived=("num_features",),
        params=_bn_params,
    )
)
_add(
    LayerSpec(
        "layernorm",
        "layer normalisation: over the channels at each position of an image (ConvNeXt's "
        "LayerNorm2d), over the features of a flat tensor.",
        "norm",
        _layernorm,
        (ArgSpec("eps", "positive", 1e-5, "added to the variance"),),
        aliases=("ln", "layer_norm"),
        traits=frozenset({FRESH, MINOR}),
        derived=("num_features",),
        params=_layernorm_params,
    )
)
_add(
    LayerSpec(
        "groupnorm",
        "group normalisation (GroupNorm): the channels in g groups, each normalised over "
        "its channels and all positions; a learnt scale and shift per channel.",
        "norm",
        _groupnorm,
        (
            ArgSpec("g", "count", REQUIRED, "groups (must divide the channels)", ("groups",)),
            ArgSpec("eps", "positive", 1e-5, "added to the variance"),
        ),
        positional=("g",),
        aliases=("gn", "group_norm"),
        traits=frozenset({FRESH, MINOR}),
        derived=("num_features",),
        params=_layernorm_params,
    )
)
_add(
    LayerSpec(
        "instancenorm",
        "instance normalisation (InstanceNorm2d): each channel over its positions, with "
        "the statistics of the sample in training and inference alike.",
        "norm",
        _instancenorm,
        (
            ArgSpec("eps", "positive", 1e-5, "added to the variance"),
            ArgSpec("affine", "bool", False, "learn a scale and shift per channel (PyTorch's)"),
        ),
        aliases=("instance_norm",),
        traits=frozenset({FRESH, MINOR}),
        derived=("num_features",),
        params=_instancenorm_params,
    )
)
_add(
    LayerSpec(
        "layer_scale",
        "learnable per-channel scale gamma, initialised to init (ConvNeXt's layer scale).",
        "norm",
        _layer_scale,
        (ArgSpec("init", "number", 1e-6, "initial value of every gamma", ("init_value",)),),
        positional=("init",),
        traits=frozenset({FRESH, MINOR}),
        derived=("channels",),
        params=_layer_scale_params,
    )
)
_add(
    LayerSpec(
        "lrn",
        "local response normalisation (LocalResponseNorm); defaults are AlexNet's.",
        "norm",
        _lrn,
        (
            ArgSpec("n", "count", 5, "neighbouring channels", ("size",)),
            ArgSpec("alpha", "number", 1e-4, "scale (PyTorch divides it by n)"),
            ArgSpec("beta", "number", 0.75, "exponent"),
            ArgSpec("k", "number", 2.0, "additive constant"),
        ),
        positional=("n",),
        traits=frozenset({MINOR}),
    )
)
_add(
    LayerSpec(
        "dropout",
        "dropout with probability p (training only).",
        "regularization",
        _same,
        (ArgSpec("p", "prob", 0.5, "drop probability"),),
        positional=("p",),
        traits=frozenset({KEEPS_SIGN, INFERENCE_IDENTITY, MINOR}),
    )
)
_add(
    LayerSpec(
        "drop_path",
        "stochastic depth: drops the whole sample's branch with probability p "
        "(training only, survivors scaled by 1/(1-p)).",
        "regularization",
        _same,
        (ArgSpec("p", "prob", REQUIRED, "drop probability"),),
        positional=("p",),
        traits=frozenset({KEEPS_SIGN, INFERENCE_IDENTITY, MINOR}),
    )
)
_POSITIVE = frozenset({NON_NEGATIVE, MINOR})
for _name, _doc, _traits in (
    ("relu", "max(x, 0)", frozenset({IN_PLACE, NON_NEGATIVE})),
    ("relu6", "min(max(x, 0), 6)", frozenset({IN_PLACE, NON_NEGATIVE})),
    ("sigmoid", "1 / (1 + exp(-x))", _POSITIVE),
    ("tanh", "hyperbolic tangent", frozenset()),
    ("hardswish", "x * relu6(x + 3) / 6", frozenset({IN_PLACE})),
    ("hardsigmoid", "relu6(x + 3) / 6", frozenset({IN_PLACE, NON_NEGATIVE})),
):
    _add(LayerSpec(_name, f"activation: {_doc}.", "activation", _same, traits=_traits | {MINOR}))
_add(
    LayerSpec(
        "gelu",
        "activation: Gaussian error linear unit, x * Phi(x) (exact erf form; approximate=true: "
        "the tanh form, GPT-2's gelu_new).",
        "activation",
        _same,
        (ArgSpec("approximate", "bool", False, "the tanh approximation"),),
        traits=frozenset({MINOR}),
    )
)
_add(
    LayerSpec(
        "silu",
        "activation: x * sigmoid(x).",
        "activation",
        _same,
        aliases=("swish",),
        traits=frozenset({IN_PLACE, MINOR}),
    )
)
_add(
    LayerSpec(
        "leaky_relu",
        "activation: x if x > 0 else slope * x.",
        "activation",
        _same,
        (ArgSpec("slope", "number", 0.01, "negative slope"),),
        positional=("slope",),
        traits=frozenset({IN_PLACE, MINOR}),
    )
)
_add(
    LayerSpec(
        "elu",
        "activation: x if x > 0 else alpha * (exp(x) - 1).",
        "activation",
        _same,
        (ArgSpec("alpha", "number", 1.0, "scale of the negative part"),),
        positional=("alpha",),
        traits=frozenset({IN_PLACE, MINOR}),
    )
)
_add(
    LayerSpec(
        "softmax", "softmax over channels (or features).", "activation", _same, traits=_POSITIVE
    )
)
_add(
    LayerSpec(
        "zeropad",
        "zero padding: p, (h, w) or (left, right, top, bottom).",
        "shape",
        _zeropad,
        (ArgSpec("p", "pad4", REQUIRED, "padding", ("pad", "padding")),),
        positional=("p",),
        traits=frozenset({FRESH, KEEPS_SIGN}),
        derive=_derive_zeropad,
    )
)
_add(
    LayerSpec(
        "crop",
        "remove rows and columns at the edges: p, (h, w) or (left, right, top, bottom); "
        "or keep the center, as large as a named tensor (size=x, read at run time; "
        "torchvision's center_crop rounding).",
        "shape",
        _crop,
        (
            ArgSpec("p", "pad4", None, "rows and columns removed", ("cropping",)),
            ArgSpec("size", "tensor", None, "center crop to a named tensor's height and width"),
        ),
        positional=("p",),
        traits=frozenset({KEEPS_SIGN, VIEW}),
        derive=_derive_crop,
    )
)
_add(
    LayerSpec(
        "shuffle",
        "channel shuffle with g groups (ShuffleNet).",
        "shape",
        _shuffle,
        (ArgSpec("g", "count", REQUIRED, "groups", ("groups",)),),
        positional=("g",),
        traits=frozenset({KEEPS_SIGN}),
    )
)
_add(
    LayerSpec(
        "chunk",
        "the i-th of n equal parts of the channels (or features), numbered from 0: "
        "torch.chunk(x, n, dim=1)[i]; n must divide the channels.",
        "shape",
        _chunk,
        (
            ArgSpec("n", "count", REQUIRED, "number of equal parts", ("chunks",)),
            ArgSpec("i", "natural", REQUIRED, "which part, from 0", ("index",)),
        ),
        positional=("n", "i"),
        traits=frozenset({KEEPS_SIGN, VIEW}),
        derive=_derive_chunk,
    )
)
_add(
    LayerSpec(
        "channels",
        "channels start ... stop - 1 of the input (a slice, x[:, start:stop]; features of "
        "a flat tensor).",
        "shape",
        _channels,
        (
            ArgSpec("start", "natural", REQUIRED, "first channel kept, from 0"),
            ArgSpec("stop", "count", REQUIRED, "one past the last channel kept"),
        ),
        positional=("start", "stop"),
        traits=frozenset({KEEPS_SIGN, VIEW}),
        derive=_derive_channels,
    )
)
_add(
    LayerSpec(
        "scale",
        "multiply by a constant (Inception-ResNet residual scaling).",
        "shape",
        _same,
        (ArgSpec("s", "number", REQUIRED, "the factor", ("factor",)),),
        positional=("s",),
        traits=frozenset({FRESH, MINOR}),
        sign_rule=lambda attrs: attrs["s"].value >= 0,
    )
)


# ---- resampling: transposed convolution, upsampling, pixel shuffle ------------------------


def _conv_transpose_size(size: Num, k: Num, s: Num, p: Num, op: Num, d: Num, axis: str) -> Num:
    """ConvTranspose2d: H_out = (H - 1) x s - 2p + d x (k - 1) + output_padding + 1."""
    if op.value >= s.value and op.value >= d.value:
        raise ShapeError(
            f"conv_transpose: output_padding {op.value} on {axis} must be smaller than the "
            f"stride ({s.value}) or the dilation ({d.value})",
            hint="output_padding picks one of the s input sizes that a stride-s conv maps to "
            "the same output; use output_padding < s",
        )
    out = (size - 1) * s - 2 * p + d * (k - 1) + op + 1
    if out.value < 1:
        raise ShapeError(
            f"conv_transpose: the {axis} size falls to {out.value}: input {size.value}, "
            f"padding {p.value} removes more than the transposed kernel adds",
            hint="use less padding or a larger kernel",
            shows_input=True,
        )
    return out


def _conv_transpose(attrs, shape):
    cin, h, w = _image("conv_transpose", shape)
    cout, g = attrs["c"], attrs["g"]
    if cin.value % g.value or cout.value % g.value:
        raise ShapeError(
            f"conv_transpose: groups={g.value} must divide both input channels ({cin.value}) "
            f"and output channels ({cout.value})",
            hint="choose a group count that divides both",
            shows_input=True,
        )
    (kh, kw), (sh, sw), (ph, pw) = pair(attrs["k"]), pair(attrs["s"]), pair(attrs["p"])
    (oph, opw), (dh, dw) = pair(attrs["output_padding"]), pair(attrs["d"])
    out = (
        cout,
        _conv_transpose_size(h, kh, sh, ph, oph, dh, "H"),
        _conv_transpose_size(w, kw, sw, pw, opw, dw, "W"),
    )
    return Inferred(
        out,
        _conv_transpose_params(attrs, shape, out).value,
        _conv_transpose_macs(attrs, shape, out).value,
        derived={"in_channels": cin},
    )


def _grouped_out(attrs, out_shape) -> tuple[Factor, str]:
    cout, g = _int(out_shape[0]), _int(attrs["g"])
    if g == 1:
        return Factor(cout), "c_out"
    return Factor(cout // g, f"{cout}/{g}"), "c_out/g"


def _conv_transpose_params(attrs, in_shape, out_shape) -> Count:
    """ConvTranspose2d's weight is c_in x c_out/g x k_h x k_w."""
    kh, kw, kk = _kernel(attrs)
    cout, cout_text = _grouped_out(attrs, out_shape)
    cin, c, bias = _int(in_shape[0]), _int(out_shape[0]), _has_bias(attrs)
    return count(
        f"c_in x {cout_text} x {kk}" + (" + c_out" if bias else ""),
        [(cin, cout, kh, kw), (c,) if bias else ()],
    )


def _conv_transpose_macs(attrs, in_shape, out_shape) -> Count:
    """Every input position scatters a k x k x c_out/g patch (torch.utils.flop_counter)."""
    kh, kw, kk = _kernel(attrs)
    cout, cout_text = _grouped_out(attrs, out_shape)
    cin, h, w = (_int(d) for d in in_shape)
    return count(f"c_in x H_in x W_in x {kk} x {cout_text}", [(cin, h, w, kh, kw, cout)])


def _derive_conv_transpose(node) -> list:
    a = node.attrs
    _, h, w = (_int(d) for d in node.in_shapes[0])
    _, oh, ow = node.out_shape
    rows = []
    names = ("k", "s", "p", "output_padding", "d")
    (kh, kw), (sh, sw), (ph, pw), (oph, opw), (dh, dw) = (int_pair(a, n) for n in names)
    for axis, n, k, s, p, op, d, out in (
        ("H", h, kh, sh, ph, oph, dh, oh),
        ("W", w, kw, sw, pw, opw, dw, ow),
    ):
        rows.append(f"{axis} = ({n} - 1) x {s} - 2 x {p} + {d} x ({k} - 1) + {op} + 1 = {out}")
    if rows[0][1:] == rows[1][1:]:
        rows = ["H = W" + rows[0][1:]]
    return [
        Note(f"C = {node.out_shape[0]} output channels"),
        Note("transposed: out = (in - 1) x s - 2p + d x (k - 1) + output_padding + 1"),
        *(Note(r) for r in rows),
    ]


def _extent(name: str, size) -> tuple[Num, Num]:
    """The (h, w) of a `size=` argument; a tensor must be an image."""
    if isinstance(size, TensorSize) and len(size.shape) != 3:
        raise ShapeError(
            f"{name}: size={size.name} needs an image tensor (C x H x W), but "
            f"'{size.name}' is a flat tensor of {size.shape[0].value} features",
            hint="give the name of an image tensor (its height and width are the size), "
            "or size=(h, w)",
        )
    return size_of(size)


def _upsample(attrs, shape):
    c, h, w = _image("upsample", shape)
    scale, size, mode = attrs.get("scale"), attrs.get("size"), attrs["mode"]
    if (scale is None) == (size is None):
        raise ShapeError(
            "upsample takes a scale factor or size=(h, w), not both"
            if scale is not None
            else "upsample needs a scale factor or size=(h, w)",
            hint="write upsample 2 (scale factor) or upsample size=(64, 64)",
        )
    if attrs["align_corners"].value and mode != "bilinear":
        raise ShapeError(
            f"upsample: align_corners=true needs mode=bilinear (mode is {mode})",
            hint="align_corners only applies to interpolating modes, as in PyTorch",
        )
    if scale is not None:
        sh, sw = pair(scale)
        return Inferred((c, h * sh, w * sw))
    oh, ow = _extent("upsample", size)
    return Inferred((c, oh, ow))


def _derive_upsample(node) -> list:
    a = node.attrs
    _, h, w = (_int(d) for d in node.in_shapes[0])
    _, oh, ow = node.out_shape
    mode = a["mode"] + (" (align_corners)" if a["align_corners"].value else "")
    if isinstance(a.get("size"), TensorSize):
        return [Note(f"resized to the size of {a['size'].name}: {oh}x{ow} ({mode})")]
    if a.get("scale") is None:
        return [Note(f"resized to {oh}x{ow} ({mode})")]
    sh, sw = int_pair(a, "scale")
    return [
        Equation("H", (h, sh), "x", oh),
        Equation("W", (w, sw), "x", ow),
        Note(f"{mode} interpolation"),
    ]


def _pixel_shuffle(attrs, shape):
    c, h, w = _image("pixel_shuffle", shape)
    r = attrs["r"]
    if c.value % (r.value * r.value):
        raise ShapeError(
            f"pixel_shuffle {r.value}: {c.value} channels are not divisible by "
            f"{r.value}x{r.value} = {r.value * r.value}",
            hint=f"give the layer before it a multiple of {r.value * r.value} channels",
            shows_input=True,
        )
    return Inferred((c // (r * r), h * r, w * r))


def _pixel_unshuffle(attrs, shape):
    c, h, w = _image("pixel_unshuffle", shape)
    r = attrs["r"]
    if h.value % r.value or w.value % r.value:
        raise ShapeError(
            f"pixel_unshuffle {r.value}: the size {h.value}x{w.value} is not divisible "
            f"by {r.value}",
            hint="crop or pad the input to a multiple of the factor",
            shows_input=True,
        )
    return Inferred((c * r * r, h // r, w // r))


def _derive_pixel_shuffle(node) -> list:
    (c, h, w), (oc, oh, ow) = (tuple(_int(d) for d in node.in_shapes[0]), node.out_shape)
    r = int(node.value("r"))
    if node.op == "pixel_shuffle":
        return [
            Note(f"C = {c} / ({r} x {r}) = {oc}"),
            Equation("H", (h, r), "x", oh),
            Equation("W", (w, r), "x", ow),
        ]
    return [
        Equation("C", (c, r, r), "x", oc),
        Note(f"H = {h} / {r} = {oh}"),
        Note(f"W = {w} / {r} = {ow}"),
    ]


_add(
    LayerSpec(
        "conv_transpose",
        "transposed 2-D convolution (PyTorch ConvTranspose2d): "
        "out = (in - 1) x s - 2p + d x (k - 1) + output_padding + 1.",
        "conv",
        _conv_transpose,
        (
            ArgSpec("c", "count", REQUIRED, "output channels", ("out",)),
            _K,
            _S,
            ArgSpec("p", "pad2", 0, "rows and columns removed from each side", ("pad", "padding")),
            ArgSpec(
                "output_padding",
                "pad2",
                0,
                "rows and columns added at the bottom and right (less than s or d)",
                ("op",),
            ),
            ArgSpec("g", "count", 1, "groups", ("groups",)),
            _D,
            _BIAS,
            _ACT,
        ),
        positional=("c", "k"),
        aliases=("deconv", "convt", "conv_t"),
        traits=frozenset({FRESH}),
        derived=("in_channels",),
        params=_conv_transpose_params,
        macs=_conv_transpose_macs,
        receptive="resample",
        derive=_derive_conv_transpose,
        named=("k",),
    )
)
_add(
    LayerSpec(
        "upsample",
        "upsampling (PyTorch Upsample): by an integer scale factor, or to size=(h, w) or "
        "to the size of a named tensor (size=x, read at run time); "
        "mode=nearest (default) or bilinear (with align_corners).",
        "shape",
        _upsample,
        (
            ArgSpec("scale", "size", None, "scale factor: an integer or (h, w)", ("scale_factor",)),
            ArgSpec("size", "extent", None, "output size (h, w), or a tensor's (size=x)"),
            ArgSpec("mode", "mode", "nearest", "nearest or bilinear"),
            ArgSpec("align_corners", "bool", False, "bilinear: align the corner pixels"),
        ),
        positional=("scale",),
        aliases=("upsampling", "interpolate"),
        traits=frozenset({FRESH}),
        receptive="resample",
        derive=_derive_upsample,
    )
)
_add(
    LayerSpec(
        "pixel_shuffle",
        "depth to space (PyTorch PixelShuffle): C x H x W to C/r^2 x rH x rW.",
        "shape",
        _pixel_shuffle,
        (ArgSpec("r", "count", REQUIRED, "upscale factor", ("upscale_factor",)),),
        positional=("r",),
        traits=frozenset({KEEPS_SIGN}),
        receptive="resample",
        derive=_derive_pixel_shuffle,
    )
)
_add(
    LayerSpec(
        "pixel_unshuffle",
        "space to depth (PyTorch PixelUnshuffle): C x H x W to C r^2 x H/r x W/r.",
        "shape",
        _pixel_unshuffle,
        (ArgSpec("r", "count", REQUIRED, "downscale factor", ("downscale_factor",)),),
        positional=("r",),
        traits=frozenset({KEEPS_SIGN}),
        receptive="space_to_depth",
        derive=_derive_pixel_shuffle,
    )
)


@dataclass(frozen=True)
class MergeSpec:
    """A join of branches (`concat(a, b)`): its shape rule is merge_shape."""

    name: str
    doc: str
    symbol: str  # how a diagram labels it
    derive: Callable
    traits: frozenset = frozenset({FRESH, KEEPS_SIGN})  # a new tensor; signs as the branches'
    category: str = "merge"
    params: None = None
    macs: None = None
    receptive: str = "merge"
    derived: tuple = ()
    positional: tuple = ()
    named: tuple = ()
    has_weights = False

    def keeps_sign(self, attrs: dict) -> bool:
        return KEEPS_SIGN in self.traits


MERGES: dict[str, MergeSpec] = {
    m.name: m
    for m in (
        MergeSpec(
            "concat", "concatenate branches along channels (or features)", "concat", _derive_concat
        ),
        MergeSpec("add", "elementwise sum of branches with equal shapes", "+", _derive_equal),
        MergeSpec(
            "mul",
            "elementwise product with broadcasting (e.g. C x 1 x 1 times C x H x W)",
            "×",
            _derive_broadcast,
        ),
        MergeSpec(
            "mean",
            "elementwise mean of branches with equal shapes (FractalNet's join)",
            "mean",
            _derive_equal,
        ),
    )
}


def spec_of(op: str) -> LayerSpec | MergeSpec:
    """The spec of an IR node's op (a layer's canonical name, or a merge)."""
    return CATALOGUE.get(op) or MERGES[op]


def traits(op: str) -> frozenset:
    """What passes may assume about `op` (the IR's `input` node has no traits)."""
    spec = CATALOGUE.get(op) or MERGES.get(op)
    return spec.traits if spec is not None else frozenset()


def ops() -> list[str]:
    """Every op an IR node can have, each once: the catalogue's layers, then the merges."""
    return sorted({spec.name for spec in CATALOGUE.values()}) + list(MERGES)


_SHORTHAND = re.compile(r"^(conv|dwconv|sepconv|maxpool|avgpool)(\d+)$")


def lookup(name: str) -> tuple[LayerSpec, dict] | None:
    """The spec for a layer name and its presets: conv3 -> (conv, {k: 3, p: same})."""
    spec = CATALOGUE.get(name)
    if spec is not None:
        return spec, {}
    m = _SHORTHAND.match(name)
    if m is None or m.group(2).startswith("0"):
        return None
    base, k = CATALOGUE[m.group(1)], int(m.group(2))
    presets = {"k": Num(k)}
    if base.category == "conv":
        presets["p"] = "same"
    return base, presets


def _plain(name: str) -> str:
    """A layer name as frameworks spell it, reduced: ConvTranspose2d, conv_transpose2d,
    Conv2DTranspose -> convtranspose; UpSampling2D -> upsampling."""
    return name.lower().replace("_", "").replace("2d", "")


_SPLIT_HINT = (
    "did you mean 'chunk'? a channel split is one branch per part: "
    "concat(chunk(2, 0), chunk(2, 1) + ...)"
)
_SLICE_HINT = "did you mean 'channels'? channels(start, stop) keeps channels start ... stop - 1"
_SPLIT_SPELLINGS = {
    "split": _SPLIT_HINT,
    "half": _SPLIT_HINT,
    "chunks": _SPLIT_HINT,
    "slice": _SLICE_HINT,
    "narrow": _SLICE_HINT,
    "channelslice": _SLICE_HINT,
}


def framework_name_hint(name: str) -> str | None:
    """The "did you mean" for a framework's spelling of a catalogue layer (PyTorch's or
    Keras' class name, snake or camel case, with or without 2d)."""
    plain = _plain(name)
    if plain in _SPLIT_SPELLINGS:
        return _SPLIT_SPELLINGS[plain]
    for alias, spec in sorted(CATALOGUE.items()):
        if plain and _plain(alias) == plain:
            return f"did you mean '{spec.name}'?"
    return None


def layer_names() -> list[str]:
    return sorted(CATALOGUE) + ["conv1", "conv3", "conv5", "conv7", "maxpool2", "avgpool2"]


def merge_shape(op: str, shapes: list[Shape]) -> tuple[Shape, str | None]:
    """Output shape of a merge, or raise ShapeError explaining the mismatch."""
    first = shapes[0]
    if any(isinstance(s, TokenIds) for s in shapes):
        raise ShapeError(f"{op}: token ids cannot be merged", hint="merge after an `embedding`")
    if len(first) == 2 and op == "concat" and all(len(s) == 2 for s in shapes):
        raise ShapeError(
            "concat: joining token sequences is not supported: "
            + " vs ".join(fmt_shape(s) for s in shapes),
            hint="tokens are joined by `add`; prepend learnt tokens with `cls_token n`",
        )
    if any(len(s) != len(first) for s in shapes):
        raise ShapeError(
            f"{op}: cannot merge flat and image tensors: "
            + " vs ".join(fmt_shape(s) for s in shapes),
            hint="flatten or pool the image branch first",
        )
    if op == "concat":
        if any(tuple(d.value for d in s[1:]) != tuple(d.value for d in first[1:]) for s in shapes):
            raise ShapeError(
                "concat: spatial sizes differ: " + " vs ".join(fmt_shape(s) for s in shapes),
                hint="concat joins along channels, so every branch must keep the same H x W; "
                "check the strides and padding of each branch",
            )
        channels = shapes[0][0]
        for s in shapes[1:]:
            channels = channels + s[0]
        return (channels, *first[1:]), None
    if op == "mul":
        out = []
        for dims in zip(*shapes):
            values = {d.value for d in dims}
            big = [d for d in dims if d.value != 1]
            if len(values - {1}) > 1:
                raise ShapeError(
                    "mul: shapes do not broadcast: " + " vs ".join(fmt_shape(s) for s in shapes),
                    hint="each dimension must match or be 1, as in C x 1 x 1 times C x H x W",
                )
            out.append(big[0] if big else dims[0])
        return tuple(out), None
    values = [tuple(d.value for d in s) for s in shapes]
    if any(v != values[0] for v in values):
        return first, "mismatch"
    return first, None


def merge_mismatch_hint(op: str, shapes: list[Shape]) -> str:
    a, b = next(
        (s, t)
        for s, t in zip(shapes, shapes[1:])
        if tuple(d.value for d in s) != tuple(d.value for d in t)
    )
    if len(a) == 3 and a[0].value != b[0].value and a[1].value == b[1].value:
        return (
            f"the channels differ ({a[0].value} vs {b[0].value}); project the narrower "
            f"branch with a 1x1 conv, e.g. `conv1 {max(a[0].value, b[0].value)}`"
        )
    if len(a) == 3 and a[1].value != b[1].value:
        ratio = max(a[1].value, b[1].value) / max(min(a[1].value, b[1].value), 1)
        stride = f" (stride {int(ratio)})" if ratio.is_integer() else ""
        return (
            f"the spatial sizes differ ({a[1].value}x{a[2].value} vs {b[1].value}x{b[2].value}); "
            f"downsample the larger branch to match{stride}, e.g. a strided 1x1 conv"
        )
    return f"every branch of {op} must have the same shape"


# the token layers register themselves into CATALOGUE (and widen the token-wise ops above)
from . import layers_tokens  # noqa: E402, F401
