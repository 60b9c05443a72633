"""The PyTorch backend applies each layer's init (issue #24): the generated `__init__`
draws every written init (torch.nn.init's spelling, torchvision's way) and leaves every
unwritten tensor as PyTorch starts it; `build_model(seed=...)` gives the same weights on
every run.

Each parameter tensor of a built model is checked against `initializers.resolve(node)` of
the layer node it implements (a forward pass pairs modules with nodes, as
tests/backends.py does), with tests/init_stats.py's KS test at a Bonferroni threshold.
"""

from __future__ import annotations

import pytest
from backends import NO_MODULE, build_torch, example_input, layer_shapes, torch_source
from conftest import ARCHITECTURES, compile_text, need
from init_stats import drawn_from

from netdsl import compile_file
from netdsl import initializers as I

torch = need("torch")
nn = torch.nn


def net(body: str, top: str = "", shape: str = "64x4x4", params: str = "") -> str:
    lines = "".join(f"    {line}\n" for line in body.splitlines())
    return f"{top}network n{params}:\n    input {shape}\n{lines}"


def tensors(network, model, module) -> list[tuple]:
    """(node, Resolved, the model's tensor) for every initialised tensor of every layer
    the model builds (train-time-only parts aside: they do not run in eval mode)."""
    inputs = [example_input(node, 1) for node in network.inputs.values()]

    def run():
        with torch.no_grad():
            model(*inputs)

    seen = layer_shapes(model, module, run)
    expected = [
        n
        for n in network.nodes()
        if n.op not in NO_MODULE and not n.train_only and len(n.inputs) < 2
    ]
    assert len(seen) == len(expected)
    found = []
    for node, (path, _, _) in zip(expected, seen):
        layer = model.get_submodule(path)
        for r in I.resolve(node):
            found.append((node, r, layer.get_parameter(r.tensor.role)))
    return found


def check(network, model, module, written: bool | None = None) -> int:
    """Every tensor drawn from what resolve() says (and, where `written` is given, every
    one's init written or not); the number of tensors checked."""
    found = tensors(network, model, module)
    failures = []
    for node, r, tensor in found:
        assert tuple(tensor.shape) == r.shape, (node.id, r.tensor.role, tensor.shape, r.shape)
        if written is not None:
            assert r.written == written, (node.id, r.tensor.role)
        values = tensor.detach().double().numpy()
        ok, why = drawn_from(values, I.distribution(r.init, *r.fans), tests=len(found))
        if not ok:
            failures.append(f"{node.id}.{r.tensor.role} ({I.describe(r)}): {why}")
    assert not failures, "\n".join(failures)
    return len(found)


def build(text: str, **params):
    network = compile_text(text)
    module, model = build_torch(network, **params)
    return network, module, model


def checked(text: str, written: bool | None = None, **params) -> tuple:
    network, module, model = build(text, **params)
    check(network, model, module, written)
    return network, module, model


# ---- every family, on 32x32x3x3 convs -------------------------------------------------------

FAMILIES = {
    "zeros": "zeros",
    "ones": "ones",
    "constant": "0.5",
    "normal": "normal(0.1, 0.02)",
    "uniform": "uniform(-0.3, 0.2)",
    "trunc_normal": "trunc_normal(0.01, 0.05, -0.06, 0.08)",
    "xavier_uniform": "xavier_uniform(gain=2)",
    "xavier_normal": "xavier_normal",
    "kaiming_uniform": "kaiming_uniform(fan_out, relu)",
    "kaiming_normal": "kaiming_normal(a=0.1)",
    "orthogonal": "orthogonal(gain=1.5)",
    "variance_scaling": "variance_scaling(0.5, fan_avg, uniform)",
    "glorot_uniform": "glorot_uniform",
    "glorot_normal": "glorot_normal",
    "he_uniform": "he_uniform",
    "he_normal": "he_normal",
    "lecun_uniform": "lecun_uniform",
    "lecun_normal": "lecun_normal",
    "torch_default": "torch_default",
}


