"""The Keras target starts every tensor from the distribution netdsl gives it.

`netdsl.initializers.resolve(node)` says what each of a layer's tensors starts from: the
init the file writes, or PyTorch's default. The generated Keras model must draw each
tensor from `initializers.distribution(init, *fans)` with PyTorch's fans, whatever Keras'
layout (a depthwise kernel (kh, kw, C, m), attention's (D, heads, D/heads) projections,
an embedding's table): every tensor is read back from the Keras model, laid out as
PyTorch lays it out (orthogonality is a property of that layout), and tested against
its distribution (tests/init_stats.py: one-sample KS, Bonferroni over the network's
tensors; constants exactly).
"""

from __future__ import annotations

import gc

import numpy as np
import pytest
from backends import build_keras
from conftest import compile_text, need
from init_stats import drawn_from

from netdsl import initializers
from netdsl.emit.keras import keras_name

# every op with weights, large enough for KS (a 64x64x3x3 conv, a 64x4096 fc); W: the
# weights' init, B: the biases', G: the norms' scale and shift, E: tokens and tables
PROBE = """\
network probe:
    input img 64x8x8
    input ids 16 tokens of 1024
    a = img + conv 64 k=3 p=1 {W} {B} + bn {G} + dwconv 3 p=1 m=2 {W} {B} + groupnorm 4 {G}
        + sepconv 64 3 p=1 {W} {B} + instancenorm affine=true {G}
        + conv_transpose 64 k=2 s=2 {W} {B} + pointwise_fc 64 {W} {B} + patch_embed 64 2 {W} {B}
        + pos_embed {E} + layernorm {G} + attention 4 {W} {B} + fc 64 {W} {B}
        + cls_token {E} + token_pool cls
    b = ids + embedding 64 {E} + token_pool mean
    c = img + flatten + fc 64 {W} {B}
    concat(a, b, c)
"""
WEIGHTED = (
    "conv",
    "dwconv",
    "sepconv",
    "conv_transpose",
    "fc",
    "pointwise_fc",
    "patch_embed",
    "attention",
)
NORMS = ("bn", "layernorm", "groupnorm", "instancenorm")
TOKENS = ("cls_token", "pos_embed", "embedding")

# the families a weight can start from (a matrix or a conv kernel: they read its fans)
WEIGHT_INITS = [
    "zeros",
    "ones",
    "0.05",
    "normal(0.1, 0.02)",
    "uniform(-0.3, 0.1)",
    "trunc_normal(std=0.02)",  # bounds at +-2 absolute: far beyond 2 std
    "trunc_normal(0.1, 0.5, -0.2, 0.9)",  # asymmetric bounds
    "trunc_normal(0, 0.5, -1, 1)",  # +-2 std: Keras' TruncatedNormal
    "xavier_uniform",
    "xavier_normal(gain=2)",
    "kaiming_uniform",
    "kaiming_uniform(fan_in, relu)",
    "kaiming_normal(fan_out, relu)",
    "kaiming_normal(fan_in, leaky_relu, a=0.2)",
    "kaiming_uniform(fan_out, tanh)",
    "orthogonal",
    "orthogonal(gain=0.5)",
    "variance_scaling(2, fan_avg, uniform)",
    "variance_scaling(0.5, fan_out)",
    "variance_scaling(1.5, fan_in, untruncated_normal)",
    "variance_scaling(1, fan_in, normal)",
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "torch_default",
]
# what a bias, or a norm's scale and shift, can start from (no fans of their own)
VECTOR_INITS = ["-2", "normal(1, 0.5)", "uniform(-0.1, 0.4)", "trunc_normal(0.5, 1, 0, 2)"]
# the fast set: one of each way the Keras code draws (a helper, a Keras initializer, a
# VarianceScaling of each distribution, Orthogonal); the others run with the slow tests
FAST = {
    "uniform(-0.3, 0.1)",
    "trunc_normal(std=0.02)",
    "trunc_normal(0, 0.5, -1, 1)",
    "xavier_normal(gain=2)",
    "kaiming_normal(fan_out, relu)",
    "kaiming_uniform(fan_out, tanh)",
    "orthogonal(gain=0.5)",
    "variance_scaling(0.5, fan_out)",
    "he_uniform",
    "torch_default",
    "-2",
    "trunc_normal(0.5, 1, 0, 2)",
}


def cases(inits: list[str]) -> list:
    return [i if i in FAST else pytest.param(i, marks=pytest.mark.slow) for i in inits]


def probe(weights: str = "", biases: str = "", norms: str = "", tokens: str = "") -> str:
    w = f"init={weights}" if weights else ""
    b = f"bias_init={biases}" if biases else ""
    e = f"init={tokens}" if tokens else ""
    return PROBE.format(W=w, B=b, G=norms, E=e)


