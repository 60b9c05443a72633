"""The CIFAR networks of issue 15 against their papers' rules and tables.

* preresnet_cifar.net — He et al., "Identity Mappings in Deep Residual Networks" (ECCV 2016):
  depth 9n+2 with n bottleneck units per stage, outputs 64, 128 and 256 on 32x32, 16x16 and 8x8
  maps; Table 4 gives 1.7M parameters for ResNet-164 and 10.2M for ResNet-1001 (the reference,
  pytorchcv, and netdsl count 10.33M).
* wide_resnet_cifar.net — Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016): Table 1's
  groups conv2, conv3, conv4 of 16k, 32k and 64k filters on 32x32, 16x16 and 8x8 maps, with
  N = (depth - 4) / 6 units each; Table 4's parameter counts of ten depth-k pairs.
* densenet_bc_cifar.net — Huang et al., "Densely Connected Convolutional Networks" (CVPR 2017),
  Sec. 3-4: a 2k-filter first conv, three dense blocks of (L - 4) / 6 bottleneck layers,
  transitions with compression 0.5; Table 2's 0.8M, 15.3M and 25.6M parameters for DenseNet-BC
  (L=100, k=12), (L=250, k=24) and (L=190, k=40).

Exact parameters and MACs of the other depths and widths are pytorchcv's (model.parameters()
and torch.utils.flop_counter / 2 at 3x32x32, in the reference environment).
"""

from __future__ import annotations

import pytest
from test_zoo import net, out_shape, scopes

from netdsl.ir import Scope


def children(network, block: str) -> list[Scope]:
    return [s for s in network.root.children if isinstance(s, Scope) and s.block == block]


def ops(network, op: str) -> list:
    return [n for n in network.nodes() if n.op == op]


# ---- pre-activation ResNet ---------------------------------------------------------------------

# depth -> pytorchcv preresnet{depth}bn_cifar10 / preresnet1001_cifar10 (params, MACs)
PRERESNET = {
    164: (1_703_258, 247_646_720),
    272: (2_816_090, 408_078_848),
    542: (5_598_170, 809_159_168),
    1001: (10_327_706, 1_490_995_712),
}


@pytest.mark.parametrize("depth", [164, 1001])
def test_preresnet_depth_rule(depth):
    network = net("preresnet_cifar", depth=depth)
    n = (depth - 2) // 9
    stages = children(network, "stage")
    assert [out_shape(s) for s in stages] == [(64, 32, 32), (128, 16, 16), (256, 8, 8)]
    for stage in stages:
        units = [s for s in scopes(network, "unit") if s.id.startswith(stage.id + ".")]
        assert len(units) == n
    # depth counts conv1, three convs per unit and the fc layer; the three 1x1 projection
    # shortcuts (16->64, 64->128, 128->256) are extra
    convs = ops(network, "conv")
    assert len(convs) + 1 == depth + 3
    projections = [n for n in convs if n.id.endswith(".choice.conv")]  # beside the residual
    assert [(int(n.in_shapes[0][0].value), n.out_shape[0], n.value("s")) for n in projections] == [
        (16, 64, 1),
        (64, 128, 2),
        (128, 256, 2),
    ]


@pytest.mark.parametrize("depth", list(PRERESNET))
def test_preresnet_matches_pytorchcv_at_every_depth(depth):
    network = net("preresnet_cifar", depth=depth)
    assert (network.total_params, network.total_macs) == PRERESNET[depth]


def test_preresnet_params_follow_table_4():
    assert round(net("preresnet_cifar").total_params / 1e6, 1) == 1.7
    # the paper's 10.2M for ResNet-1001 is 0.13M below the reference's count
    assert round(net("preresnet_cifar", depth=1001).total_params / 1e5) == 103


def test_preresnet_units_are_pre_activated():
    network = net("preresnet_cifar")
    # BN-ReLU before every conv but conv1, and a final BN-ReLU before the pool
    for node in ops(network, "conv")[1:]:
        source = node.inputs[0]
        assert source.op == "relu" and source.inputs[0].op == "bn", node.id
    assert [n.op for n in network.nodes()][-4:] == ["bn", "relu", "gap", "fc"]
    # a unit ends with its addition: nothing after it on the identity path
    nodes = list(network.nodes())
    for unit in scopes(network, "unit"):
        assert [n.op for n in nodes if n.id.startswith(unit.id + ".")][-1] == "add", unit.id
    assert network.main_output.node.out_shape == (10,)
    assert net("preresnet_cifar", classes=100).total_params == 1_726_388  # pytorchcv cifar100


# ---- Wide ResNet -------------------------------------------------------------------------------

