"""Per-layer tables and the `summary --json` contract."""

from __future__ import annotations

from . import initializers
from .calls import block_call
from .ir import Network, Node, Scope
from .layers import TensorSize, fmt_shape
from .layers_tokens import attention_products
from .symbolic import TokenIds


def summary_dict(net: Network, estimate: Estimate | dict | None = None) -> dict:
    """The JSON object of `netdsl summary --json` (see DESIGN.md). `macs` includes attention's
    matrix products; `attention_macs` (present when there is attention) says how much of it
    they are (DESIGN: no convention mixed in silently). `vocab` gives the vocabulary of each token-id input.
    With `estimate` (an Estimate, or its options: `netdsl summary --json --batch 8 ...`),
    `memory` and `flops` carry the estimate of docs/memory.md, and each layer's `memory`
    and `flops` its share; without, the object is what it always was."""
    est = None
    memory = flops = None
    if estimate is not None:
        est = estimate if isinstance(estimate, Estimate) else Estimate(net, estimate)
        memory, flops = est.as_dict()
    vocab = {
        name: node.out_shape.vocab
        for name, node in net.inputs.items()
        if isinstance(node.out_shape, TokenIds)
    }
    attention = sum(attention_products(n) for n in net.nodes() if not n.train_only)
    return {
        "network": net.name,
        "inputs": {name: list(node.out_shape) for name, node in net.inputs.items()},
        **({"vocab": vocab} if vocab else {}),
        "outputs": {o.name: list(o.node.out_shape) for o in net.outputs},
        "train_outputs": [o.name for o in net.outputs if o.train_only],
        "params": net.total_params,
        "buffers": net.total_buffers,
        "macs": net.total_macs,
        **({"attention_macs": attention} if attention else {}),
        **({"memory": memory} if memory is not None else {}),
        **({"flops": flops} if flops is not None else {}),
        "layers": [
            {
                "name": n.id,
                "op": n.op,
                "out_shape": list(n.out_shape),
                "params": n.params,
                "macs": n.macs,
                **({"attention_macs": attention_products(n)} if n.op == "attention" else {}),
                **_inits(n),
                "source": str(n.span),
                **({"train_only": True} if n.train_only else {}),
                **(est.layer(n) if est is not None else {}),
            }
            for n in net.nodes()
            if n.op != "input"
        ],
    }


def _inits(node) -> dict:
    """{"init": {tensor: init}} of a layer with weights: what each tensor starts from
    (PyTorch's default where the program wrote none)."""
    resolved = initializers.resolve(node)
    return {"init": {r.tensor.role: str(r.init) for r in resolved}} if resolved else {}


def _rows(scope: Scope, depth: int | None, level: int = 0, blocks: dict | None = None):
    for child in scope.children:
        if isinstance(child, Node):
            # a size read from another tensor is a second input: `crop size=x`
            sized = "".join(
                f" {k}={v}" for k, v in child.attrs.items() if isinstance(v, TensorSize)
            )
            yield child.id, child.op + sized, child.out_shape, child.params, child.macs
        elif depth is not None and level >= depth:
            shape = tuple(int(d.value) for d in child.out_shape)
            yield child.id, block_call(child, blocks), shape, child.params, child.macs
        else:
            yield from _rows(child, depth, level + 1, blocks)


