"""`--weights torchvision:NAME` / `pytorchcv:NAME`: the library's own API gives the weights.

Nothing downloads: the library's model function is replaced by one that returns its model
with random weights saved to a local file (and checks that it was asked for the published
DEFAULT weights), or by one that fails as a download fails offline.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
import urllib.error

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from netdsl.cli import main  # noqa: E402

pytestmark = pytest.mark.torchvision


def compiled(tmp_path, network: str, source: str):
    """The model file compiled with --weights SOURCE, imported."""
    path = tmp_path / f"{network}_model.py"
    with contextlib.redirect_stdout(io.StringIO()):
        argv = ["compile", network, "--target", "torch", "-o", str(path), "--weights", source]
        assert main(argv) == 0
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def random_reference(tmp_path, build):
    """build() with random weights, as if published; saved and reloaded like a download."""
    torch.manual_seed(5)
    model = build()
    state = {
        k: torch.rand_like(v) + 0.5 if v.is_floating_point() else v
        for k, v in model.state_dict().items()
    }
    torch.save(state, tmp_path / "published.pt")
    return state


@pytest.mark.slow
def test_torchvision_weights_through_get_model(tmp_path, monkeypatch):
    state = random_reference(tmp_path, lambda: torchvision.models.resnet18())
    asked = []

    def get_model(name, weights=None):
        asked.append((name, weights))
        model = torchvision.models.resnet18()
        model.load_state_dict(torch.load(tmp_path / "published.pt"))
        return model

    monkeypatch.setattr(torchvision.models, "get_model", get_model)
    module = compiled(tmp_path, "resnet18", "torchvision:resnet18")
    model = module.build_model(pretrained=True).eval()
    assert asked == [("resnet18", torchvision.models.ResNet18_Weights.DEFAULT)]
    reference = torchvision.models.resnet18()
    reference.load_state_dict(state)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected, got = reference.eval()(x), model(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_torchvision_offline_is_a_clear_error(tmp_path, monkeypatch):
    def get_model(name, weights=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.models, "get_model", get_model)
    module = compiled(tmp_path, "resnet18", "torchvision:resnet18")
    with pytest.raises(RuntimeError) as caught:
        module.build_model(pretrained=True)
    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    assert str(caught.value).startswith(
        f"could not download torchvision's resnet18 weights ({url}): <urlopen error "
    )
    assert "compile with --weights FILE.pt" in str(caught.value)


def test_torchvision_unknown_model(tmp_path):
    module = compiled(tmp_path, "resnet18", "torchvision:resnet1800")
    with pytest.raises(RuntimeError, match="torchvision has no model 'resnet1800'"):
        module.build_model(pretrained=True)


@pytest.mark.pytorchcv
def test_pytorchcv_offline_is_a_clear_error(tmp_path, monkeypatch):
    model_provider = pytest.importorskip("pytorchcv.model_provider")

    def get_model(name, pretrained=False):
        assert pretrained
        raise OSError("Failed to establish a new connection")

    monkeypatch.setattr(model_provider, "get_model", get_model)
    module = compiled(tmp_path, "resnet18", "pytorchcv:resnet18")
    with pytest.raises(RuntimeError, match="could not download pytorchcv's resnet18 weights"):
        module.build_model(pretrained=True)
