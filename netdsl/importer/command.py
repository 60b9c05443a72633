"""`netdsl import SOURCE [-o FILE.net]`: an existing model as editable netdsl source.

SOURCE picks the front end: `.onnx` (onnx_frontend), `.keras`/`.h5` or `keras.applications:X`
(keras_frontend), `.pt2` or a Python reference `pkg.mod:attr(args)` (torch_frontend). All of
them produce a graph.Imported, which recover.py writes as .net text; the text is compiled
before it is written, so a recovery bug never leaves a broken file behind silently.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile

from ..errors import NetdslError, UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "import",
        help="write a PyTorch, ONNX or Keras model as a .net file (blocks, repeats, stages)",
    )
    p.add_argument(
        "source",
        metavar="SOURCE",
        help="torchvision.models:resnet50, pkg.mod:Net(num_classes=10), model.pt2 "
        "(torch.export), model.onnx, model.keras, model.h5 or keras.applications:ResNet50",
    )
    p.add_argument(
        "-o", "--output", metavar="FILE", help="the .net file to write (default: stdout)"
    )
    p.add_argument(
        "--input",
        metavar="CxHxW",
        help="the input shape (default: the model's, e.g. 3x224x224 for torchvision classifiers)",
    )
    p.add_argument("--name", metavar="NAME", help="the network's name (default: the model's)")
    p.add_argument("--force", action="store_true", help="replace an existing FILE")
    p.set_defaults(func=cmd_import)


def front_end(source: str) -> str:
    """The module that reads `source`."""
    lowered = source.lower()
    if lowered.endswith(".onnx"):
        return "netdsl.importer.onnx_frontend"
    if lowered.endswith((".keras", ".h5")) or source.startswith("keras.applications:"):
        return "netdsl.importer.keras_frontend"
    if lowered.endswith(".pt2") or ":" in source:
        return "netdsl.importer.torch_frontend"
    raise UsageError(
        f"cannot tell what '{source}' is: give a .onnx, .keras, .h5 or .pt2 file, "
        "or a Python reference such as torchvision.models:resnet50"
    )


def import_source(source: str, input_shape: tuple | None = None, name: str | None = None) -> str:
    """The checked .net text of `source` (see the module docstring)."""
    from .recover import RecoveryError, recover

    module = front_end(source)
    if source.lower().endswith((".onnx", ".keras", ".h5", ".pt2")) and not os.path.exists(source):
        raise NetdslError(f"no such file: {source}")
    reader = importlib.import_module(module)
    imported = reader.read(source, input_shape)
    if name:
        imported.name = name
    imported.command = _command(source, input_shape, name)
    try:
        text = recover(imported)
    except RecoveryError as e:
        raise _internal(f"structure recovery failed: {e}", None) from None
    check(text)
    return text


def check(text: str) -> None:
    """Compile the recovered text; a failure is netdsl's bug, reported with the text saved."""
    from ..compiler import compile_text

    try:
        compile_text(text, "<imported>")
    except NetdslError as e:
        raise _internal(f"the recovered .net does not compile: {e.message}", text) from None


def _internal(message: str, text: str | None) -> RuntimeError:
    """An internal error (exit 70, not a user error): the text is kept for the bug report."""
    if text is not None:
        fd, path = tempfile.mkstemp(prefix="netdsl-import-", suffix=".net")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        message += f" (the text is saved in {path})"
    return RuntimeError(message)


def _command(source: str, input_shape, name) -> str:
    parts = ["netdsl import", source]
    if input_shape:
        parts.append("--input " + "x".join(str(d) for d in input_shape))
    if name:
        parts.append(f"--name {name}")
    return " ".join(parts)


def cmd_import(args) -> int:
    from ..compiler import parse_shape
    from ..output import check_writable, write_atomic

    shape = parse_shape(args.input) if args.input else None
    if args.output:
        if os.path.exists(args.output) and not args.force and not os.path.isdir(args.output):
            # an imported file is the user's to edit from then on: never replaced unasked
            raise NetdslError(f"{args.output} exists; use --force to replace it")
        check_writable(args.output, force=True)
    text = import_source(args.source, shape, args.name)
    if args.output:
        write_atomic(args.output, text)
        print(f"{args.output}: imported {args.source}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
