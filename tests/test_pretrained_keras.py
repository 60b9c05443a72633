"""`netdsl compile --target keras --weights SOURCE`: the weights converted when compiling.

netdsl compile loads SOURCE into the PyTorch model of the same file (by order), converts it
with netdsl.weights.torch_to_keras and saves MODEL.weights.h5 beside MODEL.py; the Keras
model's build_model(pretrained=True) loads it and computes what the PyTorch model computes.
(A file of its own: a process that imports TensorFlow must not need torchvision.)
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")

from netdsl.cli import main  # noqa: E402

NETWORK = "resnet_cifar"


def module_from(path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as an import would (the dataclass in the file needs it)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_keras_outputs_equal_torch_outputs(tmp_path):
    from netdsl.api import load

    state = load(NETWORK).to_torch().state_dict()
    torch.manual_seed(11)
    state = {k: torch.rand_like(v) + 0.5 if v.is_floating_point() else v for k, v in state.items()}
    torch.save(state, tmp_path / "w.pt")
    for target in ("torch", "keras"):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            argv = [
                "compile",
                NETWORK,
                "--target",
                target,
                "-o",
                str(tmp_path / f"{target}_model.py"),
            ]
            assert main([*argv, "--weights", str(tmp_path / "w.pt")]) == 0
    assert (tmp_path / "keras_model.weights.h5").is_file()
    assert f"wrote {tmp_path / 'keras_model.weights.h5'}" in out.getvalue()
    torch_model = module_from(tmp_path / "torch_model.py", "torch_model").build_model(
        pretrained=True
    )
    keras_module = module_from(tmp_path / "keras_model.py", "keras_model")
    keras_model = keras_module.build_model(pretrained=True)
    x = np.random.default_rng(0).standard_normal((2, *torch_model_input(keras_module)))
    x = x.astype(np.float32)
    with torch.no_grad():
        expected = torch_model.eval()(torch.from_numpy(x)).numpy()
    got = keras.ops.convert_to_numpy(keras_model(x.transpose(0, 2, 3, 1), training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    # and without pretrained, the initial weights: other outputs
    initial = keras.ops.convert_to_numpy(
        keras_module.build_model()(x.transpose(0, 2, 3, 1), training=False)
    )
    assert not np.allclose(initial, expected, rtol=1e-2)


def torch_model_input(keras_module) -> tuple[int, ...]:
    """(C, H, W) from the Keras file's (H, W, C) INPUT_SHAPE."""
    h, w, c = keras_module.INPUT_SHAPE
    return (c, h, w)


@pytest.mark.slow
def test_a_source_that_does_not_fit_is_a_user_error(tmp_path):
    torch.save({"w": torch.zeros(3)}, tmp_path / "w.pt")
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        argv = ["compile", NETWORK, "--target", "keras", "-o", str(tmp_path / "m.py")]
        assert main([*argv, "--weights", str(tmp_path / "w.pt")]) == 1
    assert f"--weights {tmp_path / 'w.pt'}: the state_dict in" in err.getvalue()
    assert "do not fit resnet_cifar: entry 0:" in err.getvalue()
    assert not (tmp_path / "m.py").exists() and not (tmp_path / "m.weights.h5").exists()


@pytest.mark.slow
def test_train_time_heads_get_their_own_file(tmp_path):
    """GoogLeNet's aux heads are layers only the training_outputs=True model has: their
    weights go to MODEL_training.weights.h5, and both models compute the same main output."""
    from netdsl.api import load

    torch.save(load("googlenet").to_torch().state_dict(), tmp_path / "w.pt")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        argv = ["compile", "googlenet", "--target", "keras", "-o", str(tmp_path / "g.py")]
        assert main([*argv, "--weights", str(tmp_path / "w.pt")]) == 0
    assert out.getvalue().splitlines()[1:] == [
        f"wrote {tmp_path / 'g.weights.h5'}",
        f"wrote {tmp_path / 'g_training.weights.h5'}",
    ]
    module = module_from(tmp_path / "g.py", "g")
    x = np.random.default_rng(1).random((1, 224, 224, 3), np.float32)
    eval_out = module.build_model(pretrained=True)(x, training=False)
    train_outs = module.build_model(pretrained=True, training_outputs=True)(x, training=False)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(eval_out), keras.ops.convert_to_numpy(train_outs[0])
    )
