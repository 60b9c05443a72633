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
