"""`netdsl explain`: the lecture notes' arithmetic, checked against numbers computed here."""

from __future__ import annotations

import pytest
from conftest import ARCHITECTURES, compile_text

from netdsl import compile_file
from netdsl.analysis import analyze
from netdsl.cli import main
from netdsl.explain import explain

ALEXNET = """
# AlexNet, one tower, as in the lecture notes (227x227 input)
network alexnet(classes=1000):
    input 3x227x227
    conv 96 k=11 s=4 p=0 + relu + lrn + maxpool 3 s=2
    + conv 256 k=5 p=2 + relu + lrn + maxpool 3 s=2
    + conv3 384 + relu + conv3 384 + relu + conv3 256 + relu + maxpool 3 s=2
    + flatten + dropout + fc 4096 + relu + dropout + fc 4096 + relu + fc classes
"""


@pytest.fixture(scope="module")
def alexnet():
    return compile_text(ALEXNET)


def test_alexnet_first_layers_as_in_the_notes(alexnet):
    text = explain(alexnet)
    assert "(227 - 11)/4 + 1 = 55" in text
    assert "96 x 11 x 11 x 3 + 96 = 34,944" in text
    assert "96 x 55 x 55 x 11 x 11 x 3 = 105,415,200" in text  # MACs
    assert "(55 - 3)/2 + 1 = 27" in text  # maxpool1
    assert "256 x 5 x 5 x 96 + 256 = 614,656" in text  # conv2
    assert "27 - 5 + 2*2 + 1 = 27" in text  # stride 1, "same" padding
    assert "4096 x 9216 + 4096 = 37,752,832" in text  # fc6
    assert "features = 256 x 6 x 6 = 9,216" in text


def test_alexnet_receptive_field_and_memory(alexnet):
    a = analyze(alexnet)
    # r = 1 + 10*1 = 11, j = 4; pool: 11 + 2*4 = 19, j = 8; conv2: 19 + 4*8 = 51
    assert a.facts(alexnet.node("conv1")).rf.r == (11, 11)
    assert a.facts(alexnet.node("conv1")).rf.j == (4, 4)
    assert a.facts(alexnet.node("maxpool1")).rf.r == (19, 19)
    assert a.facts(alexnet.node("conv2")).rf.r == (51, 51)
    assert a.facts(alexnet.node("conv1")).memory.new_bytes == 96 * 55 * 55 * 4
    assert a.facts(alexnet.node("relu1")).memory.new_bytes == 0  # in place
    text = explain(alexnet, layer="conv1")
    assert "1 + (11 - 1) x 1 = 11 px, jump 1 x 4 = 4" in text
    assert "96 x 55 x 55 x 4 B = 1,161,600 B" in text


def test_floor_ceil_and_dilation_are_written_out():
    net = compile_text("""
network t:
    input 3x224x224
    conv 64 k=7 s=2 p=3 + maxpool 3 s=2 ceil=true + conv 8 k=3 d=2 p=2
    + conv 8 k=3 g=4 p=1
""")
    text = explain(net)
    assert "floor((224 - 7 + 2*3)/2) + 1 = floor(223/2) + 1 = 112" in text
    assert "ceil((112 - 3)/2) + 1 = ceil(109/2) + 1 = 56" in text
    assert "56 - 5 + 2*2 + 1 = 56   (k_eff = 2*(3 - 1) + 1 = 5)" in text
    assert "8 x 3 x 3 x 8/4 + 8 = 152" in text  # grouped conv: c_in/g


def test_ceil_mode_drops_a_window_that_starts_in_the_padding():
    # PyTorch: MaxPool2d(2, 2, padding=1, ceil_mode=True) maps 5x5 to 3x3, not 4x4
    net = compile_text("network t:\n    input 1x5x5\n    maxpool 2 s=2 p=1 ceil=true\n")
    assert net.nodes()[-1].out_shape == (1, 3, 3)
    text = explain(net)
    assert "ceil((5 - 2 + 2*1)/2) + 1 = ceil(5/2) + 1 = 4, minus 1" in text
    assert text.count("= 3") >= 1


def _vgg16_expected():
    """Activations of torchvision's VGG-16 at 224x224, from its configuration table."""
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    c, size = 3, 224
    values = c * size * size  # the input
    indices = 0
    for v in cfg:
        if v == "M":
            size //= 2
            indices += c * size * size
        else:
            c = v
        values += c * size * size  # conv output (its ReLU runs in place) or pool output
    values += 512 * 7 * 7  # adaptive average pool (flatten is a view)
    values += 4096 + 4096 + 1000  # fc6, fc7, fc8 (ReLU in place, dropout the identity)
    forward = 4 * values
    training = 2 * forward + 8 * indices + 1 * (4096 + 4096)  # int64 indices, bool masks
    return forward, training


