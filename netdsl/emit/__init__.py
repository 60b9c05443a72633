"""Code generation: one emitter per target behind the `Emitter` interface (base.py).

Emitters are imported on demand so `netdsl check` never loads jinja2 or a
framework. Adding a target = one module here + one folder in templates/.
"""

from __future__ import annotations

import importlib

from ..errors import NetdslError

TARGETS = {"torch": "netdsl.emit.torch:TorchEmitter", "keras": "netdsl.emit.keras:KerasEmitter"}


def get_emitter(target: str):
    if target not in TARGETS:
        raise NetdslError(f"unknown target '{target}'; choose one of: {', '.join(TARGETS)}")
    module, cls = TARGETS[target].split(":")
    try:
        return getattr(importlib.import_module(module), cls)()
    except ModuleNotFoundError as e:
        if e.name == module:
            raise NetdslError(
                f"the {target} backend is not available in this installation"
            ) from None
        raise
