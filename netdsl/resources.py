"""Locate the data directories shipped with netdsl.

In a source tree or an editable install they sit beside the package
(`grammars/`, `templates/`, `architectures/`); a wheel carries them inside it
(`netdsl/grammars`, ...). Both layouts are searched, package first.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def data_dir(name: str) -> Path:
    for candidate in (PACKAGE_DIR / name, PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"netdsl installation is missing its '{name}' directory")


def grammar_path() -> Path:
    return data_dir("grammars") / "netdsl.lark"


def templates_dir() -> Path:
    return data_dir("templates")


def zoo_dir() -> Path:
    return data_dir("architectures")


STDLIB_DIR = PACKAGE_DIR / "stdlib"


@cache
def helper_names() -> frozenset:
    """The classes and functions templates/<target>/helpers/ may add to a generated file:
    names that DSL names must never shadow there."""
    return frozenset(path.name.split(".")[0] for path in templates_dir().glob("*/helpers/*.j2"))
