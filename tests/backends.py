"""Differential checks: what the compiler inferred against what the generated code does.

One helper for every test that builds generated models (the zoo, the random
programs of tests/strategies.py, small hand-written cases):

* `check_torch(net)` builds the generated PyTorch model and checks, on a real
  forward pass, that every layer module's output shape (forward hooks, in
  execution order) is the inferred shape of the IR node it implements, and
  that parameters and buffers are the inferred counts;
* `check_keras(net)` builds the generated Keras model and checks that every IR
  node's Keras layer (named after the node) has the inferred output shape
  (NHWC), that the trainable weights are the inferred parameters and
  `count_params()` the parameters plus BatchNorm's moving statistics; given the
  PyTorch model, it copies its weights over and checks that both compute the
  same outputs;
* `check_backends(net)` does both: inferred = PyTorch = Keras.

Failures name the layer, the inferred shape and the framework's.
"""

from __future__ import annotations

import ast
import gc
import hashlib
import types

from conftest import need

from netdsl.layers import MERGES

# nodes a generated PyTorch model has no module for: the input, and joins (written in forward)
NO_MODULE = {"input", *MERGES}


def load_source(source: str, name: str | None = None) -> types.ModuleType:
    """A generated file as a module (executed from the text; nothing is written).

    The module (and file) name is the source's digest unless given, so an error in
    generated code reads the same every time it is replayed (Hypothesis compares).
    """
    name = name or "_generated_" + hashlib.sha256(source.encode()).hexdigest()[:12]
    module = types.ModuleType(name)
    exec(compile(source, f"{name}.py", "exec"), module.__dict__)
    return module


def nhwc(shape: tuple) -> tuple:
    return tuple(shape[1:]) + (shape[0],) if len(shape) == 3 else tuple(shape)


# ---- PyTorch --------------------------------------------------------------------------------


def torch_source(net) -> str:
    from netdsl.emit.torch import TorchEmitter

    return TorchEmitter().emit_model(net)


def layer_shapes(model, module: types.ModuleType, run) -> list[tuple]:
    """(module path, class, output shape) of every layer module, in execution order."""
    nn = need("torch").nn
    helpers = tuple(
        getattr(module, h)
        for h in ("SeparableConv2d", "DropPath", "Scale", "SelfAttention")
        if hasattr(module, h)
    )  # (SelfAttention's out_proj is a weight holder, never called as a module)
    inside_helpers = {
        id(c) for m in model.modules() if isinstance(m, helpers) for c in m.modules() if c is not m
    }
    seen: list[tuple] = []
    handles = []
    for path, m in model.named_modules():
        if id(m) in inside_helpers or isinstance(m, (nn.Identity, nn.Sequential)):
            continue
        if isinstance(m, helpers) or not list(m.children()):

            def hook(m, inputs, output, path=path):
                seen.append((path, type(m).__name__, tuple(output.shape[1:])))

            handles.append(m.register_forward_hook(hook))
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return seen


def example_input(node, batch: int, generator=None):
    """A random batch for the input `node`: normal values, or token ids below its
    vocabulary (an input written `1024 tokens of 50257`)."""
    torch = need("torch")
    shape = (batch, *node.out_shape)
    vocab = getattr(node.out_shape, "vocab", None)
    if vocab is not None:
        return torch.randint(vocab, shape, generator=generator)
    return torch.randn(shape, generator=generator)


def build_torch(net, source: str | None = None, **params):
    """(module, model in eval mode) of the generated PyTorch code."""
    torch = need("torch")
    source = source or torch_source(net)
    ast.parse(source)
    module = load_source(source)
    torch.manual_seed(0)
    return module, module.build_model(**params).eval()


