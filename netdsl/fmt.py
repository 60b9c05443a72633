"""`netdsl fmt`: one canonical layout for netdsl source, keeping every comment.

The formatter works on the token stream of grammars/netdsl.lark (whitespace and
comments included) and takes each token's role from the parse tree: a unary or a
binary minus, the `=` of a keyword argument or of a statement, the `*` of a repeat.
It keeps the author's line breaks and decides everything inside a line. The rules
were read off the zoo (architectures/, netdsl/stdlib/), so formatting it moves little:

* one space between tokens; none inside brackets, before `,` `:` `.`, after `.` `@`,
  around the `=` of a keyword argument or a parameter default (`k=3`, `c=64`), around a
  repeat's `*` (`[conv3 c]*n`), or after a unary minus (`bias_init=-2`);
* indentation: 4 for a body statement. A continuation line inside brackets either
  aligns with the first column after the innermost open bracket, or hangs 4 from the
  line that opened it (8 for the parameters of a definition head); the bracket's first
  continuation line keeps the author's choice (left of that column: hanging). A line
  that goes on with the same argument aligns with the argument's start (hanging: 4
  more). Outside brackets, a top-level statement's continuation lines are indented 4; a
  body statement's align with it when they start with `+`, `then`, `else`, `and`, `or`,
  `@` or `as`, else are indented 4 more;
* a line whose code passes 100 columns is broken before a `+` (or an `else`) at its
  outermost level, else after a comma of its outermost argument list, as late as fits;
* the trailing comments of consecutive lines of one statement share one column (the
  column of theirs that moves them least, moved right for code that reaches a little
  past it); a line whose code reaches further has its comment two spaces after it.
  A comment right after an open bracket (a table's column headings) stays there;
* consecutive lines that each hold one tuple of a table, of equal length, have the
  tuple's elements right-aligned in columns;
* a comment on its own line before a statement takes the statement's indentation;
  inside a statement it keeps its column;
* at most one blank line in a row, none at the start or end, one newline at the end.

A safety net, as in black: the result must lex to the same tokens and comments and
parse to the same program (the AST, spans aside) as the input, or formatting stops
with an internal error and nothing is written.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass, field
from functools import cache

from lark import Lark, Token, Tree

from . import ast
from .errors import NetdslError, Span
from .loader import read_source
from .parser import _CLOSE, _CONTINUE_BEFORE, _OPEN, _lark, _Newlines, parse
from .resources import grammar_path

LINE_LIMIT = 100
INDENT = 4

# tokens a long line may be broken before, at its outermost level, in order of preference
_BREAK_BEFORE = ("PLUS", "ELSE")
_COMMENT_GAP = 2
# how far a comment column moves right to keep a line whose code reaches past it aligned
_COMMENT_SLACK = 4


class FormatterBug(AssertionError):
    """The formatted text is not the same program: a bug in netdsl, never the user's."""


@cache
def _lexer() -> Lark:
    """The grammar's own lexer without the post-lexer, so every newline and comment is seen."""
    return Lark.open(str(grammar_path()), parser="lalr", lexer="basic", cache=True)


@dataclass
class _Roles:
    """What the parse tree says about tokens that look alike (keyed by start_pos)."""

    unary: set[int] = field(default_factory=set)  # `-x`
    tight_names: set[int] = field(default_factory=set)  # `k` of `k=3` and of `c=64`
    tight_equals: set[int] = field(default_factory=set)  # their `=`
    repeats: set[int] = field(default_factory=set)  # `*` of `[conv3 c]*n`
    top_level: set[int] = field(default_factory=set)  # first token of a top-level item

    @classmethod
    def of(cls, tree: Tree) -> _Roles:
        roles = cls()
        for item in tree.children:
            if isinstance(item, Tree) and not getattr(item.meta, "empty", True):
                roles.top_level.add(item.meta.start_pos)
        for sub in tree.iter_subtrees():
            if sub.data == "neg":
                roles.unary.add(sub.children[0].start_pos)
            elif sub.data in ("kwarg", "param"):
                roles.tight_names.add(sub.children[0].start_pos)
            elif sub.data == "binop":
                left, op = sub.children[0], sub.children[1]
                if op == "*" and isinstance(left, Tree) and left.data in _REPEATED:
                    roles.repeats.add(op.start_pos)
        return roles


_REPEATED = ("group", "comprehension")


@dataclass
class _Line:
    """One line of the input: its tokens, its comment, and how it relates to statements."""

    tokens: list[Token]
    comment: Token | None = None
    backslash: bool = False  # ends in `\` (an explicit continuation)
    starts_statement: bool = False
    top_level: bool = False  # belongs to a top-level item (not a body statement)
    # filled in by the layout
    indent: int = 0
    code: str = ""
    comment_column: int = 0
    header_comment: bool = False  # written right after an open bracket: a table heading


