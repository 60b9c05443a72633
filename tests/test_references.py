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
from test_zoo import FIGURES, VARIANTS, input_shape, net, reference_input
from test_zoo_transformers import vit_state


def assert_same_outputs(net, model, reference, batch: int = 2, state=None) -> None:
    """Load `reference`'s weights by order into `model` (its `state` if given: the same
    tensors, some moved); equal eval outputs (1e-4 of scale)."""
    import torch

    from netdsl.weights import load_by_order

    reference.eval()
    randomise_batchnorm(reference)
    load_by_order(model, reference if state is None else state)
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


# with pytorchcv's own random init, the residual stream of these grows ~1.3x per unit in eval
# mode (BatchNorm's running statistics do not renormalise it) and overflows float32 to nan
OVERFLOWING = {"preresnet1001_cifar10"}


def halve_conv_weights(model) -> None:
    import torch

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.mul_(0.5)


def variants(source: str) -> list:
    """pytest parameters (name, params, key) of the zoo rows and variants from `source`."""
    return [
        pytest.param(name, params, key, id=key)
        for (name, params), (origin, key) in VARIANTS.items()
        if origin == source
    ]


@pytest.mark.pytorchcv
@pytest.mark.slow
@pytest.mark.parametrize("name, params, key", variants("pytorchcv"))
def test_pytorchcv_weights_give_the_same_outputs(name, params, key):
    pytest.importorskip("pytorchcv")
    from pytorchcv.model_provider import get_model

    network = net(name, **dict(params))
    _, model = build_torch(network)
    reference = get_model(key, pretrained=False)
    if key in OVERFLOWING:
        halve_conv_weights(reference)
    assert_same_outputs(network, model, reference)


# torchvision builders' arguments beyond weights=None (which builds without downloading):
# googlenet and inception_v3 with their aux heads (the zoo files write them as train-time
# outputs), no input transform (weights=None leaves googlenet's off; inception_v3 needs it
# said) and no initialisation pass (the weights are random either way)
TORCHVISION_ARGUMENTS = {
    "googlenet_aux": {"aux_logits": True, "init_weights": False, "transform_input": False},
    "inception_v3": {"aux_logits": True, "init_weights": False, "transform_input": False},
}


def segmentation(key: str):
    """A builder of torchvision.models.segmentation.KEY without its auxiliary head, wrapped
    so that forward returns the dict's "out" tensor (the zoo file's one output)."""

    def build(tv):
        import torch

        class Out(torch.nn.Module):
            def __init__(self, model) -> None:
                super().__init__()
                self.model = model

            def forward(self, x):
                return self.model(x)["out"]

        builder = getattr(tv.models.segmentation, key)
        return Out(builder(weights=None, weights_backbone=None, aux_loss=False))

    return build


# keys that are not a tv.models builder: key -> a function of the torchvision module
TORCHVISION_BUILDERS = {"fcn_resnet50": segmentation("fcn_resnet50")}
# references whose state_dict is loaded in another order: key -> a function of the model
# that returns its state (ViT: class_token moved to where the .net file creates it)
TORCHVISION_STATES = dict.fromkeys(("vit_b_16", "vit_b_32", "vit_l_16"), vit_state)


@pytest.mark.torchvision
@pytest.mark.slow
@pytest.mark.parametrize("name, params, key", variants("torchvision"))
def test_torchvision_weights_give_the_same_outputs(name, params, key):
    """torchvision's random weights load into the generated model (by order, or by module
    where the order differs: googlenet registers its aux heads after inception5b, the .net
    file after the block each reads) and both compute the same eval outputs, at the
    reference figures' input size, batch 1."""
    import torch

    tv = pytest.importorskip("torchvision")
    network = net(name, **dict(params))
    assert input_shape(network) == reference_input(FIGURES["torchvision"][key])
    _, model = build_torch(network)
    torch.manual_seed(0)
    if key in TORCHVISION_BUILDERS:
        reference = TORCHVISION_BUILDERS[key](tv)
    else:
        builder = getattr(tv.models, key.removesuffix("_aux"))
        reference = builder(weights=None, **TORCHVISION_ARGUMENTS.get(key, {}))
    assert not getattr(reference, "transform_input", False)
    state = TORCHVISION_STATES[key](reference) if key in TORCHVISION_STATES else None
    assert_same_outputs(network, model, reference, batch=1, state=state)
