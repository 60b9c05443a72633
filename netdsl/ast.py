"""The abstract syntax tree: small immutable records, each keeping its span.

Class names match the grammar's rule aliases, so the parser's transformer
has one method per node kind.
"""

from __future__ import annotations

from .errors import Span
from .records import field, record


@record(eq=False)
class Node:
    span: Span = field(repr=False)


# ---- expressions ---------------------------------------------------------


class Expr(Node):
    pass


@record(eq=False)
class Number(Expr):
    value: int | float


@record(eq=False)
class Shape(Expr):
    dims: tuple[int, ...]


@record(eq=False)
class String(Expr):
    value: str


@record(eq=False)
class Bool(Expr):
    value: bool


@record(eq=False)
class Identity(Expr):
    """`id`: the input passes through unchanged."""


@record(eq=False)
class BlockInput(Expr):
    """`in`: the input tensor of the enclosing block (or network)."""


@record(eq=False)
class Name(Expr):
    id: str


@record(eq=False)
class Attr(Expr):
    obj: Expr
    attr: str


@record(eq=False)
class Call(Expr):
    """`conv 96 k=11` (space form) or `conv_bn(64, k=7)` (parenthesised form)."""

    name: str
    args: tuple[Expr, ...]
    kwargs: tuple[tuple[str, Expr, Span], ...]
    parenthesised: bool


@record(eq=False)
class Tuple(Expr):
    items: tuple[Expr, ...]


@record(eq=False)
class Group(Expr):
    """`[ ... ]`: brackets around a network expression, the operand of repeat."""

    body: Expr


@record(eq=False)
class Comprehension(Expr):
    """`[body for i in range(n)]`: repeat with the iteration's index in scope; or
    `[body for (t, c) in table]`: once per row of a table, its items named (`names`)."""

    body: Expr
    var: str
    iterable: Expr
    names: tuple[str, ...] = ()  # the unpacked names of `for (t, c) in table` (var is "")


@record(eq=False)
class Index(Expr):
    """`t[i]`: an item of a tuple."""

    base: Expr
    index: Expr


@record(eq=False)
class BinOp(Expr):
    op: str
    left: Expr
    right: Expr
    op_span: Span = field(repr=False)


@record(eq=False)
class Neg(Expr):
    operand: Expr


@record(eq=False)
class Compare(Expr):
    op: str
    left: Expr
    right: Expr


@record(eq=False)
class BoolOp(Expr):
    op: str  # "and" | "or"
    left: Expr
    right: Expr


@record(eq=False)
class Not(Expr):
    operand: Expr


@record(eq=False)
class IfExpr(Expr):
    cond: Expr
    then: Expr
    orelse: Expr


@record(eq=False)
class Label(Expr):
    """`expr as name`: names the module(s) the expression creates."""

    body: Expr
    name: str


@record(eq=False)
class Annotation(Node):
    name: str
    args: tuple[Expr, ...]


@record(eq=False)
class Annotated(Expr):
    """`expr @gpu(1)`: a placement (or other) annotation."""

    body: Expr
    annotation: Annotation


# ---- statements ------------------------------------------------------------


class Stmt(Node):
    pass


@record(eq=False)
class InputStmt(Stmt):
    name: str | None
    shape: Expr
    vocab: Expr | None = None  # `input 1024 tokens of 50257`: token ids below 50257


@record(eq=False)
class OutputStmt(Stmt):
    name: str | None
    annotations: tuple[Annotation, ...]
    expr: Expr | None


@record(eq=False)
class LetStmt(Stmt):
    name: str
    expr: Expr


@record(eq=False)
class ExprStmt(Stmt):
    expr: Expr


@record(eq=False)
class IfStmt(Stmt):
    cond: Expr
    body: Stmt


# ---- top level -----------------------------------------------------------


@record(eq=False)
class Param(Node):
    name: str
    default: Expr | None


@record(eq=False)
class BlockDef(Node):
    name: str
    params: tuple[Param, ...]
    body: Expr | tuple[Stmt, ...]
    module: str = ""  # path of the file that defines it
    name_span: Span | None = field(default=None, repr=False)


@record(eq=False)
class FunctionDef(Node):
    """`def name(params) = expression`: a numeric function."""

    name: str
    params: tuple[Param, ...]
    body: Expr
    name_span: Span | None = field(default=None, repr=False)


@record(eq=False)
class NetworkDef(Node):
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    name_span: Span | None = field(default=None, repr=False)


@record(eq=False)
class Use(Node):
    target: str
    is_path: bool


@record(eq=False)
class Defaults(Node):
    layer: str
    kwargs: tuple[tuple[str, Expr, Span], ...]


@record(eq=False)
class TrainEntry(Node):
    key: str
    args: tuple[Expr, ...]
    kwargs: tuple[tuple[str, Expr, Span], ...]


@record(eq=False)
class TrainDef(Node):
    entries: tuple[TrainEntry, ...]


@record(eq=False)
class Module(Node):
    path: str
    uses: tuple[Use, ...]
    defaults: tuple[Defaults, ...]
    blocks: tuple[BlockDef, ...]
    networks: tuple[NetworkDef, ...]
    train: TrainDef | None
    functions: tuple[FunctionDef, ...] = ()