def test_every_family_draws_its_distribution():
    assert set(FAMILIES) == set(I.FAMILIES)
    body = "\n+ ".join(f"conv 32 k=3 p=1 init={text}" for text in FAMILIES.values())
    # the other variance_scaling forms, and the biases: constants, draws, torch_default's
    body += (
        "\n+ conv 32 k=3 p=1 init=variance_scaling(2, fan_out, untruncated_normal)"
        "\n+ conv 32 k=3 p=1 init=variance_scaling(3, fan_in, normal) bias_init=-2"
        "\n+ conv 32 k=3 p=1 init=variance_scaling(scale=0.1) bias_init=normal(0.5, 0.1)"
        "\n+ conv 32 k=3 p=1 bias_init=torch_default"
    )
    network, module, model = build(net(body, shape="32x4x4"))
    assert check(network, model, module) == 2 * (len(FAMILIES) + 4)
    source = torch_source(network)
    for call in (
        "nn.init.zeros_(self.conv1.weight)",
        "nn.init.ones_(self.conv2.weight)",
        "nn.init.constant_(self.conv3.weight, 0.5)",
        "nn.init.normal_(self.conv4.weight, mean=0.1, std=0.02)",
        "nn.init.uniform_(self.conv5.weight, -0.3, 0.2)",
        "nn.init.trunc_normal_(self.conv6.weight, mean=0.01, std=0.05, a=-0.06, b=0.08)",
        "nn.init.xavier_uniform_(self.conv7.weight, gain=2)",
        "nn.init.xavier_normal_(self.conv8.weight)",
        'nn.init.kaiming_uniform_(self.conv9.weight, mode="fan_out", nonlinearity="relu")',
        "nn.init.kaiming_normal_(self.conv10.weight, a=0.1)",
        "nn.init.orthogonal_(self.conv11.weight, gain=1.5)",
        '    self.conv12.weight, scale=0.5, mode="fan_avg", distribution="uniform"\n',
        "# Keras' glorot_uniform\n"
        '        variance_scaling_(self.conv13.weight, mode="fan_avg", distribution="uniform")',
        "variance_scaling_(self.conv16.weight, scale=2.0)  # Keras' he_normal",
        "# PyTorch's default\n        nn.init.kaiming_uniform_(self.conv19.weight, a=math.sqrt(5))",
        "nn.init.constant_(self.conv21.bias, -2)",
        "torch_default_bias_(self.conv23.bias, self.conv23.weight)  # PyTorch's default",
    ):
        assert call in source, call


def test_fans_are_pytorch_s_in_every_family():
    """A depthwise kernel's fan_in is k x k (PyTorch's), a grouped conv's C/g x k x k, a
    transposed conv's out/g x k x k (its weight is in x out/g x k x k)."""
    body = (
        "dwconv 5 p=2 m=8 init=he_normal bias_init=torch_default\n"
        "+ conv 64 k=3 p=1 g=4 init=lecun_uniform\n"
        "+ conv_transpose 64 k=4 s=2 p=1 init=glorot_normal bias_init=torch_default\n"
        "+ conv_transpose 64 k=3 p=1 g=2 init=kaiming_normal(fan_out)"
    )
    checked(net(body))


# ---- every op with weights ------------------------------------------------------------------

