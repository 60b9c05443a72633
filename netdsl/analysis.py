"""Teaching arithmetic as data: shape derivations, factored counts, receptive fields, memory.

`analyze(net)` walks the elaborated network once and records, for every node,
*why* it has its numbers: the window formula with PyTorch's floor (or ceil
mode), the parameter and MAC counts as products of their factors, the
receptive field and effective stride (jump), and the activation memory.
explain.py turns this into text; nothing here formats for display.

Conventions (stated in the output too):

* Memory is fp32 (4 bytes per value) at batch 1. *Forward activations* count
  the input and the output of every layer, except layers PyTorch runs in place
  (ReLU-like activations, `inplace=True`), layers that are the identity at
  inference (dropout, drop_path) and views (flatten): the CS231n convention.
* The *training estimate* doubles that (each activation is kept for the
  backward pass and receives a gradient of the same size), and adds what
  backward keeps beyond it: max-pool indices (int64, 8 bytes per output value)
  and dropout masks (1 byte per value). Parameter memory is separate: weights,
  their gradients, and the optimizer's state from the `train:` section.
* *Peak inference* memory frees each tensor after its last use.
* Receptive field and jump follow r_out = r_in + (k_eff - 1) * j_in,
  j_out = j_in * s with k_eff = d(k - 1) + 1; a merge takes the largest over its
  branches; global pooling and fc layers see their whole input grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .ir import Network, Node, Scope
from .layers import pair, zeropad_sides

BYTES = 4  # fp32
INDEX_BYTES = 8  # int64 max-pool indices
MASK_BYTES = 1  # bool dropout masks

# Layers that allocate no new activation at inference (CS231n convention).
IN_PLACE = frozenset({"relu", "relu6", "leaky_relu", "elu", "silu", "hardswish", "hardsigmoid"})
IDENTITY_AT_INFERENCE = frozenset({"dropout", "drop_path"})
VIEWS = frozenset({"flatten"})
WINDOWED = frozenset({"conv", "dwconv", "sepconv", "maxpool", "avgpool"})

# Optimizer state per parameter, in parameter-sized tensors.
OPTIMIZER_STATE = {"sgd": 1, "adam": 2, "adamw": 2, "rmsprop": 1}


# ---- records -------------------------------------------------------------------


@dataclass(frozen=True)
class Factor:
    """One factor of a product: its value and how to write it (`128/32` for grouped input)."""

    value: int
    text: str = ""

    def __str__(self) -> str:
        return self.text or str(self.value)


@dataclass(frozen=True)
class Count:
    """A count as a sum of products, e.g. 96 x 11 x 11 x 3 + 96."""

    formula: str  # symbolic, e.g. "c_out x k x k x c_in + c_out"
    terms: tuple[tuple[Factor, ...], ...]
    value: int
    note: str = ""  # e.g. "+ 192 running statistics (buffers)"


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class Equation:
    """A derived dimension: label = a op b op ... = result (e.g. C = 64 + 32 = 96)."""

    label: str
    operands: tuple[int, ...]
    op: str  # "+" or "x"
    result: int


@dataclass(frozen=True)
class Note:
    """A derivation with nothing to compute, e.g. "same shape as the input"."""

    text: str


@dataclass(frozen=True)
class RFAxis:
    r_in: int
    j_in: int
    k: int  # effective kernel (k_eff), or the grid size for global layers
    s: int
    r: int
    j: int


@dataclass(frozen=True)
class Receptive:
    """Receptive field (pixels of the input) and jump (input pixels per step) per axis."""

    r: tuple[int, int]
    j: tuple[int, int]
    grid: tuple[int, int]  # the spatial grid the positions live on (flat tensors keep it)
    steps: tuple[RFAxis, ...] = ()  # the recurrence applied at this layer, (H, W)
    rule: str = "same"  # "window" | "global" | "merge" | "same" | "input"
    approximate: bool = False  # adaptive pooling with uneven windows

    @property
    def square(self) -> bool:
        return self.r[0] == self.r[1] and self.j[0] == self.j[1]


@dataclass(frozen=True)
class Memory:
    elements: int  # values of the output tensor
    new_bytes: int  # bytes of new activation at inference (0: in place, identity, view)
    train_bytes: int  # the training estimate for this layer
    how: str = "new"  # "new" | "in place" | "identity" | "view" | "input"
    extra: str = ""  # what backward keeps beyond the activation, e.g. "int64 indices"

    @property
    def bytes(self) -> int:
        return self.elements * BYTES


@dataclass
class LayerFacts:
    node: Node
    shape: list  # Window | Equation | Note
    params: Count | None
    macs: Count | None
    rf: Receptive | None  # None for networks with flat inputs
    memory: Memory


@dataclass
class Totals:
    params: int = 0
    macs: int = 0
    new_bytes: int = 0
    train_bytes: int = 0
    layers: int = 0


@dataclass
class Analysis:
    net: Network
    layers: dict  # node id -> LayerFacts, in DSL order
    forward_bytes: int  # input + every new activation
    train_bytes: int  # training estimate for activations
    train_only_bytes: int  # the part of it from train-only heads (auxiliary classifiers)
    peak_bytes: int  # inference, tensors freed after last use
    param_bytes: int  # weights
    grad_bytes: int
    optimizer_bytes: int
    optimizer: str | None
    scope_totals: dict = field(default_factory=dict)  # id(scope) -> Totals

    def facts(self, node: Node) -> LayerFacts:
        return self.layers[node.id]

    def totals(self, scope: Scope) -> Totals:
        return self.scope_totals[id(scope)]

    def output_rf(self, scope: Scope | None = None) -> Receptive | None:
        node = scope.output if scope is not None else self.net.main_output.node
        return self.layers[node.id].rf if node is not None else None


# ---- the analysis ----------------------------------------------------------------------


def analyze(net: Network) -> Analysis:
    """Every number explain prints, for every node of `net`, in one pass."""
    layers: dict = {}
    for node in net.nodes():
        inputs = [layers[i.id] for i in node.inputs]
        layers[node.id] = LayerFacts(
            node=node,
            shape=_derivation(node),
            params=_params(node),
            macs=_macs(node),
            rf=_receptive(node, [f.rf for f in inputs]),
            memory=_memory(node),
        )
    forward = sum(f.memory.new_bytes for f in layers.values() if not f.node.train_only)
    train = sum(f.memory.train_bytes for f in layers.values())
    heads = sum(f.memory.train_bytes for f in layers.values() if f.node.train_only)
    optimizer = net.train.get("optimizer") if isinstance(net.train, dict) else None
    states = _optimizer_states(net.train) if optimizer else 0
    analysis = Analysis(
        net=net,
        layers=layers,
        forward_bytes=forward,
        train_bytes=train,
        train_only_bytes=heads,
        peak_bytes=_peak(net),
        param_bytes=net.total_params * BYTES,
        grad_bytes=net.total_params * BYTES,
        optimizer_bytes=states * net.total_params * BYTES,
        optimizer=optimizer,
    )
    _scope_totals(net.root, analysis)
    return analysis


def _optimizer_states(train: dict) -> int:
    name = train.get("optimizer")
    if name == "sgd" and not train.get("momentum"):
        return 0
    if name == "rmsprop" and train.get("momentum"):
        return 2
    return OPTIMIZER_STATE.get(name, 0)


def _scope_totals(scope: Scope, analysis: Analysis) -> Totals:
    total = Totals()
    for child in scope.children:
        if isinstance(child, Scope):
            sub = _scope_totals(child, analysis)
            total.params += sub.params
            total.macs += sub.macs
            total.new_bytes += sub.new_bytes
            total.train_bytes += sub.train_bytes
            total.layers += sub.layers
        else:
            facts = analysis.layers[child.id]
            total.params += child.params
            total.macs += 0 if child.train_only else child.macs
            total.new_bytes += 0 if child.train_only else facts.memory.new_bytes
            total.train_bytes += facts.memory.train_bytes
            total.layers += child.op != "input"
    analysis.scope_totals[id(scope)] = total
    return total


# ---- shapes ----------------------------------------------------------------------------


def _window(axis, size, k, s, p, d, ceil, out) -> Window:
    num = size - (d * (k - 1) + 1) + 2 * p
    exact = num % s == 0
    dropped = False
    if ceil and not exact:
        dropped = -(-num // s) + 1 != out
    return Window(axis, size, k, s, p, d, ceil, out, exact, dropped)


def windows(node: Node) -> list[Window]:
    """The H and W window derivations of a conv or pool (one when both axes agree)."""
    _, h, w = (int(d.value) for d in node.in_shapes[0])
    _, oh, ow = node.out_shape
    (kh, kw), (sh, sw), (ph, pw) = (_ints(node, a) for a in ("k", "s", "p"))
    dh, dw = _ints(node, "d") if "d" in node.attrs else (1, 1)
    ceil = bool(node.value("ceil")) if "ceil" in node.attrs else False
    hw = _window("H", h, kh, sh, ph, dh, ceil, oh)
    ww = _window("W", w, kw, sw, pw, dw, ceil, ow)
    if (h, kh, sh, ph, dh) == (w, kw, sw, pw, dw):
        return [Window("H = W", h, kh, sh, ph, dh, ceil, oh, hw.exact, hw.last_dropped)]
    return [hw, ww]


def _ints(node: Node, attr: str) -> tuple[int, int]:
    a, b = pair(node.attrs[attr])
    return int(a.value), int(b.value)


def _derivation(node: Node) -> list:
    op = node.op
    out = node.out_shape
    ins = [tuple(int(d.value) for d in s) for s in node.in_shapes]
    if op == "input":
        return [Note("the declared input")]
    if op in WINDOWED:
        steps: list = []
        if op == "conv" or op == "sepconv":
            steps.append(Note(f"C = {out[0]} output channels"))
        elif op == "dwconv":
            m = int(node.value("m"))
            steps.append(Equation("C", (ins[0][0], m), "x", out[0]))
        return steps + windows(node)
    if op in ("gap", "gmp"):
        return [Note("global pooling: H = W = 1")]
    if op in ("adaptive_avgpool", "adaptive_maxpool"):
        return [Note(f"adaptive pooling to {out[1]}x{out[2]}")]
    if op == "fc":
        return [Note(f"{out[0]} output features (from {_features(ins[0])} inputs)")]
    if op == "flatten":
        if len(ins[0]) == 1:
            return [Note("already flat")]
        return [Equation("features", ins[0], "x", out[0])]
    if op == "zeropad":
        left, right, top, bottom = (int(v.value) for v in zeropad_sides(node.attrs["p"]))
        return [
            Equation("H", (ins[0][1], top, bottom), "+", out[1]),
            Equation("W", (ins[0][2], left, right), "+", out[2]),
        ]
    if op == "concat":
        return [
            Equation("C" if len(out) == 3 else "features", tuple(s[0] for s in ins), "+", out[0])
        ]
    if op in ("add", "mean"):
        return [Note(f"{len(ins)} branches of the same shape")]
    if op == "mul":
        return [Note("broadcast: " + " * ".join("x".join(map(str, s)) for s in ins))]
    return [Note("same shape as the input")]


def _features(shape: tuple) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


# ---- counts ----------------------------------------------------------------------------


def _count(formula: str, terms, expected: int, note: str = "") -> Count:
    terms = tuple(tuple(f if isinstance(f, Factor) else Factor(f) for f in t) for t in terms if t)
    value = sum(_product(t) for t in terms)
    if value != expected:  # a rule this module does not know: show the plain number
        return Count("", ((Factor(expected),),), expected, note)
    return Count(formula, terms, expected, note)


def _product(term) -> int:
    out = 1
    for f in term:
        out *= f.value
    return out


def _kernel(node: Node) -> tuple[int, int, str]:
    kh, kw = _ints(node, "k")
    return kh, kw, "k x k" if kh == kw else "k_h x k_w"


def _conv_in(node: Node) -> tuple[Factor, str]:
    cin = int(node.in_shapes[0][0].value)
    g = int(node.value("g"))
    if g == 1:
        return Factor(cin), "c_in"
    return Factor(cin // g, f"{cin}/{g}"), "c_in/g"


def _params(node: Node) -> Count | None:
    op = node.op
    if op == "conv":
        kh, kw, kk = _kernel(node)
        cin, cin_text = _conv_in(node)
        c = node.out_shape[0]
        bias = bool(node.value("bias"))
        return _count(
            f"c_out x {kk} x {cin_text}" + (" + c_out" if bias else ""),
            [(c, kh, kw, cin), (c,) if bias else ()],
            node.params,
        )
    if op == "dwconv":
        kh, kw, kk = _kernel(node)
        c = node.out_shape[0]
        bias = bool(node.value("bias"))
        return _count(
            f"C x {kk}" + (" + C" if bias else ""), [(c, kh, kw), (c,) if bias else ()], node.params
        )
    if op == "sepconv":
        kh, kw, kk = _kernel(node)
        mid = int(node.in_shapes[0][0].value) * int(node.value("m"))
        c = node.out_shape[0]
        bias = bool(node.value("bias"))
        return _count(
            f"C_mid x {kk} + C_mid x c_out" + (" + c_out" if bias else ""),
            [(mid, kh, kw), (mid, c), (c,) if bias else ()],
            node.params,
        )
    if op == "fc":
        fin = _features(tuple(int(d.value) for d in node.in_shapes[0]))
        n = node.out_shape[0]
        bias = bool(node.value("bias"))
        return _count(
            "n_out x n_in" + (" + n_out" if bias else ""),
            [(n, fin), (n,) if bias else ()],
            node.params,
        )
    if op == "bn":
        c = node.out_shape[0]
        if node.attrs.get("scale") is not None and not node.value("scale"):
            return _count(
                "C (beta only: scale=false)",
                [(c,)],
                node.params,
                note=f"+ {node.buffers:,} running mean and variance (buffers, not parameters)",
            )
        return _count(
            "2 x C (gamma, beta)",
            [(2, c)],
            node.params,
            note=f"+ {node.buffers:,} running mean and variance (buffers, not parameters)",
        )
    if node.params:
        return _count("", [(node.params,)], node.params)
    return None


def _macs(node: Node) -> Count | None:
    op = node.op
    if op == "conv":
        kh, kw, kk = _kernel(node)
        cin, cin_text = _conv_in(node)
        c, h, w = node.out_shape
        return _count(
            f"c_out x H_out x W_out x {kk} x {cin_text}", [(c, h, w, kh, kw, cin)], node.macs
        )
    if op == "dwconv":
        kh, kw, kk = _kernel(node)
        c, h, w = node.out_shape
        return _count(f"C x H_out x W_out x {kk}", [(c, h, w, kh, kw)], node.macs)
    if op == "sepconv":
        kh, kw, kk = _kernel(node)
        mid = int(node.in_shapes[0][0].value) * int(node.value("m"))
        c, h, w = node.out_shape
        return _count(
            f"C_mid x H_out x W_out x {kk} + c_out x H_out x W_out x C_mid",
            [(mid, h, w, kh, kw), (c, h, w, mid)],
            node.macs,
        )
    if op == "fc":
        fin = _features(tuple(int(d.value) for d in node.in_shapes[0]))
        return _count("n_out x n_in", [(node.out_shape[0], fin)], node.macs)
    if node.macs:
        return _count("", [(node.macs,)], node.macs)
    return None


# ---- receptive field ---------------------------------------------------------------------


def _grid(shape: tuple) -> tuple[int, int] | None:
    return (shape[1], shape[2]) if len(shape) == 3 else None


def _receptive(node: Node, inputs: list) -> Receptive | None:
    op = node.op
    out = node.out_shape
    if op == "input":
        grid = _grid(out)
        return Receptive((1, 1), (1, 1), grid, rule="input") if grid else None
    if not inputs or any(rf is None for rf in inputs):
        return None
    if len(inputs) > 1:
        first = inputs[0]
        r = tuple(max(rf.r[i] for rf in inputs) for i in range(2))
        j = tuple(max(rf.j[i] for rf in inputs) for i in range(2))
        grid = _grid(out) or first.grid
        return Receptive(r, j, grid, rule="merge", approximate=any(rf.approximate for rf in inputs))
    rf = inputs[0]
    if op in WINDOWED:
        kh, kw = _ints(node, "k")
        sh, sw = _ints(node, "s")
        dh, dw = _ints(node, "d") if "d" in node.attrs else (1, 1)
        return _step(rf, ((dh * (kh - 1) + 1, sh), (dw * (kw - 1) + 1, sw)), _grid(out), "window")
    if op in ("gap", "gmp") or (op == "fc" and rf.grid != (1, 1)):
        gh, gw = rf.grid
        return _step(rf, ((gh, gh), (gw, gw)), (1, 1), "global")
    if op in ("adaptive_avgpool", "adaptive_maxpool"):
        (h, w), (oh, ow) = rf.grid, out[1:]
        (kh, sh, ah), (kw, sw, aw) = _adaptive(h, oh), _adaptive(w, ow)
        step = _step(rf, ((kh, sh), (kw, sw)), (oh, ow), "window")
        if ah or aw:
            step = Receptive(step.r, step.j, step.grid, step.steps, step.rule, approximate=True)
        return step
    grid = _grid(out) or rf.grid
    return Receptive(rf.r, rf.j, grid, rule="same", approximate=rf.approximate)


def _adaptive(n: int, out: int) -> tuple[int, int, bool]:
    """Kernel, stride and whether they vary, for PyTorch's adaptive pooling windows."""
    if n % out == 0:
        return n // out, n // out, False
    sizes = [-(-(i + 1) * n // out) - (i * n // out) for i in range(out)]
    return max(sizes), max(n // out, 1), True


def _step(rf: Receptive, kernels, grid, rule: str) -> Receptive:
    steps = []
    for axis, (k, s) in enumerate(kernels):
        r, j = rf.r[axis], rf.j[axis]
        steps.append(RFAxis(r, j, k, s, r + (k - 1) * j, j * s))
    return Receptive(
        (steps[0].r, steps[1].r), (steps[0].j, steps[1].j), grid, tuple(steps), rule, rf.approximate
    )


# ---- memory ---------------------------------------------------------------------------


def _memory(node: Node) -> Memory:
    elements = _features(node.out_shape)
    size = elements * BYTES
    op = node.op
    if op == "input":
        return Memory(elements, size, 2 * size, "input")
    if op in IN_PLACE:
        return Memory(elements, 0, 0, "in place")
    if op in IDENTITY_AT_INFERENCE:
        return Memory(elements, 0, elements * MASK_BYTES, "identity", "1-byte mask")
    if op in VIEWS:
        return Memory(elements, 0, 0, "view")
    if op in ("maxpool", "adaptive_maxpool", "gmp"):
        return Memory(elements, size, 2 * size + elements * INDEX_BYTES, "new", "int64 indices")
    return Memory(elements, size, 2 * size)


def _peak(net: Network) -> int:
    """Largest sum of live tensors at inference, freeing each after its last use."""
    order = [n for n in net.nodes() if not n.train_only]
    position = {id(n): i for i, n in enumerate(order)}
    storage: dict = {}  # id(node) -> the node whose buffer holds its output
    last_use: dict = {}
    for i, node in enumerate(order):
        if node.op in IN_PLACE | IDENTITY_AT_INFERENCE | VIEWS and node.inputs:
            storage[id(node)] = storage[id(node.inputs[0])]
        else:
            storage[id(node)] = node
        owner = storage[id(node)]
        last_use[id(owner)] = max(last_use.get(id(owner), i), i)
        for src in node.inputs:
            held = storage[id(src)]
            last_use[id(held)] = max(last_use.get(id(held), i), i)
    for out in net.outputs:
        if not out.train_only:
            last_use[id(storage[id(out.node)])] = len(order)
    delta = [0] * (len(order) + 2)
    for node in order:
        if storage[id(node)] is node:
            size = _features(node.out_shape) * BYTES
            delta[position[id(node)]] += size
            delta[last_use[id(node)] + 1] -= size
    peak = live = 0
    for change in delta:
        live += change
        peak = max(peak, live)
    return peak


# ---- how a layer reads in the DSL ------------------------------------------------------

_DERIVED = frozenset({"in_channels", "num_features", "in_features", "mid_channels"})
_DEFAULTS = {
    "s": 1,
    "p": 0,
    "d": 1,
    "g": 1,
    "m": 1,
    "bias": True,
    "ceil": False,
    "count_pad": True,
    "eps": 1e-5,
    "momentum": 0.1,
    "scale": True,
}
_POSITIONAL = {
    "conv": ("c",),
    "sepconv": ("c",),
    "fc": ("n",),
    "maxpool": ("k",),
    "avgpool": ("k",),
    "dwconv": (),
    "dropout": ("p",),
    "drop_path": ("p",),
    "adaptive_avgpool": ("size",),
    "adaptive_maxpool": ("size",),
    "zeropad": ("p",),
    "shuffle": ("g",),
    "scale": ("s",),
    "leaky_relu": ("slope",),
    "elu": ("alpha",),
}


def layer_call(node: Node) -> str:
    """The layer as one would write it in the DSL, with values: `conv 96 k=11 s=4 p=0`."""
    op = node.op
    positional = _POSITIONAL.get(op, ())
    parts = [op] + [_value_text(node.value(n)) for n in positional if n in node.attrs]
    always = ("k", "p") if op in ("conv", "sepconv", "dwconv") else ()
    for name in node.attrs:
        if name in positional or name in _DERIVED or op == "lrn":
            continue
        value = node.value(name)
        if name in always:
            pass
        elif op in ("maxpool", "avgpool") and name == "s":
            if value == node.value("k"):
                continue
        elif (
            name in _DEFAULTS and _DEFAULTS[name] == value and type(value) is type(_DEFAULTS[name])
        ):
            continue
        parts.append(f"{name}={_value_text(value)}")
    return " ".join(parts)


def _value_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        if len(value) == 2 and value[0] == value[1]:
            return _value_text(value[0])
        if len(value) == 2:
            return "x".join(_value_text(v) for v in value)  # the DSL's shape literal: k=1x7
        return "(" + ", ".join(_value_text(v) for v in value) + ")"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def block_call(scope: Scope) -> str:
    """A block scope as it was called: `stage(128, 4, s=2)`; other scopes by their kind."""
    if scope.kind == "block":
        args = ", ".join((f"{k}=" if k else "") + _arg_text(v) for k, v in scope.call_args)
        return f"{scope.block}({args})" if scope.call_args else scope.block
    if scope.kind == "repeat":
        n = scope.count.value if scope.count is not None else len(scope.children)
        first = scope.children[0] if scope.children else None
        inner = first.children if first is not None else []
        body = block_call(inner[0]) if len(inner) == 1 and isinstance(inner[0], Scope) else "..."
        return f"[{body}] x {n}"
    if scope.kind == "group":
        return scope.label or "group"
    return scope.kind


def _arg_text(value) -> str:
    raw = getattr(value, "value", value)
    if isinstance(raw, (int, float, bool, tuple)):
        return _value_text(raw)
    if isinstance(raw, str):
        return raw
    return "..."
