"""Moving weights between the models netdsl generates.

Nothing here imports torch or keras at import time: each function imports the
framework it needs when it is called, so `import netdsl.weights` costs nothing.
"""

from __future__ import annotations

# ---- reference weights -> torch ---------------------------------------------------------------


def load_by_order(model, state_dict) -> dict[str, str]:
    """Load a reference model's weights into a generated PyTorch model by order and shape.

    A generated model registers its parameters and buffers in the order the .net file
    writes its layers, so a file written to mirror a reference network (torchvision's
    resnet50, say) holds the same tensors in the same order under other names. This
    pairs the two `state_dict`s entry by entry (parameters and buffers, e.g. BatchNorm's
    running statistics, in registration order), checks every pair's shape, and loads.

    `state_dict` is a mapping of names to tensors, or a module whose `state_dict()` is
    used. Returns {model name: reference name}. Raises ValueError at the first entry
    that does not pair up, with its index, both names and both shapes; nothing is
    loaded then.
    """
    if hasattr(state_dict, "state_dict"):
        state_dict = state_dict.state_dict()
    target = model.state_dict()
    ours, theirs = list(target.items()), list(state_dict.items())
    for index in range(max(len(ours), len(theirs))):
        if index >= len(ours) or index >= len(theirs):
            extra, owner, other = (
                (theirs, "the reference", "the model")
                if index >= len(ours)
                else (ours, "the model", "the reference")
            )
            name, tensor = extra[index]
            raise ValueError(
                f"entry {index}: {owner} has '{name}' {_shape(tensor)} but {other} has only "
                f"{index} entries ({len(ours)} in the model, {len(theirs)} in the reference)"
            )
        (name, tensor), (ref_name, ref_tensor) = ours[index], theirs[index]
        if tuple(tensor.shape) != tuple(ref_tensor.shape):
            raise ValueError(
                f"entry {index}: the model's '{name}' is {_shape(tensor)} but the reference's "
                f"'{ref_name}' is {_shape(ref_tensor)}"
            )
    model.load_state_dict({name: ref for (name, _), (_, ref) in zip(ours, theirs)})
    return {name: ref_name for (name, _), (ref_name, _) in zip(ours, theirs)}


def _shape(tensor) -> str:
    shape = tuple(tensor.shape)
    return "x".join(str(d) for d in shape) if shape else "a scalar"


# ---- torch -> keras -------------------------------------------------------------------------

# torch modules that own weights (subclasses too, e.g. a BatchNorm without scale), and the
# Keras layers that hold the same weights


def _torch_weighted_types(nn) -> tuple:
    return (nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm)


_KERAS_WEIGHTED = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense", "BatchNormalization")


def torch_to_keras(torch_model, keras_model) -> None:
    """Copy the weights of a generated PyTorch model into the generated Keras model.

    Both models must come from the same .net file (and the same parameters). Layers
    are matched in one canonical order of the network's graph, computed the same way
    on both sides: a depth-first walk from the outputs (main output first), visiting
    each operation's inputs in argument order, layers listed as they complete. Keras
    gives its graph directly; the PyTorch graph comes from torch.fx (traced in training
    mode, so train-time heads are in it). Where torch.fx cannot trace a model, the
    PyTorch modules are taken in registration order, which is the DSL order. Layouts
    are converted on the way:

    * Conv2D: OIHW -> HWIO (grouped convolutions keep their per-group layout),
    * DepthwiseConv2D: (C*m, 1, kh, kw) -> (kh, kw, C, m),
    * SeparableConv2D: the depthwise and the pointwise conv of the PyTorch
      SeparableConv2d module, plus the pointwise bias,
    * Dense: (out, in) -> (in, out); the Keras model flattens in PyTorch's C, H, W
      order (a Permute before Flatten), so no rows need reordering,
    * BatchNormalization: gamma (unless scale=False), beta, running mean and variance.

    A Keras model built with `build_model(training_outputs=True)` receives the
    train-time heads' weights too; the eval model receives those of the eval path.

    Raises ValueError on the first layer that does not match (its names in both
    models and both shapes), and when either side has layers left over.
    """
    import numpy as np

    targets = _keras_weighted_layers(keras_model)
    sources = _torch_weighted_modules(torch_model, len(keras_model.outputs))
    position = 0
    for layer in targets:
        kind = type(layer).__name__
        needed = 2 if kind == "SeparableConv2D" else 1
        taken = sources[position : position + needed]
        if len(taken) < needed:
            raise ValueError(
                f"Keras layer '{layer.name}' ({kind}) has no PyTorch counterpart: the PyTorch "
                f"model has only {len(sources)} layers with weights"
            )
        position += needed
        values = _convert(layer, kind, taken, np)
        expected = [tuple(w.shape) for w in layer.weights]
        got = [tuple(v.shape) for v in values]
        if expected != got:
            names = " + ".join(f"'{path}' ({type(m).__name__})" for path, m in taken)
            raise ValueError(
                f"weights do not match: Keras layer '{layer.name}' ({kind}) has shapes "
                f"{_shapes(expected)} but PyTorch {names} gives {_shapes(got)}"
            )
        layer.set_weights([np.ascontiguousarray(v) for v in values])
    if position < len(sources):
        path, module = sources[position]
        raise ValueError(
            f"PyTorch module '{path}' ({type(module).__name__}) has no Keras counterpart: the "
            f"Keras model has only {len(targets)} layers with weights"
        )


