"""Small immutable value classes that are cheap to define: `@record`.

`@record` gives a class what `@dataclass(frozen=True)` gives netdsl's AST nodes and
traced expressions: an `__init__` over the annotated fields in order (a base class's
first; a class attribute is a field's default), immutability, a repr of the fields,
and, unless `eq=False`, equality and hashing by value.

It exists for start-up time. `dataclasses` compiles four to six methods from source
for every class it decorates; for the 47 classes of ast.py and symbolic.py that took
about 40 ms on every run (a fifth of `netdsl check` on ResNet-50, more than parsing
and elaborating it). Here the methods are compiled once per distinct tuple of field
names and shared by every class with those fields, and repr and immutability are
plain functions.
"""

from __future__ import annotations

import builtins
import types

_MISSING = object()
_CODE: dict[tuple, types.CodeType] = {}  # (method, field names) -> compiled code
_GLOBALS = {"__builtins__": builtins, "_set": object.__setattr__}


class FrozenError(AttributeError):
    """Assignment to a field of a record (they are immutable)."""


class _Field:
    __slots__ = ("default", "repr")

    def __init__(self, default, repr: bool) -> None:
        self.default, self.repr = default, repr


def field(default=_MISSING, repr: bool = True):  # noqa: A002 - as in dataclasses.field
    """A field's options: a default, and whether the repr shows it."""
    return _Field(default, repr)


def _code(kind: str, names: tuple[str, ...]) -> types.CodeType:
    key = (kind, names)
    code = _CODE.get(key)
    if code is None:
        if kind == "init":
            body = "".join(f"    _set(self, {n!r}, {n})\n" for n in names) or "    pass\n"
            source = f"def __init__(self, {', '.join(names)}):\n{body}"
        elif kind == "eq":
            mine = "".join(f"self.{n}, " for n in names)
            theirs = "".join(f"other.{n}, " for n in names)
            source = (
                "def __eq__(self, other):\n"
                "    if other.__class__ is not self.__class__:\n"
                "        return NotImplemented\n"
                f"    return ({mine}) == ({theirs})\n"
            )
        else:
            source = (
                f"def __hash__(self):\n    return hash(({''.join(f'self.{n}, ' for n in names)}))\n"
            )
        namespace: dict = {}
        exec(compile(source, f"<record {kind}>", "exec"), _GLOBALS, namespace)  # noqa: S102
        code = _CODE[key] = next(iter(namespace.values())).__code__
    return code


def _method(cls, kind: str, names: tuple[str, ...], defaults=None):
    function = types.FunctionType(_code(kind, names), _GLOBALS, f"__{kind}__", defaults)
    function.__qualname__ = f"{cls.__qualname__}.__{kind}__"
    function.__module__ = cls.__module__
    return function


def _repr(self) -> str:
    shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__record_repr__)
    return f"{type(self).__qualname__}({shown})"


def _frozen_setattr(self, name, value):
    raise FrozenError(f"cannot assign to field '{name}' of a {type(self).__name__}")


def _frozen_delattr(self, name):
    raise FrozenError(f"cannot delete field '{name}' of a {type(self).__name__}")


def record(cls=None, *, eq: bool = True):
    """Make `cls` an immutable record (see the module docstring)."""
    if cls is None:
        return lambda c: record(c, eq=eq)
    names = list(getattr(cls, "__record_fields__", ()))
    defaults = dict(getattr(cls, "__record_defaults__", {}))
    shown = list(getattr(cls, "__record_repr__", ()))
    for name in cls.__dict__.get("__annotations__", {}):
        value = cls.__dict__.get(name, _MISSING)
        show = True
        if isinstance(value, _Field):
            value, show = value.default, value.repr
            if value is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, value)
        if name in names:
            raise TypeError(f"{cls.__name__}: field '{name}' is already defined")
        names.append(name)
        if show:
            shown.append(name)
        if value is not _MISSING:
            defaults[name] = value
        elif defaults:
            raise TypeError(
                f"{cls.__name__}: field '{name}' without a default follows one with a default"
            )
    fields = tuple(names)
    cls.__record_fields__ = fields
    cls.__record_defaults__ = defaults
    cls.__record_repr__ = tuple(shown)
    cls.__init__ = _method(
        cls, "init", fields, tuple(defaults[n] for n in fields if n in defaults) or None
    )
    cls.__repr__ = _repr
    cls.__setattr__ = _frozen_setattr
    cls.__delattr__ = _frozen_delattr
    if eq:
        cls.__eq__ = _method(cls, "eq", fields)
        cls.__hash__ = _method(cls, "hash", fields)
    return cls
