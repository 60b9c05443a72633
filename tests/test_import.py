"""`netdsl import` on small hand-written torch.nn models (the main environment: torch only).

What a user relies on: the recovered .net reads like a hand-written one (one parameterised
block per module class, repeats, a conditional shortcut, stages), it compiles, the source's
weights load into the generated model by order and give the same outputs, and what netdsl
cannot express is refused with the op and the module path. torchvision's models are in
test_import_torch.py.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT, need

# a small ResNet, written the way torchvision writes one (a class per unit, a downsample
# branch only where the shapes change, stages as Sequentials); written to a file so that
# `netdsl import tinynets:TinyResNet(...)` can import it by reference
TINYNETS = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Unit(nn.Module):
        def __init__(self, cin, c, stride=1):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, c, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c)
            self.downsample = None
            if stride != 1 or cin != c:
                self.downsample = nn.Sequential(
                    nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c)
                )

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            out += identity
            return self.relu(out)


    class TinyResNet(nn.Module):
        def __init__(self, classes=10, widths=(8, 16, 32), depth=3):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False),
                                      nn.BatchNorm2d(widths[0]), nn.ReLU())
            stages, cin = [], widths[0]
            for i, c in enumerate(widths):
                units = [Unit(cin, c, 1 if i == 0 else 2)]
                units += [Unit(c, c) for _ in range(depth - 1)]
                stages.append(nn.Sequential(*units))
                cin = c
            self.stages = nn.Sequential(*stages)
            self.fc = nn.Linear(widths[-1], classes)

        def forward(self, x):
            x = self.stages(self.stem(x))
            x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
            return self.fc(x)


    class WithLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Module()
            self.encoder.rnn = nn.LSTM(16, 16)
            self.head = nn.Linear(16, 2)

        def forward(self, x):
            return self.head(self.encoder.rnn(x)[0])
    """
)


@pytest.fixture
def tinynets(tmp_path, monkeypatch):
    (tmp_path / "tinynets.py").write_text(TINYNETS)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("tinynets", None)
    import tinynets

    yield tinynets
    sys.modules.pop("tinynets", None)


def imported_text(model, shape) -> str:
    from netdsl.importer.recover import recover
    from netdsl.importer.torch_frontend import read

    return recover(read(model, shape))


def test_a_tiny_resnet_becomes_blocks_a_conditional_shortcut_and_stages(tinynets):
    need("torch")
    text = imported_text(tinynets.TinyResNet(), (3, 16, 16))
    # one block for the 9 instances of Unit: widths and strides are its parameters, and
    # the downsample branch some instances have is a conditional
    assert "block unit(c, s=1) =" in text
    assert "(if s == 1 and in.c == c then id else conv c k=1 s=s bias=false + bn)" in text
    # the three stages: one block, the first unit then a repeat of the others
    assert "block unit_stage(c, s=2) = unit(c, s=s) + [unit(c)]*2" in text
    assert "+ unit_stage(8, s=1)\n    + unit_stage(16)\n    + unit_stage(32)\n" in text
    assert text.startswith("# tiny_res_net: imported from TinyResNet\n")


@pytest.mark.slow
def test_the_weights_load_by_order_and_give_the_same_outputs(tinynets):
    need("torch")
    from netdsl.importer.roundtrip import roundtrip

    result = roundtrip(tinynets.TinyResNet(classes=7), (3, 16, 16))
    assert result.error <= 1e-5
    assert "network tiny_res_net(classes=7):" in result.text


def test_identical_consecutive_units_become_a_repeat(tinynets):
    need("torch")
    # one stage whose units keep the width: four equal instances, one block without
    # parameters, called four times
    text = imported_text(tinynets.TinyResNet(widths=(8,), depth=4), (3, 8, 8))
    assert "block unit =\n" in text
    assert "    + [unit]*4\n" in text


def test_an_unsupported_layer_names_the_op_and_the_module_path(tinynets):
    need("torch")
    from netdsl.errors import NetdslError
    from netdsl.importer.torch_frontend import read

    with pytest.raises(NetdslError) as e:
        read(tinynets.WithLSTM(), (16,))
    assert e.value.message == (
        "cannot import torch.nn.LSTM at encoder.rnn: netdsl has no recurrent layers"
    )


def test_a_reference_that_is_not_a_module_or_call_is_refused():
    from netdsl.errors import NetdslError
    from netdsl.importer.torch_frontend import read

    with pytest.raises(NetdslError, match="is not NAME or NAME\\(args\\)"):
        read("os:path + 1")
    with pytest.raises(NetdslError, match="arguments must be Python literals"):
        read("collections:OrderedDict(__import__('os'))")


@pytest.mark.slow
def test_the_command_writes_a_file_that_checks(tinynets, tmp_path):
    need("torch")
    out = tmp_path / "tiny.net"
    env_path = f"{tmp_path}:{ROOT}"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "netdsl",
            "import",
            "tinynets:TinyResNet(classes=5)",
            "--input",
            "3x32x32",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": env_path, "PATH": ""},
    )
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "#   netdsl import tinynets:TinyResNet(classes=5) --input 3x32x32\n" in text
    assert "input 3x32x32" in text and "(classes=5):" in text
    check = subprocess.run(
        [sys.executable, "-m", "netdsl", "check", str(out)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path, "PATH": ""},
    )
    assert check.returncode == 0 and "ok: tiny_res_net" in check.stdout
    out.write_text("# my edits\n" + text)
    again = subprocess.run(
        [sys.executable, "-m", "netdsl", "import", "tinynets:TinyResNet", "-o", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": env_path, "PATH": ""},
    )
    assert again.returncode == 1
    assert again.stderr == f"netdsl: {out} exists; use --force to replace it\n"
    assert out.read_text().startswith("# my edits\n")  # an imported file is the user's
    bad = subprocess.run(
        [sys.executable, "-m", "netdsl", "import", "tinynets:WithLSTM", "--input", "16"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": env_path, "PATH": ""},
    )
    assert bad.returncode == 1
    assert "cannot import torch.nn.LSTM at encoder.rnn" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.slow
def test_a_torch_export_program_imports_like_the_module(tinynets, tmp_path):
    torch = need("torch")
    model = tinynets.TinyResNet().eval()
    program = torch.export.export(model, (torch.randn(1, 3, 16, 16),))
    torch.export.save(program, tmp_path / "tiny.pt2")
    from_module = imported_text(model, (3, 16, 16))
    from_program = imported_text(str(tmp_path / "tiny.pt2"), None)
    body = from_module[from_module.index("block unit") :]
    assert body.replace("tiny_res_net", "tiny") == from_program[from_program.index("block unit") :]


def test_without_classes_blocks_group_by_structure(tinynets):
    """ONNX scopes and Keras name prefixes carry no classes: modules of one structure still
    become one block, named after the scope, with the conditional shortcut."""
    need("torch")
    from netdsl.importer.command import check
    from netdsl.importer.recover import recover
    from netdsl.importer.torch_frontend import read

    imported = read(tinynets.TinyResNet(), (3, 16, 16))
    for module in imported.modules.values():
        module.kind = None
    text = recover(imported)
    check(text)
    assert "block stages_unit(c, s=1) =" in text
    assert "(if s == 1 and in.c == c then id else downsample))" in text
    assert "block downsample = conv (in.c * 2) k=1 s=2 bias=false + bn" in text
