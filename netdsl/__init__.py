"""netdsl: a small language and compiler for neural-network architectures.

The package's top level is lazy: `import netdsl` (and `netdsl check`) loads
only what is used.
"""

from __future__ import annotations

from .errors import NetdslError

__version__ = "0.1.0"
__all__ = ["Model", "NetdslError", "__version__", "compile_file", "compile_text", "load"]

_LAZY = {
    "compile_file": "compiler",
    "compile_text": "compiler",
    "load": "api",
    "Model": "api",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'netdsl' has no attribute {name!r}")
