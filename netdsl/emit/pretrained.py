"""`netdsl compile FILE --weights SOURCE`: models whose `build_model(pretrained=True)` loads
published or saved weights.

SOURCE is `torchvision:NAME`, `pytorchcv:NAME` or a `.pt`/`.pth`/`.safetensors` file.

* PyTorch: the model file gets the text of netdsl/runtime/by_order.py (load_by_order)
  and runtime/pretrained.py (pretrained_state_dict), so that it runs without netdsl:
  `build_model(pretrained=True)` asks the reference library's own API for its weights
  (where it caches them) or reads the file, and loads them by order and shape.
* Keras: netdsl compile converts the weights once, when it writes the model: it builds
  the PyTorch model from the same file, loads SOURCE into it by order, copies it into the
  Keras model (weights.torch_to_keras) and saves MODEL.weights.h5 beside MODEL.py, which
  `build_model(pretrained=True)` loads. That needs torch (and the library) at compile
  time only.

Without --weights nothing here is used, and the generated files are what they were.
"""

from __future__ import annotations

import ast
import inspect
import os
import textwrap
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from ..errors import NetdslError
from ..runtime import COPY_MARK

LIBRARIES = ("torchvision", "pytorchcv")  # SOURCE's LIBRARY:NAME forms
FILE_SUFFIXES = (".pt", ".pth", ".safetensors")
RUNTIME = ("by_order", "pretrained")  # netdsl/runtime/ modules a PyTorch model copies
KERAS_SUFFIX = ".weights.h5"  # Keras 3's save_weights wants this ending


@dataclass(frozen=True)
class Weights:
    """A --weights SOURCE, read."""

    given: str  # as written on the command line (a path: relative to the current folder)
    library: str | None  # "torchvision", "pytorchcv", or None for a file
    reference: str  # what the generated PyTorch file's PRETRAINED holds
    keras_file: str = ""  # the Keras model's converted weights, beside it (its file name)

    @property
    def about(self) -> str:
        """What the weights are, for comments and messages."""
        if self.library:
            name = self.given.partition(":")[2]
            return f"{self.library}'s published {name} weights"
        return f"the state_dict in {self.given}"


def read_source(text: str, model_path: Path | None) -> Weights:
    """Check --weights SOURCE; a file's PRETRAINED is its path relative to the model file's
    folder (so the two can move together), or absolute when the model goes to stdout."""
    library, colon, name = text.partition(":")
    if colon and library in LIBRARIES:
        if not name or not all(part.isidentifier() for part in name.split(".")):
            raise NetdslError(
                f"--weights {text}: expected {library}:NAME with a model name, "
                f"e.g. {library}:resnet50"
            )
        return Weights(text, library, text, _keras_file(model_path))
    path = Path(text)
    if not path.name.endswith(FILE_SUFFIXES):
        libraries = ", ".join(f"{lib}:NAME" for lib in LIBRARIES)
        raise NetdslError(
            f"--weights {text}: expected {libraries} or a weights file ({', '.join(FILE_SUFFIXES)})"
        )
    if not path.is_file():
        raise NetdslError(f"--weights {text}: no such file")
    if model_path is None:
        reference = str(path.resolve())
    else:
        folder = model_path.resolve().parent
        reference = Path(os.path.relpath(path.resolve(), folder)).as_posix()
    return Weights(text, None, reference, _keras_file(model_path))


def _keras_file(model_path: Path | None) -> str:
    return keras_weights_path(model_path).name if model_path is not None else ""


# ---- the PyTorch model: the runtime copied into it ---------------------------------------


@cache
def _runtime(name: str) -> tuple[str, str]:
    """A runtime module's text above and below COPY_MARK."""
    source = resources.files("netdsl.runtime").joinpath(f"{name}.py").read_text("utf-8")
    head, _, body = source.partition(f"\n{COPY_MARK}\n")
    return head, body.strip("\n")


@cache
def runtime_names() -> frozenset[str]:
    """What the copied runtime defines or imports at a model file's top level: the names
    its classes and variables avoid (emit/base.py MODULE_LEVEL)."""
    names = {"PRETRAINED"}
    for module in RUNTIME:
        head, body = _runtime(module)
        for node in ast.parse(head).body + ast.parse(body).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return frozenset(names)


def torch_runtime() -> str:
    """The runtime's text, as a PyTorch model file holds it."""
    from .recipe import runtime_text

    return runtime_text(list(RUNTIME))


def torch_comment(weights: Weights) -> list[str]:
    """The comment above PRETRAINED in a PyTorch model file."""
    if weights.library:
        what = f"{weights.about}, fetched through {weights.library}'s own API (which caches them)"
    else:
        what = "a state_dict saved by torch.save or safetensors"
        if not os.path.isabs(weights.reference):
            what += ", at a path relative to this file"
    return [
        f"# {line}"
        for line in textwrap.wrap(
            f"build_model(pretrained=True) loads these weights by order and shape "
            f"(load_by_order, below): {what}",
            86,
        )
    ]


def keras_comment(weights: Weights) -> list[str]:
    """The comment above PRETRAINED in a Keras model file."""
    return [
        f"# {line}"
        for line in textwrap.wrap(
            f"build_model(pretrained=True) loads these weights, beside this file: "
            f"{weights.about}, loaded into the PyTorch model of the same .net file and "
            "converted to Keras by netdsl compile --weights",
            86,
        )
    ]


# ---- the Keras model: the weights converted when compiling -------------------------------


def keras_weights_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.stem + KERAS_SUFFIX)


def training_weights_name(name: str) -> str:
    """The file of the Keras model with its train-time heads (another set of layers)."""
    return name[: -len(KERAS_SUFFIX)] + "_training" + KERAS_SUFFIX


def convert_for_keras(net, weights: Weights, keras_source: str, out: Path) -> list[Path]:
    """Save SOURCE's weights as the Keras model of `net` (built from `keras_source`, the
    generated file) holds them: through the PyTorch model of `net`, loaded by order. A
    network with train-time heads gets a second file, for the model built with them.
    Returns the files written."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise NetdslError(
            "--target keras --weights converts PyTorch weights to Keras with torch, "
            "which is not installed: pip install torch"
        ) from None
    from ..api import Model
    from ..runtime.pretrained import load_pretrained
    from ..weights import torch_to_keras

    torch_model = Model(net).to_torch()
    try:
        load_pretrained(torch_model, weights.given)
    except RuntimeError as e:
        raise NetdslError(f"--weights {weights.given}: {e}") from None
    except ValueError as e:
        raise NetdslError(
            f"--weights {weights.given}: {weights.about} do not fit {net.name}: {e}"
        ) from None
    build = _exec(keras_source, f"<netdsl keras: {net.name}>").build_model
    saves = [({}, out)]
    if "training_outputs" in inspect.signature(build).parameters:  # train-time heads
        saves.append(({"training_outputs": True}, out.with_name(training_weights_name(out.name))))
    for options, path in saves:
        keras_model = build(**options)
        try:
            torch_to_keras(torch_model, keras_model)
        except ValueError as e:
            raise NetdslError(f"--weights {weights.given}: cannot convert to Keras: {e}") from None
        keras_model.save_weights(str(path))
    return [path for _, path in saves]


def _exec(source: str, filename: str):
    """The generated Keras source, run as a module (the one being written, not api's
    regeneration: it must be exactly the code that will load the file)."""
    import types

    module = types.ModuleType("netdsl_keras_weights")
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102 - our own output
    return module
