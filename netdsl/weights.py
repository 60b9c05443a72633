"""Moving weights between the models netdsl generates.

Nothing here imports torch or keras at import time: each function imports the
framework it needs when it is called, so `import netdsl.weights` costs nothing.
"""

from __future__ import annotations


# ---- torch -> keras -------------------------------------------------------------------------

# torch modules that own weights, and the Keras layers that hold the same weights
_TORCH_WEIGHTED = ("Conv2d", "Linear", "BatchNorm1d", "BatchNorm2d")
_KERAS_WEIGHTED = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense", "BatchNormalization")


def torch_to_keras(torch_model, keras_model) -> None:
    """Copy the weights of a generated PyTorch model into the generated Keras model.

    Both models must come from the same .net file (and the same parameters). Layers
    are matched in DSL order: the PyTorch modules in the order the model registers
    them, the Keras layers in the order the functional graph computes them (a
    depth-first walk from the outputs, train-time heads first, which is the order
    the .net file writes them). Layouts are converted on the way:

    * Conv2D: OIHW -> HWIO (grouped convolutions keep their per-group layout),
    * DepthwiseConv2D: (C*m, 1, kh, kw) -> (kh, kw, C, m),
    * SeparableConv2D: the depthwise and the pointwise conv of the PyTorch
      SeparableConv2d module, plus the pointwise bias,
    * Dense: (out, in) -> (in, out); the Keras model flattens in PyTorch's C, H, W
      order (a Permute before Flatten), so no rows need reordering,
    * BatchNormalization: gamma (unless scale=False), beta, running mean and variance.

    For a network with train-time outputs (auxiliary classifiers) pass the model
    built with `build_model(training_outputs=True)`: the eval model lacks the heads
    that the PyTorch model always holds. `keras.Model(model.input, model.outputs[0])`
    then gives the eval model with the copied weights.

    Raises ValueError on the first layer that does not match (its names in both
    models and both shapes), and when either model has layers left over.
    """
    import numpy as np

    sources = _torch_weighted_modules(torch_model)
    targets = _keras_weighted_layers(keras_model)
    position = 0
    for layer in targets:
        kind = type(layer).__name__
        needed = 2 if kind == "SeparableConv2D" else 1
        taken = sources[position:position + needed]
        if len(taken) < needed:
            raise ValueError(
                f"Keras layer '{layer.name}' ({kind}) has no PyTorch counterpart: the PyTorch "
                f"model has only {len(sources)} layers with weights")
        position += needed
        values = _convert(layer, kind, taken, np)
        expected = [tuple(w.shape) for w in layer.weights]
        got = [tuple(v.shape) for v in values]
        if expected != got:
            names = " + ".join(f"'{path}' ({type(m).__name__})" for path, m in taken)
            raise ValueError(
                f"weights do not match: Keras layer '{layer.name}' ({kind}) has shapes "
                f"{_shapes(expected)} but PyTorch {names} gives {_shapes(got)}")
        layer.set_weights(values)
    if position < len(sources):
        path, module = sources[position]
        raise ValueError(
            f"PyTorch module '{path}' ({type(module).__name__}) has no Keras counterpart: the "
            f"Keras model has only {len(targets)} layers with weights"
            + (" (was it built without training_outputs=True?)" if targets else ""))


def _shapes(shapes: list[tuple]) -> str:
    return ", ".join("x".join(str(d) for d in s) for s in shapes) or "none"


def _torch_weighted_modules(model) -> list:
    """(path, module) for every Conv2d / Linear / BatchNorm, in registration (DSL) order."""
    found = []
    for path, module in model.named_modules():
        kind = type(module).__name__
        if kind in _TORCH_WEIGHTED:
            found.append((path, module))
        elif any(True for _ in module.parameters(recurse=False)):
            raise ValueError(f"PyTorch module '{path}' ({kind}) holds weights that netdsl "
                             "cannot map to Keras")
    return found