# Table 4: (depth, k) -> millions of parameters
WRN_TABLE_4 = {
    (40, 1): 0.6,
    (40, 2): 2.2,
    (40, 4): 8.9,
    (40, 8): 35.7,
    (28, 10): 36.5,
    (28, 12): 52.5,
    (22, 8): 17.2,
    (22, 10): 26.8,
    (16, 8): 11.0,
    (16, 10): 17.1,
}
# (depth, k) -> pytorchcv wrn{depth}_{k}_cifar10 (params, MACs)
WRN = {
    (16, 10): (17_116_634, 2_412_173_568),
    (28, 10): (36_479_194, 5_243_328_768),
    (40, 8): (35_748_314, 5_172_024_320),
}


@pytest.mark.parametrize("depth, k", [(28, 10), (16, 8), (40, 4)])
def test_wrn_groups_follow_table_1(depth, k):
    network = net("wide_resnet_cifar", depth=depth, k=k)
    groups = children(network, "group")
    assert [s.id for s in groups] == ["conv2", "conv3", "conv4"]
    assert [out_shape(s) for s in groups] == [(16 * k, 32, 32), (32 * k, 16, 16), (64 * k, 8, 8)]
    assert network.node("conv1").out_shape == (16, 32, 32)
    for group in groups:
        units = [s for s in scopes(network, "unit") if s.id.startswith(group.id + ".")]
        assert len(units) == (depth - 4) // 6
    # two 3x3 convs per unit, conv1, and a 1x1 projection where each group begins
    convs = ops(network, "conv")
    assert sum(n.value("k") == 3 for n in convs) == 2 * 3 * (depth - 4) // 6 + 1
    assert sum(n.value("k") == 1 for n in convs) == 3
    assert not ops(network, "dropout")


@pytest.mark.parametrize("depth, k", list(WRN_TABLE_4))
def test_wrn_params_follow_table_4(depth, k):
    network = net("wide_resnet_cifar", depth=depth, k=k)
    assert round(network.total_params / 1e6, 1) == WRN_TABLE_4[depth, k]


@pytest.mark.parametrize("depth, k", list(WRN))
def test_wrn_matches_pytorchcv(depth, k):
    network = net("wide_resnet_cifar", depth=depth, k=k)
    assert (network.total_params, network.total_macs) == WRN[depth, k]


# ---- DenseNet-BC -------------------------------------------------------------------------------

# (L, k) -> Table 2's millions of parameters
DENSENET_TABLE_2 = {(100, 12): 0.8, (250, 24): 15.3, (190, 40): 25.6}
# (L, k) -> pytorchcv densenet{L}_k{k}_bc_cifar10 (params, MACs)
DENSENET = {
    (40, 12): (176_122, 72_365_352),
    (100, 12): (769_162, 287_929_692),
    (250, 24): (15_324_406, 5_418_785_724),
    (190, 40): (25_624_430, 9_301_945_740),
}


@pytest.mark.parametrize("depth, k", [(100, 12), (40, 12), (250, 24)])
def test_densenet_bc_depth_rule_and_compression(depth, k):
    network = net("densenet_bc_cifar", depth=depth, k=k)
    n = (depth - 4) // 6
    blocks = [out_shape(s) for s in children(network, "dense_block")]
    transitions = [out_shape(s) for s in children(network, "transition")]
    c1 = 2 * k + n * k  # the first conv's 2k channels, then n layers of k
    c2 = c1 // 2 + n * k
    c3 = c2 // 2 + n * k
    assert blocks == [(c1, 32, 32), (c2, 16, 16), (c3, 8, 8)]
    assert transitions == [(c1 // 2, 16, 16), (c2 // 2, 8, 8)]  # compression 0.5
    layers = scopes(network, "dense_layer")
    assert len(layers) == 3 * n
    # L counts every conv (two per bottleneck layer, conv1, two transitions) and the fc
    assert len(ops(network, "conv")) + len(ops(network, "fc")) == depth
    # each bottleneck layer's 1x1 conv makes 4k channels, its 3x3 conv k
    widths = {
        (n.value("k"), n.out_shape[0]) for n in ops(network, "conv") if ".dense_layer" in n.id
    }
    assert widths == {(1, 4 * k), (3, k)}


@pytest.mark.parametrize("depth, k", list(DENSENET_TABLE_2))
def test_densenet_bc_params_follow_table_2(depth, k):
    network = net("densenet_bc_cifar", depth=depth, k=k)
    assert round(network.total_params / 1e6, 1) == DENSENET_TABLE_2[depth, k]


@pytest.mark.parametrize("depth, k", list(DENSENET))
def test_densenet_bc_matches_pytorchcv(depth, k):
    network = net("densenet_bc_cifar", depth=depth, k=k)
    assert (network.total_params, network.total_macs) == DENSENET[depth, k]
