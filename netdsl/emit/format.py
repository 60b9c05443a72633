"""Black-compatible layout of generated statements, and safe literals.

Generated files must pass `ruff format --check` as they are written, so long
calls are split the way black splits them: first the arguments on one
indented line, else one argument per line with a trailing comma; an argument
still too long for its line is split before its outermost `if`/`else` or
operators, as ruff does.
"""

from __future__ import annotations

import ast
import re

LINE = 88
INDENT = "    "


def call(func: str, args: list[str]) -> str:
    return f"{func}({', '.join(args)})"


def statement(
    prefix: str, func: str, args: list[str], indent: int, suffix: str = "", explode: bool = False
) -> list[str]:
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
        if prefix.startswith("def ") and len(args) == 1 and suffix.startswith(" ->"):
            joined += ","  # ruff format: a lone parameter before `-> T` takes a comma
        return [f"{pad}{prefix}{func}(", joined, f"{pad}){suffix}"]
    return [f"{pad}{prefix}{func}(", *argument_lines(args, indent + 1), f"{pad}){suffix}"]


def assignment(target: str, value: str, indent: int) -> list[str]:
    """`target = value` at `indent` levels, split as ruff splits it (see `headed`)."""
    return headed(f"{target} = ", value, indent)


def headed(head: str, value: str, indent: int) -> list[str]:
    """`head + value` (`x = ...`, `return ...`) at `indent` levels; a value too long for
    the line goes in parentheses on the lines after, split as ruff splits it."""
    pad = INDENT * indent
    one = f"{pad}{head}{value}"
    if len(one) <= LINE:
        return [one]
    node = _expression(value)
    if isinstance(node, ast.Call) and node.end_col_offset == len(value):
        # a call splits inside its own brackets, as ruff prefers to adding parentheses
        args = [value[a.col_offset : a.end_col_offset] for a in (*node.args, *node.keywords)]
        return statement(head, value[: node.func.end_col_offset], args, indent)
    inner = INDENT * (indent + 1)
    pieces = split_argument(value, len(inner))
    return [f"{pad}{head}(", *(inner + piece for piece in pieces), f"{pad})"]


def _expression(text: str) -> ast.expr | None:
    """The parsed Python expression `text`, or None where it is not one."""
    try:
        return ast.parse(text, mode="eval").body
    except SyntaxError:
        return None


def condition(keyword: str, head: str, value: str, colon: str, indent: int) -> list[str]:
    """`keyword + head + value + colon` (`if settings != (...):`) at `indent` levels; where
    it is too long and `value` is a tuple, its brackets split open as ruff splits a
    collection literal: one item per line, with a trailing comma."""
    pad = INDENT * indent
    one = f"{pad}{keyword}{head}{value}{colon}"
    if len(one) <= LINE:
        return [one]
    node = _expression(value)
    if not isinstance(node, ast.Tuple) or len(node.elts) < 2 or not value.startswith("("):
        return [one]
    items = [value[e.col_offset : e.end_col_offset] for e in node.elts]
    body = _bracket_body(value, node.elts, items, len(pad), True)
    return [f"{pad}{keyword}{head}(", *(pad + line for line in body), f"{pad}){colon}"]


def argument_lines(args: list[str], indent: int) -> list[str]:
    """One argument per line at `indent` levels, each with its trailing comma."""
    inner = INDENT * indent
    lines = []
    for arg in args:
        if "\n" in arg:  # a nested call, already laid out
            first, *rest = arg.split("\n")
            lines += [f"{inner}{first}", *rest[:-1], f"{rest[-1]},"]
        else:
            pieces = split_argument(arg, len(inner))
            lines += [inner + piece for piece in pieces[:-1]] + [f"{inner}{pieces[-1]},"]
    return lines


def nested_call(func: str, args: list[str], indent: int) -> str:
    """A call used as an argument: returned as text (possibly multi-line) at `indent`."""
    one = call(func, args)
    if len(INDENT * (indent + 1) + one) + 1 <= LINE:
        return one
    lines = statement("", func, args, indent + 1)
    text = "\n".join(lines)
    return text.lstrip()


_KEYWORD = re.compile(r"[A-Za-z_]\w*=(?!=)")
_ANNOTATED = re.compile(r"[A-Za-z_]\w*: [^=]*[^=!<>]= (?!=)")  # `name: T = default`
# binary operators: their symbol and how tightly they bind (ruff splits before the
# loosest ones first)
_OPERATORS = {
    ast.BitOr: ("|", 0),
    ast.BitXor: ("^", 1),
    ast.BitAnd: ("&", 2),
    ast.LShift: ("<<", 3),
    ast.RShift: (">>", 3),
    ast.Add: ("+", 4),
    ast.Sub: ("-", 4),
    ast.Mult: ("*", 5),
    ast.Div: ("/", 5),
    ast.FloorDiv: ("//", 5),
    ast.Mod: ("%", 5),
    ast.MatMult: ("@", 5),
    ast.Pow: ("**", 6),
}


_COMPARISONS = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
}


