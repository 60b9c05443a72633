"""`netdsl compile FILE --target torch|keras [-o PATH] [--train]`."""

from __future__ import annotations

import argparse
import keyword
import sys
from pathlib import Path

from ..commandline import add_common, load_network
from ..errors import NetdslError


def cmd_compile(args) -> int:
    from ..compiler import gc_paused
    from ..output import check_writable, write_files
    from . import get_emitter

    if args.train and not args.output:
        raise NetdslError(
            "--train writes train.py beside the model: give the model's path "
            "with -o, e.g. -o out/model.py"
        )
    emitter = get_emitter(args.target)
    paths = []  # every file is checked before compiling, and written only when all are made
    if args.output:
        model_path = Path(args.output)
        if model_path.suffix != ".py":
            raise NetdslError(f"the model file must end in .py, got {model_path}")
        paths.append(check_writable(model_path, args.force))
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
    net = load_network(args, args.file)
    with gc_paused():
        texts = [emitter.emit_model(net)]
        if args.train:
            texts.append(emitter.emit_train(net, paths[0].stem))
    if not args.output:
        sys.stdout.write(texts[0])
        return 0
    write_files(list(zip(paths, texts)))  # both or neither
    if not args.quiet:
        for path in paths:
            print(f"wrote {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from . import TARGETS

    p = sub.add_parser("compile", help="generate PyTorch or Keras code (and a training script)")
    p.add_argument("file", metavar="FILE", help="a .net file or a zoo network name")
    p.add_argument("--target", required=True, choices=sorted(TARGETS))
    p.add_argument("-o", "--output", metavar="PATH", help="model file to write (default: stdout)")
    p.add_argument("--train", action="store_true", help="also write train.py beside the model")
    p.add_argument(
        "--force", action="store_true", help="overwrite files that netdsl did not generate"
    )
    p.add_argument("-q", "--quiet", action="store_true")
    add_common(p)
    p.set_defaults(func=cmd_compile)