def _split_lines(text: str, roles: _Roles) -> list[_Line]:
    """The input's lines; also marks the `=` of keyword arguments and defaults in `roles`."""
    raw = list(_lexer().lex(text, dont_ignore=True))
    significant = [t for t in raw if t.type != "COMMENT" and not t.type.startswith("__")]
    ends = {id(t) for t in _Newlines().process(iter(significant)) if t.type == "_NL"}
    words = [t for t in significant if t.type != "_NL"]
    for before, tok in zip(words, words[1:], strict=False):
        if tok.type == "EQUAL" and before.start_pos in roles.tight_names:
            roles.tight_equals.add(tok.start_pos)
    lines: list[_Line] = [_Line([])]
    at_start, top = True, True
    for tok in raw:
        line = lines[-1]
        if tok.type == "_NL":
            if id(tok) in ends:
                at_start = True
            lines.append(_Line([]))
        elif tok.type == "COMMENT":
            line.comment = tok
        elif tok.type.startswith("__"):
            if tok.value.startswith("\\"):
                line.backslash = True
                lines.append(_Line([]))
        else:
            if not line.tokens:
                if at_start:
                    top = tok.start_pos in roles.top_level
                line.starts_statement = at_start
                line.top_level = top
            at_start = False
            line.tokens.append(tok)
    return lines


def _text(tok: Token) -> str:
    if tok.type == "TOKENS_OF":
        return "tokens of"
    return str(tok)


def _space(a: Token, b: Token, roles: _Roles) -> str:
    """The space between two tokens on one line: '' or ' '."""
    if a.type in _OPEN or b.type in _CLOSE or b.type in ("COMMA", "COLON", "SUBSCRIPT"):
        return ""
    if b.type == "DOT":
        return " " if a.type == "NUMBER" else ""  # `2 .c` is not `2.` and `c`
    if a.type in ("DOT", "AT"):
        return ""
    if a.start_pos in roles.tight_equals or b.start_pos in roles.tight_equals:
        return ""
    if a.type == "MINUS" and a.start_pos in roles.unary:
        return ""
    if a.start_pos in roles.repeats or b.start_pos in roles.repeats:
        return ""
    return " "


@dataclass
class _Open:
    """An open bracket while laying out: where its continuation lines may start."""

    aligned: int  # the column after the bracket
    hanging: int  # the indentation of the bracket's line, plus 4
    source_aligned: int  # the column after the bracket in the input
    element: int | None = None  # where the current element (argument, item) starts
    hanging_style: bool | None = None  # decided by the bracket's first continuation line
    new_element: bool = True  # the last token seen was the bracket or a comma


