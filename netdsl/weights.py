"""Moving weights between the models netdsl generates.

Nothing here imports torch or keras at import time: each function imports the
framework it needs when it is called, so `import netdsl.weights` costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# reference weights -> torch: load_by_order lives in the runtime (a model compiled with
# --weights copies it into its file; see netdsl/runtime/by_order.py)
from .runtime.by_order import load_by_order  # noqa: F401

# ---- torch -> keras -------------------------------------------------------------------------


@dataclass(frozen=True)
class Conversion:
    """How the weights of one catalogue op cross from PyTorch to Keras."""

    keras: str  # the Keras layer class the op becomes
    torch: tuple[str, ...]  # the PyTorch module classes it becomes (a base class counts)
    # (PyTorch module, Keras layer) -> the Keras layer's weights, in Keras' order
    convert: Callable[[Any, Any], list]


def _array(tensor):
    import numpy as np

    return tensor.detach().cpu().numpy().astype(np.float32)


def _bias(module) -> list:
    return [_array(module.bias)] if module.bias is not None else []


def _conv(module, layer) -> list:
    """OIHW -> HWIO; a grouped convolution keeps its per-group layout."""
    return [_array(module.weight).transpose(2, 3, 1, 0)] + _bias(module)


def _conv_transpose(module, layer) -> list:
    """ConvTranspose2d's (c_in, c_out, kh, kw) -> Conv2DTranspose's (kh, kw, c_out, c_in)."""
    return [_array(module.weight).transpose(2, 3, 1, 0)] + _bias(module)


def _dwconv(module, layer) -> list:
    return [_depthwise(module, layer)] + _bias(module)


def _sepconv(module, layer) -> list:
    """The depthwise and the pointwise conv of the SeparableConv2d helper, and the bias."""
    pointwise = module.pointwise
    return [
        _depthwise(module.depthwise, layer),
        _array(pointwise.weight).transpose(2, 3, 1, 0),
    ] + _bias(pointwise)


def _fc(module, layer) -> list:
    """(out, in) -> (in, out): the Keras model flattens in PyTorch's C, H, W order (a
    Permute before Flatten), so no rows need reordering."""
    return [_array(module.weight).T] + _bias(module)


def _bn(module, layer) -> list:
    """gamma (unless the Keras layer has no scale), beta, moving mean and variance."""
    import numpy as np

    n = module.num_features
    gamma = _array(module.weight) if module.weight is not None else None
    values = []
    if layer.scale:
        values.append(gamma if gamma is not None else np.ones(n, np.float32))
    elif gamma is not None and not np.all(gamma == 1.0):
        raise ValueError(
            f"Keras layer '{layer.name}' has no scale (gamma) but its PyTorch BatchNorm "
            "scales by values other than 1"
        )
    if layer.center:
        values.append(_array(module.bias) if module.bias is not None else np.zeros(n, np.float32))
    return values + [_array(module.running_mean), _array(module.running_var)]


def _layernorm(module, layer) -> list:
    """gamma, beta: the same vectors (over the channels, or the features)."""
    return [_array(module.weight), _array(module.bias)]


def _groupnorm(module, layer) -> list:
    """gamma, beta of GroupNorm, or of InstanceNorm2d (GroupNormalization with one group per
    channel); none where the module is not affine (nor is the Keras layer)."""
    if (module.weight is not None) != (layer.scale and layer.center):
        raise ValueError(
            f"Keras layer '{layer.name}' and PyTorch {type(module).__name__} disagree on "
            "whether the normalisation learns a scale and shift"
        )
    return [] if module.weight is None else [_array(module.weight), _array(module.bias)]


def _layer_scale(module, layer) -> list:
    """gamma: (C, 1, 1) on an image (torchvision's layout) -> (C,) on the channels-last axis."""
    return [_array(module.gamma).reshape(-1)]


def _depthwise(module, layer):
    """(C*m, 1, kh, kw) -> (kh, kw, C, m): PyTorch's output channel c*m + j is Keras' (c, j)."""
    weight = _array(module.weight)
    channels = module.in_channels
    if module.groups != channels or weight.shape[1] != 1:
        raise ValueError(
            f"PyTorch module {module} is not a depthwise convolution, but Keras "
            f"layer '{layer.name}' is"
        )
    out, _, kh, kw = weight.shape
    return weight.reshape(channels, out // channels, kh, kw).transpose(2, 3, 0, 1)


def _token(module, layer) -> list:
    """ClassToken's (1, n, D) tokens: batch first in both."""
    return [_array(module.token)]


def _position(module, layer) -> list:
    """PositionEmbedding's (1, N, D) vectors: batch first in both."""
    return [_array(module.embedding)]


def _attention(module, layer) -> list:
    """nn.MultiheadAttention -> Keras' MultiHeadAttention.

    PyTorch stacks the query, key and value projections in in_proj_weight (3D, D) (rows of
    head h: h * D/h ... (h + 1) * D/h - 1 of each) and in_proj_bias (3D); Keras keeps each
    as an EinsumDense of kernel (D, heads, D/h) and bias (heads, D/h). The output
    projection out_proj (D, D) is Keras' (heads, D/h, D) kernel and (D,) bias.
    """
    d, heads = module.embed_dim, module.num_heads
    head = d // heads
    if not module._qkv_same_embed_dim or module.bias_k is not None:
        raise ValueError(
            f"PyTorch module {type(module).__name__} projects keys or values from other "
            f"widths than D = {d}; Keras layer '{layer.name}' is self-attention"
        )
    weight = _array(module.in_proj_weight)
    bias = None if module.in_proj_bias is None else _array(module.in_proj_bias)
    values = []
    for i in range(3):  # query, key, value
        values.append(weight[i * d : (i + 1) * d].T.reshape(d, heads, head))
        if bias is not None:
            values.append(bias[i * d : (i + 1) * d].reshape(heads, head))
    out = module.out_proj
    values.append(_array(out.weight).T.reshape(heads, head, d))
    return values + _bias(out)


def _embedding(module, layer) -> list:
    """The (V, D) table: a row per id in both (ReversibleEmbedding's too, whose reverse
    call is a tied fc's weight)."""
    return [_array(module.weight)]


def _tied_bias(module, layer) -> list:
    """A tied fc (`fc n tie=emb`): its weight is the embedding's table, copied there; only
    its bias is its own (the Keras Bias helper after the embedding's reverse call)."""
    return _bias(module)


# ops that become the same Keras class share one conversion (the per-position Linear is a
# Dense on the channels-last axis; instance norm a GroupNormalization with a group a channel;
# patch_embed's projection a Conv2D)
_CONV = Conversion("Conv2D", ("Conv2d",), _conv)
_DENSE = Conversion("Dense", ("Linear",), _fc)
_GROUP_NORMALIZATION = Conversion("GroupNormalization", ("GroupNorm", "_InstanceNorm"), _groupnorm)
_EMBEDDING = Conversion("Embedding", ("Embedding",), _embedding)
# further Keras classes of ops above: an embedding whose table an fc reuses, that fc's bias
_ALSO = (
    Conversion("ReversibleEmbedding", ("Embedding",), _embedding),
    Conversion("Bias", ("Linear",), _tied_bias),
)

# catalogue op -> its conversion: every op with weights has one (tests/test_weights.py)
CONVERSIONS: dict[str, Conversion] = {
    "conv": _CONV,
    "conv_transpose": Conversion("Conv2DTranspose", ("ConvTranspose2d",), _conv_transpose),
    "dwconv": Conversion("DepthwiseConv2D", ("Conv2d",), _dwconv),
    "sepconv": Conversion("SeparableConv2D", ("SeparableConv2d",), _sepconv),
    "fc": _DENSE,
    "pointwise_fc": _DENSE,
    "bn": Conversion("BatchNormalization", ("_BatchNorm",), _bn),
    "layernorm": Conversion("LayerNormalization", ("LayerNorm",), _layernorm),
    "groupnorm": _GROUP_NORMALIZATION,
    "instancenorm": _GROUP_NORMALIZATION,
    "layer_scale": Conversion("LayerScale", ("LayerScale",), _layer_scale),
    "patch_embed": _CONV,  # the generated PatchEmbed is a Conv2d
    "cls_token": Conversion("ClassToken", ("ClassToken",), _token),
    "pos_embed": Conversion("PositionEmbedding", ("PositionEmbedding",), _position),
    "attention": Conversion("SelfAttention", ("MultiheadAttention",), _attention),
    "embedding": _EMBEDDING,
}

_BY_KERAS = {c.keras: c for c in (*CONVERSIONS.values(), *_ALSO)}
_TORCH_TYPES = frozenset(t for c in _BY_KERAS.values() for t in c.torch)


def torch_to_keras(torch_model, keras_model) -> dict[str, str]:
    """Copy the weights of a generated PyTorch model into the generated Keras model.

    Both models must come from the same .net file (and the same parameters). Each
    Keras layer is paired with the PyTorch module generated from the same IR node:

    * a Keras layer is named after its node (`keras_name`: the dotted id with `_`
      for `.`, e.g. `unit1_choice_conv` for `unit1.choice.conv`);
    * a PyTorch module's path spells the same id with the same names (attributes
      are the DSL names; `layer0`, `x_` where a name is a number or taken), except
      where netdsl writes a part as an `nn.Sequential`: there an index stands for
      the name (`unit1.choice.0`), and where a conditional's only layer is the
      module itself (`unit1.choice` for `unit1.choice.conv`).

    Names are followed down the module tree; below a Sequential the names of its
    items are not written, so its layers are taken in the order data flows
    through it (a Sequential is a chain: every layer of an item feeds the next
    item), and each item's names are then followed again. Nothing depends on the
    order in which either framework's graph lists a merge's inputs or accumulates
    an add in place.

    Layouts are converted on the way, one entry of CONVERSIONS per catalogue op:
    Conv2D OIHW -> HWIO, DepthwiseConv2D (C*m, 1, kh, kw) -> (kh, kw, C, m),
    SeparableConv2D from the SeparableConv2d helper's two convs, Dense (out, in)
    -> (in, out), BatchNormalization gamma, beta, moving mean and variance;
    nn.MultiheadAttention's stacked in_proj (3D, D) -> MultiHeadAttention's query,
    key and value kernels (D, heads, D/heads), out_proj -> its (heads, D/heads, D)
    output kernel. A tied fc (`fc n tie=emb`, its weight the embedding's Parameter)
    has no weight of its own on the Keras side: the ReversibleEmbedding holds the
    table, and only a bias (the Bias helper) is copied.

    A Keras model built with `build_model(training_outputs=True)` receives the
    train-time heads' weights too; the eval model receives those of the eval path
    (the PyTorch modules of train-time heads are then left out).

    Returns {Keras layer name: PyTorch module path}. Raises ValueError, before any
    weight is set, at the first Keras layer (in data-flow order) that has no
    PyTorch counterpart or whose weights do not match it (both names and shapes),
    and when a PyTorch module of the eval path has no Keras counterpart.
    """
    import numpy as np

    layers = _keras_weighted_layers(keras_model)
    pairs = _pair(torch_model, layers)
    updates = []
    for layer in layers:
        path, module = pairs[layer.name]
        kind = type(layer).__name__
        conversion = _BY_KERAS[kind]
        source = type(module).__name__
        if not _is_a(module, conversion.torch):
            raise ValueError(
                f"Keras layer '{layer.name}' ({kind}) does not match PyTorch module "
                f"'{path}' ({source})"
            )
        values = conversion.convert(module, layer)
        expected = [tuple(w.shape) for w in layer.weights]
        got = [tuple(v.shape) for v in values]
        if expected != got:
            raise ValueError(
                f"weights do not match: Keras layer '{layer.name}' ({kind}) has shapes "
                f"{_shapes(expected)} but PyTorch '{path}' ({source}) gives {_shapes(got)}"
            )
        updates.append((layer, [np.ascontiguousarray(v) for v in values]))
    _check_leftovers(torch_model, keras_model, {path for path, _ in pairs.values()})
    for layer, values in updates:
        layer.set_weights(values)
    return {name: path for name, (path, _) in pairs.items()}


def _shapes(shapes: list[tuple]) -> str:
    return ", ".join("x".join(str(d) for d in s) for s in shapes) or "none"


def _is_a(module, names) -> bool:
    return any(cls.__name__ in names for cls in type(module).__mro__)


# -- pairing: Keras names against PyTorch paths --------------------------------------------


class _Unmatched(Exception):
    """No consistent reading of some Keras names below a PyTorch module."""

    def __init__(self, layer, path: str, why: str) -> None:
        super().__init__(why)
        self.layer, self.path, self.why = layer, path, why


def _pair(model, layers: list) -> dict[str, tuple[str, Any]]:
    """{Keras layer name: (PyTorch path, module)} for every layer in `layers`."""
    model = getattr(model, "_orig_mod", model)  # a torch.compile'd model
    _check_torch_modules(model)
    try:
        found = _resolve(model, "", [("_" + layer.name, layer) for layer in layers])
    except _Unmatched as e:
        kind = type(e.layer).__name__
        where = f"'{e.path}'" if e.path else "the model"
        raise ValueError(
            f"Keras layer '{e.layer.name}' ({kind}) has no PyTorch counterpart: {e.why} "
            f"(below {where} in the PyTorch model); are both generated from the same "
            "file and parameters?"
        ) from None
    return {layer.name: (path, module) for layer, path, module in found}


def _resolve(module, path: str, entries: list) -> list:
    """[(layer, path, module)] for `entries`, [(rest of the layer's name, layer)] whose
    names lead below `module` (at `path`), in data-flow order."""
    if _is_target(module):
        if len(entries) != 1:
            raise _Unmatched(entries[0][1], path, f"{len(entries)} layers lead to one module")
        # rest "": the module itself; "_w": a conditional's only layer, written in its place
        return [(entries[0][1], path, module)]
    children = list(module.named_children())
    if children and all(name.isdigit() for name, _ in children):
        return _resolve_positional(children, path, entries)
    groups: dict[str, list] = {}
    attrs = dict(children)
    for rest, layer in entries:
        name, size = _child_for(rest, attrs)
        if name is None:
            raise _Unmatched(layer, path, f"no module is named after '{rest[1:]}'")
        groups.setdefault(name, []).append((rest[1 + size :], layer))
    found = []
    for name, group in groups.items():
        found += _resolve_part(attrs[name], f"{path}.{name}" if path else name, group)
    return found


def _resolve_part(module, path: str, entries: list) -> list:
    """_resolve, where the names may hold one more component than the module's path
    shows (a conditional written as its only part: `choice.conv_bn` is `choice`)."""
    try:
        return _checked(module, path, entries)
    except _Unmatched as first:
        if all(rest == "" for rest, _ in entries):
            raise
        for size in _common_prefixes(entries):
            try:
                return _checked(module, path, [(rest[1 + size :], lay) for rest, lay in entries])
            except _Unmatched:
                continue
        raise first from None


def _checked(module, path: str, entries: list) -> list:
    """_resolve, and every target below `module` paired exactly once."""
    found = _resolve(module, path, entries)
    targets = _count_targets(module)
    if len({p for _, p, _ in found}) != len(found) or len(found) != targets:
        raise _Unmatched(
            entries[0][1], path, f"{len(entries)} layers for {targets} modules with weights"
        )
    return found


def _resolve_positional(children: list, path: str, entries: list) -> list:
    """A Sequential's items take its layers in data-flow order, as many as they hold."""
    found = []
    position = 0
    for name, child in children:
        count = _count_targets(child)
        if count == 0:
            continue
        chunk = entries[position : position + count]
        position += count
        inner = f"{path}.{name}" if path else name
        if len(chunk) < count:
            raise _Unmatched(entries[-1][1], inner, "the Sequential holds more layers")
        found += _resolve_item(child, inner, chunk)
    if position < len(entries):
        raise _Unmatched(entries[position][1], path, "the Sequential holds fewer layers")
    return found


def _resolve_item(module, path: str, entries: list) -> list:
    """One item of a Sequential: its name (one or more `_`-joined words, the same for all
    its layers) is not in the PyTorch path; the shortest reading that fits is taken."""
    if _is_target(module):
        return _resolve(module, path, entries)
    error = None
    for size in _common_prefixes(entries):
        try:
            return _checked(module, path, [(rest[1 + size :], lay) for rest, lay in entries])
        except _Unmatched as e:
            error = error or e
    raise error or _Unmatched(entries[0][1], path, "no reading of the names fits")


def _common_prefixes(entries: list) -> list[int]:
    """Lengths of the `_`-separated prefixes ("a", "a_b", ...) that every rest shares
    (each rest starts with `_`), shortest first."""
    first = entries[0][0]
    sizes = []
    for i in range(2, len(first) + 1):
        if i == len(first) or first[i] == "_":
            word = first[1:i]
            if all(_starts(rest, word) for rest, _ in entries):
                sizes.append(len(word))
    return sizes


def _ir_names(attr: str) -> list[str]:
    """The DSL names a PyTorch attribute may stand for (`x_` for `x`, `layer0` for `0`)."""
    names = [attr]
    if attr.endswith("_"):
        names.append(attr[:-1])
    if attr.startswith("layer") and attr[5:].isdigit():
        names.append(attr[5:])
    return names


def _starts(rest: str, name: str) -> bool:
    return rest[1:].startswith(name) and rest[1 + len(name) :][:1] in ("", "_")


def _child_for(rest: str, attrs: dict) -> tuple[str | None, int]:
    """The attribute whose name begins `rest` (the longest, where one name begins another),
    and the length of that name."""
    best, size = None, -1
    for attr in attrs:
        for name in _ir_names(attr):
            if len(name) > size and _starts(rest, name):
                best, size = attr, len(name)
    return best, size


def _is_target(module) -> bool:
    return _is_a(module, _TORCH_TYPES)


def _count_targets(module) -> int:
    return sum(1 for _ in _targets(module))


def _targets(module, path: str = "", seen: set | None = None):
    """(path, module) of every module that CONVERSIONS maps, in registration order; not a
    module whose weights all belong to one before it (a tied fc without a bias: its weight
    is the embedding's table, which Keras' ReversibleEmbedding holds and reuses)."""
    seen = set() if seen is None else seen
    if _is_target(module):
        own = [id(p) for p in module.parameters()]
        if not own or not set(own) <= seen:
            seen.update(own)
            yield path, module
        return
    for name, child in module.named_children():
        yield from _targets(child, f"{path}.{name}" if path else name, seen)


def _check_torch_modules(module, path: str = "") -> None:
    if _is_target(module):
        return
    if any(True for _ in module.parameters(recurse=False)):
        raise ValueError(
            f"PyTorch module '{path}' ({type(module).__name__}) holds weights "
            "that netdsl cannot map to Keras"
        )
    for name, child in module.named_children():
        _check_torch_modules(child, f"{path}.{name}" if path else name)


def _check_leftovers(model, keras_model, paired: set) -> None:
    """PyTorch modules with weights but no Keras layer: only train-time heads, and only
    when the Keras model leaves them out."""
    model = getattr(model, "_orig_mod", model)
    left = [(path, m) for path, m in _targets(model) if path not in paired]
    if not left:
        return
    try:
        used = _torch_used(model, len(keras_model.outputs))
    except Exception:  # not traceable: every module counts
        used = None
    for path, module in left:
        if used is None or path in used:
            raise ValueError(
                f"PyTorch module '{path}' ({type(module).__name__}) has no Keras counterpart"
            )


def _torch_used(model, outputs: int) -> set[str]:
    """Paths of the modules the first `outputs` outputs depend on (torch.fx, traced in
    training mode, so train-time heads are in the graph), and of everything below them."""
    import torch.fx

    class Tracer(torch.fx.Tracer):
        def is_leaf_module(self, module, qualified_name: str) -> bool:
            return _is_target(module) or not any(True for _ in module.children())

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
    return {node.target for node in nodes if node.op == "call_module"}


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


def _keras_weighted_layers(model) -> list:
    """The Keras layers holding weights in data-flow order (a depth-first post-order from
    the outputs: every layer comes after the layers it depends on)."""

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
    seen: set[int] = set()  # a layer called twice (a tied embedding) is listed once
    for node in _depth_first(roots, inputs_of):
        layer = node.operation
        kind = type(layer).__name__
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if kind in _BY_KERAS:
            result.append(layer)
        elif layer.weights:
            raise ValueError(
                f"Keras layer '{layer.name}' ({kind}) holds weights that netdsl "
                "cannot map from PyTorch"
            )
    return result
