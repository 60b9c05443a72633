"""Source text -> AST (lark LALR, grammar in grammars/netdsl.lark)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import NamedTuple

from lark import Lark, Token, Transformer_NonRecursive, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from . import ast
from .errors import NetdslError, SourceRegistry, Span, source_lines
from .habits import qualified_call
from .resources import grammar_path
from .slips import explain

# Newlines are dropped after these tokens (the statement obviously goes on) ...
_CONTINUE_AFTER = {
    "PLUS",
    "MINUS",
    "MUL_OP",
    "COMP_OP",
    "EQUAL",
    "COMMA",
    "AT",
    "AND",
    "OR",
    "NOT",
    "IF",
    "THEN",
    "ELSE",
    "AS",
    "POW",
}
# ... and before these (a line that starts with `+` continues the previous one).
_CONTINUE_BEFORE = {"PLUS", "THEN", "ELSE", "AND", "OR", "AT", "AS"}
_OPEN = {"LPAR", "LSQB", "CALL_NAME", "SUBSCRIPT"}
_CLOSE = {"RPAR", "RSQB"}

# Longest integer literal read (far beyond any limit the elaborator allows), and how deeply
# expressions and statements may nest: the elaborator recurses on nesting.
MAX_DIGITS = 100
MAX_NESTING = 500

_TERMINAL_NAMES = {
    "NAME": "a name",
    "CALL_NAME": "a call such as conv_bn(",
    "NUMBER": "a number",
    "SHAPE": "a shape such as 3x224x224",
    "STRING": 'a string in "quotes"',
    "COMP_OP": "a comparison (==, !=, <, <=, >, >=)",
    "MUL_OP": "*, /, // or %",
    "POW": "'**'",
    "SUBSCRIPT": "'[' (an index)",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "_NL": "end of line",
    "$END": "end of file",
}


class _Newlines:
    """Post-lexer: keep only the newlines that end a statement."""

    always_accept = ("_NL",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        depth = 0
        previous: Token | None = None
        pending: Token | None = None
        for token in stream:
            if token.type == "_NL":
                if depth == 0 and previous is not None and previous.type not in _CONTINUE_AFTER:
                    pending = pending or token
                continue
            if pending is not None:
                if token.type not in _CONTINUE_BEFORE:
                    yield pending
                pending = None
            if token.type in _OPEN:
                depth += 1
            elif token.type in _CLOSE and depth > 0:
                depth -= 1
            previous = token
            yield token
        if previous is not None:
            yield pending or Token("_NL", "\n", line=previous.end_line, column=previous.end_column)


@cache
def _lark() -> Lark:
    return Lark.open(
        str(grammar_path()),
        parser="lalr",
        lexer="basic",
        postlex=_Newlines(),
        propagate_positions=True,
        maybe_placeholders=False,
        cache=True,
    )


@cache
def keywords() -> frozenset[str]:
    """The words the grammar reserves (`block`, `if`, `id`, ...): no name may be one."""
    return frozenset(
        t.pattern.value
        for t in _lark().terminals
        if t.pattern.type == "str" and t.pattern.value.isidentifier()
    )


class _Kw(NamedTuple):
    name: str
    value: ast.Expr
    span: Span


def _token_span(path: str, tok: Token) -> Span:
    return Span(path, tok.line, tok.column, tok.end_line, tok.end_column)


@v_args(meta=True)
class _ToAst(Transformer_NonRecursive):
    """One method per grammar alias; each returns the AST node of that name."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def _span(self, meta) -> Span:
        if getattr(meta, "empty", False):
            return Span(self.path, 1, 1)
        return Span(self.path, meta.line, meta.column, meta.end_line, meta.end_column)

    # atoms
    def number(self, meta, children):
        text = str(children[0])
        if any(c in text for c in ".eE"):
            return ast.Number(self._span(meta), float(text))
        return ast.Number(self._span(meta), self._int(text, meta))

    def shape(self, meta, children):
        dims = tuple(self._int(d, meta) for d in str(children[0]).replace("×", "x").split("x"))
        return ast.Shape(self._span(meta), dims)

    def _int(self, digits: str, meta) -> int:
        if len(digits) > MAX_DIGITS:  # int() of thousands of digits is refused (and slow)
            raise NetdslError(f"number too large ({len(digits)} digits)", self._span(meta))
        return int(digits)

    def string(self, meta, children):
        return ast.String(self._span(meta), str(children[0])[1:-1])

    def true(self, meta, children):
        return ast.Bool(self._span(meta), True)

    def false(self, meta, children):
        return ast.Bool(self._span(meta), False)

    def identity(self, meta, children):
        return ast.Identity(self._span(meta))

    def block_input(self, meta, children):
        return ast.BlockInput(self._span(meta))

    def name(self, meta, children):
        return ast.Name(self._span(meta), str(children[0]))

    def attr(self, meta, children):
        return ast.Attr(self._span(meta), children[0], str(children[1]))

    def tuple(self, meta, children):
        return ast.Tuple(self._span(meta), tuple(children))

    def group(self, meta, children):
        return ast.Group(self._span(meta), children[0])

    def comprehension(self, meta, children):
        body, var, iterable = children
        if isinstance(var, tuple):
            return ast.Comprehension(self._span(meta), body, "", iterable, var)
        return ast.Comprehension(self._span(meta), body, str(var), iterable)

    def unpack(self, meta, children):
        names = tuple(str(c) for c in children)
        for i, name in enumerate(names):
            if name in names[:i]:
                raise NetdslError(f"'{name}' is named twice", self._span(meta))
        return names

    def index(self, meta, children):
        return ast.Index(self._span(meta), children[0], children[-1])

    def kwarg(self, meta, children):
        return _Kw(str(children[0]), children[1], _token_span(self.path, children[0]))

    def _call(self, meta, name: str, items, parenthesised: bool):
        args, kwargs = [], []
        for item in items:
            if isinstance(item, _Kw):
                if any(k.name == item.name for k in kwargs):
                    raise NetdslError(f"argument '{item.name}' given twice", item.span)
                kwargs.append(item)
            elif kwargs and parenthesised:
                raise NetdslError(
                    "positional argument follows keyword argument",
                    item.span,
                    hint="put positional arguments first",
                )
            else:
                args.append(item)
        return ast.Call(
            self._span(meta),
            name,
            tuple(args),
            tuple((k.name, k.value, k.span) for k in kwargs),
            parenthesised,
        )

    def call(self, meta, children):
        return self._call(meta, str(children[0])[:-1], children[1:], parenthesised=True)

    def app(self, meta, children):
        return self._call(meta, str(children[0]), children[1:], parenthesised=False)

    # operators
    def binop(self, meta, children):
        left, op, right = children
        return ast.BinOp(self._span(meta), str(op), left, right, _token_span(self.path, op))

    def neg(self, meta, children):
        return ast.Neg(self._span(meta), children[1])

    def compare(self, meta, children):
        left, op, right = children
        return ast.Compare(self._span(meta), str(op), left, right)

    def and_op(self, meta, children):
        return ast.BoolOp(self._span(meta), "and", children[0], children[1])

    def or_op(self, meta, children):
        return ast.BoolOp(self._span(meta), "or", children[0], children[1])

    def not_op(self, meta, children):
        return ast.Not(self._span(meta), children[0])

    def if_expr(self, meta, children):
        return ast.IfExpr(self._span(meta), *children)

    def label(self, meta, children):
        return ast.Label(self._span(meta), children[0], str(children[1]))

    def annotation(self, meta, children):
        name = str(children[0]).rstrip("(")
        return ast.Annotation(self._span(meta), name, tuple(children[1:]))

    def annotate(self, meta, children):
        return ast.Annotated(self._span(meta), children[0], children[1])

    # statements
    def input_stmt(self, meta, children):
        name = (
            str(children[0])
            if isinstance(children[0], Token) and children[0].type == "NAME"
            else None
        )
        rest = [c for c in children if not isinstance(c, Token)]  # shape [, vocab]
        return ast.InputStmt(self._span(meta), name, rest[0], rest[1] if len(rest) > 1 else None)

    def output_stmt(self, meta, children):
        name = None
        if children and isinstance(children[0], Token):
            name = str(children[0])
            children = children[1:]
        annotations = tuple(c for c in children if isinstance(c, ast.Annotation))
        exprs = [c for c in children if isinstance(c, ast.Expr)]
        return ast.OutputStmt(self._span(meta), name, annotations, exprs[0] if exprs else None)

    def let_stmt(self, meta, children):
        return ast.LetStmt(self._span(meta), str(children[0]), children[1])

    def expr_stmt(self, meta, children):
        return ast.ExprStmt(self._span(meta), children[0])

    def if_stmt(self, meta, children):
        return ast.IfStmt(self._span(meta), children[0], children[-1])

    def body(self, meta, children):
        return tuple(children)

    # definitions
    def param(self, meta, children):
        default = children[1] if len(children) > 1 else None
        return ast.Param(self._span(meta), str(children[0]), default)

    def _head(self, children):
        tok = children[0]
        name = str(tok).rstrip("(")
        self._name_span = Span(self.path, tok.line, tok.column, tok.line, tok.column + len(name))
        params = tuple(c for c in children[1:] if isinstance(c, ast.Param))
        seen: dict[str, ast.Param] = {}
        for p in params:
            if p.name in seen:
                raise NetdslError(f"parameter '{p.name}' declared twice", p.span)
            seen[p.name] = p
        return name, params

    def block(self, meta, children):
        name, params = self._head(children[:-1])
        return ast.BlockDef(
            self._span(meta), name, params, children[-1], self.path, self._name_span
        )

    def network(self, meta, children):
        name, params = self._head(children[:-1])
        return ast.NetworkDef(self._span(meta), name, params, children[-1], self._name_span)

    def function(self, meta, children):
        name, params = self._head(children[:-1])
        return ast.FunctionDef(self._span(meta), name, params, children[-1], self._name_span)

    def use(self, meta, children):
        tok = children[0]
        if tok.type == "STRING":
            return ast.Use(self._span(meta), str(tok)[1:-1], True)
        return ast.Use(self._span(meta), str(tok), False)

    def defaults(self, meta, children):
        kwargs = tuple((k.name, k.value, k.span) for k in children[1:])
        return ast.Defaults(self._span(meta), str(children[0]), kwargs)

    def train_entry(self, meta, children):
        call = self._call(meta, str(children[0]), children[1:], parenthesised=False)
        return ast.TrainEntry(self._span(meta), call.name, call.args, call.kwargs)

    def train(self, meta, children):
        return ast.TrainDef(
            self._span(meta), tuple(c for c in children if not isinstance(c, Token))
        )

    def start(self, meta, children):
        buckets: dict[type, list] = {
            t: []
            for t in (
                ast.Use,
                ast.Defaults,
                ast.BlockDef,
                ast.NetworkDef,
                ast.TrainDef,
                ast.FunctionDef,
            )
        }
        for item in children:
            buckets[type(item)].append(item)
        for kind, what in (
            (ast.BlockDef, "block"),
            (ast.NetworkDef, "network"),
            (ast.FunctionDef, "function"),
        ):
            first: dict[str, ast.Node] = {}
            for item in buckets[kind]:
                if item.name in first:
                    raise NetdslError(
                        f"{what} '{item.name}' is defined twice", item.name_span
                    ).with_note("first defined here", first[item.name].name_span)
                first[item.name] = item
        blocks = {b.name: b for b in buckets[ast.BlockDef]}
        for f in buckets[ast.FunctionDef]:
            if f.name in blocks:
                raise NetdslError(
                    f"function '{f.name}' has the name of a block", f.name_span
                ).with_note("the block is defined here", blocks[f.name].name_span)
        trains = buckets[ast.TrainDef]
        if len(trains) > 1:
            raise NetdslError("a file may have only one train section", trains[1].span)
        return ast.Module(
            Span(self.path, 1, 1),
            self.path,
            tuple(buckets[ast.Use]),
            tuple(buckets[ast.Defaults]),
            tuple(buckets[ast.BlockDef]),
            tuple(buckets[ast.NetworkDef]),
            trains[0] if trains else None,
            tuple(buckets[ast.FunctionDef]),
        )


