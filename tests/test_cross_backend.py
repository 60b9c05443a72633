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
from backends import check_keras_model, example_input, keras_input, randomise_batchnorm
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
    "nasnet_mobile": 5_326_716,  # NASNetMobile
    "nasnet_large": 88_949_818,  # NASNetLarge
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
    "bn_inception": (3, 99, 99),
    "inception_resnet_v1": (3, 99, 99),
    "xception": (3, 75, 75),
    "nasnet_mobile": (3, 96, 96),  # maps 47, 24, 12, 6, 3: odd, even, even, even, odd as at 224
    "nasnet_large": (3, 75, 75),  # maps 37, 19, 10, 5, 3: odd, odd, even, odd, odd as at 331
    "mobilenet": (3, 64, 64),
    "squeezenet1_0": (3, 67, 67),
    "squeezenet1_1": (3, 67, 67),
    "unet": (1, 188, 188),  # the smallest tile whose pooled maps are all even: 4x4 out
    "fcn_resnet50": (3, 67, 67),  # 9x9 maps, bilinear back to 67x67 (not a whole multiple)
}
DEFAULT_INPUT = (3, 48, 48)
# networks of token ids (no image size to reduce): a small configuration instead; the
# full-size GPT-2 is tests/test_tokens_cross_backend.py's slow test
PARAMS = {"gpt2": {"context": 32, "vocab": 256, "dim": 64, "depth": 2, "heads": 2}}
NATIVE = {
    "lenet5",
    "highway",
    "fractalnet",
    "resnet_cifar",
    "inception_v3",
    "preresnet_cifar",
    "wide_resnet_cifar",
    "densenet_bc_cifar",
}

ZOO = sorted({p.stem for p in ARCHITECTURES.glob("*.net")} | set(KERAS_APPLICATIONS))


def load(path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ZOO)
def test_torch_and_keras_agree(name, tmp_path):
    torch = need("torch")
    keras = need("keras")
    import numpy as np

    from netdsl.weights import torch_to_keras

    path = ARCHITECTURES / f"{name}.net"
    if not path.exists():
        pytest.skip(f"{path.name} is not in the zoo yet")
    shape = None if name in NATIVE or name in PARAMS else INPUTS.get(name, DEFAULT_INPUT)
    net = compile_file(path, params=PARAMS.get(name), input_shape=shape)
    torch_file, keras_file = tmp_path / f"{name}_torch.py", tmp_path / f"{name}_keras.py"
    torch_file.write_text(get_emitter("torch").emit_model(net))
    keras_file.write_text(get_emitter("keras").emit_model(net))
    torch_model = load(torch_file, f"_cross_{name}_torch").build_model().eval()
    randomise_batchnorm(torch_model)
    aux = any(o.train_only for o in net.outputs)
    module = load(keras_file, f"_cross_{name}_keras")
    model = module.build_model(training_outputs=True) if aux else module.build_model()
    try:
        # parameters: trainable = the inferred params; count_params adds the moving stats;
        # every layer's output shape is the inferred one (tests/backends.py)
        check_keras_model(net, model)
        if name in KERAS_APPLICATIONS:
            assert model.count_params() == KERAS_APPLICATIONS[name]
        # the same weights give the same outputs
        torch_to_keras(torch_model, model)
        main = keras.Model(model.input, model.outputs[0]) if aux else model
        generator = torch.Generator().manual_seed(0)
        inputs = [example_input(node, 1, generator) for node in net.inputs.values()]
        with torch.no_grad():
            expected = torch_model(*inputs).numpy()
        feed = [keras_input(x) for x in inputs]  # NHWC images, int32 token ids
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
