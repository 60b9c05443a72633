"""Hypothesis strategies that generate random, valid netdsl programs.

The generator tracks the shape of the current tensor while it writes, so every
program it produces elaborates: strides, kernels and paddings are chosen to
fit, merged branches agree, channel counts divide their groups. Programs mix

* sequences, repeats (`[body]*n`, including zero) and indexed repeats
  (`[body for i in range(a, b)]`, the index in the body's arithmetic);
* blocks with parameters, defaults and keyword arguments: a fixed prelude, and
  blocks generated per program (`rb0`, `rb1`, ...) whose bodies use their
  parameters (channels, stride, repeat count, kernel), test them and the input's
  shape in conditionals, may be written as statements with named values, and
  call earlier generated blocks; each is called several times with different
  arguments, so generated classes must follow their parameters, and often twice
  in a row so that an inline conditional takes both branches in one network
  (`resf` in the prelude: a projection, then `id`);
* concat/add/mul/mean merges (image and flat), `id` branches; in generated
  blocks, merges of two to four branches in any order whose first branch (or
  another) is an inline conditional, `id` or a projection;
* conditionals on constants, network parameters, block parameters and `in.c`,
  as expressions and as `if cond:` statements;
* convs with random kernel, stride, padding (including `same` and pairs such
  as `k=(1, 3)`), dilation, groups, bias, `act=`; depthwise and separable convs;
  max and average pooling with random kernel, stride, padding, ceil mode and
  count_pad (max pooling with dilation when `torch_only`); global, adaptive and
  zero padding, channel shuffle, LRN, softmax; labels (`as`);
* resampling: transposed convs (kernel, stride, padding, output_padding, dilation,
  pairs, bias, `act=`), upsampling by a scale or to a size (nearest, bilinear),
  pixel shuffle and unshuffle (after a conv or a crop that makes them divide), crops
  in all three forms; with `torch_only` also what Keras refuses (grouped or strided
  and dilated transposed convs, output_padding below the dilation alone,
  `align_corners=true`, nearest resizing to other sizes than whole multiples);
* layernorm, groupnorm, instancenorm, layer_scale and pointwise_fc on images (layernorm
  and layer_scale on flat tensors too), and in generated blocks with arguments that
  follow the block's parameters (`conv_transpose c k=2 s=s`, `upsample s`, ...);
* a block parameter whose default reads the block's input (`sq(m=max(in.c // r, 1))`),
  and `index(dp)` / `count(dp)` inside the block and passed in from the call;
* blocks with a tensor parameter (`cell(prev, c)`, `tmix(p, c)` reading `p.c`, and
  `tnest`, which passes its tensor on and calls `cell(in, c)`), called on named values
  of the current height and width (or the network's `in`), often several in a row;
* named values, several outputs (eval and train-time, tapped or computed), and
  flat tails (fc, bn, merges of flat tensors) or flat inputs;
* token sequences: an image cut into patches (`patch_embed`) or read as tokens
  (`tokens`), token-id inputs (`input N tokens of V` + `embedding`), then class tokens,
  position embeddings, self-attention (heads dividing D, with or without bias, causal),
  fc / layernorm / layer_scale / activations per token, residual and merged branches of
  tokens, a generated encoder block, back to an image (`image h w`) when the tokens still
  fill the grid, and a head that pools the tokens or a tied output layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

# Blocks every program may call; (definition, how it changes the shape).
PRELUDE = """\
block cbr(c, k=3, s=1) = conv c k=k s=s p=(k//2) bias=false + bn + relu
block res(c) = add(id, conv3 c + relu + conv3 c)
block proj(c, s=1) = if s == 1 and in.c == c then id else conv c k=1 s=s
block resd(c, s=1) = add(conv c k=3 s=s p=1 + relu + conv3 c, proj(c, s))
block se(c, r=2) = mul(id, gap + conv1 (max(c // r, 1)) + relu + conv1 c + sigmoid)
block mix(a, b) = concat(conv1 a, conv1 b + conv3 b, maxpool 3 s=1 p=1 + conv1 a)
block deep(c, n) = if n <= 1 then conv3 c + relu else conv3 c + deep(c, n - 1)
block grow(k) = [concat(id, conv3 k)]*2
block resf(c, s=1) =
    add(if s == 1 and in.c == c then id else conv c k=1 s=s bias=false + bn,
        cbr(c, s=s) + conv3 c bias=false + bn)
    + relu
block cell(prev, c) = concat(prev + conv1 c, conv1 c)
block tmix(p, c) = add(p + conv1 c, conv1 c) + concat(id, p) + conv1 (p.c + c)
block tnest(p, c) = cell(p, c) + relu + tmix(p, c) + cell(in, c)
block sq(r=2, m=max(in.c // r, 1)) = mul(id, gap + conv1 m + relu + conv1 in.c + sigmoid)
block dp(p=0.1) = add(id, conv3 in.c + drop_path (p * index(dp) / count(dp)))
block dps(n, p, first, total) = [dp(p * (first + i) / total) for i in range(n)]
"""
# the prelude's blocks with a tensor parameter, and their channels out (c, the tensor's channels)
TENSOR_BLOCKS = {
    "cell": lambda c, p: 2 * c,
    "tmix": lambda c, p: p + c,
    "tnest": lambda c, p: 2 * c,
}


class Invalid(Exception):
    """A generated piece does not fit the shape it meets."""


@dataclass
class _State:
    c: int
    h: int
    w: int
    names: list = field(default_factory=list)  # (name, (c, h, w)) of named tensors
    in_c: int = 0  # `in` at network level is the network's input
    in_h: int = 0


def _conv_out(size: int, k: int, s: int, p: int, d: int = 1, ceil: bool = False) -> int:
    span = size + 2 * p - d * (k - 1) - 1
    if ceil:
        out = -(-span // s) + 1
        if (out - 1) * s >= size + p:
            out -= 1
        return out
    return span // s + 1


def _pair(draw, values):
    """(h, w, text): usually one value for both, sometimes a pair `(h, w)`."""
    if draw(st.integers(0, 3)):
        v = draw(values)
        return v, v, str(v)
    a, b = draw(values), draw(values)
    return a, b, f"({a}, {b})"


@st.composite
def _spatial_layer(draw, state: _State, torch_only: bool = False) -> str:
    """A conv or pool that fits the current shape; updates the state."""
    kind = draw(
        st.sampled_from(
            [
                "conv",
                "conv",
                "resample",
                "norm",
                "dwconv",
                "maxpool",
                "avgpool",
                "sepconv",
                "conv_pair",
                "pool_pair",
                "conv_same",
                "misc",
                "resample",
                "norm",
            ]
        )
    )
    small = min(state.h, state.w)
    if kind == "misc":
        return draw(_misc_layer(state))
    if kind == "resample":
        return draw(_resample_layer(state, torch_only))
    if kind == "norm":
        return draw(_norm_layer(state))
    if kind == "conv_pair":
        return draw(_conv_pair(state))
    if kind == "pool_pair":
        return draw(_pool_pair(state))
    if kind == "conv_same":
        k = draw(st.sampled_from([1, 3, 5]))
        d = draw(st.integers(1, 2)) if k > 1 else 1
        out = draw(st.integers(1, 12))
        act = draw(st.sampled_from(["", " act=relu", " act=(leaky_relu 0.1)", " act=none"]))
        state.c = out
        return f"conv {out} k={k} d={d} p=same{act}"
    k = draw(st.integers(1, min(5, small)))
    s = draw(st.integers(1, 2 if small >= 4 else 1))
    if kind in ("maxpool", "avgpool"):
        p = draw(st.integers(0, k // 2))
        ceil = draw(st.booleans()) and s > 1
        d = 1
        if kind == "maxpool" and torch_only and k > 1 and small >= 2 * k and draw(st.booleans()):
            d = 2
        h, w = _conv_out(state.h, k, s, p, d, ceil), _conv_out(state.w, k, s, p, d, ceil)
        if h < 1 or w < 1:
            return "relu"
        state.h, state.w = h, w
        extra = " ceil=true" if ceil else ""
        if d > 1:
            extra += f" d={d}"
        if kind == "avgpool" and p and draw(st.booleans()):
            extra += " count_pad=false"
        return f"{kind} {k} s={s} p={p}{extra}"
    d = draw(st.integers(1, 2)) if k > 1 and small >= 2 * k else 1
    p = draw(st.integers(0, d * (k - 1) // 2 + 1))
    h, w = _conv_out(state.h, k, s, p, d), _conv_out(state.w, k, s, p, d)
    if h < 1 or w < 1:
        return "relu"
    state.h, state.w = h, w
    if kind == "dwconv":
        m = draw(st.integers(1, 2))
        state.c *= m
        return f"dwconv {k} s={s} p={p} d={d} m={m}"
    out = draw(st.integers(1, 12))
    if kind == "sepconv":
        state.c = out
        m = draw(st.integers(1, 2))
        multiplier = f" m={m}" if m > 1 else ""
        return (
            f"sepconv {out} k={k} s={s} p={p} d={d}{multiplier} "
            f"bias={draw(st.sampled_from(['true', 'false']))}"
        )
    groups = [g for g in (1, 2, 3, 4) if state.c % g == 0 and out % g == 0]
    g = draw(st.sampled_from(groups))
    state.c = out
    bias = draw(st.sampled_from(["", " bias=false"]))
    init = draw(_INITS) + (draw(_BIAS_INITS) if not bias else "")
    return f"conv {out} k={k} s={s} p={p} d={d} g={g}{bias}{init}"


# weight inits of moderate scale (the differential tests copy weights across anyway; these
# make the backends emit and build every family)
_INITS = st.sampled_from(
    [""] * 6
    + [
        " init=kaiming_normal(fan_out, relu)",
        " init=xavier_uniform",
        " init=orthogonal",
        " init=trunc_normal(std=0.05)",
        " init=he_uniform",
        " init=torch_default",
        " init=variance_scaling(0.5, fan_avg, untruncated_normal)",
    ]
)
_BIAS_INITS = st.sampled_from(["", "", "", " bias_init=0", " bias_init=normal(0, 0.01)"])


@st.composite
def _conv_pair(draw, state: _State) -> str:
    """A conv with (h, w) pairs: asymmetric kernels, strides, paddings, dilations."""
    kh, kw, k = _pair(draw, st.integers(1, 4))
    sh, sw, s = _pair(draw, st.integers(1, 2))
    dh, dw, d = _pair(draw, st.integers(1, 2))
    ph, pw, p = _pair(draw, st.integers(0, 2))
    h, w = _conv_out(state.h, kh, sh, ph, dh), _conv_out(state.w, kw, sw, pw, dw)
    if h < 1 or w < 1:
        return "bn"
    out = draw(st.integers(1, 10))
    state.c, state.h, state.w = out, h, w
    return f"conv {out} k={k} s={s} p={p} d={d}"


@st.composite
def _pool_pair(draw, state: _State) -> str:
    """Pooling with (h, w) pairs, ceil mode and count_pad."""
    kind = draw(st.sampled_from(["maxpool", "avgpool"]))
    kh, kw, k = _pair(draw, st.integers(1, 3))
    sh, sw, s = _pair(draw, st.integers(1, 3))
    ph = draw(st.integers(0, kh // 2))
    pw = draw(st.integers(0, kw // 2))
    p = str(ph) if ph == pw else f"({ph}, {pw})"
    ceil = draw(st.booleans())
    h, w = _conv_out(state.h, kh, sh, ph, 1, ceil), _conv_out(state.w, kw, sw, pw, 1, ceil)
    if h < 1 or w < 1:
        return "relu"
    state.h, state.w = h, w
    extra = " ceil=true" if ceil else ""
    if kind == "avgpool" and draw(st.booleans()):
        extra += " count_pad=false"
    return f"{kind} {k} s={s} p={p}{extra}"


@st.composite
def _misc_layer(draw, state: _State) -> str:
    """Zero padding, channel shuffle, LRN, softmax, adaptive and global pooling."""
    kind = draw(
        st.sampled_from(["zeropad", "zeropad4", "shuffle", "lrn", "softmax", "adaptive", "gmp"])
    )
    if kind == "zeropad":
        ph, pw, p = _pair(draw, st.integers(0, 2))
        state.h, state.w = state.h + 2 * ph, state.w + 2 * pw
        return f"zeropad {p}"
    if kind == "zeropad4":
        left, right, top, bottom = (draw(st.integers(0, 2)) for _ in range(4))
        state.h, state.w = state.h + top + bottom, state.w + left + right
        return f"zeropad ({left}, {right}, {top}, {bottom})"
    if kind == "shuffle":
        g = draw(st.sampled_from([g for g in (1, 2, 3, 4) if state.c % g == 0]))
        return f"shuffle {g}"
    if kind == "lrn":
        return f"lrn {draw(st.integers(1, 5))}"
    if kind == "softmax":
        return "softmax"
    if kind == "adaptive":
        op = draw(st.sampled_from(["adaptive_avgpool", "adaptive_maxpool"]))
        oh, ow = draw(st.integers(1, state.h)), draw(st.integers(1, state.w))
        state.h, state.w = oh, ow
        return f"{op} {oh}" if oh == ow else f"{op} ({oh}, {ow})"
    state.h = state.w = 1
    return "gmp"


_LARGEST = 32  # resampling keeps images at most this high and wide (the tests stay fast)


@st.composite
def _resample_layer(draw, state: _State, torch_only: bool = False) -> str:
    """Transposed convs, upsampling, pixel (un)shuffle and crops that fit the shape.

    Without `torch_only`, only what the Keras backend writes exactly: no grouped or
    strided-and-dilated transposed conv, output_padding below the stride, no
    align_corners, nearest resizing to whole multiples only."""
    kind = draw(
        st.sampled_from(
            ["conv_transpose", "conv_transpose", "upsample", "shuffle", "unshuffle", "crop"]
        )
    )
    if kind == "conv_transpose":
        return draw(_conv_transpose(state, torch_only))
    if kind == "upsample":
        return draw(_upsample(state, torch_only))
    if kind == "shuffle":  # a conv to c * r * r channels first where C is not a multiple
        r = draw(st.sampled_from([2, 2, 3]))
        if max(state.h, state.w) * r > _LARGEST:
            return "relu"
        text = f"pixel_shuffle {r}"
        if state.c % (r * r):
            state.c = r * r * draw(st.integers(1, 3))
            text = f"conv1 {state.c} + {text}"
        state.c, state.h, state.w = state.c // (r * r), state.h * r, state.w * r
        return text
    if kind == "unshuffle":  # a crop first where H or W is not a multiple
        r = draw(st.sampled_from([2, 2, 3]))
        if min(state.h, state.w) < r or state.c * r * r > 64:
            return "bn"
        text = f"pixel_unshuffle {r}"
        if state.h % r or state.w % r:
            text = f"crop (0, {state.w % r}, 0, {state.h % r}) + {text}"
        state.c, state.h, state.w = state.c * r * r, state.h // r, state.w // r
        return text
    form = draw(st.integers(0, 2))  # crop: one value, (h, w) or (left, right, top, bottom)
    if form == 0:
        p = draw(st.integers(0, 2))
        top = bottom = p
        left = right = p
        text = f"crop {p}"
    elif form == 1:
        top = bottom = draw(st.integers(0, 2))
        left = right = draw(st.integers(0, 2))
        text = f"crop ({top}, {left})"
    else:
        left, right, top, bottom = (draw(st.integers(0, 2)) for _ in range(4))
        text = f"crop ({left}, {right}, {top}, {bottom})"
    h, w = state.h - top - bottom, state.w - left - right
    if h < 1 or w < 1:
        return "relu"
    state.h, state.w = h, w
    return text


def _transposed_size(n: int, k: int, s: int, p: int, op: int, d: int) -> int:
    return (n - 1) * s - 2 * p + d * (k - 1) + op + 1


@st.composite
def _conv_transpose(draw, state: _State, torch_only: bool = False) -> str:
    """`conv_transpose c k s p op d g bias`, usually one value per argument, sometimes pairs."""
    out = draw(st.integers(1, 10))
    k_h, k_w, k = _pair(draw, st.integers(1, 4))
    s_h, s_w, s = _pair(draw, st.integers(1, 2))
    d_h, d_w, d = _pair(draw, st.integers(1, 2))
    if not torch_only and max(s_h, s_w) > 1 and max(d_h, d_w) > 1:
        d_h = d_w = 1
        d = "1"
    p_h, p_w, p = _pair(draw, st.integers(0, 2))
    # output_padding: less than the stride, or (PyTorch alone) less than the dilation
    top_h, top_w = (max(s_h, d_h) if torch_only else s_h), (max(s_w, d_w) if torch_only else s_w)
    op_h, op_w = draw(st.integers(0, top_h - 1)), draw(st.integers(0, top_w - 1))
    h = _transposed_size(state.h, k_h, s_h, p_h, op_h, d_h)
    w = _transposed_size(state.w, k_w, s_w, p_w, op_w, d_w)
    if not (1 <= h <= _LARGEST and 1 <= w <= _LARGEST):
        return "relu"
    groups = [g for g in (1, 2, 3) if state.c % g == 0 and out % g == 0]
    g = draw(st.sampled_from(groups)) if torch_only else 1
    state.c, state.h, state.w = out, h, w
    text = f"conv_transpose {out} k={k}"
    if s != "1":
        text += f" s={s}"
    if p != "0" or draw(st.booleans()):
        text += f" p={p}"
    if op_h or op_w:
        name = draw(st.sampled_from(["op", "output_padding"]))
        text += f" {name}={op_h}" if op_h == op_w else f" {name}=({op_h}, {op_w})"
    if d != "1":
        text += f" d={d}"
    if g > 1:
        text += f" g={g}"
    return text + draw(st.sampled_from(["", "", " bias=false", " act=relu"]))


@st.composite
def _upsample(draw, state: _State, torch_only: bool = False) -> str:
    """`upsample` by a scale (int or pair) or to a size, nearest or bilinear."""
    mode = draw(st.sampled_from(["nearest", "bilinear"]))
    corners = mode == "bilinear" and torch_only and draw(st.booleans())
    if draw(st.booleans()):  # a scale factor
        sh, sw, scale = _pair(draw, st.integers(1, 3))
        h, w = state.h * sh, state.w * sw
        text = f"upsample {scale}"
    else:  # a size: any for bilinear (smaller too), whole multiples for Keras' nearest
        if mode == "nearest" and not torch_only:
            h = state.h * draw(st.integers(1, 3))
            w = state.w * draw(st.integers(1, 3))
        else:
            h, w = draw(st.integers(1, _LARGEST)), draw(st.integers(1, _LARGEST))
        text = f"upsample size=({h}, {w})"
    if h > _LARGEST or w > _LARGEST:
        return "relu"
    state.h, state.w = h, w
    if mode != "nearest" or draw(st.booleans()):
        text += f" mode={mode}"
    if corners:
        text += " align_corners=true"
    return text


@st.composite
def _norm_layer(draw, state: _State) -> str:
    """layernorm, groupnorm, instancenorm, layer_scale and pointwise_fc on an image."""
    kind = draw(
        st.sampled_from(["layernorm", "groupnorm", "instancenorm", "layer_scale", "pointwise_fc"])
    )
    if kind == "layernorm":
        return draw(st.sampled_from(["layernorm", "layernorm eps=1e-6", "ln"]))
    if kind == "groupnorm":
        groups = [g for g in range(1, state.c + 1) if state.c % g == 0]
        if state.h * state.w == 1:  # one value per group would normalise to zero
            groups = [g for g in groups if g < state.c]
        if not groups:
            return "bn"
        g = draw(st.sampled_from(groups))
        return f"groupnorm {g}" + draw(st.sampled_from(["", " eps=0.001"]))
    if kind == "instancenorm":
        if state.h * state.w == 1:
            return "bn"
        return "instancenorm" + draw(st.sampled_from(["", " affine=true", " affine=false"]))
    if kind == "layer_scale":
        return draw(st.sampled_from(["layer_scale", "layer_scale 0.5", "layer_scale init=2.0"]))
    n = draw(st.integers(1, 12))
    state.c = n
    return f"pointwise_fc {n}" + draw(st.sampled_from(["", " bias=false", " act=gelu"]))


# ---- blocks generated per program -------------------------------------------------------------


@dataclass
class _Block:
    """A generated block: its text, and its effect on a shape for given arguments."""

    name: str
    text: str
    pieces: list  # [(text, effect)]; effect(env, (c, h, w)) -> (c, h, w) or raises Invalid
    statements: bool = False

    def effect(self, args: dict, shape: tuple) -> tuple:
        env = dict(args, in_c=shape[0], in_h=shape[1], in_w=shape[2])
        for _, effect in self.pieces:
            shape = effect(env, shape)
        if min(shape) < 1:
            raise Invalid
        return shape


def _spatial(h: int, w: int, k: int, s: int, p: int) -> tuple:
    oh, ow = _conv_out(h, k, s, p), _conv_out(w, k, s, p)
    if oh < 1 or ow < 1:
        raise Invalid
    return oh, ow


def _piece_conv(env, shape):
    k, s = env["k"], env["s"]
    return (env["c"], *_spatial(shape[1], shape[2], k, s, k // 2))


def _piece_shortcut(env, shape):
    if env["s"] == 1 and env["in_c"] == env["c"]:
        return shape
    return (env["c"], *_spatial(shape[1], shape[2], 1, env["s"], 0))


def _piece_same_channels(env, shape):
    if shape[0] != env["in_c"]:
        raise Invalid
    return shape


def _piece_gate(env, shape):
    if env["c"] not in (1, shape[0]):
        raise Invalid
    return shape


def _piece_pool_if_strided(env, shape):
    if env["s"] > 1:
        return (shape[0], *_spatial(shape[1], shape[2], 2, 2, 0))
    return shape


def _piece_groups(env, shape):  # groupnorm (if in.c % 2 == 0 then 2 else 1)
    g = 2 if env["in_c"] % 2 == 0 else 1
    if shape[0] % g or shape[0] * shape[1] * shape[2] == g:
        raise Invalid
    return shape


def _piece_transposed(k: int, p: int, op_is_s_minus_1: bool):
    def effect(env, shape):
        s = env["s"]
        op = s - 1 if op_is_s_minus_1 else 0
        h, w = (_transposed_size(n, k, s, p, op, 1) for n in shape[1:])
        if not (1 <= h <= _LARGEST and 1 <= w <= _LARGEST):
            raise Invalid
        return (env["c"], h, w)

    return effect


def _piece_upsample(env, shape):
    h, w = shape[1] * env["s"], shape[2] * env["s"]
    if h > _LARGEST or w > _LARGEST:
        raise Invalid
    return (shape[0], h, w)


def _piece_positions(env, shape):  # instancenorm: more than one position
    if shape[1] * shape[2] == 1:
        raise Invalid
    return shape


def _piece_pixels(env, shape):  # conv1 (4 * c) + pixel_shuffle 2 + pixel_unshuffle 2
    if 2 * max(shape[1:]) > _LARGEST:
        raise Invalid
    return (4 * env["c"], *shape[1:])


def _piece_crop(env, shape):  # crop (0, s - 1, 0, s - 1)
    h, w = shape[1] - env["s"] + 1, shape[2] - env["s"] + 1
    if h < 1 or w < 1:
        raise Invalid
    return (shape[0], h, w)


# (text, effect); texts use the block's parameters c, s, n, k and `in`
_PIECES = [
    ("layernorm", lambda env, shape: shape),
    ("layer_scale 0.5", lambda env, shape: shape),
    ("instancenorm affine=true", _piece_positions),
    ("groupnorm (if in.c % 2 == 0 then 2 else 1)", _piece_groups),
    ("pointwise_fc c", lambda env, shape: (env["c"], *shape[1:])),
    ("conv_transpose c k=2 s=s", _piece_transposed(2, 0, False)),
    ("conv_transpose c k=3 s=s p=1 op=(s - 1)", _piece_transposed(3, 1, True)),
    ("upsample s mode=bilinear", _piece_upsample),
    ("conv1 (4 * c) + pixel_shuffle 2 + pixel_unshuffle 2", _piece_pixels),
    ("crop (0, s - 1, 0, s - 1)", _piece_crop),
    ("conv c k=k s=s p=(k//2)", _piece_conv),
    ("conv3 c", lambda env, shape: (env["c"], shape[1], shape[2])),
    ("bn", lambda env, shape: shape),
    ("relu", lambda env, shape: shape),
    ("[conv3 c + relu]*n", lambda env, shape: (env["c"], *shape[1:]) if env["n"] else shape),
    (
        "[conv (c + i) k=3 p=1 for i in range(n)]",
        lambda env, shape: (env["c"] + env["n"] - 1, *shape[1:]) if env["n"] else shape,
    ),
    (
        "[conv1 (c * (i + 1)) + bn for i in range(1, n + 1)]",
        lambda env, shape: (env["c"] * (env["n"] + 1), *shape[1:]) if env["n"] else shape,
    ),
    ("add(id, conv3 in.c)", _piece_same_channels),
    ("(if s == 1 and in.c == c then id else conv c k=1 s=s)", _piece_shortcut),
    ("concat(id, conv1 c)", lambda env, shape: (shape[0] + env["c"], *shape[1:])),
    ("mul(id, gap + conv1 c + sigmoid)", _piece_gate),
    (
        "(if n > 1 then maxpool 2 s=2 ceil=true else id)",
        lambda env, shape: (
            (shape[0], *(_conv_out(d, 2, 2, 0, 1, True) for d in shape[1:]))
            if env["n"] > 1
            else shape
        ),
    ),
    ("dwconv3 s=s", lambda env, shape: (shape[0], *_spatial(shape[1], shape[2], 3, env["s"], 1))),
    ("conv (c * 2) k=1", lambda env, shape: (env["c"] * 2, *shape[1:])),
    ("conv (in.c + c) k=1 bias=false", lambda env, shape: (env["in_c"] + env["c"], *shape[1:])),
    ("(if k == 1 then conv1 c else conv3 c + relu)", lambda env, shape: (env["c"], *shape[1:])),
    (
        "avgpool 3 s=s p=1 count_pad=false",
        lambda env, shape: (shape[0], *_spatial(shape[1], shape[2], 3, env["s"], 1)),
    ),
]
# branches of a merge in a generated block: c channels, the size of a 1x1 conv at stride s
_COND_BRANCHES = [
    "(if s == 1 and in.c == c then id else conv c k=1 s=s)",
    "(if s == 1 and in.c == c then id else conv c k=1 s=s bias=false + bn)",
    "(if s > 1 or in.c != c then conv c k=1 s=s else id)",
]
_BRANCHES = _COND_BRANCHES + [
    "conv c k=3 s=s p=1 + bn",
    "conv c k=1 s=s + relu",
    "cbr(c, s=s)",
    "cbr(c, s=s) + conv3 c bias=false + bn",
]


@st.composite
def _merge_piece(draw) -> tuple:
    """`op(b1, b2, ...)`: two to four branches, a conditional among them (first, or in
    any place), so that the classes and the weight transfer meet every order."""
    op = draw(st.sampled_from(["add", "add", "concat", "mean", "mul"]))
    count = draw(st.integers(2, 4))
    branches = [draw(st.sampled_from(_COND_BRANCHES))]
    branches += [draw(st.sampled_from(_BRANCHES)) for _ in range(count - 1)]
    if draw(st.booleans()):
        branches = draw(st.permutations(branches))
    text = f"{op}({', '.join(branches)})"
    factor = count if op == "concat" else 1

    def effect(env, shape, factor=factor):
        # `in.c` is the block's input: `id` keeps the merge's input, whose channels may differ
        if env["s"] == 1 and env["in_c"] == env["c"] and shape[0] != env["c"]:
            raise Invalid
        return (env["c"] * factor, *_spatial(shape[1], shape[2], 1, env["s"], 0))

    return text, effect


# statement-only pieces (a block written as lines)
_STATEMENT_PIECES = [
    ("if s > 1: maxpool 2 s=2", _piece_pool_if_strided),
    ("if n == 0: bn", lambda env, shape: shape),
]


@st.composite
def _block(draw, index: int, earlier: list) -> _Block:
    """`block rbN(c, s=1, n=1, k=3) = ...`, as one expression or as statements."""
    name = f"rb{index}"
    statements = draw(st.booleans())
    pool = list(_PIECES) + (_STATEMENT_PIECES if statements else [])
    pieces = [draw(st.sampled_from(pool)) for _ in range(draw(st.integers(1, 4)))]
    if draw(st.integers(0, 2)) == 0:
        pieces.insert(draw(st.integers(0, len(pieces))), draw(_merge_piece()))
    if earlier and draw(st.booleans()):
        callee = draw(st.sampled_from(earlier))
        text = draw(
            st.sampled_from(
                [f"{callee.name}(c, s=s)", f"{callee.name}(c, 1, n)", f"{callee.name} c"]
            )
        )
        if text.endswith(" c"):
            fixed = {"s": 1, "n": 1, "k": 3}
        elif "s=s" in text:
            fixed = {"n": 1, "k": 3}
        else:
            fixed = {"s": 1, "k": 3}

        def call(env, shape, callee=callee, fixed=fixed):
            args = {"c": env["c"], "s": env["s"], "n": env["n"], "k": env["k"], **fixed}
            return callee.effect(args, shape)

        pieces.insert(draw(st.integers(0, len(pieces))), (text, call))
    if statements:
        body = []
        for i, (text, _) in enumerate(pieces):
            named = not text.startswith("if ") and draw(st.integers(0, 3)) == 0
            body.append(f"    t{i} = {text}" if named else f"    {text}")
        text = f"block {name}(c, s=1, n=1, k=3):\n" + "\n".join(body) + "\n"
        if pieces[-1][0].startswith("if ") or body[-1].lstrip().startswith("t"):
            pieces.append(("relu", lambda env, shape: shape))
            text += "    relu\n"
    else:
        text = f"block {name}(c, s=1, n=1, k=3) = " + " + ".join(t for t, _ in pieces) + "\n"
    return _Block(name, text, pieces, statements)


@st.composite
def _block_call(draw, state: _State, blocks: list, again: bool = False) -> str:
    """A call of a generated block whose arguments fit the current shape; `again`: the
    same block a second time, on its own output at stride 1 (a conditional that took
    a projection the first time now takes `id`)."""
    block = draw(st.sampled_from(blocks))
    text = draw(_call_of(state, block))
    if again and text != "relu":
        text += " + " + draw(_call_of(state, block, same=True))
    return text


@st.composite
def _call_of(draw, state: _State, block: _Block, same: bool = False) -> str:
    for _ in range(3):
        args = {
            "c": draw(st.integers(1, 10)),
            "s": draw(st.sampled_from([1, 1, 2])) if min(state.h, state.w) >= 2 else 1,
            "n": draw(st.integers(0, 2)),
            "k": draw(st.sampled_from([1, 3])),
        }
        if same:
            args["c"], args["s"] = state.c, 1
        elif draw(st.booleans()):
            args["c"] = state.c  # the shortcut's identity branch, add(id, conv3 in.c), ...
        try:
            c, h, w = block.effect(args, (state.c, state.h, state.w))
        except Invalid:
            continue
        if c > 64:
            continue
        state.c, state.h, state.w = c, h, w
        form = draw(st.integers(0, 3))
        if form == 0:
            return f"{block.name}({args['c']}, {args['s']}, {args['n']}, {args['k']})"
        if form == 1:
            return f"{block.name}({args['c']}, s={args['s']}, k={args['k']}, n={args['n']})"
        if form == 2 and args["s"] == 1 and args["n"] == 1 and args["k"] == 3:
            return f"{block.name} {args['c']}"  # the space form, defaults
        return f"{block.name}(c={args['c']}, n={args['n']}, s={args['s']}, k={args['k']})"
    return "relu"


# ---- terms, chains, programs ---------------------------------------------------------------------


@dataclass
class _Options:
    torch_only: bool = False
    blocks: list = field(default_factory=list)  # generated blocks
    labels: list = field(default_factory=lambda: [0])  # a counter for unique labels


@st.composite
def _term(draw, state: _State, depth: int, options: _Options | None = None) -> str:
    """One term of a sequence (possibly compound); updates the state."""
    options = options or _Options()
    choices = ["spatial", "resample", "norm", "act", "bn", "block", "block"]
    if options.blocks:
        choices += ["generated", "generated"]
    fits = any(shape[1:] == (state.h, state.w) for _, shape in state.names)
    if depth == 0 and fits:  # not in a labelled part: the emitters cannot pass a named value
        choices += ["tensor", "tensor"]  # into one (docs/errors.md, "Grouped, not shown")
    if depth < 2:
        choices += ["merge", "repeat", "cond", "label"]
    kind = draw(st.sampled_from(choices))
    if kind == "spatial":
        return draw(_spatial_layer(state, options.torch_only))
    if kind == "resample":
        return draw(_resample_layer(state, options.torch_only))
    if kind == "norm":
        return draw(_norm_layer(state))
    if kind == "generated":
        return draw(_block_call(state, options.blocks, again=draw(st.booleans())))
    if kind == "tensor":
        return draw(_tensor_calls(state))
    if kind == "label":
        options.labels[0] += 1
        inner = draw(_chain(state, depth + 1, options=options))
        return f"({inner}) as lbl{options.labels[0]}"
    if kind == "act":
        return draw(
            st.sampled_from(
                [
                    "relu",
                    "relu6",
                    "sigmoid",
                    "tanh",
                    "gelu",
                    "silu",
                    "hardswish",
                    "leaky_relu 0.2",
                    "elu",
                    "dropout 0.1",
                    "drop_path 0.1",
                    "scale 0.5",
                    "lrn 3",
                    "hardsigmoid",
                    "elu 0.5",
                    "scale (-1.5)",
                ]
            )
        )
    if kind == "bn":
        return draw(
            st.sampled_from(
                ["bn", "bn", "bn eps=0.001 momentum=0.01", "bn scale=false", "bn gamma_init=0.5"]
            )
        )
    if kind == "block":
        which = draw(
            st.sampled_from(
                ["cbr", "res", "proj", "resd", "se", "mix", "deep", "grow", "resf", "sq", "dp"]
            )
        )
        if which == "cbr":
            c = draw(st.integers(1, 12))
            k = draw(st.sampled_from([1, 3]))
            s = draw(st.sampled_from([1, 2])) if min(state.h, state.w) >= 2 else 1
            state.c = c
            state.h, state.w = _conv_out(state.h, k, s, k // 2), _conv_out(state.w, k, s, k // 2)
            return f"cbr({c}, k={k}, s={s})" if draw(st.booleans()) else f"cbr({c}, {k}, s={s})"
        if which == "res":
            return f"res({state.c})"
        if which in ("proj", "resd"):
            c = draw(st.sampled_from([state.c, draw(st.integers(1, 12))]))
            s = draw(st.sampled_from([1, 2])) if min(state.h, state.w) >= 2 else 1
            state.c = c
            state.h, state.w = _conv_out(state.h, 1, s, 0), _conv_out(state.w, 1, s, 0)
            return f"{which}({c}, s={s})"
        if which == "resf":  # a projection (other channels or stride 2), then `id`
            c = draw(st.integers(1, 12))
            s = draw(st.sampled_from([1, 2])) if min(state.h, state.w) >= 2 else 1
            if c == state.c and s == 1:
                c += 1
            state.c = c
            state.h, state.w = _conv_out(state.h, 1, s, 0), _conv_out(state.w, 1, s, 0)
            first = f"resf({c}, {s})" if draw(st.booleans()) else f"resf({c}, s={s})"
            return f"{first} + resf({c})" if draw(st.integers(0, 3)) else first
        if which == "se":
            return f"se({state.c})" if draw(st.booleans()) else f"se({state.c}, r=3)"
        if which == "sq":  # a default read from the block's input
            return draw(st.sampled_from(["sq", "sq(r=3)", "sq(m=2)", "sq(4)"]))
        if which == "dp":  # the network's running index and count of a block
            return draw(st.sampled_from(["dp", "dp(0.2)", "dps(2, 0.3, index(dp), count(dp))"]))
        if which == "mix":
            a, b = draw(st.integers(1, 6)), draw(st.integers(1, 6))
            state.c = 2 * a + b
            return f"mix({a}, {b})"
        if which == "deep":
            c, n = draw(st.integers(1, 8)), draw(st.integers(1, 3))
            state.c = c
            return f"deep({c}, {n})"
        k = draw(st.integers(1, 4))
        state.c += 2 * k
        return f"grow({k})"
    if kind == "merge":
        op = draw(st.sampled_from(["concat", "add", "mul", "mean"]))
        start = (state.c, state.h, state.w)
        if op == "concat":
            branches, total = [], 0
            for _ in range(draw(st.integers(2, 3))):
                branch = _State(*start, in_c=state.in_c, in_h=state.in_h)
                text = draw(_chain(branch, depth + 1, keep_spatial=True))
                branches.append(text)
                total += branch.c
            state.c = total
            return f"concat({', '.join(branches)})"
        if op == "mul" and draw(st.booleans()):
            return f"mul(id, gap + conv1 {state.c} + sigmoid)"
        c = draw(st.integers(1, 10))
        branches = []
        for _ in range(draw(st.integers(2, 3))):
            branch = _State(*start, in_c=state.in_c, in_h=state.in_h)
            text = draw(_chain(branch, depth + 1, keep_spatial=True))
            if branch.c != c:
                text = f"{text} + conv1 {c}" if text != "id" else f"conv1 {c}"
            branches.append(text)
        state.c = c
        return f"{op}({', '.join(branches)})"
    if kind == "repeat" and draw(st.booleans()):
        # a repeat with its index in scope: channels grow with i
        n, c, k = draw(st.integers(0, 3)), draw(st.integers(1, 8)), draw(st.integers(0, 3))
        start = draw(st.integers(0, 2))
        if n > 0:
            state.c = c + k * (start + n - 1)
        bounds = f"range({n})" if start == 0 else f"range({start}, {start + n})"
        if draw(st.booleans()) or min(state.h, state.w) < 2:
            return f"[conv3 ({c} + {k} * i) + relu for i in {bounds}]"
        # the first iteration alone downsamples
        if n > 0:
            state.h, state.w = _conv_out(state.h, 3, 2, 1), _conv_out(state.w, 3, 2, 1)
        return (
            f"[conv ({c} + {k} * i) k=3 s=(if i == {start} then 2 else 1) p=1 + bn "
            f"for i in {bounds}]"
        )
    if kind == "repeat":
        n = draw(st.integers(0, 3))
        c = draw(st.integers(1, 10))
        text = draw(
            st.sampled_from(
                [
                    f"conv3 {c} + relu",
                    f"cbr({c})",
                    f"conv1 {c}",
                    f"concat(id, conv3 {c})",
                    f"res({c}) + bn",
                ]
            )
        )
        if text.startswith("res") and n > 0:
            text = f"conv1 {c} + {text}"  # res keeps the channels it is given
        if text.startswith("concat"):
            state.c += n * c
        elif n > 0:
            state.c = c
        return f"[{text}]*{n}"
    # conditional on the input shape or a constant comparison
    c = draw(st.integers(1, 10))
    test = draw(
        st.sampled_from(
            [
                f"in.c == {state.in_c}",
                f"in.c > {c}",
                f"in.h >= {state.h}",
                "true",
                f"{c} % 2 == 0",
                "width > 4",
                "not norm",
            ]
        )
    )
    taken = _truth(test, state)
    if taken:
        state.c = c
    return f"[if {test} then conv1 {c} else id]"


@st.composite
def _tensor_calls(draw, state: _State) -> str:
    """One to three calls of the prelude's blocks with a tensor parameter, each given a
    named tensor of the current height and width (or `in`, where it has them): the same
    block on different tensors, and `tnest`, which passes its tensor on."""
    calls = []
    for _ in range(draw(st.integers(1, 3))):
        fitting = [(n, shape) for n, shape in state.names if shape[1:] == (state.h, state.w)]
        if state.in_h == state.h == state.w:
            fitting.append(("in", (state.in_c, state.h, state.w)))
        name, shape = draw(st.sampled_from(fitting))
        block = draw(st.sampled_from(sorted(TENSOR_BLOCKS)))
        c = draw(st.integers(1, 8))
        calls.append(f"{block}({name}, {c})" if draw(st.booleans()) else f"{block}({name}, c={c})")
        state.c = TENSOR_BLOCKS[block](c, shape[0])
    return " + ".join(calls)


def _truth(test: str, state: _State) -> bool:
    text = (
        test.replace("in.c", str(state.in_c))
        .replace("in.h", str(state.in_h))
        .replace("true", "True")
        .replace("width", str(WIDTH))
        .replace("norm", "True")
    )
    return bool(eval(text))


WIDTH = 8  # the network parameter `width`; `norm` is true


@st.composite
def _chain(
    draw, state: _State, depth: int, keep_spatial: bool = False, options: _Options | None = None
) -> str:
    if keep_spatial and draw(st.integers(0, 3)) == 0:
        return "id"
    terms = []
    for _ in range(draw(st.integers(1, 3))):
        if keep_spatial:
            c = draw(st.integers(1, 10))
            terms.append(
                draw(
                    st.sampled_from(
                        [
                            f"conv3 {c}",
                            f"conv1 {c}",
                            f"cbr({c})",
                            "maxpool 3 s=1 p=1",
                            "relu",
                            "bn",
                            "conv3 width",
                            "avgpool 3 s=1 p=1",
                        ]
                    )
                )
            )
            if terms[-1].startswith(("conv", "cbr")):
                state.c = WIDTH if terms[-1].endswith("width") else c
        else:
            terms.append(draw(_term(state, depth, options)))
    return " + ".join(terms)


@st.composite
def _flat_tail(draw, features: int) -> tuple[str, int]:
    """Layers on a flat tensor of `features`: fc, bn, activations, merges, repeats."""
    terms = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["fc", "bn", "act", "repeat", "concat", "add", "mul", "norm"]))
        n = draw(st.integers(1, 16))
        if kind == "fc":
            act = draw(st.sampled_from(["", " act=relu", " bias=false"]))
            terms.append(f"fc {n}{act}")
            features = n
        elif kind == "bn":
            terms.append("bn")
        elif kind == "norm":  # over the features, or a factor per feature
            terms.append(draw(st.sampled_from(["layernorm", "layer_scale 0.5", "ln eps=1e-6"])))
        elif kind == "act":
            terms.append(draw(st.sampled_from(["relu", "tanh", "dropout 0.2", "sigmoid"])))
        elif kind == "repeat":
            count = draw(st.integers(0, 2))
            terms.append(f"[fc {n} + tanh]*{count}")
            features = n if count else features
        elif kind == "concat":
            m = draw(st.integers(1, 8))
            terms.append(f"concat(fc {n}, id, fc {m} + relu)")
            features = n + features + m
        elif kind == "add":
            terms.append(f"add(fc {n}, fc {n} + relu)")
            features = n
        else:
            terms.append(f"mul(id, fc {features} + sigmoid)")
    return " + ".join(terms), features


TOKEN_BLOCK = """\
block tenc(h, m=2, causal=false) =
    add(id, layernorm + attention h causal=causal) + add(id, layernorm + fc (m * in.d) + gelu + fc in.d)
"""


def _heads(draw, d: int, n: int) -> int:
    """A head count dividing D; not one feature a head with as many heads as tokens, which
    the Keras target refuses (TensorFlow's keras.ops.add adds the biases along the tokens)."""
    return draw(
        st.sampled_from(
            [h for h in range(1, min(d, 8) + 1) if d % h == 0 and not (h == d == n > 1)]
        )
    )


@st.composite
def _token_terms(draw, n: int, d: int, causal_only: bool = False) -> tuple[list[str], int, int]:
    """Layers on N tokens of D; returns (terms, N, D). Causal attention only with
    `causal_only` (a language model), where nothing is prepended either."""
    terms = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(
            st.sampled_from(
                ["attention", "fc", "norm", "act", "residual", "merge", "block", "cls", "pos"]
            )
        )
        if kind == "attention":
            h = _heads(draw, d, n)
            extra = draw(st.sampled_from(["", " bias=false", " dropout=0.1"]))
            causal = " causal=true" if causal_only or draw(st.integers(0, 3)) == 0 else ""
            terms.append(f"attention {h}{extra}{causal}")
        elif kind == "fc":
            d = draw(st.integers(1, 24))
            terms.append(f"fc {d}" + draw(st.sampled_from(["", " bias=false", " act=gelu"])))
        elif kind == "norm":
            terms.append(
                draw(st.sampled_from(["layernorm", "layernorm eps=1e-6", "layer_scale 0.5"]))
            )
        elif kind == "act":
            terms.append(
                draw(
                    st.sampled_from(
                        [
                            "gelu",
                            "gelu approximate=true",
                            "relu",
                            "dropout 0.1",
                            "drop_path 0.1",
                            "softmax",
                            "tanh",
                            "scale 0.5",
                        ]
                    )
                )
            )
        elif kind == "residual":
            h = _heads(draw, d, n)
            causal = " causal=true" if causal_only else ""
            terms.append(f"add(id, layernorm + attention {h}{causal})")
        elif kind == "merge":
            op = draw(st.sampled_from(["add", "mul", "mean"]))
            terms.append(f"{op}(fc {d}, id, fc {d} + sigmoid)")
        elif kind == "block":
            causal = ", causal=true" if causal_only else ""
            terms.append(f"tenc({_heads(draw, d, n)}, {draw(st.integers(1, 3))}{causal})")
        elif kind == "cls" and not causal_only:
            k = draw(st.integers(1, 2))
            terms.append(f"cls_token {k}" if k > 1 else "cls_token")
            n += k
        else:
            terms.append(draw(st.sampled_from(["pos_embed", f"pos_embed {n}"])))
    return terms, n, d


@st.composite
def _token_program(draw, header: str) -> str:
    """An image cut into tokens, or token ids, through token layers to a head."""
    lines = [PRELUDE + TOKEN_BLOCK, header]
    if draw(st.integers(0, 2)) == 0:  # a language model
        n, vocab, d = draw(st.integers(1, 12)), draw(st.integers(2, 40)), draw(st.integers(1, 16))
        lines += [f"    input {n} tokens of {vocab}", f"    emb = embedding {d}"]
        width = d  # a tied output layer reads the embedding's width
        terms, n, d = draw(_token_terms(n, d, causal_only=True))
        lines.append("    emb + " + " + ".join(terms))
        if draw(st.booleans()):
            lines.append(
                f"    layernorm + fc {width} + fc {vocab} bias=false tie=emb"
                if draw(st.booleans())
                else f"    fc {width} + fc {vocab} tie=emb"
            )
        else:
            lines.append("    token_pool mean + fc classes")
        return "\n".join(lines) + "\n"
    c, p = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    gh, gw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    lines.append(f"    input {c}x{gh * p}x{gw * p}")
    if draw(st.booleans()):
        d = draw(st.integers(1, 16))
        start = f"patch_embed {d} {p}" + draw(st.sampled_from(["", " bias=false"]))
    else:
        d, start = c, "conv1 " + str(c) + " + maxpool " + str(p) if p > 1 else "tokens"
        if start != "tokens":
            start += " + tokens"
    n = gh * gw
    terms, n2, d = draw(_token_terms(n, d))
    lines.append(f"    {start} + " + " + ".join(terms))
    if n2 == n and draw(st.booleans()):  # back to an image, and on
        lines.append(f"    image {gh} {gw} + conv3 {draw(st.integers(1, 6))} + tokens")
    lines.append(
        "    "
        + draw(st.sampled_from(["token_pool", "token_pool mean", "flatten"]))
        + " + fc classes"
    )
    return "\n".join(lines) + "\n"


@st.composite
def programs(draw, torch_only: bool = False) -> str:
    """The text of a random valid netdsl program.

    With `torch_only`, programs may use what only the PyTorch backend expresses
    (max pooling with dilation).
    """
    options = _Options(torch_only=torch_only)
    blocks_text = ""
    for index in range(draw(st.integers(0, 2))):
        block = draw(_block(index, options.blocks))
        options.blocks.append(block)
        blocks_text += block.text
    header = draw(
        st.sampled_from(
            ["network random(classes=5):", f"network random(classes=5, width={WIDTH}, norm=true):"]
        )
    )
    uses_params = "width" in header
    if draw(st.integers(0, 7)) == 0:  # tokens and attention
        return draw(_token_program(header))
    if draw(st.integers(0, 9)) == 0:  # a flat input
        features = draw(st.integers(1, 24))
        tail, out = draw(_flat_tail(features))
        lines = [PRELUDE + blocks_text, header, f"    input {features}"]
        if tail:
            lines.append(f"    {tail}")
        lines.append("    fc classes")
        return "\n".join(lines) + "\n"
    c = draw(st.integers(1, 4))
    size = draw(st.integers(8, 24))
    state = _State(c, size, size, in_c=c, in_h=size)
    lines = [PRELUDE + blocks_text, header, f"    input {c}x{size}x{size}"]
    outputs, eval_outputs = 0, 0
    for i in range(draw(st.integers(1, 4))):
        before = (state.c, state.h, state.w)
        text = draw(_chain(state, 0, options=options))
        if not uses_params:  # the network has no `width` or `norm`: their values instead
            text = (
                text.replace("conv3 width", f"conv3 {WIDTH}")
                .replace("width > 4", "true")
                .replace("not norm", "false")
            )
        roll = draw(st.integers(0, 7))
        if roll in (0, 3):  # a named value (blocks with a tensor parameter take them)
            name = f"v{i}"
            lines.append(f"    {name} = {text}")
            state.names.append((name, (state.c, state.h, state.w)))
        elif roll == 1 and uses_params:
            lines.append(f"    if norm: {text}")
        elif roll == 2 and uses_params:
            lines.append(f"    if width < 4: {text}")  # never taken: the shape stays
            state.c, state.h, state.w = before
            continue
        else:
            lines.append(f"    {text}")
        if draw(st.integers(0, 5)) == 0:  # an output tapped here, eval or train time
            outputs += 1
            kind = draw(st.sampled_from(["tap", "head", "train", "train_tap"]))
            eval_outputs += kind in ("tap", "head")
            if kind == "tap":
                lines.append(f"    output o{outputs}")
            elif kind == "head":
                lines.append(f"    output o{outputs} = gap + fc {draw(st.integers(1, 6))}")
            elif kind == "train":
                lines.append(f"    output o{outputs} @train = gap + fc classes")
            else:
                lines.append(f"    output o{outputs} @train")
    if state.names and draw(st.booleans()):
        name, _ = draw(st.sampled_from(state.names))
        lines.append(f"    output aux @train = {name} + gap + fc classes")
    head = draw(
        st.sampled_from(
            [
                "gap + fc classes",
                "flatten + fc classes",
                "gap + flatten + fc classes + softmax",
                "tail",
                "adaptive_avgpool 2 + flatten + fc classes",
                "gmp + flatten + fc classes",
            ]
        )
    )
    if head == "tail":
        tail, _ = draw(_flat_tail(state.c * state.h * state.w))
        head = "flatten + " + (tail + " + " if tail else "") + "fc classes"
    if eval_outputs or (outputs and draw(st.booleans())):  # after an `output`, only an
        lines.append(f"    output logits = {head}")  # `output` line keeps the head alive
    else:
        lines.append(f"    {head}")
    return "\n".join(lines) + "\n"