def check_torch(net, backward: bool = False, source: str | None = None, **params):
    """Inferred = PyTorch: parameters, buffers and every layer's output shape.

    With `backward`, one training step runs too (every parameter gets a gradient;
    in-place ops must not break autograd). Returns the model (eval mode).
    """
    torch = need("torch")
    module, model = build_torch(net, source, **params)
    got_params = sum(p.numel() for p in model.parameters())
    assert got_params == net.total_params, (
        f"parameters: inferred {net.total_params:,}, PyTorch {got_params:,}"
    )
    got_buffers = sum(
        b.numel() for name, b in model.named_buffers() if not name.endswith("num_batches_tracked")
    )
    assert got_buffers == net.total_buffers, (
        f"buffers: inferred {net.total_buffers:,}, PyTorch {got_buffers:,}"
    )
    inputs = [example_input(node, 1) for node in net.inputs.values()]

    def run():
        with torch.no_grad():
            result = model(*inputs)
        main = result[0] if isinstance(result, tuple) else result
        assert tuple(main.shape[1:]) == net.main_output.node.out_shape, (
            f"main output: inferred {net.main_output.node.out_shape}, PyTorch {tuple(main.shape[1:])}"
        )
        eval_outputs = [o for o in net.outputs if not o.train_only]
        if len(eval_outputs) > 1:
            assert isinstance(result, tuple) and len(result) == len(eval_outputs)
            for output, value in zip(eval_outputs, result):
                assert tuple(value.shape[1:]) == output.node.out_shape, output.name

    seen = layer_shapes(model, module, run)
    # (a layer that reads a second tensor, `upsample size=img`, is a call in forward)
    expected = [
        n for n in net.nodes() if n.op not in NO_MODULE and not n.train_only and len(n.inputs) < 2
    ]
    for index, (node, (path, kind, shape)) in enumerate(zip(expected, seen)):
        assert shape == node.out_shape, (
            f"layer {index}: {node.id} ({node.op}) inferred {node.out_shape}, "
            f"but {path} ({kind}) gives {shape}"
        )
    assert len(seen) == len(expected), [n.id for n in expected[len(seen) :]] or seen[
        len(expected) :
    ]

    train_outputs = [o for o in net.outputs if o.train_only]
    if train_outputs or backward:
        model.train()
        batch = [example_input(node, 2) for node in net.inputs.values()]
        result = model(*batch)
        if train_outputs:
            assert isinstance(result, tuple) and len(result) == len(net.outputs)
            ordered = [o for o in net.outputs if not o.train_only] + train_outputs
            for output, value in zip(ordered, result):
                assert tuple(value.shape[1:]) == output.node.out_shape, output.name
        if backward:
            values = result if isinstance(result, tuple) else (result,)
            sum(v.float().sum() for v in values).backward()
            assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
        model.eval()
    return model


def randomise_batchnorm(model, seed: int = 1) -> None:
    """BatchNorm statistics and affine weights other than 0 and 1, so a wrong mean,
    variance, gamma, beta or epsilon shows in the outputs."""
    torch = need("torch")
    generator = torch.Generator().manual_seed(seed)
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


def randomise_token_weights(model, seed: int = 2) -> None:
    """The weights that token layers start at zero (class tokens, attention biases) drawn
    at random, so a wrong layout or a dropped weight shows in the outputs."""
    torch = need("torch")
    generator = torch.Generator().manual_seed(seed)
    names = ("ClassToken", "MultiheadAttention")
    for module in model.modules():
        if any(cls.__name__ in names for cls in type(module).__mro__):
            with torch.no_grad():
                for parameter in module.parameters():
                    parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))


# ---- Keras ----------------------------------------------------------------------------------


def keras_source(net) -> str:
    from netdsl.emit.keras import KerasEmitter

    return KerasEmitter().emit_model(net)


def build_keras(net, source: str | None = None):
    """(module, model) of the generated Keras code; the model has the train-time
    outputs too when the network has any (build_model(training_outputs=True))."""
    need("keras")
    source = source or keras_source(net)
    ast.parse(source)
    module = load_source(source)
    aux = any(o.train_only for o in net.outputs)
    return module, (module.build_model(training_outputs=True) if aux else module.build_model())


def check_keras_model(net, model) -> None:
    """Inferred = Keras: trainable weights, count_params and every layer's output shape."""
    import numpy as np

    from netdsl.emit.keras import keras_name

    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == net.total_params, (
        f"parameters: inferred {net.total_params:,}, Keras trainable {trainable:,}"
    )
    assert model.count_params() == net.total_params + net.total_buffers, (
        f"count_params: inferred {net.total_params:,} + {net.total_buffers:,} buffers, "
        f"Keras {model.count_params():,}"
    )
    for node in net.nodes():
        tie = node.attrs.get("tie")
        if tie is not None and not node.value("bias"):
            # a tied fc without a bias is the embedding's layer called again (reverse=True,
            # its table transposed): no layer of its own; its output is that second call's
            layer = model.get_layer(keras_name(tie.node))
            got = {tuple(n.output_tensors[0].shape[1:]) for n in layer._inbound_nodes[1:]}
            assert node.out_shape in got, (
                f"{node.id} (tied fc): inferred {node.out_shape}, Keras {got}"
            )
            continue
        layer = model.get_layer(keras_name(node))
        got = tuple(layer.output.shape[1:])
        assert got == nhwc(node.out_shape), (
            f"{node.id} ({node.op}): inferred {nhwc(node.out_shape)} (NHWC), Keras {got}"
        )


