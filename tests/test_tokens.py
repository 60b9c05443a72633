"""Token sequences and attention in the language (issue #17): shapes, counts, errors.

The figures are torchvision's and transformers' (tests/reference_figures.json); the
generated models are tested in test_zoo_transformers.py and test_tokens_cross_backend.py.
"""

from __future__ import annotations

import json
import textwrap

import pytest
from conftest import ARCHITECTURES, compile_text
from test_zoo import FIGURES

from netdsl import compile_file
from netdsl.cli import main
from netdsl.compiler import parse_param
from netdsl.errors import NetdslError
from netdsl.layers import TokenIds, shape_kind


def net(body: str, blocks: str = "", shape: str = "3x32x32"):
    return compile_text(
        textwrap.dedent(blocks)
        + f"network t:\n    input {shape}\n"
        + textwrap.indent(textwrap.dedent(body).strip(), "    ")
        + "\n"
    )


def shapes(network) -> dict[str, tuple]:
    return {n.id: tuple(n.out_shape) for n in network.nodes()}


def error(body: str, shape: str = "3x32x32") -> NetdslError:
    with pytest.raises(NetdslError) as caught:
        net(body, shape=shape)
    return caught.value


def zoo(name: str, **params):
    return compile_file(
        ARCHITECTURES / f"{name}.net",
        params=dict(parse_param(f"{k}={v}") for k, v in params.items()),
    )


# ---- the zoo rows: exact figures -------------------------------------------------------


