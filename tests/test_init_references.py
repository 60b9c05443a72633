"""Each zoo file starts from its reference's initial weights (issue 24), tensor by tensor.

For every zoo network with a torchvision or pytorchcv reference, the reference is built
(seed 1, its own init code) and its tensors are paired with the generated model's by
order (netdsl.weights.load_by_order, as tests/test_references.py loads weights), and with
what netdsl resolves for each (netdsl.initializers.resolve, in the generated model's
parameter order: node by node, each node's tensors as TENSORS lists them). Then, for
every tensor:

(a) the reference's values are drawn from the distribution netdsl resolves for it
    (`drawn_from`: one-sample Kolmogorov-Smirnov against its CDF, constants exactly);
(b) the generated model's values (its `build_model()`, seed 0) and the reference's are
    drawn from one distribution (`same_distribution`: two-sample KS).

Both at tests/init_stats.py's threshold, Bonferroni-corrected over the network's tensors.
Tensors larger than SAMPLE values are compared on a fixed random subset, so the big
networks cost their construction only.

These build the references, so they run in .ci/run's reference environment (markers
`torchvision`, `pytorchcv`); elsewhere they skip. Not checked here, for want of the
library there: timm's inception_v4 and seresnet50, transformers' GPT-2, and the Keras
applications (mobilenet, xception, resnet50_v2, inception_resnet_v2); nor the
hand-built and paper-only files (their inits are the papers', checked by resolution in
test_init_zoo.py). Of a file's parameter variants, only vit_b_32 is checked beside the
rows (its patch stem's std depends on the patch size); the others (efficientnet_b1,
shufflenet_v2 widths, shufflenet_g1, preresnet1001, vit_l_16) state the same scheme on
other widths and cost minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pytest
from backends import build_torch
from init_stats import drawn_from, same_distribution
from test_references import TORCHVISION_BUILDERS
from test_zoo import VARIANTS, net

from netdsl import initializers
from netdsl.weights import load_by_order

SAMPLE = 20_000
# the variants checked beside the zoo rows (see the module docstring)
EXTRA = {"vit_b_32"}
# layers whose parameter starts from the layer's own argument, not an init resolve() lists
OWN = ("layer_scale",)
# torchvision builders' arguments beyond weights=None: the aux heads the zoo files write,
# no input transform, and the init pass these two builders would otherwise skip
ARGUMENTS = {
    "googlenet_aux": {"aux_logits": True, "init_weights": True, "transform_input": False},
    "inception_v3": {"aux_logits": True, "init_weights": True, "transform_input": False},
}


@dataclass
class Tensor:
    where: str  # the generated model's parameter name: node id and role
    resolved: initializers.Resolved | None  # None: a layer's own constant (OWN)
    ours: np.ndarray  # the generated model's values (a fixed subset)
    theirs: np.ndarray  # the reference's


def sample(tensor, rng) -> np.ndarray:
    flat = tensor.detach().reshape(-1)
    if flat.numel() > SAMPLE:
        import torch

        flat = flat[torch.from_numpy(rng.choice(flat.numel(), SAMPLE, replace=False))]
    return flat.double().numpy()


def reference_model(source: str, key: str):
    import torch

    torch.manual_seed(1)
    if source == "pytorchcv":
        from pytorchcv.model_provider import get_model

        return get_model(key, pretrained=False)
    tv = pytest.importorskip("torchvision")
    if key in TORCHVISION_BUILDERS:
        return TORCHVISION_BUILDERS[key](tv)
    builder = getattr(tv.models, key.removesuffix("_aux"))
    return builder(weights=None, **ARGUMENTS.get(key, {}))


def reference_state(key: str, reference) -> dict:
    """The reference's state in the generated model's order: ViT's class token moved to
    where the .net file creates it, after the patch embedding (as test_zoo_transformers'
    vit_state, without redrawing its zeros)."""
    state = reference.state_dict()
    if not key.startswith("vit_"):
        return state
    names = [name for name in state if name != "class_token"]
    names.insert(names.index("conv_proj.bias") + 1, "class_token")
    return {name: state[name] for name in names}


@cache
def tensors(name: str, params: tuple, source: str, key: str) -> tuple[Tensor, ...]:
    """Every initialised tensor of the network: what netdsl resolves, and samples of the
    generated model's and the reference's values (cached: both tests read them)."""
    if source == "pytorchcv":
        pytest.importorskip("pytorchcv")
    else:
        pytest.importorskip("torchvision")
    network = net(name, **dict(params))
    # the generated model registers its parameters node by node, in this order; a layer
    # whose parameter starts from its own argument (OWN) is paired without a resolution
    resolved = [
        (node.id, r)
        for node in network.nodes()
        for r in (initializers.resolve(node) or ([None] if node.op in OWN else []))
    ]
    _, model = build_torch(network)
    parameters = list(model.named_parameters())
    assert len(parameters) == len(resolved), (len(parameters), len(resolved))
    for (where, r), (name, p) in zip(resolved, parameters):
        if r is not None:
            assert name.endswith(r.tensor.role) and tuple(p.shape) == r.shape, (
                f"{where} {r.tensor.role} {r.shape} pairs with the model's {name} {tuple(p.shape)}"
            )
    rng = np.random.default_rng(0)
    ours = {name: sample(p, rng) for name, p in parameters}
    reference = reference_model(source, key)
    state = reference_state(key, reference)
    pairs = load_by_order(model, state)
    result = tuple(
        Tensor(name, r, ours[name], sample(state[pairs[name]], rng))
        for (_, r), (name, _) in zip(resolved, parameters)
    )
    del model, reference, state
    return result


def cases() -> list:
    out = []
    for (name, params), (source, key) in VARIANTS.items():
        if source not in ("torchvision", "pytorchcv") or (params and key not in EXTRA):
            continue
        marks = [getattr(pytest.mark, source), pytest.mark.slow]
        out.append(pytest.param(name, params, source, key, id=key, marks=marks))
    return out


@pytest.mark.parametrize("name, params, source, key", cases())
def test_reference_draws_from_what_netdsl_resolves(name, params, source, key):
    """(a) The reference's own init, tensor by tensor, is the distribution the zoo file
    states (or leaves at PyTorch's default)."""
    found = [t for t in tensors(name, params, source, key) if t.resolved is not None]
    wrong = []
    for t in found:
        d = initializers.distribution(t.resolved.init, *t.resolved.fans)
        ok, why = drawn_from(t.theirs, d, tests=len(found))
        if not ok:
            wrong.append(f"{t.where}: {initializers.describe(t.resolved)}; the reference: {why}")
    assert not wrong, f"{len(wrong)} of {len(found)} tensors:\n" + "\n".join(wrong[:20])


def applies_inits() -> bool:
    """Whether the generated PyTorch code applies a written init (a zero-init conv)."""
    from conftest import compile_text

    _, model = build_torch(compile_text("network t:\n    input 3x4x4\n    conv 2 k=1 init=0\n"))
    return not any(p.detach().any() for n, p in model.named_parameters() if n.endswith("weight"))


@pytest.mark.parametrize("name, params, source, key", cases())
def test_generated_model_starts_as_the_reference(name, params, source, key):
    """(b) The generated model's tensors and the reference's come from one distribution."""
    found = tensors(name, params, source, key)
    assert applies_inits(), "the generated PyTorch model does not apply written inits"
    wrong = []
    for t in found:
        ok, why = same_distribution(t.ours, t.theirs, tests=len(found))
        if not ok:
            said = initializers.describe(t.resolved) if t.resolved else "the layer's own"
            wrong.append(f"{t.where} ({said}): {why}")
    assert not wrong, f"{len(wrong)} of {len(found)} tensors:\n" + "\n".join(wrong[:20])


@pytest.mark.torchvision
@pytest.mark.slow
@pytest.mark.parametrize("name, key", [("resnet18", "resnet18"), ("resnet50", "resnet50")])
def test_zero_init_residual_matches_torchvision(name, key):
    """build_model(zero_init_residual=True) zeroes what torchvision's switch zeroes: the
    last BatchNorm scale of every residual branch, and nothing else."""
    import torch

    tv = pytest.importorskip("torchvision")
    assert applies_inits(), "the generated PyTorch model does not apply written inits"
    network = net(name)
    _, model = build_torch(network, zero_init_residual=True)
    torch.manual_seed(1)
    reference = getattr(tv.models, key)(weights=None, zero_init_residual=True)
    state = reference.state_dict()
    ours = {n: p.detach().clone() for n, p in model.state_dict().items()}
    pairs = load_by_order(model, state)
    zero = [n for n, t in state.items() if n.endswith(".weight") and t.ndim == 1 and not t.any()]
    assert zero and len(zero) == sum(1 for n in ours if pairs[n] in zero and not ours[n].any()), (
        "the zeroed BatchNorm scales differ"
    )
    ours_zero = [
        n for n, t in ours.items() if n.endswith(".weight") and t.ndim == 1 and not t.any()
    ]
    assert sorted(pairs[n] for n in ours_zero) == sorted(zero)
