"""Weight initialisation: the families the language names, and what each layer starts from.

A layer's init is part of the architecture (a ResNet trained from PyTorch's default init
is not torchvision's ResNet), so it is written in the language (`conv 64 k=3
init=kaiming_normal(fan_out, relu)`, `bn gamma_init=0`, `defaults conv init=...`) and
both targets apply it. Unwritten, every tensor starts as PyTorch would start it
(`TENSORS`), in both targets, so the PyTorch and Keras models of one file start from
one distribution.

Fans are counted as PyTorch counts them (torch.nn.init._calculate_fan_in_and_fan_out on
PyTorch's layout of the tensor: a conv's fan_in = c_in/g x k x k, fan_out = c_out x k x k;
a depthwise conv's fan_in = k x k). Keras counts some differently (a depthwise kernel's
fan_in is k x k x C there); the Keras backend converts, so one name means one
distribution in both targets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import NetdslError, Span, did_you_mean
from .symbolic import Num

MODES = ("fan_in", "fan_out", "fan_avg")
NONLINEARITIES = ("linear", "sigmoid", "tanh", "relu", "leaky_relu", "selu")
DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "normal", "uniform")
WORDS = {
    "mode": MODES,
    "fan": MODES[:2],  # Kaiming's: torch.nn.init has no fan_avg there
    "nonlinearity": NONLINEARITIES,
    "distribution": DISTRIBUTIONS,
}

# Keras' truncated normal keeps +-2 std; this rescales std so the kept part has the asked
# variance (keras.initializers.VarianceScaling's constant)
TRUNCATED_STD = 0.87962566103423978


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # "number", "positive", or a key of WORDS
    default: object  # a Python number, a word, or None (required)


_MEAN, _STD = Param("mean", "number", 0.0), Param("std", "positive", 1.0)
_GAIN = Param("gain", "positive", 1.0)
_KAIMING = (
    Param("mode", "fan", "fan_in"),
    Param("nonlinearity", "nonlinearity", "leaky_relu"),
    Param("a", "number", 0.0),
)

# family -> (parameters, one line on what it draws); the torch.nn.init / keras.initializers
# spelling of each is the backends'
FAMILIES: dict[str, tuple[tuple[Param, ...], str]] = {
    "constant": ((Param("value", "number", None),), "every value the same"),
    "zeros": ((), "every value 0"),
    "ones": ((), "every value 1"),
    "normal": ((_MEAN, _STD), "normal N(mean, std^2)"),
    "uniform": ((Param("a", "number", 0.0), Param("b", "number", 1.0)), "uniform on [a, b]"),
    "trunc_normal": (
        (_MEAN, _STD, Param("a", "number", -2.0), Param("b", "number", 2.0)),
        "normal N(mean, std^2) redrawn outside [a, b] (PyTorch's trunc_normal_: a and b "
        "are values, not multiples of std)",
    ),
    "xavier_uniform": ((_GAIN,), "Glorot & Bengio: U(+-gain sqrt(6 / (fan_in + fan_out)))"),
    "xavier_normal": ((_GAIN,), "Glorot & Bengio: N(0, gain^2 2 / (fan_in + fan_out))"),
    "kaiming_uniform": (_KAIMING, "He et al.: U(+-gain sqrt(3 / fan)), fan = fan_in or fan_out"),
    "kaiming_normal": (_KAIMING, "He et al.: N(0, gain^2 / fan), fan = fan_in or fan_out"),
    "orthogonal": ((_GAIN,), "a (semi-)orthogonal matrix times gain (Saxe et al.)"),
    "variance_scaling": (
        (
            Param("scale", "positive", 1.0),
            Param("mode", "mode", "fan_in"),
            Param("distribution", "distribution", "truncated_normal"),
        ),
        "Keras' VarianceScaling: variance scale / fan",
    ),
    "glorot_uniform": ((), "Keras' glorot_uniform = variance_scaling(1, fan_avg, uniform)"),
    "glorot_normal": ((), "Keras' glorot_normal = variance_scaling(1, fan_avg)"),
    "he_uniform": ((), "Keras' he_uniform = variance_scaling(2, fan_in, uniform)"),
    "he_normal": ((), "Keras' he_normal = variance_scaling(2, fan_in)"),
    "lecun_uniform": ((), "Keras' lecun_uniform = variance_scaling(1, fan_in, uniform)"),
    "lecun_normal": ((), "Keras' lecun_normal = variance_scaling(1, fan_in)"),
    "torch_default": (
        (),
        "PyTorch's default for conv and linear layers: U(+-1/sqrt(fan_in)) for the weight "
        "(kaiming_uniform with a = sqrt(5)) and for the bias (the weight's fan_in)",
    ),
}

# Keras' named initializers as variance_scaling(scale, mode, distribution)
KERAS_NAMED = {
    "glorot_uniform": (1.0, "fan_avg", "uniform"),
    "glorot_normal": (1.0, "fan_avg", "truncated_normal"),
    "he_uniform": (2.0, "fan_in", "uniform"),
    "he_normal": (2.0, "fan_in", "truncated_normal"),
    "lecun_uniform": (1.0, "fan_in", "uniform"),
    "lecun_normal": (1.0, "fan_in", "truncated_normal"),
}

# families whose values depend on the tensor's fans (refused on a bias or a norm's scale)
FAN_BASED = frozenset(
    {"xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "orthogonal"}
    | {"variance_scaling"}
    | KERAS_NAMED.keys()
)


class Init:
    """An initializer as written: its family and every argument, in the family's order.

    Numbers are traced `Num`s, so a block's parameter (`bias_init=b`) stays a parameter in
    the generated code; two inits compare by their values."""

    __slots__ = ("family", "args")

    def __init__(self, family: str, args: tuple) -> None:
        self.family, self.args = family, args  # args: ((name, Num | str), ...)

    def __getitem__(self, name: str):
        for key, value in self.args:
            if key == name:
                return value
        raise KeyError(name)

    def value(self, name: str):
        """An argument as a plain Python value."""
        v = self[name]
        return v.value if isinstance(v, Num) else v

    def plain(self) -> tuple:
        return (self.family, tuple((k, v.value if isinstance(v, Num) else v) for k, v in self.args))

    def __eq__(self, other) -> bool:
        return isinstance(other, Init) and self.plain() == other.plain()

    def __hash__(self) -> int:
        return hash(self.plain())

    def const(self) -> Init:
        return Init(
            self.family, tuple((k, v.const() if isinstance(v, Num) else v) for k, v in self.args)
        )

    def __repr__(self) -> str:
        return f"Init({self})"

    def __str__(self) -> str:
        """The DSL spelling, with the arguments that differ from the family's defaults."""
        params = FAMILIES[self.family][0]
        if not params:
            return self.family
        if self.family == "constant":
            return _number(self.value("value"))
        shown = []
        for p in params:
            v = self.value(p.name)
            if v == p.default:
                continue
            text = v if isinstance(v, str) else _number(v)
            shown.append(text if p.kind in WORDS else f"{p.name}={text}")
        return f"{self.family}({', '.join(shown)})" if shown else self.family


