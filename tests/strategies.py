"""Hypothesis strategies that generate random, valid netdsl programs.

The generator tracks the shape of the current tensor while it writes, so every
program it produces elaborates: strides, kernels and paddings are chosen to
fit, merged branches agree, channel counts divide their groups. Programs mix
sequences, repeats (including zero), parameterised blocks with defaults and
keyword arguments, concat/add/mul/mean merges, conditionals (on parameters
and on the input shape), pooling with ceil mode, grouped and dilated convs,
named values and train-time outputs.
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
"""


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


@st.composite
def _spatial_layer(draw, state: _State) -> str:
    """A conv or pool that fits the current shape; updates the state."""
    kind = draw(st.sampled_from(["conv", "conv", "dwconv", "maxpool", "avgpool", "sepconv"]))
    small = min(state.h, state.w)
    k = draw(st.integers(1, min(5, small)))
    s = draw(st.integers(1, 2 if small >= 4 else 1))
    if kind in ("maxpool", "avgpool"):
        p = draw(st.integers(0, k // 2))
        ceil = draw(st.booleans()) and s > 1
        h, w = _conv_out(state.h, k, s, p, 1, ceil), _conv_out(state.w, k, s, p, 1, ceil)
        if h < 1 or w < 1:
            return "relu"
        state.h, state.w = h, w
        extra = " ceil=true" if ceil else ""
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
        return f"sepconv {out} k={k} s={s} p={p} d={d} bias={draw(st.sampled_from(['true', 'false']))}"
    groups = [g for g in (1, 2, 3, 4) if state.c % g == 0 and out % g == 0]
    g = draw(st.sampled_from(groups))
    state.c = out
    bias = draw(st.sampled_from(["", " bias=false"]))
    return f"conv {out} k={k} s={s} p={p} d={d} g={g}{bias}"


@st.composite
def _term(draw, state: _State, depth: int) -> str:
    """One term of a sequence (possibly compound); updates the state."""
    choices = ["spatial", "act", "bn", "block", "block"]
    if depth < 2:
        choices += ["merge", "repeat", "cond"]
    kind = draw(st.sampled_from(choices))
    if kind == "spatial":
        return draw(_spatial_layer(state))
    if kind == "act":
        return draw(st.sampled_from(["relu", "relu6", "sigmoid", "tanh", "gelu", "silu",
                                     "hardswish", "leaky_relu 0.2", "elu", "dropout 0.1",
                                     "drop_path 0.1", "scale 0.5", "lrn 3"]))
    if kind == "bn":
        return "bn"
    if kind == "block":
        which = draw(st.sampled_from(["cbr", "res", "proj", "resd", "se", "mix", "deep", "grow"]))
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
        if which == "se":
            return f"se({state.c})" if draw(st.booleans()) else f"se({state.c}, r=3)"
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
        return f"[conv3 ({c} + {k} * i) + relu for i in {bounds}]"
    if kind == "repeat":
        n = draw(st.integers(0, 3))
        body = _State(state.c, state.h, state.w)
        c = draw(st.integers(1, 10))
        text = draw(st.sampled_from([f"conv3 {c} + relu", f"cbr({c})", f"res({state.c})"
                                     if False else f"conv1 {c}", f"concat(id, conv3 {c})"]))
        if text.startswith("concat"):
            state.c += n * c
        elif n > 0:
            state.c = c
        del body
        return f"[{text}]*{n}"
    # conditional on the input shape or a constant comparison
    c = draw(st.integers(1, 10))
    test = draw(st.sampled_from([f"in.c == {state.in_c}", f"in.c > {c}", f"in.h >= {state.h}",
                                 "true", f"{c} % 2 == 0"]))
    taken = eval(test.replace("in.c", str(state.in_c)).replace("in.h", str(state.in_h))
                 .replace("true", "True"))
    if taken:
        state.c = c
    return f"[if {test} then conv1 {c} else id]"


@st.composite
def _chain(draw, state: _State, depth: int, keep_spatial: bool = False) -> str:
    if keep_spatial and draw(st.integers(0, 3)) == 0:
        return "id"
    terms = []
    for _ in range(draw(st.integers(1, 3))):
        if keep_spatial:
            c = draw(st.integers(1, 10))
            terms.append(draw(st.sampled_from([f"conv3 {c}", f"conv1 {c}", f"cbr({c})",
                                               "maxpool 3 s=1 p=1", "relu", "bn"])))
            if terms[-1].startswith(("conv", "cbr")):
                state.c = c
        else:
            terms.append(draw(_term(state, depth)))
    return " + ".join(terms)


@st.composite
def programs(draw) -> str:
    """The text of a random valid netdsl program."""
    c = draw(st.integers(1, 4))
    size = draw(st.integers(8, 24))
    state = _State(c, size, size, in_c=c, in_h=size)
    lines = [PRELUDE, "network random(classes=5):", f"    input {c}x{size}x{size}"]
    for i in range(draw(st.integers(1, 4))):
        text = draw(_chain(state, 0))
        if draw(st.integers(0, 3)) == 0:
            name = f"v{i}"
            lines.append(f"    {name} = {text}")
            state.names.append((name, (state.c, state.h, state.w)))
        else:
            lines.append(f"    {text}")
    if state.names and draw(st.booleans()):
        name, _ = draw(st.sampled_from(state.names))
        lines.append(f"    output aux @train = {name} + gap + fc classes")
    head = draw(st.sampled_from(["gap + fc classes", "flatten + fc classes",
                                 "gap + flatten + fc classes + softmax"]))
    lines.append(f"    {head}")
    return "\n".join(lines) + "\n"
