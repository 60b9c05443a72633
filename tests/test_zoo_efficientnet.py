"""architectures/efficientnet.net against Tan & Le (ICML 2019) and torchvision's efficientnet_b0-b7.

* Table 1 (EfficientNet-B0): a 3x3 conv to 32 channels at 112x112, seven stages of MBConv
  blocks (16, 24, 40, 80, 112, 192, 320 channels; 1, 2, 2, 3, 3, 4, 1 layers; 112, 56, 28, 14,
  14, 7, 7 output maps), a 1x1 conv to 1280, pooling and FC.
* Compound scaling (Sec. 3.3): every variant scales the widths by w (rounded to a multiple of
  8, never down by more than 10%), the layers by d (rounded up) and the resolution to r.
* Stochastic depth: block j of the network's L blocks drops its branch with probability
  0.2 * j / L (torchvision's sd_prob), where it has a residual connection.

The figures of every variant are torchvision 0.29.1's (sum of model.parameters() and
torch.utils.flop_counter / 2 at 3 x r x r, batch 1, in the reference environment); those of
b0, b1, b4 and b7 are also in reference_figures.json.
"""

from __future__ import annotations

import math

import pytest
from test_zoo import FIGURES, input_shape, net, out_shape, scopes

# b -> torchvision's efficientnet_b{b}: input size, params, MACs
TORCHVISION = {
    0: (224, 5_288_548, 385_814_752),
    1: (240, 7_794_184, 686_802_832),
    2: (260, 9_109_994, 993_561_872),
    3: (300, 12_233_232, 1_827_141_392),
    4: (380, 19_341_616, 4_393_771_024),
    5: (456, 30_389_784, 10_266_384_752),
    6: (528, 43_040_704, 19_067_593_536),
    7: (600, 66_347_960, 37_745_884_192),
}
# b -> torchvision's (width_mult, depth_mult), dropout and BatchNorm eps, momentum
COEFFICIENTS = {
    0: (1.0, 1.0, 0.2),
    1: (1.0, 1.1, 0.2),
    2: (1.1, 1.2, 0.3),
    3: (1.2, 1.4, 0.3),
    4: (1.4, 1.8, 0.4),
    5: (1.6, 2.2, 0.4),
    6: (1.8, 2.6, 0.5),
    7: (2.0, 3.1, 0.5),
}
# b -> torchvision's stem channels, stages' (out channels, layers), head channels
STAGES = {
    0: (32, [(16, 1), (24, 2), (40, 2), (80, 3), (112, 3), (192, 4), (320, 1)], 1280),
    1: (32, [(16, 2), (24, 3), (40, 3), (80, 4), (112, 4), (192, 5), (320, 2)], 1280),
    2: (32, [(16, 2), (24, 3), (48, 3), (88, 4), (120, 4), (208, 5), (352, 2)], 1408),
    3: (40, [(24, 2), (32, 3), (48, 3), (96, 5), (136, 5), (232, 6), (384, 2)], 1536),
    4: (48, [(24, 2), (32, 4), (56, 4), (112, 6), (160, 6), (272, 8), (448, 2)], 1792),
    5: (48, [(24, 3), (40, 5), (64, 5), (128, 7), (176, 7), (304, 9), (512, 3)], 2048),
    6: (56, [(32, 3), (40, 6), (72, 6), (144, 8), (200, 8), (344, 11), (576, 3)], 2304),
    7: (64, [(32, 4), (48, 7), (80, 7), (160, 10), (224, 10), (384, 13), (640, 4)], 2560),
}
# Table 1's B0 rows: expansion t, kernel k, stride s (from the resolutions), channels, layers
TABLE_1 = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
           (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]  # fmt: skip


def nodes(network, op: str) -> list:
    return [n for n in network.nodes() if n.op == op]


def num(value) -> float:
    return getattr(value, "value", value)


@pytest.mark.parametrize("b", sorted(TORCHVISION))
def test_every_variant_matches_torchvision_exactly(b):
    size, params, macs = TORCHVISION[b]
    network = net("efficientnet", b=b)
    assert input_shape(network) == [3, size, size]
    assert (network.total_params, network.total_macs) == (params, macs)
    if f"efficientnet_b{b}" in FIGURES["torchvision"]:
        ref = FIGURES["torchvision"][f"efficientnet_b{b}"]
        assert (ref["params"], ref["macs"], ref["input"]) == (params, macs, [3, size, size])


