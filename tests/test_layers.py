"""Every catalogue layer's shape, parameter and MAC rule, for randomised arguments.

Each case is checked twice: against reference formulas written here from
PyTorch's documentation (independent of netdsl/layers.py), and against the
real torch module: output shape from a forward pass on zeros, parameters
from `sum(p.numel())`, MACs from `torch.utils.flop_counter` (FLOPs // 2,
which counts conv and matmul only: exactly netdsl's convention).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from conftest import need

from netdsl import NetdslError, compile_text
from netdsl.layers import CATALOGUE

CASES = 30  # random cases per layer


@dataclass
class Case:
    text: str  # the DSL layer, e.g. "conv 8 k=(3, 5) s=2"
    shape: tuple  # input shape (C, H, W) or (F,)
    out: tuple  # expected output shape
    params: int = 0
    macs: int = 0
    buffers: int = 0
    torch: Callable | None = None  # builds the equivalent torch module
    vocab: int | None = None  # the input is token ids below it: `input N tokens of vocab`


def run(text: str, shape: tuple, vocab: int | None = None):
    """The single node a one-layer network creates."""
    dims = "x".join(map(str, shape)) + (f" tokens of {vocab}" if vocab is not None else "")
    net = compile_text(f"network t:\n    input {dims}\n    {text}\n", "layer.net")
    (node,) = [n for n in net.nodes() if n.op != "input"]
    return node


# ---- reference formulas (PyTorch's documented rules) ----------------------------------


def conv_out(n, k, s, p, d=1):
    """Conv2d / MaxPool2d / AvgPool2d output size, floor mode."""
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def pool_out(n, k, s, p, d=1, ceil=False):
    """Pooling output size; in ceil mode the last window must start inside the input."""
    if not ceil:
        return conv_out(n, k, s, p, d)
    num = n + 2 * p - d * (k - 1) - 1
    out = -(-num // s) + 1
    if (out - 1) * s >= n + p:
        out -= 1
    return out


# ---- random argument helpers ----------------------------------------------------------


def pair_text(rng, a, b):
    """(a, b) as the DSL may write it: an int when equal, else a tuple or a shape literal."""
    if a == b and rng.random() < 0.7:
        return str(a)
    return rng.choice([f"({a}, {b})", f"{a}x{b}"])


def kw(rng, short, *aliases):
    """A keyword name, sometimes spelled with one of its aliases."""
    return rng.choice((short, short, *aliases))


def two(rng, lo, hi, square=0.5):
    a = rng.randint(lo, hi)
    return (a, a) if rng.random() < square else (a, rng.randint(lo, hi))


def fits(rng, eff, pad, extra=12):
    """An input size at least as large as the effective kernel needs."""
    return (
        rng.randint(max(1, eff - 2 * pad), eff - 2 * pad + extra)
        if eff > 2 * pad
        else rng.randint(1, extra)
    )


# ---- case generators, one per layer -------------------------------------------------------


def conv_case(rng) -> Case:
    g = rng.choice([1, 1, 1, 2, 3, 4])
    cin, cout = g * rng.randint(1, 4), g * rng.randint(1, 4)
    (kh, kw_), (sh, sw), (dh, dw) = two(rng, 1, 5), two(rng, 1, 3), two(rng, 1, 3, 0.7)
    same = rng.random() < 0.25 and dh * (kh - 1) % 2 == 0 and dw * (kw_ - 1) % 2 == 0
    if same:
        ph, pw = dh * (kh - 1) // 2, dw * (kw_ - 1) // 2
        ptext = "same"
    else:
        ph, pw = two(rng, 0, 3)
        ptext = pair_text(rng, ph, pw)
    bias = rng.random() < 0.5
    h = fits(rng, dh * (kh - 1) + 1, ph)
    w = fits(rng, dw * (kw_ - 1) + 1, pw)
    oh, ow = conv_out(h, kh, sh, ph, dh), conv_out(w, kw_, sw, pw, dw)
    text = (
        f"conv {cout} {kw(rng, 'k', 'kernel')}={pair_text(rng, kh, kw_)} "
        f"{kw(rng, 's', 'stride')}={pair_text(rng, sh, sw)} {kw(rng, 'p', 'pad', 'padding')}="
        f"{ptext} {kw(rng, 'd', 'dilation')}={pair_text(rng, dh, dw)} "
        f"{kw(rng, 'g', 'groups')}={g} bias={'true' if bias else 'false'}"
    )
    kernel = cin // g * kh * kw_

    def torch(nn):
        return nn.Conv2d(cin, cout, (kh, kw_), (sh, sw), (ph, pw), (dh, dw), g, bias)

    return Case(
        text,
        (cin, h, w),
        (cout, oh, ow),
        cout * kernel + (cout if bias else 0),
        cout * oh * ow * kernel,
        torch=torch,
    )


def conv_shorthand_case(rng) -> Case:
    k = rng.choice([1, 3, 5, 7])
    cin, cout, s, d = rng.randint(1, 6), rng.randint(1, 6), rng.randint(1, 3), rng.randint(1, 2)
    p = d * (k - 1) // 2
    h, w = fits(rng, d * (k - 1) + 1, p), fits(rng, d * (k - 1) + 1, p)
    oh, ow = conv_out(h, k, s, p, d), conv_out(w, k, s, p, d)
    return Case(
        f"conv{k} {cout} s={s} d={d}",
        (cin, h, w),
        (cout, oh, ow),
        cout * cin * k * k + cout,
        cout * oh * ow * cin * k * k,
        torch=lambda nn: nn.Conv2d(cin, cout, k, s, p, d),
    )


def dwconv_case(rng) -> Case:
    cin, m = rng.randint(1, 6), rng.choice([1, 1, 2, 3])
    (kh, kw_), (sh, sw), d = two(rng, 1, 5), two(rng, 1, 3), rng.randint(1, 2)
    ph, pw = two(rng, 0, 2)
    bias = rng.random() < 0.5
    short = rng.random() < 0.3 and kh == kw_
    if short:
        text = f"dwconv{kh} s={pair_text(rng, sh, sw)} p={pair_text(rng, ph, pw)} d={d}"
        bias = True
    else:
        text = (
            f"dwconv {pair_text(rng, kh, kw_)} s={pair_text(rng, sh, sw)} "
            f"p={pair_text(rng, ph, pw)} d={d} {kw(rng, 'm', 'multiplier')}={m} "
            f"bias={'true' if bias else 'false'}"
        )
    if short:
        m = 1
    h, w = fits(rng, d * (kh - 1) + 1, ph), fits(rng, d * (kw_ - 1) + 1, pw)
    oh, ow = conv_out(h, kh, sh, ph, d), conv_out(w, kw_, sw, pw, d)
    cout = cin * m
    return Case(
        text,
        (cin, h, w),
        (cout, oh, ow),
        cout * kh * kw_ + (cout if bias else 0),
        cout * oh * ow * kh * kw_,
        torch=lambda nn: nn.Conv2d(
            cin, cout, (kh, kw_), (sh, sw), (ph, pw), d, groups=cin, bias=bias
        ),
    )


def sepconv_case(rng) -> Case:
    cin, cout, m = rng.randint(1, 6), rng.randint(1, 8), rng.choice([1, 1, 2])
    k, s, d = rng.choice([1, 3, 5]), rng.randint(1, 2), rng.randint(1, 2)
    bias = rng.random() < 0.5
    if rng.random() < 0.5:
        p = d * (k - 1) // 2
        ptext = "same"
    else:
        p = rng.randint(0, 2)
        ptext = str(p)
    h, w = fits(rng, d * (k - 1) + 1, p), fits(rng, d * (k - 1) + 1, p)
    oh, ow = conv_out(h, k, s, p, d), conv_out(w, k, s, p, d)
    mid = cin * m
    text = f"sepconv {cout} {k} s={s} p={ptext} d={d} m={m} bias={'true' if bias else 'false'}"

    def torch(nn):
        return nn.Sequential(
            nn.Conv2d(cin, mid, k, s, p, d, groups=cin, bias=False),
            nn.Conv2d(mid, cout, 1, bias=bias),
        )

    return Case(
        text,
        (cin, h, w),
        (cout, oh, ow),
        mid * k * k + mid * cout + (cout if bias else 0),
        mid * oh * ow * k * k + mid * cout * oh * ow,
        torch=torch,
    )


def maxpool_case(rng) -> Case:
    c = rng.randint(1, 4)
    (kh, kw_), d = two(rng, 1, 4), rng.randint(1, 2)
    stride = two(rng, 1, 3) if rng.random() < 0.7 else None
    sh, sw = stride or (kh, kw_)
    ph, pw = rng.randint(0, kh // 2), rng.randint(0, kw_ // 2)
    ceil = rng.random() < 0.5
    h, w = fits(rng, d * (kh - 1) + 1, ph), fits(rng, d * (kw_ - 1) + 1, pw)
    text = (
        f"maxpool {pair_text(rng, kh, kw_)} p={pair_text(rng, ph, pw)} d={d} "
        f"{kw(rng, 'ceil', 'ceil_mode')}={'true' if ceil else 'false'}"
    )
    if stride:
        text += f" s={pair_text(rng, sh, sw)}"
    out = (c, pool_out(h, kh, sh, ph, d, ceil), pool_out(w, kw_, sw, pw, d, ceil))
    return Case(
        text,
        (c, h, w),
        out,
        torch=lambda nn: nn.MaxPool2d((kh, kw_), (sh, sw), (ph, pw), d, ceil_mode=ceil),
    )


def avgpool_case(rng) -> Case:
    c = rng.randint(1, 4)
    kh, kw_ = two(rng, 1, 4)
    sh, sw = two(rng, 1, 3)
    ph, pw = rng.randint(0, kh // 2), rng.randint(0, kw_ // 2)
    ceil, count = rng.random() < 0.5, rng.random() < 0.5
    h, w = fits(rng, kh, ph), fits(rng, kw_, pw)
    text = (
        f"avgpool {pair_text(rng, kh, kw_)} s={pair_text(rng, sh, sw)} "
        f"p={pair_text(rng, ph, pw)} ceil={'true' if ceil else 'false'} "
        f"{kw(rng, 'count_pad', 'count_include_pad')}={'true' if count else 'false'}"
    )
    out = (c, pool_out(h, kh, sh, ph, 1, ceil), pool_out(w, kw_, sw, pw, 1, ceil))
    return Case(
        text,
        (c, h, w),
        out,
        torch=lambda nn: nn.AvgPool2d((kh, kw_), (sh, sw), (ph, pw), ceil, count_include_pad=count),
    )


def pool_shorthand_case(rng) -> Case:
    kind = rng.choice(["maxpool", "avgpool"])
    k, c = rng.randint(1, 4), rng.randint(1, 4)
    h, w = rng.randint(k, 20), rng.randint(k, 20)
    module = "MaxPool2d" if kind == "maxpool" else "AvgPool2d"
    return Case(
        f"{kind}{k}", (c, h, w), (c, h // k, w // k), torch=lambda nn: getattr(nn, module)(k)
    )


def global_pool_case(rng) -> Case:
    name = rng.choice(["gap", "gmp", "global_avgpool", "global_maxpool"])
    c, h, w = rng.randint(1, 8), rng.randint(1, 12), rng.randint(1, 12)
    module = "AdaptiveMaxPool2d" if name in ("gmp", "global_maxpool") else "AdaptiveAvgPool2d"
    return Case(name, (c, h, w), (c, 1, 1), torch=lambda nn: getattr(nn, module)(1))


def adaptive_case(rng) -> Case:
    name = rng.choice(["adaptive_avgpool", "adaptive_maxpool"])
    c, h, w = rng.randint(1, 6), rng.randint(1, 16), rng.randint(1, 16)
    oh, ow = two(rng, 1, 9)
    module = "AdaptiveAvgPool2d" if "avg" in name else "AdaptiveMaxPool2d"
    return Case(
        f"{name} {pair_text(rng, oh, ow)}",
        (c, h, w),
        (c, oh, ow),
        torch=lambda nn: getattr(nn, module)((oh, ow)),
    )


def fc_case(rng) -> Case:
    name = rng.choice(["fc", "dense", "linear"])
    n, bias = rng.randint(1, 40), rng.random() < 0.5
    shape = rng.choice([(rng.randint(1, 60),), (rng.randint(1, 60), 1, 1)])
    fin = shape[0]
    return Case(
        f"{name} {n} bias={'true' if bias else 'false'}",
        shape,
        (n,),
        fin * n + (n if bias else 0),
        fin * n,
        torch=lambda nn: nn.Sequential(nn.Flatten(), nn.Linear(fin, n, bias)),
    )


def flatten_case(rng) -> Case:
    if rng.random() < 0.3:
        f = rng.randint(1, 50)
        return Case("flatten", (f,), (f,), torch=lambda nn: nn.Flatten())
    c, h, w = rng.randint(1, 6), rng.randint(1, 9), rng.randint(1, 9)
    return Case("flatten", (c, h, w), (c * h * w,), torch=lambda nn: nn.Flatten())


def bn_case(rng) -> Case:
    name = rng.choice(["bn", "batchnorm"])
    eps, momentum = rng.choice([1e-5, 1e-3]), rng.choice([0.1, 0.01])
    if rng.random() < 0.3:
        f = rng.randint(1, 50)
        return Case(
            f"{name} eps={eps} momentum={momentum}",
            (f,),
            (f,),
            2 * f,
            buffers=2 * f,
            torch=lambda nn: nn.BatchNorm1d(f, eps, momentum),
        )
    c, h, w = rng.randint(1, 16), rng.randint(1, 6), rng.randint(1, 6)
    if rng.random() < 0.3:  # no learned scale (Keras' scale=False): the shift beta only
        return Case(f"{name} scale=false", (c, h, w), (c, h, w), c, buffers=2 * c)
    return Case(
        name,
        (c, h, w),
        (c, h, w),
        2 * c,
        buffers=2 * c,
        torch=lambda nn: nn.BatchNorm2d(c, eps, momentum),
    )


def lrn_case(rng) -> Case:
    c, h, w = rng.randint(1, 12), rng.randint(1, 6), rng.randint(1, 6)
    if rng.random() < 0.3:
        return Case(
            "lrn", (c, h, w), (c, h, w), torch=lambda nn: nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0)
        )
    n = rng.randint(1, 7)
    return Case(
        f"lrn {n} alpha=0.001 beta=0.5 k=1",
        (c, h, w),
        (c, h, w),
        torch=lambda nn: nn.LocalResponseNorm(n, 0.001, 0.5, 1.0),
    )


def any_shape(rng):
    return rng.choice(
        [(rng.randint(1, 40),), (rng.randint(1, 8), rng.randint(1, 8), rng.randint(1, 8))]
    )


_ACTIVATIONS = {
    "relu": "ReLU",
    "relu6": "ReLU6",
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "gelu": "GELU",
    "hardswish": "Hardswish",
    "hardsigmoid": "Hardsigmoid",
    "silu": "SiLU",
    "swish": "SiLU",
}


def activation_case(rng) -> Case:
    shape = any_shape(rng)
    name = rng.choice(sorted(_ACTIVATIONS) + ["leaky_relu", "elu", "softmax"])
    if name == "leaky_relu":
        return Case("leaky_relu 0.2", shape, shape, torch=lambda nn: nn.LeakyReLU(0.2))
    if name == "elu":
        return Case("elu alpha=0.5", shape, shape, torch=lambda nn: nn.ELU(0.5))
    if name == "softmax":
        return Case("softmax", shape, shape, torch=lambda nn: nn.Softmax(dim=1))
    return Case(name, shape, shape, torch=lambda nn: getattr(nn, _ACTIVATIONS[name])())


def regularization_case(rng) -> Case:
    shape = any_shape(rng)
    p = rng.choice([0.1, 0.25, 0.5])
    kind = rng.choice(["dropout", "dropout_default", "drop_path", "scale"])
    if kind == "dropout":
        return Case(f"dropout {p}", shape, shape, torch=lambda nn: nn.Dropout(p))
    if kind == "dropout_default":
        return Case("dropout", shape, shape, torch=lambda nn: nn.Dropout())
    if kind == "drop_path":
        return Case(f"drop_path {p}", shape, shape)  # no torch.nn equivalent; shape only
    return Case(f"scale {p}", shape, shape)


def sides_case(rng, op: str) -> tuple[tuple[int, ...], str]:
    """(left, right, top, bottom) and `op` written in one of its three forms: `op 2`,
    `op (h, w)`, `op (left, right, top, bottom)`."""
    form = rng.choice(["int", "pair", "four"])
    if form == "int":
        p = rng.randint(0, 3)
        return (p, p, p, p), f"{op} {p}"
    if form == "pair":
        ph, pw = rng.randint(0, 3), rng.randint(0, 3)
        return (pw, pw, ph, ph), f"{op} ({ph}, {pw})"
    sides = tuple(rng.randint(0, 3) for _ in range(4))
    return sides, "{} ({}, {}, {}, {})".format(op, *sides)


def zeropad_case(rng) -> Case:
    c, h, w = rng.randint(1, 4), rng.randint(1, 8), rng.randint(1, 8)
    sides, text = sides_case(rng, "zeropad")
    left, right, top, bottom = sides
    return Case(
        text,
        (c, h, w),
        (c, h + top + bottom, w + left + right),
        torch=lambda nn: nn.ZeroPad2d(sides),
    )


def crop_case(rng) -> Case:
    c, h, w = rng.randint(1, 4), rng.randint(7, 10), rng.randint(7, 10)
    sides, text = sides_case(rng, "crop")
    left, right, top, bottom = sides
    return Case(
        text,
        (c, h, w),
        (c, h - top - bottom, w - left - right),
        torch=lambda nn: nn.ZeroPad2d(tuple(-side for side in sides)),  # negative pads crop
    )


def shuffle_case(rng) -> Case:
    g = rng.randint(1, 4)
    c, h, w = g * rng.randint(1, 4), rng.randint(1, 6), rng.randint(1, 6)
    return Case(f"shuffle {g}", (c, h, w), (c, h, w), torch=lambda nn: nn.ChannelShuffle(g))


def _selection(name, forward):
    """A torch module for a channel selection (PyTorch has no nn class for a slice)."""
    return lambda nn: type(name, (nn.Module,), {"forward": lambda self, x: forward(x)})()


def chunk_case(rng) -> Case:
    n = rng.randint(1, 4)
    i = rng.randint(0, n - 1)
    size = rng.randint(1, 5)
    shape = rng.choice([(n * size, rng.randint(1, 6), rng.randint(1, 6)), (n * size,)])
    text = rng.choice(
        [f"chunk {n} {i}", f"chunk({n}, {i})", f"chunk {kw(rng, 'n', 'chunks')}={n} i={i}"]
    )
    out = (size, *shape[1:])
    return Case(text, shape, out, torch=_selection("Chunk", lambda x: x.chunk(n, dim=1)[i]))


def channels_case(rng) -> Case:
    c = rng.randint(1, 12)
    start = rng.randint(0, c - 1)
    stop = rng.randint(start + 1, c)
    shape = rng.choice([(c, rng.randint(1, 6), rng.randint(1, 6)), (c,)])
    text = rng.choice([f"channels {start} {stop}", f"channels({start}, {stop})"])
    out = (stop - start, *shape[1:])
    return Case(text, shape, out, torch=_selection("Slice", lambda x: x[:, start:stop]))


def layernorm_case(rng) -> Case:
    eps = rng.choice([1e-5, 1e-6])
    text = "layernorm" if eps == 1e-5 else f"layernorm eps={eps}"
    if rng.random() < 0.4:  # flat: nn.LayerNorm over the features
        f = rng.randint(1, 50)
        return Case(text, (f,), (f,), 2 * f, torch=lambda nn: nn.LayerNorm(f, eps))
    # an image: over the channels at each position (checked against Keras in test_catalogue)
    c, h, w = rng.randint(1, 16), rng.randint(1, 6), rng.randint(1, 6)
    return Case(text, (c, h, w), (c, h, w), 2 * c)


def groupnorm_case(rng) -> Case:
    g = rng.randint(1, 4)
    c = g * rng.randint(1, 4)
    eps = rng.choice([1e-5, 1e-6])
    name = rng.choice(["groupnorm", "gn", "group_norm"])
    text = f"{name} {g}" if rng.random() < 0.5 else f"{name} {kw(rng, 'g', 'groups')}={g}"
    text += "" if eps == 1e-5 else f" eps={eps}"
    # a flat tensor is PyTorch's (N, C) input: each group of features together (a group
    # of one value is refused: test_groupnorm_groups_must_divide_channels)
    shape = rng.choice([(c, rng.randint(1, 6), rng.randint(2, 6)), (2 * c,)])
    c = shape[0]
    return Case(text, shape, shape, 2 * c, torch=lambda nn: nn.GroupNorm(g, c, eps))


def instancenorm_case(rng) -> Case:
    c, h, w = rng.randint(1, 8), rng.randint(2, 6), rng.randint(1, 6)
    affine = rng.random() < 0.5
    name = rng.choice(["instancenorm", "instance_norm"])
    text = f"{name} affine=true" if affine else name
    return Case(
        text,
        (c, h, w),
        (c, h, w),
        2 * c if affine else 0,
        torch=lambda nn: nn.InstanceNorm2d(c, affine=affine),
    )


def layer_scale_case(rng) -> Case:
    init = rng.choice(["", " 1e-6", " 0.1", " init=0.5"])
    c = rng.randint(1, 16)
    shape = rng.choice([(c, rng.randint(1, 6), rng.randint(1, 6)), (c,)])
    return Case(f"layer_scale{init}", shape, shape, c)  # against torchvision: test_weights


def pointwise_fc_case(rng) -> Case:
    c, h, w = rng.randint(1, 12), rng.randint(1, 6), rng.randint(1, 6)
    n, bias = rng.randint(1, 20), rng.random() < 0.5
    name = rng.choice(["pointwise_fc", "pointwise_linear"])

    def torch(nn):
        class PerPosition(nn.Linear):  # torchvision's ConvNeXt: Permute, Linear, Permute
            def forward(self, x):
                return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

        return PerPosition(c, n, bias)

    return Case(
        f"{name} {n} bias={'true' if bias else 'false'}",
        (c, h, w),
        (n, h, w),
        c * n + (n if bias else 0),
        c * n * h * w,  # flop_counter counts nn.Linear at every position
        torch=torch,
    )


def conv_transpose_case(rng) -> Case:
    g = rng.choice([1, 1, 2, 3])
    cin, cout = g * rng.randint(1, 4), g * rng.randint(1, 4)
    (kh, kw_), (sh, sw), (dh, dw) = two(rng, 1, 5), two(rng, 1, 3), two(rng, 1, 3, 0.7)
    (ph, pw) = two(rng, 0, 2)
    oph = rng.randint(0, max(sh, dh) - 1)
    opw = rng.randint(0, max(sw, dw) - 1)
    h, w = rng.randint(2, 7), rng.randint(2, 7)
    oh = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    ow = (w - 1) * sw - 2 * pw + dw * (kw_ - 1) + opw + 1
    if oh < 1 or ow < 1:
        ph = pw = 0
        oh = (h - 1) * sh + dh * (kh - 1) + oph + 1
        ow = (w - 1) * sw + dw * (kw_ - 1) + opw + 1
    bias = rng.random() < 0.5
    name = rng.choice(["conv_transpose", "deconv", "convt", "conv_t"])
    text = (
        f"{name} {cout} {kw(rng, 'k', 'kernel')}={pair_text(rng, kh, kw_)} "
        f"{kw(rng, 's', 'stride')}={pair_text(rng, sh, sw)} {kw(rng, 'p', 'pad', 'padding')}="
        f"{pair_text(rng, ph, pw)} {kw(rng, 'output_padding', 'op')}={pair_text(rng, oph, opw)} "
        f"{kw(rng, 'd', 'dilation')}={pair_text(rng, dh, dw)} "
        f"{kw(rng, 'g', 'groups')}={g} bias={'true' if bias else 'false'}"
    )

    def torch(nn):
        return nn.ConvTranspose2d(
            cin, cout, (kh, kw_), (sh, sw), (ph, pw), (oph, opw), g, bias, (dh, dw)
        )

    params = cin * (cout // g) * kh * kw_ + (cout if bias else 0)
    macs = cin * (cout // g) * kh * kw_ * h * w  # each input position scatters a patch
    return Case(text, (cin, h, w), (cout, oh, ow), params, macs, torch=torch)


def upsample_case(rng) -> Case:
    c, h, w = rng.randint(1, 4), rng.randint(1, 6), rng.randint(1, 6)
    mode = rng.choice(["nearest", "bilinear"])
    corners = mode == "bilinear" and rng.random() < 0.3
    extra = f" mode={mode}" if mode != "nearest" or rng.random() < 0.3 else ""
    extra += " align_corners=true" if corners else ""
    name = rng.choice(["upsample", "upsample", "upsampling", "interpolate"])
    kwargs = {"mode": mode} | ({"align_corners": corners} if mode == "bilinear" else {})
    if rng.random() < 0.5:
        sh, sw = two(rng, 1, 3)
        text = f"{name} {pair_text(rng, sh, sw)}{extra}"
        out = (c, h * sh, w * sw)
        return Case(
            text, (c, h, w), out, torch=lambda nn: nn.Upsample(scale_factor=(sh, sw), **kwargs)
        )
    oh, ow = rng.randint(1, 12), rng.randint(1, 12)
    text = f"{name} size=({oh}, {ow}){extra}"
    return Case(text, (c, h, w), (c, oh, ow), torch=lambda nn: nn.Upsample(size=(oh, ow), **kwargs))


def pixel_shuffle_case(rng) -> Case:
    r = rng.randint(1, 3)
    if rng.random() < 0.5:
        c, h, w = r * r * rng.randint(1, 3), rng.randint(1, 5), rng.randint(1, 5)
        return Case(
            f"pixel_shuffle {r}",
            (c, h, w),
            (c // (r * r), h * r, w * r),
            torch=lambda nn: nn.PixelShuffle(r),
        )
    c, h, w = rng.randint(1, 4), r * rng.randint(1, 4), r * rng.randint(1, 4)
    return Case(
        f"pixel_unshuffle {r}",
        (c, h, w),
        (c * r * r, h // r, w // r),
        torch=lambda nn: nn.PixelUnshuffle(r),
    )


# ---- token layers: sequences (N, D), batch first as PyTorch's (B, N, D) --------------------


def _module(name, forward, **parameters):
    """A torch module from a forward function (PyTorch has no nn class for these reshapes);
    `parameters`: name -> shape of each learnt tensor, registered in that order."""

    def build(nn):
        torch = need("torch")
        module = type(name, (nn.Module,), {"forward": lambda self, x: forward(self, x)})()
        for key, shape in parameters.items():
            setattr(module, key, nn.Parameter(torch.randn(shape)))
        return module

    return build


def tokens_case(rng) -> Case:
    c, h, w = rng.randint(1, 8), rng.randint(1, 6), rng.randint(1, 6)
    return Case(
        "tokens",
        (c, h, w),
        (h * w, c),
        torch=_module("Tokens", lambda self, x: x.flatten(2).transpose(1, 2)),
    )


def image_case(rng) -> Case:
    d, h, w = rng.randint(1, 8), rng.randint(1, 6), rng.randint(1, 6)
    if h == w and rng.random() < 0.5:
        text = rng.choice(["image", f"image {h}"])
    else:
        text = rng.choice([f"image {h} {w}", f"image h={h} w={w}", f"image {h} w={w}"])

    def forward(self, x):
        return x.transpose(1, 2).reshape(x.shape[0], d, h, w)

    return Case(text, (h * w, d), (d, h, w), torch=_module("ToImage", forward))


def patch_embed_case(rng) -> Case:
    c, d, p = rng.randint(1, 4), rng.randint(1, 16), rng.randint(1, 4)
    gh, gw = rng.randint(1, 5), rng.randint(1, 5)
    bias = rng.random() < 0.7
    text = rng.choice(
        [f"patch_embed {d} {p}", f"patch_embed d={d} p={p}", f"patch_embed {d} patch={p}"]
    )
    text += "" if bias else " bias=false"
    n = gh * gw

    def torch(nn):  # torchvision's conv_proj, then its reshape and permute
        conv = nn.Conv2d(c, d, kernel_size=p, stride=p, bias=bias)
        return nn.Sequential(
            conv, _module("Tokens", lambda self, x: x.flatten(2).transpose(1, 2))(nn)
        )

    return Case(
        text,
        (c, gh * p, gw * p),
        (n, d),
        d * p * p * c + (d if bias else 0),
        n * d * p * p * c,
        torch=torch,
    )


def cls_token_case(rng) -> Case:
    n, d, k = rng.randint(1, 10), rng.randint(1, 16), rng.choice([1, 1, 1, 2, 4])
    name = rng.choice(["cls_token", "class_token"])
    text = name if k == 1 and rng.random() < 0.5 else rng.choice([f"{name} {k}", f"{name} n={k}"])

    def forward(self, x):
        return need("torch").cat([self.token.expand(x.shape[0], -1, -1), x], dim=1)

    return Case(
        text, (n, d), (n + k, d), k * d, torch=_module("ClassToken", forward, token=(1, k, d))
    )


def pos_embed_case(rng) -> Case:
    n, d = rng.randint(1, 12), rng.randint(1, 16)
    name = rng.choice(["pos_embed", "position_embedding"])
    text = rng.choice([name, f"{name} {n}", f"{name} n={n}"])
    return Case(
        text,
        (n, d),
        (n, d),
        n * d,
        torch=_module("PositionEmbedding", lambda self, x: x + self.embedding, embedding=(1, n, d)),
    )


def attention_case(rng) -> Case:
    heads = rng.randint(1, 4)
    head_dim, n = rng.randint(1, 6), rng.randint(1, 10)
    d = heads * head_dim
    bias, causal = rng.random() < 0.7, rng.random() < 0.3
    dropout = rng.choice([0.0, 0.0, 0.1])
    name = rng.choice(["attention", "attention", "mha", "self_attention"])
    text = f"{name} {rng.choice([str(heads), f'heads={heads}', f'h={heads}'])}"
    text += "" if bias else " bias=false"
    text += "" if not causal else " causal=true"
    text += "" if not dropout else f" dropout={dropout}"

    def torch(nn):
        torch = need("torch")

        class Attention(nn.MultiheadAttention):
            """nn.MultiheadAttention as self-attention on its unfused path (the weights'
            matmuls, which flop_counter counts: see test_zoo_transformers.py)."""

            def forward(self, x):
                mask = torch.full((n, n), float("-inf")).triu(1) if causal else None
                fast = torch.backends.mha.get_fastpath_enabled()
                torch.backends.mha.set_fastpath_enabled(False)
                try:
                    return super().forward(x, x, x, need_weights=True, attn_mask=mask)[0]
                finally:
                    torch.backends.mha.set_fastpath_enabled(fast)

        return Attention(d, heads, dropout=dropout, bias=bias, batch_first=True)

    params = 4 * d * d + (4 * d if bias else 0)
    macs = 4 * n * d * d + 2 * n * n * d  # projections; Q K^T and A V over all heads
    return Case(text, (n, d), (n, d), params, macs, torch=torch)


def token_pool_case(rng) -> Case:
    n, d = rng.randint(1, 10), rng.randint(1, 16)
    mode = rng.choice(["cls", "mean"])
    text = rng.choice([f"token_pool {mode}", f"token_pool mode={mode}"])
    if mode == "cls" and rng.random() < 0.5:
        text = "token_pool"

    def forward(self, x):
        return x[:, 0] if mode == "cls" else x.mean(dim=1)

    return Case(text, (n, d), (d,), torch=_module("TokenPool", forward))


def embedding_case(rng) -> Case:
    n, d, vocab = rng.randint(1, 12), rng.randint(1, 16), rng.randint(2, 50)
    rows = vocab if rng.random() < 0.6 else vocab + rng.randint(1, 10)
    text = f"embedding {rng.choice([str(d), f'd={d}', f'dim={d}'])}"
    text += f" vocab={rows}" if rows != vocab or rng.random() < 0.3 else ""
    return Case(text, (n,), (n, d), rows * d, torch=lambda nn: nn.Embedding(rows, d), vocab=vocab)


def tokenwise_case(rng) -> Case:
    """Layers that act on each token's D features (the last dimension) or on each value."""
    n, d = rng.randint(1, 10), rng.randint(1, 16)
    shape = (n, d)
    kind = rng.choice(["fc", "layernorm", "softmax", "gelu", "layer_scale", "flatten", "act"])
    if kind == "fc":
        m, bias = rng.randint(1, 20), rng.random() < 0.5
        return Case(
            f"fc {m} bias={'true' if bias else 'false'}",
            shape,
            (n, m),
            d * m + (m if bias else 0),
            n * d * m,
            torch=lambda nn: nn.Linear(d, m, bias),
        )
    if kind == "layernorm":
        return Case(
            "layernorm eps=1e-6", shape, shape, 2 * d, torch=lambda nn: nn.LayerNorm(d, 1e-6)
        )
    if kind == "softmax":  # over each token's features
        return Case("softmax", shape, shape, torch=lambda nn: nn.Softmax(dim=-1))
    if kind == "gelu":
        tanh = rng.random() < 0.5
        return Case(
            f"gelu approximate={'true' if tanh else 'false'}",
            shape,
            shape,
            torch=lambda nn: nn.GELU(approximate="tanh" if tanh else "none"),
        )
    if kind == "layer_scale":
        return Case("layer_scale", shape, shape, d)
    if kind == "flatten":
        return Case("flatten", shape, (n * d,), torch=lambda nn: nn.Flatten())
    name = rng.choice(sorted(_ACTIVATIONS))
    return Case(name, shape, shape, torch=lambda nn: getattr(nn, _ACTIVATIONS[name])())


