"""The pipeline in one call: source -> parse -> elaborate (shapes inferred) -> Network."""

from __future__ import annotations

import gc
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from .elaborate import Elaborator, Limits
from .errors import NetdslError, UsageError
from .ir import Network
from .loader import Loader
from .resources import zoo_dir

_RECURSION_LIMIT = 20_000


def resolve(target: str) -> str:
    """A path to a .net file, or the name of a zoo network (`resnet50`)."""
    if os.path.exists(target):
        return target
    candidate = zoo_dir() / f"{target}.net"
    if not target.endswith(".net") and os.sep not in target and candidate.is_file():
        return str(candidate)
    raise NetdslError(f"no such file or zoo network: {target}")


def compile_file(
    path: str | os.PathLike,
    params: dict | None = None,
    network: str | None = None,
    limits: Limits | None = None,
    input_shape: tuple | None = None,
) -> Network:
    """Compile a .net file. `input_shape` (C, H, W) replaces the first input's shape."""
    return _compile(
        lambda loader: loader.load_file(path, display_path(path)),
        params,
        network,
        limits,
        input_shape,
    )


def display_path(path: str | os.PathLike) -> str:
    """How messages and generated headers name a file: zoo files as architectures/NAME.net,
    so output does not depend on where netdsl is installed."""
    p = Path(path)
    try:
        if p.resolve().parent == zoo_dir().resolve():
            return f"architectures/{p.name}"
    except OSError:
        pass
    return str(path)


def compile_text(
    text: str,
    path: str = "<input>",
    params: dict | None = None,
    network: str | None = None,
    limits: Limits | None = None,
    input_shape: tuple | None = None,
) -> Network:
    return _compile(
        lambda loader: loader.load_text(text, path), params, network, limits, input_shape
    )


@contextmanager
def gc_paused():
    """Pause the cyclic garbage collector: elaboration makes many linked objects
    (scopes point to parents and children), and the collector's repeated passes
    over them double compile time for large networks. Nothing here needs it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def deep_stack():
    """Room for the recursion that deeply nested blocks need (the elaborator and the
    emitters walk the block tree recursively; Limits.max_block_depth bounds it). What
    still runs out of stack is an ordinary error, never a RecursionError."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, _RECURSION_LIMIT))
    try:
        yield
    except RecursionError:
        raise NetdslError(
            "the program nests too deeply to compile",
            hint="blocks, repeats and expressions nest too deeply; "
            "flatten the nesting or use repeats",
        ) from None
    finally:
        sys.setrecursionlimit(old)


def _compile(load, params, network, limits, input_shape) -> Network:
    with deep_stack(), gc_paused():
        menv = load(Loader())
        shapes = {"*": tuple(input_shape)} if input_shape else None
        net = Elaborator(limits, shapes).network(menv, network, params)
        net.module = menv
        return net


def parse_shape(text: str) -> tuple[int, ...]:
    """`3x64x64` (or `784`) from the command line."""
    parts = text.lower().replace("×", "x").split("x")
    if not all(p.isdigit() and int(p) > 0 for p in parts) or len(parts) not in (1, 3):
        raise UsageError(f"--input expects CxHxW such as 3x64x64, got '{text}'")
    return tuple(int(p) for p in parts)


def parse_param(text: str):
    """`classes=10` from the command line -> ("classes", Num(10))."""
    from .symbolic import Num, Tup

    if "=" not in text:
        raise UsageError(f"--param expects NAME=VALUE, got '{text}'")
    name, raw = text.split("=", 1)
    name, raw = name.strip(), raw.strip()
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return name, Num(lowered == "true")
    try:
        if "x" in lowered and all(p.isdigit() for p in lowered.split("x")):
            return name, Tup(Num(int(p)) for p in lowered.split("x"))
        return name, Num(int(raw))
    except ValueError:
        pass
    try:
        return name, Num(float(raw))
    except ValueError:
        return name, raw


__all__ = ["compile_file", "compile_text", "resolve", "parse_param", "Path"]
