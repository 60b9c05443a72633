"""The token networks of the zoo in PyTorch (issue 17): vit.net and gpt2.net.

The generated models against inference (every layer's output shape on a real forward
pass, parameters, buffers: tests/backends.py), against torchvision's ViTs (weights
loaded by order, equal outputs; in .ci/run's reference environment) and against the
attention MAC convention: conv and linear multiply-accumulates plus the two attention
matmuls per head, Q K^T and A V, 2 N^2 D per layer (torchvision's published figures).

On the CPU, torch.utils.flop_counter sees those matmuls only on nn.MultiheadAttention's
unfused path (need_weights=True, the explicit bmm). With need_weights=False, as
torchvision and the generated code call it, they run inside scaled_dot_product_attention,
which it does not count; in eval mode without autograd, nn.MultiheadAttention's fused
fast path (one torch._native_multi_head_attention call) hides even the projections.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from backends import build_torch, check_torch, load_source, torch_source
from conftest import ARCHITECTURES, compile_text, need
from test_zoo import FIGURES, net

from netdsl import NetdslError

# small configurations (the shapes of the defaults at a fraction of the cost)
VIT_SMALL = {"patch": 32, "dim": 64, "depth": 2, "heads": 4, "mlp": 128, "classes": 10}
GPT2_SMALL = {"context": 64, "vocab": 256, "dim": 64, "depth": 2, "heads": 2}


def vit_state(reference) -> dict:
    """torchvision ViT's state in the order the generated model registers it: its
    class_token (first in torchvision's state_dict) where the .net file prepends it,
    after the patch embedding. Parameters that torchvision initialises to zeros (the
    class token, the classifier, the attention biases) are drawn at random first, so
    that a wrong pairing shows in the outputs."""
    torch = need("torch")
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for parameter in reference.parameters():
            if not parameter.any():
                parameter.copy_(0.02 * torch.randn(parameter.shape, generator=generator))
    state = reference.state_dict()
    names = [name for name in state if name != "class_token"]
    at = names.index("conv_proj.bias") + 1
    names.insert(at, "class_token")
    return {name: state[name] for name in names}


# ---- the generated models against inference ---------------------------------------------------


def test_small_vit_matches_inference():
    network = net("vit", **VIT_SMALL)
    model = check_torch(network, backward=True)
    # patches 32x32x3 -> 64, class token, 7x7 + 1 positions, 2 blocks, LayerNorm, classifier
    block = 2 * 2 * 64 + (4 * 64 * 64 + 4 * 64) + (64 * 128 + 128 + 128 * 64 + 64)
    by_hand = 64 * 32 * 32 * 3 + 64 + 64 + 50 * 64 + 2 * block + 2 * 64 + 64 * 10 + 10
    assert sum(p.numel() for p in model.parameters()) == network.total_params == by_hand
    assert not list(model.buffers())


def test_small_gpt2_matches_inference_and_ties_its_embeddings():
    network = net("gpt2", **GPT2_SMALL)
    model = check_torch(network, backward=True)
    assert model.lm_head.weight is model.wte.weight  # one table, counted once
    # 256 x 64 table + 64 x 64 positions + 2 blocks + final LayerNorm; the head adds nothing
    block = 2 * 2 * 64 + (4 * 64 * 64 + 4 * 64) + (64 * 256 + 256 + 256 * 64 + 64)
    assert network.total_params == 256 * 64 + 64 * 64 + 2 * block + 2 * 64 == 120_576
    assert sum(p.numel() for p in model.parameters()) == network.total_params


def test_gpt2_attention_is_causal():
    """A later token changes no earlier position's logits; an earlier one changes them all."""
    torch = need("torch")
    _, model = build_torch(net("gpt2", **GPT2_SMALL))
    ids = torch.randint(256, (1, 64), generator=torch.Generator().manual_seed(0))
    later, earlier = ids.clone(), ids.clone()
    later[0, 40] = (ids[0, 40] + 1) % 256
    earlier[0, 0] = (ids[0, 0] + 1) % 256
    with torch.no_grad():
        base, after_later, after_earlier = model(ids), model(later), model(earlier)
    assert torch.equal(after_later[:, :40], base[:, :40])
    assert not torch.allclose(after_later[:, 40:], base[:, 40:])
    assert not torch.allclose(after_earlier[:, 1:], base[:, 1:])


@pytest.mark.slow
def test_default_vit_and_gpt2_match_inference():
    check_torch(net("vit"))
    network = net("gpt2")
    assert (
        network.total_params
        == FIGURES["transformers_lib"]["GPT2LMHeadModel(GPT2Config())"]["params"]
    )
    _, model = build_torch(network)
    assert sum(p.numel() for p in model.parameters()) == network.total_params == 124_439_808


# ---- the generated code ------------------------------------------------------------------------


def starts(lines: list[str], prefix: str) -> bool:
    return any(line.startswith(prefix) for line in lines)


def test_vit_reads_like_torchvision():
    lines = torch_source(net("vit")).splitlines()
    # one class per block, named submodules, helpers that keep torchvision's tensors
    for line in (
        "class MlpBlock(nn.Module):",
        "class EncoderBlock(nn.Module):",
        "class PatchEmbed(nn.Conv2d):",
        "class SelfAttention(nn.MultiheadAttention):",
        "        self.patch_embed = PatchEmbed(3, dim, patch)",
        "        self.cls_token = ClassToken(dim)",
        "        x = self.patch_embed(x)  # 196x768",
        "        x = self.cls_token(x)  # 197x768",
        "        x = self.encoder_blocks(x)  # 197x768",
        "        x = self.token_pool(x)  # 768",
        "        out = self.attention(out)  # 197x768",
        "INPUT_SHAPE = (3, 224, 224)  # (C, H, W) of one example; batch is the first dimension",
    ):
        assert line in lines, line
    for prefix in (
        "        self.attention = SelfAttention(",
        "        self.mlp_block = MlpBlock(",
        "        self.layernorm1 = nn.LayerNorm(",
        "        self.encoder_blocks = nn.Sequential(",
    ):
        assert starts(lines, prefix), prefix
    assert not starts(lines, "VOCAB_SIZE")
    assert not any("register_buffer" in line for line in lines)  # masks are made in forward


def test_gpt2_takes_token_ids_below_its_vocabulary():
    torch = need("torch")
    source = torch_source(net("gpt2", **GPT2_SMALL))
    lines = source.splitlines()
    assert "INPUT_SHAPE = (64,)  # (N,) token ids of one example; batch is the first dimension" in (
        lines
    )
    assert "VOCAB_SIZE = 256  # token ids are 0 ... VOCAB_SIZE - 1" in lines
    assert "    example = torch.randint(VOCAB_SIZE, (1, *INPUT_SHAPE))" in lines
    assert "        self.lm_head.weight = self.wte.weight  # tied" in lines
    assert '        self.gelu = nn.GELU(approximate="tanh")' in lines
    attention = [line for line in lines if line.startswith("        self.attention = ")]
    assert attention and all(line.endswith(", dropout=p, causal=True)") for line in attention)
    module = load_source(source)
    model = module.build_model().eval()
    ids = torch.randint(module.VOCAB_SIZE, (3, *module.INPUT_SHAPE))
    with torch.no_grad():
        assert model(ids).shape == (3, 64, 256)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, params, printed",
    [
        ("vit", (), "Vit: 86,567,656 parameters, output (1, 1000)"),
        ("gpt2", GPT2_SMALL.items(), "Gpt2: 120,576 parameters, output (1, 64, 256)"),
    ],
    ids=["vit", "gpt2"],
)
def test_generated_file_runs_as_a_script(tmp_path, name, params, printed):
    from netdsl.cli import main

    path = tmp_path / f"{name}.py"
    overrides = [arg for k, v in params for arg in ("--param", f"{k}={v}")]
    args = ["compile", str(ARCHITECTURES / f"{name}.net"), "--target", "torch", "-o", str(path)]
    assert main([*args, *overrides, "-q"]) == 0
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == printed