GENERATORS = {
    "conv": conv_case,
    "conv_shorthand": conv_shorthand_case,
    "dwconv": dwconv_case,
    "sepconv": sepconv_case,
    "maxpool": maxpool_case,
    "avgpool": avgpool_case,
    "pool_shorthand": pool_shorthand_case,
    "global_pool": global_pool_case,
    "adaptive": adaptive_case,
    "fc": fc_case,
    "flatten": flatten_case,
    "bn": bn_case,
    "layernorm": layernorm_case,
    "groupnorm": groupnorm_case,
    "instancenorm": instancenorm_case,
    "layer_scale": layer_scale_case,
    "pointwise_fc": pointwise_fc_case,
    "lrn": lrn_case,
    "activation": activation_case,
    "regularization": regularization_case,
    "zeropad": zeropad_case,
    "crop": crop_case,
    "shuffle": shuffle_case,
    "chunk": chunk_case,
    "channels": channels_case,
    "conv_transpose": conv_transpose_case,
    "upsample": upsample_case,
    "pixel_shuffle": pixel_shuffle_case,
    "tokens": tokens_case,
    "image": image_case,
    "patch_embed": patch_embed_case,
    "cls_token": cls_token_case,
    "pos_embed": pos_embed_case,
    "attention": attention_case,
    "token_pool": token_pool_case,
    "embedding": embedding_case,
    "tokenwise": tokenwise_case,
}


