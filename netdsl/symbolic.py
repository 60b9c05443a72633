"""Traced numbers: a concrete value plus the expression that produced it.

Elaboration is concrete (every shape is known), but each number also remembers
how it was computed from the enclosing block's parameters, e.g. a bottleneck's
last conv has `out_channels = Num(256, c * 4)`. Emitters print the expression,
so generated classes are parameterised the way the DSL block is.
"""

from __future__ import annotations

import math
import operator
from functools import cached_property

from .records import record

# Python operator precedence, loosest first.
_PREC = {
    "if": 1,
    "or": 2,
    "and": 3,
    "not": 4,
    "cmp": 5,
    "+": 10,
    "-": 10,
    "*": 11,
    "/": 11,
    "//": 11,
    "%": 11,
    "neg": 12,
    "**": 13,
    "atom": 15,
}

_BINARY = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
}
_COMPARE = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
FUNCTIONS = {
    "min": min,
    "max": max,
    "abs": abs,
    "int": int,
    "round": round,
    "ceil": math.ceil,
    "floor": math.floor,
    "pow": pow,
    "log": math.log,
    "sqrt": math.sqrt,
    "exp": math.exp,
    "len": len,
}
# index(B) and count(B): the elaborator answers them from the network being built
INSTANCE_FUNCTIONS = frozenset({"index", "count"})
# printed as math.NAME(...): the generated file then imports math
MATH_FUNCTIONS = frozenset({"log", "sqrt", "exp"})


class Expr:
    """A side-effect-free Python expression over named symbols.

    Subclasses implement `_render`; `render()` caches the text, since emitters
    compare classes by their rendered expressions many times.
    """

    __slots__ = ()
    prec = _PREC["atom"]

    def render(self) -> str:
        try:
            return self.__dict__["_text"]
        except KeyError:
            text = self.__dict__["_text"] = self._render()
            return text

    def _render(self) -> str:
        raise NotImplementedError

    def subst(self, mapping: dict[str, Expr]) -> Expr:
        return self

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset()

    def _wrap(self, child: Expr, min_prec: int) -> str:
        text = child.render()
        return f"({text})" if child.prec < min_prec else text

    def __str__(self) -> str:
        return self.render()


@record
class Const(Expr):
    value: object

    @property
    def prec(self) -> int:  # type: ignore[override]
        if (
            isinstance(self.value, (int, float))
            and not isinstance(self.value, bool)
            and self.value < 0
        ):
            return _PREC["neg"]
        return _PREC["atom"]

    def _render(self) -> str:
        return repr(self.value)


@record
class Sym(Expr):
    name: str

    def _render(self) -> str:
        return self.name

    def subst(self, mapping):
        return mapping.get(self.name, self)

    @property
    def symbols(self):
        return frozenset((self.name,))


@record
class Local(Expr):
    """A value bound by `name = expr` in the same scope; prints as its name."""

    name: str
    value: Expr

    def _render(self) -> str:
        return self.name

    def subst(self, mapping):
        return self.value.subst(mapping)

    @property
    def symbols(self):
        return self.value.symbols


@record
class Bin(Expr):
    op: str
    left: Expr
    right: Expr

    @property
    def prec(self) -> int:  # type: ignore[override]
        return _PREC[self.op]

    def _render(self) -> str:
        if self.op == "**":  # right-associative, and its right operand may be -x
            left = self._wrap(self.left, self.prec + 1)
            right = self._wrap(self.right, _PREC["neg"])
            # as ruff format writes it: `m**2` between simple operands (names, numbers)
            space = "" if _simple(self.left) and _simple(self.right) else " "
            return f"{left}{space}**{space}{right}"
        # left-associative: the right operand needs parentheses at equal precedence
        return (
            f"{self._wrap(self.left, self.prec)} {self.op} {self._wrap(self.right, self.prec + 1)}"
        )

    def subst(self, mapping):
        return binary(self.op, self.left.subst(mapping), self.right.subst(mapping))

    @cached_property
    def symbols(self):
        return self.left.symbols | self.right.symbols