class _Layout:
    """Lays out the lines: indentation, spacing and long lines."""

    def __init__(self, lines: list[_Line], roles: _Roles) -> None:
        self.lines = lines
        self.roles = roles

    def run(self) -> list[_Line]:
        out: list[_Line] = []
        pending = list(reversed(self.lines))
        stack: list[_Open] = []
        statement_indent = 0
        while pending:
            line = pending.pop()
            if not line.tokens:
                out.append(line)
                continue
            if line.starts_statement:
                stack = []
                statement_indent = 0 if line.top_level else INDENT
                line.indent = statement_indent
            elif stack:
                line.indent = self._inside(stack[-1], line)
            elif line.top_level:
                line.indent = INDENT
            elif line.tokens[0].type in _CONTINUE_BEFORE:
                line.indent = statement_indent
            else:
                line.indent = statement_indent + INDENT
            saved = [_copy(o) for o in stack]
            line.code, columns = self._render(line, stack)
            while self._too_long(line):
                cut = self._break_point(line, columns, saved)
                if cut is None:
                    break
                rest = _Line(line.tokens[cut:], line.comment, line.backslash)
                rest.top_level = line.top_level
                line.tokens, line.comment, line.backslash = line.tokens[:cut], None, False
                stack[:] = [_copy(o) for o in saved]
                line.code, columns = self._render(line, stack)
                pending.append(rest)
            out.append(line)
        return out

    @staticmethod
    def _inside(bracket: _Open, line: _Line) -> int:
        """A continuation line inside brackets: aligned with the bracket, or a hanging indent.

        The author's choice is kept: a first line that started left of the column after
        the bracket makes the bracket hanging.
        """
        if bracket.hanging_style is None:
            bracket.hanging_style = line.tokens[0].column - 1 < bracket.source_aligned
        starts_element = bracket.new_element or line.tokens[0].type in _CLOSE
        if bracket.hanging_style:
            return bracket.hanging if starts_element else bracket.hanging + INDENT
        if starts_element or bracket.element is None:
            return bracket.aligned
        return bracket.element

    def _too_long(self, line: _Line) -> bool:
        return line.indent + len(line.code) > LINE_LIMIT

    def _render(self, line: _Line, stack: list[_Open]) -> tuple[str, list[int]]:
        """The line's code; `stack` follows its brackets. Returns each token's column."""
        parts: list[str] = []
        columns: list[int] = []
        column = line.indent
        previous: Token | None = None
        for tok in line.tokens:
            if previous is not None:
                gap = _space(previous, tok, self.roles)
                parts.append(gap)
                column += len(gap)
            text = _text(tok)
            columns.append(column)
            parts.append(text)
            if stack and stack[-1].new_element and tok.type not in _CLOSE:
                stack[-1].element, stack[-1].new_element = column, False
            column += len(text)
            if tok.type in _OPEN:
                hanging = line.indent + INDENT * (2 if _is_head(line, tok) else 1)
                stack.append(_Open(column, hanging, tok.end_column - 1))
            elif tok.type in _CLOSE and stack:
                stack.pop()
            elif tok.type == "COMMA" and stack:
                stack[-1].new_element = True
            previous = tok
        return "".join(parts), columns

    def _break_point(self, line: _Line, columns: list[int], stack: list[_Open]) -> int | None:
        """Where to cut a long line: before a `+` (or an `else`) at the line's outermost
        level, else after a comma of its outermost argument list; as late as fits."""
        depths: list[int] = []
        depth = len(stack)
        for tok in line.tokens:
            if tok.type in _CLOSE:
                depth -= 1
            depths.append(depth)
            if tok.type in _OPEN:
                depth += 1
        outermost = min(depths)
        for kind in _BREAK_BEFORE:
            cuts = [
                i
                for i, tok in enumerate(line.tokens)
                if i > 0 and tok.type == kind and depths[i] == outermost
            ]
            if cuts:
                return self._latest_fitting(cuts, columns)
        cuts = [
            i + 1
            for i, tok in enumerate(line.tokens[:-1])
            if tok.type == "COMMA" and line.tokens[i + 1].type not in _CLOSE
        ]
        if not cuts:
            return None
        level = min(depths[i - 1] for i in cuts)
        return self._latest_fitting([i for i in cuts if depths[i - 1] == level], columns)

    @staticmethod
    def _latest_fitting(cuts: list[int], columns: list[int]) -> int:
        fitting = [i for i in cuts if columns[i] - 1 <= LINE_LIMIT]
        return fitting[-1] if fitting else cuts[0]


def _is_head(line: _Line, tok: Token) -> bool:
    """The parameter list of a definition, `network name(`: its hanging indent is 8, as in
    PEP 8, so that it stands apart from the body."""
    return (
        line.starts_statement
        and len(line.tokens) > 1
        and line.tokens[1] is tok
        and line.tokens[0].type in ("NETWORK", "BLOCK", "DEF")
    )


def _copy(bracket: _Open) -> _Open:
    return _Open(**vars(bracket))


def _header_comment(line: _Line) -> bool:
    return (
        line.comment is not None
        and bool(line.tokens)
        and line.tokens[-1].type in _OPEN
        and line.tokens[-1].end_pos == line.comment.start_pos
    )


def _align_tables(lines: list[_Line]) -> None:
    """Right-align the columns of consecutive lines that are each one tuple of a table."""
    run: list[tuple[_Line, list[tuple[int, int]]]] = []
    for line in [*lines, _Line([])]:
        cells = _row_cells(line)
        if cells is not None and run and len(cells) == len(run[0][1]) and not line.starts_statement:
            run.append((line, cells))
            continue
        if len(run) > 1:
            _right_align(run)
        run = [(line, cells)] if cells is not None else []


def _row_cells(line: _Line) -> list[tuple[int, int]] | None:
    """(start, end) of each element in the line's code, if the line is one tuple."""
    toks = line.tokens
    if not toks or toks[0].type != "LPAR":
        return None
    depth, close = 0, None
    commas: list[int] = []
    for i, tok in enumerate(toks):
        if tok.type in _OPEN:
            depth += 1
        elif tok.type in _CLOSE:
            depth -= 1
            if depth == 0:
                close = i
                break
        elif tok.type == "COMMA" and depth == 1:
            commas.append(i)
    if (
        close is None
        or not commas
        or any(t.type not in ("RPAR", "RSQB", "COMMA", "COLON") for t in toks[close + 1 :])
    ):
        return None
    # element boundaries in the rendered code: re-render cheaply by token offsets
    offsets = _token_offsets(line)
    bounds = [0, *commas, close]
    cells = []
    for k in range(len(bounds) - 1):
        first = bounds[k] + 1
        last = bounds[k + 1] - 1
        if last < first:
            return None
        cells.append((offsets[first][0], offsets[last][1]))
    return cells


