"""Training-step FLOPs (netdsl/flops.py) against torch.utils.flop_counter, exactly.

The generated PyTorch model runs one real forward and backward pass (train mode; batch 1,
or 2 where a BatchNorm sees one value per channel, which PyTorch cannot train on one
sample) under FlopCounterMode; its count must equal netdsl's figures for the forward pass
and for the whole step. The figures scale with the batch exactly (see
test_requires_grad_and_batch_scaling).

FlopCounterMode has formulas for the GPU attention kernels (flash, memory-efficient,
cuDNN) but none for the CPU's fused kernel, which it counts zero. The counter here adds
torch's own formulas for that kernel (the ones it registers for the GPU kernels), so that
attention is counted on the CPU as FlopCounterMode counts it on a GPU; with attention
dropout in training the CPU takes the math path (explicit bmm), which it counts as is.
"""

from __future__ import annotations

import pytest
from backends import build_torch, example_input
from conftest import ARCHITECTURES, compile_text, need

from netdsl import load
from netdsl.flops import CONVENTION, LayerFlops, requires_grad, step_flops
from netdsl.layers import numel

ZOO = sorted(p.stem for p in ARCHITECTURES.glob("*.net"))
FAST = ("lenet5", "squeezenet1_1")

VIT_SMALL = {"patch": 32, "dim": 64, "depth": 2, "heads": 4, "mlp": 128, "classes": 10}
GPT2_SMALL = {"context": 64, "vocab": 256, "dim": 64, "depth": 2, "heads": 2}


def counter(torch):
    from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop, sdpa_flop

    aten = torch.ops.aten
    cpu = {  # torch's formulas for the GPU kernels, unwrapped (the mode wraps them again)
        aten._scaled_dot_product_flash_attention_for_cpu: sdpa_flop.__wrapped__,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: sdpa_backward_flop.__wrapped__,
    }
    return FlopCounterMode(display=False, custom_mapping=cpu)


def batch_for(net) -> int:
    """1, or 2 where a BatchNorm sees one value per channel (a 1x1 map, flat features):
    PyTorch refuses to train it on a batch of one."""
    one = any(n.op == "bn" and numel(n.out_shape[1:]) == 1 for n in net.nodes())
    return 2 if one else 1


def measured(net, batch: int = 2, model=None, meta: bool = False) -> tuple[int, int, dict]:
    """(forward, forward + backward, per-module counts) that FlopCounterMode sees for a
    training step of the generated model: every output's sum differentiated. `meta`: on
    PyTorch's meta device, where every op runs on shapes alone (the counts are the same,
    the time next to none), for networks without attention (whose kernel choice, and so
    its count, is the CPU's)."""
    torch = need("torch")
    if model is None:
        if meta:
            with torch.device("meta"):
                _, model = build_torch(net)
        else:
            _, model = build_torch(net)
    model.train()
    generator = torch.Generator().manual_seed(0)
    inputs = [example_input(node, batch, generator) for node in net.inputs.values()]
    if meta:
        inputs = [x.to("meta") for x in inputs]
    with counter(torch) as mode:
        out = model(*inputs)
        forward = mode.get_total_flops()
        values = out if isinstance(out, tuple) else (out,)
        sum(v.float().sum() for v in values).backward()
    return forward, mode.get_total_flops(), mode.get_flop_counts()


def assert_exact(net, batch: int | None = None, model=None, meta: bool = False) -> None:
    batch = batch or batch_for(net)
    forward, total, _ = measured(net, batch, model, meta)
    figures = step_flops(net, batch, attention="cpu")
    assert (figures.forward, figures.total) == (forward, total), (
        f"{net.name}: netdsl forward {figures.forward:,}, step {figures.total:,}; "
        f"FlopCounterMode forward {forward:,}, step {total:,}"
    )


# ---- layer by layer ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layers",
    [
        "conv3 16 + relu + conv3 16 g=4 + conv1 8 bias=false + gap + fc 10",
        "maxpool 2 + conv3 8 + gap + fc 10",  # the conv's input needs no gradient
        "dwconv3 + bn + relu + dwconv3 m=2 s=2 + conv1 8 + gap + fc 10",
        "sepconv3 16 + sepconv3 16 m=2 bias=false + gap + fc 10",
        "conv3 8 + conv_transpose 4 k=2 s=2 + conv_transpose 8 k=3 g=4 + gap + fc 10",
        "conv1 8 + pointwise_fc 16 + pointwise_fc 8 bias=false + flatten + fc 10",
        "flatten + fc 32 + relu + fc 10 bias=false",  # no input gradient for the first fc
    ],
)
def test_image_layers(layers):
    assert_exact(compile_text(f"network t:\n    input 4x12x12\n    {layers}\n"))


def test_a_join_after_an_untracked_branch_takes_the_gradient():
    """A branch with no weights (the input pooled) joined to one with weights: the join's
    output is tracked, so the conv after it computes its input gradient."""
    text = (
        "network t:\n    input 4x8x8\n"
        "    concat(conv3 4, maxpool 3 s=1 p=1) + conv3 8 + gap + fc 10\n"
    )
    net = compile_text(text)
    assert_exact(net)
    conv = [f for f in step_flops(net).layers if f.node.op == "conv"]
    assert conv[0].input_grad == 0 and conv[1].input_grad == conv[1].forward