def test_softmax_on_tokens_is_over_each_tokens_features():
    source = torch_source(compile_text("network t:\n    input 10x16\n    softmax\n"))
    assert "        self.softmax = nn.Softmax(dim=-1)" in source.splitlines()


def test_image_and_tokens_round_trip():
    torch = need("torch")
    network = compile_text("network t:\n    input 8x4x6\n    tokens + fc 8 + image 4 6\n")
    model = check_torch(network)
    source = torch_source(network)
    assert "        self.image = ToImage(4, 6)" in source.splitlines()
    with torch.no_grad():
        model.fc.weight.copy_(torch.eye(8))
        model.fc.bias.zero_()
        x = torch.randn(2, 8, 4, 6)
        assert torch.equal(model(x), x)


def test_a_tied_fc_shares_the_embeddings_table():
    torch = need("torch")
    text = (
        "network t:\n"
        "    input 16 tokens of 50\n"
        "    wte = (embedding 8) as wte\n"
        "    wte + layernorm + (fc 50 bias=false tie=wte) as lm_head\n"
    )
    network = compile_text(text)
    assert network.total_params == 50 * 8 + 2 * 8  # the table once, the LayerNorm
    model = check_torch(network, backward=True)
    assert "        self.lm_head.weight = self.wte.weight  # tied" in torch_source(network)
    assert model.lm_head.weight is model.wte.weight
    ids = torch.tensor([[3] * 16])
    with torch.no_grad():  # the logits are each LayerNorm'd token against every table row
        logits = model(ids)
        expected = model.layernorm(model.wte.weight[ids]) @ model.wte.weight.T
    assert torch.allclose(logits, expected)