def _token_offsets(line: _Line) -> list[tuple[int, int]]:
    """Each token's (start, end) in line.code (the code has no leading indentation)."""
    offsets, position = [], 0
    for tok in line.tokens:
        text = _text(tok)
        start = line.code.index(text, position)
        offsets.append((start, start + len(text)))
        position = start + len(text)
    return offsets


def _right_align(run: list[tuple[_Line, list[tuple[int, int]]]]) -> None:
    """Each element after the first ends in its column's rightmost end; one space at least."""
    ends = [max(line.indent + cells[0][1] for line, cells in run)]
    for k in range(1, len(run[0][1])):
        ends.append(ends[-1] + 2 + max(cells[k][1] - cells[k][0] for _, cells in run))
    for line, cells in run:
        pieces = [line.code[: cells[0][1]]]
        column = line.indent + cells[0][1]
        for k in range(1, len(cells)):
            element = line.code[cells[k][0] : cells[k][1]]
            pad = ends[k] - len(element) - column - 1
            pieces += [",", " " * pad, element]
            column += 1 + pad + len(element)
        pieces.append(line.code[cells[-1][1] :])
        line.code = "".join(pieces)


def _place_comments(lines: list[_Line]) -> None:
    """Align trailing comments in runs; indent comments that stand on their own lines."""
    for line in lines:
        line.header_comment = _header_comment(line)
        if line.header_comment:
            line.comment_column = line.indent + len(line.code)
    run: list[_Line] = []
    for line in [*lines, _Line([])]:
        trailing = line.tokens and line.comment is not None and not line.header_comment
        if trailing and run and not line.starts_statement:
            run.append(line)
            continue
        if run:
            _align(run)
        run = [line] if trailing else []
    _indent_own_line_comments(lines)


def _align(run: list[_Line]) -> None:
    """One column for the run: of the columns its comments sit at (where written, or pushed
    right by their code), the one that moves them least (the rightmost of equals); moved
    right for code that reaches a little past it. A line whose code reaches further has its
    comment two spaces after its code."""
    written = [x.comment.column - 1 for x in run]  # type: ignore[union-attr]
    needs = [_code_end(x) + _COMMENT_GAP for x in run]

    def movement(column: int) -> int:
        return sum(abs(max(column, n) - w) for w, n in zip(written, needs, strict=True))

    candidates = {max(w, n) for w, n in zip(written, needs, strict=True)}
    column = min(candidates, key=lambda c: (movement(c), -c))
    while True:
        near = [need for need in needs if column < need <= column + _COMMENT_SLACK]
        if not near:
            break
        column = max(near)
    for x, need in zip(run, needs, strict=True):
        x.comment_column = max(column, need)


def _code_end(line: _Line) -> int:
    return line.indent + len(line.code)


def _indent_own_line_comments(lines: list[_Line]) -> None:
    """A comment on its own line before a statement takes the statement's indentation; inside
    a statement it keeps its column. One closing a body or a file (a blank line or the end
    follows) takes the indentation of the statement above, or keeps its column if it hangs
    right of that line's code."""
    own = [not x.tokens and x.comment is not None for x in lines]
    above: list[_Line | None] = []  # the nearest line above that is not such a comment
    last = None
    for line, is_comment in zip(lines, own, strict=True):
        above.append(last)
        last = last if is_comment else line
    after: list[_Line | None] = [None] * len(lines)
    following_code: list[_Line | None] = [None] * len(lines)
    nearest = code = None
    for i in range(len(lines) - 1, -1, -1):
        after[i], following_code[i] = nearest, code
        if not own[i]:
            nearest = lines[i]
        if lines[i].tokens:
            code = lines[i]
    for i, line in enumerate(lines):
        if not own[i]:
            continue
        written = line.comment.column - 1  # type: ignore[union-attr]
        below, up = after[i], above[i]
        if below is not None and below.tokens:
            line.indent = below.indent if below.starts_statement else written
        elif up is not None and up.tokens:
            line.indent = written if written > up.indent else _statement_indent(up)
        else:
            line.indent = following_code[i].indent if following_code[i] is not None else 0


