"""Warnings: what `netdsl check` says about programs that check but are probably not meant.

Each warning fires on the habit it names, points at the line to change, stays quiet on the
fixed program and on the designs papers build on purpose (separable convolutions, linear
bottlenecks), and is silenced by `# netdsl: ignore[code]` on its line or by `--no-warn`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netdsl.cli import main
from netdsl.compiler import compile_file
from netdsl.lint import CODES, lint
from netdsl.resources import zoo_dir

HEAD = "network net(classes=10):\n    input 3x32x32\n"


def check(tmp_path: Path, capsys, text: str, *options: str) -> tuple[int, str, str]:
    path = tmp_path / "net.net"
    path.write_text(text, encoding="utf-8")
    status = main(["check", str(path), *options])
    out, err = capsys.readouterr()
    return status, out, err.replace(str(path), "net.net")


def codes(tmp_path: Path, text: str) -> list[tuple[str, int]]:
    path = tmp_path / "codes.net"
    path.write_text(text, encoding="utf-8")
    return [(w.code, w.span.line) for w in lint(compile_file(path))]


def test_the_product_cards_vgg_block_is_a_linear_stack(tmp_path, capsys):
    text = (
        "block vgg(n, c) = [conv3 c]*n + maxpool2\n\n"
        + HEAD
        + "    vgg(2, 16) + gap + fc classes\n"
    )
    status, out, err = check(tmp_path, capsys, text)
    assert status == 0  # a warning is not an error
    assert out.endswith("1 warning\n")
    assert err == (
        "net.net:1:20: warning: each conv3 of this repeat follows the one before with no "
        "nonlinearity between them: two linear layers compose into one linear map "
        "[linear-stack]\n"
        "    block vgg(n, c) = [conv3 c]*n + maxpool2\n"
        "                       ^~~~~~~\n"
        "hint: add an activation between them (e.g. `+ relu`, or `act=relu` on the first layer)\n"
    )
    meant = text.replace("[conv3 c]*n", "[conv3 c act=relu]*n")
    assert codes(tmp_path, meant) == []
    # the standard library's vgg block says it once for the file: `defaults conv act=relu`
    assert codes(tmp_path, "use vgg\n" + HEAD + "    vgg(2, 16) + gap + fc classes\n") == []


@pytest.mark.parametrize(
    "body, expected",
    [
        ("conv3 16 bias=false + bn + conv3 16 + relu + gap + fc classes", [("linear-stack", 3)]),
        ("conv3 16 + relu + conv3 16 + relu + gap + fc classes", []),
        ("conv3 16 + relu + gap + fc 64 + dropout 0.5 + fc classes", [("linear-stack", 3)]),
        ("conv3 16 + relu + gap + fc 64 + relu + fc classes", []),
        # a depthwise conv and the 1x1 after it: the separable convolution, on purpose
        ("conv3 16 + relu + dwconv3 + conv1 32 + relu + gap + fc classes", []),
        # a branch point ends the stack: each path has its own layers
        ("conv3 16 + add(id, relu + conv3 16) + relu + gap + fc classes", []),
    ],
)
def test_linear_stack(tmp_path, body, expected):
    assert codes(tmp_path, HEAD + f"    {body}\n") == expected


def test_a_block_whose_output_is_linear_on_purpose_is_a_linear_bottleneck(tmp_path):
    """MobileNetV2: each block ends in a projection that the next block expands."""
    blocks = (
        "block ir(c) = conv1 64 bias=false + bn + relu6 + dwconv3 bias=false + bn + relu6\n"
        "    + conv1 c bias=false + bn\n"
        "block cbn(c) = conv3 c bias=false + bn\n"
    )
    assert codes(tmp_path, blocks + HEAD + "    ir(16) + ir(24) + relu + gap + fc classes\n") == [
        ("unused-block", 3)
    ]
    # two blocks without a nonlinearity inside: a stack across them is a slip
    program = blocks + HEAD + "    cbn(16) + cbn(16) + relu + ir(8) + relu + gap + fc classes\n"
    assert codes(tmp_path, program) == [("linear-stack", 3)]


def test_bias_before_batchnorm(tmp_path, capsys):
    status, out, err = check(
        tmp_path, capsys, HEAD + "    conv 16 k=3 p=1 + bn + relu + gap + fc classes\n"
    )
    assert status == 0
    assert err.splitlines()[0] == (
        "net.net:3:5: warning: conv has a bias and BatchNorm follows: BatchNorm subtracts each "
        "channel's mean, so the bias cancels and never trains (16 parameters) [bias-before-bn]"
    )
    assert "hint: write `bias=false` on the layer before `bn`" in err
    fixed = HEAD + "    conv 16 k=3 p=1 bias=false + bn + relu + gap + fc classes\n"
    assert codes(tmp_path, fixed) == []
    assert codes(tmp_path, HEAD + "    gap + fc 64 + bn + relu + fc classes\n") == [
        ("bias-before-bn", 3)
    ]


def test_dropout_before_batchnorm(tmp_path):
    program = HEAD + "    conv3 16 bias=false + relu + dropout 0.2 + bn + gap + fc classes\n"
    assert codes(tmp_path, program) == [("dropout-before-bn", 3)]
    moved = HEAD + "    conv3 16 bias=false + bn + relu + gap + dropout 0.2 + fc classes\n"
    assert codes(tmp_path, moved) == []


def test_softmax_output(tmp_path, capsys):
    status, _, err = check(
        tmp_path, capsys, HEAD + "    conv3 16 act=relu + gap + fc classes + softmax\n"
    )
    assert status == 0
    assert err.startswith("net.net:3:44: warning: the network ends in softmax, and cross-entropy")
    assert "[softmax-output]" in err
    # softmax inside the network (attention weights, a gate) is not the output
    inside = HEAD + "    conv3 16 act=relu + mul(id, gap + conv1 16 + softmax) + gap + fc classes\n"
    assert codes(tmp_path, inside) == []


def test_unused_blocks_and_parameters(tmp_path, capsys):
    program = (
        "block used(c, k=3) = conv c k=k p=(k//2) + relu\n"
        "block helper(c) = conv1 c + relu\n"  # reached through `called`: used
        "block called(c, s) = helper(c) + relu\n"
        "block spare(c) = conv3 c + relu\n"
        "def half(v, unused) = v // 2\n"
        "\n"
        "network net(classes=10, width=16):\n"
        "    input 3x32x32\n"
        "    used(half(32, 0)) + called(8, 1) + gap + fc classes\n"
    )
    assert codes(tmp_path, program) == [
        ("unused-param", 3),  # called(c, s): s
        ("unused-block", 4),
        ("unused-param", 5),
        ("unused-param", 7),  # width
    ]
    _, _, err = check(tmp_path, capsys, program)
    assert (
        "net.net:4:7: warning: block 'spare' is defined but no network of this file calls it" in err
    )
    assert "net.net:7:25: warning: parameter 'width' of network 'net' is never read" in err


def test_a_default_that_reads_another_parameter_reads_it(tmp_path):
    program = "block b(c, m=(c * 2)) = conv3 m + relu\n" + HEAD + "    b(8) + gap + fc classes\n"
    assert codes(tmp_path, program) == []


def test_ignore_comments_and_no_warn(tmp_path, capsys):
    line = "    conv 16 k=3 p=1 + bn + relu + dropout 0.2 + bn + gap + fc classes"
    both = [("bias-before-bn", 3), ("dropout-before-bn", 3)]
    assert codes(tmp_path, HEAD + line + "\n") == both
    assert codes(tmp_path, HEAD + line + "  # netdsl: ignore[bias-before-bn]\n") == both[1:]
    assert (
        codes(tmp_path, HEAD + line + "  # netdsl: ignore[bias-before-bn, dropout-before-bn]\n")
        == []
    )
    assert codes(tmp_path, HEAD + line + "  # netdsl: ignore\n") == []
    assert codes(tmp_path, HEAD + line + "  # netdsl: ignore[linear-stack]\n") == both
    status, out, err = check(tmp_path, capsys, HEAD + line + "\n", "--no-warn")
    assert (status, err) == (0, "")
    assert "warning" not in out


def test_every_code_is_documented():
    doc = (Path(__file__).parents[1] / "docs" / "editors.md").read_text(encoding="utf-8")
    for code in CODES:
        assert f"`{code}`" in doc, code


@pytest.mark.slow
def test_the_zoo_has_no_warnings():
    """Every zoo network is as its reference builds it; where a reference keeps a habit
    (torchvision's VGG-BN conv biases), its line says so with an ignore comment."""
    found = {}
    for path in sorted(zoo_dir().glob("*.net")):
        warnings = lint(compile_file(path))
        if warnings:
            found[path.name] = [w.format() for w in warnings]
    assert found == {}
