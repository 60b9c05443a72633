"""What the `netdsl` subcommands share: the options that choose a network, and loading it.

cli.py builds the command line from the command modules (emit/command.py, render.py,
explain.py, export.py, zoo.py), and they import what they share from here, never from
cli.py, so that no module imports one that imports it back.
"""

from __future__ import annotations

import argparse

from .errors import UsageError

MAX_NODES = 200_000  # the default of --max-nodes (elaborate.Limits.max_nodes)


def load_network(args: argparse.Namespace, path: str):
    """Compile FILE (or a zoo name) with the --param/--network options of `args`."""
    from .compiler import compile_file, parse_param, parse_shape, resolve
    from .elaborate import Limits

    params = {}
    for text in getattr(args, "param", None) or []:
        name, value = parse_param(text)
        if isinstance(value, str):  # a word: no network parameter takes one
            given = f"'{value}' is not a number" if value else "the value is missing"
            raise UsageError(
                f"--param {text}: {given} (a parameter takes a number, true, false or a "
                "shape such as 3x224x224)"
            )
        params[name] = value
    shape = getattr(args, "input", None)
    limits = None
    max_nodes = getattr(args, "max_nodes", None)
    if max_nodes is not None:
        if max_nodes < 1:
            raise UsageError(f"--max-nodes must be a positive integer, got {max_nodes}")
        limits = Limits(max_nodes=max_nodes)
    return compile_file(
        resolve(path),
        params=params,
        network=getattr(args, "network", None),
        input_shape=parse_shape(shape) if shape else None,
        limits=limits,
    )


def add_common(p: argparse.ArgumentParser) -> None:
    """--param, --network, --input and --max-nodes, shared by every command that compiles a file."""
    p.add_argument(
        "--param",
        action="append",
        metavar="NAME=VALUE",
        help="override a network parameter (repeatable), e.g. --param classes=10",
    )
    p.add_argument(
        "--network", metavar="NAME", help="which network of the file (default: the first)"
    )
    p.add_argument(
        "--input", metavar="CxHxW", help="replace the (first) input's shape, e.g. --input 3x64x64"
    )
    p.add_argument(
        "--max-nodes",
        type=int,
        metavar="N",
        help=f"refuse networks of more than N nodes, layers and merges (default {MAX_NODES:,})",
    )