# op -> (the layer, its inits, the input)
OPS = {
    "conv": ("conv 64 k=3", "init=kaiming_normal(fan_out, relu) bias_init=-1", "64x4x4"),
    "dwconv": ("dwconv 5 p=2 m=4", "init=normal(0, 0.1) bias_init=uniform(-1, 1)", "64x4x4"),
    "sepconv": ("sepconv 64 k=5 p=2 m=4", "init=xavier_normal bias_init=0.1", "64x4x4"),
    "conv_transpose": ("conv_transpose 64 k=4 s=2", "init=he_uniform bias_init=0.5", "64x4x4"),
    "fc": ("fc 256", "init=normal(0, 0.01) bias_init=-3", "512"),
    "fc_gap": ("gap + fc 64", "init=kaiming_uniform(fan_out) bias_init=torch_default", "512x2x2"),
    "fc_tokens": ("fc 256", "init=trunc_normal(std=0.02) bias_init=normal(0, 1e-6)", "16x128"),
    "pointwise_fc": ("pointwise_fc 128", "init=orthogonal bias_init=0.2", "64x4x4"),
    "patch_embed": ("patch_embed 192 8", "init=lecun_normal bias_init=0", "3x32x32"),
    "attention": ("attention 4", "init=xavier_uniform(gain=0.5) bias_init=0.3", "16x128"),
    "bn": ("bn", "gamma_init=normal(1, 0.02) beta_init=uniform(-0.1, 0.1)", "1024x2x2"),
    "bn_no_scale": ("bn scale=false", "beta_init=normal(0, 0.5)", "1024x2x2"),
    "layernorm": ("layernorm", "gamma_init=0.5 beta_init=trunc_normal(std=0.1)", "16x1024"),
    "layernorm_image": ("layernorm", "gamma_init=2 beta_init=normal(0, 0.1)", "1024x2x2"),
    "groupnorm": ("groupnorm 8", "gamma_init=uniform(0, 2) beta_init=-1", "1024x2x2"),
    "instancenorm": ("instancenorm affine=true", "gamma_init=0 beta_init=1", "1024x2x2"),
    "cls_token": ("cls_token n=8", "init=trunc_normal(std=0.02)", "16x512"),
    "pos_embed": ("pos_embed", "init=uniform(-1, 1)", "16x512"),
    "embedding": ("embedding 64", "init=normal(0, 0.5)", "16 tokens of 1000"),
}


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_op_applies_its_written_inits(op):
    layer, inits, shape = OPS[op]
    network, module, model = build(net(f"{layer} {inits}", shape=shape))
    assert check(network, model, module, written=True) >= 1


@pytest.mark.parametrize("op", sorted(OPS))
def test_unwritten_inits_are_pytorch_s_own(op):
    """No code for an unwritten init: every tensor starts as PyTorch (and the helper
    classes: PositionEmbedding's normal(0, 0.02), ClassToken's zeros) start it."""
    layer, _, shape = OPS[op]
    network, module, model = build(net(layer, shape=shape))
    source = torch_source(network)
    assert "nn.init" not in source and "variance_scaling_" not in source
    check(network, model, module, written=False)


def test_unwritten_inits_are_the_same_draws_as_plain_pytorch():
    """With one seed, a conv and a linear layer nobody inits are bit for bit PyTorch's."""
    network, module, _ = build(net("conv 8 k=3 + gap + fc 10", shape="3x8x8"))
    model = module.build_model(seed=5)
    torch.manual_seed(5)
    conv, fc = nn.Conv2d(3, 8, 3), nn.Linear(8, 10)
    assert torch.equal(model.conv.weight, conv.weight) and torch.equal(model.fc.bias, fc.bias)


# ---- parameters, defaults, loops, conditionals ----------------------------------------------

BLOCK = """\
block unit(c, zero=false) = conv3 c init=kaiming_normal(fan_out, relu) + bn gamma_init=(if zero then 0 else 1)
network n(z=false):
    input 3x8x8
    unit(4) + unit(4, zero=z) + gap + fc 10 bias_init=-2
"""


def test_a_block_parameter_in_an_init():
    network = compile_text(BLOCK)
    source = torch_source(network)
    assert "nn.init.constant_(self.bn.weight, 0 if zero else 1)" in source
    assert source.count("class Unit") == 1
    module, _ = build_torch(network)
    for z in (False, True):
        model = module.build_model(z=z)
        assert torch.equal(model.unit1.bn.weight, torch.ones(4))
        assert torch.equal(model.unit2.bn.weight, torch.zeros(4) if z else torch.ones(4))
        assert torch.equal(model.fc.bias, torch.full((10,), -2.0))


