"""How a block call prints, the same in every command (render, summary, explain).

A call prints the way one would write it by hand: required parameters positionally,
then only the parameters whose value differs from the definition's default, by keyword
(`bottleneck(128, s=2)`, not `bottleneck(128, 2, 1, 64, false)` as `stage` happened to
pass them). One function, so a reader sees one text for one call everywhere.
"""

from __future__ import annotations

from .analysis import _arg_text
from .ir import Scope


def block_call(scope: Scope, blocks: dict | None = None) -> str:
    """`stage(128, 4, s=2)`; a repeat as `[bottleneck(128)] x 3`; other scopes by kind.

    `blocks` is the network's `name -> BlockSignature` (Network.blocks): without it, or
    for a block it does not know, the arguments print as the caller wrote them."""
    if scope.kind == "block":
        signature = (blocks or {}).get(scope.block)
        if signature is None:
            args = [(k, v) for k, v in scope.call_args]
        else:
            args = _shortest(scope, signature)
        text = ", ".join((f"{k}=" if k else "") + _arg_text(v) for k, v in args)
        return f"{scope.block}({text})" if args else scope.block
    if scope.kind == "repeat":
        n = scope.count.value if scope.count is not None else len(scope.children)
        first = scope.children[0] if scope.children else None
        inner = first.children if first is not None else []
        one = len(inner) == 1 and isinstance(inner[0], Scope)
        return f"[{block_call(inner[0], blocks) if one else '...'}] x {n}"
    if scope.kind == "group":
        return scope.label or "group"
    return scope.kind


def _shortest(scope: Scope, signature) -> list:
    """[(keyword or None, value)]: required parameters by position while nothing before
    them was skipped, a parameter with a default only where the value differs from it."""
    args, by_keyword = [], False
    for name, default in signature.params:
        if name not in scope.args:
            continue
        value = scope.args[name]
        if default is not None and _same(value, default):
            by_keyword = True  # a later argument can no longer go by position
            continue
        if default is None and not by_keyword:
            args.append((None, value))
        else:
            args.append((name, value))
            by_keyword = True
    return args


def _same(value, default) -> bool:
    """The default, as a constant (a default computed from other parameters never is)."""
    if isinstance(default, str):  # `p=same`
        return value == default
    if not getattr(default, "is_const", False):
        return False
    a, b = getattr(value, "value", value), default.value
    return type(a) is type(b) and a == b
