"""Shared test helpers.

Framework tests use `need("torch")` / `need("keras")`: a skip for users
without the framework, but a failure when CI is set (CI installs both).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURES = ROOT / "architectures"


def need(module: str):
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


def compile_text(text: str, **kwargs):
    from netdsl import compile_text as _compile

    return _compile(text, "test.net", **kwargs)
