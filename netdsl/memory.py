"""Static memory of a training step (or of inference) at batch B, by category.

`estimate(net, batch=8, dtype="fp32", amp=False, optimizer="adam", train=True)`
walks the elaborated network in the order the generated PyTorch module runs it and
simulates the tensors PyTorch allocates, without running anything:

* **parameters**, **gradients** (one per parameter, in the parameters' dtype: fp32
  under autocast) and **optimizer state** (sgd: none; sgd-momentum and rmsprop:
  one buffer a parameter, rmsprop with momentum two; adam/adamw: two, plus each
  parameter's `step`, a 4-byte tensor);
* **activations**: what autograd saves for backward, counted by *storage* (a ReLU
  that runs in place saves its output, which is the storage it overwrote: counted
  once), per op as PyTorch 2.x saves it on CPU (`SAVED` below says what each op
  keeps), plus the network's outputs and, where they are not fp32, the fp32 copy
  the loss reads;
* under `amp` (torch.autocast): conv, linear and attention run in bf16/fp16 and
  save their low-precision inputs; autocast also keeps a low-precision **copy of
  every weight it casts** for the step (counted: `weight_copies`); everything else
  keeps the dtype of its input, a sum with an fp32 tensor (a parameter, the
  residual stream) promotes to fp32, and on CUDA LayerNorm, GroupNorm and softmax
  run in fp32 (autocast's fp32 list);
* the **training peak**: forward accumulates saved tensors (a tensor nothing saves
  is freed after its last use), backward walks the layers in reverse, holding the
  gradient of each activation while it is live and freeing each layer's saved
  tensors after its backward, and accumulates the parameters' gradients; the
  optimizer step holds parameters, gradients, state and the largest parameter's
  two temporaries (PyTorch's single-tensor Adam on CPU);
* the **inference peak**: liveness over the graph under `torch.no_grad()`;
* `largest_batch(net, budget, ...)`: the largest batch whose peak fits `budget`
  less HEADROOM (10 %: the caching allocator's rounding and fragmentation,
  cuDNN/oneDNN workspaces, which no static count sees).

Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .ir import Network, Node, Scope
from .layers import numel

DTYPES = {"fp32": 4, "bf16": 2, "fp16": 2}
OPTIMIZERS = ("sgd", "sgd-momentum", "adam", "adamw", "rmsprop")
HEADROOM = 0.10  # of the budget, kept free: allocator rounding and fragmentation, workspaces
INDEX = 8  # int64 max-pool indices, token ids
STEP_BYTES = 4  # Adam's per-parameter `step` (a float32 scalar tensor)

# ops autocast runs in low precision (CPU and CUDA): conv, linear, matmul/bmm, attention
LOW_PRECISION = frozenset(
    {
        "conv",
        "dwconv",
        "sepconv",
        "conv_transpose",
        "fc",
        "pointwise_fc",
        "patch_embed",
        "attention",
    }
)
# ops autocast runs in fp32 on CUDA (on CPU they keep their input's dtype)
FP32_ON_CUDA = frozenset({"layernorm", "groupnorm", "softmax"})
# ops whose result combines the input with an fp32 parameter: type promotion to fp32
PROMOTES = frozenset({"layer_scale", "pos_embed", "cls_token"})
# activations that save their result (relu, elu, leaky_relu in place: the overwritten storage)
SAVES_RESULT = frozenset({"relu", "sigmoid", "tanh", "softmax", "elu", "leaky_relu"})
RESULT_IN_PLACE = frozenset({"relu", "elu", "leaky_relu"})
# activations that save their input (in place: a copy of it, autograd's `original_self`)
SAVES_INPUT = frozenset({"relu6", "hardswish", "hardsigmoid", "silu", "gelu"})
VIEWS = frozenset({"flatten", "crop", "chunk", "channels", "tokens"})
MAX_POOLS = frozenset({"maxpool", "gmp", "adaptive_maxpool"})

# what autograd keeps for each op's backward (PyTorch 2.x, CPU), for docs and explain
SAVED = {
    "conv": "its input (weight: a parameter)",
    "dwconv": "its input",
    "sepconv": "its input and the depthwise output",
    "conv_transpose": "its input",
    "patch_embed": "its input",
    "fc": "its input",
    "pointwise_fc": "a contiguous copy of its (permuted) input",
    "bn": "its input + per-channel save_mean and save_invstd (fp32)",
    "layernorm": "its input + mean and rstd per row (fp32)",
    "groupnorm": "its input + mean and rstd per group (fp32)",
    "instancenorm": "its input + mean and invstd per sample and channel (fp32)",
    "relu": "its output (in place: the storage it overwrote)",
    "elu": "its output",
    "leaky_relu": "its output",
    "sigmoid": "its output",
    "tanh": "its output",
    "softmax": "its output",
    "relu6": "its input (in place: a copy of it)",
    "hardswish": "its input (in place: a copy of it)",
    "hardsigmoid": "its input (in place: a copy of it)",
    "silu": "its input (in place: a copy of it)",
    "gelu": "its input",
    "maxpool": "its input + int64 indices per output value",
    "gmp": "its input + int64 indices",
    "adaptive_maxpool": "its input + int64 indices",
    "avgpool": "its input",
    "adaptive_avgpool": "its input (size 1: nothing, it is a mean)",
    "gap": "nothing (a mean)",
    "dropout": "its mask, in the input's dtype (CPU dropout multiplies by a scaled noise tensor)",
    "drop_path": "its per-sample mask",
    "layer_scale": "its input (for gamma's gradient)",
    "mul": "both operands",
    "lrn": "its input, its padded square, and two input-sized intermediates",
    "attention": "the in-projection's input, q/k/v (one 3 x N x D storage), the attention "
    "output (the out-projection's input) and logsumexp; with dropout on the CPU (the math "
    "path): the scaled q and k, softmax, the dropout mask, the dropped weights and a "
    "contiguous copy of the heads' output",
    "embedding": "its indices (an input)",
}


@dataclass
class Storage:
    bytes: int
    what: str
    owner: str  # node id that made it
    category: str = "activation"  # activation | input | copy (a weight's low-precision copy)
    live: bool = False
    refs: int = 0  # forward readers still to run + savers whose backward has not run + output


@dataclass
class LayerMemory:
    """One layer's memory at the batch of the estimate."""

    node: Node
    dtype: str  # of its output
    output_bytes: int  # the new storage of its output (0: in place, a view, the identity)
    how: str  # "new" | "in place" | "view" | "identity"
    saved: list = field(default_factory=list)  # [(what, bytes, shared-with-or-"")]
    saved_bytes: int = 0  # storages this layer is the first to save (counted once overall)
    weight_copy: int = 0  # autocast's low-precision copy of its weights
    transient: int = 0  # bytes allocated and freed inside the op in forward


