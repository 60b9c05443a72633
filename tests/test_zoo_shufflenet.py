"""ShuffleNet 1x (architectures/shufflenet_g3.net) against its paper's Table 1, for every g.

Zhang et al., "ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile
Devices" (CVPR 2018), Table 1: Conv1 (3x3/2, 24) and MaxPool (3x3/2) give 56x56x24; Stages 2,
3 and 4 repeat one stride-2 unit and 3, 7 and 3 stride-1 units on 28x28, 14x14 and 7x7 maps;
Stage 2's output channels are 144, 200, 240, 272 and 384 for g = 1, 2, 3, 4 and 8, doubled by
each later stage; the complexity row gives 143M, 140M, 137M, 133M and 137M FLOPs (the paper's
FLOPs are multiply-adds). Those figures are the convolutions' multiply-adds without the final
fc layer: with the fc (netdsl's and the reference's MACs) g = 2, 4 and 8 round to 141M, 134M
and 138M instead. pytorchcv's shufflenet_g{g}_w1 gives the same parameters and MACs for each g.
"""

from __future__ import annotations

import pytest
from test_zoo import net, out_shape, scopes

from netdsl.errors import NetdslError

# g -> output channels of Stages 2, 3 and 4 (Table 1)
CHANNELS = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}
# g -> Table 1's complexity, millions of multiply-adds
COMPLEXITY = {1: 143, 2: 140, 3: 137, 4: 133, 8: 137}
# g -> (params, MACs) of pytorchcv.shufflenet_g{g}_w1 at 3x224x224 (model.parameters() and
# torch.utils.flop_counter / 2, in the reference environment)
PYTORCHCV = {
    1: (1_531_936, 143_078_976),
    2: (1_733_848, 140_836_512),
    3: (1_865_728, 137_460_672),
    4: (1_968_344, 134_339_776),
    8: (2_434_768, 138_365_952),
}
GROUPS = list(CHANNELS)


def shufflenet(g: int):
    return net("shufflenet_g3", g=g)


def stages(network):
    return [s for s in network.root.children if getattr(s, "block", None) == "stage"]


@pytest.mark.parametrize("g", GROUPS)
def test_stage_outputs_follow_table_1(g):
    network = shufflenet(g)
    assert [s.id for s in stages(network)] == ["stage2", "stage3", "stage4"]
    assert [out_shape(s) for s in stages(network)] == [
        (c, n, n) for c, n in zip(CHANNELS[g], (28, 14, 7))
    ]
    stem = {n.op: n.out_shape for n in network.root.children if not hasattr(n, "block")}
    assert (stem["conv"], stem["maxpool"]) == ((24, 112, 112), (24, 56, 56))
    assert (stem["gap"], stem["fc"]) == ((CHANNELS[g][2], 1, 1), (1000,))


@pytest.mark.parametrize("g", GROUPS)
def test_stage_repeats_follow_table_1(g):
    network = shufflenet(g)
    for stage, repeat in zip(stages(network), (3, 7, 3)):
        down = [s for s in scopes(network, "down_unit") if s.id.startswith(stage.id + ".")]
        units = [s for s in scopes(network, "unit") if s.id.startswith(stage.id + ".")]
        assert (len(down), len(units)) == (1, repeat)
        # the stride-2 unit halves the size; its branch adds the channels the shortcut lacks
        (unit,) = down
        c, h, _ = (int(d.value) for d in unit.in_shape)
        assert out_shape(unit) == (out_shape(stage)[0], h // 2, h // 2)
        pool = [n for n in network.nodes() if n.id.startswith(unit.id + ".") and n.op == "avgpool"]
        assert [(n.value("k"), n.value("s"), n.out_shape[0]) for n in pool] == [(3, 2, c)]


@pytest.mark.parametrize("g", GROUPS)
def test_complexity_follows_table_1(g):
    network = shufflenet(g)
    fc = sum(n.macs for n in network.nodes() if n.op == "fc")
    assert fc == CHANNELS[g][2] * 1000
    assert round((network.total_macs - fc) / 1e6) == COMPLEXITY[g]
    assert (network.total_params, network.total_macs) == PYTORCHCV[g]


@pytest.mark.parametrize("g", GROUPS)
def test_pointwise_convs_are_grouped_except_stage_2s_first(g):
    network = shufflenet(g)
    pointwise = [n for n in network.nodes() if n.op == "conv" and n.value("k") == 1]
    assert len(pointwise) == 2 * (4 + 8 + 4)  # two 1x1 convs per unit
    ungrouped = [n.id for n in pointwise if n.value("g") == 1]
    if g == 1:
        assert len(ungrouped) == len(pointwise)
    else:
        assert ungrouped == ["stage2.down_unit.branch.conv1"]
        assert all(n.value("g") == g for n in pointwise[1:])
    # every unit shuffles g groups after its first 1x1 conv (and its ReLU)
    shuffles = [n for n in network.nodes() if n.op == "shuffle"]
    assert len(shuffles) == 16 and {n.value("g") for n in shuffles} == {g}
    assert all(n.inputs[0].op == "relu" for n in shuffles)


def test_other_group_counts_are_refused():
    with pytest.raises(NetdslError, match="positive integer, got 0"):
        shufflenet(5)
