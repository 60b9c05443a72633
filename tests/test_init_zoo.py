"""The zoo states its references' initialisation (issue 24), checked without the references.

Each file's header names its scheme (`# Init: ...`), and the inits the files write
resolve (netdsl.initializers.resolve) to what that line says: the highway network's
gate biases, torchvision's zero_init_residual and timm's zero_init_last switches, and
whole families of files (Keras applications, pytorchcv, torchvision's ResNets, the files
whose reference sets no init). tests/test_init_references.py checks the torchvision and
pytorchcv files against the references' own tensors.
"""

from __future__ import annotations

import math

import pytest
from conftest import ARCHITECTURES
from test_zoo import REFERENCES, net, zoo_entries

from netdsl import initializers

FILES = sorted(p.stem for p in ARCHITECTURES.glob("*.net"))

# the conv-like layers whose weight a scheme sets (a sepconv has two: depthwise, pointwise)
CONVS = ("conv", "dwconv", "sepconv", "pointwise_fc", "conv_transpose", "patch_embed")


def tensors(network) -> list[tuple]:
    """(node, Resolved) of every initialised tensor, in order."""
    return [(node, r) for node in network.nodes() for r in initializers.resolve(node)]


def header_init(name: str) -> str:
    """The text of the file's `# Init:` header line and its continuation lines."""
    lines = []
    for raw in (ARCHITECTURES / f"{name}.net").read_text().splitlines():
        if not raw.startswith("#"):
            break
        lines.append(raw[1:].strip())
    starts = [i for i, line in enumerate(lines) if line.startswith("Init:")]
    assert len(starts) == 1, f"{name}: {len(starts)} '# Init:' lines in the header"
    text = [lines[starts[0]]]
    for line in lines[starts[0] + 1 :]:
        if not line or (":" in line and line.split(":")[0].replace(" ", "").isalnum()):
            break
        text.append(line)
    return " ".join(text)[len("Init:") :].strip()


@pytest.mark.parametrize("name", FILES)
def test_every_zoo_file_names_its_init(name):
    text = header_init(name)
    assert len(text) > 20, text
    source = REFERENCES.get(name, ("paper",))[0]  # paper-only files have no row
    # a library reference's scheme is named after the library (or, where it sets none, says
    # so); a paper's after the paper, or PyTorch's default where the paper states none
    said = {
        "torchvision": "torchvision's",
        "pytorchcv": "pytorchcv's",
        "timm": "timm's",
        "keras_applications": "Keras'",
        "transformers_lib": "transformers'",
    }.get(source)
    if said and name != "inception_resnet_v1":  # pytorchcv's init never applies there
        assert text.startswith(said), text
    if name == "inception_resnet_v1":
        assert "PyTorch's defaults" in text
    if source in ("hand_built", "paper"):
        assert text.startswith(("the paper's", "PyTorch's defaults")), text


def test_zoo_page_lists_each_files_init():
    entries = {e.name: e for e in zoo_entries()}  # docs/zoo.md's Initialisation list
    assert set(entries) == set(FILES)
    for name, entry in entries.items():
        assert entry.header.init and header_init(name).startswith(entry.header.init[:40]), name


def test_highway_gate_biases_start_at_the_papers_constant():
    network = net("highway")
    gates = [(n, r) for n, r in tensors(network) if ".gate" in n.id and r.tensor.role == "bias"]
    assert len(gates) == 8  # depth 10: one plain layer, 8 highway layers, the classifier
    for node, r in gates:
        d = initializers.distribution(r.init, *r.fans)
        assert (d.kind, d.a) == ("constant", -2.0), (node.id, d)
        assert r.written
    # every other tensor keeps PyTorch's default
    others = [(n, r) for n, r in tensors(network) if (n, r) not in gates]
    assert others and not any(r.written for _, r in others)
    # the bias is a parameter of the network: another depth's paper value
    deeper = net("highway", depth=20, gate_bias=-3)
    biases = {
        initializers.distribution(r.init, *r.fans).a
        for n, r in tensors(deeper)
        if ".gate" in n.id and r.tensor.role == "bias"
    }
    assert biases == {-3.0}


def last_bn_gammas(network) -> tuple[list, list]:
    """(zero, one): the BatchNorm scales that start at 0 and at 1."""
    zero, one = [], []
    for node, r in tensors(network):
        if node.op == "bn" and r.tensor.role == "weight":
            value = initializers.distribution(r.init, *r.fans).a
            (zero if value == 0 else one).append(node.id)
    return zero, one