@record
class Neg(Expr):
    operand: Expr
    prec = _PREC["neg"]

    def _render(self) -> str:
        return f"-{self._wrap(self.operand, self.prec)}"

    def subst(self, mapping):
        return negate(self.operand.subst(mapping))

    @property
    def symbols(self):
        return self.operand.symbols


@record
class Cmp(Expr):
    op: str
    left: Expr
    right: Expr
    prec = _PREC["cmp"]

    def _render(self) -> str:
        return f"{self._wrap(self.left, self.prec + 1)} {self.op} {self._wrap(self.right, self.prec + 1)}"

    def subst(self, mapping):
        return compare(self.op, self.left.subst(mapping), self.right.subst(mapping))

    @cached_property
    def symbols(self):
        return self.left.symbols | self.right.symbols


@record
class BoolOp(Expr):
    op: str  # "and" | "or"
    left: Expr
    right: Expr

    @property
    def prec(self) -> int:  # type: ignore[override]
        return _PREC[self.op]

    def _render(self) -> str:
        return (
            f"{self._wrap(self.left, self.prec)} {self.op} {self._wrap(self.right, self.prec + 1)}"
        )

    def subst(self, mapping):
        return BoolOp(self.op, self.left.subst(mapping), self.right.subst(mapping))

    @cached_property
    def symbols(self):
        return self.left.symbols | self.right.symbols


@record
class Not(Expr):
    operand: Expr
    prec = _PREC["not"]

    def _render(self) -> str:
        return f"not {self._wrap(self.operand, self.prec)}"

    def subst(self, mapping):
        return Not(self.operand.subst(mapping))

    @property
    def symbols(self):
        return self.operand.symbols


@record
class IfElse(Expr):
    cond: Expr
    then: Expr
    orelse: Expr
    prec = _PREC["if"]

    def _render(self) -> str:
        return (
            f"{self._wrap(self.then, self.prec + 1)} if {self._wrap(self.cond, self.prec + 1)}"
            f" else {self._wrap(self.orelse, self.prec)}"
        )

    def subst(self, mapping):
        return ifelse(
            self.cond.subst(mapping), self.then.subst(mapping), self.orelse.subst(mapping)
        )

    @cached_property
    def symbols(self):
        return self.cond.symbols | self.then.symbols | self.orelse.symbols


@record
class Func(Expr):
    """min, max, abs, int, round, ceil, floor, pow, len: printed with builtins only;
    log, sqrt, exp: printed as math.log(...) and so on."""

    name: str
    args: tuple[Expr, ...]

    def _render(self) -> str:
        inner = ", ".join(a.render() for a in self.args)
        if self.name in MATH_FUNCTIONS:
            return f"math.{self.name}({inner})"
        if self.name == "ceil":  # ceil without importing math
            return f"-int(-{self._wrap(self.args[0], _PREC['neg'])} // 1)"
        if self.name == "floor":
            return f"int({inner} // 1)"
        return f"{self.name}({inner})"

    def subst(self, mapping):
        return Func(self.name, tuple(a.subst(mapping) for a in self.args))

    @cached_property
    def symbols(self):
        return frozenset().union(*(a.symbols for a in self.args))


@record
class UserCall(Expr):
    """A call of a function the .net file defines (`def make_divisible(v, d=8) = ...`);
    the generated file defines the same function."""

    name: str
    args: tuple[Expr, ...]

    def _render(self) -> str:
        return f"{self.name}({', '.join(a.render() for a in self.args)})"

    def subst(self, mapping):
        return UserCall(self.name, tuple(a.subst(mapping) for a in self.args))

    @cached_property
    def symbols(self):
        return frozenset().union(*(a.symbols for a in self.args))


