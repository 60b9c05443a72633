"""The round trip that proves an import: import -> compile -> the source's weights -> outputs.

Used by tests/test_import_torch.py and benchmarks/import_roundtrip.py: a PyTorch model is
imported to .net text, the text is compiled and its generated PyTorch model built, the
source's weights (random init, BatchNorm statistics randomised so a wrong one shows) load
into it by order (netdsl.weights.load_by_order), and both compute eval outputs on one random
input. torch is imported by the function.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RoundTrip:
    text: str  # the imported .net source
    lines: int  # its non-blank, non-comment lines
    error: float  # max |ours - theirs| / max |theirs| on the eval outputs


def code_lines(text: str) -> int:
    """Non-blank lines that are not only a comment."""
    return sum(
        1 for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    )


def roundtrip(model, shape: tuple, seed: int = 0, batch: int = 2) -> RoundTrip:
    """Import `model` at input `shape` (C, H, W) and compare the generated model's outputs."""
    import torch

    import netdsl

    from ..weights import load_by_order
    from .command import check
    from .recover import recover
    from .torch_frontend import read

    model = model.eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                module.running_mean.copy_(0.2 * torch.rand(n, generator=generator) - 0.1)
                module.running_var.copy_(0.8 + 0.45 * torch.rand(n, generator=generator))
    text = recover(read(model, tuple(shape)))
    check(text)
    ours = netdsl.load(text).to_torch().eval()
    load_by_order(ours, model)
    x = torch.randn((batch, *shape), generator=generator)
    with torch.no_grad():
        expected, got = model(x), ours(x)
    expected = expected[0] if isinstance(expected, tuple) else expected
    got = got[0] if isinstance(got, tuple) else got
    if tuple(got.shape) != tuple(expected.shape):
        raise AssertionError(f"output shapes differ: {tuple(got.shape)} vs {tuple(expected.shape)}")
    scale = float(expected.abs().max()) or 1.0
    return RoundTrip(text, code_lines(text), float((got - expected).abs().max()) / scale)


# torchvision builders' arguments beyond weights=None: GoogLeNet and Inception v3 without the
# train-time aux heads, whose weights an eval-mode import cannot pair (the importer says so)
TORCHVISION_ARGS = {
    "googlenet": {"aux_logits": False, "init_weights": False},
    "inception_v3": {"aux_logits": False, "init_weights": False},
}
# models whose forward needs a larger input than the round trip's small default, or exactly
# the size they were built for
TORCHVISION_INPUTS = {
    "inception_v3": (3, 299, 299),
    **{f"vit_{v}": (3, 224, 224) for v in ("b_16", "b_32", "l_16", "l_32", "h_14")},
    "maxvit_t": (3, 224, 224),
}


def torchvision_roundtrip(name: str, shape: tuple = (3, 64, 64)) -> RoundTrip:
    """The round trip of torchvision.models.<name> (random init, eval mode)."""
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None, **TORCHVISION_ARGS.get(name, {}))
    return roundtrip(model, TORCHVISION_INPUTS.get(name, shape))
