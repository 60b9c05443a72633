"""Paper facts of architectures/regnet.net and architectures/convnext.net (issue #16).

The expected values were printed by torchvision 0.29.1 (.ci/venv-torchvision):
`BlockParams.from_init_params(...)` for the RegNetY settings, the `stochastic_depth.p` of
convnext_tiny's 18 CNBlocks, and the parameter counts of the builders.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from netdsl import compile_file
from netdsl.compiler import parse_param


def value(x):
    """The number of a compiled attribute (a Num keeps the expression it came from)."""
    return getattr(x, "value", x)


ARCHITECTURES = Path(__file__).resolve().parent.parent / "architectures"
REGNET = ARCHITECTURES / "regnet.net"
CONVNEXT = ARCHITECTURES / "convnext.net"


def regnet_stages(params: dict | None = None):
    """(stage widths, stage depths, groups of each 3x3 conv) read off the compiled graph."""
    net = compile_file(REGNET, params=params or {})
    blocks: dict[int, set[int]] = {}
    widths: dict[int, int] = {}
    groups: dict[int, set[int]] = {}
    for node in net.nodes():
        m = re.match(r"stages\.(\d+)\.y_blocks\.(\d+)\.", node.id)
        if not m:
            continue
        stage, block = int(m[1]), int(m[2])
        blocks.setdefault(stage, set()).add(block)
        if node.op == "add":
            widths[stage] = value(node.out_shape[0])
        if node.op == "conv" and node.id.endswith("conv_bn2.conv"):
            groups.setdefault(stage, set()).add(value(node.attrs["g"]))
    order = sorted(blocks)
    assert order == list(range(len(order)))
    return (
        [widths[s] for s in order],
        [len(blocks[s]) for s in order],
        [groups[s] for s in order],
    )


def test_regnet_y_400mf_stages_equal_torchvision_block_params():
    # BlockParams.from_init_params(depth=16, w_0=48, w_a=27.89, w_m=2.09, group_width=8,
    # se_ratio=0.25): widths [48, 104, 208, 440], depths [1, 3, 6, 6], group widths 8
    widths, depths, groups = regnet_stages()
    assert widths == [48, 104, 208, 440]
    assert depths == [1, 3, 6, 6]
    assert groups == [{w // 8} for w in widths]


def test_regnet_widths_and_depths_are_computed_not_copied():
    """No stage width or depth of regnet_y_400mf is written in the file's code (only in
    comments): they come from the quantized linear rule and its parameters."""
    code = "\n".join(
        line.split("#", 1)[0] for line in REGNET.read_text(encoding="utf-8").splitlines()
    )
    for literal in ("104", "208", "440", "(1, 3, 6, 6)"):
        assert literal not in code
    assert "log(" in code and "**" in code and "round(" in code


@pytest.mark.parametrize(
    "settings, widths, depths, params",
    [
        # regnet_y_800mf: [64, 144, 320, 784] [1, 3, 8, 2] (56 adjusted to 64 for groups of 16)
        ("depth=14 w0=56 wa=38.84 wm=2.4 gw=16", [64, 144, 320, 784], [1, 3, 8, 2], 6432512),
        # regnet_y_1_6gf
        ("depth=27 w0=48 wa=20.71 wm=2.65 gw=24", [48, 120, 336, 888], [2, 6, 17, 2], 11202430),
        # regnet_y_3_2gf (80 adjusted to 72 for groups of 24)
        ("depth=21 w0=80 wa=42.63 wm=2.66 gw=24", [72, 216, 576, 1512], [2, 5, 13, 1], 19436338),
        # regnet_y_8gf
        ("depth=17 w0=192 wa=76.82 wm=2.19 gw=56", [224, 448, 896, 2016], [2, 4, 10, 1], 39381472),
    ],
    ids=["regnet_y_800mf", "regnet_y_1_6gf", "regnet_y_3_2gf", "regnet_y_8gf"],
)
def test_other_regnet_y_settings_follow_the_same_rule(settings, widths, depths, params):
    values = dict(parse_param(p) for p in settings.split())
    got_widths, got_depths, groups = regnet_stages(values)
    assert (got_widths, got_depths) == (widths, depths)
    gw = values["gw"].value
    assert groups == [{w // gw} for w in widths]
    assert compile_file(REGNET, params=values).total_params == params


def test_regnet_se_squeezes_the_blocks_input_width():
    """torchvision's SqueezeExcitation squeezes to round(0.25 * width_in), the block's input."""
    net = compile_file(REGNET)
    squeeze = {
        n.id.split(".se.")[0]: value(n.out_shape[0])
        for n in net.nodes()
        if n.op == "conv" and ".se." in n.id and n.id.endswith("conv1")
    }
    assert squeeze["stages.0.y_blocks.0"] == 8  # 0.25 * 32 (the stem)
    assert squeeze["stages.1.y_blocks.0"] == 12  # 0.25 * 48
    assert squeeze["stages.1.y_blocks.1"] == 26  # 0.25 * 104
    assert squeeze["stages.3.y_blocks.0"] == 52  # 0.25 * 208
    assert squeeze["stages.3.y_blocks.5"] == 110  # 0.25 * 440


def test_convnext_drop_path_rates_equal_torchvision():
    # [b.stochastic_depth.p for b in convnext_tiny's CNBlocks]: 0.1 * k / 17, k = 0 .. 17
    net = compile_file(CONVNEXT)
    rates = [value(n.attrs["p"]) for n in net.nodes() if n.op == "drop_path"]
    assert len(rates) == 18
    assert rates == [0.1 * k / (18 - 1.0) for k in range(18)]  # exactly, as torch computes


def test_convnext_block_layers():
    net = compile_file(CONVNEXT)
    scales = [n for n in net.nodes() if n.op == "layer_scale"]
    assert len(scales) == 18 and all(value(n.attrs["init"]) == 1e-6 for n in scales)
    fcs = [n for n in net.nodes() if n.op == "pointwise_fc"]
    assert [value(n.out_shape[0]) for n in fcs[:2]] == [384, 96]
    # a Linear at every position of 56x56: 96 * 384 * 56 * 56 MACs
    assert fcs[0].macs == 96 * 384 * 56 * 56
    norms = [n for n in net.nodes() if n.op == "layernorm"]
    assert len(norms) == 18 + 3 + 2 and all(value(n.attrs["eps"]) == 1e-6 for n in norms)


def test_convnext_small_by_parameter():
    # torchvision.models.convnext_small(): 50,223,688 params (8,683,712,256 MACs by
    # torch.utils.flop_counter / 2 at 3x224x224)
    params = dict(parse_param(p) for p in ("depths=3x3x27x3", "drop_path=0.4"))
    net = compile_file(CONVNEXT, params=params)
    assert (net.total_params, net.total_macs) == (50223688, 8683712256)