def cases(kind: str) -> list[Case]:
    rng = random.Random(f"netdsl-{kind}")
    return [GENERATORS[kind](rng) for _ in range(CASES)]


# ---- the checks --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_rule_matches_the_reference_formulas(kind):
    for case in cases(kind):
        node = run(case.text, case.shape, case.vocab)
        got = (node.out_shape, node.params, node.macs, node.buffers)
        assert got == (case.out, case.params, case.macs, case.buffers), (
            f"{case.text} on {case.shape}"
        )


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_rule_matches_torch(kind):
    torch = need("torch")
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    for case in cases(kind):
        if case.torch is None:
            continue
        module = case.torch(torch.nn).eval()
        node = run(case.text, case.shape, case.vocab)
        x = torch.zeros(1, *case.shape, dtype=torch.long if case.vocab else torch.float)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            y = module(x)
        where = f"{case.text} on {case.shape}"
        assert tuple(y.shape[1:]) == node.out_shape, where
        assert sum(p.numel() for p in module.parameters()) == node.params, where
        assert counter.get_total_flops() // 2 == node.macs, where
        buffers = sum(
            b.numel()
            for name, b in module.named_buffers()
            if name.endswith(("running_mean", "running_var"))
        )
        assert buffers == node.buffers, where


def test_every_catalogue_layer_is_generated():
    """A new layer in the catalogue must get a generator here."""
    spelled = {c.text.split()[0] for kind in GENERATORS for c in cases(kind)}
    covered = set()
    for word in spelled:
        for name, spec in CATALOGUE.items():
            if word == name or (word.startswith(name) and word[len(name) :].isdigit()):
                covered.add(spec.name)
    assert covered == {spec.name for spec in CATALOGUE.values()}


