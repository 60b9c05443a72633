"""`netdsl import` of torchvision's classifiers: the round trip, and how the result reads.

Round trip: import (random init, eval mode) -> compile -> the original's weights loaded by
order -> equal eval outputs (rel 1e-4). CI runs a fast subset at a small input; the slow test
goes over every torchvision classification model and expects the ones netdsl cannot express to
fail with the importer's message, listed below. Readability: the imported resnet50, densenet121,
mobilenet_v2 and vgg16 are within 2x the lines of the hand-written zoo files and call blocks
instead of unrolling them. Run with:

    .ci/venv-torchvision/bin/python -m pytest -m torchvision tests/test_import_torch.py
"""

from __future__ import annotations

import re

import pytest
from conftest import ARCHITECTURES

pytestmark = pytest.mark.torchvision

# vgg11's 129M parameters take seconds to initialise: slow, with the rest of CI's slow tests
FAST = ["resnet18", "mobilenet_v2", "densenet121", pytest.param("vgg11", marks=pytest.mark.slow)]

# what the importer says for the models whose layers netdsl does not have
_SWIN = (
    "cannot import the function "
    "torchvision.models.swin_transformer._get_relative_position_bias at features.1.0.attn: "
    "netdsl has no such layer"
)
_SWIN_V2 = (
    "cannot import torch.nn.Linear at features.1.0.attn.cpb_mlp.0: it reads the tensor "
    "attribute features.1.0.attn.relative_coords_table, not the model's data"
)
NOT_IMPORTABLE = {
    **{f"swin_{v}": _SWIN for v in ("t", "s", "b")},
    **{f"swin_{v}": _SWIN_V2 for v in ("v2_t", "v2_s", "v2_b")},
    "maxvit_t": "cannot import Tensor.reshape to 64x8x7x8x7 at "
    "blocks.0.layers.0.layers.window_attention.partition_op: netdsl reshapes only by flatten "
    "(and shuffle's view-transpose-view)",
}


def torchvision_models() -> list[str]:
    try:
        import torchvision
    except ImportError:  # collected outside the torchvision environment: nothing to run
        return []
    return sorted(torchvision.models.list_models(module=torchvision.models))


@pytest.mark.parametrize("name", FAST)
def test_fast_round_trip(name):
    pytest.importorskip("torchvision")
    from netdsl.importer.roundtrip import torchvision_roundtrip

    result = torchvision_roundtrip(name, (3, 32, 32))
    assert result.error <= 1e-4, f"{name}: outputs differ by {result.error:.3g} (relative)"


@pytest.mark.slow
@pytest.mark.deep  # 80 models, about ten minutes: CI runs the fast subset above
@pytest.mark.parametrize("name", torchvision_models())
def test_every_torchvision_classifier_round_trips_or_says_why_not(name):
    from netdsl.errors import NetdslError
    from netdsl.importer.roundtrip import torchvision_roundtrip

    if name in NOT_IMPORTABLE:
        with pytest.raises(NetdslError) as e:
            torchvision_roundtrip(name)
        assert e.value.message == NOT_IMPORTABLE[name]
    else:
        result = torchvision_roundtrip(name)
        assert result.error <= 1e-4, f"{name}: outputs differ by {result.error:.3g} (relative)"


def test_the_list_of_failures_names_torchvision_models():
    pytest.importorskip("torchvision")
    assert set(NOT_IMPORTABLE) <= set(torchvision_models())


# ---- readability ----------------------------------------------------------------------------


def lines(text: str) -> tuple[int, int]:
    """(code lines: non-blank, not only a comment; all lines)."""
    all_lines = text.splitlines()
    code = [line for line in all_lines if line.strip() and not line.lstrip().startswith("#")]
    return len(code), len(all_lines)


def sequence_items(text: str) -> list[list[str]]:
    """The `+`-separated items of each block body and of the network body, at depth 0."""
    bodies, current = [], None
    for line in text.splitlines():
        stripped = line.split("#", 1)[0].rstrip()
        if stripped.startswith(("block ", "network ")):
            current = [stripped.split("=", 1)[1] if stripped.startswith("block ") else ""]
            bodies.append(current)
        elif current is not None and stripped.strip() and not stripped.strip().startswith("input"):
            current.append(stripped.strip())
    out = []
    for body in bodies:
        text_ = " ".join(body)
        items, depth, start = [], 0, 0
        for i, ch in enumerate(text_):
            depth += ch in "(["
            depth -= ch in ")]"
            if depth == 0 and text_.startswith(" + ", i):
                items.append(text_[start:i].strip())
                start = i + 3
        items.append(text_[start:].strip().removeprefix("+ "))
        out.append([item for item in items if item])
    return out


@pytest.mark.parametrize(
    "name",
    ["resnet50", "densenet121", "mobilenet_v2", pytest.param("vgg16", marks=pytest.mark.slow)],
)
def test_imported_zoo_networks_read_like_the_hand_written_ones(name):
    pytest.importorskip("torchvision")
    import torchvision

    from netdsl.importer.command import check
    from netdsl.importer.recover import recover
    from netdsl.importer.torch_frontend import read

    text = recover(read(torchvision.models.get_model(name, weights=None)))
    check(text)
    ours, theirs = lines(text), lines((ARCHITECTURES / f"{name}.net").read_text())
    assert ours[0] <= 2 * theirs[0], f"{name}: {ours[0]} code lines vs {theirs[0]} hand-written"
    assert ours[1] <= 2 * theirs[1], f"{name}: {ours[1]} lines vs {theirs[1]} hand-written"
    blocks = set(re.findall(r"^block (\w+)", text, re.M))
    assert blocks, f"{name}: no blocks"
    for items in sequence_items(text):
        for a, b in zip(items, items[1:]):
            called = re.match(r"(\w+)", a)
            assert not (a == b and called and called.group(1) in blocks), (
                f"{name}: '{a}' twice in a row (a repeat, unrolled)"
            )
