"""Language features and idioms the zoo relies on (issue #5).

`bn scale=false` was added for Keras' Inception-ResNet-v2; the other tests pin
the idioms that express reference behaviour with existing layers: TensorFlow's
"same" max pooling, parameter-free option-A shortcuts, FractalNet's joins.
"""

from __future__ import annotations

import pytest
from conftest import compile_text, need


def test_bn_without_scale_keeps_only_the_shift():
    net = compile_text("network n:\n    input 8x4x4\n    bn scale=false\n")
    (bn,) = [n for n in net.nodes() if n.op == "bn"]
    assert (bn.params, bn.buffers, bn.value("scale")) == (8, 16, False)
    net = compile_text("network n:\n    input 8x4x4\n    bn\n")
    assert (net.total_params, net.total_buffers) == (16, 16)


def test_bn_scale_must_be_a_boolean():
    from netdsl.errors import NetdslError

    with pytest.raises(NetdslError, match="'scale' must be true or false"):
        compile_text("network n:\n    input 8x4x4\n    bn scale=0\n")


POOL_SAME = """
block pool_same = maxpool 3 s=2 p=(in.h % 2) ceil=(in.h % 2 == 0)
network n:
    input 4x{size}x{size}
    pool_same
"""


@pytest.mark.parametrize("size", [147, 74, 37, 19, 10, 7])
def test_tensorflow_same_max_pool_shape(size):
    net = compile_text(POOL_SAME.format(size=size))
    assert net.main_output.node.out_shape == (4, -(-size // 2), -(-size // 2))


@pytest.mark.parametrize("size", [74, 37])
def test_tensorflow_same_max_pool_values(size):
    """Ceil mode on an even size is TF's one-sided "same" padding; p=1 on an odd size its
    symmetric one. TF pads max pooling with -inf: compare against that definition."""
    torch = need("torch")
    import torch.nn.functional as F

    x = torch.randn(1, 4, size, size)
    total = max((-(-size // 2) - 1) * 2 + 3 - size, 0)
    before, after = total // 2, total - total // 2
    expected = F.max_pool2d(F.pad(x, (before, after, before, after), value=float("-inf")), 3, 2)
    pad = size % 2
    got = F.max_pool2d(x, 3, 2, padding=pad, ceil_mode=(pad == 0))
    assert torch.equal(got, expected)


def test_option_a_shortcut_pads_channels_with_zeros_and_no_parameters():
    net = compile_text("""
network n:
    input 16x32x32
    avgpool 1 s=2 + concat(id, scale 0)
""")
    assert net.main_output.node.out_shape == (32, 16, 16)
    assert net.total_params == 0 and net.total_macs == 0


def test_fractal_join_is_the_mean_of_all_columns():
    """FractalNet's last join of f_3 averages three columns: 1 conv, 2 convs, 4 convs deep."""
    net = compile_text("""
block columns(C) = if C == 1 then conv3 4 else add(conv3 4, fractal(C - 1) + columns(C - 1))
block fractal(C) = if C == 1 then conv3 4 else columns(C) + scale(1 / C)
network n:
    input 4x8x8
    fractal(3)
""")
    # evaluate the graph as weighted sums of conv outputs: each conv is a fresh symbol
    value = {}
    for node in net.nodes():
        if node.op in ("input", "conv"):
            value[node] = {node.id: 1.0}
        elif node.op == "add":
            value[node] = {}
            for src in node.inputs:
                for k, w in value[src].items():
                    value[node][k] = value[node].get(k, 0.0) + w
        elif node.op == "scale":
            value[node] = {k: w * node.value("s") for k, w in value[node.inputs[0]].items()}
    weights = value[net.main_output.node]
    assert len(weights) == 3 and all(w == pytest.approx(1 / 3) for w in weights.values())