@dataclass
class MemoryEstimate:
    network: str
    batch: int
    dtype: str
    amp: bool
    optimizer: str
    train: bool
    device: str
    parameters: int
    gradients: int
    optimizer_state: int
    weight_copies: int
    inputs: int
    saved: int  # activations saved for backward (storages, not counting the inputs)
    outputs: int  # the network's outputs (and the fp32 copies the loss reads)
    peak: int  # of a training step (train) or of inference (eval)
    peak_phase: str  # "forward" | "backward" | "optimizer step" | "inference"
    inference_peak: int
    layers: list = field(default_factory=list)
    phases: dict = field(default_factory=dict)  # phase -> its peak

    # the most activation bytes alive at once in the forward pass (what torch.profiler's
    # memory profiler files under ACTIVATION at its largest): the saved tensors, the outputs
    # and autocast's weight copies at its end, or, early in a small network, a layer's
    # output beside its input before the input is freed
    activations: int = 0
    saved_copies: int = 0  # the weight copies the layers save (the rest: autocast's cache)

    def as_dict(self) -> dict:
        return {
            "batch": self.batch,
            "dtype": self.dtype,
            "amp": self.amp,
            "optimizer": self.optimizer,
            "mode": "train" if self.train else "eval",
            "device": self.device,
            "parameters": self.parameters,
            "gradients": self.gradients,
            "optimizer_state": self.optimizer_state,
            "weight_copies": self.weight_copies,
            "saved_weight_copies": self.saved_copies,
            "inputs": self.inputs,
            "saved_for_backward": self.saved,
            "outputs": self.outputs,
            "activations": self.activations,
            "peak": self.peak,
            "peak_phase": self.peak_phase,
            "phases": dict(self.phases),
            "inference_peak": self.inference_peak,
            "headroom": HEADROOM,
        }


def optimizer_of(net: Network, given: str | None = None) -> str:
    """--optimizer, else the train: section's (sgd with momentum: sgd-momentum), else adam."""
    if given:
        return given
    train = net.train if isinstance(net.train, dict) else {}
    name = train.get("optimizer")
    if name == "sgd":
        return "sgd-momentum" if train.get("momentum") else "sgd"
    if name in OPTIMIZERS:
        return name
    return "adam"


def _state_per_param(optimizer: str, net: Network) -> int:
    if optimizer in ("adam", "adamw"):
        return 2
    if optimizer == "sgd-momentum":
        return 1
    if optimizer == "rmsprop":
        train = net.train if isinstance(net.train, dict) else {}
        return 2 if train.get("momentum") else 1
    return 0


