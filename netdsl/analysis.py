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

from . import initializers
from .ir import Network, Node, Scope
from .layers import (
    IN_PLACE,
    INFERENCE_IDENTITY,
    MERGES,
    SAVES_INDICES,
    VIEW,
    Count,
    Equation,
    Factor,
    Note,
    Window,
    derivation,
    int_pair,
    numel,
    spec_of,
    traits,
)

__all__ = ["Count", "Equation", "Factor", "Note", "Window", "analyze", "layer_call"]

BYTES = 4  # fp32
INDEX_BYTES = 8  # int64 max-pool indices
MASK_BYTES = 1  # bool dropout masks

# Optimizer state per parameter, in parameter-sized tensors.
OPTIMIZER_STATE = {"sgd": 1, "adam": 2, "adamw": 2, "rmsprop": 1}

# what allocates no new activation at inference: in place, identity, or a view
_NO_NEW_MEMORY = frozenset({IN_PLACE, INFERENCE_IDENTITY, VIEW})


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
    unknown: str = ""  # why no receptive field is given (after upsampling: a fractional jump)

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
        if node.op not in MERGES:  # a layer's second input gives only its size (size=x)
            inputs = inputs[:1]
        layers[node.id] = LayerFacts(
            node=node,
            shape=derivation(node),
            params=_evaluate(node, "params"),
            macs=_evaluate(node, "macs"),
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


# ---- counts ----------------------------------------------------------------------------


def _evaluate(node: Node, count: str) -> Count | None:
    """The catalogue's factored formula for `count` ("params" or "macs") at this node: the
    same one the shape rule computed the node's number with."""
    formula = getattr(spec_of(node.op), count) if node.op != "input" else None
    return formula(node.attrs, node.in_shapes[0], node.out_shape) if formula else None


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
    unknown = next((rf for rf in inputs if rf.unknown), None)
    if unknown is not None:
        return Receptive(unknown.r, unknown.j, _grid(out) or unknown.grid, unknown=unknown.unknown)
    if len(inputs) > 1:
        first = inputs[0]
        r = tuple(max(rf.r[i] for rf in inputs) for i in range(2))
        j = tuple(max(rf.j[i] for rf in inputs) for i in range(2))
        grid = _grid(out) or first.grid
        return Receptive(r, j, grid, rule="merge", approximate=any(rf.approximate for rf in inputs))
    rf = inputs[0]
    rule = spec_of(op).receptive
    if rule == "flat" and len(node.in_shapes[0]) == 2:  # fc on tokens: at every token
        rule = "same"
    if rule == "patch":  # patch_embed p: a p x p window at stride p; the patches keep a grid
        p = int(node.value("p"))
        h, w = rf.grid
        return _step(rf, ((p, p), (p, p)), (h // p, w // p), "window")
    if rule == "resample":
        # an output step is 1/s input pixels: the integer r + (k - 1) x j recurrence does not
        # hold (a transposed conv's jump is j / s)
        why = f"not computed after {op}: its jump is a fraction of an input pixel"
        return Receptive(rf.r, rf.j, _grid(out) or rf.grid, unknown=why)
    if rule == "space_to_depth":  # pixel_unshuffle r: an r x r window at stride r
        r = int(node.value("r"))
        return _step(rf, ((r, r), (r, r)), _grid(out), "window")
    if rule == "window":
        kh, kw = int_pair(node.attrs, "k")
        sh, sw = int_pair(node.attrs, "s")
        dh, dw = int_pair(node.attrs, "d") if "d" in node.attrs else (1, 1)
        return _step(rf, ((dh * (kh - 1) + 1, sh), (dw * (kw - 1) + 1, sw)), _grid(out), "window")
    if rule == "global" or (rule == "flat" and rf.grid != (1, 1)):
        gh, gw = rf.grid
        return _step(rf, ((gh, gh), (gw, gw)), (1, 1), "global")
    if rule == "adaptive":
        (h, w), (oh, ow) = rf.grid, out[1:]
        (kh, sh, ah), (kw, sw, aw) = _adaptive_window(h, oh), _adaptive_window(w, ow)
        step = _step(rf, ((kh, sh), (kw, sw)), (oh, ow), "window")
        if ah or aw:
            step = Receptive(step.r, step.j, step.grid, step.steps, step.rule, approximate=True)
        return step
    grid = _grid(out) or rf.grid
    return Receptive(rf.r, rf.j, grid, rule="same", approximate=rf.approximate)


def _adaptive_window(n: int, out: int) -> tuple[int, int, bool]:
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
    elements = numel(node.out_shape)
    size = elements * BYTES
    if node.op == "input":
        return Memory(elements, size, 2 * size, "input")
    has = traits(node.op)
    if IN_PLACE in has:
        return Memory(elements, 0, 0, "in place")
    if INFERENCE_IDENTITY in has:
        return Memory(elements, 0, elements * MASK_BYTES, "identity", "1-byte mask")
    if VIEW in has:
        return Memory(elements, 0, 0, "view")
    if SAVES_INDICES in has:
        return Memory(elements, size, 2 * size + elements * INDEX_BYTES, "new", "int64 indices")
    return Memory(elements, size, 2 * size)


def _peak(net: Network) -> int:
    """Largest sum of live tensors at inference, freeing each after its last use."""
    order = [n for n in net.nodes() if not n.train_only]
    position = {id(n): i for i, n in enumerate(order)}
    storage: dict = {}  # id(node) -> the node whose buffer holds its output
    last_use: dict = {}
    for i, node in enumerate(order):
        if traits(node.op) & _NO_NEW_MEMORY and node.inputs:
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
            size = numel(node.out_shape) * BYTES
            delta[position[id(node)]] += size
            delta[last_use[id(node)] + 1] -= size
    peak = live = 0
    for change in delta:
        live += change
        peak = max(peak, live)
    return peak


# ---- how a layer reads in the DSL ------------------------------------------------------


def layer_call(node: Node) -> str:
    """The layer as one would write it in the DSL, with values: `conv 96 k=11 s=4 p=0`."""
    op = node.op
    spec = spec_of(op)
    positional = tuple(name for name in spec.positional if name not in spec.named)
    parts = [op] + [_value_text(node.value(n)) for n in positional if node.attrs.get(n) is not None]
    for name in node.attrs:
        if name in positional or name in spec.derived:
            continue
        value = node.value(name)
        if name in spec.named:
            pass
        elif spec.category == "pool" and name == "s":
            if value == node.value("k"):
                continue
        elif spec.arg(name).kind == "init":
            if initializers.is_default(node, name):
                continue  # `gamma_init=1`: what a BatchNorm's scale starts from anyway
        elif _is_default(value, spec.arg(name).default):
            continue
        parts.append(f"{name}={_value_text(value)}")
    return " ".join(parts)


def _is_default(value, default) -> bool:
    return default == value and type(value) is type(default)


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


def _arg_text(value) -> str:
    raw = getattr(value, "value", value)
    if isinstance(raw, (int, float, bool, tuple)):
        return _value_text(raw)
    if isinstance(raw, str):
        return raw
    return "..."
