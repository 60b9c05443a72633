"""`netdsl compile FILE --target torch|keras [-o PATH] [--train] [--weights SOURCE]`."""

from __future__ import annotations

import argparse
import keyword
import re
import shlex
import sys
from pathlib import Path

from ..commandline import add_common, load_network
from ..errors import NetdslError


def cmd_compile(args) -> int:
    from ..compiler import gc_paused
    from ..output import check_writable, write_files
    from . import get_emitter
    from .pretrained import convert_for_keras, keras_weights_path, read_source

    if args.train and not args.output:
        raise NetdslError(
            "--train writes train.py beside the model: give the model's path "
            "with -o, e.g. -o out/model.py"
        )
    emitter = get_emitter(args.target)
    paths = []  # every file is checked before compiling, and written only when all are made
    weights = keras_weights = None
    converted: list[Path] = []
    if args.weights is not None and args.target == "keras" and not args.output:
        raise NetdslError(
            "--target keras --weights writes the converted weights beside the model: "
            "give the model's path with -o, e.g. -o out/model.py"
        )
    if args.output:
        model_path = Path(args.output)
        if model_path.suffix != ".py":
            raise NetdslError(f"the model file must end in .py, got {model_path}")
        paths.append(check_writable(model_path, args.force))
        if args.weights is not None and args.target == "keras":
            keras_weights = check_writable(keras_weights_path(model_path), True)
        if args.train:
            train_path = model_path.with_name("train.py")
            if train_path == model_path:
                raise NetdslError(
                    "the model cannot be called train.py: train.py is the training script"
                )
            if not model_path.stem.isidentifier() or keyword.iskeyword(model_path.stem):
                raise NetdslError(
                    f"the model file name must be a Python module name, got {model_path.stem!r}"
                )
            paths.append(check_writable(train_path, args.force))
            if not args.force:
                _keep_other_train_script(train_path, model_path)
    if args.weights is not None:
        weights = read_source(args.weights, paths[0] if paths else None)
    net = load_network(args, args.file)
    with gc_paused():
        texts = [emitter.emit_model(net, weights)]
        if args.train:
            texts.append(emitter.emit_train(net, paths[0].stem))
    if not args.output:
        sys.stdout.write(texts[0])
        return 0
    if keras_weights is not None:  # converted before any file is written
        converted = convert_for_keras(net, weights, texts[0], keras_weights)
    write_files(list(zip(paths, texts)))  # both or neither
    if not args.quiet:
        for path in paths + converted:
            print(f"wrote {path}")
    return 0


# the third line of every generated train.py (templates/*/train.py.j2)
_TRAINS = re.compile(r'"""Train (\S+) \((.+)\.py\) with ')


def _keep_other_train_script(train_path: Path, model_path: Path) -> None:
    """Refuse to replace a train.py that trains another model file still beside it.

    A train.py belongs to the model file it imports (its docstring names both the network
    and that file): writing another model beside it would leave that model without its
    training script. Compiling over the same model file replaces both together, and a
    train.py whose model file is gone trains nothing, so neither is refused.
    """
    try:
        with open(train_path, encoding="utf-8", errors="replace") as f:
            head = [f.readline() for _ in range(3)]
    except OSError:
        return
    found = _TRAINS.match(head[2])
    if found is None or found.group(2) == model_path.stem:
        return
    other = train_path.with_name(found.group(2) + ".py")
    if not other.is_file():
        return
    folder = model_path.parent / model_path.stem
    raise NetdslError(
        f"{train_path} trains network {found.group(1)} ({other}), not {model_path}; "
        "use --force to replace it",
        hint=f"to keep both, write {model_path} in a folder of its own: "
        f"mkdir {shlex.quote(str(folder))}, then -o {folder / model_path.name}",
    )


def register(sub: argparse._SubParsersAction) -> None:
    from . import TARGETS

    p = sub.add_parser("compile", help="generate PyTorch or Keras code (and a training script)")
    p.add_argument("file", metavar="FILE", help="a .net file or a zoo network name")
    p.add_argument("--target", required=True, choices=sorted(TARGETS))
    p.add_argument("-o", "--output", metavar="PATH", help="model file to write (default: stdout)")
    p.add_argument("--train", action="store_true", help="also write train.py beside the model")
    p.add_argument(
        "--weights",
        metavar="SOURCE",
        help="build_model(pretrained=True) loads these weights by order: torchvision:NAME, "
        "pytorchcv:NAME or a .pt/.pth/.safetensors file (keras: converted to MODEL.weights.h5)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite files that netdsl did not generate, or a train.py of another model",
    )
    p.add_argument("-q", "--quiet", action="store_true")
    add_common(p)
    p.set_defaults(func=cmd_compile)