def split_argument(arg: str, indent: int) -> list[str]:
    """A call argument (`name=expr` or `expr`) as the lines ruff gives it at `indent`
    columns when `arg,` does not fit: split before the outermost `if` and `else` of a
    conditional expression, or before the loosest binary operators, again for any
    piece still too long."""
    if indent + len(arg) + 1 <= LINE:
        return [arg]
    keyword = _KEYWORD.match(arg) or _ANNOTATED.match(arg)
    head = keyword.group(0) if keyword else ""
    tree = _expression(arg[len(head) :])
    if tree is None:
        return [arg]
    pieces = _split(arg[len(head) :], tree, indent, len(head))
    return [head + pieces[0], *pieces[1:]]


def _split(text: str, node: ast.expr, indent: int, lead: int) -> list[str]:
    """The source of `node` (a part of the one-line expression `text`) as lines of at
    most LINE - indent columns where it can be split; `lead` columns come before its
    first line."""
    source = _source(text, node)
    if lead + len(source) + 1 <= LINE - indent:
        return [source]
    if _parenthesized(text, node):  # split inside its parentheses, one level deeper
        inner = _split_bare(text, node, indent + len(INDENT), 0)
        return ["(", *(INDENT + line for line in inner), ")"] if len(inner) > 1 else [source]
    return _split_bare(text, node, indent, lead)


def _split_bare(text: str, node: ast.expr, indent: int, lead: int) -> list[str]:
    if isinstance(node, ast.IfExp):  # `a if p else b if q else c`: one chain
        pieces = _split(text, node.body, indent, lead)
        while True:
            pieces += _prefixed("if ", text, node.test, indent)
            rest = node.orelse
            if not isinstance(rest, ast.IfExp) or _parenthesized(text, rest):
                return pieces + _prefixed("else ", text, rest, indent)
            pieces += _prefixed("else ", text, rest.body, indent)
            node = rest
    if isinstance(node, ast.Compare):  # split before its operators only, as ruff does
        pieces = [_source(text, node.left)]
        for op, operand in zip(node.ops, node.comparators):
            pieces.append(f"{_COMPARISONS[type(op)]} {_source(text, operand)}")
        return pieces
    if isinstance(node, ast.BinOp):
        operands, operators = _chain(node)
        pieces = _split(text, operands[0], indent, lead)
        for op, operand in zip(operators, operands[1:]):
            pieces += _prefixed(_OPERATORS[type(op)][0] + " ", text, operand, indent)
        return pieces
    if isinstance(node, ast.Call) and node.args and not node.keywords:
        # `f(a, b)` as ruff splits it: the arguments on one line inside, or one per line
        func = _source(text, node.func)
        items = [text[a.col_offset : a.end_col_offset] for a in node.args]
        return [f"{func}(", *_bracket_body(text, node.args, items, indent, False), ")"]
    if isinstance(node, ast.Tuple) and len(node.elts) > 1:  # a table: one row per line
        items = [text[e.col_offset : e.end_col_offset] for e in node.elts]
        return ["(", *_bracket_body(text, node.elts, items, indent, True), ")"]
    return [text[node.col_offset : node.end_col_offset]]


def _bracket_body(text, nodes, items, indent: int, explode: bool) -> list[str]:
    """The items inside brackets split open (each node's exact text is its item: the
    brackets are not its own parentheses)."""
    inner = indent + len(INDENT)
    joined = ", ".join(items)
    if not explode and inner + len(joined) <= LINE:
        return [INDENT + joined]
    lines = []
    for node, item in zip(nodes, items):
        pieces = [item] if inner + len(item) + 1 <= LINE else _split_bare(text, node, inner, 0)
        pieces[-1] += ","
        lines += [INDENT + piece for piece in pieces]
    return lines


def _prefixed(prefix: str, text: str, node: ast.expr, indent: int) -> list[str]:
    pieces = _split(text, node, indent, len(prefix))
    return [prefix + pieces[0], *pieces[1:]]


def _chain(node: ast.BinOp) -> tuple[list[ast.expr], list[ast.operator]]:
    """`a - b + c * d` -> [a, b, c * d], [-, +]: the operands of the loosest operators."""
    level = _OPERATORS[type(node.op)][1]
    operands: list[ast.expr] = [node.right]
    operators: list[ast.operator] = [node.op]
    left = node.left
    while isinstance(left, ast.BinOp) and _OPERATORS[type(left.op)][1] == level:
        operands.insert(0, left.right)
        operators.insert(0, left.op)
        left = left.left
    return [left, *operands], operators


def _source(text: str, node: ast.expr) -> str:
    """The source of `node` within the one-line `text`, with its own parentheses."""
    start, end = node.col_offset, node.end_col_offset
    while start > 0 and text[start - 1] == "(" and text[end : end + 1] == ")":
        start, end = start - 1, end + 1
    return text[start:end]


def _parenthesized(text: str, node: ast.expr) -> bool:
    """Whether `node` has parentheses of its own. An operand of an operator or of `if`
    cannot be a call's argument, so a "(" just before it opens its own group."""
    return (
        text[node.col_offset - 1 : node.col_offset] == "("
        and text[node.end_col_offset : node.end_col_offset + 1] == ")"
    )


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


def with_comment(lines: list[str], comment: str, indent: int) -> list[str]:
    """A statement with `# comment` after it, or above it where it would not fit."""
    if not comment:
        return lines
    if len(lines) == 1 and len(lines[0]) + 4 + len(comment) <= LINE:
        return [f"{lines[0]}  # {comment}"]
    return [f"{INDENT * indent}# {comment}"] + lines
