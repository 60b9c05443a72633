"""Where a channels-last framework's padding equals PyTorch's, decided per layer instance.

PyTorch pads symmetrically by an explicit amount (plus ceil mode's extra bottom/right
rows for pooling); TensorFlow-style frameworks (Keras, and Flax's "SAME"/"VALID") pad by
mode. These facts say, for every IR node one line of generated code stands for, when a
mode reproduces PyTorch's windows exactly and when explicit padding is needed; any
channels-last target reads them. Shapes are in PyTorch's (C, H, W) order.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ir import Node
from ..layers import NON_NEGATIVE, spec_of


def pair_values(v) -> tuple:
    return tuple(v) if isinstance(v, tuple) else (v, v)


def conv_padding(nodes: list[Node]) -> str:
    """ "valid", "same" or "explicit": the padding mode that gives every instance of a
    convolution PyTorch's output ("same" only at stride 1 with p = d*(k-1)/2)."""
    modes = None
    for n in nodes:
        ks, ss, ps, ds = (pair_values(n.value(a)) for a in ("k", "s", "p", "d"))
        options = set()
        if ps == (0, 0):
            options.add("valid")
        if all(
            s == 1 and (d * (k - 1)) % 2 == 0 and p == d * (k - 1) // 2
            for k, s, p, d in zip(ks, ss, ps, ds)
        ):
            options.add("same")
        modes = (options or {"explicit"}) if modes is None else modes & (options or {"explicit"})
    if not modes:
        return "explicit"
    return "valid" if "valid" in modes else "same" if "same" in modes else "explicit"


def strides_and_dilates(node: Node) -> bool:
    """Both at once, which Keras' Conv2D refuses."""
    return max(pair_values(node.value("s"))) > 1 and max(pair_values(node.value("d"))) > 1


@dataclass
class PoolWindows:
    """One instance of a pooling layer: PyTorch's windows as explicit paddings."""

    pads: tuple  # ((top, bottom), (left, right)), bottom/right including ceil mode's rows
    explicit: tuple  # (ph, pw): PyTorch's symmetric padding
    extra: tuple  # (eh, ew): ceil mode's extra bottom/right rows
    tf_same: bool  # padding="same" puts the windows where PyTorch does

    @property
    def zero(self) -> bool:
        return self.pads == ((0, 0), (0, 0))


def pool_windows(node: Node) -> PoolWindows:
    kh, kw = (int(v) for v in pair_values(node.value("k")))
    sh, sw = (int(v) for v in pair_values(node.value("s")))
    ph, pw = (int(v) for v in pair_values(node.value("p")))
    _, h, w = node.in_shapes[0]
    _, oh, ow = node.out_shape
    pads, extra, same = [], [], True
    for size, k, s, p, out in ((h.value, kh, sh, ph, oh), (w.value, kw, sw, pw, ow)):
        e = max((out - 1) * s + k - (size + 2 * p), 0)
        pads.append((p, p + e))
        extra.append(e)
        tf_out = -(-size // s)
        total = max((tf_out - 1) * s + k - size, 0)
        same = same and tf_out == out and total // 2 == p
    return PoolWindows(tuple(pads), (ph, pw), tuple(extra), same)


def non_negative(node: Node, memo: dict) -> bool:
    """Is this node's output provably >= 0? (Zero padding before a max pool is then exact.)"""
    key = id(node)
    if key not in memo:
        memo[key] = False  # no cycles in a DAG, but be safe
        if node.op == "input":
            result = False
        else:
            spec = spec_of(node.op)
            result = NON_NEGATIVE in spec.traits or (
                spec.keeps_sign(node.attrs)
                and bool(node.inputs)
                and all(non_negative(i, memo) for i in node.inputs)
            )
        memo[key] = result
    return memo[key]