def compare_outputs(net, torch_model, keras_model, tolerance: float = 1e-4) -> float:
    """Copy the PyTorch weights into the Keras model and compare the main outputs on one
    random input; returns the largest difference relative to the output scale.

    The frameworks sum products in different orders, so the bound is relative to the
    largest output magnitude (plus 1e-6 absolute), as in test_cross_backend.
    """
    torch = need("torch")
    keras = need("keras")
    import numpy as np

    from netdsl.weights import torch_to_keras

    torch_to_keras(torch_model, keras_model)
    aux = any(o.train_only for o in net.outputs)
    main = (
        keras.Model(keras_model.input, keras_model.outputs[0])
        if aux or len(keras_model.outputs) > 1
        else keras_model
    )
    generator = torch.Generator().manual_seed(0)
    inputs = [example_input(node, 2, generator) for node in net.inputs.values()]
    with torch.no_grad():
        expected = torch_model(*inputs)
    expected = (expected[0] if isinstance(expected, tuple) else expected).numpy()
    feed = [keras_input(x) for x in inputs]
    got = keras.ops.convert_to_numpy(main(feed if len(feed) > 1 else feed[0], training=False))
    if expected.ndim == 4:
        expected = expected.transpose(0, 2, 3, 1)
    assert got.shape == expected.shape, f"outputs: PyTorch {expected.shape}, Keras {got.shape}"
    difference = float(np.abs(got - expected).max())
    scale = float(np.abs(expected).max())
    bound = tolerance * scale + 1e-6
    if difference > bound:
        difference = _error_beside_float32_rounding(torch_model, inputs, expected, got, bound)
    return difference / max(scale, 1e-6)


def keras_input(x):
    """A PyTorch input as the Keras model takes it: an image NHWC, token ids int32."""
    if x.dim() == 4:
        return x.numpy().transpose(0, 2, 3, 1)
    return x.numpy() if x.is_floating_point() else x.numpy().astype("int32")


def _error_beside_float32_rounding(torch_model, inputs, expected, got, bound: float) -> float:
    """Keras' distance from the exact answer (PyTorch in float64), allowed up to ten times
    PyTorch's own float32 error.

    A normalisation over near-constant values (a layer norm over three channels that a ReLU
    has nearly zeroed) divides by about sqrt(eps) and amplifies float32 rounding up to 316x;
    there neither framework is within 1e-4 of the exact answer, and the two are compared by
    how far each is from it instead.
    """
    import copy

    import numpy as np
    import torch

    with torch.no_grad():
        floats = [x.double() if x.is_floating_point() else x for x in inputs]  # (not ids)
        exact = copy.deepcopy(torch_model).double()(*floats)
    exact = (exact[0] if isinstance(exact, tuple) else exact).numpy()
    if exact.ndim == 4:
        exact = exact.transpose(0, 2, 3, 1)
    own = float(np.abs(expected - exact).max())
    error = float(np.abs(got - exact).max())
    assert error <= max(bound, 10 * own), (
        f"outputs differ by {float(np.abs(got - expected).max()):.3g} at output scale "
        f"{float(np.abs(expected).max()):.3g}; from the float64 answer: Keras "
        f"{error:.3g}, PyTorch float32 {own:.3g}"
    )
    return error


def check_keras(net, torch_model=None, source: str | None = None) -> None:
    """Inferred = Keras (see check_keras_model); with a PyTorch model of the same network,
    also the same outputs for the same weights."""
    keras = need("keras")
    _, model = build_keras(net, source)
    try:
        check_keras_model(net, model)
        if torch_model is not None:
            compare_outputs(net, torch_model, model)
    finally:
        del model
        keras.backend.clear_session()
        gc.collect()


def check_backends(net, keras: bool = True, values: bool = True, backward: bool = False) -> None:
    """Inferred shapes and parameters = the PyTorch model's = the Keras model's."""
    torch_model = check_torch(net, backward=backward)
    if keras:
        if values:
            randomise_batchnorm(torch_model)
            randomise_token_weights(torch_model)
        check_keras(net, torch_model if values else None)