def _shapes(shapes: list[tuple]) -> str:
    return ", ".join("x".join(str(d) for d in s) for s in shapes) or "none"


def _depth_first(roots: list, inputs_of) -> list:
    """Depth-first post-order from `roots`; `inputs_of(item)` lists an item's inputs."""
    seen: set[int] = set()
    ordered = []
    for root in roots:
        stack = [(root, False)]
        while stack:
            item, expanded = stack.pop()
            if expanded:
                if id(item) not in seen:
                    seen.add(id(item))
                    ordered.append(item)
                continue
            if id(item) in seen:
                continue
            stack.append((item, True))
            stack.extend((parent, False) for parent in reversed(inputs_of(item)))
    return ordered


def _torch_weighted_modules(model, outputs: int) -> list:
    """(path, module) for every Conv2d / Linear / BatchNorm, in the canonical order."""
    try:
        order = _torch_graph_order(model, outputs)
    except Exception:  # not traceable: registration order, which is the DSL order
        order = list(model.named_modules())
    from torch import nn

    found = []
    for path, module in order:
        if isinstance(module, _torch_weighted_types(nn)):
            found.append((path, module))
        elif any(True for _ in module.parameters(recurse=False)):
            raise ValueError(
                f"PyTorch module '{path}' ({type(module).__name__}) holds weights "
                "that netdsl cannot map to Keras"
            )
    return found


def _torch_graph_order(model, outputs: int) -> list:
    import torch.fx

    class Tracer(torch.fx.Tracer):
        def is_leaf_module(self, module, qualified_name: str) -> bool:
            return not any(True for _ in module.children())

    training = model.training
    model.train()
    try:
        graph = Tracer().trace(model)
    finally:
        model.train(training)
    (output,) = [node for node in graph.nodes if node.op == "output"]
    result = output.args[0]
    roots = list(result) if isinstance(result, (tuple, list)) else [result]
    nodes = _depth_first(roots[:outputs], lambda node: list(node.all_input_nodes))
    return [
        (node.target, model.get_submodule(node.target))
        for node in nodes
        if node.op == "call_module"
    ]


def _keras_weighted_layers(model) -> list:
    """The Keras layers holding weights, in the canonical order (see torch_to_keras)."""

    def inputs_of(node) -> list:
        parents = []
        for tensor in node.input_tensors:
            history = getattr(tensor, "_keras_history", None)
            if history is not None and history.operation is not None:
                parents.append(history.operation._inbound_nodes[history.node_index])
        return parents

    roots = []
    for tensor in model.outputs:
        history = tensor._keras_history
        roots.append(history.operation._inbound_nodes[history.node_index])
    result = []
    for node in _depth_first(roots, inputs_of):
        layer = node.operation
        kind = type(layer).__name__
        if kind in _KERAS_WEIGHTED:
            result.append(layer)
        elif layer.weights:
            raise ValueError(
                f"Keras layer '{layer.name}' ({kind}) holds weights that netdsl "
                "cannot map from PyTorch"
            )
    return result


def _array(tensor, np):
    return tensor.detach().cpu().numpy().astype(np.float32)


def _source_kind(module) -> str:
    from torch import nn

    if isinstance(module, nn.Conv2d):
        return "Conv2d"
    if isinstance(module, nn.Linear):
        return "Linear"
    return "BatchNorm"


def _convert(layer, kind: str, taken: list, np) -> list:
    """The Keras weights of `layer` from its PyTorch module(s), in Keras' order."""
    (path, module), *rest = taken
    source = _source_kind(module)
    mismatch = ValueError(
        f"Keras layer '{layer.name}' ({kind}) does not match PyTorch module '{path}' ({source})"
    )
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
        if source != "Conv2d" or _source_kind(pointwise) != "Conv2d":
            raise mismatch
        values = [_depthwise(module, layer, np), _array(pointwise.weight, np).transpose(2, 3, 1, 0)]
        return values + ([_array(pointwise.bias, np)] if pointwise.bias is not None else [])
    if kind == "Dense":
        if source != "Linear":
            raise mismatch
        values = [_array(module.weight, np).T]
        return values + ([_array(module.bias, np)] if module.bias is not None else [])
    if kind == "BatchNormalization":
        if source != "BatchNorm":
            raise mismatch
        values = []
        gamma = _array(module.weight, np) if module.weight is not None else None
        if layer.scale:
            values.append(gamma if gamma is not None else np.ones(module.num_features, np.float32))
        elif gamma is not None and not np.all(gamma == 1.0):
            raise ValueError(
                f"Keras layer '{layer.name}' has no scale (gamma) but PyTorch "
                f"module '{path}' scales by values other than 1"
            )
        if layer.center:
            values.append(
                _array(module.bias, np)
                if module.bias is not None
                else np.zeros(module.num_features, np.float32)
            )
        values.append(_array(module.running_mean, np))
        values.append(_array(module.running_var, np))
        return values
    raise mismatch


def _depthwise(module, layer, np):
    """(C*m, 1, kh, kw) -> (kh, kw, C, m): PyTorch's output channel c*m + j is Keras' (c, j)."""
    weight = _array(module.weight, np)
    channels = module.in_channels
    if module.groups != channels or weight.shape[1] != 1:
        raise ValueError(
            f"PyTorch module '{module}' is not a depthwise convolution, but Keras "
            f"layer '{layer.name}' is"
        )
    out, _, kh, kw = weight.shape
    return weight.reshape(channels, out // channels, kh, kw).transpose(2, 3, 0, 1)