def _param_tensors(node: Node) -> list[int]:
    """Element counts of a layer's parameter tensors (for Adam's step tensors and the
    optimizer's largest temporaries): the weight-holding tensors init resolution names."""
    if not node.params:
        return []
    from . import initializers

    resolved = initializers.resolve(node)
    if not resolved:
        return [node.params]
    n = len(resolved)
    # the first (weight) takes what the others (bias, beta, ...) leave
    small = _small_tensor(node)
    sizes = [small] * (n - 1)
    return [node.params - sum(sizes), *sizes]


def _small_tensor(node: Node) -> int:
    out = node.out_shape
    return int(out[0]) if len(out) == 3 else int(out[-1]) if out else 1


_IN_PLACE: dict = {}  # id(net) -> (net, its in-place layers): the last few networks asked


def _in_place_nodes(net: Network) -> dict:
    """node id -> the input node it overwrites, for the layers and adds the generated
    PyTorch module runs in place (`inplace=True`, `out += x`): the emitter's decision."""
    hit = _IN_PLACE.get(id(net))
    if hit is not None and hit[0] is net:
        return hit[1]
    if len(_IN_PLACE) >= 4:
        _IN_PLACE.clear()
    found = _emitted_in_place(net)
    _IN_PLACE[id(net)] = (net, found)
    return found


def _emitted_in_place(net: Network) -> dict:
    from .emit.base import ModelBuilder
    from .layers import FRESH, IN_PLACE, traits

    program = ModelBuilder(net).build()
    found: dict = {}

    def walk(units):
        for u in units:
            yield u
            bodies = list(u.branches.values()) if u.kind == "cond" else [u.body]
            for b in bodies:
                if b is not None and b.kind in ("single", "chain"):
                    yield from walk(b.units)

    consumers = net.readers
    for cls in program.classes:
        for u in walk(cls.units):
            if u.kind not in ("layer", "merge") or not u.overwrites:
                continue
            for item, _ in u.items:
                if not isinstance(item, Node) or not item.inputs:
                    continue
                if item.op == "add" and len(item.inputs) == 2:
                    # `out += x` adds into an operand made fresh and read by nothing else
                    # (a ReLU's in-place output is not fresh: it may be saved)
                    alone = [i for i in item.inputs if len(consumers[i.id]) == 1]
                    fresh = [i for i in alone if FRESH in traits(i.op)]
                    found[item.id] = (fresh or alone or item.inputs)[0]
                elif u.kind == "layer" and IN_PLACE in traits(item.op):
                    found[item.id] = item.inputs[0]
    return found


def _data_inputs(node: Node) -> list:
    """The inputs an op computes from (a layer's second input gives only its size)."""
    from .layers import MERGES

    return list(node.inputs) if node.op in MERGES else list(node.inputs[:1])


def _requires_grad(net: Network) -> dict:
    """node id -> whether autograd tracks its output: a parameter at or before it."""
    tracked: dict = {}
    for node in net.nodes():
        tracked[node.id] = bool(node.params) or any(tracked[i.id] for i in _data_inputs(node))
    return tracked


# ---- the simulation ----------------------------------------------------------------------


class _Sim:
    def __init__(self, net, batch, dtype, amp, train, device):
        self.net, self.batch, self.train, self.device = net, batch, train, device
        self.base = DTYPES[dtype]  # the model's dtype
        self.low = DTYPES[dtype] if not amp else 2
        self.amp = amp
        self.live = 0  # activation + input-cast bytes live now
        self.storage: dict = {}  # node id -> Storage of its output
        self.dtype: dict = {}  # node id -> bytes per value of its output
        self.layers: dict = {}
        self.cached: list = []  # weight copies only autocast's cache holds, for the forward

    def size(self, node: Node, per: int | None = None) -> int:
        return self.batch * numel(node.out_shape) * (per if per else self.dtype[node.id])

    def new(self, nbytes: int, what: str, owner: str, category: str = "activation") -> Storage:
        return Storage(nbytes, what, owner, category)

    def alloc(self, s: Storage) -> None:
        s.live = True
        self.live += s.bytes

    def release(self, s: Storage) -> None:
        s.refs -= 1
        if s.refs <= 0 and s.live:
            s.live = False
            self.live -= s.bytes


