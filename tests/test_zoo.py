"""The architecture zoo (issue #5): every file against its reference and its paper's tables.

Reference figures are a copy of the project's shared figures.json
(tests/reference_figures.json), so the tests never read outside the project.
Torchvision, timm and hand-built references count parameters without BatchNorm's
running statistics; Keras' count_params() includes them, so a Keras reference's
figure is our params + buffers.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
from conftest import ARCHITECTURES, ROOT

from netdsl import compile_file, zoo
from netdsl.cli import main
from netdsl.compiler import parse_param, resolve
from netdsl.ir import Network, Scope

FIGURES = json.loads((Path(__file__).parent / "reference_figures.json").read_text())

# zoo file -> (source, key) of the implementation it reproduces
REFERENCES = {
    "lenet5": ("hand_built", "lenet5"),
    "alexnet": ("hand_built", "alexnet_227_two_tower"),
    "alexnet_one_tower": ("hand_built", "alexnet_227_one_tower"),
    "alexnet_torchvision": ("torchvision", "alexnet"),
    "vgg11": ("torchvision", "vgg11"),
    "vgg13": ("torchvision", "vgg13"),
    "vgg16": ("torchvision", "vgg16"),
    "vgg19": ("torchvision", "vgg19"),
    "vgg16_bn": ("torchvision", "vgg16_bn"),
    "googlenet": ("torchvision", "googlenet_aux"),
    "inception_v3": ("torchvision", "inception_v3"),
    "inception_v4": ("timm", "inception_v4"),
    "inception_resnet_v2": ("keras_applications", "InceptionResNetV2"),
    "xception": ("keras_applications", "Xception"),
    "resnet18": ("torchvision", "resnet18"),
    "resnet34": ("torchvision", "resnet34"),
    "resnet50": ("torchvision", "resnet50"),
    "resnet101": ("torchvision", "resnet101"),
    "resnet152": ("torchvision", "resnet152"),
    "resnet50_v2": ("keras_applications", "ResNet50V2"),
    "wide_resnet50_2": ("torchvision", "wide_resnet50_2"),
    "resnext50_32x4d": ("torchvision", "resnext50_32x4d"),
    "se_resnet50": ("timm", "seresnet50"),
    "densenet121": ("torchvision", "densenet121"),
    "densenet169": ("torchvision", "densenet169"),
    "densenet201": ("torchvision", "densenet201"),
    "densenet161": ("torchvision", "densenet161"),
    "mobilenet": ("keras_applications", "MobileNet"),
    "efficientnet": ("torchvision", "efficientnet_b0"),
    "squeezenet1_0": ("torchvision", "squeezenet1_0"),
    "squeezenet1_1": ("torchvision", "squeezenet1_1"),
    "regnet": ("torchvision", "regnet_y_400mf"),
    "convnext": ("torchvision", "convnext_tiny"),
    "mobilenet_v2": ("torchvision", "mobilenet_v2"),
    "mobilenet_v3_large": ("torchvision", "mobilenet_v3_large"),
    "mobilenet_v3_small": ("torchvision", "mobilenet_v3_small"),
    "mnasnet": ("torchvision", "mnasnet1_0"),
    "nasnet_mobile": ("pytorchcv", "nasnet_4a1056"),
    "nasnet_large": ("pytorchcv", "nasnet_6a4032"),
    "bn_inception": ("pytorchcv", "bninception"),
    "inception_resnet_v1": ("pytorchcv", "inceptionresnetv1"),
    "shufflenet_g3": ("pytorchcv", "shufflenet_g3_w1"),
    "shufflenet_v2": ("torchvision", "shufflenet_v2_x1_0"),
    "preresnet_cifar": ("pytorchcv", "preresnet164bn_cifar10"),
    "wide_resnet_cifar": ("pytorchcv", "wrn28_10_cifar10"),
    "densenet_bc_cifar": ("pytorchcv", "densenet100_k12_bc_cifar10"),
    "fractalnet": ("pytorchcv", "fractalnet_cifar10"),
    "fcn_resnet50": ("torchvision", "fcn_resnet50"),
    "vit": ("torchvision", "vit_b_16"),
    "gpt2": ("transformers_lib", "GPT2LMHeadModel(GPT2Config())"),
}
# (zoo file, its parameters) -> (source, key) of the model it reproduces: the rows above, and
# the variants a file's parameters select (test_references.py loads each one's weights)
VARIANTS = {
    **{(name, ()): reference for name, reference in REFERENCES.items()},
    ("shufflenet_g3", (("g", 1),)): ("pytorchcv", "shufflenet_g1_w1"),
    ("preresnet_cifar", (("depth", 1001),)): ("pytorchcv", "preresnet1001_cifar10"),
    ("efficientnet", (("b", 1),)): ("torchvision", "efficientnet_b1"),
    ("shufflenet_v2", (("width", 0.5),)): ("torchvision", "shufflenet_v2_x0_5"),
    ("shufflenet_v2", (("width", 1.5),)): ("torchvision", "shufflenet_v2_x1_5"),
    ("shufflenet_v2", (("width", 2.0),)): ("torchvision", "shufflenet_v2_x2_0"),
    ("vit", (("patch", 32),)): ("torchvision", "vit_b_32"),
    ("vit", (("dim", 1024), ("depth", 24), ("heads", 16), ("mlp", 4096))): (
        "torchvision",
        "vit_l_16",
    ),
}
# how a source's models are named on a zoo file's Reference line
SOURCE_PREFIX = {"keras_applications": "keras.applications.", "transformers_lib": "transformers."}
# checked against their papers' own tables below
PAPER_ONLY = {"zfnet", "vgg11_lrn", "vgg16_c", "nin", "highway", "resnet_cifar", "unet"}


@cache
def net(name: str, **params) -> Network:
    overrides = dict(parse_param(f"{k}={v}") for k, v in params.items())
    return compile_file(ARCHITECTURES / f"{name}.net", params=overrides)


@cache
def zoo_entries() -> tuple:
    return tuple(zoo.entries())


def input_shape(network: Network) -> list[int]:
    return list(next(iter(network.inputs.values())).out_shape)


def scopes(network: Network, block: str) -> list[Scope]:
    return [s for s in network.root.walk() if isinstance(s, Scope) and s.block == block]


def out_shape(scope: Scope) -> tuple[int, ...]:
    return tuple(int(d.value) for d in scope.out_shape)


def params_of(network: Network, name: str) -> int:
    """Parameters of every node under the layer or group `name` (both towers of AlexNet)."""
    return sum(n.params for n in network.nodes() if name in n.id.split("."))


# ---- every row of the table ------------------------------------------------------------


def test_every_zoo_file_is_covered():
    files = {p.stem for p in ARCHITECTURES.glob("*.net")}
    assert files == set(REFERENCES) | PAPER_ONLY


def reference_input(ref: dict) -> list[int]:
    """The input a reference was measured at: C, H, W (H, W, C for Keras); 224 unless said."""
    if "input_hwc" in ref:
        h, w, c = ref["input_hwc"]
        return [c, h, w]
    return ref.get("input", [3, 224, 224])


@pytest.mark.parametrize(
    "name, params, source, key",
    [(*row, *reference) for row, reference in VARIANTS.items()],
    ids=[key for _, key in VARIANTS.values()],
)
def test_matches_reference_exactly(name, params, source, key):
    ref = FIGURES[source][key]
    network = net(name, **dict(params))
    assert input_shape(network) == reference_input(ref)
    if source == "keras_applications":  # count_params() includes BatchNorm's moving statistics
        assert network.total_params + network.total_buffers == ref["params"]
    elif "macs" not in ref:  # transformers publishes no MACs: parameters only
        assert network.total_params == ref["params"]
    else:
        assert (network.total_params, network.total_macs) == (ref["params"], ref["macs"])


def test_keras_references_agree_with_timm_ports():
    """Where timm ports a Keras-only model, its figures pin our MACs too."""
    irv2, timm_irv2 = net("inception_resnet_v2"), FIGURES["timm"]["inception_resnet_v2"]
    assert irv2.total_macs == timm_irv2["macs"]
    # timm keeps BatchNorm's scale gamma, which Keras' Inception-ResNet drops: one per channel
    bn_channels = irv2.total_buffers // 2
    assert irv2.total_params + bn_channels == timm_irv2["params"]
    xception, legacy = net("xception"), FIGURES["timm"]["legacy_xception"]
    assert (xception.total_params, xception.total_macs) == (legacy["params"], legacy["macs"])


def test_aux_heads_are_train_only():
    for name, heads in (("googlenet", {"aux1", "aux2"}), ("inception_v3", {"aux"})):
        network = net(name)
        assert {o.name for o in network.outputs if o.train_only} == heads
        assert network.main_output.node.out_shape == (1000,)
        assert any(n.train_only and n.macs for n in network.nodes())  # counted, not in MACs
    # without its aux heads, googlenet is torchvision's googlenet(aux_logits=False)
    googlenet, ref = net("googlenet"), FIGURES["torchvision"]["googlenet"]
    eval_params = sum(n.params for n in googlenet.nodes() if not n.train_only)
    assert (eval_params, googlenet.total_macs) == (ref["params"], ref["macs"])


# ---- the seed material's tables ----------------------------------------------------------------


def test_alexnet_per_layer_parameters():
    expected = {"conv1": 34_944, "fc6": 37_752_832, "fc7": 16_781_312, "fc8": 4_097_000}
    for name in ("alexnet", "alexnet_one_tower"):
        network = net(name)
        assert {layer: params_of(network, layer) for layer in expected} == expected, name


def test_alexnet_towers_sit_on_two_gpus():
    network = net("alexnet")
    for layer in ("conv1", "conv2", "conv3", "conv4", "conv5"):
        nodes = [n for n in network.nodes() if layer in n.id.split(".")]
        assert sorted(n.device for n in nodes) == ["cuda:0", "cuda:1"], layer
    grouped = {"conv2": 307_456, "conv4": 663_936, "conv5": 442_624}  # groups=2 on one GPU
    assert {layer: params_of(network, layer) for layer in grouped} == grouped
    assert params_of(network, "conv3") == 885_120  # conv3 sees both towers


def test_alexnet_lrn_is_the_papers():
    """The paper's alpha scales a sum over n channels; PyTorch's LocalResponseNorm a mean."""
    paper = FIGURES["papers"]["alexnet_lrn"]
    lrns = [n for n in net("alexnet").nodes() if n.op == "lrn"]
    assert len(lrns) == 4  # after conv1 and conv2, in each tower
    for node in lrns:
        assert node.value("n") == paper["n"] and node.value("k") == paper["k"]
        assert node.value("beta") == paper["beta"]
        assert node.value("alpha") == pytest.approx(paper["alpha"] * paper["n"])


def test_googlenet_inception_depths_follow_table_1():
    depths = [256, 480, 512, 512, 512, 528, 832, 832, 1024]
    sizes = [28, 28, 14, 14, 14, 14, 14, 7, 7]
    labels = ["3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"]
    network = net("googlenet")
    found = [network.node(f"inception{label}.concat").out_shape for label in labels]
    assert found == [(c, s, s) for c, s in zip(depths, sizes)]
    assert "(3a) 64,96,128,16,32,32 -> 28x28x256" in FIGURES["papers"]["googlenet_table"]


@pytest.mark.parametrize(
    "name",
    [
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet101",
        "resnet152",
        "wide_resnet50_2",
        "resnext50_32x4d",
        "se_resnet50",
    ],
)
def test_resnet_stage_output_sizes(name):
    network = net(name)
    stages = [s for s in network.root.children if isinstance(s, Scope) and "stage" in s.block]
    widths = (64, 128, 256, 512) if name in ("resnet18", "resnet34") else (256, 512, 1024, 2048)
    assert [out_shape(s) for s in stages] == [(c, n, n) for c, n in zip(widths, (56, 28, 14, 7))]


def test_densenet121_transition_sizes():
    network = net("densenet121")
    blocks = [out_shape(s) for s in scopes(network, "dense_block")]
    transitions = [out_shape(s) for s in scopes(network, "transition")]
    # Table 1: 6, 12, 24, 16 layers of growth 32 from 64 channels; each transition halves
    assert blocks == [(256, 56, 56), (512, 28, 28), (1024, 14, 14), (1024, 7, 7)]
    assert transitions == [(128, 28, 28), (256, 14, 14), (512, 7, 7)]


# MobileNet Table 1: type / stride, filter shape, input size (H, W, C). The table's
# 13th depthwise conv says s2, but its input and output are both 7x7: every
# implementation, and the paper's own sizes, use s1.
MOBILENET_BODY = [
    ("conv", 2, (3, 3, 3, 32), (224, 224, 3)),
    ("dw", 1, (3, 3, 32), (112, 112, 32)),
    ("pw", 1, (1, 1, 32, 64), (112, 112, 32)),
    ("dw", 2, (3, 3, 64), (112, 112, 64)),
    ("pw", 1, (1, 1, 64, 128), (56, 56, 64)),
    ("dw", 1, (3, 3, 128), (56, 56, 128)),
    ("pw", 1, (1, 1, 128, 128), (56, 56, 128)),
    ("dw", 2, (3, 3, 128), (56, 56, 128)),
    ("pw", 1, (1, 1, 128, 256), (28, 28, 128)),
    ("dw", 1, (3, 3, 256), (28, 28, 256)),
    ("pw", 1, (1, 1, 256, 256), (28, 28, 256)),
    ("dw", 2, (3, 3, 256), (28, 28, 256)),
    ("pw", 1, (1, 1, 256, 512), (14, 14, 256)),
    *[("dw", 1, (3, 3, 512), (14, 14, 512)), ("pw", 1, (1, 1, 512, 512), (14, 14, 512))] * 5,
    ("dw", 2, (3, 3, 512), (14, 14, 512)),
    ("pw", 1, (1, 1, 512, 1024), (7, 7, 512)),
    ("dw", 1, (3, 3, 1024), (7, 7, 1024)),
    ("pw", 1, (1, 1, 1024, 1024), (7, 7, 1024)),
    ("pool", 1, (7, 7), (7, 7, 1024)),
    ("fc", 1, (1024, 1000), (1, 1, 1024)),
]


def mobilenet_rows():
    for node in net("mobilenet").nodes():
        if node.op not in ("conv", "dwconv", "gap"):
            continue
        # Table 1's input size is before Keras' one-sided padding
        before = node.inputs[0] if node.inputs[0].op == "zeropad" else node
        c, h, w = (int(d.value) for d in before.in_shapes[0])
        k, cout = node.value("k"), node.out_shape[0]
        if node.op == "dwconv":
            yield "dw", node.value("s"), (k, k, c), (h, w, c)
        elif node.op == "gap":
            yield "pool", 1, (h, w), (h, w, c)
        elif h == 1:  # Keras' classifier: a 1x1 conv on the pooled features
            yield "fc", 1, (c, cout), (h, w, c)
        else:
            yield "pw" if k == 1 else "conv", node.value("s"), (k, k, c, cout), (h, w, c)


def test_mobilenet_body_follows_table_1():
    assert list(mobilenet_rows()) == MOBILENET_BODY


# ---- the networks without a library reference ----------------------------------------------------


@pytest.mark.parametrize(
    "depth, paper", [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85), (110, 1.7), (1202, 19.4)]
)
def test_resnet_cifar_params_follow_table_6(depth, paper):
    network = net("resnet_cifar", depth=depth)
    digits = 1 if paper >= 1 else 2
    assert round(network.total_params / 1e6, digits) == paper
    assert len([n for n in network.nodes() if n.op == "conv"]) == depth - 1  # + the fc layer


def test_resnet_cifar_20_params_by_hand():
    # 3x3x3x16 conv + BN; 6 convs 16->16; 32: one 16->32, five 32->32; 64 likewise; fc 64->10
    by_hand = (
        (432 + 32)
        + 6 * (2304 + 32)
        + (4608 + 64)
        + 5 * (9216 + 64)
        + (18432 + 128)
        + 5 * (36864 + 128)
        + 650
    )
    assert net("resnet_cifar", depth=20).total_params == by_hand == 269_722


def test_resnet_cifar_shortcuts_are_parameter_free():
    network = net("resnet_cifar", depth=20)
    shortcuts = scopes(network, "shortcut_a")
    assert len(shortcuts) == 9 and all(s.params == 0 for s in shortcuts)
    padded = [s for s in shortcuts if out_shape(s)[0] != int(s.in_shape[0].value)]
    assert [(int(s.in_shape[0].value), out_shape(s)) for s in padded] == [
        (16, (32, 16, 16)),
        (32, (64, 8, 8)),
    ]


def test_resnet_cifar_stochastic_depth_decays_linearly():
    """Huang et al. 2016, Eq. 4: p_l = 1 - l/L (1 - p_L), p the survival probability; unit
    l of ResNet-110's L = 54 drops its branch with probability l/54 * 0.5."""
    plain, dropped = net("resnet_cifar"), net("resnet_cifar", drop_path=0.5)
    drops = [n.value("p") for n in dropped.nodes() if n.op == "drop_path"]
    survival = [1 - unit / 54 * (1 - 0.5) for unit in range(1, 55)]
    assert [1 - p for p in drops] == pytest.approx(survival, abs=1e-12)
    assert (drops[0], drops[17], drops[18], drops[-1]) == (
        0.5 / 54,
        0.5 * 18 / 54,
        0.5 * 19 / 54,
        0.5,
    )
    assert (dropped.total_params, dropped.total_macs) == (plain.total_params, plain.total_macs)


def test_vgg_paper_configurations():
    # Table 2: A-LRN has A's 133M parameters (LRN has none); C has 134M
    assert net("vgg11_lrn").total_params == net("vgg11").total_params
    assert len([n for n in net("vgg11_lrn").nodes() if n.op == "lrn"]) == 1
    assert round(net("vgg16_c").total_params / 1e6) == 134
    ones = [n for n in net("vgg16_c").nodes() if n.op == "conv" and n.value("k") == 1]
    assert [n.out_shape[0] for n in ones] == [256, 512, 512]


def test_zfnet_map_sizes_follow_figure_3():
    sizes = [n.out_shape[1] for n in net("zfnet").nodes() if n.op in ("conv", "maxpool")]
    assert sizes == [110, 55, 26, 13, 13, 13, 13, 6]


def test_nin_has_no_fully_connected_layer():
    network = net("nin")
    assert not [n for n in network.nodes() if n.op == "fc"]
    assert network.main_output.node.out_shape == (10,)


def test_highway_layer_mixes_transform_and_carry():
    network = net("highway", depth=4)
    assert [n.op for n in network.nodes() if n.op in ("add", "mul", "scale")] == [
        "scale",
        "add",
        "mul",
        "add",
    ] * 2
    assert network.total_params == 784 * 50 + 50 + 2 * 2 * (50 * 50 + 50) + 50 * 10 + 10


@pytest.mark.parametrize("cols", [1, 2, 3, 4])
def test_fractalnet_columns(cols):
    network = net("fractalnet", cols=cols)
    assert len([n for n in network.nodes() if n.op == "conv"]) == 5 * (2**cols - 1)
    # each join averages every column that meets at it: f_j ends by dividing a sum of j
    scales = {n.value("s") for n in network.nodes() if n.op == "scale"}
    assert scales == {1 / j for j in range(2, cols + 1)}


# ---- the zoo command and its docs ---------------------------------------------------------------


def test_headers_state_the_reference_figures():
    for entry in zoo_entries():
        assert not entry.mismatches(), entry.name
        if entry.name in REFERENCES:
            source, key = REFERENCES[entry.name]
            ref = FIGURES[source][key]
            assert entry.header.expected_params == ref["params"], entry.name
            assert entry.header.with_buffers == (source == "keras_applications"), entry.name
            assert entry.header.expected_macs == ref.get("macs", entry.header.expected_macs)
            prefix = SOURCE_PREFIX.get(source, source + ".")
            assert entry.reference.startswith(prefix), entry.name


def test_docs_zoo_md_is_current():
    current = (ROOT / "docs" / "zoo.md").read_text(encoding="utf-8")
    assert current == zoo.markdown(list(zoo_entries())), (
        "docs/zoo.md is stale: run `netdsl zoo --markdown > docs/zoo.md`"
    )


def test_zoo_command_lists_and_checks(capsys, monkeypatch):
    monkeypatch.setattr(zoo, "entries", lambda directory=None: list(zoo_entries()))
    assert main(["zoo"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in REFERENCES)
    assert "torchvision.models.resnet50" in listing
    assert main(["zoo", "--check"]) == 0
    assert capsys.readouterr().out == f"{len(zoo_entries())} networks match their references\n"
    assert main(["zoo", "--json"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert len(items) == len(REFERENCES) + len(PAPER_ONLY)
    assert main(["zoo", "--markdown"]) == 0
    assert capsys.readouterr().out == (ROOT / "docs" / "zoo.md").read_text(encoding="utf-8")


def test_zoo_check_reports_a_wrong_figure(tmp_path, capsys):
    text = (ARCHITECTURES / "lenet5.net").read_text().replace("61,706 params", "61,707 params")
    (tmp_path / "lenet5.net").write_text(text)
    (entry,) = zoo.entries(tmp_path)
    assert entry.mismatches() == ["params 61,706, expected 61,707"]


def test_header_parsing():
    header = zoo.read_header(
        "# Net — a paper\n"
        "# Reference: keras.applications.Net — notes\n"
        "# Expected: 1,234 params+buffers (Keras), 5,678 MACs\n"
        "# at 3x32x32.\n"
        "network n:\n"
    )
    assert (
        header.title,
        header.reference,
        header.expected_params,
        header.with_buffers,
        header.expected_macs,
        header.expected_input,
    ) == ("Net", "keras.applications.Net", 1234, True, 5678, (3, 32, 32))
    assert zoo.read_header("network n:\n").problems


def test_zoo_names_resolve():
    assert Path(resolve("resnet50")) == ARCHITECTURES / "resnet50.net"


def test_check_is_clean_on_every_zoo_file(capsys):
    files = sorted(str(p) for p in ARCHITECTURES.glob("*.net"))
    assert main(["check", "-q", *files]) == 0
    assert capsys.readouterr().err == ""