def test_a_tie_across_classes_is_refused_where_the_fc_is_written():
    text = (
        "block head(v, table) = layernorm + fc v bias=false tie=table\n"
        "network t:\n"
        "    input 16 tokens of 50\n"
        "    wte = embedding 8\n"
        "    wte + head(50, wte)\n"
    )
    network = compile_text(text)
    with pytest.raises(NetdslError) as info:
        torch_source(network)
    error = info.value
    assert (error.span.line, error.span.column) == (1, 36)
    assert error.message.startswith("the torch backend cannot tie this fc to `table`")
    assert "in the same block, or both in the network" in error.hint


def test_a_tie_inside_a_repeat_is_refused():
    text = (
        "network t(n=1):\n"
        "    input 16 tokens of 50\n"
        "    wte = embedding 8\n"
        "    wte + layernorm + [fc 50 bias=false tie=wte]*n\n"
    )
    with pytest.raises(NetdslError, match="cannot tie this fc to `wte`") as info:
        torch_source(compile_text(text))
    assert info.value.span.line == 4


# ---- the MAC convention ----------------------------------------------------------------------


def attention_model(n: int, d: int, heads: int, causal: bool = False):
    text = f"network t:\n    input {n}x{d}\n    attention {heads} causal={str(causal).lower()}\n"
    network = compile_text(text)
    _, model = build_torch(network)
    (node,) = [x for x in network.nodes() if x.op == "attention"]
    return node, model


@pytest.mark.parametrize(
    "n, d, heads, causal", [(197, 192, 12, False), (50, 64, 4, True), (7, 12, 3, False)]
)
def test_attention_macs_are_flop_counters_on_the_unfused_path(n, d, heads, causal):
    """The generated attention is an nn.MultiheadAttention; on its unfused path (training
    mode, need_weights=True: Q K^T and A V as explicit bmm) FlopCounterMode counts the
    projections and both matmuls: exactly the formula 4 N D^2 + 2 N^2 D."""
    torch = need("torch")
    from torch.utils.flop_counter import FlopCounterMode

    node, model = attention_model(n, d, heads, causal)
    module = model.attention.train()
    x = torch.randn(1, n, d)
    mask = torch.full((n, n), float("-inf")).triu(1) if causal else None
    with FlopCounterMode(display=False) as counter:
        torch.nn.MultiheadAttention.forward(module, x, x, x, need_weights=True, attn_mask=mask)
    assert counter.get_total_flops() // 2 == node.macs == 4 * n * d * d + 2 * n * n * d


def test_flop_counter_misses_the_attention_matmuls_on_the_fused_paths():
    """What FlopCounterMode reports for the generated attention as torchvision calls it
    (need_weights=False), on the CPU: with autograd on, the projections only (the matmuls
    run inside scaled_dot_product_attention, uncounted); in eval mode without autograd,
    nothing at all (nn.MultiheadAttention's fused fast path, one native call)."""
    torch = need("torch")
    from torch.utils.flop_counter import FlopCounterMode

    n, d, heads = 197, 768, 12
    node, model = attention_model(n, d, heads)
    x = torch.randn(1, n, d)

    def counted(train: bool, grad: bool) -> int:
        model.train(train)
        with torch.set_grad_enabled(grad), FlopCounterMode(display=False) as counter:
            model(x)
        return counter.get_total_flops() // 2

    projections, matmuls = 4 * n * d * d, 2 * n * n * d
    assert node.macs == projections + matmuls
    assert counted(train=True, grad=True) == projections
    assert counted(train=False, grad=True) == projections
    assert counted(train=False, grad=False) == 0