def make_divisible(v: float, d: int = 8) -> int:
    """torchvision's _make_divisible (and the TensorFlow reference's round_filters)."""
    rounded = max(d, int(v + d / 2) // d * d)
    return rounded + d if rounded < 0.9 * v else rounded


@pytest.mark.parametrize("b", sorted(STAGES))
def test_compound_scaling_of_table_1(b):
    """Stem, stages and head follow from Table 1 and the variant's multipliers, as torchvision
    computes them: each stage's width and layers, and where it halves the map."""
    width, depth, _ = COEFFICIENTS[b]
    stem, stages, head = STAGES[b]
    assert make_divisible(32 * width) == stem
    assert [(make_divisible(c * width), math.ceil(n * depth)) for *_, c, n in TABLE_1] == stages
    assert 4 * make_divisible(320 * width) == head
    network = net("efficientnet", b=b)
    size = input_shape(network)[1]
    maps = [-(-size // 2)]  # the stem's stride 2 (padding 1, 3x3: ceil), then each stage's
    for _, _, s, _, _ in TABLE_1:
        maps.append(-(-maps[-1] // s))
    got = [(out_shape(stage)[0], len(scopes_in(stage, "mbconv")), out_shape(stage)[1])
           for stage in scopes(network, "stage")]  # fmt: skip
    assert got == [(c, n, h) for (c, n), h in zip(stages, maps[1:], strict=True)]
    convs = nodes(network, "conv")
    assert (int(num(convs[0].shape[0])), int(num(convs[-1].shape[0]))) == (stem, head)


def scopes_in(scope, block: str) -> list:
    return [s for s in scope.walk() if getattr(s, "block", None) == block]


def test_b0_is_table_1():
    """Table 1's maps: 32x112x112 after the stem, then 16x112x112 ... 320x7x7, 1280x7x7."""
    network = net("efficientnet")
    assert [out_shape(stage) for stage in scopes(network, "stage")] == [
        (16, 112, 112), (24, 56, 56), (40, 28, 28), (80, 14, 14),
        (112, 14, 14), (192, 7, 7), (320, 7, 7),
    ]  # fmt: skip
    blocks = scopes(network, "mbconv")
    assert len(blocks) == 16
    depthwise = [(num(n.attrs["k"]), num(n.attrs["s"])) for n in nodes(network, "dwconv")]
    assert depthwise == [(k, s if i == 0 else 1) for _, k, s, _, n in TABLE_1 for i in range(n)]
    expansions = [num(n.attrs["in_channels"]) // int(num(block.input.shape[0]))
                  for n, block in zip(nodes(network, "dwconv"), blocks, strict=True)]  # fmt: skip
    assert expansions == [t for t, _, _, _, n in TABLE_1 for _ in range(n)]


@pytest.mark.parametrize("b", [0, 1, 7])
def test_drop_path_rates_are_torchvision_rule(b):
    """Block j (from 0) of the L blocks gets stochastic_depth_prob * j / L (0.2), computed by
    the file from the table (each stage's first block is the layers of the stages before it);
    the rate acts where the block is residual (stride 1, same width), as in torchvision."""
    network = net("efficientnet", b=b)
    blocks = scopes(network, "mbconv")
    total = sum(n for _, n in STAGES[b][1])
    assert len(blocks) == total
    rates = [num(block.args["p"]) for block in blocks]
    assert rates == [0.2 * float(j) / total for j in range(total)]  # exactly, not approximately
    residual = [
        block.id for block in blocks
        if num(block.args["s"]) == 1 and int(num(block.input.shape[0])) == num(block.args["c"])
    ]  # fmt: skip
    drops = nodes(network, "drop_path")
    assert [n.id.rsplit(".choice.", 1)[0] for n in drops] == residual
    assert [num(n.attrs["p"]) for n in drops] == [
        0.2 * float(j) / total for j, block in enumerate(blocks) if block.id in residual
    ]


B0_RATES = [0.0, 0.0125, 0.025, 0.037500000000000006, 0.05, 0.0625, 0.07500000000000001,
            0.08750000000000001, 0.1, 0.1125, 0.125, 0.1375, 0.15000000000000002, 0.1625,
            0.17500000000000002, 0.1875]  # fmt: skip


def test_b0_drop_path_rates_are_torchvision_values():
    """The 16 rates of torchvision's efficientnet_b0 (StochasticDepth.p, in order), exactly."""
    network = net("efficientnet")
    assert [num(block.args["p"]) for block in scopes(network, "mbconv")] == B0_RATES


@pytest.mark.parametrize("b", [0, 4, 5, 7])
def test_batchnorm_dropout_and_se(b):
    """BatchNorm as torchvision builds it (B0-B4 PyTorch's defaults, B5-B7 TensorFlow's eps
    1e-3 and momentum 0.01), the classifier's dropout, SE to a quarter of the block's input."""
    network = net("efficientnet", b=b)
    eps, momentum = (1e-3, 0.01) if b >= 5 else (1e-5, 0.1)
    assert {(num(n.attrs["eps"]), num(n.attrs["momentum"])) for n in nodes(network, "bn")} == {
        (eps, momentum)
    }
    assert [num(n.attrs["p"]) for n in nodes(network, "dropout")] == [COEFFICIENTS[b][2]]
    for block in scopes(network, "mbconv"):
        squeeze = next(s for s in block.walk() if getattr(s, "block", None) == "se")
        assert num(squeeze.args["sq"]) == max(1, int(num(block.input.shape[0])) // 4)
    # SiLU after the stem and the head, and in each block after the expansion (not in the
    # first stage's, t = 1), the depthwise conv and inside SE
    blocks, unexpanded = len(scopes(network, "mbconv")), STAGES[b][1][0][1]
    assert not nodes(network, "relu")
    assert len(nodes(network, "silu")) == 2 + 3 * blocks - unexpanded


@pytest.mark.torchvision
@pytest.mark.slow
def test_same_configuration_as_torchvision():
    """torchvision's own configuration of every variant (stages, classifier dropout,
    BatchNorm), and b0's StochasticDepth rates."""
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from torchvision.models.efficientnet import _efficientnet_conf

    for b, (width, depth, dropout) in COEFFICIENTS.items():
        settings, _ = _efficientnet_conf(f"efficientnet_b{b}", width_mult=width, depth_mult=depth)
        assert [(c.out_channels, c.num_layers) for c in settings] == STAGES[b][1]
        assert [(c.expand_ratio, c.kernel, c.stride) for c in settings] == [
            row[:3] for row in TABLE_1
        ]
        with torch.device("meta"):  # the modules without their weights' storage: fast
            model = getattr(torchvision.models, f"efficientnet_b{b}")(weights=None)
        assert model.classifier[0].p == dropout
        norms = {
            (m.eps, m.momentum) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)
        }
        assert norms == {(1e-3, 0.01) if b >= 5 else (1e-5, 0.1)}
    model = torchvision.models.efficientnet_b0(weights=None)
    rates = [m.p for m in model.modules() if isinstance(m, torchvision.ops.StochasticDepth)]
    assert rates == B0_RATES


def test_the_generated_file_has_one_class_per_block():
    """The expansion (`if t != 1 then ... else id`) and the residual conditional are written
    in `__init__`; the drop rates come in from the stages (index(mbconv), count(mbconv))."""
    import re

    from netdsl.emit import get_emitter

    code = get_emitter("torch").emit_model(net("efficientnet"))
    classes = re.findall(r"^class (\w+)\(", code, re.M)
    assert classes == [
        "DropPath",  # the stochastic-depth helper, as torchvision.ops.StochasticDepth
        "Se",
        "MbconvBranch",
        "Mbconv",
        "Stage",
        "MbconvChoice",
        "Efficientnet",
    ]
    assert "this model was generated for" not in code  # (the file keeps its b=0 guard)
    assert "Stage(32, 1, 3, 1, 16, 1, drop_path, 0, 16)" in code
