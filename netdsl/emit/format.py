"""Black-compatible layout of generated statements, and safe literals.

Generated files must pass `ruff format --check` as they are written, so long
calls are split the way black splits them: first the arguments on one
indented line, else one argument per line with a trailing comma.
"""

from __future__ import annotations

LINE = 88
INDENT = "    "


def call(func: str, args: list[str]) -> str:
    return f"{func}({', '.join(args)})"


def statement(prefix: str, func: str, args: list[str], indent: int, suffix: str = "",
              explode: bool = False) -> list[str]:
    """`prefix + func(args) + suffix` at `indent` levels, split like black if too long."""
    pad = INDENT * indent
    one = f"{pad}{prefix}{call(func, args)}{suffix}"
    if not explode and len(one) <= LINE and "\n" not in one:
        return [one]
    if not args:
        return [one]
    inner = INDENT * (indent + 1)
    joined = f"{inner}{', '.join(args)}"
    if not explode and len(joined) <= LINE and "\n" not in joined:
        return [f"{pad}{prefix}{func}(", joined, f"{pad}){suffix}"]
    lines = [f"{pad}{prefix}{func}("]
    for arg in args:
        if "\n" in arg:
            first, *rest = arg.split("\n")
            lines.append(f"{inner}{first}")
            lines.extend(rest[:-1])
            lines.append(f"{rest[-1]},")
        else:
            lines.append(f"{inner}{arg},")
    lines.append(f"{pad}){suffix}")
    return lines


def nested_call(func: str, args: list[str], indent: int) -> str:
    """A call used as an argument: returned as text (possibly multi-line) at `indent`."""
    one = call(func, args)
    if len(INDENT * (indent + 1) + one) + 1 <= LINE:
        return one
    lines = statement("", func, args, indent + 1)
    text = "\n".join(lines)
    return text.lstrip()


def py_str(text: str) -> str:
    """A double-quoted Python string literal (black's preferred quotes)."""
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    body = "".join(c if c.isprintable() or c == " " else _escape(c) for c in body)
    return f'"{body}"'


def _escape(char: str) -> str:
    r"""A backslash escape for one unprintable character (`\x00`, `\u2028`, `\U000e0001`)."""
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def literal(value) -> str:
    if isinstance(value, str):
        return py_str(value)
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple):
        inner = ", ".join(literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def docstring_text(text: str) -> list[str]:
    """DSL source shown in a docstring: escaped so it can never close the string."""
    safe = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    safe = "".join(c if c.isprintable() or c in "\n" else "?" for c in safe)
    return [line.rstrip() for line in safe.splitlines()]


def comment_text(text: str) -> str:
    """Text for a `#` comment: one line, printable."""
    return "".join(c if c.isprintable() else " " for c in text.replace("\n", " "))