def _number(v) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v) if isinstance(v, float) else str(v)


def constant(value) -> Init:
    return Init("constant", (("value", value if isinstance(value, Num) else Num(value)),))


def named(family: str) -> Init:
    """A family with every argument at its default (`zeros`, `he_normal`, ...)."""
    return make(family, [], [], None)


def make(family: str, positional: list, keyword: list, span: Span | None) -> Init:
    """An Init from a call's evaluated arguments: positional [(value, span)] and keyword
    [(name, value, span)]. A positional word fills the parameter whose words it is one
    of (`kaiming_normal(fan_out, relu)`), a positional number the next numeric one."""
    params, _ = FAMILIES[family]
    usage = f"{family}({', '.join(_usage(p) for p in params)})" if params else family
    given: dict = {}
    numeric = [p for p in params if p.kind not in WORDS]
    for value, vspan in positional:
        if isinstance(value, str):
            slot = next((p for p in params if value in WORDS.get(p.kind, ())), None)
            if slot is None:
                raise NetdslError(
                    f"{family}: unexpected word '{value}'",
                    vspan,
                    hint=_word_hint(family, params, value) or f"usage: {usage}",
                )
        else:
            free = [p for p in numeric if p.name not in given]
            if not free:
                raise NetdslError(
                    f"{family} takes {len(numeric) or 'no'} number"
                    f"{'s' if len(numeric) != 1 else ''}",
                    vspan,
                    hint=f"usage: {usage}",
                )
            slot = free[0]
        if slot.name in given:
            raise NetdslError(f"{family}: '{slot.name}' given twice", vspan)
        given[slot.name] = (value, vspan)
    for name, value, kspan in keyword:
        slot = next((p for p in params if p.name == name), None)
        if slot is None:
            raise NetdslError(
                f"{family} has no argument '{name}'",
                kspan,
                hint=did_you_mean(name, [p.name for p in params]) or f"usage: {usage}",
            )
        if name in given:
            raise NetdslError(f"{family}: '{name}' given twice", kspan)
        given[name] = (value, kspan)
    args = []
    for p in params:
        if p.name not in given:
            if p.default is None:
                raise NetdslError(f"{family} needs '{p.name}'", span, hint=f"usage: {usage}")
            args.append((p.name, p.default if p.kind in WORDS else Num(p.default)))
            continue
        value, vspan = given[p.name]
        args.append((p.name, _checked(family, p, value, vspan)))
    init = Init(family, tuple(args))
    if family in ("uniform", "trunc_normal") and init.value("a") >= init.value("b"):
        raise NetdslError(
            f"{family}: a must be below b, got a={_number(init.value('a'))}, "
            f"b={_number(init.value('b'))}",
            span,
        )
    return init