# ---- exact rules at the edges ----------------------------------------------------------------


def test_size_falls_to_zero_exactly_when_pytorch_refuses():
    torch = need("torch")
    rng = random.Random("edges")
    for _ in range(150):
        kind = rng.choice(["conv", "maxpool", "avgpool"])
        k, s, p = rng.randint(1, 6), rng.randint(1, 3), rng.randint(0, 2)
        p = min(p, k // 2)
        n, ceil = rng.randint(1, 6), rng.random() < 0.5
        if kind == "conv":
            text, module = f"conv 2 k={k} s={s} p={p}", torch.nn.Conv2d(1, 2, k, s, p)
        elif kind == "maxpool":
            text = f"maxpool {k} s={s} p={p} ceil={str(ceil).lower()}"
            module = torch.nn.MaxPool2d(k, s, p, ceil_mode=ceil)
        else:
            text = f"avgpool {k} s={s} p={p} ceil={str(ceil).lower()}"
            module = torch.nn.AvgPool2d(k, s, p, ceil_mode=ceil)
        try:
            expected = tuple(module(torch.zeros(1, 1, n, n)).shape[1:])
        except RuntimeError:
            expected = None
        try:
            got = run(text, (1, n, n)).out_shape
        except NetdslError as e:
            assert "size falls to zero" in e.message, e.message
            got = None
        assert got == expected, f"{text} on 1x{n}x{n}"


def test_ceil_mode_last_window_must_start_inside_the_input():
    # 3x3/2 pooling of 6 rows: floor gives 2; ceil would give 3, and the third window starts
    # at row 4, inside the input, so it stays. With padding 1 on 5 rows, ceil gives 3 but the
    # third window would start at row 4 of the padded input = the padding, so it is dropped.
    assert run("maxpool 3 s=2", (1, 6, 6)).out_shape == (1, 2, 2)
    assert run("maxpool 3 s=2 ceil=true", (1, 6, 6)).out_shape == (1, 3, 3)
    assert run("maxpool 2 s=2 p=1 ceil=true", (1, 5, 5)).out_shape == (1, 3, 3)
    assert run("maxpool 3 s=2 ceil=true", (1, 2, 2)).out_shape == (1, 1, 1)
    # torchvision GoogLeNet's pools: 112 -> 56 -> 28 -> 14 -> 7
    assert run("maxpool 3 s=2 ceil=true", (64, 112, 112)).out_shape == (64, 56, 56)
    assert run("maxpool 2 s=2 ceil=true", (832, 14, 14)).out_shape == (832, 7, 7)


def test_same_padding_is_symmetric_and_keeps_the_size_at_stride_one():
    node = run("conv 8 k=(1, 7) p=same", (4, 17, 17))
    assert node.out_shape == (8, 17, 17) and node.value("p") == (0, 3)
    node = run("conv 8 k=3 d=2 p=same", (4, 9, 9))
    assert node.out_shape == (8, 9, 9) and node.value("p") == 2
    assert run("conv3 8 s=2", (4, 9, 9)).out_shape == (8, 5, 5)


def test_same_padding_needs_an_odd_kernel():
    with pytest.raises(NetdslError) as info:
        run("conv 8 k=2 p=same", (4, 9, 9))
    assert info.value.message == "conv: p=same needs an odd kernel size, got 2 (input 4x9x9)"


def test_depthwise_is_grouped_conv_with_one_filter_per_channel():
    node = run("conv 32 k=3 p=1 g=32 bias=false", (32, 10, 10))
    dw = run("dwconv 3 p=1 bias=false", (32, 10, 10))
    assert (dw.out_shape, dw.params, dw.macs) == (node.out_shape, node.params, node.macs)
    assert dw.out_shape == (32, 10, 10) and dw.params == 32 * 9 and dw.macs == 32 * 100 * 9


def test_separable_is_depthwise_without_bias_then_pointwise():
    node = run("sepconv 64", (32, 10, 10))  # k=3, p=0 by default
    assert node.out_shape == (64, 8, 8)
    assert node.params == 32 * 9 + 32 * 64 + 64
    assert node.macs == 32 * 64 * 9 + 32 * 64 * 64


def test_fc_needs_a_flat_input_or_channels_by_one_by_one():
    assert run("fc 10", (512, 1, 1)).params == 5130
    assert run("fc 10", (512,)).params == 5130
    with pytest.raises(NetdslError) as info:
        run("fc 10", (512, 7, 7))
    assert info.value.message == "fc needs a flat input but got 512x7x7"
    assert info.value.hint == (
        "insert `flatten` (to 25088 features) or `gap` (to 512) before fc; "
        "`pointwise_fc 10` applies it at each position"
    )


def test_pointwise_fc_is_a_linear_at_every_position():
    node = run("pointwise_fc 384", (96, 56, 56))  # ConvNeXt-T's first MLP layer
    assert node.out_shape == (384, 56, 56)
    assert (node.params, node.macs) == (96 * 384 + 384, 96 * 384 * 56 * 56)
    with pytest.raises(NetdslError) as info:
        run("pointwise_fc 10", (16,))
    assert info.value.message == (
        "pointwise_fc needs an image tensor (C x H x W) but got a flat tensor of 16 features"
    )


def test_groupnorm_groups_must_divide_channels():
    with pytest.raises(NetdslError) as info:
        run("groupnorm 32", (48, 4, 4))
    assert info.value.message == "groupnorm: 32 groups do not divide 48 channels (input 48x4x4)"
    assert info.value.hint == "choose a group count that divides the channels, e.g. groupnorm 24"
    assert run("groupnorm 4", (8,)).params == 16
    with pytest.raises(NetdslError) as info:
        run("groupnorm 4", (4,))  # PyTorch: "Expected more than 1 value per channel"
    assert info.value.message.startswith("groupnorm: each group holds one value")


def test_instancenorm_needs_more_than_one_position():
    assert run("instancenorm", (8, 2, 1)).params == 0
    assert run("instance_norm affine=true", (8, 2, 1)).params == 16
    with pytest.raises(NetdslError) as info:
        run("instancenorm", (8, 1, 1))
    assert info.value.message.startswith("instancenorm needs more than one position")
    torch = need("torch")
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        torch.nn.InstanceNorm2d(8).eval()(torch.zeros(1, 8, 1, 1))


def test_layer_scale_is_one_factor_per_channel():
    assert run("layer_scale", (96, 56, 56)).params == 96
    assert run("layer_scale 0.1", (10,)).params == 10
    assert run("layer_scale", (96, 56, 56)).value("init") == 1e-6


def test_bn_counts_affine_parameters_and_running_statistics_separately():
    node = run("bn", (64, 8, 8))
    assert (node.params, node.buffers) == (128, 128)
    node = run("bn", (100,))
    assert (node.out_shape, node.params, node.buffers) == ((100,), 200, 200)


def test_image_only_layers_refuse_flat_tensors():
    for text in (
        "conv3 4",
        "maxpool2",
        "gap",
        "zeropad 1",
        "crop 1",
        "lrn",
        "shuffle 2",
        "adaptive_avgpool 2",
        "dwconv3",
        "sepconv 4",
    ):
        with pytest.raises(NetdslError) as info:
            run(text, (16,))
        assert (
            "needs an image tensor (C x H x W) but got a flat tensor of 16 features"
            in info.value.message
        ), text


def test_pool_padding_at_most_half_the_kernel():
    with pytest.raises(NetdslError) as info:
        run("maxpool 3 s=2 p=2", (4, 9, 9))
    assert info.value.message == "maxpool: padding 2 is more than half the kernel 3 (input 4x9x9)"
    assert info.value.hint == "PyTorch allows at most k//2 padding for pooling"


def test_groups_must_divide_channels():
    with pytest.raises(NetdslError) as info:
        run("conv 8 k=1 g=3", (6, 4, 4))
    assert info.value.message == (
        "conv: groups=3 must divide both input channels (6) and output channels (8)"
    )


def test_crop_removes_left_right_top_bottom_as_zeropad_adds_them():
    node = run("crop (1, 0, 2, 3)", (4, 9, 8))  # the sides in ZeroPad2d's order
    assert node.out_shape == (4, 4, 7)
    assert run("crop (2, 1)", (4, 9, 8)).out_shape == (4, 5, 6)  # (h, w): both sides
    shifted = "network t:\n    input 4x9x8\n    zeropad (0, 1, 0, 1) + crop (1, 0, 1, 0)\n"
    assert compile_text(shifted, "crop.net").nodes()[-1].out_shape == (4, 9, 8)
    with pytest.raises(NetdslError) as info:
        run("crop (2, 2, 0, 0)", (4, 9, 4))
    assert info.value.message == (
        "crop: removing 0+0 rows and 2+2 columns leaves nothing (input 4x9x4)"
    )
    assert info.value.hint == "crop fewer rows or columns, or crop a larger input"


def test_channel_selections_are_views_that_count_nothing():
    for text, shape, out in (
        ("chunk(2, 1)", (116, 28, 28), (58, 28, 28)),
        ("chunk 4 3", (12,), (3,)),
        ("channels(16, 116)", (116, 7, 7), (100, 7, 7)),
        ("channels 0 1", (5,), (1,)),
    ):
        node = run(text, shape)
        assert (node.out_shape, node.params, node.macs) == (out, 0, 0), text
    net = compile_text(
        "network t:\n    input 8x4x4\n    concat(chunk(2, 0), chunk(2, 1) + conv1 4) + shuffle 2\n"
    )
    assert [n.out_shape for n in net.nodes()][-1] == (8, 4, 4)


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        (
            "chunk(3, 0)",
            "chunk: 3 equal parts do not divide 8 channels (input 8x4x4)",
            "choose a number of parts that divides 8, or select channels(start, stop) explicitly",
        ),
        (
            "chunk(2, 2)",
            "chunk: there is no part 2 of 2 (parts are numbered 0 to 1) (input 8x4x4)",
            "write chunk(2, 0) ... chunk(2, 1)",
        ),
        (
            "channels(4, 9)",
            "channels: stop 9 is past the last of 8 channels (input 8x4x4)",
            "the channels are numbered 0 to 7; stop is one past the last selected",
        ),
        (
            "channels(5, 5)",
            "channels(5, 5) selects nothing (input 8x4x4)",
            "write channels(start, stop) with start < stop: channels start ... stop - 1",
        ),
    ],
)
def test_channel_selections_refuse_what_torch_would_not_give(text, message, hint):
    with pytest.raises(NetdslError) as info:
        run(text, (8, 4, 4))
    assert (info.value.message, info.value.hint) == (message, hint)


