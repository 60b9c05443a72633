"""The generated Keras train.py: it runs, learns, checkpoints and resumes, on the CPU."""

from __future__ import annotations

import os
import re
import subprocess
import sys

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
    done = subprocess.run([sys.executable, "train.py", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
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


def test_steps_run_on_cpu_with_aux_outputs_and_resume(tmp_path):
    need("keras")
    write(compile_text(AUX_NET), tmp_path)
    out = run(tmp_path, "--steps", "2", "--samples", "32")
    assert "small: " in out and "saved small.keras" in out
    assert (tmp_path / "small.keras").exists()
    out = run(tmp_path, "--resume", "--epochs", "2", "--samples", "32")
    assert "resumed from small.keras after epoch 1" in out
    assert re.search(r"Epoch 2/2", out)


def test_lenet5_learns_digits(tmp_path):
    need("keras")
    need("sklearn")
    write(compile_file(ARCHITECTURES / "lenet5.net"), tmp_path, "lenet5")
    out = run(tmp_path, "--data", "digits", "--epochs", "15", "--seed", "0", "--verbose", "0")
    accuracy = float(re.search(r"test accuracy ([\d.]+)%", out).group(1))
    print(f"LeNet-5 on digits: test accuracy {accuracy}%")
    assert accuracy >= 95.0


# ---- cutout and mixup ----------------------------------------------------------------------

AUGMENTED = AUX_NET.replace("epochs 2", "epochs 2\n    augment hflip cutout(4) mixup(0.2)")


def test_cutout_and_mixup(tmp_path):
    need("keras")
    import importlib.util

    import numpy as np

    write(compile_text(AUGMENTED), tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        spec = importlib.util.spec_from_file_location("train_augmented", tmp_path / "train.py")
        train = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(train)
    finally:
        sys.path.remove(str(tmp_path))
    rng = np.random.default_rng(0)
    out = train.cutout(np.ones((200, 9, 9, 3), "float32"), 4, rng)
    zero = out[..., 0] == 0
    assert ((out == 0).all(-1) == (out == 0).any(-1)).all() and (out[out != 0] == 1).all()
    sizes = {int(image.sum()) for image in zero}
    assert 16 in sizes and min(sizes) < 16 and all(image.sum() <= 16 for image in zero)
    x, y = rng.standard_normal((8, 4), dtype="float32"), np.eye(8, dtype="float32")
    mixed, labels = train.mixup(x, (y, y), 0.2, rng)  # one label array per output
    # one-hot labels blend into lam * I + (1 - lam) * P (P the shuffle), and so must inputs
    assert np.array_equal(labels[0], labels[1]) and np.allclose(labels[0].sum(1), 1)
    assert np.allclose(mixed, labels[0] @ x, atol=1e-6)
    out = run(tmp_path, "--steps", "2", "--samples", "32", "--verbose", "0")
    assert "augment: cutout 4 px, mixup alpha 0.2" in out
    assert "not done by train.py" not in out