def parse(text: str, path: str = "<input>") -> ast.Module:
    """Parse netdsl source text into an `ast.Module`; errors are `NetdslError`s."""
    SourceRegistry.add(path, text)
    try:
        tree = _lark().parse(text)
        module = _ToAst(path).transform(tree)
        _check_nesting(module)
        return module
    except VisitError as e:
        if isinstance(e.orig_exc, NetdslError):
            raise e.orig_exc from None
        if isinstance(e.orig_exc, RecursionError):
            raise NetdslError("expression is nested too deeply", Span(path, 1, 1)) from None
        raise
    except UnexpectedInput as e:
        raise _syntax_error(e, path, text) from None
    except RecursionError:
        raise NetdslError("expression is nested too deeply", Span(path, 1, 1)) from None


def _check_nesting(module: ast.Module) -> None:
    """Refuse expressions nested more than MAX_NESTING deep, with the place they go too deep.

    The left operand of a binary operator does not count: the elaborator evaluates
    `a + b + c + ...` (and `1 - 2 - 3 ...`) as a loop, so long sequences are fine.
    """
    items = (
        *module.functions,
        *module.defaults,
        *module.blocks,
        *module.networks,
        *((module.train,) if module.train else ()),
    )
    stack: list = [(item, 0) for item in items]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            raise NetdslError(
                f"expressions nest more than {MAX_NESTING} levels deep",
                node.span,
                hint="write the repetition as a repeat, [ ... ]*n, or split it into blocks",
            )
        if isinstance(node, ast.BinOp):
            stack.append((node.left, depth))
            stack.append((node.right, depth + 1))
            continue
        for value in vars(node).values():
            if isinstance(value, ast.Node):
                stack.append((value, depth + 1))
            elif isinstance(value, tuple):
                for item in value:
                    if isinstance(item, ast.Node):
                        stack.append((item, depth + 1))
                    elif isinstance(item, tuple):  # keyword arguments: (name, value, span)
                        stack.extend((v, depth + 1) for v in item if isinstance(v, ast.Node))