@pytest.mark.parametrize(
    ("name", "proposed"),
    [("split", "chunk"), ("half", "chunk"), ("slice", "channels"), ("narrow", "channels")],
)
def test_split_spellings_propose_the_channel_selections(name, proposed):
    with pytest.raises(NetdslError) as info:
        run(f"{name}(2)", (8, 4, 4))
    assert info.value.hint.startswith(f"did you mean '{proposed}'?")


def test_shuffle_groups_must_divide_channels():
    with pytest.raises(NetdslError) as info:
        run("shuffle 4", (6, 4, 4))
    assert info.value.message == "shuffle: 4 groups do not divide 6 channels (input 6x4x4)"


def test_act_argument_appends_the_activation():
    net = compile_text(
        "network t:\n    input 3x8x8\n    conv3 4 act=relu + gap + fc 2 act=(leaky_relu 0.2)\n",
        "act.net",
    )
    assert [n.op for n in net.nodes()] == ["input", "conv", "relu", "gap", "fc", "leaky_relu"]
    assert net.nodes()[-1].value("slope") == 0.2


def test_shorthand_fixes_its_kernel():
    with pytest.raises(NetdslError) as info:
        run("conv3 16 5", (3, 8, 8))
    assert info.value.message == "conv3 takes 1 positional argument but 2 were given"
    assert info.value.hint == "conv3 takes 1 positional argument (c); give the others by name"
    with pytest.raises(NetdslError) as info:
        run("conv3 16 k=5", (3, 8, 8))
    assert info.value.message == "conv3 fixes k=3; use conv k=... instead"
    with pytest.raises(NetdslError) as info:
        run("maxpool2 3", (3, 8, 8))
    assert info.value.message == "maxpool2 takes 0 positional arguments but 1 was given"


