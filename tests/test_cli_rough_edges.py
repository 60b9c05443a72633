"""The rough edges a new user meets on the command line (issue 22's "Also" list).

A train.py of another model is not replaced silently; a model's demo counts
BatchNorm's running statistics apart, the same way on both targets; an output
format render or export cannot write is a usage error; explain says why the
receptive field at the output can exceed the input; the [torch] extra brings
numpy, without which `import torch` warns.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import ARCHITECTURES, ROOT, need, run_cli

SMALL = "network {name}:\n    input 3x32x32\n    conv3 8 + relu + gap + fc 10\n"
WITH_BN = "network {name}:\n    input 3x32x32\n    conv3 8 + bn + relu + gap + fc 10\n"


def write(folder, name: str, text: str = SMALL) -> str:
    path = folder / f"{name}.net"
    path.write_text(text.format(name=name), encoding="utf-8")
    return str(path)


# ---- compile --train: a train.py belongs to the model it trains -------------------------------


@pytest.fixture
def lenet_folder(tmp_path, monkeypatch):
    """A folder where `lenet.py` and its train.py were compiled."""
    monkeypatch.chdir(tmp_path)
    lenet = write(tmp_path, "lenet")
    assert run_cli_ok("compile", lenet, "--target", "torch", "-o", "lenet.py", "--train")
    return tmp_path


def run_cli_ok(*argv: str) -> bool:
    from netdsl.cli import main

    return main(list(argv)) == 0


def test_train_py_of_another_model_is_not_replaced(lenet_folder, capsys):
    capsys.readouterr()
    before = (lenet_folder / "train.py").read_bytes()
    vgg = write(lenet_folder, "vgg")
    code, out, err = run_cli(capsys, "compile", vgg, "--target", "torch", "-o", "vgg.py", "--train")
    assert (code, out) == (1, "")
    assert err == (
        "netdsl: train.py trains network lenet (lenet.py), not vgg.py; use --force to replace it\n"
        "hint: to keep both, write vgg.py in a folder of its own: mkdir vgg, then -o vgg/vgg.py\n"
    )
    assert (lenet_folder / "train.py").read_bytes() == before
    assert not (lenet_folder / "vgg.py").exists()  # nothing is written


def test_another_model_in_a_folder_is_named_with_the_folder(tmp_path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    lenet, vgg = write(tmp_path, "lenet"), write(tmp_path, "vgg")
    model = str(out_dir / "lenet.py")
    assert run_cli(capsys, "compile", lenet, "--target", "keras", "-o", model, "--train")[0] == 0
    code, _, err = run_cli(
        capsys, "compile", vgg, "--target", "torch", "-o", str(out_dir / "vgg.py"), "--train"
    )
    assert code == 1
    assert err == (
        f"netdsl: {out_dir}/train.py trains network lenet ({out_dir}/lenet.py), not "
        f"{out_dir}/vgg.py; use --force to replace it\n"
        f"hint: to keep both, write {out_dir}/vgg.py in a folder of its own: "
        f"mkdir {out_dir}/vgg, then -o {out_dir}/vgg/vgg.py\n"
    )


def test_train_py_is_replaced_with_force(lenet_folder, capsys):
    vgg = write(lenet_folder, "vgg")
    argv = ("compile", vgg, "--target", "torch", "-o", "vgg.py", "--train", "--force")
    assert run_cli(capsys, *argv) == (0, "wrote vgg.py\nwrote train.py\n", "")
    assert "from vgg import INPUT_SHAPE, build_model" in (lenet_folder / "train.py").read_text()


def test_recompiling_the_same_model_replaces_its_train_py(lenet_folder, capsys):
    # the same model file, even with another network or target: model and train.py go together
    lenet = write(lenet_folder, "lenet", WITH_BN)
    for target in ("torch", "keras"):
        argv = ("compile", lenet, "--target", target, "-o", "lenet.py", "--train")
        assert run_cli(capsys, *argv) == (0, "wrote lenet.py\nwrote train.py\n", "")
    other = write(lenet_folder, "other")
    argv = ("compile", other, "--target", "torch", "-o", "lenet.py", "--train")
    assert run_cli(capsys, *argv)[0] == 0
    assert '"""Train other (lenet.py) with' in (lenet_folder / "train.py").read_text()


def test_train_py_whose_model_is_gone_is_replaced(lenet_folder, capsys):
    (lenet_folder / "lenet.py").unlink()  # that train.py trains nothing any more
    vgg = write(lenet_folder, "vgg")
    argv = ("compile", vgg, "--target", "torch", "-o", "vgg.py", "--train")
    assert run_cli(capsys, *argv) == (0, "wrote vgg.py\nwrote train.py\n", "")


def test_force_is_in_the_usage_and_the_readme(capsys):
    code, out, _ = run_cli(capsys, "compile", "--help")
    assert code == 0
    assert "--force" in out and "or a train.py of another model" in " ".join(out.split())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "[--train] [--force] [--weights SOURCE]` | generate the model" in readme


# ---- the demo counts BatchNorm's statistics apart --------------------------------------------


def emitted(tmp_path, name: str, text: str, target: str) -> str:
    from netdsl import compile_file
    from netdsl.emit import get_emitter

    return get_emitter(target).emit_model(compile_file(write(tmp_path, name, text)))


