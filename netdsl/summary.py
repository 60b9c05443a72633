"""Per-layer tables and the `summary --json` contract."""

from __future__ import annotations

from . import initializers
from .ir import Network, Node, Scope
from .layers import TensorSize, fmt_shape
from .layers_tokens import attention_products
from .symbolic import TokenIds


def summary_dict(net: Network) -> dict:
    """The JSON object of `netdsl summary --json` (see DESIGN.md). `macs` includes attention's
    matrix products; `attention_macs` (present when there is attention) says how much of it
    they are (DESIGN: no convention mixed in silently). `vocab` gives the vocabulary of each token-id input."""
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


def _rows(scope: Scope, depth: int | None, level: int = 0):
    for child in scope.children:
        if isinstance(child, Node):
            # a size read from another tensor is a second input: `crop size=x`
            sized = "".join(
                f" {k}={v}" for k, v in child.attrs.items() if isinstance(v, TensorSize)
            )
            yield child.id, child.op + sized, child.out_shape, child.params, child.macs
        elif depth is not None and level >= depth:
            what = child.block if child.kind == "block" else child.kind
            shape = tuple(int(d.value) for d in child.out_shape)
            yield child.id, what, shape, child.params, child.macs
        else:
            yield from _rows(child, depth, level + 1)


def summary_table(net: Network, depth: int | None = None) -> str:
    rows = [("Layer", "Op", "Output shape", "Params", "MACs")]
    for name, op, shape, params, macs in _rows(net.root, depth):
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
