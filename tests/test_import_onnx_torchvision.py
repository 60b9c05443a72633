"""`netdsl import` of torchvision's resnet18 exported by torch.onnx.export.

Three exports, as users make them: the dynamo exporter with its optimizer (which folds each
BatchNorm into its conv, leaving the BatchNorm's scope in the metadata), the dynamo exporter
without it (BatchNormalization nodes, zero conv biases computed from constants), and the
TorchScript exporter in PRESERVE mode (BatchNormalization nodes, `/layer1/layer1.0/...`
names). Each imports to a .net file whose summary equals the zoo's resnet18.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
pytest.importorskip("onnx")

from test_import_onnx import imported_network, summary_rows  # noqa: E402

pytestmark = [pytest.mark.torchvision, pytest.mark.slow]


@pytest.mark.parametrize(
    "options",
    [
        {"dynamo": True},
        {"dynamo": True, "optimize": False},
        {"dynamo": False, "training": "PRESERVE", "do_constant_folding": False},
    ],
    ids=["dynamo", "dynamo-unoptimized", "torchscript"],
)
def test_torchvision_resnet18_imports_to_the_zoo_summary(tmp_path, options):
    from netdsl.api import load

    if "training" in options:
        options = {**options, "training": getattr(torch.onnx.TrainingMode, options["training"])}
    model = torchvision.models.resnet18().eval()
    path = tmp_path / "resnet18.onnx"
    torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), str(path), **options)
    assert summary_rows(imported_network(path)) == summary_rows(load("resnet18").network)
