"""Initializers in the language: how they are written, which tensor each sets, the fans it
reads, and that each family's distribution is the one torch.nn.init draws."""

from __future__ import annotations

import math

import pytest

import netdsl
from netdsl import initializers as I
from netdsl.errors import NetdslError
from tests.init_stats import drawn_from


def nodes(source: str) -> dict:
    net = netdsl.load(source).network
    return {n.id: n for n in net.ordered if n.op not in ("input",)}


def inits(source: str) -> dict:
    """{(node id, tensor role): (init text, written)}."""
    return {
        (node_id, r.tensor.role): (str(r.init), r.written)
        for node_id, n in nodes(source).items()
        for r in I.resolve(n)
    }


def net(body: str, top: str = "", shape: str = "3x16x16") -> str:
    lines = "".join(f"    {line}\n" for line in body.splitlines())
    return f"{top}network n:\n    input {shape}\n{lines}"


def test_families_words_numbers_and_keywords():
    got = inits(
        net(
            "conv 8 k=3 init=kaiming_normal(relu, fan_out) bias_init=-2\n"
            "+ conv 8 k=3 init=normal(0, 0.01) bias_init=uniform(b=0.5)\n"
            "+ conv 8 k=3 init=he_normal bias_init=zeros\n"
            "+ bn gamma_init=0 beta_init=(0.5 * 2)"
        )
    )
    assert got[("conv1", "weight")] == ("kaiming_normal(fan_out, relu)", True)
    assert got[("conv1", "bias")] == ("-2", True)
    assert got[("conv2", "weight")] == ("normal(std=0.01)", True)
    assert got[("conv2", "bias")] == ("uniform(b=0.5)", True)
    assert got[("conv3", "weight")] == ("he_normal", True)
    assert got[("bn", "weight")] == ("0", True)
    assert got[("bn", "bias")] == ("1", True)


def test_unwritten_tensors_start_as_pytorch_starts_them():
    got = inits(
        net(
            "conv 8 k=3 + bn + tokens + attention 2 + layernorm + cls_token + pos_embed"
            " + token_pool + fc 10"
        )
    )
    assert got == {
        ("conv", "weight"): ("torch_default", False),
        ("conv", "bias"): ("torch_default", False),
        ("bn", "weight"): ("ones", False),
        ("bn", "bias"): ("zeros", False),
        ("attention", "in_proj_weight"): ("xavier_uniform", False),
        ("attention", "in_proj_bias"): ("zeros", False),
        ("attention", "out_proj.weight"): ("torch_default", False),
        ("attention", "out_proj.bias"): ("zeros", False),
        ("layernorm", "weight"): ("ones", False),
        ("layernorm", "bias"): ("zeros", False),
        ("cls_token", "token"): ("zeros", False),
        ("pos_embed", "embedding"): ("normal(std=0.02)", False),
        ("fc", "weight"): ("torch_default", False),
        ("fc", "bias"): ("torch_default", False),
    }


def test_tensors_without_a_bias_or_scale_have_no_init():
    got = inits(net("conv 8 k=3 bias=false + bn scale=false + gap + fc 4 bias=false"))
    assert set(got) == {("conv", "weight"), ("bn", "bias"), ("fc", "weight")}


