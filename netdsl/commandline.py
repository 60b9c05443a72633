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


def add_estimate_options(p: argparse.ArgumentParser) -> None:
    """--batch, --dtype, --amp, --optimizer, --train/--eval, --device and --memory: the
    memory and FLOPs estimate of `netdsl summary` and `netdsl explain` (docs/memory.md)."""
    g = p.add_argument_group(
        "memory and FLOPs of a step (any of these adds the estimate; see docs/memory.md)"
    )
    g.add_argument("--batch", type=int, metavar="B", help="batch size (default 1)")
    g.add_argument(
        "--dtype",
        choices=("fp32", "bf16", "fp16"),
        help="the model's dtype: parameters, gradients, optimizer state, activations "
        "(default fp32)",
    )
    g.add_argument(
        "--amp",
        action="store_true",
        help="mixed precision (torch.autocast, bf16 or fp16: the same bytes) of an fp32 model",
    )
    g.add_argument(
        "--optimizer",
        choices=("sgd", "sgd-momentum", "adam", "adamw", "rmsprop"),
        help="whose state to count (default: the file's train: section, else adam)",
    )
    mode = g.add_mutually_exclusive_group()
    mode.add_argument(
        "--train",
        dest="mode",
        action="store_const",
        const="train",
        help="a training step: forward, backward, optimizer step (the default)",
    )
    mode.add_argument(
        "--eval",
        dest="mode",
        action="store_const",
        const="eval",
        help="inference under torch.no_grad()",
    )
    g.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        help="whose autocast rules (cuda: LayerNorm, GroupNorm, softmax in fp32; default cpu)",
    )
    g.add_argument(
        "--memory",
        metavar="SIZE",
        help="a memory budget, e.g. 24GiB: report the largest batch whose peak fits it, "
        "less 10%% headroom",
    )


ESTIMATE_OPTIONS = ("batch", "dtype", "amp", "optimizer", "mode", "device", "memory")


def estimate_request(args: argparse.Namespace) -> dict | None:
    """The estimate's options from the command line; None when none was given."""
    given = {k: getattr(args, k, None) for k in ESTIMATE_OPTIONS}
    if all(v is None or v is False for v in given.values()):
        return None
    batch = given["batch"]
    if batch is not None and batch < 1:
        raise UsageError(f"--batch must be a positive integer, got {batch}")
    dtype = given["dtype"] or "fp32"
    if given["amp"] and dtype != "fp32":
        raise UsageError(
            f"--amp runs an fp32 model under autocast: leave out --dtype {dtype}, or --amp"
        )
    budget = None
    if given["memory"] is not None:
        from .memory import parse_size

        try:
            budget = parse_size(given["memory"])
        except ValueError as e:
            raise UsageError(f"--memory: {e}") from None
        if budget <= 0:
            raise UsageError(f"--memory must be a positive size, got {given['memory']}")
    return {
        "batch": batch or 1,
        "dtype": dtype,
        "amp": bool(given["amp"]),
        "optimizer": given["optimizer"],
        "train": given["mode"] != "eval",
        "device": given["device"] or "cpu",
        "budget": budget,
    }
