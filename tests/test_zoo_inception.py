"""BN-Inception and Inception-ResNet-v1 (issue #15) against their papers' tables and figures.

The figures themselves (params, MACs) are checked in test_zoo.py, the reference's weights in
test_references.py; here the structure the papers draw: map sizes, depths, branch widths,
module counts and residual scales.
"""

from __future__ import annotations

import pytest
from test_zoo import net, out_shape, scopes

from netdsl.ir import Node

# ---- BN-Inception: Ioffe & Szegedy 2015, Figure 5 ----------------------------------------------

# Figure 5's rows: #1x1, #3x3 reduce, #3x3, double #3x3 reduce, double #3x3, pool, proj
BN_INCEPTION_TABLE = {
    "3a": (64, 64, 64, 64, 96, "avg", 32),
    "3b": (64, 64, 96, 64, 96, "avg", 64),
    "3c": (0, 128, 160, 64, 96, "max", 0),  # stride 2: max + pass through
    "4a": (224, 64, 96, 96, 128, "avg", 128),
    "4b": (192, 96, 128, 96, 128, "avg", 128),
    "4c": (160, 128, 160, 128, 160, "avg", 128),
    "4d": (96, 128, 192, 160, 192, "avg", 128),
    "4e": (0, 128, 192, 192, 256, "max", 0),  # stride 2: max + pass through
    "5a": (352, 192, 320, 160, 224, "avg", 128),
    "5b": (352, 192, 320, 192, 224, "max", 128),
}
# the table's output-size column, as it is printed (H, W, C)
BN_INCEPTION_PRINTED_SIZES = {
    "3a": (28, 28, 256),
    "3b": (28, 28, 320),
    "3c": (28, 28, 576),
    "4a": (14, 14, 576),
    "4b": (14, 14, 576),
    "4c": (14, 14, 576),
    "4d": (14, 14, 576),
    "4e": (14, 14, 1024),
    "5a": (7, 7, 1024),
    "5b": (7, 7, 1024),
}
# what the table's columns give (and pytorchcv builds): the printed sizes of the stride-2
# modules are their inputs' (3c: 28x28 -> 14x14, 4e: 14x14 -> 7x7), and the depth column says
# 576 for 4c and 4d and 1024 for 4e where their branches add up to 608, 608 and 1056
BN_INCEPTION_SIZES = {
    **BN_INCEPTION_PRINTED_SIZES,
    "3c": (14, 14, 576),
    "4c": (14, 14, 608),
    "4d": (14, 14, 608),
    "4e": (7, 7, 1056),
}


