"""FLOPs of a training step, per layer: forward, input gradient and weight gradient.

The convention is torch.utils.flop_counter.FlopCounterMode's, so that the figures are
what it reports for a real forward and backward pass of the generated PyTorch model,
exactly (tests/test_flops.py checks every zoo network):

* 2 FLOPs per multiply-accumulate of a convolution (also grouped, depthwise and
  transposed), a linear layer (addmm/mm) and a batched matrix product (bmm), and of
  attention's scaled-dot-product kernels; every other op (activations, norms, pooling,
  merges, softmax, embedding lookups, bias additions) counts zero.
* forward = 2 x MACs x batch.
* input gradient: a conv's is a transposed conv of the same MACs, a linear layer's one
  matrix product of the same MACs. Autograd computes it only where something before the
  layer requires grad: the first conv on the input image, the first fc on a flat input,
  a patch embedding and the projections of an attention on an input tensor have none.
* weight gradient: a linear layer's one matrix product of the same MACs; a conv's a conv
  that FlopCounterMode counts over *all* input channels: groups x the forward's MACs (a
  depthwise conv's weight gradient counts C x its forward, far more than its arithmetic;
  a sepconv is its depthwise and its pointwise conv).
* a layer whose output reaches no output of the network is not differentiated.
* attention: its four projections as linear layers, and its two products per head
  (Q K^T, A V; 2 N^2 D MACs per sample). Their backward depends on the kernel: the
  fused kernels (flash / memory-efficient / cuDNN attention: a GPU, or the CPU without
  dropout) recompute Q K^T, 5 products of N^2 D/h per head; the unfused math path
  (explicit bmm: the CPU in training with attention dropout) differentiates each
  product twice, 4 products. The products have no weights: all of it is input gradient.
  On the CPU, stock FlopCounterMode has no formula for the fused CPU kernel and counts
  it zero; these figures count it as FlopCounterMode counts the GPU kernels.
* train-only heads (auxiliary classifiers) run, and are differentiated, in a training
  step; `forward_eval` leaves them out.

API (what summary, explain and profile use):

    step_flops(net, batch=1, attention="fused") -> StepFlops
        .layers        [LayerFlops] in DSL order, one per node (zeros included)
        .forward, .input_grad, .weight_grad, .backward, .total   training step, ints
        .forward_eval  the eval path's forward (train-only heads excluded): 2 x MACs x B
        .overcount     the part of weight_grad that FlopCounterMode adds for grouped convs
                       beyond their arithmetic (total - overcount: the arithmetic)
        .by_id         {node id: LayerFlops}
        .of(scope_or_node) -> LayerFlops   the sum over a block, repeat or layer
    LayerFlops(node, forward, input_grad, weight_grad, notes, overcount)
        .backward, .total; notes: why a part is missing or larger (one line each)
    attention: "fused" | "math" | "cpu" ("cpu": per layer, as PyTorch's CPU dispatch
        picks in training: math where the attention has dropout > 0, else fused)
    CONVENTION   one paragraph stating the convention, for output and docs
"""

from __future__ import annotations

from .layers import MERGES
from .records import record

CONVENTION = (
    "FLOPs follow torch.utils.flop_counter.FlopCounterMode: 2 per multiply-accumulate of "
    "conv, linear, batched matmul and attention's products; every other op counts zero. "
    "Training step = forward + input gradients (not computed before the first layer "
    "with weights) + weight gradients (a grouped conv's counted over all input channels, "
    "as FlopCounterMode does). Attention backward: 5 products with the fused kernels "
    "(Q K^T recomputed), 4 on the math path."
)

ATTENTION_PATHS = ("fused", "math", "cpu")

_CONVS = ("conv", "dwconv", "patch_embed", "conv_transpose")
_LINEAR = ("fc", "pointwise_fc")


@record
class LayerFlops:
    """One node's FLOPs in a training step at the batch given (FlopCounterMode's count)."""

    node: object = None  # the IR node; None for a sum over several
    forward: int = 0
    input_grad: int = 0
    weight_grad: int = 0
    notes: tuple = ()
    # what FlopCounterMode adds to a grouped conv's weight gradient beyond its arithmetic
    # ((groups - 1) x the forward's): part of weight_grad, not added to it
    overcount: int = 0

    @property
    def backward(self) -> int:
        return self.input_grad + self.weight_grad

    @property
    def total(self) -> int:
        return self.forward + self.backward

    def __add__(self, other: LayerFlops) -> LayerFlops:
        return LayerFlops(
            None,
            self.forward + other.forward,
            self.input_grad + other.input_grad,
            self.weight_grad + other.weight_grad,
            overcount=self.overcount + other.overcount,
        )