def test_demo_counts_batchnorm_statistics_only_when_there_are_some(tmp_path):
    for target in ("torch", "keras"):
        with_bn = emitted(tmp_path, "with_bn", WITH_BN, target)
        plain = emitted(tmp_path, "plain", SMALL, target)
        assert "BatchNorm running statistics" in with_bn, target
        assert "statistics" not in plain, target
        assert ("import math" in plain) is False, target  # the Keras demo's math is for BN
    keras_demo = emitted(tmp_path, "with_bn", WITH_BN, "keras").split('if __name__ == "__main__":')
    assert keras_demo[1].splitlines()[4:9] == [
        "    # count_params() includes BatchNorm's moving means and variances (the non-trainable",
        "    # weights); netdsl and PyTorch count them apart from the parameters, as buffers",
        "    statistics = sum(math.prod(w.shape) for w in model.non_trainable_weights)",
        "    params = model.count_params() - statistics",
        '    counts = f"{params:,} parameters + {statistics:,} BatchNorm running statistics"',
    ]


def run_demo(tmp_path, target: str) -> subprocess.CompletedProcess:
    source = emitted(tmp_path, "with_bn", WITH_BN, target)
    (tmp_path / "with_bn.py").write_text(source, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "with_bn.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
        env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


@pytest.mark.slow
def test_torch_demo_prints_netdsl_counts_and_nothing_else(tmp_path):
    need("torch")
    done = run_demo(tmp_path, "torch")
    # 3*9*8 + 8 (conv) + 16 (bn's scale and shift) + 8*10 + 10 (fc); bn's mean and variance
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (
        "WithBn: 330 parameters + 16 BatchNorm running statistics, output (1, 10)\n"
    )


@pytest.mark.slow
def test_keras_demo_prints_the_same_counts(tmp_path):
    need("keras")
    done = run_demo(tmp_path, "keras")
    assert done.returncode == 0, done.stderr
    # Keras' count_params() is 346: the sum of the two
    assert done.stdout.splitlines()[-1] == (
        "with_bn: 330 parameters + 16 BatchNorm running statistics, output (1, 10)"
    )


# ---- render and export: an output format they cannot write is a usage error ---------------------


def test_render_to_an_unsupported_format_is_a_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    net = write(tmp_path, "n")
    code, out, err = run_cli(capsys, "render", net, "-o", str(tmp_path / "n.jpg"))
    assert (code, out) == (2, "")
    assert err.startswith("usage: netdsl render ")
    assert err.splitlines()[-1] == (
        "netdsl render: error: cannot render to '.jpg': choose an output ending in "
        ".dot, .gv, .html, .pdf, .png, .svg"
    )
    assert not (tmp_path / "n.jpg").exists()


def test_export_to_an_unsupported_format_is_a_usage_error(tmp_path, capsys):
    net = write(tmp_path, "n")
    code, out, err = run_cli(capsys, "export", net, "-o", str(tmp_path / "n.pb"))
    assert (code, out) == (2, "")
    assert err.startswith("usage: netdsl export ")
    assert err.splitlines()[-1] == (
        f"netdsl export: error: the exported file must end in .onnx, got {tmp_path / 'n.pb'}"
    )


# ---- explain: why the receptive field at the output can exceed the input ----------------------

WHY = (
    "more than the 224 px input: the fields of units near the border reach into the zero "
    "padding, and 404 px is what the output could see of an unbounded image"
)


def test_explain_says_why_the_output_field_exceeds_the_input(capsys):
    vgg = str(ARCHITECTURES / "vgg16.net")
    code, out, _ = run_cli(capsys, "explain", vgg, "--depth", "0")
    assert code == 0
    lines = out.splitlines()
    at = lines.index("  RF at output 404 px")
    assert lines[at + 1] == "               " + WHY
    code, out, _ = run_cli(capsys, "explain", vgg, "--depth", "0", "--markdown")
    assert f"- **Receptive field at the output:** 404 px, {WHY}\n" in out


def test_explain_explains_only_a_field_wider_than_the_input(tmp_path, capsys):
    net = write(tmp_path, "n")  # one 3x3 conv, then a global pool over the 32x32 grid
    code, out, _ = run_cli(capsys, "explain", net)
    assert code == 0
    lines = out.splitlines()
    at = lines.index("  RF at output 34 px")
    assert lines[at + 1].startswith("               more than the 32 px input: ")
    small = tmp_path / "small.net"
    small.write_text("network small:\n    input 3x32x32\n    conv3 8\n")
    code, out, _ = run_cli(capsys, "explain", str(small))
    lines = out.splitlines()
    at = lines.index("  RF at output 3 px, jump 1")
    assert lines[at + 1].startswith("  activations  ")


# ---- the [torch] extra brings numpy ------------------------------------------------------------


def test_the_torch_extra_installs_numpy():
    """Without numpy, `import torch` itself warns "Failed to initialize NumPy" (torch asks for
    it while importing; it is not a dependency of torch), so the generated model's first run
    would print the warning: the extra that installs torch installs numpy, and README's first
    command installs the extra."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^torch = \["torch>=[\d.]+", "numpy"\]$', pyproject, re.MULTILINE)
    assert 'pip install -e ".[torch]"' in (ROOT / "README.md").read_text(encoding="utf-8")
