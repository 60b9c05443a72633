"""The generated PyTorch training script (`netdsl compile ... --train`).

Runs train.py for real on the CPU: a couple of steps of resnet50 at 64x64,
two processes under torchrun (gloo), an interrupted run resumed from its
checkpoint, and LeNet-5 trained on scikit-learn's digits to >= 95% accuracy.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import ARCHITECTURES, compile_text, need

from netdsl import compile_file
from netdsl.cli import main as netdsl
from netdsl.emit.torch import TorchEmitter
from netdsl.emit.torch_train import train_context
from netdsl.errors import NetdslError

torch = need("torch")


def write(tmp_path, name: str, *extra: str, source: str | None = None):
    """Compile a zoo file (or `source`) with --train into tmp_path; the train.py path."""
    path = ARCHITECTURES / f"{name}.net"
    if source is not None:
        path = tmp_path / f"{name}.net"
        path.write_text(source)
    assert (
        netdsl(
            [
                "compile",
                str(path),
                "--target",
                "torch",
                "-o",
                str(tmp_path / f"{name}.py"),
                "--train",
                "-q",
                *extra,
            ]
        )
        == 0
    )
    return tmp_path / "train.py"


def run(script, *args: str, torchrun: int = 0, timeout: int = 300) -> str:
    """Run train.py (under torchrun with that many processes); its stdout + stderr."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    command = [sys.executable]
    if torchrun:
        command += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={torchrun}"]
    command += [str(script), "--device", "cpu", *args]
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=script.parent, env=env, timeout=timeout
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def saved(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.mark.slow
def test_resnet50_trains_two_steps_at_64x64(tmp_path):
    script = write(tmp_path, "resnet50")
    out = run(
        script,
        "--steps",
        "2",
        "--input-size",
        "64",
        "--batch-size",
        "4",
        "--checkpoint",
        "ckpt/r50.pt",
    )
    assert "resnet50: 25,557,032 parameters; synthetic data" in out
    assert "of 3x64x64; batch 4, sgd lr 0.0015625" in out  # 0.1 * 4 / 256
    assert re.search(r"step 2 loss [\d.]+ acc [\d.]+% \d+ img/s", out), out
    state = saved(tmp_path / "ckpt" / "r50.pt")
    assert (state["step"], state["epoch"], state["batch"]) == (2, 0, 2)
    assert set(state) >= {"model", "optimizer", "scheduler", "scaler", "rng", "args"}
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["r50.pt"]  # no temp files


@pytest.mark.slow
def test_input_size_the_model_cannot_take(tmp_path):
    script = write(tmp_path, "lenet5")
    done = subprocess.run(
        [sys.executable, str(script), "--device", "cpu", "--steps", "1", "--input-size", "64"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert "lenet5 cannot run on 1x64x64 inputs" in done.stderr
    assert "recompile with netdsl's --input 1x64x64" in done.stderr


@pytest.mark.slow
def test_torchrun_two_processes_with_gloo(tmp_path):
    script = write(tmp_path, "lenet5")
    out = run(script, "--steps", "2", "--batch-size", "32", torchrun=2)
    assert "2 processes (gloo), rank 0 on cpu" in out
    assert out.count("saved lenet5.pt at step 2") == 1  # rank 0 alone logs and saves
    assert saved(tmp_path / "lenet5.pt")["step"] == 2


@pytest.mark.slow
def test_resume_continues_from_the_saved_step(tmp_path):
    script = write(tmp_path, "lenet5")
    common = ["--batch-size", "32", "--samples", "256"]
    run(script, "--steps", "3", "--checkpoint", "a.pt", *common)
    assert saved(tmp_path / "a.pt")["step"] == 3
    out = run(script, "--steps", "10", "--resume", "--checkpoint", "a.pt", *common)
    assert "resumed from a.pt at step 3 (epoch 1)" in out
    assert "epoch 1/10 [" in out and " 4/8 step 4 " in out  # the 4th batch of epoch 1 next
    resumed = saved(tmp_path / "a.pt")
    assert (resumed["step"], resumed["epoch"], resumed["batch"]) == (10, 1, 2)
    # the same as training without the interruption
    run(script, "--steps", "10", "--checkpoint", "b.pt", *common)
    straight = saved(tmp_path / "b.pt")
    for name, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][name]), name


@pytest.mark.slow
def test_lenet5_learns_the_digits(tmp_path):
    need("sklearn")
    script = write(tmp_path, "lenet5")
    out = run(
        script,
        "--data",
        "digits",
        # the paper's init (uniform on +-2.4/F) starts small under plain tanh: two epochs
        # near chance, then it learns (96% at epoch 12)
        "--epochs",
        "12",
        "--lr",
        "0.1",
        "--batch-size",
        "32",
        "--seed",
        "0",
    )
    assert "digits data, 1437 examples of 1x32x32" in out
    accuracy = float(re.search(r"^test accuracy ([\d.]+)%$", out, re.M).group(1))
    assert accuracy >= 95.0, out


PLACED = """\
block tower(c) = conv3 c + relu + maxpool2
network twin(classes=4):
    input 3x16x16
    concat(tower(8) @gpu(0), tower(8) @gpu(1))
    output aux @train = gap + fc classes
    conv3 16 @gpu(1) + relu + gap + fc classes
"""


@pytest.mark.slow
def test_placed_model_with_aux_output_trains_on_the_cpu(tmp_path):
    script = write(tmp_path, "twin", source=PLACED)
    text = script.read_text()
    assert "from twin import DEVICES, INPUT_SHAPE, build_model" in text
    assert "AUX_OUTPUTS = 1" in text
    out = run(script, "--steps", "2", "--batch-size", "8", "--samples", "64")
    assert "twin: " in out and "step 2" in out


@pytest.mark.slow
def test_imagefolder_without_torchvision_is_a_clear_error(tmp_path):
    try:
        import torchvision  # noqa: F401

        pytest.skip("torchvision is installed")
    except ImportError:
        pass
    script = write(tmp_path, "lenet5")
    done = subprocess.run(
        [sys.executable, str(script), "--data", f"imagefolder:{tmp_path}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert "--data imagefolder needs torchvision" in done.stderr


@pytest.mark.torchvision
@pytest.mark.slow
def test_imagefolder_with_torchvision(tmp_path):
    pytest.importorskip("torchvision")
    from PIL import Image

    for split in ("train", "val"):
        for label in ("cat", "dog"):
            folder = tmp_path / "images" / split / label
            folder.mkdir(parents=True)
            for i in range(4):
                pixels = torch.randint(0, 255, (40, 40, 3), dtype=torch.uint8).numpy()
                Image.fromarray(pixels).save(folder / f"{i}.png")
    script = write(tmp_path, "lenet5")
    out = run(
        script,
        "--data",
        f"imagefolder:{tmp_path / 'images'}",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--workers",
        "0",
    )
    assert "imagefolder" in out and "test accuracy" in out


# ---- the script's defaults -----------------------------------------------------------------


def test_recipe_from_the_train_section():
    context = train_context(compile_file(ARCHITECTURES / "googlenet.net"), "googlenet")
    recipe = "\n".join(context.recipe)
    assert '"schedule": {"name": "step", "step": 8, "gamma": 0.96},' in recipe
    assert '"aux_weight": 0.3,' in recipe
    assert '"augment": [("random_resized_crop", 224), ("hflip",)],' in recipe
    assert context.aux_outputs == 2 and context.classes_param == '"classes"'
    lenet = train_context(compile_file(ARCHITECTURES / "lenet5.net"), "lenet5")
    assert '    "lr": 0.01,  # netdsl\'s default' in lenet.recipe


def test_softmax_output_trains_on_its_log():
    net = compile_text("network n(classes=3):\n    input 4\n    fc classes + softmax\n")
    assert train_context(net, "model").softmax_output


def test_model_name_that_would_hide_a_module(tmp_path):
    net = compile_file(ARCHITECTURES / "lenet5.net")
    for name in ("random", "torch", "time"):
        with pytest.raises(NetdslError, match=f"would hide the module '{name}'"):
            TorchEmitter().emit_train(net, name)


# ---- cutout and mixup ----------------------------------------------------------------------

AUGMENTED = """
network aug(classes=4):
    input 3x16x16
    conv3 8 + bn + relu + maxpool2
    output aux @train = gap + fc classes
    conv3 16 + relu + gap + fc classes

train:
    label_smoothing 0.1
    augment hflip cutout(4) mixup(alpha=0.2)
"""


def load_script(script):
    """The generated train.py as a module (its model module imported from beside it)."""
    import importlib.util

    sys.path.insert(0, str(script.parent))
    try:
        spec = importlib.util.spec_from_file_location(f"train_{script.parent.name}", script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(script.parent))
    return module


def scripted(*draws: int):
    """A stand-in for random.Random whose randrange returns `draws` in turn."""
    from types import SimpleNamespace

    values = iter(draws)
    return SimpleNamespace(randrange=lambda n: next(values))


@pytest.mark.parametrize(
    "augment, message, column",
    [
        ("cutout(0)", "train: cutout size must be a positive integer, got 0", 20),
        ("cutout(size=2.5)", "train: cutout size must be a positive integer, got 2.5", 20),
        ("cutout(length=16)", "train: cutout has no option 'length'", 20),
        ("cutout(8, size=8)", "train: 'cutout' takes one value", 13),
        ("mixup(-0.2)", "train: mixup alpha must be a positive number, got -0.2", 19),
        ("mixup(alpa=0.2)", "train: mixup has no option 'alpa'", 19),
    ],
)
def test_cutout_and_mixup_arguments_are_checked_when_compiling(augment, message, column):
    with pytest.raises(NetdslError) as error:
        compile_text(f"network n:\n    input 3x8x8\n    conv3 4\ntrain:\n    augment {augment}\n")
    assert error.value.message == message
    assert (error.value.span.line, error.value.span.column) == (5, column)


def test_cutout_zeroes_the_square_around_each_centre_clipped_at_the_borders(tmp_path):
    train = load_script(write(tmp_path, "aug", source=AUGMENTED))
    x = (torch.rand(3, 3, 9, 9) + 1).contiguous(memory_format=torch.channels_last)
    # (row, column) centres: a corner, the middle, the bottom edge
    out = train.cutout(x, 4, scripted(0, 0, 4, 4, 8, 3))
    assert [int((image == 0).sum()) for image in out] == [3 * 2 * 2, 3 * 4 * 4, 3 * 3 * 4]
    expected = x.clone()
    expected[0, :, 0:2, 0:2] = 0  # rows and columns -2..1, clipped
    expected[1, :, 2:6, 2:6] = 0
    expected[2, :, 6:9, 1:5] = 0  # rows 6..9, clipped
    assert torch.equal(out, expected)
    assert out.is_contiguous(memory_format=torch.channels_last)
    odd = train.cutout(torch.ones(1, 1, 9, 9), 3, scripted(4, 4))  # an odd side: 3x3 exactly
    assert torch.equal((odd == 0).nonzero()[:, 2:].unique(), torch.tensor([3, 4, 5]))
    assert int((odd == 0).sum()) == 9


def test_mixup_blends_inputs_and_losses_by_the_same_lam(tmp_path, monkeypatch):
    train = load_script(write(tmp_path, "aug", source=AUGMENTED))
    torch.manual_seed(0)
    x = torch.randn(8, 3, 4, 4).contiguous(memory_format=torch.channels_last)
    index = torch.arange(8)
    mixed, order, lam = train.mixup(x, index, 0.2, train.batch_random(0, 0, 0))
    assert 0.0 < lam < 1.0 and sorted(order.tolist()) == list(range(8))
    assert torch.allclose(mixed, lam * x + (1 - lam) * x[order])
    assert mixed.is_contiguous(memory_format=torch.channels_last)
    # the loss: lam times the cross-entropy against y plus 1 - lam times that against
    # y[order], for the main output and (weighted) the aux one, label smoothing included
    y = index % 4
    outputs = (torch.randn(8, 4), torch.randn(8, 4))

    def ce(out, target):
        return torch.nn.functional.cross_entropy(out, target, label_smoothing=0.1)

    expected = sum(
        weight * (lam * ce(out, y) + (1 - lam) * ce(out, y[order]))
        for out, weight in zip(outputs, (1.0, 0.3))
    )
    criterion = train.Loss(0.3, 0.1)
    assert torch.allclose(criterion.mixed(outputs, y, y[order], lam), expected)
    monkeypatch.setattr(train, "SOFTMAX_OUTPUT", True)  # a network that ends in softmax
    probabilities = tuple(out.softmax(1) for out in outputs)
    assert torch.allclose(criterion.mixed(probabilities, y, y[order], lam), expected)


def test_batch_randomness_is_per_process_and_per_step(tmp_path):
    """A function of (seed, rank, step) alone: a resumed run draws what the straight one
    did, and each torchrun process mixes and cuts its own batch its own way."""
    train = load_script(write(tmp_path, "aug", source=AUGMENTED))

    def draws(seed, rank, step):
        rng = train.batch_random(seed, rank, step)
        return [rng.random() for _ in range(4)]

    assert draws(0, 0, 7) == draws(0, 0, 7)
    assert len({str(draws(*key)) for key in [(0, 0, 7), (0, 1, 7), (0, 0, 8), (1, 0, 7)]}) == 4


@pytest.mark.slow
def test_cutout_and_mixup_train_say_so_and_resume_exactly(tmp_path):
    script = write(tmp_path, "aug", source=AUGMENTED)
    common = ["--batch-size", "8", "--samples", "32", "--channels-last"]
    out = run(script, "--steps", "2", "--checkpoint", "a.pt", *common)
    assert "augment: cutout 4 px, mixup alpha 0.2" in out
    assert "not done by train.py" not in out
    assert "step 2 loss" in out
    run(script, "--steps", "5", "--resume", "--checkpoint", "a.pt", *common)
    run(script, "--steps", "5", "--checkpoint", "b.pt", *common)
    resumed, straight = saved(tmp_path / "a.pt"), saved(tmp_path / "b.pt")
    assert resumed["step"] == straight["step"] == 5
    for name, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][name]), name


def test_augmented_train_script_is_ruff_clean(tmp_path):
    ruff = shutil.which("ruff") or pytest.skip("ruff is not on PATH")
    write(tmp_path, "aug", source=AUGMENTED)
    for command in (["check"], ["format", "--check", "--diff"]):
        done = subprocess.run(
            [ruff, *command, "--isolated", str(tmp_path / "train.py")],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr
