"""netdsl.weights.torch_to_keras: layers pair by the IR node they come from.

Each Keras layer is named after its node; each PyTorch module's path spells the
same node with Sequential indices where names are not written. The pairing must
not depend on the order in which either framework lists a merge's inputs (an
in-place `x += out` reverses them), nor on which branch a conditional took.
"""

from __future__ import annotations

import gc
import itertools
import textwrap

import pytest
from backends import (
    build_keras,
    build_torch,
    check_keras_model,
    compare_outputs,
    randomise_batchnorm,
    torch_source,
)
from conftest import compile_text, need

need("torch")

# the program of issue 23: RegNet's unit as torchvision registers it, shortcut first
ISSUE_23 = """\
block cbr(c) = conv1 c bias=false + bn + relu
block unit(w, s=1) =
    add(if s == 1 and in.c == w then id else conv1 w s=s bias=false + bn,
        cbr(w) + conv3 w s=s bias=false + bn)
    + relu

network rep:
    input 8x16x16
    unit(16, 2) + unit(16) + gap + fc 4
"""


def crossed(text: str, training_outputs: bool | None = None):
    """Compile, build both models, copy the weights over and compare the outputs;
    returns (network, {Keras layer: PyTorch path}, relative difference)."""
    keras = need("keras")
    from netdsl.weights import torch_to_keras

    net = compile_text(text)
    _, torch_model = build_torch(net)
    randomise_batchnorm(torch_model)
    if training_outputs is None:
        _, keras_model = build_keras(net)
    else:
        keras_model = build_keras(net)[0].build_model(training_outputs=training_outputs)
    try:
        if training_outputs is not False:
            check_keras_model(net, keras_model)
        mapping = torch_to_keras(torch_model, keras_model)
        difference = compare_outputs(net, torch_model, keras_model)
    finally:
        del keras_model
        keras.backend.clear_session()
        gc.collect()
    return net, mapping, difference


@pytest.mark.slow
def test_issue_23_a_shortcut_written_first_crosses_and_is_one_class():
    net, mapping, difference = crossed(ISSUE_23)
    assert difference <= 1e-4
    source = torch_source(net)
    assert source.count("class Unit") == 1 and "class Unit2" not in source
    assert "generated for" not in source
    # the decision is made in __init__, torchvision style
    assert "        if s == 1 and in_channels == w:\n            self.choice = nn.Identity()\n" in (
        source
    )
    # paired by node: the projection's conv with the projection's, whatever the order
    assert mapping["unit1_choice_conv"] == "unit1.choice.0"
    assert mapping["unit1_choice_bn"] == "unit1.choice.1"
    assert mapping["unit1_cbr_conv"] == "unit1.cbr.conv"
    assert mapping["unit1_conv"] == "unit1.conv"
    assert mapping["unit2_conv"] == "unit2.conv"
    assert mapping["fc"] == "fc"
    assert "unit2_choice_conv" not in mapping  # `id` in the second unit


@pytest.mark.slow
def test_the_identity_instance_first_still_gives_one_class():
    """The class's expressions come from the projection's instance (right for both:
    `w` where `id` had `in_channels`, equal there), even when `id` comes first."""
    text = ISSUE_23.replace("unit(16, 2) + unit(16)", "unit(8) + unit(16, 2) + unit(16)")
    net, _, difference = crossed(text)
    assert difference <= 1e-4
    source = torch_source(net)
    assert source.count("class Unit") == 1 and "generated for" not in source
    assert "nn.Conv2d(in_channels, w, kernel_size=1, stride=s, bias=False)" in source


@pytest.mark.slow
def test_a_block_that_is_a_conditional_written_first_is_one_class_too():
    text = textwrap.dedent("""\
        use resnet
        block unit(w, s=1) =
            add(shortcut(w, s), conv_bn(w, k=1) + relu + conv_bn(w, s=s)) + relu

        network rep:
            input 8x16x16
            unit(16) + unit(16, 2) + unit(16) + gap + fc 4
    """)
    net, _, difference = crossed(text)
    assert difference <= 1e-4
    source = torch_source(net)
    assert source.count("class Unit") == 1 and "generated for" not in source


BRANCHES = [
    "(if s == 1 and in.c == c then id else conv c k=1 s=s bias=false + bn)",
    "conv c k=3 s=s p=1 + bn",
    "conv c k=1 s=s + relu",
]


@pytest.mark.parametrize("op", ["add", "mean", "concat"])
@pytest.mark.slow
def test_merges_of_three_branches_in_every_order(op):
    blocks = "".join(
        f"block m{i}(c, s=1) = {op}({', '.join(order)}) + relu\n"
        for i, order in enumerate(itertools.permutations(BRANCHES))
    )
    width = 3 if op == "concat" else 1
    calls = " + ".join(f"m{i}(6, 2) + m{i}({6 * width})" for i in range(6))
    body = f"network probe:\n    input 6x12x12\n    conv1 6 + {calls} + gap + fc 3\n"
    net, _, difference = crossed(blocks + "\n" + body)
    assert difference <= 1e-4
    source = torch_source(net)
    for i in range(6):
        assert f"class M{i}2" not in source
    assert "generated for" not in source


@pytest.mark.slow
def test_a_train_time_head_is_left_out_of_the_eval_model():
    text = textwrap.dedent("""\
        network aux:
            input 3x16x16
            conv3 8 + bn + relu
            t = conv3 8 + bn + relu
            output aux @train = t + gap + fc 2
            output logits = t + gap + fc 4
    """)
    _, eval_pairs, difference = crossed(text, training_outputs=False)
    assert difference <= 1e-4
    _, all_pairs, _ = crossed(text, training_outputs=True)
    assert set(all_pairs) - set(eval_pairs) == {"fc1"}  # the head's fc: `fc1`, then `fc2`


@pytest.mark.slow
def test_normalisations_layer_scale_and_pointwise_fc_cross_with_random_weights():
    """GroupNorm, InstanceNorm2d (affine), LayerScale's (C, 1, 1) gamma and the per-position
    Linear: every weight random, so a wrong layout or order shows in the outputs."""
    torch = need("torch")
    keras = need("keras")
    from netdsl.weights import torch_to_keras

    net = compile_text(
        textwrap.dedent("""\
        block cnblock:
            add(id, dwconv7 + layernorm eps=1e-6 + pointwise_fc (4 * in.c) + gelu
                    + pointwise_fc in.c + layer_scale)

        network probe:
            input 6x12x12
            conv1 8 + groupnorm 2 + relu + cnblock + instancenorm affine=true + relu
            + instancenorm eps=1e-3 + conv1 8 + gap + flatten + fc 6 + gn 3 + layer_scale
        """)
    )
    _, torch_model = build_torch(net)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in torch_model.parameters():
            parameter.copy_(0.5 + torch.rand(parameter.shape, generator=generator))
    assert torch_model.cnblock.layer_scale.gamma.shape == (8, 1, 1)  # torchvision's layout
    _, keras_model = build_keras(net)
    try:
        mapping = torch_to_keras(torch_model, keras_model)
        assert compare_outputs(net, torch_model, keras_model) <= 1e-4
    finally:
        del keras_model
        keras.backend.clear_session()
        gc.collect()
    assert mapping["cnblock_pointwise_fc1"] == "cnblock.pointwise_fc1"
    assert mapping["instancenorm1"] == "instancenorm1"
    assert mapping["layer_scale"] == "layer_scale"


def test_a_layer_with_no_counterpart_is_named():
    keras = need("keras")
    from netdsl.weights import torch_to_keras

    a = compile_text("network a:\n    input 3x8x8\n    conv3 4 + relu + conv3 6\n")
    b = compile_text("network b:\n    input 3x8x8\n    conv3 4 + relu + conv3 6 + bn\n")
    _, torch_model = build_torch(a)
    _, keras_model = build_keras(b)
    try:
        with pytest.raises(ValueError, match="Keras layer 'bn' .* no PyTorch counterpart"):
            torch_to_keras(torch_model, keras_model)
        _, keras_model = build_keras(a)
        _, torch_model = build_torch(b)
        with pytest.raises(ValueError, match="PyTorch module 'bn' .* no Keras counterpart"):
            torch_to_keras(torch_model, keras_model)
    finally:
        keras.backend.clear_session()


# ---- load_by_order: reference weights whose modules are registered elsewhere ----------------


def _reordered_models(aux_classes: tuple[int, int] = (5, 5), heads: str = "apart"):
    """Two small networks computing the same function: `ours` registers each aux head
    after the block it reads and its stem as one Sequential; the reference registers a
    conv and a BatchNorm for the stem, and its heads after everything else ("apart"),
    inside one container ("together"), or swapped, aux2 first ("swapped")."""
    nn = need("torch").nn

    class Block(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(cout)

        def forward(self, x):
            return self.bn(self.conv(x)).relu()

    class Head(nn.Module):
        def __init__(self, classes):
            super().__init__()
            self.fc = nn.Linear(16, classes)

        def forward(self, x):
            return self.fc(x.mean((2, 3)))

    class Ours(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8))
            self.block1 = Block(8, 16)
            self.head1 = Head(5)
            self.block2 = Block(16, 16)
            self.head2 = Head(5)
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            a = self.block1(self.stem(x))
            b = self.block2(a)
            return self.fc(b.mean((2, 3))), self.head1(a), self.head2(b)

    class Reference(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(8)
            self.layer1 = Block(8, 16)
            self.layer2 = Block(16, 16)
            self.fc = nn.Linear(16, 10)
            first, second = Head(aux_classes[0]), Head(aux_classes[1])
            if heads == "together":
                self.heads = nn.ModuleDict({"aux1": first, "aux2": second})
            elif heads == "swapped":
                self.aux2, self.aux1 = second, first
            else:
                self.aux1, self.aux2 = first, second

        def head(self, name):
            return self.heads[name] if heads == "together" else getattr(self, name)

        def forward(self, x):
            a = self.layer1(self.bn1(self.conv1(x)))
            b = self.layer2(a)
            return self.fc(b.mean((2, 3))), self.head("aux1")(a), self.head("aux2")(b)

    torch = need("torch")
    torch.manual_seed(0)
    ours, reference = Ours(), Reference()
    randomise_batchnorm(reference)
    return ours.eval(), reference.eval()


def _same_outputs(ours, reference) -> bool:
    torch = need("torch")
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ours(x), reference(x)))


@pytest.mark.parametrize("heads", ["apart", "together"])
def test_load_by_order_pairs_modules_registered_elsewhere(heads):
    """The flat order fails at the first head; the heads pair as whole modules, the
    stem's Sequential with the reference's conv1 and bn1, and all outputs agree."""
    from netdsl.weights import load_by_order

    ours, reference = _reordered_models(heads=heads)
    assert not _same_outputs(ours, reference)
    mapping = load_by_order(ours, reference)
    assert len(mapping) == len(ours.state_dict()) == len(set(mapping.values()))
    prefix = "heads." if heads == "together" else ""
    assert mapping["head1.fc.weight"] == f"{prefix}aux1.fc.weight"
    assert mapping["head2.fc.bias"] == f"{prefix}aux2.fc.bias"
    assert mapping["stem.0.weight"] == "conv1.weight"
    assert mapping["stem.1.running_var"] == "bn1.running_var"
    assert mapping["block2.bn.weight"] == "layer2.bn.weight"
    assert list(mapping) == list(ours.state_dict())  # in the model's order
    assert _same_outputs(ours, reference)


def test_load_by_order_pairs_equal_modules_in_registration_order():
    """Names are never compared: of two heads with the same shapes, the one the
    reference registers first pairs with the model's first, here its `aux2`."""
    from netdsl.weights import load_by_order

    ours, reference = _reordered_models(heads="swapped")
    first = load_by_order(ours, reference)
    assert first["head1.fc.weight"] == "aux2.fc.weight"
    assert first["head2.fc.weight"] == "aux1.fc.weight"
    assert load_by_order(ours, reference) == first  # the same on every call


def test_load_by_order_names_what_pairs_with_nothing():
    from netdsl.weights import load_by_order

    ours, reference = _reordered_models(aux_classes=(5, 6))
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    with pytest.raises(ValueError) as e:
        load_by_order(ours, reference)
    message = str(e.value)
    # the flat order's failure first, as for a model whose order matches
    assert message.startswith("entry 13: the model's 'head1.fc.weight' is 5x16 but ")
    # then the first reference entry that pairs with nothing, and the model's candidates
    assert (
        "nor do they pair by module: the reference's 'aux2.fc.weight' (6x16) has no "
        "counterpart in the model; the model's unpaired entries and modules there: "
        "'head2.fc.weight' (5x16), 'head2.fc.bias' (5)" in message
    )
    after = ours.state_dict()
    assert all(need("torch").equal(before[k], after[k]) for k in before)  # nothing loaded


def test_load_by_order_names_a_module_the_reference_lacks():
    from netdsl.weights import load_by_order

    ours, reference = _reordered_models()
    del reference.aux2
    with pytest.raises(ValueError) as e:
        load_by_order(ours, reference)
    assert "the model's 'head2' (5x16, 5) has no counterpart in the reference" in str(e.value)


def test_load_by_order_keeps_equal_modules_in_order_around_a_moved_one():
    """Seven equal blocks in a chain; the model registers its head after the third, the
    reference after the seventh. Its blocks must pair in order (a diff's longest block
    alone would pair the model's last four with the reference's first four)."""
    nn = need("torch").nn
    from netdsl.weights import load_by_order

    class Chain(nn.Module):
        def __init__(self, head_after: int):
            super().__init__()
            self.head_after = head_after
            for k in range(7):
                self.add_module(f"block{k}", nn.Linear(6, 6))
                if k + 1 == head_after:
                    self.head = nn.Linear(6, 2)

        def forward(self, x):
            outputs = []
            for k in range(7):
                x = getattr(self, f"block{k}")(x).tanh()
                if k + 1 == 3:
                    outputs.append(self.head(x))
            return (x, *outputs)

    need("torch").manual_seed(0)
    ours, reference = Chain(head_after=3), Chain(head_after=7)
    mapping = load_by_order(ours, reference)
    assert [mapping[f"block{k}.weight"] for k in range(7)] == [f"block{k}.weight" for k in range(7)]
    assert mapping["head.bias"] == "head.bias"
    torch = need("torch")
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(ours(x), reference(x)))


# ---- tokens: the tied output layer ----------------------------------------------------------

TIED = "network lm:\n    input 8 tokens of 20\n    e = embedding 4\n    e + tanh + fc 20 tie=e{}\n"


@pytest.mark.parametrize("bias", [False, True])
def test_a_tied_fc_takes_the_table_from_the_embedding(bias):
    """PyTorch's tied Linear shares the embedding's Parameter; Keras' ReversibleEmbedding
    holds the table once and its reverse call is the fc. Only the fc's bias (the Keras Bias
    helper) is the fc's own."""
    net, mapping, difference = crossed(TIED.format("" if bias else " bias=false"))
    assert difference <= 1e-4
    assert mapping == (
        {"embedding": "embedding", "fc": "fc"} if bias else {"embedding": "embedding"}
    )


def test_an_untied_pytorch_fc_is_not_taken_for_a_tied_one():
    """The fc's weight is left out of the Keras model only where PyTorch's IS the embedding's."""
    keras = need("keras")
    from netdsl.weights import torch_to_keras

    _, torch_model = build_torch(compile_text(TIED.replace(" tie=e", "").format(" bias=false")))
    _, keras_model = build_keras(compile_text(TIED.format(" bias=false")))
    try:
        with pytest.raises(ValueError, match="PyTorch module 'fc' .* no Keras counterpart"):
            torch_to_keras(torch_model, keras_model)
    finally:
        del keras_model
        keras.backend.clear_session()
        gc.collect()