def estimate(
    net: Network,
    batch: int = 1,
    dtype: str = "fp32",
    amp: bool = False,
    optimizer: str | None = None,
    train: bool = True,
    device: str = "cpu",
) -> MemoryEstimate:
    """Memory by category of one training step (or of inference) of `net` at `batch`."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype}")
    if amp and dtype != "fp32":
        raise ValueError("--amp runs an fp32 model under autocast: use it with --dtype fp32")
    optimizer = optimizer_of(net, optimizer)
    base = DTYPES[dtype]
    params = net.total_params * base
    tensors = [t for n in net.nodes() for t in _param_tensors(n)]
    state = _state_per_param(optimizer, net) * params if train else 0
    if train and optimizer in ("adam", "adamw"):
        state += STEP_BYTES * len(tensors)
    grads = params if train else 0
    inference_peak = _inference_peak(net, batch, dtype, amp, device)
    if not train:
        return MemoryEstimate(
            net.name,
            batch,
            dtype,
            amp,
            optimizer,
            False,
            device,
            params,
            0,
            0,
            0,
            _input_bytes(net, batch, base),
            0,
            0,
            params + inference_peak,
            "inference",
            params + inference_peak,
            phases={"inference": params + inference_peak},
        )
    sim = _Sim(net, batch, dtype, amp, True, device)
    fwd = _forward(sim, net)
    fixed = params + state + fwd["inputs"]
    forward_peak = fixed + fwd["peak"]
    backward_peak = fixed + _backward(sim, net, fwd)
    largest = max(tensors, default=0) * base
    step_peak = params + grads + state + fwd["inputs"] + 2 * largest
    phases = {"forward": forward_peak, "backward": backward_peak, "optimizer step": step_peak}
    phase = max(phases, key=phases.get)
    return MemoryEstimate(
        network=net.name,
        batch=batch,
        dtype=dtype,
        amp=amp,
        optimizer=optimizer,
        train=True,
        device=device,
        parameters=params,
        gradients=grads,
        optimizer_state=state,
        weight_copies=fwd["copies"],
        inputs=fwd["inputs"],
        saved=fwd["saved"],
        outputs=fwd["outputs"],
        peak=phases[phase],
        peak_phase=phase,
        inference_peak=params + inference_peak,
        layers=list(sim.layers.values()),
        phases=phases,
        activations=fwd["peak"],
        saved_copies=fwd["saved_copies"],
    )


def _input_bytes(net: Network, batch: int, base: int) -> int:
    total = 0
    for node in net.inputs.values():
        per = INDEX if getattr(node.out_shape, "vocab", None) is not None else base
        total += batch * numel(node.out_shape) * per
    return total


def _out_dtype(sim: _Sim, node: Node, ins: list[int]) -> int:
    op = node.op
    if op == "input":
        return INDEX if getattr(node.out_shape, "vocab", None) is not None else sim.base
    if op == "embedding":
        return sim.base
    if not sim.amp:
        return sim.base
    if op in LOW_PRECISION:
        return sim.low
    if sim.device == "cuda" and op in FP32_ON_CUDA:
        return 4
    if op in PROMOTES or op == "lrn":  # lrn: its avg_pool3d is on autocast's fp32 list
        return 4
    return max(ins) if ins else sim.base


def _forward(sim: _Sim, net: Network) -> dict:
    """Run the forward pass: which storages exist, which are saved, the live maximum."""
    in_place = _in_place_nodes(net)
    readers = net.readers
    order = net.nodes()
    outputs = {o.node.id for o in net.outputs}
    peak = 0
    copies = 0
    inputs = 0
    saved_storages: list = []  # unique, in order
    seen_saved: set = set()
    sim.saved_by: dict = {}  # node id -> [Storage] it saved
    sim.grad_alias: dict = {}  # node id -> True when its input's gradient is its own (a view)
    sim.requires = _requires_grad(net)
    held, ends = _held_by_name(net)
    for node in order:
        ins = [sim.dtype[i.id] for i in _data_inputs(node)]
        sim.dtype[node.id] = per = _out_dtype(sim, node, ins)
        made: list[Storage] = []
        saved: list[tuple[Storage, str]] = []
        transient = 0
        weight_copy = 0
        how = "new"
        op = node.op
        if op == "input":
            s = sim.new(sim.size(node), "input", node.id, "input")
            inputs += s.bytes
            sim.storage[node.id] = s
            s.refs += len(readers[node.id])
            # the input batch is counted apart from activations (held by the caller)
            sim.layers[node.id] = LayerMemory(node, _name(per), s.bytes, "input")
            continue
        x = node.inputs[0] if node.inputs else None
        xs = sim.storage.get(x.id) if x is not None else None

        def saved_input(i: int = 0, label: str = "input", node=node, op=op, made=made):
            """The storage an op saves for its i-th input; a low-precision op under autocast
            saves the cast copy of an input wider than its compute dtype."""
            src = node.inputs[i]
            if op in LOW_PRECISION and sim.amp and sim.dtype[src.id] > sim.low:
                c = sim.new(sim.batch * numel(src.out_shape) * sim.low, f"{label} cast", node.id)
                made.append(c)
                return c, f"{label} ({_name(sim.low)} copy)"
            return sim.storage[src.id], label

        def extra(nbytes: int, what: str, node=node, made=made, saved=saved) -> None:
            s = sim.new(nbytes, what, node.id)
            made.append(s)
            saved.append((s, what))

        out_new = True
        alias = None
        save_output = False
        if op in LOW_PRECISION:
            elements = node.params
            if op == "fc" and node.attrs.get("tie") is not None:  # another layer's weight
                elements += int(node.value("in_features")) * int(node.value("n"))
            if sim.amp and elements:
                weight_copy = elements * sim.low
                bias = _bias_elements(node)
                # the backward keeps the weight's copy, never the bias's; a linear layer on an
                # input without grad needs no input gradient, so it keeps no weight either:
                # those copies live in autocast's cache until the forward pass ends
                keeps = not (op in ("fc", "pointwise_fc") and not sim.requires[x.id])
                parts = [(elements - bias, keeps), (bias, False)]
                for count, kept in parts:
                    if not count:
                        continue
                    c = sim.new(count * sim.low, "weight copy", node.id, "copy")
                    made.append(c)
                    if kept:
                        saved.append((c, f"{_name(sim.low)} weights"))
                    else:
                        c.refs += 1
                        sim.cached.append(c)
            if op == "pointwise_fc":
                width = sim.low if sim.amp else ins[0]
                extra(sim.batch * numel(x.out_shape) * width, "input (contiguous copy)")
            elif op == "attention":
                _attention(sim, node, saved_input, extra, made, saved)
                transient = 3 * sim.size(node)  # the projection before it is made contiguous
            else:
                s, label = saved_input()
                saved.append((s, label))
                if op == "sepconv":
                    mid = int(node.value("mid_channels")) if "mid_channels" in node.attrs else None
                    spatial = numel(node.out_shape) // int(node.out_shape[0])
                    mid = mid if mid else int(node.in_shapes[0][0].value)
                    extra(sim.batch * mid * spatial * per, "depthwise output")
        elif op == "bn" or op == "instancenorm":
            saved.append((xs, "input"))
            c = int(node.out_shape[0])
            stats = 2 * c * 4 if op == "bn" else 2 * sim.batch * c * 4
            extra(stats, "save_mean, save_invstd (fp32)")
        elif op in ("layernorm", "groupnorm"):
            saved.append((xs, "input"))
            shape = node.out_shape
            if op == "groupnorm":
                rows = int(node.value("g")) if "g" in node.attrs else 1
            else:
                rows = (
                    numel(shape) // int(shape[0])
                    if len(shape) == 3
                    else numel(shape) // int(shape[-1])
                )
                if len(shape) == 3:
                    transient = sim.size(node, ins[0])  # permuted input made contiguous
            extra(2 * sim.batch * rows * 4, "mean, rstd (fp32)")
        elif op in SAVES_RESULT or op in SAVES_INPUT or op in ("hardswish",):
            if node.id in in_place:
                how, out_new, alias = "in place", False, xs
                if op in RESULT_IN_PLACE:
                    saved.append((xs, "its output (the overwritten input)"))
                elif op in SAVES_INPUT:
                    extra(sim.size(node), "a copy of its input")
            elif op in SAVES_INPUT:
                saved.append((xs, "input"))
            else:
                save_output = True
        elif op in MAX_POOLS:
            saved.append((xs, "input"))
            extra(sim.size(node, INDEX), "int64 indices")
        elif op == "avgpool" or (op == "adaptive_avgpool" and numel(node.out_shape[1:]) != 1):
            saved.append((xs, "input"))
        elif op == "dropout":
            p = float(node.value("p"))
            if p == 0.0:
                how, out_new, alias = "identity", False, xs
            elif sim.device == "cuda":  # native_dropout: a bool mask
                extra(sim.size(node, 1), "mask (bool)")
            else:  # CPU: input x (noise / (1 - p)), the noise in the input's dtype
                extra(sim.size(node), f"mask ({_name(per)})")
        elif op == "drop_path":
            p = float(node.value("p"))
            if p == 0.0:
                how, out_new, alias = "identity", False, xs
            else:
                extra(sim.batch * per, "per-sample mask")
                transient = sim.size(node)
        elif op in VIEWS or (op == "token_pool" and node.value("mode") != "mean"):
            how, out_new, alias = "view", False, xs
        elif op == "layer_scale":
            saved.append((xs, "input"))
        elif op == "mul":
            for i, src in enumerate(node.inputs):
                saved.append((sim.storage[src.id], f"operand {i + 1}"))
        elif op == "add" and node.id in in_place:
            how, out_new, alias = "in place", False, sim.storage[in_place[node.id].id]
        elif op in ("add", "mean") and len(node.inputs) > 2:
            transient = sim.size(node)
        elif op == "lrn":
            saved.append((xs, "input"))
            c = int(node.out_shape[0])
            n = int(node.value("n"))
            extra(sim.size(node) * (c + n - 1) // c, "padded square")
            extra(sim.size(node), "k + alpha x mean")
            extra(sim.size(node), "denominator")
        elif op == "embedding":
            saved.append((xs, "indices"))
        if out_new:
            out = sim.new(sim.size(node), "output", node.id)
            made.insert(0, out)
        else:
            out = alias
        if save_output:
            saved.append((out, "its output"))
        sim.storage[node.id] = out
        for s in made:
            sim.alloc(s)
        # references: readers of the output, the savers, the network's outputs, and the
        # variable of a named value until its forward returns
        out.refs += len(readers[node.id]) + (1 if node.id in outputs else 0)
        out.refs += node.id in held
        unique: list = []
        for s, _ in saved:
            if s is None:
                continue
            s.refs += 1
            if id(s) not in {id(u) for u in unique}:
                unique.append(s)
        if not sim.requires[node.id]:  # no graph here: autograd saves nothing
            for s, _ in saved:
                if s is not None:
                    s.refs -= 1
            saved, unique = [], []
        sim.saved_by[node.id] = unique
        peak = max(peak, sim.live + transient)
        # the op has run: release what it read
        for src in node.inputs:
            sim.release(sim.storage[src.id])
        for named in ends.get(node.id, ()):
            sim.release(sim.storage[named])
        for s in made:
            if s.refs == 0 and s.live:
                s.live = False
                sim.live -= s.bytes
        first = 0
        listed = []
        for s, what in saved:
            if s is None:
                continue
            shared = ""
            if id(s) in seen_saved:
                shared = "shared"
            else:
                seen_saved.add(id(s))
                if s.category != "input":
                    saved_storages.append(s)
                    if s.category != "copy":
                        first += s.bytes
            listed.append((what, s.bytes, shared if s.category != "input" else "an input"))
        copies += weight_copy
        sim.layers[node.id] = LayerMemory(
            node,
            _name(per),
            out.bytes if out_new else 0,
            how,
            listed,
            first,
            weight_copy,
            transient,
        )
        sim.grad_alias[node.id] = not out_new
    saved_total = sum(s.bytes for s in saved_storages if s.category == "activation")
    # outputs live at the end of forward, and the fp32 copies the loss reads
    out_bytes = 0
    for o in net.outputs:
        s = sim.storage[o.node.id]
        if not any(s is u for u in saved_storages) and s.category == "activation":
            out_bytes += s.bytes
        if sim.dtype[o.node.id] != 4:
            out_bytes += sim.size(o.node, 4)
            sim.live += sim.size(o.node, 4)
    peak = max(peak, sim.live)
    for c in sim.cached:  # the autocast region ends: its cache goes
        sim.release(c)
    saved_copies = sum(s.bytes for s in saved_storages if s.category == "copy")
    return {
        "peak": peak,
        "copies": copies,
        "inputs": inputs,
        "saved": saved_total,
        "outputs": out_bytes,
        "saved_copies": saved_copies,
        "end": sim.live,
    }


def _held_by_name(net: Network) -> tuple[set, dict]:
    """Named values (`c1 = cell(...)`) and when their variables let go of them.

    The generated forward gives a named value its own variable, which holds the tensor
    until that forward returns, after its last reader (NASNet's cell outputs c0 ... c13 stay
    alive through the whole network's forward). Returns the held nodes' ids and, for each
    node that ends a generated forward, the named values released after it runs."""
    position = _positions(net)
    by_key = {id(node): node for node in net.ordered}
    held: set = set()
    ends: dict = {}
    for scope in (net.root, *(s for s in net.root.walk() if isinstance(s, Scope))):
        if not scope.value_names:
            continue
        owner = scope
        while owner.kind not in ("block", "network"):
            owner = owner.parent
        last = _last_node(owner, position)
        for key in scope.value_names:
            node = by_key.get(key)
            if node is None or last is None or node.op == "input":
                continue
            held.add(node.id)
            ends.setdefault(last.id, []).append(node.id)
    return held, ends


def _positions(net: Network) -> dict:
    return {node.id: i for i, node in enumerate(net.ordered)}


def _last_node(scope: Scope, position: dict) -> Node | None:
    """The node after which a scope's generated forward returns (None for an empty one)."""
    return max(scope.nodes(), key=lambda n: position[n.id], default=None)


def _inference_transient(sim: _Sim, node: Node, device: str) -> int:
    """What an op allocates and frees inside itself under no_grad on the CPU, measured
    (torch 2.13, oneDNN): a convolution a buffer the size of the larger of its input and
    its output (the layout reorder of whichever oneDNN converts), max pooling its int64
    indices, which it computes even when nothing will read them."""
    if device != "cpu" or not node.inputs:
        return 0
    if node.op in ("conv", "dwconv", "sepconv", "conv_transpose"):
        x = node.inputs[0]
        return max(sim.batch * numel(x.out_shape) * sim.dtype[x.id], sim.size(node))
    if node.op in MAX_POOLS:
        return sim.size(node, INDEX)
    return 0


def _held_by_calls(net: Network) -> tuple[dict, dict]:
    """Block inputs and when the caller lets go of them.

    A generated block is a module call: the caller's variable holds the block's input until
    the call returns, after the block's last layer, however early the block itself reads
    it last. Returns {producer id: how many calls hold its output} and {the last node of a
    call: the producers it releases}."""
    position = _positions(net)
    count: dict = {}
    ends: dict = {}
    for scope in net.root.walk():
        if not isinstance(scope, Scope) or scope.kind not in ("block", "repeat"):
            continue
        if scope.input is None or scope.input.op == "input":
            continue
        last = _last_node(scope, position)
        if last is None:
            continue
        count[scope.input.id] = count.get(scope.input.id, 0) + 1
        ends.setdefault(last.id, []).append(scope.input.id)
    return count, ends


def _bias_elements(node: Node) -> int:
    """The bias values of a conv, linear layer or attention (0 without bias)."""
    if "bias" not in node.attrs or not node.value("bias"):
        return 0
    out = node.out_shape
    if node.op == "attention":
        return 4 * int(out[-1])  # in_proj_bias (3 D) and out_proj.bias (D)
    if node.op in ("fc", "patch_embed"):
        return int(out[-1])
    return int(out[0])  # conv, dwconv, sepconv (its pointwise), conv_transpose, pointwise_fc


def _attention(sim: _Sim, node: Node, saved_input, extra, made, saved) -> None:
    """nn.MultiheadAttention (batch first, self-attention, need_weights=False) in training:
    the in-projection saves its input, q, k, v are views of one contiguous 3 x B x N x D
    tensor, scaled_dot_product_attention's CPU flash kernel saves q, k, v, its output and
    the logsumexp, and its output is the out-projection's (saved) input as it is; with
    dropout, PyTorch takes the math path: the scaled q and k, the softmax, the dropout
    mask and the dropped weights (in fp32 under autocast: the CPU's math path computes
    reduced precision in fp32, with an fp32 copy of v), and the out-projection saves a
    contiguous copy of the heads' output."""
    n, d = (int(v) for v in node.out_shape)
    heads = int(node.value("heads"))
    b, per = sim.batch, (sim.low if sim.amp else sim.base)
    bnd = b * n * d * per
    s, label = saved_input(0, "in-projection input")
    saved.append((s, label))
    dropout = float(node.value("dropout")) if "dropout" in node.attrs else 0.0
    math = dropout > 0.0 and sim.train and sim.device == "cpu"
    # the CPU's math path computes in fp32 what autocast gave it in bf16/fp16: it saves an
    # fp32 copy of v, not the low-precision q, k, v storage
    wide = 4 if math and sim.amp else per
    if wide == per:
        extra(3 * bnd, "q, k, v (one storage)")
    if math:
        scores = b * heads * n * n * wide
        extra(b * n * d * wide, "q x scale")
        extra(b * n * d * wide, "k x scale")
        if wide != per:
            extra(b * n * d * wide, "v (fp32 copy)")
        extra(scores, "softmax")
        extra(scores, "dropout mask")
        extra(scores, "dropped weights")
        extra(bnd, "out-projection input (the heads' output made contiguous)")
    else:  # the fused kernel's output is laid out as the out-projection reads it: one storage
        extra(bnd, "attention output (= the out-projection's input)")
        extra(b * heads * n * 4, "logsumexp (fp32)")


def _name(per: int) -> str:
    return {4: "fp32", 2: "bf16/fp16", 8: "int64", 1: "bool"}.get(per, f"{per} B")


# ops whose inputs' gradients are the output's gradient itself (or views of it)
GRAD_VIEWS = frozenset({"add", "concat", "flatten", "tokens"})


def _backward(sim: _Sim, net: Network, fwd: dict) -> int:
    """Walk the layers in reverse: each holds its output's gradient, makes its inputs' (and
    its parameters') gradients, then frees what it saved and its output's gradient. A sum's
    inputs share its gradient, a concatenation's are views of it, a view's is a view."""
    live = fwd["end"]  # activations, outputs and loss copies at the end of forward
    peak = live
    grad: dict = {}  # node id -> Storage of its output's gradient
    for o in net.outputs:
        g = Storage(sim.size(o.node), "output gradient", o.node.id, live=True)
        g.refs = 1
        grad[o.node.id] = g
        live += g.bytes

    def drop(g: Storage) -> int:
        g.refs -= 1
        if g.refs <= 0 and g.live:
            g.live = False
            return g.bytes
        return 0

    for node in reversed(net.nodes()):
        g = grad.get(node.id)
        if node.op == "input" or g is None:
            continue
        new = transient = 0
        # parameter gradients (under autocast: the low-precision copy's first, then fp32)
        if node.params:
            new += node.params * sim.base
            if sim.amp and node.op in LOW_PRECISION:
                transient += node.params * sim.low
        if node.op == "attention":  # the heads' gradients, q/k/v's, before the projections
            transient += 5 * sim.size(node)
        elif node.op == "lrn":
            transient += 3 * sim.size(node)
        identity = sim.layers[node.id].how == "identity"
        passes = node.op in GRAD_VIEWS or identity
        for src in _data_inputs(node):
            if not sim.requires[src.id]:
                continue
            if src.id in grad:  # a second reader: its gradient is added into the first
                transient += 0 if passes else sim.size(src)
                continue
            if passes:
                g.refs += 1
                grad[src.id] = g
            else:
                h = Storage(sim.size(src), "gradient", src.id, live=True)
                h.refs = 1
                grad[src.id] = h
                new += h.bytes
        live += new
        peak = max(peak, live + transient)
        for s in sim.saved_by.get(node.id, []):  # freed after this layer's backward
            before = s.live
            sim.release(s)
            if before and not s.live:
                live -= s.bytes
        live -= drop(g)
    return peak


def _inference_peak(net: Network, batch: int, dtype: str, amp: bool, device: str) -> int:
    """Largest sum of live tensors under no_grad, each freed after its last use (in-place
    layers, views and dropout at inference allocate nothing; under autocast conv and linear
    outputs are low precision and their weights' copies are not cached)."""
    sim = _Sim(net, batch, dtype, amp, False, device)
    in_place = _in_place_nodes(net)
    readers = net.readers
    outputs = {o.node.id for o in net.outputs if not o.train_only}
    held, ends = _held_by_name(net)
    calls, call_ends = _held_by_calls(net)
    for end, inputs in call_ends.items():
        ends[end] = [*ends.get(end, ()), *inputs]
    live = peak = 0
    for node in net.nodes():
        if node.train_only:
            continue
        ins = [sim.dtype[i.id] for i in _data_inputs(node)]
        sim.dtype[node.id] = _out_dtype(sim, node, ins)
        readers_here = [r for r in readers[node.id] if not r.train_only]
        op = node.op
        alias = (
            node.id in in_place
            or op in VIEWS
            or op in ("dropout", "drop_path")
            or (op == "token_pool" and node.value("mode") != "mean")
        )
        if alias and node.inputs:
            s = sim.storage[(in_place.get(node.id) or node.inputs[0]).id]
        else:
            s = Storage(sim.size(node), "output", node.id)
            s.live = True
            live += s.bytes
        s.refs += len(readers_here) + (1 if node.id in outputs else 0) + (node.id in held)
        s.refs += calls.get(node.id, 0)
        sim.storage[node.id] = s
        cast = 0
        if amp and op in LOW_PRECISION:
            cast = sum(batch * numel(i.out_shape) * 2 for i in node.inputs if sim.dtype[i.id] > 2)
            cast += node.params * 2
        peak = max(peak, live + cast + _inference_transient(sim, node, device))
        released = [n for n in ends.get(node.id, ()) if n in sim.storage]
        for src in [*(i.id for i in node.inputs), *released]:
            t = sim.storage[src]
            t.refs -= 1
            if t.refs <= 0 and t.live:
                t.live = False
                live -= t.bytes
    return peak


def largest_batch(net: Network, budget: int, **options) -> tuple[int, MemoryEstimate | None]:
    """The largest batch whose peak fits `budget` less HEADROOM, and its estimate."""
    usable = int(budget * (1 - HEADROOM))

    def peak(b: int) -> MemoryEstimate:
        return estimate(net, batch=b, **options)

    if peak(1).peak > usable:
        return 0, None
    lo, hi = 1, 2
    while peak(hi).peak <= usable:
        lo, hi = hi, hi * 2
        if hi > 1 << 24:
            return lo, peak(lo)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if peak(mid).peak <= usable:
            lo = mid
        else:
            hi = mid
    return lo, peak(lo)


def parse_size(text: str) -> int:
    """'24GiB', '24GB', '512MiB', '1.5G' (binary when written G/GiB; GB is 10^9) -> bytes."""
    import re

    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(i?)B?\s*", text, re.IGNORECASE)
    if not m or m.group(1) in ("", "."):
        raise ValueError(f"not a size: {text!r} (e.g. 24GiB, 512MiB, 16GB)")
    value, prefix, binary = float(m.group(1)), m.group(2).upper(), m.group(3)
    power = "KMGT".index(prefix) + 1 if prefix else 0
    decimal = text.strip().upper().endswith("B") and not binary and prefix
    unit = (1000 if decimal else 1024) ** power
    return int(value * unit)