def test_vit_macs_are_conv_and_linear_plus_the_attention_matmuls():
    """vit.net's MACs: what flop_counter counts for the generated model with autograd on
    (conv and linear layers) plus 2 N^2 D per encoder block: torchvision's 17.564 GFLOPS."""
    network = net("vit")
    attention = [x for x in network.nodes() if x.op == "attention"]
    assert len(attention) == 12
    linear = sum(x.macs for x in network.nodes() if x.op != "attention")
    linear += sum(4 * 197 * 768 * 768 for _ in attention)
    assert linear == 16_848_500_736  # FlopCounterMode's count for torchvision's vit_b_16
    assert network.total_macs == linear + 12 * 2 * 197 * 197 * 768 == 17_563_828_224
    assert network.total_macs == FIGURES["torchvision"]["vit_b_16"]["macs"]


def test_gpt2_macs_by_hand():
    """transformers publishes no MACs: GPT-2 small's by the same convention, by hand."""
    n, d, v, layers = 1024, 768, 50257, 12
    block = 4 * n * d * d + 2 * n * n * d + 2 * n * d * 4 * d  # attention, its matmuls, MLP
    assert net("gpt2").total_macs == layers * block + n * d * v == 145_824_153_600


# ---- torchvision's ViTs (the reference environment) ---------------------------------------------


@pytest.mark.torchvision
@pytest.mark.slow
def test_torchvision_vit_b_16_weights_load_by_order_and_give_the_same_outputs():
    """torchvision's vit_b_16 state pairs entry by entry, in order, with the generated
    model's once its class_token is moved to where the .net file prepends it; both then
    compute the same eval outputs (1e-4 of their scale)."""
    torch = need("torch")
    tv = pytest.importorskip("torchvision")
    from netdsl.weights import load_by_order

    network = net("vit")
    _, model = build_torch(network)
    torch.manual_seed(0)
    reference = tv.models.vit_b_16(weights=None).eval()
    state = vit_state(reference)
    pairs = load_by_order(model, state)
    assert list(pairs.values()) == list(state)  # the flat order: no pairing by structure
    assert list(pairs)[:4] == [
        "patch_embed.weight",
        "patch_embed.bias",
        "cls_token.token",
        "pos_embed.embedding",
    ]
    assert pairs["cls_token.token"] == "class_token"
    x = torch.randn((2, 3, 224, 224), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = reference(x), model(x)
    difference = float((got - expected).abs().max())
    scale = float(expected.abs().max())
    assert scale > 0.1  # the classifier is random, not torchvision's zeros
    assert difference <= 1e-4 * scale, f"outputs differ by {difference:.3g} at {scale:.3g}"


@pytest.mark.torchvision
@pytest.mark.slow
@pytest.mark.parametrize(
    "key, params",
    [
        ("vit_b_32", {"patch": 32}),
        ("vit_l_16", {"dim": 1024, "depth": 24, "heads": 16, "mlp": 4096}),
    ],
    ids=["vit_b_32", "vit_l_16"],
)
def test_torchvision_vit_figures(key, params):
    """vit_b_32 and vit_l_16 as built by torchvision: the parameters, and the MACs by the
    convention (FlopCounterMode's conv and linear count with autograd on, plus 2 N^2 D per
    encoder layer), against the figures file, the .net file and torchvision's GFLOPS."""
    torch = need("torch")
    tv = pytest.importorskip("torchvision")
    from torch.utils.flop_counter import FlopCounterMode

    reference = getattr(tv.models, key)(weights=None).eval()
    with FlopCounterMode(display=False) as counter:
        reference(torch.zeros(1, 3, 224, 224))
    n = (224 // reference.patch_size) ** 2 + 1
    attention = len(reference.encoder.layers) * 2 * n * n * reference.hidden_dim
    macs = counter.get_total_flops() // 2 + attention
    figures = FIGURES["torchvision"][key]
    assert (sum(p.numel() for p in reference.parameters()), macs) == (
        figures["params"],
        figures["macs"],
    )
    network = net("vit", **params)
    assert (network.total_params, network.total_macs) == (figures["params"], figures["macs"])
    weights = {"vit_b_32": tv.models.ViT_B_32_Weights, "vit_l_16": tv.models.ViT_L_16_Weights}
    assert round(macs / 1e9, 3) == weights[key].IMAGENET1K_V1.meta["_ops"]