@pytest.mark.parametrize("dropout", [0.0, 0.1])
@pytest.mark.parametrize("causal", [False, True])
def test_attention_fused_and_math_paths(dropout, causal):
    """Dropout in training sends the CPU down the math path (bmm: each product
    differentiated twice); without it the fused kernel recomputes Q K^T (5 products)."""
    flag = "true" if causal else "false"
    text = (
        f"network t:\n    input 16x32\n    attention 4 dropout={dropout} causal={flag}\n    fc 8\n"
    )
    net = compile_text(text)
    assert_exact(net)
    (f,) = [f for f in step_flops(net, 2, attention="cpu").layers if f.node.op == "attention"]
    n, d = 16, 32
    products = 2 * 2 * 2 * n * n * d  # 2 FLOPs x batch 2 x 2 N^2 D
    in_proj = 2 * 2 * 3 * n * d * d  # (the input needs no gradient)
    out_proj = 2 * 2 * n * d * d
    assert f.forward == 4 * out_proj + products
    assert f.input_grad == out_proj + (2 * products if dropout else 5 * products // 2)
    assert f.weight_grad == in_proj + out_proj


def test_vit_and_gpt2_small():
    """patch_embed, class token, position embedding, attention, token_pool; the GPT's
    embedding (zero), causal attention with dropout and the tied output layer."""
    assert_exact(load("vit", VIT_SMALL).network)
    assert_exact(load("gpt2", GPT2_SMALL).network)


def test_train_only_heads_run_in_the_step_but_not_in_eval():
    net = load("googlenet", {"classes": 10}).network
    figures = step_flops(net, 1)
    heads = sum(f.forward for f in figures.layers if f.node.train_only)
    assert heads > 0
    assert figures.forward == figures.forward_eval + heads
    assert figures.forward_eval == 2 * net.total_macs


# lenet5 runs on the CPU, squeezenet1_1 (no attention) on the meta device: the same counts
@pytest.mark.parametrize("name", FAST)
def test_fast_zoo_networks(name):
    assert_exact(load(name).network, meta=name != "lenet5")


def test_per_block_counts_match_flop_counter_modules():
    """FlopCounterMode's per-module counts (forward and backward) for each top-level
    block of resnet_cifar equal netdsl's sums over that block."""
    from netdsl.emit.base import _attr

    torch = need("torch")
    net = load("resnet_cifar", {"depth": 20}).network
    with torch.device("meta"):  # shapes only: the counts are the CPU's
        _, model = build_torch(net)
    _, _, counts = measured(net, 2, model, meta=True)
    figures = step_flops(net, 2, attention="cpu")
    prefix = type(model).__name__
    checked = 0
    for child in net.root.children:
        if getattr(child, "op", None) == "input":
            continue
        key = f"{prefix}.{_attr(child.name)}"
        expected = figures.of(child).total
        got = sum(counts.get(key, {}).values())
        assert got == expected, f"{child.name}: netdsl {expected:,}, FlopCounterMode {got:,}"
        checked += bool(expected)
    assert checked >= 4


# ---- the figures themselves ---------------------------------------------------------------------


def test_resnet18_by_hand():
    """ResNet-18 at batch 1: forward 2 x MACs; backward twice that less the first conv's
    input gradient (the image needs none)."""
    net = load("resnet18").network
    figures = step_flops(net, 1)
    first = next(f for f in figures.layers if f.node.op == "conv")
    assert figures.forward == 2 * net.total_macs == 3_628_146_688
    assert first.input_grad == 0 and first.weight_grad == first.forward
    assert first.notes == ("no input gradient: nothing before it requires grad",)
    assert figures.weight_grad == figures.forward and figures.overcount == 0
    assert figures.input_grad == figures.forward - first.forward
    assert figures.total == 3 * figures.forward - first.forward
    assert figures.of(net.root) == LayerFlops(
        None, figures.forward, figures.input_grad, figures.weight_grad
    )


def test_depthwise_weight_gradient_counts_every_input_channel():
    net = compile_text("network t:\n    input 32x8x8\n    dwconv3 + gap + fc 10\n")
    (dw,) = [f for f in step_flops(net, 1).layers if f.node.op == "dwconv"]
    assert dw.weight_grad == 32 * dw.forward
    assert dw.overcount == 31 * dw.forward  # its arithmetic: one forward's worth
    assert "x 32" in dw.notes[-1]


def test_requires_grad_and_batch_scaling():
    net = load("lenet5").network
    tracked = requires_grad(net)
    assert [tracked[n.id] for n in net.nodes()][:2] == [False, True]  # input, conv1
    one, eight = step_flops(net, 1), step_flops(net, 8)
    assert (eight.forward, eight.backward) == (8 * one.forward, 8 * one.backward)


def test_bad_attention_path():
    with pytest.raises(ValueError, match="attention must be one of"):
        step_flops(load("lenet5").network, attention="gpu")
    assert "FlopCounterMode" in CONVENTION


# ---- every zoo network -----------------------------------------------------------------------


# Networks without attention run on the meta device (shapes only: seconds for the zoo);
# GPT-2, on the CPU, on a shorter context: the same layers, compared exactly there.
SMALLER = {"gpt2": ({"context": 256}, None)}  # from 1,024 tokens


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in ZOO if n not in FAST])
def test_zoo_training_step_flops_equal_flop_counter(name):
    params, shape = SMALLER.get(name, (None, None))
    net = load(name, params, input_shape=shape).network
    # (placed networks move their parts between devices: no meta tensors there)
    placed = any(n.device for n in net.nodes())
    assert_exact(net, meta=not placed and not any(n.op == "attention" for n in net.nodes()))