# ---- resampling: transposed convolution, upsampling, pixel shuffle --------------------------


def test_conv_transpose_size_is_pytorchs_and_refuses_what_pytorch_refuses():
    torch = need("torch")
    rng = random.Random("transpose-edges")
    for _ in range(120):
        k, s, d = rng.randint(1, 4), rng.randint(1, 3), rng.randint(1, 2)
        p, op, n = rng.randint(0, 3), rng.randint(0, 3), rng.randint(1, 4)
        text = f"conv_transpose 2 k={k} s={s} p={p} op={op} d={d}"
        try:
            module = torch.nn.ConvTranspose2d(1, 2, k, s, p, op, dilation=d)
            expected = tuple(module(torch.zeros(1, 1, n, n)).shape[1:])
        except (RuntimeError, ValueError):
            expected = None
        try:
            got = run(text, (1, n, n)).out_shape
        except NetdslError as e:
            assert "output_padding" in e.message or "size falls to" in e.message, e.message
            got = None
        assert got == expected, f"{text} on 1x{n}x{n}"


def test_resampling_errors_are_located_and_say_why():
    cases = {
        ("conv_transpose 4 k=3 s=2 op=2", (4, 5, 5)): (
            "conv_transpose: output_padding 2 on H must be smaller than the stride (2) "
            "or the dilation (1) (input 4x5x5)"
        ),
        ("conv_transpose 4 k=2 g=3", (6, 5, 5)): (
            "conv_transpose: groups=3 must divide both input channels (6) and output channels (4)"
        ),
        ("conv_transpose 4 k=1 p=1", (4, 2, 2)): (
            "conv_transpose: the H size falls to 0: input 2, padding 1 removes more than "
            "the transposed kernel adds"
        ),
        ("upsample", (4, 5, 5)): "upsample needs a scale factor or size=(h, w) (input 4x5x5)",
        ("upsample 2 size=(4, 4)", (4, 5, 5)): (
            "upsample takes a scale factor or size=(h, w), not both (input 4x5x5)"
        ),
        ("upsample 2 align_corners=true", (4, 5, 5)): (
            "upsample: align_corners=true needs mode=bilinear (mode is nearest) (input 4x5x5)"
        ),
        ("pixel_shuffle 2", (6, 5, 5)): (
            "pixel_shuffle 2: 6 channels are not divisible by 2x2 = 4"
        ),
        ("pixel_unshuffle 2", (4, 5, 6)): "pixel_unshuffle 2: the size 5x6 is not divisible by 2",
        ("upsample 2 mode=bicubic", (4, 5, 5)): "unknown layer, block or name 'bicubic'",
        ('upsample 2 mode="bicubic"', (4, 5, 5)): (
            "upsample: 'mode' must be nearest or bilinear, got a string"
        ),
    }
    for (text, shape), message in cases.items():
        with pytest.raises(NetdslError) as info:
            run(text, shape)
        assert info.value.message == message, text
        assert info.value.span is not None