@pytest.mark.parametrize(
    "name, switch, units",
    [
        ("resnet50", "zero_init_residual", 16),
        ("resnet18", "zero_init_residual", 8),
        ("resnext50_32x4d", "zero_init_residual", 16),
        ("wide_resnet50_2", "zero_init_residual", 16),
    ],
)
def test_zero_init_residual_zeroes_each_branchs_last_batchnorm(name, switch, units):
    zero, one = last_bn_gammas(net(name))
    assert not zero  # off by default, as torchvision's switch
    zero, one = last_bn_gammas(net(name, **{switch: "true"}))
    assert len(zero) == units, zero
    last = "conv_bn3" if units == 16 else "conv_bn2"  # bottleneck: bn3; basic unit: bn2
    assert all(f"{last}.bn" in z for z in zero), zero
    assert not any(f"{last}.bn" in o and "shortcut" not in o for o in one)


def test_zero_init_residual_reaches_the_generated_code():
    """build_model(zero_init_residual=True) zeroes the 8 last BatchNorm scales of ResNet-18's
    residual branches, and build_model() none."""
    from backends import build_torch
    from conftest import need

    nn = need("torch").nn

    def zero_scales(**params) -> int:
        _, model = build_torch(net("resnet18"), **params)
        norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        assert len(norms) == 20
        return sum(1 for m in norms if not m.weight.detach().any())

    assert zero_scales() == 0
    assert zero_scales(zero_init_residual=True) == 8


def test_se_resnet50_zero_inits_like_timm():
    zero, _ = last_bn_gammas(net("se_resnet50"))  # timm's zero_init_last=True by default
    assert len(zero) == 16
    zero, _ = last_bn_gammas(net("se_resnet50", zero_init_last="false"))
    assert not zero


def weights_and_biases(network, ops=CONVS + ("fc",)) -> tuple[set, set]:
    """The distinct inits of the weights and of the biases of layers of `ops`."""
    weights, biases = set(), set()
    for node, r in tensors(network):
        if node.op in ops:
            (biases if r.tensor.bias else weights).add(str(r.init))
    return weights, biases


KERAS = ("mobilenet", "xception", "resnet50_v2", "inception_resnet_v2")
PYTORCHCV = (
    "bn_inception",
    "densenet_bc_cifar",
    "fractalnet",
    "nasnet_large",
    "nasnet_mobile",
    "preresnet_cifar",
    "shufflenet_g3",
    "wide_resnet_cifar",
)
TORCH_DEFAULTS = ("alexnet_torchvision", "shufflenet_v2", "inception_v4", "inception_resnet_v1")
TORCHVISION_RESNETS = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "wide_resnet50_2",
)


@pytest.mark.slow
def test_zoo_families_resolve_to_their_schemes():
    for name in KERAS:  # Keras' defaults, as PyTorch-side inits
        assert weights_and_biases(net(name)) == ({"glorot_uniform"}, {"0"}), name
    for name in PYTORCHCV:  # every nn.Conv2d, fc left at PyTorch's default
        weights, biases = weights_and_biases(net(name), CONVS)
        assert weights == {"kaiming_uniform"} and biases <= {"0"}, (name, weights, biases)
        assert weights_and_biases(net(name), ("fc",)) == ({"torch_default"}, {"torch_default"})
    for name in TORCH_DEFAULTS:  # the reference sets no init: nothing written
        assert not any(r.written for _, r in tensors(net(name))), name
    for name in TORCHVISION_RESNETS:
        weights, biases = weights_and_biases(net(name), CONVS)
        assert (weights, biases) == ({"kaiming_normal(fan_out, relu)"}, set()), name
        assert weights_and_biases(net(name), ("fc",)) == ({"torch_default"}, {"torch_default"})


@pytest.mark.slow
@pytest.mark.parametrize("name", FILES)
def test_every_tensor_resolves_to_a_finite_distribution(name):
    for node, r in tensors(net(name)):
        d = initializers.distribution(r.init, *r.fans)
        assert all(math.isfinite(x) for x in (d.a, d.b, d.lo, d.hi)), (node.id, d)
        assert initializers.describe(r)


def test_paper_inits():
    # AlexNet (Sec. 5): N(0, 0.01) weights, biases 1 in conv2, conv4, conv5, fc6, fc7
    for name in ("alexnet", "alexnet_one_tower"):
        ones = {n.id for n, r in tensors(net(name)) if r.tensor.bias and str(r.init) == "1"}
        named = {part for i in ones for part in i.split(".")}
        assert named >= {"conv2", "conv4", "conv5", "fc6", "fc7"} and not named & {"conv1", "fc8"}
        weights, biases = weights_and_biases(net(name))
        assert weights == {"normal(std=0.01)"} and biases == {"0", "1"}
    # LeNet-5 (Appendix C): U(+-2.4 / F), F the fan-in
    for node, r in tensors(net("lenet5")):
        d = initializers.distribution(r.init, *r.fans)
        assert d.kind == "uniform" and d.b == pytest.approx(2.4 / r.fans[0]), node.id
    # U-Net (Sec. 3): N(0, sqrt(2 / N)), N = the fan-in
    for node, r in tensors(net("unet")):
        if node.op == "conv" and not r.tensor.bias:
            d = initializers.distribution(r.init, *r.fans)
            assert d.b == pytest.approx(math.sqrt(2 / r.fans[0])), node.id