def _layer(model, node):
    """The Keras layer holding a node's weights (a conv that strides and dilates is
    `_dilated`, a cropped transposed conv `_full`, patch_embed's projection `_conv`)."""
    names = {layer.name for layer in model.layers}
    for suffix in ("", "_dilated", "_full", "_conv"):
        if (
            keras_name(node) + suffix in names
            and model.get_layer(keras_name(node) + suffix).weights
        ):
            return model.get_layer(keras_name(node) + suffix)
    raise AssertionError(f"no Keras layer with weights for {node.id}")


def _np(variable) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float64)


def _depthwise(kernel: np.ndarray) -> np.ndarray:
    """(kh, kw, C, m) -> PyTorch's (C*m, 1, kh, kw) (output channel c*m + j)."""
    kh, kw, c, m = kernel.shape
    return kernel.transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw)


def torch_layout(model, node) -> dict[str, np.ndarray]:
    """{role: the Keras tensor laid out as PyTorch's} for one layer node (the roles of
    initializers.TENSORS; the inverse of netdsl.weights' conversions)."""
    layer = _layer(model, node)
    op = node.op
    out: dict[str, np.ndarray] = {}
    if op in ("conv", "conv_transpose", "patch_embed"):  # HWIO -> OIHW; (kh, kw, o, i) -> IOHW
        out["weight"] = _np(layer.kernel).transpose(3, 2, 0, 1)
    elif op == "dwconv":
        out["weight"] = _depthwise(_np(layer.kernel))
    elif op == "sepconv":
        out["depthwise.weight"] = _depthwise(_np(layer.depthwise_kernel))
        out["pointwise.weight"] = _np(layer.pointwise_kernel).transpose(3, 2, 0, 1)
        if layer.bias is not None:
            out["pointwise.bias"] = _np(layer.bias)
    elif op in ("fc", "pointwise_fc"):
        out["weight"] = _np(layer.kernel).T
    elif op in NORMS:
        if layer.scale:
            out["weight"] = _np(layer.gamma)
        if layer.center:
            out["bias"] = _np(layer.beta)
    elif op == "attention":
        d = node.shape[-1].value
        projections = (layer.query_dense, layer.key_dense, layer.value_dense)
        kernels = [_np(p.kernel).reshape(d, d) for p in projections]
        out["in_proj_weight"] = np.concatenate(kernels, axis=1).T  # (3D, D)
        out["out_proj.weight"] = _np(layer.output_dense.kernel).reshape(d, d).T
        if layer.output_dense.bias is not None:
            out["in_proj_bias"] = np.concatenate([_np(p.bias).ravel() for p in projections])
            out["out_proj.bias"] = _np(layer.output_dense.bias)
    elif op == "cls_token":
        out["token"] = _np(layer.token)
    elif op == "pos_embed":
        out["embedding"] = _np(layer.embedding)
    elif op == "embedding":
        out["weight"] = _np(layer.embeddings)
    if op in ("conv", "dwconv", "conv_transpose", "patch_embed", "fc", "pointwise_fc"):
        if layer.bias is not None:
            out["bias"] = _np(layer.bias)
    return out


def check_drawn(net, model) -> int:
    """Every tensor of every layer against its distribution; returns how many."""
    found = []
    for node in net.nodes():
        resolved = initializers.resolve(node)
        if not resolved:
            continue
        tensors = torch_layout(model, node)
        for r in resolved:
            values = tensors[r.tensor.role]
            assert values.shape == r.shape, f"{node.id} {r.tensor.role}: {values.shape}"
            found.append((node, r, values))
    failures = []
    for node, r, values in found:
        d = initializers.distribution(r.init, *r.fans)
        ok, why = drawn_from(values, d, tests=len(found))
        if not ok:
            failures.append(f"{node.id} {r.tensor.role} ({initializers.describe(r)}): {why}")
    assert not failures, "\n".join(failures)
    return len(found)


def build(text: str):
    keras = need("keras")
    net = compile_text(text)
    module, model = build_keras(net)
    return net, module, model, keras


def release(keras) -> None:
    """(Keras' session is cleared once, after the module: clearing it costs a second.)"""


@pytest.fixture(scope="module", autouse=True)
def _session():
    yield
    keras = need("keras")
    keras.backend.clear_session()
    gc.collect()


def test_unwritten_inits_are_pytorchs_defaults():
    """No init written: every tensor starts as PyTorch starts it (conv and linear
    weights and biases U(+-1/sqrt(fan_in)), attention's in-projection Glorot uniform
    over (3D, D), norms 1 and 0, class token 0, positions N(0, 0.02), tables N(0, 1))."""
    net, _, model, keras = build(probe())
    assert check_drawn(net, model) == 32
    release(keras)


@pytest.mark.parametrize("family", cases(WEIGHT_INITS))
def test_every_weight_init_on_every_op(family):
    """One init on every weight, class token, position embedding and table."""
    net, _, model, keras = build(probe(weights=family, tokens=family))
    check_drawn(net, model)
    release(keras)


@pytest.mark.parametrize("family", cases(VECTOR_INITS))
def test_every_bias_and_norm_init(family):
    net, _, model, keras = build(
        probe(biases=family, norms=f"gamma_init={family} beta_init={family}")
    )
    check_drawn(net, model)
    release(keras)