def _describe(terminal: str) -> str:
    if terminal in _TERMINAL_NAMES:
        return _TERMINAL_NAMES[terminal]
    try:
        pattern = _lark().get_terminal(terminal).pattern
    except KeyError:
        return terminal.lower()
    if pattern.type == "str":
        return f"'{pattern.value}'"
    return terminal.lower()


def _tokens(text: str) -> list[Token]:
    """The file's tokens as the parser sees them, up to the first that does not lex."""
    tokens: list[Token] = []
    try:
        tokens.extend(_lark().lex(text))
    except UnexpectedInput:
        pass
    return tokens


def _syntax_error(e: UnexpectedInput, path: str, text: str) -> NetdslError:
    slip = explain(e, _tokens(text), text, path)
    if slip is not None:
        return slip
    if isinstance(e, UnexpectedToken) and e.token.start_pos is not None:  # nn.ReLU()
        framework = qualified_call(text, e.token.start_pos, path)
        if framework is not None:
            return framework
    line, column = max(getattr(e, "line", 1) or 1, 1), max(getattr(e, "column", 1) or 1, 1)
    if isinstance(e, UnexpectedCharacters):
        char = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        hint = None
        if char and not char.isascii():
            hint = "names and numbers are plain ASCII"
        shown = "NUL" if char == "\x00" else repr(char)
        return NetdslError(
            f"syntax error: unexpected character {shown}",
            Span(path, line, column, line, column + 1),
            hint=hint,
        )
    if isinstance(e, UnexpectedToken):
        token = e.token
        if token.type == "$END":
            found = "end of file"
        elif token.type == "_NL":
            found = "end of line"
        else:
            found = repr(str(token))
        expected = sorted({_describe(t) for t in e.expected if t != "COMMENT"})
        span = Span(
            path,
            line,
            column,
            token.end_line or line,
            (token.end_column or column + 1) if token.type != "_NL" else column + 1,
        )
        lines = source_lines(text)
        source_line = lines[line - 1] if 0 < line <= len(lines) else ""
        hint = _syntax_hint(token, e.expected, source_line)
        listing = ", ".join(expected[:12]) + (", ..." if len(expected) > 12 else "")
        if len(expected) > 1:
            listing = "one of " + listing
        return NetdslError(f"syntax error: unexpected {found}; expected {listing}", span, hint=hint)
    if isinstance(e, UnexpectedEOF):
        return NetdslError("syntax error: unexpected end of file", Span(path, line, column))
    return NetdslError(f"syntax error: {e}", Span(path, line, column))


def _syntax_hint(token: Token, expected, source_line: str = "") -> str | None:
    if token.type == "_NL" and "EQUAL" in expected and source_line.lstrip().startswith("block"):
        return "a block definition reads `block name(params) = expression`"
    if token.type == "_NL" and "COLON" in expected:
        return "a network header ends with ':', e.g. `network lenet5:`"
    if token.type == "_NL" and "EQUAL" in expected:
        return "a block definition reads `block name(params) = expression`"
    if token.type in ("RPAR", "RSQB"):
        return "check that brackets are balanced"
    if token.type == "NAME" and "_NL" in expected:
        return "separate layers with '+', e.g. `conv3 64 + relu`"
    return None