def test_vgg16_activation_memory():
    net = compile_file(ARCHITECTURES / "vgg16.net")
    forward, training = _vgg16_expected()
    a = analyze(net)
    assert a.forward_bytes == forward == 61_050_784  # 15.3 M values, ~58 MiB
    assert a.train_bytes == training
    text = explain(net)
    assert f"forward {forward:,} B (58.2 MiB)" in text
    assert f"training estimate {training:,} B" in text


def _resnet50_receptive_field():
    """r_out = r_in + (k - 1) j_in, j_out = j_in s along torchvision's ResNet-50 main path."""
    r, j = 1, 1
    layers = [(7, 2), (3, 2)]  # stem: conv 7x7/2, max pool 3x3/2
    for blocks, stride in ((3, 1), (4, 2), (6, 2), (3, 2)):
        for b in range(blocks):
            # 1x1, 3x3 (carries the stride in v1.5), 1x1; the shortcut's RF is smaller
            layers += [(1, 1), (3, stride if b == 0 else 1), (1, 1)]
    for k, s in layers:
        r, j = r + (k - 1) * j, j * s
    return r, j


def test_resnet50_receptive_field_at_the_last_stage():
    net = compile_file(ARCHITECTURES / "resnet50.net")
    r, j = _resnet50_receptive_field()
    assert (r, j) == (427, 32)
    a = analyze(net)
    stage4 = next(s for s in net.root.children if getattr(s, "id", "") == "stage4")
    rf = a.output_rf(stage4)
    assert rf.r == (r, r) and rf.j == (j, j)
    text = explain(net, depth=0)
    assert f"RF {r} px, jump {j}" in text


def test_totals_per_block_and_depth():
    net = compile_file(ARCHITECTURES / "resnet50.net")
    a = analyze(net)
    stage2 = next(s for s in net.root.children if getattr(s, "id", "") == "stage2")
    assert a.totals(stage2).params == stage2.params
    text = explain(net, depth=1)
    assert f"= stage2 total: {stage2.params:,} params" in text
    assert "stage2.bottlenecks: [bottleneck(128)] x 3" in text
    assert f"params       {net.total_params:,}" in text


def test_convnext_block_arithmetic_per_position():
    net = compile_text(
        "network cnx:\n    input 96x56x56\n"
        "    dwconv7 + layernorm eps=1e-6 + pointwise_fc 384 + gelu + pointwise_fc 96\n"
        "    + layer_scale + groupnorm 8 + instancenorm affine=true\n"
    )
    text = explain(net)
    assert "C = 384 output features at each of the 56x56 positions (from 96)" in text
    assert "n_out x C + n_out" in text and "384 x 96 + 384 = 37,248" in text
    assert "n_out x C x H x W (at each position)" in text
    assert "384 x 96 x 56 x 56 = 115,605,504" in text  # flop_counter's count / 2
    assert "C (gamma)" in text
    assert "2 x 96 = 192" in text  # groupnorm's and instancenorm's gamma, beta


def test_markdown_handout(alexnet):
    md = explain(alexnet, markdown=True)
    assert md.startswith("# alexnet")
    assert "| Layer | Op | Output |" in md
    assert "96 × 11 × 11 × 3 + 96 = 34,944" in md
    assert "(227 - 11)/4 + 1 = 55" in md
    assert "## Totals" in md


def test_cli(tmp_path, capsys):
    path = tmp_path / "alexnet.net"
    path.write_text(ALEXNET)
    assert main(["explain", str(path), "--layer", "conv1"]) == 0
    out = capsys.readouterr().out
    assert "96 x 11 x 11 x 3 + 96 = 34,944" in out and "conv2" not in out
    assert main(["explain", str(path), "--markdown"]) == 0
    assert "| conv1 |" in capsys.readouterr().out
    assert main(["explain", str(path), "--layer", "conv9"]) == 1
    err = capsys.readouterr().err
    assert "no layer or block 'conv9'" in err and "did you mean" in err
    assert main(["explain", str(path), "--depth", "-1"]) == 1


@pytest.mark.parametrize("path", sorted(ARCHITECTURES.glob("*.net")), ids=lambda p: p.stem)
def test_every_zoo_network_explains(path):
    net = compile_file(path)
    a = analyze(net)
    assert sum(f.node.params for f in a.layers.values()) == net.total_params
    for facts in a.layers.values():  # every factored count adds up to the layer's own number
        if facts.params is not None:
            assert facts.params.value == facts.node.params
        if facts.macs is not None:
            assert facts.macs.value == facts.node.macs
    text = explain(net, depth=1)
    assert f"{net.total_params:,}" in text