def test_a_bias_reads_its_weights_fan_in():
    """bias_init=torch_default: U(+-1/sqrt(fan_in)) of the weight the bias belongs to (a
    depthwise conv's k x k, a separable conv's pointwise C*m, attention's D)."""
    net, _, model, keras = build(probe(weights="zeros", biases="torch_default"))
    check_drawn(net, model)
    release(keras)


def test_a_block_parameter_in_an_init():
    """`init=normal(0, s)` in a block: each call draws with its own s, from the one
    builder function (s is its parameter in the Keras code); a network parameter too."""
    text = """\
block unit(s, zero=false) = conv 64 k=3 p=1 init=normal(0, s) bias_init=-s
    + bn gamma_init=(if zero then 0 else 1)
network n(z=true, slope=0.3):
    input 64x8x8
    unit(0.1) + unit(0.5, zero=z) + flatten
    + fc 64 init=kaiming_uniform(fan_in, leaky_relu, a=slope) bias_init=0
"""
    net, _, model, keras = build(text)
    check_drawn(net, model)
    convs = [n for n in net.nodes() if n.op == "conv"]
    assert [_np(_layer(model, n).kernel).std() for n in convs] == [
        pytest.approx(0.1, rel=0.05),
        pytest.approx(0.5, rel=0.05),
    ]
    assert [float(_np(_layer(model, n).bias)[0]) for n in convs] == [
        pytest.approx(-0.1),
        pytest.approx(-0.5),
    ]
    gammas = [_np(_layer(model, n).gamma) for n in net.nodes() if n.op == "bn"]
    assert np.all(gammas[0] == 1) and np.all(gammas[1] == 0)
    release(keras)


def test_block_parameters_render_as_the_builders_parameters():
    from backends import keras_source

    text = """\
block unit(c, s, zero=false) = conv c k=3 init=normal(0, s) bias_init=-s
    + bn gamma_init=(if zero then 0 else 1)
network n(z=false):
    input 8x8x8
    unit(8, 0.1) + unit(8, 0.5, zero=z) + gap + flatten + fc 10 init=kaiming_normal(fan_in, leaky_relu, a=0.2)
"""
    source = keras_source(compile_text(text))
    assert "def unit(x, c, s, zero=False, name=None):" in source
    assert "kernel_initializer=keras.initializers.RandomNormal(stddev=s)" in source
    assert "bias_initializer=keras.initializers.Constant(-s)" in source
    assert "gamma_initializer=keras.initializers.Constant(0 if zero else 1)" in source
    assert "x = unit(x, 8, 0.5, zero=z, " in source
    assert "scale=1.923076923076923" in source or "scale=25 / 13" in source


def test_the_same_seed_gives_the_same_weights():
    net, module, model, keras = build(probe(weights="trunc_normal(std=0.02)"))
    del model
    first = [np.asarray(w) for w in module.build_model(seed=3).get_weights()]
    again = [np.asarray(w) for w in module.build_model(seed=3).get_weights()]
    other = [np.asarray(w) for w in module.build_model(seed=4).get_weights()]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other) if a.std() > 0)
    release(keras)


def test_the_seed_keyword_steps_aside_for_a_network_parameter():
    """A network parameter named seed keeps its name; build_model's seed is then `seed_`,
    as in the PyTorch target, and train.py passes its --seed by that keyword."""
    from backends import keras_source, load_source

    from netdsl.emit import get_emitter

    need("keras")
    net = compile_text("network n(seed=3):\n    input 3x8x8\n    conv seed k=1\n")
    source = keras_source(net)
    assert "def build_model(seed: int = 3, seed_: int | None = None) -> keras.Model:" in source
    module = load_source(source)
    first, again = module.build_model(seed_=7), module.build_model(seed_=7)
    other = module.build_model(seed=4, seed_=8)
    assert first.output.shape[-1] == 3 and other.output.shape[-1] == 4
    assert all(np.array_equal(_np(a), _np(b)) for a, b in zip(first.weights, again.weights))
    train = get_emitter("keras").emit_train(net, "model")
    assert 'SEED_PARAM = "seed_"' in train
    plain = get_emitter("keras").emit_train(compile_text(PROBE_SMALL), "model")
    assert 'SEED_PARAM = "seed"' in plain


PROBE_SMALL = "network n:\n    input 3x8x8\n    conv 4 k=3 + gap + flatten + fc 2\n"


@pytest.mark.parametrize("inits", ["init=normal(0, 0.02) out_init=normal(0, 0.1)", "out_init=0.5"])
def test_attentions_output_projection_apart(inits):
    """out_init sets the output projection (GPT-2's scaled c_proj); init, else PyTorch's
    Glorot uniform, the query, key and value projections."""
    text = f"network n:\n    input 64x128\n    attention 4 {inits} + fc 8\n"
    net, _, model, _ = build(text)
    assert check_drawn(net, model) == 6