class StepFlops:
    """Per-layer FLOPs of one training step and the network's totals (see the module doc)."""

    def __init__(self, net, batch: int, attention: str, layers: list[LayerFlops]) -> None:
        self.net, self.batch, self.attention = net, batch, attention
        self.layers = layers
        self.by_id = {f.node.id: f for f in layers}
        whole = sum(layers, LayerFlops())  # the network's totals, as LayerFlops sums them
        self.forward, self.input_grad, self.weight_grad = (
            whole.forward,
            whole.input_grad,
            whole.weight_grad,
        )
        self.backward, self.total, self.overcount = whole.backward, whole.total, whole.overcount
        self.forward_eval = sum(f.forward for f in layers if not f.node.train_only)

    def of(self, item) -> LayerFlops:
        """The FLOPs of a node, or the sum over a scope's nodes (a block, a repeat)."""
        nodes = item.nodes() if hasattr(item, "nodes") else [item]
        total = LayerFlops()
        for node in nodes:
            total = total + self.by_id[node.id]
        return total

    def __repr__(self) -> str:
        return (
            f"<StepFlops {self.net.name} batch {self.batch}: forward {self.forward:,}, "
            f"input grad {self.input_grad:,}, weight grad {self.weight_grad:,}>"
        )


def data_inputs(node) -> list:
    """The inputs a node computes from (a layer's second input gives only its size)."""
    return list(node.inputs) if node.op in MERGES else list(node.inputs[:1])


def requires_grad(net) -> dict[str, bool]:
    """Node id -> whether autograd tracks its output: a layer with weights, or one whose
    data input is tracked (an input tensor is not)."""
    tracked: dict[str, bool] = {}
    for node in net.nodes():
        own = node.params > 0 or (node.op == "fc" and node.attrs.get("tie") is not None)
        tracked[node.id] = own or any(tracked[i.id] for i in data_inputs(node))
    return tracked


def reaches_loss(net) -> set[str]:
    """The ids of the nodes whose output flows (through data inputs) into an output: the
    only ones a backward pass from the outputs differentiates."""
    seen: set[str] = set()
    stack = [o.node for o in net.outputs]
    while stack:
        node = stack.pop()
        if node.id in seen:
            continue
        seen.add(node.id)
        stack.extend(data_inputs(node))
    return seen


def fused_attention(node, attention: str) -> bool:
    """Whether the attention node's products run in a fused kernel (see the module doc)."""
    if attention == "cpu":
        return not float(node.value("dropout") or 0) > 0
    return attention == "fused"


def layer_flops(
    node, batch: int = 1, needs_input_grad: bool = True, attention: str = "fused"
) -> LayerFlops:
    """One node's FLOPs in a training step (backward included: the caller zeroes it for a
    node the backward pass does not reach)."""
    op, b2 = node.op, 2 * batch
    forward = b2 * node.macs
    notes: list[str] = []
    if op in _CONVS or op in _LINEAR:
        groups = 1
        if op == "conv" or op == "conv_transpose":
            groups = int(node.value("g"))
        elif op == "dwconv":
            groups = int(node.in_shapes[0][0].value)
        input_grad = forward if needs_input_grad else 0
        if groups > 1:
            notes.append(
                f"weight gradient x {groups}: FlopCounterMode counts a grouped conv's over "
                "all input channels"
            )
        weight_grad = forward * groups
        overcount = forward * (groups - 1)
    elif op == "sepconv":
        cin, mid = int(node.in_shapes[0][0].value), int(node.value("mid_channels"))
        c, h, w = node.out_shape
        kh, kw = (int(k) for k in _pair(node.value("k")))
        depthwise, pointwise = b2 * mid * h * w * kh * kw, b2 * c * h * w * mid
        input_grad = pointwise + (depthwise if needs_input_grad else 0)
        weight_grad = depthwise * cin + pointwise
        overcount = depthwise * (cin - 1)
        notes.append(
            f"depthwise weight gradient x {cin}: FlopCounterMode counts a grouped conv's "
            "over all input channels"
        )
    elif op == "attention":
        n, d = node.out_shape
        projections, products = b2 * 4 * n * d * d, b2 * 2 * n * n * d
        in_proj, out_proj = 3 * projections // 4, projections // 4
        fused = fused_attention(node, attention)
        input_grad = out_proj + (in_proj if needs_input_grad else 0)
        input_grad += products * 5 // 2 if fused else products * 2
        weight_grad, overcount = projections, 0
        notes.append(
            "products' backward: fused kernel, Q K^T recomputed (5 products)"
            if fused
            else "products' backward: math path (each product differentiated twice)"
        )
    else:
        return LayerFlops(node, forward, 0, 0)
    if not needs_input_grad:
        notes.insert(0, "no input gradient: nothing before it requires grad")
    return LayerFlops(node, forward, input_grad, weight_grad, tuple(notes), overcount)


def step_flops(net, batch: int = 1, attention: str = "fused") -> StepFlops:
    """Every node's FLOPs in one training step at `batch` (see the module doc)."""
    if attention not in ATTENTION_PATHS:
        raise ValueError(f"attention must be one of {ATTENTION_PATHS}, got {attention!r}")
    tracked, reached = requires_grad(net), reaches_loss(net)
    layers = []
    for node in net.nodes():
        needs = any(tracked[i.id] for i in data_inputs(node))
        f = layer_flops(node, batch, needs, attention)
        if node.id not in reached and f.backward:
            f = LayerFlops(node, f.forward, 0, 0, ("no backward: it feeds no output",))
        layers.append(f)
    return StepFlops(net, batch, attention, layers)


def _pair(v) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)
