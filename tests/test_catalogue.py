"""The catalogue is the one place that knows what an op is; every backend covers it.

An op added to netdsl/layers.py must be emitted by each backend's table or refused
there with a reason (never dropped), must come with formulas when it has weights and
with a weight conversion between the targets, and must be documented.
"""

from __future__ import annotations

import re

import pytest
from backends import check_backends
from conftest import ROOT, compile_text, need

from netdsl import NetdslError
from netdsl.emit import TARGETS, get_emitter
from netdsl.layers import CATALOGUE, MERGES, ops, spec_of

OPS = ops()
TOUR = """\
network tour:
    input img 8x20x20
    input ids 12 tokens of 40
    a = img + conv 16 k=3 p=same g=2 bias=false + bn + relu
    + add(id, dwconv3 + bn eps=1e-3 scale=false + relu6)
    + concat(sepconv3 8 + leaky_relu 0.1, conv1 8 + elu, maxpool 3 s=1 p=1 + lrn)
    + mul(id, gap + conv1 32 + sigmoid)
    + mean(conv3 32 + gelu, conv3 32 + silu, conv3 32 + hardswish)
    + layernorm eps=1e-6
    + groupnorm 4 + pointwise_fc 24 + gelu + instancenorm affine=true
    + pointwise_fc 32 bias=false + layer_scale 0.5 + instancenorm
    + zeropad (0, 1, 0, 1) + avgpool 2 ceil=true count_pad=false + shuffle 4
    + zeropad (1, 0, 1, 0) + crop (0, 1, 1, 0)
    + concat(chunk(2, 1) + conv1 16, channels(3, 19)) + shuffle 2
    + conv_transpose 16 k=3 s=2 p=1 op=1 + upsample 2 mode=bilinear
    + pixel_unshuffle 4 + pixel_shuffle 2 + upsample size=(44, 44)
    + tanh + hardsigmoid + scale 0.5 + drop_path 0.1 + dropout 0.2
    + adaptive_avgpool (3, 3) + adaptive_maxpool 2 + gmp + flatten
    + fc 12 + concat(chunk(3, 0), channels(5, 11)) + layernorm + layer_scale 2.0 + softmax
    # tokens: a small ViT, attention on an image's positions and back, a tied language model
    v = img + patch_embed 16 4 + cls_token 2 + pos_embed 27 + dropout 0.1
    + add(id, layernorm eps=1e-6 + attention 4 dropout=0.1 + drop_path 0.1)
    + add(id, layernorm + fc 32 + gelu approximate=true + fc 16 + layer_scale 0.5)
    + mean(scale 0.5, relu) + token_pool cls + fc 10
    t = img + tokens + attention 2 bias=false causal=true + softmax + image 20 + conv1 4
    + gap + flatten + fc 10
    e = ids + embedding 16
    w = e + mul(id, sigmoid) + attention 2 causal=true + fc 40 tie=e + token_pool mean + fc 10
    f = e + layernorm + flatten + fc 10
    add(a, v, t, w, f)
"""


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("op", OPS)
def test_every_op_is_emitted_or_refused_with_a_reason(op, target):
    emitter = get_emitter(target)
    table = emitter.MERGES if op in MERGES else emitter.LAYERS
    if op in emitter.UNSUPPORTED:
        assert op not in table, f"{target}: '{op}' is both emitted and unsupported"
        assert emitter.UNSUPPORTED[op].strip(), f"{target}: '{op}' is refused without a reason"
    else:
        assert op in table, f"the {target} backend neither emits '{op}' nor lists it"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_backend_tables_name_only_catalogue_ops(target):
    emitter = get_emitter(target)
    assert set(emitter.LAYERS) <= {s.name for s in CATALOGUE.values()}
    assert set(emitter.MERGES) <= set(MERGES)
    assert set(emitter.UNSUPPORTED) <= set(OPS)


@pytest.mark.parametrize("op", [op for op in OPS if spec_of(op).has_weights])
def test_every_op_with_weights_has_formulas_and_a_conversion(op):
    from netdsl.weights import CONVERSIONS

    spec = spec_of(op)
    assert spec.params is not None
    assert op in CONVERSIONS, f"torch_to_keras cannot move the weights of '{op}'"


def test_weight_conversions_are_for_catalogue_ops_with_weights():
    from netdsl.weights import CONVERSIONS

    assert {op for op in CONVERSIONS if not spec_of(op).has_weights} == set()


@pytest.mark.parametrize("op", OPS)
def test_every_op_is_documented(op):
    doc = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    table = doc[doc.index("## The layer catalogue") : doc.index("## Shape rules in detail")]
    assert re.search(rf"`{op}`", table), f"docs/language.md's catalogue does not list '{op}'"


def test_the_tour_uses_every_op():
    net = compile_text(TOUR)
    assert {n.op for n in net.nodes()} - {"input"} == set(OPS)


def test_an_unsupported_op_is_a_located_error(monkeypatch):
    emitter = get_emitter("torch")
    monkeypatch.setattr(type(emitter), "UNSUPPORTED", {"lrn": "no such module in this target"})
    net = compile_text("network t:\n    input 3x8x8\n    conv3 4 + lrn\n")
    with pytest.raises(NetdslError) as error:
        emitter.emit_model(net)
    assert str(error.value).startswith("test.net:3:")
    assert "cannot express 'lrn': no such module in this target" in str(error.value)


def test_every_op_computes_the_same_function_in_both_targets():
    """Inferred shapes and counts = PyTorch's = Keras', and the same weights give the same
    outputs (torch_to_keras), for a network that uses every op of the catalogue."""
    need("torch")
    need("keras")
    check_backends(compile_text(TOUR), keras=True, values=True)
