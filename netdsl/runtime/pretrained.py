"""Where a generated PyTorch model's `build_model(pretrained=True)` gets its weights.

A model compiled with `--weights SOURCE` copies the text below the copy mark into its
file, with load_by_order's (by_order.py), so that it needs no netdsl to load them. SOURCE
is `torchvision:NAME` or `pytorchcv:NAME` (the library's own API fetches its published
weights, and caches them where the library does) or a local `.pt`/`.pth`/`.safetensors`
file. What can fail (the library is not installed, no network, no such model or file) is
a RuntimeError that says what to do, never a traceback from deep inside urllib.
"""

import os
import pickle

import torch

from .by_order import load_by_order

# ==== train.py: the rest of this module is copied into it verbatim ====


def load_pretrained(model, source: str, relative_to: str = "") -> None:
    """Load the weights `source` names into `model` by order and shape (load_by_order).

    A safetensors file keeps no order (its tensors are stored sorted by name), so it loads
    by name, and only when its names are the model's (a file saved from this model)."""
    state = pretrained_state_dict(source, relative_to)
    if not source.endswith(".safetensors"):
        load_by_order(model, state)
        return
    names = list(model.state_dict())
    if set(state) != set(names):
        missing = next((n for n in names if n not in state), None)
        extra = next((n for n in state if n not in names), None)
        raise RuntimeError(
            f"{source} is a safetensors file, which keeps no order to pair by, and its "
            f"names are not the model's (the model's '{missing}' is not in it, its "
            f"'{extra}' is not in the model); save the reference's state_dict with "
            "torch.save(model.state_dict(), PATH) and compile with --weights PATH"
        )
    model.load_state_dict(state)


def pretrained_state_dict(source: str, relative_to: str = "") -> dict:
    """The state_dict that `source` names; a relative file path is taken relative to the
    folder of the file `relative_to` (the model file's `__file__`)."""
    library, _, name = source.partition(":")
    if library == "torchvision" and name:
        return _torchvision_state_dict(name)
    if library == "pytorchcv" and name:
        return _pytorchcv_state_dict(name)
    path = source
    if relative_to and not os.path.isabs(path):
        path = os.path.join(os.path.dirname(os.path.abspath(relative_to)), path)
    return _file_state_dict(path)


def _torchvision_state_dict(name: str) -> dict:
    """torchvision's DEFAULT weights of `name`, through get_model (which also applies the
    fixes some models' published files need, such as densenet's old key names)."""
    try:
        import torchvision
    except ImportError:
        raise RuntimeError(
            f"the pretrained weights are torchvision's {name}: install torchvision "
            "(pip install torchvision) to load them"
        ) from None
    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError, AttributeError):
        raise RuntimeError(
            f"torchvision has no model '{name}' with published weights "
            f"(torchvision {torchvision.__version__})"
        ) from None
    try:
        model = torchvision.models.get_model(name, weights=weights)
    except OSError as e:  # urllib's URLError and HTTPError, a full disk, ...
        raise RuntimeError(
            f"could not download torchvision's {name} weights ({weights.url}): {e}; "
            "connect once (torch caches them in ~/.cache/torch/hub/checkpoints), or "
            "save them on a connected machine and compile with --weights FILE.pt"
        ) from None
    return model.state_dict()


def _pytorchcv_state_dict(name: str) -> dict:
    """pytorchcv's published weights of `name` (it downloads them into ~/.torch/models)."""
    try:
        from pytorchcv.model_provider import get_model
    except ImportError:
        raise RuntimeError(
            f"the pretrained weights are pytorchcv's {name}: install pytorchcv "
            "(pip install pytorchcv) to load them"
        ) from None
    try:
        model = get_model(name, pretrained=True)
    except ValueError as e:  # an unknown model, or one without published weights
        raise RuntimeError(f"pytorchcv cannot give {name}'s weights: {e}") from None
    except (OSError, RuntimeError) as e:  # requests' errors are OSErrors
        raise RuntimeError(
            f"could not download pytorchcv's {name} weights: {e}; connect once "
            "(pytorchcv keeps them in ~/.torch/models), or save them on a connected "
            "machine and compile with --weights FILE.pt"
        ) from None
    return model.state_dict()


def _file_state_dict(path: str) -> dict:
    """A state_dict saved with torch.save (or a checkpoint holding one under "state_dict"
    or "model"), or a safetensors file; torch.load reads tensors only (weights_only)."""
    if not os.path.isfile(path):
        raise RuntimeError(f"the pretrained weights file {path} does not exist")
    if path.endswith(".safetensors"):
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise RuntimeError(
                f"{path} is a safetensors file: install safetensors "
                "(pip install safetensors) to load it"
            ) from None
        return load_file(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError) as e:
        # not a torch file, or one that pickles more than tensors
        raise RuntimeError(f"cannot read weights from {path}: {e}") from None
    for key in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or not all(
        isinstance(value, torch.Tensor) for value in loaded.values()
    ):
        raise RuntimeError(
            f"{path} holds no state_dict (a dict of tensor names to tensors); save one "
            "with torch.save(model.state_dict(), PATH)"
        )
    return loaded