def _usage(p: Param) -> str:
    if p.default is None:
        return p.name
    return f"{p.name}={p.default if isinstance(p.default, str) else _number(p.default)}"


def _word_hint(family: str, params, word: str) -> str | None:
    words = [w for p in params for w in WORDS.get(p.kind, ())]
    if not words:
        return f"{family} takes numbers only"
    listed = f"{family} takes the words {', '.join(words)}"
    if any(word in other for other in WORDS.values()):  # fan_avg: another family's word
        return listed
    return did_you_mean(word, words) or listed


def _checked(family: str, p: Param, value, span: Span):
    if p.kind in WORDS:
        if value not in WORDS[p.kind]:
            got = f"'{value}'" if isinstance(value, str) else "a number"
            raise NetdslError(
                f"{family}: {p.name} must be one of {', '.join(WORDS[p.kind])}, got {got}",
                span,
                hint=did_you_mean(value, WORDS[p.kind]) if isinstance(value, str) else None,
            )
        return value
    ok = (
        isinstance(value, Num)
        and isinstance(value.value, (int, float))
        and not isinstance(value.value, bool)
    )
    if not ok or (p.kind == "positive" and value.value <= 0):
        what = "a positive number" if p.kind == "positive" else "a number"
        raise NetdslError(f"{family}: '{p.name}' must be {what}", span)
    return value


def same(a: Init, b: Init) -> bool:
    """Whether two inits draw the same, whatever the fans (`gamma_init=1` is `ones`)."""
    return all(distribution(a, fi, fo) == distribution(b, fi, fo) for fi, fo in ((3, 5), (7, 2)))


def is_default(node, arg: str) -> bool:
    """Whether a layer's init argument says what its tensors start from anyway."""
    value = coerce(node.attrs.get(arg))
    tensors = [t for t in TENSORS.get(node.op, ()) if t.arg == arg]
    return value is None or bool(tensors) and all(same(value, t.default) for t in tensors)


def coerce(value) -> Init | None:
    """An `init=` argument as an Init: a number is a constant (`bias_init=-2`)."""
    if value is None or isinstance(value, Init):
        return value
    return constant(value)


# ---- what each layer's tensors start from ------------------------------------------------


@dataclass(frozen=True)
class Tensor:
    """One initialised tensor of an op: its PyTorch name in the module the op builds, the
    keyword argument that sets it, and PyTorch's own init for it."""

    role: str  # "weight", "bias", "in_proj_weight", "depthwise.weight", ...
    arg: str  # "init", "bias_init", "gamma_init", "beta_init", "out_init"
    default: Init | None  # None: the layer's own argument is the value (layer_scale init=)
    bias: bool = False  # a bias (or a norm's shift): one value per output, no fans of its own
    fallback: str | None = None  # the keyword it takes when its own is unwritten


_TORCH = named("torch_default")
_ZEROS, _ONES = named("zeros"), named("ones")
_WEIGHTED = (Tensor("weight", "init", _TORCH), Tensor("bias", "bias_init", _TORCH, True))
_NORM = (Tensor("weight", "gamma_init", _ONES, True), Tensor("bias", "beta_init", _ZEROS, True))

