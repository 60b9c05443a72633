"""The catalogue's token layers: sequences of N tokens of D features (batch implicit).

Registered into layers.CATALOGUE when layers.py is imported; layers.py documents the
conventions (shapes, counts, traits). The layout is PyTorch's batch-first (B, N, D):
torchvision's VisionTransformer, nn.MultiheadAttention(batch_first=True), a GPT.

Attention counts its four projections as linear layers (3 N D^2 for Q, K, V, N D^2 for
the output) plus its two matrix products per head: Q K^T (N x N x D/h) and A V
(N x D/h x N), i.e. 2 N^2 D over all heads; softmax, scaling and masking count zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .layers import (
    FRESH,
    KEEPS_SIGN,
    REQUIRED,
    VIEW,
    ArgSpec,
    Count,
    Equation,
    Factor,
    Inferred,
    LayerSpec,
    Note,
    ShapeError,
    _add,
    _int,
    _square_side,
    count,
)
from .symbolic import Num

_TOKENS = frozenset({"tokens"})


@dataclass(frozen=True)
class Tie:
    """`fc n tie=emb`: the linear layer's weight is the embedding table that produced the
    named tensor `emb` (GPT-2's tied input and output embeddings). Two instances compare
    by the name, as they are written."""

    name: str
    node: object = field(default=None, compare=False, repr=False)  # the embedding's node

    def __str__(self) -> str:
        return self.name


# ---- image <-> tokens ------------------------------------------------------------------


def _tokens(attrs, shape):
    c, h, w = shape
    return Inferred((h * w, c), derived={"channels": c})


def _derive_tokens(node) -> list:
    c, h, w = (_int(d) for d in node.in_shapes[0])
    return [Equation("N", (h, w), "x", h * w), Note(f"D = C = {c} (each position a token)")]


def _image(attrs, shape):
    n, d = shape
    h, w = attrs["h"], attrs["w"]
    if h is None and w is None:
        side = _square_side(n.value)
        if side is None:
            raise ShapeError(
                f"image: {n.value} tokens are not a square grid",
                hint=f"give the grid: image h w with h x w = {n.value}",
            )
        h = w = Num(side)
    elif w is None:
        if n.value % h.value:
            raise ShapeError(
                f"image: {n.value} tokens do not fill rows of {h.value}",
                hint=f"choose h dividing {n.value}, or give both: image h w",
            )
        w = n // h
    elif h is None:
        h = w
    if h.value * w.value != n.value:
        raise ShapeError(
            f"image: a {h.value} x {w.value} grid holds {h.value * w.value} tokens, not {n.value}",
            hint=f"h x w must be the number of tokens, {n.value}",
        )
    return Inferred((d, h, w), derived={"grid": (h, w)})


def _derive_image(node) -> list:
    n, d = (_int(x) for x in node.in_shapes[0])
    _, h, w = node.out_shape
    return [Equation("N", (h, w), "x", n), Note(f"C = D = {d}")]


def _patch_embed(attrs, shape):
    c, h, w = shape
    p = attrs["p"]
    for axis, size, lines in (("height", h, "rows"), ("width", w, "columns")):
        if size.value % p.value:
            raise ShapeError(
                f"patch_embed: the {axis} {size.value} is not a multiple of the patch size "
                f"{p.value} (its last {size.value % p.value} {lines} would be dropped)",
                hint=f"choose a patch size dividing {size.value}, or resize the input",
            )
    n = (h // p) * (w // p)
    out = (n, attrs["d"])
    return Inferred(
        out,
        _patch_params(attrs, shape, out).value,
        _patch_macs(attrs, shape, out).value,
        derived={"in_channels": c},
    )


def _patch_params(attrs, in_shape, out_shape) -> Count:
    c, p, d = _int(in_shape[0]), _int(attrs["p"]), _int(out_shape[1])
    bias = bool(attrs["bias"].value)
    return count("D x p x p x C" + (" + D" if bias else ""), [(d, p, p, c), (d,) if bias else ()])


def _patch_macs(attrs, in_shape, out_shape) -> Count:
    c, p = _int(in_shape[0]), _int(attrs["p"])
    n, d = (_int(x) for x in out_shape)
    return count("N x D x p x p x C", [(n, d, p, p, c)])


def _derive_patch_embed(node) -> list:
    _, h, w = (_int(d) for d in node.in_shapes[0])
    p = int(node.value("p"))
    n, d = node.out_shape
    return [
        Equation("N", (h // p, w // p), "x", n),
        Note(f"{h // p} x {w // p} patches of {p} x {p}; D = {d}"),
    ]


# ---- learnt tokens and positions ---------------------------------------------------------


def _cls_token(attrs, shape):
    n, d = shape
    out = (n + attrs["n"], d)
    return Inferred(out, _cls_params(attrs, shape, out).value, derived={"dim": d})


def _cls_params(attrs, in_shape, out_shape) -> Count:
    return count("k x D (the learnt tokens)", [(_int(attrs["n"]), _int(in_shape[1]))])


def _derive_cls_token(node) -> list:
    n, _ = node.in_shapes[0]
    k = int(node.value("n"))
    return [Equation("N", (_int(n), k), "+", node.out_shape[0])]


def _pos_embed(attrs, shape):
    n, d = shape
    want = attrs["n"]
    if want is not None and want.value != n.value:
        hint = f"write pos_embed {n.value}, or leave the count out (the input's, {n.value})"
        if want.value < n.value:
            hint += f"; {n.value - want.value} token(s) came before it (cls_token prepends)"
        raise ShapeError(
            f"pos_embed: sized for {want.value} tokens, but the input has {n.value}",
            hint=hint,
        )
    return Inferred(shape, _pos_params(attrs, shape, shape).value, derived={"tokens": n, "dim": d})


def _pos_params(attrs, in_shape, out_shape) -> Count:
    return count("N x D (one learnt vector per position)", [tuple(_int(x) for x in in_shape)])


# ---- attention -------------------------------------------------------------------------


def _attention(attrs, shape):
    n, d = shape
    h = attrs["heads"]
    if d.value % h.value:
        divisors = [k for k in range(1, d.value + 1) if d.value % k == 0]
        closest = min(divisors, key=lambda k: (abs(k - h.value), -k))
        raise ShapeError(
            f"attention: {h.value} heads do not divide D = {d.value}",
            hint=f"each head takes D / heads features: choose heads dividing {d.value}, "
            f"e.g. attention {closest} (head dim {d.value // closest})",
        )
    out = shape
    return Inferred(
        out,
        _attention_params(attrs, shape, out).value,
        _attention_macs(attrs, shape, out).value,
        derived={"dim": d, "head_dim": d // h},
    )


def _attention_params(attrs, in_shape, out_shape) -> Count:
    d = _int(in_shape[1])
    if not attrs["bias"].value:
        return count("4 x D x D (Q, K, V, output)", [(4, d, d)])
    return count("4 x D x D + 4 x D (Q, K, V, output; biases)", [(4, d, d), (4, d)])


def _attention_macs(attrs, in_shape, out_shape) -> Count:
    n, d = (_int(x) for x in in_shape)
    h = _int(attrs["heads"])
    head = Factor(d // h, f"{d}/{h}")
    return count(
        "4 x N x D x D (projections) + 2 x h x N x N x D/h (Q K^T, A V)",
        [(4, n, d, d), (2, h, n, n, head)],
    )


def attention_products(node) -> int:
    """The MACs of an attention node's Q K^T and A V (0 for any other node): 2 N^2 D."""
    if node.op != "attention":
        return 0
    n, d = node.out_shape
    return 2 * n * n * d


def _derive_attention(node) -> list:
    n, d = node.out_shape
    h = int(node.value("heads"))
    mask = "; causal: token i attends to tokens 0 ... i" if node.value("causal") else ""
    return [Note(f"{h} heads of {_int(d) // h} over {n} tokens; same shape out{mask}")]


# ---- pooling and embedding ---------------------------------------------------------------


def _token_pool(attrs, shape):
    return Inferred((shape[1],))


def _derive_token_pool(node) -> list:
    n, d = node.in_shapes[0]
    if node.attrs["mode"] == "mean":
        return [Note(f"the mean of the {n} tokens: {d} features")]
    return [Note(f"the first token (the class token): {d} features")]


def _embedding(attrs, shape):
    vocab = shape.vocab
    v = attrs["vocab"]
    if v is None:  # the input's, as written (`of vocab` builds other vocabularies)
        v = shape.traced if shape.traced is not None else Num(vocab)
    elif v.value < vocab:
        raise ShapeError(
            f"embedding: a table of {v.value} rows, but the ids go up to {vocab - 1}",
            hint=f"leave vocab out (the input's, {vocab}) or write vocab={vocab}",
        )
    out = (shape[0], attrs["d"])
    attrs_v = {**attrs, "vocab": v}
    return Inferred(out, _embedding_params(attrs_v, shape, out).value, derived={"vocab": v})


def _embedding_params(attrs, in_shape, out_shape) -> Count:
    v = attrs["vocab"] if attrs["vocab"] is not None else Num(in_shape.vocab)
    return count("V x D (one learnt vector per id)", [(_int(v), _int(out_shape[1]))])


def _derive_embedding(node) -> list:
    n, d = node.out_shape
    return [Note(f"each of the {n} ids to a vector of {d} (a table of {node.value('vocab')} rows)")]


# ---- the specs ---------------------------------------------------------------------------

_add(
    LayerSpec(
        "tokens",
        "image to tokens: C x H x W to N = H x W tokens of D = C (flatten(2).transpose(1, 2)).",
        "shape",
        _tokens,
        traits=frozenset({KEEPS_SIGN, VIEW}),
        derive=_derive_tokens,
        derived=("channels",),
        accepts=frozenset({"image"}),
    )
)
_add(
    LayerSpec(
        "image",
        "tokens back to an image: N tokens of D to D x h x w (h x w = N; a square grid by "
        "default).",
        "shape",
        _image,
        (
            ArgSpec("h", "count", None, "grid height (default: the square root of N)"),
            ArgSpec("w", "count", None, "grid width (default: N / h)"),
        ),
        positional=("h", "w"),
        traits=frozenset({KEEPS_SIGN}),
        derive=_derive_image,
        derived=("grid",),
        accepts=_TOKENS,
    )
)
_add(
    LayerSpec(
        "patch_embed",
        "patch embedding (ViT): a conv with kernel = stride = p to D channels, then each "
        "patch a token: C x H x W to (H/p x W/p) tokens of D.",
        "conv",
        _patch_embed,
        (
            ArgSpec("d", "count", REQUIRED, "token features (the model width)", ("dim",)),
            ArgSpec("p", "count", REQUIRED, "patch size", ("patch",)),
            ArgSpec("bias", "bool", True, "learn an additive bias"),
        ),
        positional=("d", "p"),
        traits=frozenset({FRESH}),
        derived=("in_channels",),
        params=_patch_params,
        macs=_patch_macs,
        receptive="patch",
        derive=_derive_patch_embed,
        accepts=frozenset({"image"}),
    )
)
_add(
    LayerSpec(
        "cls_token",
        "prepend n learnt tokens (a class token; more are register tokens): N to N + n.",
        "tokens",
        _cls_token,
        (ArgSpec("n", "count", 1, "how many tokens"),),
        positional=("n",),
        aliases=("class_token",),
        traits=frozenset({FRESH}),
        params=_cls_params,
        derive=_derive_cls_token,
        derived=("dim",),
        accepts=_TOKENS,
    )
)
_add(
    LayerSpec(
        "pos_embed",
        "learnt position embedding, added: one vector of D per position (n: the count it is "
        "sized for, checked).",
        "tokens",
        _pos_embed,
        (ArgSpec("n", "count", None, "the number of tokens it is sized for"),),
        positional=("n",),
        aliases=("position_embedding",),
        traits=frozenset({FRESH}),
        params=_pos_params,
        derived=("tokens", "dim"),
        accepts=_TOKENS,
    )
)
_add(
    LayerSpec(
        "attention",
        "multi-head self-attention (nn.MultiheadAttention, batch first): heads of D / heads, "
        "optional causal mask.",
        "attention",
        _attention,
        (
            ArgSpec("heads", "count", REQUIRED, "attention heads (dividing D)", ("h",)),
            ArgSpec("bias", "bool", True, "biases on the projections"),
            ArgSpec("dropout", "prob", 0.0, "dropout on the attention weights (training)"),
            ArgSpec("causal", "bool", False, "mask later tokens (a decoder)"),
        ),
        positional=("heads",),
        aliases=("mha", "self_attention"),
        traits=frozenset({FRESH}),
        params=_attention_params,
        macs=_attention_macs,
        receptive="global",
        derive=_derive_attention,
        named=("heads",),
        derived=("dim", "head_dim"),
        accepts=_TOKENS,
    )
)
_add(
    LayerSpec(
        "token_pool",
        "tokens to features: the first token (cls, ViT's class token) or the mean of all.",
        "pool",
        _token_pool,
        (ArgSpec("mode", "token_pool", "cls", "cls (the first token) or mean"),),
        positional=("mode",),
        traits=frozenset({KEEPS_SIGN}),
        receptive="global",
        derive=_derive_token_pool,
        accepts=_TOKENS,
    )
)
_add(
    LayerSpec(
        "embedding",
        "token ids to vectors (nn.Embedding): N ids to N tokens of D; the table has one row "
        "per id of the input's vocabulary.",
        "tokens",
        _embedding,
        (
            ArgSpec("d", "count", REQUIRED, "features per token", ("dim",)),
            ArgSpec("vocab", "count", None, "rows (default: the input's vocabulary)"),
        ),
        positional=("d",),
        traits=frozenset({FRESH}),
        params=_embedding_params,
        derive=_derive_embedding,
        accepts=frozenset({"ids"}),
    )
)

# ops that act on each value, or on the last dimension, read tokens as they are: these and
# every activation
_TOKENWISE = ("fc", "layernorm", "layer_scale", "dropout", "drop_path", "flatten", "scale")


def _accept_tokens() -> None:
    from dataclasses import replace

    from .layers import CATALOGUE

    widened = {}
    for spec in CATALOGUE.values():
        if spec.name in _TOKENWISE or spec.category == "activation":
            widened[id(spec)] = replace(spec, accepts=spec.accepts | _TOKENS)
    for alias, spec in list(CATALOGUE.items()):
        if id(spec) in widened:
            CATALOGUE[alias] = widened[id(spec)]


_accept_tokens()
