"""The PyTorch and Keras code generated from one .net file compute the same function.

One parametrised test over every zoo file builds both generated models (at a
reduced input where the full size is slow on CPU), copies the PyTorch weights
into the Keras model with netdsl.weights.torch_to_keras, and checks, on the one
Keras model it builds (TensorFlow builds are slow):

* its trainable parameters are the inferred params, count_params() the params
  plus BatchNorm's moving statistics, and keras.applications' figure where that
  is the reference;
* every IR node's Keras layer has the inferred output shape (NHWC);
* in eval mode, on the same random input (NCHW <-> NHWC), the outputs agree.

Tolerance: the largest difference is at most 1e-4 of the largest output
magnitude (plus 1e-6 absolute). The two frameworks sum conv and matmul products
in different orders, so float32 rounding differs by a few ulps of each *sum*; an
elementwise relative test would fail on outputs that are near zero only because
large terms cancelled. Observed differences are around 1e-6 of the scale.
BatchNorm's statistics are randomised first, so a wrong mean, variance, gamma,
beta or epsilon shows.
"""

from __future__ import annotations

import gc
import importlib.util

import pytest
from conftest import ARCHITECTURES, need

from netdsl import compile_file
from netdsl.emit import get_emitter

# keras.applications' model.count_params() (weights + BatchNorm moving mean/variance),
# copied from the reference figures (reference/figures.json, "keras_applications")
KERAS_APPLICATIONS = {
    "xception": 22_910_480,  # Xception
    "inception_resnet_v2": 55_873_736,  # InceptionResNetV2
    "mobilenet": 4_253_864,  # MobileNet
    "resnet50_v2": 25_613_800,  # ResNet50V2
}

# (C, H, W) to compile at; the rest run at their own size. Sizes keep the features
# worth testing: odd sizes for TensorFlow-style "same" pooling, 96 for GoogLeNet's
# adaptive 4x4 pool of a 6x6 map (uneven windows), Inception-v3's aux head needs 299.
INPUTS = {
    "alexnet": (3, 99, 99),
    "alexnet_one_tower": (3, 99, 99),
    "alexnet_torchvision": (3, 99, 99),
    "zfnet": (3, 96, 96),
    "nin": (3, 99, 99),
    "googlenet": (3, 96, 96),
    "inception_v4": (3, 99, 99),
    "inception_resnet_v2": (3, 99, 99),
    "xception": (3, 75, 75),
    "mobilenet": (3, 64, 64),
    "squeezenet1_0": (3, 67, 67),
    "squeezenet1_1": (3, 67, 67),
}
DEFAULT_INPUT = (3, 48, 48)
NATIVE = {"lenet5", "highway", "fractalnet", "resnet_cifar", "inception_v3"}

ZOO = sorted({p.stem for p in ARCHITECTURES.glob("*.net")} | set(KERAS_APPLICATIONS))