def test_vit_b_16_summary_json_is_torchvisions_figures(capsys):
    assert main(["summary", str(ARCHITECTURES / "vit.net"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    reference = FIGURES["torchvision"]["vit_b_16"]
    assert (report["params"], report["macs"]) == (reference["params"], reference["macs"])
    assert (report["params"], report["macs"]) == (86_567_656, 17_563_828_224)
    attention = [layer for layer in report["layers"] if layer["op"] == "attention"]
    assert len(attention) == 12
    # 4 N D^2 projections + 2 N^2 D products per layer, reported per layer and in the total
    assert {layer["macs"] for layer in attention} == {4 * 197 * 768**2 + 2 * 197**2 * 768}
    assert {layer["attention_macs"] for layer in attention} == {2 * 197**2 * 768}
    assert report["attention_macs"] == 12 * 2 * 197**2 * 768 == 715_327_488  # torchvision's note


def test_vit_b_32_and_l_16_by_parameter():
    b32 = zoo("vit", patch=32)
    assert (b32.total_params, b32.total_macs) == (88_224_232, 4_409_186_304)
    l16 = zoo("vit", dim=1024, depth=24, heads=16, mlp=4096)
    assert (l16.total_params, l16.total_macs) == (304_326_632, 61_554_712_576)


def test_gpt2_summary_json_counts_the_tied_table_once(capsys):
    assert main(["summary", str(ARCHITECTURES / "gpt2.net"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    reference = FIGURES["transformers_lib"]["GPT2LMHeadModel(GPT2Config())"]["params"]
    assert report["params"] == reference == 124_439_808
    assert (report["inputs"], report["vocab"]) == ({"idx": [1024]}, {"idx": 50257})
    head = report["layers"][-1]
    assert (head["op"], head["params"], head["out_shape"]) == ("fc", 0, [1024, 50257])


def test_gpt2_decoder_block_is_causal_attention_and_an_mlp():
    gpt = zoo("gpt2", context=64, vocab=256, dim=64, depth=2, heads=2)
    attention = [n for n in gpt.nodes() if n.op == "attention"]
    assert [bool(n.value("causal")) for n in attention] == [True, True]
    assert [int(n.value("head_dim")) for n in attention] == [32, 32]
    ids = next(iter(gpt.inputs.values())).out_shape
    assert isinstance(ids, TokenIds) and ids.vocab == 256 and shape_kind(ids) == "ids"


# ---- shapes and counts of each token layer -------------------------------------------------


def test_token_layer_shapes_and_counts():
    network = net(
        """
        patch_embed 48 8 + cls_token 2 + pos_embed 18 + attention 4 + layernorm
        + fc 96 + gelu approximate=true + fc 48 + layer_scale + softmax
        + token_pool mean + fc 10
        """
    )
    got = {n.op: (tuple(n.out_shape), n.params, n.macs) for n in network.nodes()}
    assert got["patch_embed"] == ((16, 48), 48 * 8 * 8 * 3 + 48, 16 * 48 * 8 * 8 * 3)
    assert got["cls_token"] == ((18, 48), 2 * 48, 0)
    assert got["pos_embed"] == ((18, 48), 18 * 48, 0)
    assert got["attention"] == ((18, 48), 4 * 48 * 48 + 4 * 48, 4 * 18 * 48**2 + 2 * 18**2 * 48)
    assert got["layernorm"] == ((18, 48), 2 * 48, 0)
    assert got["layer_scale"] == ((18, 48), 48, 0)
    assert got["token_pool"] == ((48,), 0, 0)


def test_image_and_tokens_round_trip_keeps_the_grid():
    network = net("conv3 8 + tokens + attention 2 + image + conv3 4 + tokens + image 4 256")
    assert [s for s in shapes(network).values()][1:] == [
        (8, 32, 32),
        (1024, 8),
        (1024, 8),
        (8, 32, 32),
        (4, 32, 32),
        (1024, 4),
        (4, 4, 256),
    ]


def test_attention_without_bias_and_fc_on_tokens():
    network = net("fc 32 + attention 8 bias=false", shape="10x16")
    fc, attention = list(network.nodes())[1:]
    assert (fc.params, fc.macs) == (16 * 32 + 32, 10 * 16 * 32)
    assert attention.params == 4 * 32 * 32


def test_token_ids_input_and_embedding():
    network = net("embedding 32 + fc 100", shape="16 tokens of 100")
    embedding, fc = list(network.nodes())[1:]
    assert embedding.params == 100 * 32 and embedding.macs == 0
    assert tuple(fc.out_shape) == (16, 100)


def test_block_reads_tokens_and_features_of_its_input():
    network = net(
        "patch_embed 64 8 + enc(4)",
        blocks="block enc(h) = add(id, layernorm + attention h) + fc (in.d * 2) + fc in.n\n",
    )
    assert shapes(network)["enc.fc2"] == (16, 16)


def test_receptive_field_of_attention_is_the_whole_patch_grid():
    from netdsl.analysis import analyze

    facts = analyze(net("patch_embed 16 4 + attention 2 + token_pool + fc 3")).layers
    assert facts["patch_embed"].rf.r == (4, 4)
    assert facts["attention"].rf.r == (32, 32)


# ---- errors: located, with the change to make -----------------------------------------------


VIT_WITH_MISTAKES = """\
block encoder(h) = add(id, layernorm + attention h) + add(id, layernorm + fc 128 + gelu + fc 64)

network vit:
    input 3x64x64
    patch_embed 64 8 + cls_token
    + pos_embed 64
    + encoder(4) + token_pool + fc 10
"""


def test_a_position_embedding_sized_before_the_class_token_is_reported_at_its_line():
    with pytest.raises(NetdslError) as caught:
        compile_text(VIT_WITH_MISTAKES)
    e = caught.value
    assert e.span.line == 6
    assert "pos_embed: sized for 64 tokens, but the input has 65" in e.message
    assert "cls_token prepends" in e.hint and "pos_embed 65" in e.hint


def test_a_head_count_that_does_not_divide_d_is_reported_in_the_block_with_the_nearest():
    with pytest.raises(NetdslError) as caught:
        compile_text(VIT_WITH_MISTAKES.replace("pos_embed 64", "pos_embed").replace("(4)", "(5)"))
    e = caught.value
    assert (e.span.line, "attention: 5 heads do not divide D = 64") == (1, e.message.split(" (")[0])
    assert "attention 4 (head dim 16)" in e.hint
    assert "in block encoder" in str(e)


@pytest.mark.parametrize(
    "body, shape, message, hint",
    [
        ("patch_embed 64 8 + conv3 8", "3x32x32", "conv needs an image tensor", "image 4 4"),
        ("conv3 8 + attention 2", "3x32x32", "attention needs a sequence of tokens", "`tokens`"),
        ("patch_embed 64 8 + gap", "3x32x32", "gap needs an image tensor", "token_pool mean"),
        ("patch_embed 64 8 + bn", "3x32x32", "bn needs an image tensor", "layernorm"),
        ("fc 3", "8 tokens of 10", "fc needs numbers", "embedding D"),
        ("embedding 4", "8x10", "embedding reads token ids", "input N tokens of V"),
        ("embedding 4 vocab=5", "8 tokens of 10", "a table of 5 rows", "vocab=10"),
        ("concat(fc 4, fc 4)", "8x10", "joining token sequences", "add"),
        ("conv3 4", "3x32", "conv needs an image tensor", "input 3x32x32"),
    ],
)
def test_rank_errors_name_the_layer_to_insert(body, shape, message, hint):
    e = error(body, shape)
    assert message in e.message and hint in e.hint


def test_input_token_ids_need_one_length():
    e = error("embedding 4", shape="(8, 2) tokens of 10")
    assert "token ids are a sequence length and a vocabulary size" in e.message


def test_a_tied_output_layer_must_fit_its_embedding():
    e = error("x = embedding 32\nfc 64 + fc 100 tie=x", shape="16 tokens of 100")
    assert "cannot share x's table of 100 x 32" in e.message
    e = error("x = embedding 32 + layernorm\nfc 100 tie=x", shape="16 tokens of 100")
    assert "names the output of layernorm, not of an embedding" in e.message
