"""Located, user-facing errors.

Every problem a user can cause is a `NetdslError` carrying the `Span` of the
DSL text responsible. `format()` prints it the way compilers do:

    resnet.net:7:5: add: branch shapes differ: 256x56x56 vs 64x56x56
        add(conv_bn(c*4, k=1), id) + relu
        ^~~
    hint: project the shortcut to 256 channels, e.g. conv1 256
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A region of one source file; lines and columns count from 1."""

    file: str
    line: int
    column: int
    end_line: int | None = None
    end_column: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class SourceRegistry:
    """Texts of every file read in this process, so errors can quote them."""

    _texts: dict[str, str] = {}

    @classmethod
    def add(cls, file: str, text: str) -> None:
        cls._texts[file] = text

    @classmethod
    def text(cls, file: str) -> str | None:
        return cls._texts.get(file)

    @classmethod
    def line(cls, file: str, line: int) -> str | None:
        text = cls._texts.get(file)
        if text is None:
            return None
        lines = source_lines(text)
        return lines[line - 1] if 0 < line <= len(lines) else None


class SourceSnapshot:
    """The texts of the files one network was elaborated from, as they were then.

    The registry holds the latest text read under each path in this process, so a file
    compiled later under the same path replaces it. What a network quotes after elaboration
    (the docstrings of generated code) comes from its own snapshot instead.
    """

    __slots__ = ("_texts", "_lines")

    def __init__(self, texts: dict[str, str] | None = None) -> None:
        self._texts = dict(texts or {})
        self._lines: dict[str, list[str]] = {}

    @classmethod
    def of(cls, files) -> SourceSnapshot:
        """The registry's current texts of `files` (those it has)."""
        return cls({f: t for f in files if (t := SourceRegistry.text(f)) is not None})

    def line(self, file: str, line: int) -> str | None:
        lines = self._lines.get(file)
        if lines is None:
            text = self._texts.get(file)
            if text is None:
                return None
            lines = self._lines[file] = source_lines(text)
        return lines[line - 1] if 0 < line <= len(lines) else None

    def text(self, span: Span) -> str:
        """The whole lines a span covers, joined with newlines (neither stripped nor dedented)."""
        end = span.end_line or span.line
        if end > span.line and span.end_column == 1:
            end -= 1  # the span ends at the start of the next line (after the newline)
        lines = (self.line(span.file, n) for n in range(span.line, end + 1))
        return "\n".join(line for line in lines if line is not None)


def source_lines(text: str) -> list[str]:
    """The file's lines as the parser numbers them: only "\\n" ends a line (str.splitlines
    would also split at \\u2028, form feeds and lone "\\r", and point carets at the wrong line)."""
    return [line.removesuffix("\r") for line in text.split("\n")]


@dataclass
class Note:
    message: str
    span: Span | None = None
    times: int = 1  # the same note folded this many times (a recursive block's calls, say)

    @property
    def text(self) -> str:
        return f"{self.message} ({self.times} times)" if self.times > 1 else self.message


class NetdslError(Exception):
    """An error in the user's netdsl program (exit status 1)."""

    def __init__(
        self,
        message: str,
        span: Span | None = None,
        hint: str | None = None,
        notes: list[Note] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.span = span
        self.hint = hint
        self.notes: list[Note] = list(notes or [])

    def with_note(self, message: str, span: Span | None = None) -> NetdslError:
        self.notes.append(Note(message, span))
        return self

    def format(self) -> str:
        out: list[str] = []
        where = f"{self.span}: " if self.span else "netdsl: "
        out.append(f"{where}{self.message}")
        if self.span:
            out.extend(_excerpt(self.span))
        if self.hint:
            out.append(f"hint: {self.hint}")
        for note in self.notes:
            prefix = f"{note.span}: " if note.span else ""
            out.append(f"{prefix}note: {note.text}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.format()


def _excerpt(span: Span) -> list[str]:
    text = SourceRegistry.line(span.file, span.line)
    if text is None:
        return []
    text = text.expandtabs(4) if "\t" not in text[: span.column] else text
    width = 1
    if span.end_line == span.line and span.end_column and span.end_column > span.column:
        width = span.end_column - span.column
    caret = " " * (span.column - 1) + "^" + "~" * (width - 1)
    return [f"    {text.rstrip()}", f"    {caret}"]


class UsageError(NetdslError):
    """A malformed command line (exit status 2), e.g. `--param classes` without a value."""


def did_you_mean(name: str, candidates) -> str | None:
    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None