def test_framework_spellings_of_resampling_layers_get_did_you_mean():
    expected = {
        "upsampling2d": "upsample",
        "UpSampling2D": "upsample",
        "convtranspose2d": "conv_transpose",
        "ConvTranspose2d": "conv_transpose",
        "Conv2DTranspose": "conv_transpose",
        "conv_transpose2d": "conv_transpose",
        "deconv2d": "conv_transpose",
        "PixelShuffle": "pixel_shuffle",
        "PixelUnshuffle": "pixel_unshuffle",
    }
    for name, op in expected.items():
        with pytest.raises(NetdslError) as info:
            run(f"{name} 2", (4, 8, 8))
        assert info.value.hint == f"did you mean '{op}'?", name
    for name in ("deconv", "convt", "conv_t", "upsampling", "interpolate"):
        assert run(f"{name} 2" if "conv" not in name else f"{name} 2 k=2", (4, 8, 8))


def test_keras_refuses_what_its_layers_cannot_reproduce():
    from netdsl.emit import get_emitter

    keras = get_emitter("keras")
    refused = {
        "conv_transpose 4 k=2 g=2": "Keras' Conv2DTranspose has no groups",
        "conv_transpose 4 k=3 s=2 d=2": "Keras' Conv2DTranspose cannot stride and dilate at once",
        "conv_transpose 4 k=3 d=3 op=1": (
            "Keras' Conv2DTranspose needs output_padding smaller than the stride"
        ),
        "upsample 2 mode=bilinear align_corners=true": (
            "Keras' resizing layers have no align_corners=true"
        ),
        "upsample size=(12, 12)": (
            "Keras' nearest resizing picks other pixels than PyTorch's when the size "
            "12x12 is not a whole multiple of the input's 8x8"
        ),
    }
    for text, message in refused.items():
        net = compile_text(f"network t:\n    input 4x8x8\n    {text}\n", "r.net")
        get_emitter("torch").emit_model(net)  # PyTorch writes every one of them
        with pytest.raises(NetdslError) as info:
            keras.emit_model(net)
        assert info.value.message == message, text
        assert str(info.value).startswith("r.net:3:"), text


def test_explain_gives_no_receptive_field_after_upsampling_and_says_why():
    from netdsl.analysis import analyze

    text = "network t:\n    input 4x8x8\n    pixel_unshuffle 2 + conv3 4 + upsample 2 + conv3 4\n"
    net = compile_text(text, "rf.net")
    facts = analyze(net).layers
    unshuffle, conv, up, last = (facts[n.id].rf for n in net.nodes()[1:])
    assert (unshuffle.r, unshuffle.j) == ((2, 2), (2, 2))  # a 2x2 window at stride 2
    assert (conv.r, conv.j) == ((6, 6), (2, 2))
    assert up.unknown and last.unknown.startswith("not computed after upsample")