def summary_table(net: Network, depth: int | None = None) -> str:
    rows = [("Layer", "Op", "Output shape", "Params", "MACs")]
    for name, op, shape, params, macs in _rows(net.root, depth, blocks=net.blocks):
        if op == "input":
            continue
        rows.append((name, op, fmt_shape(shape), f"{params:,}", f"{macs:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [f"{net.name} ({net.path})"]
    inputs = ", ".join(f"{k} {fmt_shape(v.out_shape)}" for k, v in net.inputs.items())
    lines.append(f"inputs: {inputs}")
    rule = "-" * (sum(widths) + 8)
    for i, row in enumerate(rows):
        lines.append(
            f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}  "
            f"{row[3]:>{widths[3]}}  {row[4]:>{widths[4]}}"
        )
        if i == 0:
            lines.append(rule)
    lines.append("=" * len(rule))
    lines.append(
        f"params: {net.total_params:,}  (BatchNorm running statistics, not counted: "
        f"{net.total_buffers:,})"
    )
    counted = (
        "conv, linear and attention"
        if any(n.op == "attention" for n in net.nodes())
        else "conv and linear"
    )
    lines.append(
        f"MACs:   {net.total_macs:,}  ({counted} multiply-accumulates, batch 1, eval path)"
    )
    outs = "; ".join(
        f"{o.name} {fmt_shape(o.node.out_shape)}" + (" (train only)" if o.train_only else "")
        for o in net.outputs
    )
    lines.append(f"outputs: {outs}")
    return "\n".join(lines)


# ---- the memory and FLOPs of a step (docs/memory.md) ------------------------------------

ESTIMATE_DEFAULTS = {
    "batch": 1,
    "dtype": "fp32",
    "amp": False,
    "optimizer": None,
    "train": True,
    "device": "cpu",
    "budget": None,
}


class Estimate:
    """The memory estimate (netdsl/memory.py) and the FLOPs of a training step
    (netdsl/flops.py) for one set of options; with a budget, at the largest batch that fits."""

    def __init__(self, net: Network, request: dict | None = None) -> None:
        from . import memory

        options = {**ESTIMATE_DEFAULTS, **(request or {})}
        self.net, self.options = net, options
        self.budget = options["budget"]
        kwargs = {k: options[k] for k in ("dtype", "amp", "optimizer", "train", "device")}
        self.largest = None
        if self.budget is not None:
            self.largest, fitted = memory.largest_batch(net, self.budget, **kwargs)
            batch = self.largest or 1
            self.memory = fitted or memory.estimate(net, batch=batch, **kwargs)
        else:
            self.memory = memory.estimate(net, batch=options["batch"], **kwargs)
        self.batch = self.memory.batch
        self._by_id = {lm.node.id: lm for lm in self.memory.layers}
        self.flops = _step_flops(net, self.batch, options["device"])

    def layer(self, node: Node) -> dict:
        m = self._by_id.get(node.id)
        out: dict = {}
        if m is not None:
            out["memory"] = {
                "output_bytes": m.output_bytes,
                "saved_bytes": m.saved_bytes,
                **({"weight_copy_bytes": m.weight_copy} if m.weight_copy else {}),
            }
        if self.flops is not None and node.id in self.flops.by_id:
            f = self.flops.by_id[node.id]
            out["flops"] = {
                "forward": f.forward,
                "input_grad": f.input_grad,
                "weight_grad": f.weight_grad,
            }
        return out

    def as_dict(self) -> tuple[dict, dict | None]:
        from .memory import HEADROOM

        mem = self.memory.as_dict()
        if self.budget is not None:
            mem["budget"] = self.budget
            mem["usable"] = int(self.budget * (1 - HEADROOM))
            mem["largest_batch"] = self.largest
        flops = None
        if self.flops is not None:
            from .flops import CONVENTION

            f = self.flops
            flops = {
                "batch": self.batch,
                "attention": f.attention,
                "forward": f.forward,
                "input_grad": f.input_grad,
                "weight_grad": f.weight_grad,
                "backward": f.backward,
                "step": f.total,
                "forward_eval": f.forward_eval,
                "convention": CONVENTION,
            }
        return mem, flops


def _step_flops(net: Network, batch: int, device: str):
    """netdsl/flops.py's training-step FLOPs, or None where that module is missing."""
    try:
        from .flops import step_flops
    except ImportError:  # pragma: no cover - the seam while flops.py is written
        return None
    return step_flops(net, batch, attention="cpu" if device == "cpu" else "fused")


def _mib(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n} B"


def _flops(n: int) -> str:
    for unit, size in (("PFLOP", 10**15), ("TFLOP", 10**12), ("GFLOP", 10**9), ("MFLOP", 10**6)):
        if n >= size:
            return f"{n / size:,.2f} {unit}"
    return f"{n:,} FLOP"


def estimate_text(est: Estimate) -> str:
    """The memory-by-category block and the FLOPs of a step, with their conventions."""
    from .memory import HEADROOM

    m, o = est.memory, est.options
    model = m.dtype + (" model under autocast (bf16/fp16)" if m.amp else " model")
    mode = "a training step" if m.train else "inference (torch.no_grad)"
    lines = []
    if est.budget is not None:
        usable = int(est.budget * (1 - HEADROOM))
        if not est.largest:
            lines.append(
                f"largest batch in {_mib(est.budget)}: none: batch 1 needs "
                f"{_mib(m.peak)}, more than {_mib(usable)} ({_mib(est.budget)} less "
                f"{HEADROOM:.0%} headroom for the allocator and workspaces)"
            )
        else:
            lines.append(
                f"largest batch in {_mib(est.budget)}: {est.largest} (peak {m.peak:,} B of "
                f"{usable:,} B usable: {_mib(est.budget)} less {HEADROOM:.0%} headroom for "
                "the allocator's rounding and fragmentation and cuDNN/oneDNN workspaces)"
            )
    lines.append(
        f"memory of {mode} at batch {m.batch}, {model}, "
        + (f"{m.optimizer}, " if m.train else "")
        + f"{o['device'].upper()} rules"
    )
    width = 22

    def row(label: str, value: int, why: str) -> None:
        lines.append(f"  {label:<{width}} {_mib(value):>11}  {why}")

    per = 4 if m.dtype == "fp32" else 2
    row("parameters", m.parameters, f"{est.net.total_params:,} x {per} B ({m.dtype})")
    if m.train:
        row("gradients", m.gradients, f"one per parameter ({m.dtype})")
        states = {
            "sgd": "none (plain SGD)",
            "sgd-momentum": "momentum_buffer, one per parameter",
            "adam": "exp_avg + exp_avg_sq, two per parameter, and a 4-byte step per tensor",
            "adamw": "exp_avg + exp_avg_sq, two per parameter, and a 4-byte step per tensor",
            "rmsprop": "square_avg (and momentum_buffer), per parameter",
        }
        row("optimizer state", m.optimizer_state, f"{m.optimizer}: {states[m.optimizer]}")
        if m.amp:
            row(
                "weight copies",
                m.weight_copies,
                "autocast's bf16/fp16 copy of each conv, "
                "linear and attention weight, kept for the step",
            )
        row("input", m.inputs, "the batch")
        row("saved for backward", m.saved, "what autograd keeps, by storage (see explain)")
        row(
            "outputs",
            m.outputs,
            "the outputs"
            + (" and the fp32 copies the loss reads" if m.amp or m.dtype != "fp32" else ""),
        )
        phases = ", ".join(f"{k} {_mib(v)}" for k, v in m.phases.items())
        row("peak", m.peak, f"during the {m.peak_phase} ({phases})")
        row(
            "peak at inference",
            m.inference_peak,
            "no_grad: each tensor freed after its last use (a block's input when it returns)",
        )
    else:
        row("input", m.inputs, "the batch")
        row("peak", m.peak, "parameters + the live tensors, each freed after its last use")
    lines.append(
        "  (bytes of tensors, as torch.profiler counts them; not counted: the CUDA context, "
        "the caching allocator's rounding, library workspaces)"
    )
    if est.flops is not None:
        f = est.flops
        if m.train:
            lines.append(
                f"FLOPs of a training step at batch {f.batch}: {_flops(f.total)} = forward "
                f"{_flops(f.forward)} + input gradients {_flops(f.input_grad)} + weight "
                f"gradients {_flops(f.weight_grad)}"
            )
        else:
            lines.append(f"FLOPs of inference at batch {f.batch}: {_flops(f.forward_eval)}")
        import textwrap

        from .flops import CONVENTION

        lines += ["  " + t for t in textwrap.wrap(CONVENTION, 94)]
    else:  # pragma: no cover
        lines.append("FLOPs of a training step: not available (netdsl/flops.py is missing)")
    return "\n".join(lines)