@record
class Index(Expr):
    """Element `i` of a tuple-valued parameter, e.g. `k[0]`, or `table[i]` in a loop."""

    base: Expr
    index: int | Expr

    def _render(self) -> str:
        index = self.index.render() if isinstance(self.index, Expr) else self.index
        return f"{self._wrap(self.base, _PREC['atom'])}[{index}]"

    def subst(self, mapping):
        base = self.base.subst(mapping)
        index = self.index.subst(mapping) if isinstance(self.index, Expr) else self.index
        if isinstance(index, Const):
            index = index.value
        if isinstance(index, int):
            if isinstance(base, TupleExpr):
                return base.items[index]
            if isinstance(base, Const) and isinstance(base.value, tuple):
                return Const(base.value[index])
        return Index(base, index)

    @property
    def symbols(self):
        if isinstance(self.index, Expr):
            return self.base.symbols | self.index.symbols
        return self.base.symbols


@record
class TupleExpr(Expr):
    items: tuple[Expr, ...]

    def _render(self) -> str:
        inner = ", ".join(i.render() for i in self.items)
        return f"({inner},)" if len(self.items) == 1 else f"({inner})"

    def subst(self, mapping):
        return TupleExpr(tuple(i.subst(mapping) for i in self.items))

    @cached_property
    def symbols(self):
        return frozenset().union(*(i.symbols for i in self.items))


def _simple(e: Expr) -> bool:
    """A name or a number, maybe negated: what ruff format hugs `**` with."""
    if isinstance(e, Neg):
        e = e.operand
    if isinstance(e, Const):
        return isinstance(e.value, (int, float)) and not isinstance(e.value, bool)
    return isinstance(e, (Sym, Local))


# ---- smart constructors (fold constants, drop identities) -----------------


def binary(op: str, left: Expr, right: Expr) -> Expr:
    if isinstance(left, Const) and isinstance(right, Const):
        try:
            value = _BINARY[op](left.value, right.value)
            if not isinstance(value, complex):
                return Const(value)
        except (ZeroDivisionError, OverflowError):
            pass
    if isinstance(right, Const) and not isinstance(right.value, bool):
        if (op in "+-" and right.value == 0) or (
            op in ("*", "//") and right.value == 1 and _is_int(right.value)
        ):
            return left
    if isinstance(left, Const) and not isinstance(left.value, bool):
        if op == "+" and left.value == 0:
            return right
        if op == "*" and left.value == 1 and _is_int(left.value):
            return right
    return Bin(op, left, right)


def ifelse(cond: Expr, then: Expr, orelse: Expr) -> Expr:
    if isinstance(cond, Const):
        return then if cond.value else orelse
    if then == orelse:
        return then
    return IfElse(cond, then, orelse)


def negate(e: Expr) -> Expr:
    if isinstance(e, Const):
        return Const(-e.value)
    if isinstance(e, Neg):
        return e.operand
    return Neg(e)


def compare(op: str, left: Expr, right: Expr) -> Expr:
    if isinstance(left, Const) and isinstance(right, Const):
        return Const(_COMPARE[op](left.value, right.value))
    return Cmp(op, left, right)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# ---- traced values -------------------------------------------------------


_CONSTS: dict = {}  # shared Const nodes of ints and bools (they are made very often)


def const(value) -> Const:
    """`Const(value)`; one shared instance per int or bool value (Consts are immutable)."""
    kind = type(value)
    if kind is not int and kind is not bool:
        return Const(value)
    key = (kind, value)  # True == 1, but they print differently
    found = _CONSTS.get(key)
    if found is None:
        found = Const(value)
        if len(_CONSTS) < 4096:
            _CONSTS[key] = found
    return found