TENSORS: dict[str, tuple[Tensor, ...]] = {
    "conv": _WEIGHTED,
    "dwconv": _WEIGHTED,
    "conv_transpose": _WEIGHTED,
    "fc": _WEIGHTED,
    "pointwise_fc": _WEIGHTED,
    "patch_embed": _WEIGHTED,
    "sepconv": (
        Tensor("depthwise.weight", "init", _TORCH),
        Tensor("pointwise.weight", "init", _TORCH),
        Tensor("pointwise.bias", "bias_init", _TORCH, True),
    ),
    "bn": _NORM,
    "layernorm": _NORM,
    "groupnorm": _NORM,
    "instancenorm": _NORM,
    "attention": (
        Tensor("in_proj_weight", "init", named("xavier_uniform")),
        Tensor("in_proj_bias", "bias_init", _ZEROS, True),
        # GPT-2 scales its output projections apart: out_init (else init) sets them
        Tensor("out_proj.weight", "out_init", _TORCH, fallback="init"),
        Tensor("out_proj.bias", "bias_init", _ZEROS, True),
    ),
    "cls_token": (Tensor("token", "init", _ZEROS),),
    "pos_embed": (
        Tensor("embedding", "init", make("normal", [], [("std", Num(0.02), None)], None)),
    ),
    "embedding": (Tensor("weight", "init", named("normal")),),
    "layer_scale": (Tensor("gamma", "init", None, True),),  # its init= is the starting value
}
INIT_ARGS = ("init", "bias_init", "gamma_init", "beta_init", "out_init")


def _dims(shape) -> list[int]:
    return [int(d.value) if isinstance(d, Num) else int(d) for d in shape]