def _statement_indent(line: _Line) -> int:
    return 0 if line.top_level else INDENT


def _join(lines: list[_Line]) -> str:
    out: list[str] = []
    for line in lines:
        if line.tokens:
            text = " " * line.indent + line.code
            if line.comment is not None:
                text = text.ljust(line.comment_column) + str(line.comment).rstrip()
            elif line.backslash:
                text += " \\"
        elif line.comment is not None:
            text = " " * line.indent + str(line.comment).rstrip()
        else:
            text = ""
        if text == "" and (not out or out[-1] == ""):
            continue
        out.append(text)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n" if out else ""


def format_text(text: str, path: str = "<input>") -> str:
    """`text` in the canonical layout; a NetdslError (located) if it does not parse."""
    before = parse(text, path)
    roles = _Roles.of(_lark().parse(text))
    lines = _Layout(_split_lines(text, roles), roles).run()
    _align_tables(lines)
    _place_comments(lines)
    result = _join(lines)
    _check_same_program(before, text, result, path)
    return result


def _check_same_program(before: ast.Module, text: str, result: str, path: str) -> None:
    try:
        after = parse(result, path)
    except NetdslError as e:
        raise FormatterBug(f"formatting {path} made it unparsable: {e.message}") from None
    if _skeleton(before) != _skeleton(after) or _tokens(text) != _tokens(result):
        raise FormatterBug(f"formatting {path} changed the program")


def _tokens(text: str) -> list[tuple[str, str]]:
    return [
        (t.type, _text(t))
        for t in _lexer().lex(text)
        if t.type not in ("_NL", "COMMENT") and not t.type.startswith("__")
    ] + [
        ("COMMENT", str(t).rstrip())
        for t in _lexer().lex(text, dont_ignore=True)
        if t.type == "COMMENT"
    ]


def _skeleton(module: ast.Module) -> list:
    """The module's nodes and values in preorder, spans left out (iterative: deep programs)."""
    out: list = []
    stack: list = [module]
    while stack:
        value = stack.pop()
        if isinstance(value, ast.Node):
            out.append(type(value).__name__)
            stack.extend(reversed([getattr(value, f) for f in value.__record_fields__]))
        elif isinstance(value, tuple):
            out.append(("tuple", len(value)))
            stack.extend(reversed(value))
        elif isinstance(value, Span):
            out.append(None)
        else:
            out.append(value)
    return out


# ---- the command -------------------------------------------------------------------------


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fmt",
        help="rewrite .net files in the canonical layout (comments kept)",
        description="Rewrite .net files in netdsl's canonical layout. The program is "
        "unchanged (checked), every comment is kept, and the author's line breaks stay.",
    )
    p.add_argument(
        "files", nargs="+", metavar="FILE", help="files to format; - reads standard input"
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--check",
        action="store_true",
        help="change nothing; list the files that would change (exit 1 if any)",
    )
    mode.add_argument(
        "--diff",
        action="store_true",
        help="change nothing; print a unified diff of each change (exit 1 if any)",
    )
    p.set_defaults(func=cmd_fmt)


def cmd_fmt(args) -> int:
    changed = unchanged = failed = 0
    for path in args.files:
        try:
            text = sys.stdin.read() if path == "-" else read_source(path)
            result = format_text(text, "<stdin>" if path == "-" else path)
        except NetdslError as e:
            print(e.format(), file=sys.stderr)
            failed += 1
            continue
        if result == text:
            unchanged += 1
        else:
            changed += 1
        if path == "-" and not (args.check or args.diff):
            sys.stdout.write(result)
        elif result == text:
            continue
        elif args.diff:
            sys.stdout.writelines(
                difflib.unified_diff(
                    text.splitlines(keepends=True), result.splitlines(keepends=True), path, path
                )
            )
        elif args.check:
            print(f"would reformat {path}")
        else:
            _write(path, result)
            print(f"reformatted {path}")
    if args.files != ["-"]:
        print(_summary(changed, unchanged, failed, would=args.check or args.diff))
    return 1 if failed or ((args.check or args.diff) and changed) else 0


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def _summary(changed: int, unchanged: int, failed: int, would: bool) -> str:
    def files(n: int) -> str:
        return f"{n} file{'s' if n != 1 else ''}"

    parts = []
    if changed:
        parts.append(f"{files(changed)} {'would be reformatted' if would else 'reformatted'}")
    if unchanged:
        parts.append(f"{files(unchanged)} {'already formatted' if would else 'left unchanged'}")
    if failed:
        parts.append(f"{files(failed)} not formatted (errors above)")
    return ", ".join(parts) or "no files"