def _keras_weighted_layers(model) -> list:
    """The Keras layers holding weights, in DSL order (see torch_to_keras)."""
    outputs = list(model.outputs)
    roots = outputs[1:] + outputs[:1]
    seen: set[int] = set()
    ordered = []
    for root in roots:
        # iterative depth-first post-order walk over the tensors' producing layers
        stack = [(root, False)]
        while stack:
            tensor, expanded = stack.pop()
            history = getattr(tensor, "_keras_history", None)
            if history is None or history.operation is None:
                continue
            layer = history.operation
            node = layer._inbound_nodes[history.node_index]
            key = id(node)
            if expanded:
                if key not in seen:
                    seen.add(key)
                    ordered.append(layer)
                continue
            if key in seen:
                continue
            stack.append((tensor, True))
            for parent in reversed(list(node.input_tensors)):
                stack.append((parent, False))
    result = []
    for layer in ordered:
        kind = type(layer).__name__
        if kind in _KERAS_WEIGHTED:
            result.append(layer)
        elif layer.weights:
            raise ValueError(f"Keras layer '{layer.name}' ({kind}) holds weights that netdsl "
                             "cannot map from PyTorch")
    return result


def _array(tensor, np):
    return tensor.detach().cpu().numpy().astype(np.float32)


def _convert(layer, kind: str, taken: list, np) -> list:
    """The Keras weights of `layer` from its PyTorch module(s), in Keras' order."""
    (path, module), *rest = taken
    source = type(module).__name__
    mismatch = ValueError(f"Keras layer '{layer.name}' ({kind}) does not match PyTorch module "
                          f"'{path}' ({source})")
    if kind == "Conv2D":
        if source != "Conv2d":
            raise mismatch
        values = [_array(module.weight, np).transpose(2, 3, 1, 0)]
        return values + ([_array(module.bias, np)] if module.bias is not None else [])
    if kind == "DepthwiseConv2D":
        if source != "Conv2d":
            raise mismatch
        values = [_depthwise(module, layer, np)]
        return values + ([_array(module.bias, np)] if module.bias is not None else [])
    if kind == "SeparableConv2D":
        pointwise = rest[0][1]
        if source != "Conv2d" or type(pointwise).__name__ != "Conv2d":
            raise mismatch
        values = [_depthwise(module, layer, np),
                  _array(pointwise.weight, np).transpose(2, 3, 1, 0)]
        return values + ([_array(pointwise.bias, np)] if pointwise.bias is not None else [])
    if kind == "Dense":
        if source != "Linear":
            raise mismatch
        values = [_array(module.weight, np).T]
        return values + ([_array(module.bias, np)] if module.bias is not None else [])
    if kind == "BatchNormalization":
        if not source.startswith("BatchNorm"):
            raise mismatch
        values = []
        gamma = _array(module.weight, np) if module.weight is not None else None
        if layer.scale:
            values.append(gamma if gamma is not None else np.ones(module.num_features, np.float32))
        elif gamma is not None and not np.all(gamma == 1.0):
            raise ValueError(f"Keras layer '{layer.name}' has no scale (gamma) but PyTorch "
                             f"module '{path}' scales by values other than 1")
        if layer.center:
            values.append(_array(module.bias, np) if module.bias is not None
                          else np.zeros(module.num_features, np.float32))
        values.append(_array(module.running_mean, np))
        values.append(_array(module.running_var, np))
        return values
    raise mismatch


def _depthwise(module, layer, np):
    """(C*m, 1, kh, kw) -> (kh, kw, C, m): PyTorch's output channel c*m + j is Keras' (c, j)."""
    weight = _array(module.weight, np)
    channels = module.in_channels
    if module.groups != channels or weight.shape[1] != 1:
        raise ValueError(f"PyTorch module '{module}' is not a depthwise convolution, but Keras "
                         f"layer '{layer.name}' is")
    out, _, kh, kw = weight.shape
    return weight.reshape(channels, out // channels, kh, kw).transpose(2, 3, 0, 1)