def pair(value) -> tuple:
    """A kernel, stride or padding as (h, w), however the file wrote it."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def convs(network, prefix: str) -> list[Node]:
    return [n for n in network.nodes() if n.op == "conv" and n.id.startswith(prefix + ".")]


def test_bn_inception_module_sizes_follow_figure_5():
    network = net("bn_inception")
    for module, (h, w, c) in BN_INCEPTION_SIZES.items():
        assert network.node(f"inception{module}.concat").out_shape == (c, h, w), module
    differ = {
        m for m in BN_INCEPTION_SIZES if BN_INCEPTION_SIZES[m] != BN_INCEPTION_PRINTED_SIZES[m]
    }
    assert differ == {"3c", "4c", "4d", "4e"}


def test_bn_inception_depths_are_the_sums_of_figure_5s_columns():
    in_channels = 192
    for module, (c1, _, c3, _, d3, _, proj) in BN_INCEPTION_TABLE.items():
        # a stride-2 module passes its input through beside the two 3x3 branches
        depth = c1 + c3 + d3 + (proj or in_channels)
        assert depth == BN_INCEPTION_SIZES[module][2], module
        in_channels = depth


def test_bn_inception_branch_widths_and_pools_follow_figure_5():
    network = net("bn_inception")
    for module, (c1, c3r, c3, d3r, d3, pool, proj) in BN_INCEPTION_TABLE.items():
        found = [n.out_shape[0] for n in convs(network, f"inception{module}")]
        # branch order as pytorchcv registers it: 1x1 | 3x3 | double 3x3 | pool + proj
        expected = [c for c in (c1, c3r, c3, d3r, d3, d3, proj) if c]
        assert found == expected, module
        pools = [
            n for n in network.nodes() if n.id.startswith(f"inception{module}.") and "pool" in n.op
        ]
        assert [n.op for n in pools] == [f"{pool}pool"], module
        stride = 2 if not c1 else 1
        assert (pair(pools[0].value("s")), pair(pools[0].value("k"))) == ((stride,) * 2, (3, 3))


STEM_IDS = {"conv_bn1", "maxpool1", "conv_bn2", "conv_bn3", "maxpool2"}


def test_bn_inception_stem_follows_figure_5():
    network = net("bn_inception")
    stem = [n for n in network.nodes() if n.id.split(".")[0] in STEM_IDS]
    rows = [(n.op, n.out_shape) for n in stem if n.op in ("conv", "maxpool")]
    assert rows == [
        ("conv", (64, 112, 112)),  # convolution 7x7/2
        ("maxpool", (64, 56, 56)),  # max pool 3x3/2
        ("conv", (64, 56, 56)),  # the 1x1 reduce in front of the 3x3
        ("conv", (192, 56, 56)),  # convolution 3x3/1
        ("maxpool", (192, 28, 28)),  # max pool 3x3/2
    ]
    assert pair(network.node("conv_bn1.conv").value("k")) == (7, 7)


def test_bn_inception_has_no_5x5_convs_and_batchnorm_after_every_conv():
    network = net("bn_inception")
    conv_nodes = [n for n in network.nodes() if n.op == "conv"]
    assert {pair(n.value("k")) for n in conv_nodes} == {(7, 7), (1, 1), (3, 3)}
    for n in conv_nodes:
        assert network.node(n.id.rsplit(".", 1)[0] + ".bn").op == "bn"
    assert not [n for n in network.nodes() if n.op in ("dropout", "lrn")]
    assert network.node("gap").out_shape == (1024, 1, 1)


# ---- Inception-ResNet-v1: Szegedy et al. 2017, Figs. 7 and 10-15 -------------------------------


def test_inception_resnet_v1_stem_follows_figure_14():
    network = net("inception_resnet_v1")
    rows = [
        n.out_shape
        for n in network.nodes()
        if n.id.startswith("stem.") and n.op in ("conv", "maxpool")
    ]
    assert rows == [
        (32, 149, 149),
        (32, 147, 147),
        (64, 147, 147),
        (64, 73, 73),
        (80, 73, 73),
        (192, 71, 71),
        (256, 35, 35),
    ]


def test_inception_resnet_v1_module_counts_and_sizes_follow_figure_15():
    network = net("inception_resnet_v1")
    a, b, c = (scopes(network, name) for name in ("block35", "block17", "block8"))
    # Fig. 15: 5 x Inception-resnet-A, 10 x B, 5 x C; the reference adds a sixth C, unscaled
    assert (len(a), len(b), len(c)) == (5, 10, 6)
    assert {out_shape(s) for s in a} == {(256, 35, 35)}
    assert {out_shape(s) for s in b} == {(896, 17, 17)}
    assert {out_shape(s) for s in c} == {(1792, 8, 8)}
    (ra,) = scopes(network, "reduction_a")
    (rb,) = scopes(network, "reduction_b")
    assert out_shape(ra) == (896, 17, 17)
    assert out_shape(rb) == (1792, 8, 8)


@pytest.mark.parametrize(
    "block, widths, factor, projection",
    [
        ("block35", [32, 32, 32, 32, 32, 32], 0.17, 256),  # Fig. 10
        ("block17", [128, 128, 128, 128], 0.1, 896),  # Fig. 11
        ("block8", [192, 192, 192, 192], 0.2, 1792),  # Fig. 13
    ],
)
def test_inception_resnet_v1_residual_modules(block, widths, factor, projection):
    network = net("inception_resnet_v1")
    modules = scopes(network, block)
    for i, module in enumerate(modules):
        nodes = list(module.nodes())
        branch_convs = [n for n in nodes if n.op == "conv" and ".basic_conv" in n.id]
        assert [n.out_shape[0] for n in branch_convs] == widths
        (linear,) = [n for n in nodes if n.op == "conv" and ".basic_conv" not in n.id]
        # the "1x1 Conv (linear)" restores the module's depth, with a bias and no BatchNorm
        assert (linear.out_shape[0], pair(linear.value("k")), linear.value("bias")) == (
            projection,
            (1, 1),
            True,
        )
        (scale,) = [n for n in nodes if n.op == "scale"]
        last = block == "block8" and i == len(modules) - 1
        assert scale.value("s") == (1.0 if last else factor)
        assert [n.op for n in nodes].count("relu") == len(widths) + (0 if last else 1)


def test_inception_resnet_v1_reductions_follow_figures_7_and_12():
    network = net("inception_resnet_v1")
    (ra,) = scopes(network, "reduction_a")
    (rb,) = scopes(network, "reduction_b")
    # Fig. 7 with k, l, m, n = 192, 192, 256, 384 (Table 1's Inception-ResNet-v1 row)
    f = {"k": 192, "l": 192, "m": 256, "n": 384}
    assert [x.out_shape[0] for x in ra.nodes() if x.op == "conv"] == [f[c] for c in "nklm"]
    assert 256 + f["n"] + f["m"] == 896
    # Fig. 12
    assert [x.out_shape[0] for x in rb.nodes() if x.op == "conv"] == [256, 384, 256, 256] + [
        256
    ] * 3
    assert 896 + 384 + 256 + 256 == 1792
    for reduction in (ra, rb):
        strided = [
            x
            for x in reduction.nodes()
            if x.op in ("conv", "maxpool") and pair(x.value("s")) == (2, 2)
        ]
        assert len(strided) == (3 if reduction is ra else 4)
        assert all(pair(x.value("p")) == (0, 0) for x in strided)