def test_a_block_parameter_in_an_init_s_arguments_keeps_one_class():
    text = """\
block unit(c, s=0.1) = conv 64 k=3 p=1 init=normal(0, s) bias_init=uniform(-s, s)
network n:
    input 64x4x4
    unit(64) + unit(64, s=0.5)
"""
    network, module, model = checked(text, written=True)
    source = torch_source(network)
    assert source.count("class Unit") == 1
    assert "nn.init.normal_(self.conv.weight, std=s)" in source
    assert "nn.init.uniform_(self.conv.bias, -s, s)" in source


def test_defaults_in_a_network_body_reach_the_blocks_of_used_files():
    text = net(
        "defaults conv init=zeros\ndefaults bn beta_init=0.5\nstem + stage(64, 2, zero=true)",
        top="use resnet\n",
        shape="3x32x32",
    )
    network, module, model = checked(text)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 8 and all(not m.weight.any() for m in convs)
    assert all(
        torch.equal(m.bias, torch.full_like(m.bias, 0.5))
        for m in model.modules()
        if isinstance(m, nn.BatchNorm2d)
    )


def test_file_defaults_reach_the_file_s_own_blocks_not_a_used_file_s():
    text = net(
        "stem + unit + gap + fc 10",
        top="use resnet\ndefaults conv init=ones\ndefaults fc bias_init=2\n"
        "block unit = conv 8 k=1 + relu\n",
        shape="3x32x32",
    )
    network, module, model = checked(text)
    assert torch.equal(model.unit.conv.weight, torch.ones_like(model.unit.conv.weight))
    assert torch.equal(model.fc.bias, torch.full((10,), 2.0))
    assert not torch.equal(
        model.stem.conv_bn.conv.weight, torch.ones_like(model.stem.conv_bn.conv.weight)
    )


def test_a_vgg_stage_list_inits_its_convs_in_one_loop():
    text = net(
        "defaults conv init=kaiming_normal(fan_out, relu) bias_init=0\nvgg_bn(2, 64) + vgg(3, 64)",
        top="use vgg\n",
    )
    network, module, model = checked(text, written=None)
    source = torch_source(network)
    loop = """\
        for m in self.convs:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
"""
    assert source.count(loop) == 2


def test_layers_of_one_class_that_start_differently_in_a_loop():
    """isinstance cannot tell them apart: each gets a slice of the Sequential."""
    text = net(
        "two(3)",
        top="block two(n) = [conv 64 k=3 p=1 init=zeros + bn + conv 64 k=1 init=ones"
        " + groupnorm 4 gamma_init=0.5 + relu]*n\n",
    )
    network, module, model = checked(text)
    source = torch_source(network)
    assert "for m in self.convs[::5]:\n            nn.init.zeros_(m.weight)" in source
    assert "for m in self.convs[2::5]:\n            nn.init.ones_(m.weight)" in source
    assert "if isinstance(m, nn.GroupNorm):" in source
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [float(m.weight.detach().mean()) for m in convs] == [0.0, 1.0] * 3


def test_an_init_that_reads_the_repetition_s_index():
    text = net(
        "b(8, 4)",
        top="block b(c, n) = [conv c k=3 p=1 init=normal(0, 0.1 * (i + 1)) + bn gamma_init=i"
        " + relu for i in range(1, n)]\n",
        shape="8x8x8",
    )
    network, module, model = checked(text)
    source = torch_source(network)
    assert "for i, m in zip(range(1, 1 + (n - 1)), self.convs[1::3]):" in source
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert [float(m.weight.detach().mean()) for m in norms] == [1.0, 2.0, 3.0]


def test_a_conditional_inits_the_branch_it_built():
    text = """\
block pick(c, s=1) = if s == 1 then conv c k=1 init=zeros else conv c k=3 s=s p=1 init=ones
network n(s=1):
    input 8x8x8
    pick(8, s) + pick(8, 2)
"""
    network, module, model = checked(text)
    for s in (1, 2):
        model = module.build_model(s=s)
        first = model.pick1.choice.weight.detach()
        assert float(first.mean()) == (0.0 if s == 1 else 1.0)


