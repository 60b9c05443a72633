"""ShuffleNet V2 (architectures/shufflenet_v2.net) against its paper's Table 5, for every width.

Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design" (ECCV
2018), Table 5: Conv1 (3x3/2, 24) and MaxPool (3x3/2) give 56x56x24; Stages 2, 3 and 4 repeat
one stride-2 unit and 3, 7 and 3 stride-1 units (4, 8, 4 in all) on 28x28, 14x14 and 7x7 maps;
their output channels are 48/96/192, 116/232/464, 176/352/704 and 244/488/976 for widths 0.5x,
1x, 1.5x and 2x, then Conv5 (1x1) to 1024 (2048 at 2x), GlobalPool and FC. A stride-1 unit
splits the channels in two halves (Fig. 3(c)): the first passes unchanged, the second goes
through the branch; a stride-2 unit (Fig. 3(d)) feeds the whole input to both branches.
torchvision's shufflenet_v2_x{0_5,1_0,1_5,2_0} give the figures below (tests/test_zoo.py).
"""

from __future__ import annotations

import pytest
from test_zoo import net, out_shape, scopes

from netdsl.errors import NetdslError

# width -> output channels of Stages 2, 3, 4 and Conv5 (Table 5)
CHANNELS = {
    0.5: (48, 96, 192, 1024),
    1.0: (116, 232, 464, 1024),
    1.5: (176, 352, 704, 1024),
    2.0: (244, 488, 976, 2048),
}
# width -> Table 5's parameters in millions (torchvision's 1,366,792 / 2,278,604 / 3,503,624 /
# 7,393,996, rounded)
PAPER_PARAMS = {0.5: 1.4, 1.0: 2.3, 1.5: 3.5, 2.0: 7.4}
WIDTHS = list(CHANNELS)


def shufflenet(width: float):
    return net("shufflenet_v2", width=width)


def stages(network):
    return [s for s in network.root.children if getattr(s, "block", None) == "stage"]


@pytest.mark.parametrize("width", WIDTHS)
def test_stage_outputs_follow_table_5(width):
    network = shufflenet(width)
    assert [s.id for s in stages(network)] == ["stage2", "stage3", "stage4"]
    assert [out_shape(s) for s in stages(network)] == [
        (c, n, n) for c, n in zip(CHANNELS[width], (28, 14, 7))
    ]
    top = {n.op: n.out_shape for n in network.root.children if not hasattr(n, "block")}
    assert top["maxpool"] == (24, 56, 56)
    assert (top["gap"], top["fc"]) == ((CHANNELS[width][3], 1, 1), (1000,))
    convs = [n.out_shape for n in network.root.children if getattr(n, "op", None) == "conv"]
    assert convs == [(24, 112, 112), (CHANNELS[width][3], 7, 7)]  # Conv1, Conv5


@pytest.mark.parametrize("width", WIDTHS)
def test_stage_repeats_are_4_8_4(width):
    network = shufflenet(width)
    for stage, repeat in zip(stages(network), (4, 8, 4)):
        inside = stage.id + "."
        down = [s for s in scopes(network, "down_unit") if s.id.startswith(inside)]
        units = [s for s in scopes(network, "unit") if s.id.startswith(inside)]
        assert (len(down), len(units)) == (1, repeat - 1)
        (unit,) = down
        _, h, _ = (int(d.value) for d in unit.in_shape)
        assert out_shape(unit) == (out_shape(stage)[0], h // 2, h // 2)


@pytest.mark.parametrize("width", WIDTHS)
def test_a_stride_1_unit_splits_the_channels_in_halves(width):
    network = shufflenet(width)
    c = CHANNELS[width][0]
    unit = next(s for s in scopes(network, "unit") if s.id.startswith("stage2."))
    inside = [n for n in network.nodes() if n.id.startswith(unit.id + ".")]
    chunks = [n for n in inside if n.op == "chunk"]
    assert [(n.value("n"), n.value("i"), n.out_shape[0]) for n in chunks] == [
        (2, 0, c // 2),
        (2, 1, c // 2),
    ]
    assert [n.value("g") for n in inside if n.op == "shuffle"] == [2]
    # the branch keeps c/2 channels: 1x1, 3x3 depthwise (no ReLU after it), 1x1
    assert [n.op for n in inside if n.op in ("conv", "dwconv", "relu")] == [
        "conv",
        "relu",
        "dwconv",
        "conv",
        "relu",
    ]


@pytest.mark.parametrize("width", WIDTHS)
def test_params_round_to_table_5(width):
    network = shufflenet(width)
    assert round(network.total_params / 1e6, 1) == PAPER_PARAMS[width]


def test_other_widths_are_refused():
    with pytest.raises(NetdslError):
        shufflenet(0.75)
