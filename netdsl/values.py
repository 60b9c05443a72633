"""Value kinds shared by the elaborator and the layer catalogue."""

from __future__ import annotations


class Fragment:
    """A network expression that has been evaluated but not yet applied to a tensor."""

    span = None

    def constified(self) -> Fragment:
        """The same fragment with every traced number made constant."""
        return self


def kind_of(value) -> str:
    """A user-facing word for a value's kind, for error messages."""
    from .symbolic import Num, Tup

    if value is None:
        return "none"
    if isinstance(value, Num):
        if isinstance(value.value, bool):
            return "a boolean"
        return "an integer" if isinstance(value.value, int) else "a number"
    if isinstance(value, Tup):
        return "a tuple"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Fragment):
        return getattr(value, "kind", "a layer")  # a named tensor says "a tensor"
    return type(value).__name__