def test_a_bias_that_a_parameter_drops():
    text = """\
block unit(c, b=true) =
    sepconv c k=3 p=1 bias=b bias_init=0.5 + instancenorm affine=b gamma_init=2
    + tokens + attention 2 bias=b bias_init=0.1 + image 8 8
network n:
    input 8x8x8
    unit(8) + unit(8, b=false)
"""
    network, module, model = checked(text)
    source = torch_source(network)
    assert "if self.sepconv.pointwise.bias is not None:" in source
    assert "if self.attention.out_proj.bias is not None:" in source
    assert model.unit1.attention.out_proj.bias.eq(0.1).all()
    assert model.unit2.sepconv.pointwise.bias is None and model.unit2.instancenorm.weight is None


def test_an_anonymous_class_takes_the_parameters_its_inits_read():
    text = net(
        "[add(conv 8 k=3 p=1 init=normal(0, s) bias_init=s, id) + relu]*2",
        shape="8x8x8",
        params="(s=0.1)",
    )
    network, module, model = checked(text, written=True)
    assert "nn.init.constant_(self.conv.bias, s)" in torch_source(network)
    model = module.build_model(s=0.5)
    assert all(block.conv.bias.eq(0.5).all() for block in model.convs)


# ---- the seed ---------------------------------------------------------------------------


def test_one_seed_gives_the_same_weights():
    network, module, _ = build(net("conv 16 k=3 init=he_normal + bn + gap + fc 10", shape="3x8x8"))
    first = module.build_model(seed=3).state_dict()
    torch.rand(100)  # whatever ran in between
    again = module.build_model(seed=3).state_dict()
    other = module.build_model(seed=4).state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["conv.weight"], other["conv.weight"])


def test_a_network_parameter_named_seed_keeps_its_name():
    network = compile_text(net("conv c k=3", shape="3x8x8", params="(c=4, seed=1)"))
    source = torch_source(network)
    assert "def build_model(c: int = 4, seed: int = 1, seed_: int | None = None) -> N:" in source
    assert "torch.manual_seed(seed_)" in source


# ---- what a reader sees ---------------------------------------------------------------------

PROGRAM = """\
defaults fc init=normal(0, 0.01) bias_init=0

network n(z=false):
    defaults conv init=kaiming_normal(fan_out, relu)
    input 3x8x8
    conv 4 k=3 bias_init=-2 + relu
    + conv 4 k=3 init=trunc_normal(std=0.1) + bn gamma_init=(if z then 0 else 1)
    + gap + fc 10 + fc 5 init=he_normal bias_init=uniform(-0.1, 0.1)
"""

EXPECTED = """\
        self.fc2 = nn.Linear(10, 5)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        nn.init.constant_(self.conv1.bias, -2)
        nn.init.trunc_normal_(self.conv2.weight, std=0.1)
        nn.init.constant_(self.bn.weight, 0 if z else 1)
        nn.init.normal_(self.fc1.weight, std=0.01)
        nn.init.zeros_(self.fc1.bias)
        variance_scaling_(self.fc2.weight, scale=2.0)  # Keras' he_normal
        nn.init.uniform_(self.fc2.bias, -0.1, 0.1)

    def forward(self, x: Tensor) -> Tensor:
"""

BUILDER = '''\
def build_model(z: bool = False, seed: int | None = None) -> N:
    """Build the network; keyword arguments override the .net file's parameters.

    seed: when given, torch.manual_seed(seed) first, so that one seed gives the
    same initial weights on every run.
    """
    if seed is not None:
        torch.manual_seed(seed)
    return N(z=z)
'''


def test_the_generated_lines():
    network, module, model = checked(PROGRAM, written=None)
    source = torch_source(network)
    assert EXPECTED in source and BUILDER in source
    assert "def variance_scaling_(" in source and "import math\n" in source
    assert "torch_default_bias_" not in source


# ---- the zoo ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.stem for p in ARCHITECTURES.glob("*.net")))
def test_zoo_tensors_start_as_their_inits_say(name):
    network = compile_file(ARCHITECTURES / f"{name}.net")
    module, model = build_torch(network)
    check(network, model, module)
