"""The generated Keras train.py: it runs, learns, checkpoints and resumes, on the CPU."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import ARCHITECTURES, compile_text, need

from netdsl import compile_file
from netdsl.emit import get_emitter

# a small network with what the script must handle: BatchNorm, an auxiliary head with its
# loss weight, L2 weight decay and a step schedule
AUX_NET = """
network small(classes=10):
    input 3x16x16
    conv 8 k=3 p=1 + bn + relu + maxpool2
    output aux @train = gap + fc classes
    conv 16 k=3 p=1 + bn + relu + gap + fc classes

train:
    optimizer sgd lr=0.05 momentum=0.9 weight_decay=1e-4 nesterov=true
    schedule step step=1 gamma=0.5
    aux_weight 0.4
    batch_size 8
    epochs 2
"""


def write(net, folder, module: str = "model"):
    emitter = get_emitter("keras")
    (folder / f"{module}.py").write_text(emitter.emit_model(net))
    (folder / "train.py").write_text(emitter.emit_train(net, module))


def run(folder, *args: str, timeout: int = 600) -> str:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "train.py", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def test_recipe_becomes_the_defaults(tmp_path):
    net = compile_file(ARCHITECTURES / "resnet50.net")
    script = get_emitter("keras").emit_train(net, "resnet50")
    compile(script, "train.py", "exec")
    assert '"optimizer": "sgd",' in script and '"weight_decay": 0.0001,' in script
    assert '"schedule": {"name": "step", "step": 30, "gamma": 0.1},' in script
    assert 'importlib.import_module("resnet50")' in script
    assert "MirroredStrategy" in script and "ModelCheckpoint" in script


@pytest.mark.slow
def test_steps_run_on_cpu_with_aux_outputs_and_resume(tmp_path):
    need("keras")
    write(compile_text(AUX_NET), tmp_path)
    out = run(tmp_path, "--steps", "2", "--samples", "32")
    assert "small: " in out and "saved small.keras" in out
    assert (tmp_path / "small.keras").exists()
    out = run(tmp_path, "--resume", "--epochs", "2", "--samples", "32")
    assert "resumed from small.keras after epoch 1" in out
    assert re.search(r"Epoch 2/2", out)


@pytest.mark.slow
def test_lenet5_learns_digits(tmp_path):
    need("keras")
    need("sklearn")
    write(compile_file(ARCHITECTURES / "lenet5.net"), tmp_path, "lenet5")
    # the paper's init (uniform on +-2.4/F) starts small under plain tanh: a larger step
    out = run(
        tmp_path,
        *("--data", "digits", "--epochs", "15", "--lr", "0.1", "--batch-size", "32"),
        *("--seed", "0", "--verbose", "0"),
    )
    accuracy = float(re.search(r"test accuracy ([\d.]+)%", out).group(1))
    print(f"LeNet-5 on digits: test accuracy {accuracy}%")
    assert accuracy >= 95.0


# ---- cutout and mixup ----------------------------------------------------------------------

AUGMENTED = AUX_NET.replace(
    "epochs 2",
    """epochs 2
    label_smoothing 0.1
    augment hflip cutout(4) mixup(0.2)""",
)


def load_script(folder):
    """The generated train.py as a module (its model module imported from beside it)."""
    import importlib.util

    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location("train_augmented", folder / "train.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module


def test_cutout_zeroes_the_square_around_each_centre_clipped_at_the_borders(tmp_path):
    need("keras")
    from types import SimpleNamespace

    import numpy as np

    write(compile_text(AUGMENTED), tmp_path)
    train = load_script(tmp_path)
    x = np.random.default_rng(0).uniform(1, 2, (3, 9, 9, 3)).astype("float32")
    # (row, column) centres: a corner, the middle, the bottom edge; rows drawn first
    draws = iter([np.array([0, 4, 8]).reshape(3, 1, 1), np.array([0, 4, 3]).reshape(3, 1, 1)])
    out = train.cutout(x, 4, SimpleNamespace(integers=lambda high, size: next(draws)))
    assert out.dtype == np.float32
    assert [int((image == 0).sum()) for image in out] == [2 * 2 * 3, 4 * 4 * 3, 3 * 4 * 3]
    expected = x.copy()
    expected[0, 0:2, 0:2] = 0  # rows and columns -2..1, clipped
    expected[1, 2:6, 2:6] = 0
    expected[2, 6:9, 1:5] = 0  # rows 6..9, clipped
    assert np.array_equal(out, expected)


def test_mixup_blends_inputs_and_labels_so_the_loss_blends_by_the_same_lam(tmp_path):
    need("keras")
    import keras
    import numpy as np

    write(compile_text(AUGMENTED), tmp_path)
    train = load_script(tmp_path)
    x = np.random.default_rng(1).standard_normal((8, 4)).astype("float32")
    y = np.eye(4, dtype="float32")[np.arange(8) % 4]
    mixed, labels = train.mixup(x, (y, y), 0.2, np.random.default_rng(0))  # two outputs
    replay = np.random.default_rng(0)  # lam, then the order, are its first draws
    lam, order = replay.beta(0.2, 0.2), replay.permutation(8)
    assert np.allclose(mixed, lam * x + (1 - lam) * x[order])
    assert np.array_equal(labels[0], labels[1])
    assert np.allclose(labels[0], lam * y + (1 - lam) * y[order])
    # the script's loss on the blended labels (label smoothing included) is the paper's
    ce = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)
    logits = np.random.default_rng(2).standard_normal((8, 4)).astype("float32")
    paper = lam * float(ce(y, logits)) + (1 - lam) * float(ce(y[order], logits))
    assert np.isclose(float(ce(labels[0], logits)), paper, rtol=1e-5)


def test_augmented_batches_depend_on_seed_epoch_and_batch_alone(tmp_path):
    """A run resumed at epoch 1 gets the batches the straight run got in its epoch 1,
    whatever Keras read before the first epoch began (a look-ahead for shapes)."""
    need("keras")
    import numpy as np

    write(compile_text(AUGMENTED), tmp_path)
    train = load_script(tmp_path)
    x = np.random.default_rng(0).standard_normal((16, 6, 6, 3)).astype("float32")
    y = np.eye(4, dtype="float32")[np.arange(16) % 4]

    def epoch(dataset):
        dataset.on_epoch_begin()
        return [dataset[i] for i in range(len(dataset))]

    straight = train.Augmented((x, y), 2, 8, 3, 0.2, 0, 0)
    straight[0]  # Keras' look-ahead
    first, second = epoch(straight), epoch(straight)
    resumed = epoch(train.Augmented((x, y), 2, 8, 3, 0.2, 0, 1))
    for (a, b), (c, d) in zip(second, resumed):
        assert np.array_equal(a, c) and np.array_equal(b, d)
    assert not np.array_equal(first[0][0], second[0][0])


@pytest.mark.slow
def test_cutout_and_mixup_train_and_say_so(tmp_path):
    need("keras")
    write(compile_text(AUGMENTED), tmp_path)
    out = run(tmp_path, "--steps", "2", "--samples", "32", "--verbose", "2")
    assert "augment: cutout 4 px, mixup alpha 0.2" in out
    assert "not done by train.py" not in out
    assert "2/2" in out and "saved small.keras" in out


def test_augmented_train_script_is_ruff_clean(tmp_path):
    ruff = shutil.which("ruff") or pytest.skip("ruff is not on PATH")
    write(compile_text(AUGMENTED), tmp_path)
    for command in (["check"], ["format", "--check", "--diff"]):
        done = subprocess.run(
            [ruff, *command, "--isolated", str(tmp_path / "train.py")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr


# ---- imagefolder data ---------------------------------------------------------------------


def images(folder, splits=("train", "val"), labels=("cat", "dog"), count=3):
    """A tiny image folder: PNGs of random pixels, `count` per label and split."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in splits:
        for label in labels:
            (folder / split / label).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / split / label / f"{i}.png")
    return folder


@pytest.mark.slow
def test_imagefolder_data(tmp_path):
    """Image folders through keras.utils, augmented (the recipe's flip, cutout and
    mixup): one short epoch, then the test set's accuracy."""
    need("keras")
    need("tensorflow")
    write(compile_text(AUGMENTED), tmp_path)
    folder = images(tmp_path / "images")
    out = run(tmp_path, "--data", f"imagefolder:{folder}", "--epochs", "1", "--verbose", "2")
    assert "small: " in out and f"imagefolder:{folder} data of 16x16x3" in out
    assert "augment: cutout 4 px, mixup alpha 0.2" in out
    assert "saved small.keras" in out and "test accuracy" in out