class Num:
    """A number (or bool) with the expression that computed it."""

    __slots__ = ("value", "expr")

    def __init__(self, value, expr: Expr | None = None) -> None:
        self.value = value
        self.expr = const(value) if expr is None else expr

    @property
    def is_const(self) -> bool:
        return isinstance(self.expr, Const)

    def const(self) -> Num:
        return Num(self.value)

    def _binary(self, op: str, other, reverse=False) -> Num:
        other = other if isinstance(other, Num) else Num(other)
        a, b = (other, self) if reverse else (self, other)
        value = _BINARY[op](a.value, b.value)
        if type(a.expr) is Const and type(b.expr) is Const:  # what binary() would fold to
            return Num(value)
        return Num(value, binary(op, a.expr, b.expr))

    def __add__(self, o):
        return self._binary("+", o)

    def __radd__(self, o):
        return self._binary("+", o, True)

    def __sub__(self, o):
        return self._binary("-", o)

    def __rsub__(self, o):
        return self._binary("-", o, True)

    def __mul__(self, o):
        return self._binary("*", o)

    def __rmul__(self, o):
        return self._binary("*", o, True)

    def __floordiv__(self, o):
        return self._binary("//", o)

    def __rfloordiv__(self, o):
        return self._binary("//", o, True)

    def __truediv__(self, o):
        return self._binary("/", o)

    def __rtruediv__(self, o):
        return self._binary("/", o, True)

    def __mod__(self, o):
        return self._binary("%", o)

    def __pow__(self, o):
        return self._binary("**", o)

    def __neg__(self):
        return Num(-self.value, negate(self.expr))

    def __int__(self) -> int:
        return int(self.value)

    def __index__(self) -> int:
        return int(self.value)

    def __repr__(self) -> str:
        return f"Num({self.value!r}, {self.expr.render()})"


def num_compare(op: str, a: Num, b: Num) -> Num:
    return Num(_COMPARE[op](a.value, b.value), compare(op, a.expr, b.expr))


def num_func(name: str, args: list[Num]) -> Num:
    value = FUNCTIONS[name](*(a.value for a in args))
    if all(a.is_const for a in args):
        return Num(value)
    return Num(value, func(name, tuple(a.expr for a in args)))


def func(name: str, args: tuple[Expr, ...]) -> Expr:
    """`name(args)` as an expression. `log(x, b)` prints as `math.log(x) / math.log(b)`,
    which is how Python computes it (and what linters do not rewrite as log2/log10)."""
    if name == "log" and len(args) == 2:
        return Bin("/", Func("log", args[:1]), Func("log", args[1:]))
    return Func(name, args)


class Tup:
    """A tuple of traced numbers, e.g. a kernel size `(1, 7)` or a shape."""

    __slots__ = ("items", "_expr")

    def __init__(self, items, expr: Expr | None = None) -> None:
        self.items = tuple(items)
        self._expr = expr

    @property
    def expr(self) -> Expr:
        if self._expr is not None:
            return self._expr
        if all(i.is_const for i in self.items):
            return Const(tuple(i.value for i in self.items))
        return TupleExpr(tuple(i.expr for i in self.items))

    @property
    def value(self) -> tuple:
        return tuple(i.value for i in self.items)

    @property
    def is_const(self) -> bool:
        return all(i.is_const for i in self.items) and self._expr is None

    def const(self) -> Tup:
        return Tup(i.const() for i in self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"Tup({self.value!r}, {self.expr.render()})"


class TokenIds(tuple):
    """A sequence of N token ids, each below `vocab` (`input 1024 tokens of 50257`): integer
    input that only an `embedding` reads."""

    vocab: int
    traced: Num | None  # the vocabulary as written (`of vocab`: a network parameter), if known

    def __new__(cls, dims, vocab: int, traced: Num | None = None):
        self = super().__new__(cls, dims)
        self.vocab, self.traced = vocab, traced
        return self

    def __reduce__(self):
        return (TokenIds, (tuple(self), self.vocab, self.traced))


def channel_axis(shape) -> int:
    """The dimension a block sees as its input's channels, kept symbolic (`in_channels`)
    across blocks: C of an image, F of a flat tensor, D of a token sequence. The others
    (H, W; the N of a sequence) are fixed sizes."""
    return 1 if len(shape) == 2 and not isinstance(shape, TokenIds) else 0


def channels_of(shape):
    return shape[channel_axis(shape)]


def with_channels(shape, channels) -> tuple:
    """`shape` with its channel dimension replaced (a TokenIds stays one)."""
    axis = channel_axis(shape)
    dims = (*shape[:axis], channels, *shape[axis + 1 :])
    return TokenIds(dims, shape.vocab) if isinstance(shape, TokenIds) else dims