def torch_shape(node, role: str) -> tuple[int, ...] | None:
    """The shape PyTorch gives the tensor `role` of a layer node (None: it has none)."""
    a, op = node.attrs, node.op
    ins = _dims(node.in_shapes[0]) if node.in_shapes else []
    out = _dims(node.shape)

    def kernel():
        k = a["k"]
        items = k.items if hasattr(k, "items") else (k, k)
        return tuple(int(x.value) for x in items)

    if op == "conv":
        g = int(a["g"].value)
        return {"weight": (out[0], ins[0] // g, *kernel()), "bias": (out[0],)}.get(role)
    if op == "dwconv":
        return {"weight": (out[0], 1, *kernel()), "bias": (out[0],)}.get(role)
    if op == "conv_transpose":
        g = int(a["g"].value)
        return {"weight": (ins[0], out[0] // g, *kernel()), "bias": (out[0],)}.get(role)
    if op == "sepconv":
        mid = ins[0] * int(a["m"].value)
        return {
            "depthwise.weight": (mid, 1, *kernel()),
            "pointwise.weight": (out[0], mid, 1, 1),
            "pointwise.bias": (out[0],),
        }.get(role)
    if op == "fc":
        fan_in = ins[-1] if len(ins) == 2 else math.prod(ins)
        return {"weight": (out[-1], fan_in), "bias": (out[-1],)}.get(role)
    if op == "pointwise_fc":
        return {"weight": (out[0], ins[0]), "bias": (out[0],)}.get(role)
    if op == "patch_embed":
        p = int(a["p"].value)
        return {"weight": (out[1], ins[0], p, p), "bias": (out[1],)}.get(role)
    if op in ("bn", "groupnorm", "instancenorm"):
        return (out[0],)
    if op == "layernorm":
        return (out[-1],) if len(out) == 2 else (out[0],)
    if op == "attention":
        d = out[1]
        return {
            "in_proj_weight": (3 * d, d),
            "in_proj_bias": (3 * d,),
            "out_proj.weight": (d, d),
            "out_proj.bias": (d,),
        }.get(role)
    if op == "cls_token":
        return (1, int(a["n"].value), out[1])
    if op == "pos_embed":
        return (1, out[0], out[1])
    if op == "embedding":
        return (int(a["vocab"].value), out[1])
    if op == "layer_scale":  # (C, 1, 1) on an image, as torchvision's ConvNeXt
        return (out[-1],) if len(out) < 3 else (out[0], 1, 1)
    return None


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a tensor of PyTorch's layout, as torch.nn.init counts them."""
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


@dataclass(frozen=True)
class Resolved:
    """One tensor of one layer and what it starts from."""

    tensor: Tensor
    init: Init
    shape: tuple[int, ...]
    fans: tuple[int, int]  # the weight's, for a bias: what torch_default reads
    written: bool  # the program (or its defaults) chose it; else PyTorch's default


def resolve(node) -> list[Resolved]:
    """Every initialised tensor of a layer node, with the init it starts from."""
    out = []
    for t in TENSORS.get(node.op, ()):
        if node.op == "fc" and node.attrs.get("tie") is not None and t.role == "weight":
            continue  # the embedding's table
        if t.bias and node.op not in _NORM_OPS and not _has_bias(node, t):
            continue
        if node.op in _NORM_OPS and not _norm_has(node, t):
            continue
        shape = torch_shape(node, t.role)
        if shape is None:
            continue
        if t.default is None:  # the layer starts it from its own argument
            value = coerce(node.attrs[t.arg])
            out.append(Resolved(t, value, torch_shape(node, t.role), (0, 0), False))
            continue
        written = coerce(node.attrs.get(t.arg))
        if written is None and t.fallback:
            written = coerce(node.attrs.get(t.fallback))
        weight_shape = torch_shape(node, _weight_of(t.role)) if t.bias else shape
        f = fans(weight_shape) if weight_shape and len(weight_shape) >= 2 else (0, 0)
        out.append(Resolved(t, written or t.default, shape, f, written is not None))
    return out


_NORM_OPS = ("bn", "layernorm", "groupnorm", "instancenorm")


def _weight_of(role: str) -> str:
    return {"bias": "weight", "pointwise.bias": "pointwise.weight"}.get(
        role, role.replace("bias", "weight")
    )


def _has_bias(node, t: Tensor) -> bool:
    bias = node.attrs.get("bias")
    return bias is None or bool(bias.value)


def _norm_has(node, t: Tensor) -> bool:
    a = node.attrs
    if node.op == "instancenorm":
        return bool(a["affine"].value)
    if node.op == "bn" and t.role == "weight":
        return bool(a["scale"].value)
    return True


def check(node, span: Span) -> None:
    """Refuse an init that cannot apply to its tensor: a fan-based one on a bias or a
    norm's scale (PyTorch has no fans for a vector), or any on a tied weight."""
    if node.op == "fc" and node.attrs.get("tie") is not None and node.attrs.get("init"):
        raise NetdslError(
            "fc: a tied layer's weight is the embedding's table; init it at the embedding",
            span,
            hint="drop init= here and write embedding ... init=...",
        )
    for r in resolve(node):
        if r.written and r.tensor.bias and r.init.family in FAN_BASED:
            raise NetdslError(
                f"{node.op}: {r.tensor.arg}={r.init} needs a tensor of two or more dimensions "
                f"(it reads fan_in and fan_out), but the {_plain_role(r.tensor)} is a vector "
                f"of {r.shape[0]}",
                span,
                hint="a bias or a norm's scale and shift take a constant, normal, uniform or "
                "trunc_normal init (or torch_default on a bias)",
            )
        if r.written and r.init.family == "torch_default" and node.op in _NORM_OPS:
            raise NetdslError(
                f"{node.op}: torch_default applies to conv and linear weights and biases; a "
                "norm starts at ones and zeros",
                span,
                hint=f"write {r.tensor.arg}=1 or {r.tensor.arg}=0",
            )


def _plain_role(t: Tensor) -> str:
    return {"gamma_init": "scale (gamma)", "beta_init": "shift (beta)"}.get(t.arg, "bias")


# ---- the distribution an init draws from, given its tensor ------------------------------


@dataclass(frozen=True)
class Distribution:
    """What the values are drawn from: constant(a), normal(a=mean, b=std), uniform(a, b),
    trunc_normal(mean, std, lo, hi) or orthogonal(gain)."""

    kind: str
    a: float = 0.0
    b: float = 0.0
    lo: float = 0.0
    hi: float = 0.0

    def __str__(self) -> str:
        g = _g
        if self.kind == "constant":
            return f"= {g(self.a)}"
        if self.kind == "normal":
            return f"N({g(self.a)}, {g(self.b)}^2)"
        if self.kind == "uniform":
            return f"U({g(self.a)}, {g(self.b)})"
        if self.kind == "trunc_normal":
            return f"N({g(self.a)}, {g(self.b)}^2) within [{g(self.lo)}, {g(self.hi)}]"
        return f"orthogonal x {g(self.a)}"


def _g(x: float) -> str:
    return f"{x:.4g}"


def gain(nonlinearity: str, a: float = 0.0) -> float:
    """torch.nn.init.calculate_gain."""
    return {
        "linear": 1.0,
        "sigmoid": 1.0,
        "tanh": 5.0 / 3,
        "relu": math.sqrt(2.0),
        "leaky_relu": math.sqrt(2.0 / (1 + a * a)),
        "selu": 3.0 / 4,
    }[nonlinearity]


def distribution(init: Init, fan_in: int, fan_out: int) -> Distribution:
    f = init.family
    v = init.value
    if f in ("zeros", "ones", "constant"):
        value = {"zeros": 0.0, "ones": 1.0}[f] if f != "constant" else float(v("value"))
        return Distribution("constant", value)
    if f == "normal":
        return Distribution("normal", v("mean"), v("std"))
    if f == "uniform":
        return Distribution("uniform", v("a"), v("b"))
    if f == "trunc_normal":
        return Distribution("trunc_normal", v("mean"), v("std"), v("a"), v("b"))
    if f == "orthogonal":
        return Distribution("orthogonal", v("gain"))
    if f == "torch_default":
        bound = 1 / math.sqrt(fan_in)
        return Distribution("uniform", -bound, bound)
    if f in ("xavier_uniform", "xavier_normal"):
        std = v("gain") * math.sqrt(2.0 / (fan_in + fan_out))
        if f == "xavier_normal":
            return Distribution("normal", 0.0, std)
        return Distribution("uniform", -math.sqrt(3) * std, math.sqrt(3) * std)
    if f in ("kaiming_uniform", "kaiming_normal"):
        fan = fan_in if v("mode") == "fan_in" else fan_out
        std = gain(v("nonlinearity"), v("a")) / math.sqrt(fan)
        if f == "kaiming_normal":
            return Distribution("normal", 0.0, std)
        return Distribution("uniform", -math.sqrt(3) * std, math.sqrt(3) * std)
    scale, mode, dist = KERAS_NAMED.get(f) or (v("scale"), v("mode"), v("distribution"))
    fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    if dist in ("truncated_normal", "normal"):  # Keras reads "normal" as truncated
        std = math.sqrt(scale / fan) / TRUNCATED_STD
        return Distribution("trunc_normal", 0.0, std, -2 * std, 2 * std)
    if dist == "untruncated_normal":
        return Distribution("normal", 0.0, math.sqrt(scale / fan))
    limit = math.sqrt(3.0 * scale / fan)
    return Distribution("uniform", -limit, limit)


def describe(r: Resolved) -> str:
    """`kaiming_normal(fan_out, relu): N(0, 0.05893^2), fan_out = 576`."""
    init, drawn = explained(r)
    return drawn if init.startswith("=") else f"{init}: {drawn}"


def explained(r: Resolved) -> tuple[str, str]:
    """(the init as written, what it draws: `N(0, 0.05893^2), fan_out = 576`), for
    explain; an unwritten one says it is PyTorch's default."""
    d = distribution(r.init, *r.fans)
    text = str(d)
    uses = _fans_read(r.init)
    if uses:
        fi, fo = r.fans
        shown = {"fan_in": f"fan_in = {fi:,}", "fan_out": f"fan_out = {fo:,}"}
        text += ", " + ", ".join(shown[u] for u in uses)
    init = str(d) if r.init.family in ("constant", "zeros", "ones") else str(r.init)
    default = not r.written and r.tensor.default is not None
    return init, text + (" (PyTorch's default)" if default else "")


def _fans_read(init: Init) -> tuple[str, ...]:
    f = init.family
    if f == "torch_default":
        return ("fan_in",)
    if f in ("xavier_uniform", "xavier_normal"):
        return ("fan_in", "fan_out")
    if f in ("kaiming_uniform", "kaiming_normal"):
        return (init.value("mode"),)
    if f == "variance_scaling" or f in KERAS_NAMED:
        mode = KERAS_NAMED[f][1] if f in KERAS_NAMED else init.value("mode")
        return ("fan_in", "fan_out") if mode == "fan_avg" else (mode,)
    return ()