def test_fans_are_pytorchs():
    found = nodes(
        net(
            "conv 8 k=3 g=1 + conv 16 k=(1, 5) g=4 + dwconv3 m=2 + sepconv 12 k=5"
            " + conv_transpose 6 k=4 s=2 g=2 + gap + fc 10"
        )
    )
    fans = {(n, r.tensor.role): r.fans for n, node in found.items() for r in I.resolve(node)}
    assert fans[("conv1", "weight")] == (3 * 9, 8 * 9)
    assert fans[("conv2", "weight")] == (8 // 4 * 5, 16 * 5)  # grouped: c_in/g x k_h x k_w
    assert fans[("dwconv", "weight")] == (9, 32 * 9)  # depthwise: k x k in, C x m x k x k out
    assert fans[("sepconv", "depthwise.weight")] == (25, 32 * 25)
    assert fans[("sepconv", "pointwise.weight")] == (32, 12)
    assert fans[("sepconv", "pointwise.bias")] == (32, 12)  # the bias reads its weight's
    # a transposed conv's weight is (c_in, c_out/g, k, k): PyTorch's fan_in reads dim 1
    assert fans[("conv_transpose", "weight")] == (6 // 2 * 16, 12 * 16)
    assert fans[("fc", "weight")] == (6, 10)


def test_defaults_at_file_level_and_in_a_network_body():
    source = (
        "use resnet\n"
        "defaults fc init=zeros\n"
        "network n:\n"
        "    defaults conv init=kaiming_normal(fan_out, relu)\n"
        "    defaults bn beta_init=0.5\n"
        "    defaults fc init=ones\n"
        "    input 3x32x32\n"
        "    conv_bn(16) + relu + basic_stage(16, 1)\n"
        "    + conv 8 k=1 init=orthogonal + gap + fc 10\n"
    )
    got = inits(source)
    stdlib_convs = [k for k in got if k[1] == "weight" and k[0].endswith(".conv")]
    assert len(stdlib_convs) == 3  # conv_bn.conv and basic's two
    for key in stdlib_convs:  # the network's defaults reach the standard library's blocks
        assert got[key] == ("kaiming_normal(fan_out, relu)", True)
    assert got[("conv_bn.bn", "bias")] == ("0.5", True)
    assert got[("conv", "weight")] == ("orthogonal", True)  # its own argument wins
    assert got[("fc", "weight")] == ("zeros", True)  # the file's defaults beat the network's


def test_a_block_parameter_sets_an_init_and_stays_a_parameter():
    source = (
        "block unit(c, zero=false) = conv3 c bias=false + bn gamma_init=(if zero then 0 else 1)\n"
        "network n(z=false):\n"
        "    input 3x8x8\n"
        "    unit(4) + unit(4, zero=z)\n"
    )
    bn = nodes(source)["unit2.bn"]
    (weight, _) = I.resolve(bn)
    assert weight.init.family == "constant"
    assert "zero" in str(weight.init["value"].expr)  # traced: the generated code keeps it
    switched = netdsl.load(source, params={"z": True}).network
    gamma = [I.resolve(n)[0] for n in switched.ordered if n.id == "unit2.bn"][0]
    assert gamma.init.value("value") == 0


def test_init_words_are_words_even_where_they_name_layers():
    got = inits(net("conv 8 k=3 init=variance_scaling(2, fan_avg, uniform)"))
    assert got[("conv", "weight")] == ("variance_scaling(scale=2, fan_avg, uniform)", True)
    got = inits(net("conv 8 k=3 init=kaiming_uniform(fan_in, leaky_relu, 0.2)"))
    assert got[("conv", "weight")] == ("kaiming_uniform(a=0.2)", True)


@pytest.mark.parametrize(
    "layer, message",
    [
        ("conv 8 k=3 init=kaiming_normal(fanout)", "kaiming_normal: unexpected word 'fanout'"),
        ("conv 8 k=3 init=normal(0, 1, 2)", "normal takes 2 numbers"),
        ("conv 8 k=3 init=normal(std=-1)", "normal: 'std' must be a positive number"),
        ("conv 8 k=3 init=trunc_normal(a=2, b=1)", "trunc_normal: a must be below b, got a=2, b=1"),
        ("conv 8 k=3 init=relu", "conv: 'init' must be an initializer"),
        ("fc 4 init=constant()", "constant needs 'value'"),
        ("bn gamma_init=he_normal", "bn: gamma_init=he_normal needs a tensor of two or more"),
        ("layernorm beta_init=torch_default", "layernorm: torch_default applies to conv"),
    ],
)
def test_init_mistakes_are_located_errors(layer, message):
    with pytest.raises(NetdslError) as caught:
        netdsl.load(net(layer))
    assert caught.value.message.startswith(message)
    assert caught.value.span.line == 3


def test_a_block_has_no_defaults_of_its_own():
    with pytest.raises(NetdslError) as caught:
        netdsl.load("block b:\n    defaults conv init=zeros\n    conv3 4\n" + net("b"))
    assert caught.value.message.startswith("`defaults` belongs in a network")


# ---- each family draws what torch.nn.init draws ------------------------------------------

torch = pytest.importorskip("torch")
SHAPE = (128, 64, 3, 3)  # PyTorch's conv weight layout: fan_in 576, fan_out 1,152

TORCH_INITS = {
    "normal(0.5, 2)": lambda w: torch.nn.init.normal_(w, 0.5, 2),
    "uniform(-0.3, 0.7)": lambda w: torch.nn.init.uniform_(w, -0.3, 0.7),
    "trunc_normal(std=0.5, a=-0.4, b=1)": lambda w: torch.nn.init.trunc_normal_(
        w, std=0.5, a=-0.4, b=1
    ),
    "xavier_uniform(gain=2)": lambda w: torch.nn.init.xavier_uniform_(w, gain=2),
    "xavier_normal": torch.nn.init.xavier_normal_,
    "kaiming_normal(fan_out, relu)": lambda w: torch.nn.init.kaiming_normal_(
        w, mode="fan_out", nonlinearity="relu"
    ),
    "kaiming_uniform(tanh)": lambda w: torch.nn.init.kaiming_uniform_(w, nonlinearity="tanh"),
    "kaiming_uniform(leaky_relu, a=0.1)": lambda w: torch.nn.init.kaiming_uniform_(w, a=0.1),
    "torch_default": lambda w: torch.nn.init.kaiming_uniform_(w, a=math.sqrt(5)),
    "orthogonal(gain=3)": lambda w: torch.nn.init.orthogonal_(w, gain=3),
    "constant(-2)": lambda w: torch.nn.init.constant_(w, -2),
}


@pytest.mark.parametrize("written", sorted(TORCH_INITS))
def test_each_family_is_torch_nn_inits(written):
    node = nodes(net(f"conv 128 k=3 init={written}", shape="64x8x8"))["conv"]
    weight = I.resolve(node)[0]
    assert weight.shape == SHAPE
    torch.manual_seed(0)
    values = TORCH_INITS[written](torch.empty(SHAPE)).numpy()
    ok, why = drawn_from(values, I.distribution(weight.init, *weight.fans))
    assert ok, why


KERAS_AS_VARIANCE_SCALING = {
    "glorot_uniform": (1.0, "fan_avg", "uniform"),
    "glorot_normal": (1.0, "fan_avg", "truncated_normal"),
    "he_normal": (2.0, "fan_in", "truncated_normal"),
    "lecun_uniform": (1.0, "fan_in", "uniform"),
}


@pytest.mark.parametrize("name", sorted(KERAS_AS_VARIANCE_SCALING))
def test_keras_names_are_keras_variance_scaling(name):
    """Checked against the formula of keras.initializers.VarianceScaling (std / .8796 for
    the truncated normal, cut at 2 std), without importing Keras here."""
    scale, mode, distribution = KERAS_AS_VARIANCE_SCALING[name]
    fan_in, fan_out = 576, 1152
    fan = {"fan_in": fan_in, "fan_avg": (fan_in + fan_out) / 2}[mode]
    d = I.distribution(I.named(name), fan_in, fan_out)
    if distribution == "uniform":
        assert (d.kind, d.b) == ("uniform", pytest.approx(math.sqrt(3 * scale / fan)))
    else:
        std = math.sqrt(scale / fan) / 0.87962566103423978
        assert (d.kind, d.b, d.hi) == ("trunc_normal", pytest.approx(std), pytest.approx(2 * std))


def test_explain_shows_each_tensors_init(tmp_path):
    from netdsl.explain import explain

    text = explain(
        netdsl.load(net("conv 64 k=3 init=kaiming_normal(fan_out, relu) bias_init=0")).network
    )
    assert "init    weight: kaiming_normal(fan_out, relu) N(0, 0.05893^2), fan_out = 576" in text
    assert "        bias" in text and "= 0" in text
