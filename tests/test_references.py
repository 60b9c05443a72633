"""Zoo files against the implementations they reproduce, weights included.

A zoo file that mirrors a reference network registers the same tensors in the
same order, so the reference's own (random) weights load into the generated
PyTorch model (netdsl.weights.load_by_order) and both compute the same outputs.
These tests build the references, so they run in .ci/run's reference
environment, where torchvision and pytorchcv import (markers `torchvision`,
`pytorchcv`); elsewhere they skip. The figures themselves (params, MACs) are
checked without the references, in test_zoo.py, from tests/reference_figures.json.
"""

from __future__ import annotations

import pytest
from backends import build_torch, randomise_batchnorm
from test_zoo import PYTORCHCV, net


def assert_same_outputs(net, model, reference, batch: int = 2) -> None:
    """Load `reference`'s weights by order into `model`; equal eval outputs (1e-4 of scale)."""
    import torch

    from netdsl.weights import load_by_order

    reference.eval()
    randomise_batchnorm(reference)
    load_by_order(model, reference)
    shape = next(iter(net.inputs.values())).out_shape
    x = torch.randn((batch, *shape), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = reference(x), model(x)
    expected = expected[0] if isinstance(expected, tuple) else expected
    got = got[0] if isinstance(got, tuple) else got
    assert got.shape == expected.shape
    difference = float((got - expected).abs().max())
    scale = float(expected.abs().max())
    assert difference <= 1e-4 * scale + 1e-6, f"outputs differ by {difference:.3g} at {scale:.3g}"


@pytest.mark.pytorchcv
@pytest.mark.slow
@pytest.mark.parametrize(
    "name, params, key",
    [(name, params, key) for (name, params), key in PYTORCHCV.items()],
    ids=[key for key in PYTORCHCV.values()],
)
def test_pytorchcv_weights_give_the_same_outputs(name, params, key):
    pytest.importorskip("pytorchcv")
    from pytorchcv.model_provider import get_model

    network = net(name, **dict(params))
    _, model = build_torch(network)
    assert_same_outputs(network, model, get_model(key, pretrained=False))
