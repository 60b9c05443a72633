"""The PyTorch and Keras models of every zoo file start from the same distributions.

For each zoo file both generated models are built (at tests/test_cross_backend.py's
reduced inputs), each Keras weight is paired with the PyTorch tensor it is converted
from (netdsl.weights.torch_to_keras's pairing and layout conversions), and every pair
must look drawn from one distribution: a two-sample Kolmogorov-Smirnov test at
p > 0.01 / m over the network's m pairs (Bonferroni), constants exactly equal
(tests/init_stats.py). Large tensors are compared on a random subset of their values.

The small networks run with the fast tests, the whole zoo with the slow ones.
"""

from __future__ import annotations

import gc
import importlib.util

import numpy as np
import pytest
from conftest import ARCHITECTURES, need
from init_stats import SAMPLE, same_distribution
from test_cross_backend import DEFAULT_INPUT, INPUTS, NATIVE, PARAMS

from netdsl import compile_file
from netdsl.emit import get_emitter

ZOO = sorted(p.stem for p in ARCHITECTURES.glob("*.net"))
FAST = {"lenet5", "highway", "gpt2"}  # a conv net, gate biases at -2, attention and tables


def load(path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tensor_pairs(torch_model, keras_model) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, Keras tensor, the PyTorch tensor in Keras' layout) for every trainable Keras
    weight, paired as torch_to_keras pairs them."""
    import keras

    from netdsl.weights import _BY_KERAS, _keras_weighted_layers, _pair

    layers = _keras_weighted_layers(keras_model)
    pairs = _pair(torch_model, layers)
    found = []
    for layer in layers:
        path, module = pairs[layer.name]
        values = _BY_KERAS[type(layer).__name__].convert(module, layer)
        assert len(values) == len(layer.weights), layer.name
        for weight, value in zip(layer.weights, values):
            if weight.trainable:
                ours = keras.ops.convert_to_numpy(weight)
                assert ours.shape == value.shape, (layer.name, weight.path)
                found.append((f"{weight.path} ~ {path}", ours, value))
    return found


def subset(values: np.ndarray, rng) -> np.ndarray:
    """A tensor far larger than init_stats' sample, as SAMPLE values drawn at random
    positions (gathered where they lie: a transposed 4096 x 4096 matrix is not copied
    whole, as init_stats' flattening would); smaller ones as they are."""
    if values.size <= 10 * SAMPLE:
        return values
    index = np.unravel_index(rng.integers(0, values.size, SAMPLE), values.shape)
    return values[index]


def cases() -> list:
    return [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in ZOO]


@pytest.mark.parametrize("name", cases())
def test_torch_and_keras_start_alike(name, tmp_path):
    torch = need("torch")
    keras = need("keras")
    shape = None if name in NATIVE or name in PARAMS else INPUTS.get(name, DEFAULT_INPUT)
    net = compile_file(ARCHITECTURES / f"{name}.net", params=PARAMS.get(name), input_shape=shape)
    torch_file, keras_file = tmp_path / f"{name}_torch.py", tmp_path / f"{name}_keras.py"
    torch_file.write_text(get_emitter("torch").emit_model(net))
    keras_file.write_text(get_emitter("keras").emit_model(net))
    torch.manual_seed(0)
    torch_model = load(torch_file, f"_init_{name}_torch").build_model()
    aux = any(o.train_only for o in net.outputs)
    module = load(keras_file, f"_init_{name}_keras")
    model = module.build_model(training_outputs=True, seed=0) if aux else module.build_model(seed=0)
    try:
        pairs = tensor_pairs(torch_model, model)
        rng = np.random.default_rng(0)
        failures = []
        for what, ours, theirs in pairs:
            ours, theirs = subset(ours, rng), subset(theirs, rng)
            ok, why = same_distribution(ours, theirs, tests=len(pairs))
            if not ok:
                failures.append(f"{what}: {why}")
        assert not failures, f"{name}: {len(failures)} of {len(pairs)}:\n" + "\n".join(
            failures[:20]
        )
    finally:
        del model, torch_model
        keras.backend.clear_session()
        gc.collect()
