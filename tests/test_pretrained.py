"""`netdsl compile --target torch --weights SOURCE`: build_model(pretrained=True) loads them.

The weights are random ones saved to local files here (a .pt, a checkpoint, a safetensors
file); nothing downloads. The model files run in their own process with netdsl made
unimportable: the code that pairs the weights by order is in the file itself. The
torchvision source, with its download replaced, is in test_pretrained_torchvision.py,
the Keras conversion in test_pretrained_keras.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

from netdsl.cli import main

NETWORK = "resnet_cifar"  # convolutions, BatchNorm (with running statistics) and an fc

# runs MODEL.py's build_model(pretrained=...) in a process where netdsl cannot be imported,
# and writes its state_dict to argv[3] (or the error it raised, to stdout)
RUN = r"""
import sys
sys.modules["netdsl"] = None  # the model file must not need netdsl
import importlib, json, torch
sys.path.insert(0, sys.argv[1])
model_module = importlib.import_module(sys.argv[2])
try:
    model = model_module.build_model(pretrained=json.loads(sys.argv[4]))
except (RuntimeError, ValueError) as e:
    print(json.dumps({"error": str(e)}))
    sys.exit(3)
torch.save(model.state_dict(), sys.argv[3])
print(json.dumps({"ok": True}))
"""


def compile_(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["compile", *argv])
    return code, err.getvalue()


def random_weights() -> dict:
    """A state_dict of the zoo network with every tensor random."""
    from netdsl.api import load

    state = load(NETWORK).to_torch().state_dict()
    torch.manual_seed(7)
    return {
        k: torch.rand_like(v) + 0.5 if v.is_floating_point() else v + 3 for k, v in state.items()
    }


def run_model(folder, pretrained: bool = True) -> tuple[int, dict]:
    """build_model(pretrained=...) in its own process: (exit status, its state_dict or the
    error it raised)."""
    out = folder / "loaded.pt"
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(folder), "model", str(out), json.dumps(pretrained)],
        capture_output=True,
        text=True,
        cwd=folder.parent,  # not the model's folder: relative paths are the file's
    )
    if done.returncode == 0:
        return 0, torch.load(out)
    assert done.returncode == 3, done.stderr
    return 3, json.loads(done.stdout)


def assert_same(got: dict, expected: dict) -> None:
    """Tensor for tensor, by order (the generated model names its entries its own way)."""
    assert len(got) == len(expected)
    for (name, a), (ref_name, b) in zip(got.items(), expected.items()):
        assert a.shape == b.shape, (name, ref_name)
        assert torch.equal(a, b), (name, ref_name)


@pytest.mark.slow
@pytest.mark.parametrize("form", ["pt", "checkpoint", "safetensors"])
def test_local_weights_load_tensor_for_tensor(tmp_path, form):
    weights_dir, model_dir = tmp_path / "weights", tmp_path / "model"
    weights_dir.mkdir()
    model_dir.mkdir()
    state = random_weights()
    if form == "safetensors":
        from safetensors.torch import save_file

        path = weights_dir / "w.safetensors"
        save_file(state, str(path))
    else:
        path = weights_dir / "w.pt"
        torch.save({"model": state, "epoch": 3} if form == "checkpoint" else state, path)
    code, err = compile_(
        NETWORK, "--target", "torch", "-o", str(model_dir / "model.py"), "--weights", str(path)
    )
    assert code == 0, err
    text = (model_dir / "model.py").read_text()
    assert 'PRETRAINED = "../weights/' in text  # relative to the model file
    status, loaded = run_model(model_dir)
    assert status == 0, loaded
    assert_same(loaded, state)
    # pretrained=False keeps the initial weights
    status, initial = run_model(model_dir, pretrained=False)
    assert status == 0
    assert not torch.equal(next(iter(initial.values())), next(iter(state.values())))


def test_without_weights_the_file_has_no_pretrained_keyword(tmp_path):
    code, err = compile_(NETWORK, "--target", "torch", "-o", str(tmp_path / "model.py"))
    assert code == 0, err
    text = (tmp_path / "model.py").read_text()
    assert "pretrained" not in text and "PRETRAINED" not in text
    assert "load_by_order" not in text


@pytest.mark.slow
def test_the_weights_file_must_fit(tmp_path):
    """A state_dict of another network: the model file says where the orders part."""
    from netdsl.api import load

    path = tmp_path / "other.pt"
    torch.save(load("lenet5").to_torch().state_dict(), path)
    code, err = compile_(
        NETWORK, "--target", "torch", "-o", str(tmp_path / "model.py"), "--weights", str(path)
    )
    assert code == 0, err
    status, result = run_model(tmp_path)
    assert status == 3
    assert result["error"].startswith("entry 0: the model's ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--weights", "torchvision:"], "--weights torchvision:: expected torchvision:NAME"),
        (["--weights", "timm:resnet18"], "expected torchvision:NAME, pytorchcv:NAME or a"),
        (["--weights", "missing.pt"], "--weights missing.pt: no such file"),
        (["--weights", "weights.npz"], "--weights weights.npz: expected torchvision:NAME"),
    ],
)
def test_bad_sources_are_user_errors(tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, err = compile_(NETWORK, "--target", "torch", "-o", "model.py", *argv)
    assert code == 1
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "model.py").exists()


def test_keras_weights_need_an_output_file():
    code, err = compile_(NETWORK, "--target", "keras", "--weights", "torchvision:resnet18")
    assert code == 1
    assert "--target keras --weights writes the converted weights beside the model" in err


@pytest.mark.slow
def test_torchvision_source_without_torchvision_says_so(tmp_path):
    """The main environment has no torchvision: the model file's message says to install it
    (compiling needs no torchvision: the weights are fetched when the model is built)."""
    pytest.importorskip("torch")
    if subprocess.run([sys.executable, "-c", "import torchvision"]).returncode == 0:
        pytest.skip("torchvision imports here")
    code, err = compile_(
        NETWORK,
        "--target",
        "torch",
        "-o",
        str(tmp_path / "model.py"),
        "--weights",
        "torchvision:resnet18",
    )
    assert code == 0, err
    assert 'PRETRAINED = "torchvision:resnet18"' in (tmp_path / "model.py").read_text()
    status, result = run_model(tmp_path)
    assert status == 3
    assert result["error"] == (
        "the pretrained weights are torchvision's resnet18: install torchvision "
        "(pip install torchvision) to load them"
    )


def test_to_stdout_a_file_path_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"w": torch.zeros(1)}, tmp_path / "w.pt")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["compile", NETWORK, "--target", "torch", "--weights", "w.pt"]) == 0
    assert f"PRETRAINED = {json.dumps(str((tmp_path / 'w.pt').resolve()))}" in out.getvalue()


def test_generated_file_passes_ruff(tmp_path):
    import shutil

    exe = shutil.which("ruff")
    if exe is None:
        pytest.skip("ruff is not installed")
    torch.save({"w": torch.zeros(1)}, tmp_path / "w.pt")
    code, err = compile_(
        NETWORK,
        "--target",
        "torch",
        "-o",
        str(tmp_path / "model.py"),
        "--weights",
        str(tmp_path / "w.pt"),
    )
    assert code == 0, err
    for args in (["check"], ["format", "--check", "--diff"]):
        done = subprocess.run(
            [exe, *args, "--isolated", str(tmp_path / "model.py")], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_runtime_copy_is_the_library_function():
    """netdsl.weights.load_by_order is the function model files copy (one implementation)."""
    from netdsl import weights
    from netdsl.runtime import by_order

    assert weights.load_by_order is by_order.load_by_order
    assert (ROOT / "netdsl" / "runtime" / "by_order.py").is_file()


@pytest.mark.slow
def test_safetensors_with_other_names_is_refused(tmp_path):
    """safetensors stores tensors sorted by name: no order to pair by, so names must match."""
    from safetensors.torch import save_file

    state = {f"other.{k}": v for k, v in random_weights().items()}
    save_file(state, str(tmp_path / "w.safetensors"))
    code, err = compile_(
        NETWORK, "--target", "torch", "-o", str(tmp_path / "model.py"),
        "--weights", str(tmp_path / "w.safetensors"),
    )  # fmt: skip
    assert code == 0, err
    status, result = run_model(tmp_path)
    assert status == 3
    assert "w.safetensors is a safetensors file, which keeps no order" in result["error"]
