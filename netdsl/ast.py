"""The abstract syntax tree: small frozen dataclasses, each keeping its span.

Class names match the grammar's rule aliases, so the parser's transformer
has one method per node kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import Span


@dataclass(frozen=True, eq=False)
class Node:
    span: Span = field(repr=False)


# ---- expressions ---------------------------------------------------------


class Expr(Node):
    pass


@dataclass(frozen=True, eq=False)
class Number(Expr):
    value: int | float


@dataclass(frozen=True, eq=False)
class Shape(Expr):
    dims: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class String(Expr):
    value: str


@dataclass(frozen=True, eq=False)
class Bool(Expr):
    value: bool


@dataclass(frozen=True, eq=False)
class Identity(Expr):
    """`id`: the input passes through unchanged."""


@dataclass(frozen=True, eq=False)
class BlockInput(Expr):
    """`in`: the input tensor of the enclosing block (or network)."""


@dataclass(frozen=True, eq=False)
class Name(Expr):
    id: str


@dataclass(frozen=True, eq=False)
class Attr(Expr):
    obj: Expr
    attr: str


@dataclass(frozen=True, eq=False)
class Call(Expr):
    """`conv 96 k=11` (space form) or `conv_bn(64, k=7)` (parenthesised form)."""

    name: str
    args: tuple[Expr, ...]
    kwargs: tuple[tuple[str, Expr, Span], ...]
    parenthesised: bool


@dataclass(frozen=True, eq=False)
class Tuple(Expr):
    items: tuple[Expr, ...]


@dataclass(frozen=True, eq=False)
class Group(Expr):
    """`[ ... ]`: brackets around a network expression, the operand of repeat."""

    body: Expr


@dataclass(frozen=True, eq=False)
class Comprehension(Expr):
    """`[body for i in range(n)]`: repeat with the iteration's index in scope."""

    body: Expr
    var: str
    iterable: Expr


@dataclass(frozen=True, eq=False)
class BinOp(Expr):
    op: str
    left: Expr
    right: Expr
    op_span: Span = field(repr=False)


@dataclass(frozen=True, eq=False)
class Neg(Expr):
    operand: Expr


@dataclass(frozen=True, eq=False)
class Compare(Expr):
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, eq=False)
class BoolOp(Expr):
    op: str  # "and" | "or"
    left: Expr
    right: Expr


@dataclass(frozen=True, eq=False)
class Not(Expr):
    operand: Expr


@dataclass(frozen=True, eq=False)
class IfExpr(Expr):
    cond: Expr
    then: Expr
    orelse: Expr


@dataclass(frozen=True, eq=False)
class Label(Expr):
    """`expr as name`: names the module(s) the expression creates."""

    body: Expr
    name: str


@dataclass(frozen=True, eq=False)
class Annotation(Node):
    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True, eq=False)
class Annotated(Expr):
    """`expr @gpu(1)`: a placement (or other) annotation."""

    body: Expr
    annotation: Annotation


# ---- statements ------------------------------------------------------------


class Stmt(Node):
    pass


@dataclass(frozen=True, eq=False)
class InputStmt(Stmt):
    name: str | None
    shape: Expr


@dataclass(frozen=True, eq=False)
class OutputStmt(Stmt):
    name: str | None
    annotations: tuple[Annotation, ...]
    expr: Expr | None


@dataclass(frozen=True, eq=False)
class LetStmt(Stmt):
    name: str
    expr: Expr


@dataclass(frozen=True, eq=False)
class ExprStmt(Stmt):
    expr: Expr


@dataclass(frozen=True, eq=False)
class IfStmt(Stmt):
    cond: Expr
    body: Stmt


# ---- top level -----------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Param(Node):
    name: str
    default: Expr | None


@dataclass(frozen=True, eq=False)
class BlockDef(Node):
    name: str
    params: tuple[Param, ...]
    body: Expr | tuple[Stmt, ...]
    module: str = ""  # path of the file that defines it
    name_span: Span | None = field(default=None, repr=False)


@dataclass(frozen=True, eq=False)
class NetworkDef(Node):
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    name_span: Span | None = field(default=None, repr=False)


@dataclass(frozen=True, eq=False)
class Use(Node):
    target: str
    is_path: bool


@dataclass(frozen=True, eq=False)
class Defaults(Node):
    layer: str
    kwargs: tuple[tuple[str, Expr, Span], ...]


@dataclass(frozen=True, eq=False)
class TrainEntry(Node):
    key: str
    args: tuple[Expr, ...]
    kwargs: tuple[tuple[str, Expr, Span], ...]


@dataclass(frozen=True, eq=False)
class TrainDef(Node):
    entries: tuple[TrainEntry, ...]


@dataclass(frozen=True, eq=False)
class Module(Node):
    path: str
    uses: tuple[Use, ...]
    defaults: tuple[Defaults, ...]
    blocks: tuple[BlockDef, ...]
    networks: tuple[NetworkDef, ...]
    train: TrainDef | None