def load(path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def randomise_batchnorm(model, torch) -> None:
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            n = module.num_features

            def uniform(low, high):
                return low + (high - low) * torch.rand(n, generator=generator)  # noqa: B023

            with torch.no_grad():
                module.running_mean.copy_(uniform(-0.1, 0.1))
                module.running_var.copy_(uniform(0.8, 1.25))
                if module.weight is not None:
                    module.weight.copy_(uniform(0.8, 1.2))
                if module.bias is not None:
                    module.bias.copy_(uniform(-0.1, 0.1))


def nhwc(shape: tuple) -> tuple:
    return tuple(shape[1:]) + (shape[0],) if len(shape) == 3 else tuple(shape)


@pytest.mark.parametrize("name", ZOO)
def test_torch_and_keras_agree(name, tmp_path):
    torch = need("torch")
    keras = need("keras")
    import numpy as np

    from netdsl.weights import torch_to_keras

    path = ARCHITECTURES / f"{name}.net"
    if not path.exists():
        pytest.skip(f"{path.name} is not in the zoo yet")
    shape = None if name in NATIVE else INPUTS.get(name, DEFAULT_INPUT)
    net = compile_file(path, input_shape=shape)
    torch_file, keras_file = tmp_path / f"{name}_torch.py", tmp_path / f"{name}_keras.py"
    torch_file.write_text(get_emitter("torch").emit_model(net))
    keras_file.write_text(get_emitter("keras").emit_model(net))
    torch_model = load(torch_file, f"_cross_{name}_torch").build_model().eval()
    randomise_batchnorm(torch_model, torch)
    aux = any(o.train_only for o in net.outputs)
    module = load(keras_file, f"_cross_{name}_keras")
    model = module.build_model(training_outputs=True) if aux else module.build_model()
    try:
        # parameters: trainable = the inferred params; count_params adds the moving stats
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        assert trainable == net.total_params
        assert model.count_params() == net.total_params + net.total_buffers
        if name in KERAS_APPLICATIONS:
            assert model.count_params() == KERAS_APPLICATIONS[name]
        # every layer's output shape is the inferred one
        for node in net.nodes():
            layer = model.get_layer(node.id.replace(".", "_"))
            assert tuple(layer.output.shape[1:]) == nhwc(node.out_shape), node.id
        # the same weights give the same outputs
        torch_to_keras(torch_model, model)
        main = keras.Model(model.input, model.outputs[0]) if aux else model
        generator = torch.Generator().manual_seed(0)
        inputs = [torch.randn((1, *node.out_shape), generator=generator)
                  for node in net.inputs.values()]
        with torch.no_grad():
            expected = torch_model(*inputs).numpy()
        feed = [x.numpy().transpose(0, 2, 3, 1) if x.dim() == 4 else x.numpy() for x in inputs]
        got = keras.ops.convert_to_numpy(main(feed if len(feed) > 1 else feed[0], training=False))
        expected = expected.transpose(0, 2, 3, 1) if expected.ndim == 4 else expected
        assert got.shape == expected.shape
        difference = float(np.abs(got - expected).max())
        scale = float(np.abs(expected).max())
        print(f"{name}: max difference {difference:.3g} at output scale {scale:.3g}")
        assert difference <= 1e-4 * scale + 1e-6, f"{name}: {difference} at scale {scale}"
    finally:
        del model, torch_model
        keras.backend.clear_session()
        gc.collect()


def test_random_programs_agree(tmp_path):
    """A few random valid programs (tests/strategies.py): layout, shapes and outputs."""
    torch = need("torch")
    keras = need("keras")
    hypothesis = pytest.importorskip("hypothesis")
    import shutil
    import subprocess

    import numpy as np
    from strategies import programs

    from netdsl import compile_text
    from netdsl.weights import torch_to_keras

    count = [0]

    @hypothesis.settings(max_examples=6, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(programs())
    def check(text):
        count[0] += 1
        net = compile_text(text, "random.net")
        stem = f"_random{count[0]}"
        torch_file, keras_file = tmp_path / f"{stem}_t.py", tmp_path / f"{stem}_k.py"
        torch_file.write_text(get_emitter("torch").emit_model(net))
        keras_file.write_text(get_emitter("keras").emit_model(net))
        if shutil.which("ruff"):
            for args in (["check", "-q"], ["format", "--check", "-q"]):
                done = subprocess.run(["ruff", *args, "--isolated", str(keras_file)],
                                      capture_output=True, text=True, check=False)
                assert done.returncode == 0, text + done.stdout
        torch_model = load(torch_file, stem + "_t").build_model().eval()
        aux = any(o.train_only for o in net.outputs)
        module = load(keras_file, stem + "_k")
        model = module.build_model(training_outputs=True) if aux else module.build_model()
        assert model.count_params() == net.total_params + net.total_buffers
        for node in net.nodes():
            layer = model.get_layer(node.id.replace(".", "_"))
            assert tuple(layer.output.shape[1:]) == nhwc(node.out_shape), (text, node.id)
        torch_to_keras(torch_model, model)
        main = keras.Model(model.input, model.outputs[0]) if aux else model
        x = torch.randn((2, *next(iter(net.inputs.values())).out_shape))
        with torch.no_grad():
            expected = torch_model(x).numpy()
        got = keras.ops.convert_to_numpy(main(x.numpy().transpose(0, 2, 3, 1), training=False))
        difference = float(np.abs(got - expected).max())
        assert difference <= 1e-4 * float(np.abs(expected).max()) + 1e-6, text

    check()
