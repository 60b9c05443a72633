"""Syntax errors that are habits from elsewhere, explained in netdsl's words.

The parser reports what token came and which it expected. For the slips people
really make — a Python or PyTorch spelling, a forgotten bracket or comma — that
listing does not say what to write, so this module recognises them from the
tokens around the error and returns a message with the corrected spelling,
built from the user's own text. It only reads; the parser decides what to raise.
"""

from __future__ import annotations

import re

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from .errors import NetdslError, Span
from .habits import KEYWORDS
from .layers import MERGES

_OPEN = {"LPAR", "LSQB", "CALL_NAME", "SUBSCRIPT"}
_CLOSE = {"RPAR", "RSQB"}
# tokens that end an operand, and tokens that start one
_ENDS = {"NAME", "NUMBER", "SHAPE", "STRING", "RPAR", "RSQB", "ID", "TRUE", "FALSE", "IN"}
_STARTS = {"NAME", "CALL_NAME", "NUMBER", "SHAPE", "STRING", "LPAR", "LSQB", "ID", "TRUE", "FALSE"}


class _Context:
    """The tokens of the file (as far as they lex) and where the error is among them."""

    def __init__(self, e: UnexpectedInput, tokens: list[Token], text: str, path: str) -> None:
        self.e, self.tokens, self.text, self.path = e, tokens, text, path
        if isinstance(e, UnexpectedToken) and e.token.start_pos is not None:
            self.at = next(
                (i for i, t in enumerate(tokens) if t.start_pos == e.token.start_pos), len(tokens)
            )
        else:
            pos = getattr(e, "pos_in_stream", None)
            if pos is None:  # the end of the file
                self.at = len(tokens)
            else:
                self.at = sum(1 for t in tokens if t.start_pos is not None and t.start_pos < pos)
        self.token = tokens[self.at] if self.at < len(tokens) else None
        self.previous = tokens[self.at - 1] if self.at > 0 else None

    def open_at(self, index: int) -> list[Token]:
        """The brackets still open before tokens[index], outermost first."""
        stack: list[Token] = []
        for tok in self.tokens[:index]:
            if tok.type in _OPEN:
                stack.append(tok)
            elif tok.type in _CLOSE and stack:
                stack.pop()
        return stack

    def opener_of(self, index: int) -> Token | None:
        """The bracket that the closing tokens[index] closes."""
        stack = self.open_at(index)
        return stack[-1] if stack else None

    def span(self, start: int, end: int) -> Span:
        """The span of text[start:end] (one line: the caret underlines it)."""
        line = self.text.count("\n", 0, start) + 1
        column = start - (self.text.rfind("\n", 0, start) + 1) + 1
        if "\n" in self.text[start:end]:
            return Span(self.path, line, column)
        return Span(self.path, line, column, line, column + max(end - start, 1))

    def piece(self, start: int, end: int) -> str:
        """The source between two offsets as one line (comments and line breaks dropped)."""
        lines = [re.sub(r"#.*", "", line) for line in self.text[start:end].split("\n")]
        joined = " ".join(" ".join(lines).replace("\\ ", " ").split())
        return re.sub(r"([(\[]) | ([)\]])", lambda m: m[1] or m[2], joined)


def explain(e: UnexpectedInput, tokens: list[Token], text: str, path: str) -> NetdslError | None:
    """A message for a known slip at this syntax error, or None to keep the parser's own."""
    c = _Context(e, tokens, text, path)
    if isinstance(e, UnexpectedCharacters):
        return _quoted(c) or _times_sign(c)
    if not isinstance(e, UnexpectedToken):
        return None
    return (
        _unclosed(c)
        or _python_conditional(c)
        or _colon_definition(c)
        or _x_repeat(c)
        or (_missing_comma(c))
    )


def _quoted(c: _Context) -> NetdslError | None:
    """`act='relu'`: a Python string where netdsl takes a bare name."""
    pos = c.e.pos_in_stream
    if c.text[pos : pos + 1] != "'":
        return None
    line_end = c.text.find("\n", pos)
    line_end = len(c.text) if line_end < 0 else line_end
    close = c.text.find("'", pos + 1, line_end)
    if close < 0:
        return None
    word = c.text[pos + 1 : close]
    span = c.span(pos, close + 1)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", word):
        return NetdslError(f"syntax error: netdsl has no '...' strings; write \"{word}\"", span)
    before = c.text[c.text.rfind("\n", 0, pos) + 1 : pos]
    keyword = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*$", before)
    if keyword:
        name = KEYWORDS.get(keyword[1], keyword[1])  # activation='relu': Keras's keyword
        hint = f"names are bare words: `{name if isinstance(name, str) else keyword[1]}={word}`"
    elif (
        c.previous is not None
        and c.previous.type in ("USE", "NAME")
        and c.previous.line == (c.text.count("\n", 0, pos) + 1)
    ):
        hint = f"names are bare words: `{c.previous} {word}`"
    else:
        hint = f"names are bare words: `{word}`"
    return NetdslError(
        f"syntax error: netdsl has no strings here; write the bare word {word}", span, hint=hint
    )


def _times_sign(c: _Context) -> NetdslError | None:
    """`[conv3 64] × 3`: a multiplication sign where netdsl repeats with `*`."""
    pos = c.e.pos_in_stream
    if c.text[pos : pos + 1] != "×" or c.previous is None or c.previous.type not in _CLOSE:
        return None
    count = re.match(r"[ \t]*([0-9]+|[A-Za-z_][A-Za-z0-9_]*)", c.text[pos + 1 :])
    if count is None:
        return _repeat_error(c, pos, pos + 1, None)
    return _repeat_error(c, pos, pos + 1 + count.end(), count[1])


def _x_repeat(c: _Context) -> NetdslError | None:
    """`[conv3 64] x 3` or `[conv3 64]x3`: the letter x where netdsl repeats with `*`."""
    tok, prev = c.token, c.previous
    if tok is None or tok.type != "NAME" or prev is None or prev.type not in _CLOSE:
        return None
    digits = re.fullmatch(r"x([0-9]*)", str(tok))
    if digits is None:
        return None
    if digits[1]:
        return _repeat_error(c, tok.start_pos, tok.end_pos, digits[1])
    after = c.tokens[c.at + 1] if c.at + 1 < len(c.tokens) else None
    if after is None or after.type not in ("NUMBER", "NAME") or after.line != tok.line:
        return None
    return _repeat_error(c, tok.start_pos, after.end_pos, str(after))


def _repeat_error(c: _Context, start: int, end: int, count: str | None) -> NetdslError:
    """The repeat written at text[start:end], right after the bracket tokens[c.at - 1]."""
    close = c.tokens[c.at - 1]
    opener = c.opener_of(c.at - 1)
    times = f"*{count or 'n'}"
    hint = None
    if opener is not None:
        hint = f"write `{c.piece(opener.start_pos, close.end_pos)}{times}`"
    written = c.piece(start, end)
    return NetdslError(
        f"syntax error: repeat with {times}, not {written}", c.span(start, end), hint=hint
    )


def _unclosed(c: _Context) -> NetdslError | None:
    """A bracket left open: the parser runs on into the next lines and fails far away."""
    tok = c.token
    at_end = tok is None or tok.type == "$END" or tok.start_pos is None
    stack = c.open_at(c.at)
    if not stack:
        return None
    if at_end:
        bracket = stack[-1]
    else:
        never_closed = {id(t) for t in c.open_at(len(c.tokens))}
        later = [t for t in stack if id(t) in never_closed and t.line < tok.line]
        if not later:
            return None
        bracket = later[-1]
    symbol = "(" if bracket.type in ("LPAR", "CALL_NAME") else "["
    closer = ")" if symbol == "(" else "]"
    start = bracket.end_pos - 1
    line_end = c.text.find("\n", start)
    rest = c.piece(bracket.start_pos, len(c.text) if line_end < 0 else line_end)
    last = [t for t in c.tokens if t.line == bracket.line and t.start_pos is not None][-1]
    hint = f"close it with '{closer}'"
    index = next(i for i, t in enumerate(c.tokens) if t is bracket)
    head = index > 0 and c.tokens[index - 1].type in ("BLOCK", "NETWORK", "DEF")
    if last is not bracket and last.type in _ENDS and not head:
        hint += f": `{rest}{closer}`"
    error = NetdslError(
        f"syntax error: this '{symbol}' is not closed", c.span(start, start + 1), hint=hint
    )
    if at_end:
        return error.with_note("still open at the end of the file")
    here = Span(c.path, tok.line, tok.column, tok.end_line, tok.end_column)
    return error.with_note(f"still open at '{tok}'", here)


def _python_conditional(c: _Context) -> NetdslError | None:
    """Python's `a if c else b`: netdsl writes `if c then a else b`."""
    tok, prev = c.token, c.previous
    if tok is None or tok.type != "IF" or prev is None or prev.type not in _ENDS:
        return None
    message = "syntax error: netdsl writes `if c then a else b`, not Python's `a if c else b`"
    first = _operand_start(c, c.at)
    orelse = _scan(c, c.at + 1, stop={"ELSE"})
    if orelse is None:
        return NetdslError(message, c.span(tok.start_pos, tok.end_pos))
    last = _scan(c, orelse + 1, stop=set())
    pieces = c.tokens[first:last]
    if (
        last <= orelse + 1
        or c.tokens[orelse + 1].type not in (_STARTS | {"IF", "MINUS", "NOT"})
        or c.tokens[first].type not in (_STARTS | {"MINUS", "NOT"})
        or any(t.line != tok.line for t in pieces)
    ):  # not a whole `a if c else b` on one line: no rewrite
        return NetdslError(message, c.span(tok.start_pos, tok.end_pos))
    start, end = c.tokens[first].start_pos, c.tokens[last - 1].end_pos
    a = c.piece(start, tok.start_pos)
    cond = c.piece(tok.end_pos, c.tokens[orelse].start_pos)
    b = c.piece(c.tokens[orelse].end_pos, end)
    written = f"if {cond} then {a} else {b}"
    if _after_keyword(c, first):  # `conv3 c s=2 if down else 1`: an atom there
        written = f"{c.tokens[first - 2]}=({written})"
    return NetdslError(
        message,
        c.span(start, end),
        hint=f"write `{written}`",
    )


def _after_keyword(c: _Context, index: int) -> bool:
    """Whether tokens[index] is the value of a keyword argument in the space form
    (`conv3 c s=2`), where only an atom may stand, not in `x = ...` or `f(s=...)`."""
    if index < 3 or [t.type for t in c.tokens[index - 2 : index]] != ["NAME", "EQUAL"]:
        return False
    if c.tokens[index - 3].type in ("_NL", "BLOCK", "DEF", "NETWORK", "OUTPUT", "COLON"):
        return False
    stack = c.open_at(index)
    return not stack or stack[-1].type != "CALL_NAME"


def _operand_start(c: _Context, index: int) -> int:
    """The first token of the expression that ends before tokens[index] (Python's
    conditional takes everything back to a bracket, a comma, an `=` or a statement start)."""
    depth = 0
    i = index - 1
    while i >= 0:
        t = c.tokens[i].type
        if t in _CLOSE:
            depth += 1
        elif t in _OPEN:
            if depth == 0:
                break
            depth -= 1
        elif depth == 0 and t in ("COMMA", "EQUAL", "_NL", "COLON", "THEN", "ELSE"):
            break
        i -= 1
    return i + 1


def _scan(c: _Context, index: int, stop: set) -> int | None:
    """From tokens[index], the index of the first `stop` token at this depth, or of the token
    that ends the expression (a comma, a closing bracket or a statement end at this depth)."""
    depth = 0
    for i in range(index, len(c.tokens)):
        t = c.tokens[i].type
        if depth == 0 and t in stop:
            return i
        if t in _OPEN:
            depth += 1
        elif t in _CLOSE:
            if depth == 0:
                return i if not stop else None
            depth -= 1
        elif depth == 0 and t in ("COMMA", "_NL"):
            return i if not stop else None
    return len(c.tokens) if not stop else None


def _closing(c: _Context, index: int) -> int:
    """The offset just after the bracket that closes the one open at tokens[index] (or the
    end of that line, when it is not closed there)."""
    depth = 0
    for tok in c.tokens[index:]:
        if tok.type in _OPEN:
            depth += 1
        elif tok.type in _CLOSE:
            if depth == 0:
                return tok.end_pos
            depth -= 1
        elif tok.type == "_NL":
            break
    line_end = c.text.find("\n", c.tokens[index].start_pos)
    return len(c.text) if line_end < 0 else line_end


def _colon_definition(c: _Context) -> NetdslError | None:
    """`block f(c): conv3 c + relu` on one line, or `def f(x): ...`: Python's `def` habit."""
    tok, prev = c.token, c.previous
    if tok is None or prev is None:
        return None
    colon = c.at - 1 if prev.type == "COLON" and tok.type != "_NL" else c.at
    if c.tokens[colon].type != "COLON":
        return None
    first = colon
    while first > 0 and c.tokens[first - 1].type != "_NL":
        first -= 1
    head = c.tokens[first]
    if head.type != "DEF" and (head.type != "BLOCK" or colon == c.at):
        return None
    if colon < first + 2 or c.tokens[colon - 1].type not in ("NAME", "RPAR"):
        return None  # the colon is not right after the definition's head
    if any(t.start_pos > head.start_pos for t in c.open_at(colon)):
        return None  # `def f(x, q:=8)`: inside the parameters
    after = c.tokens[colon + 1] if colon + 1 < len(c.tokens) else None
    if after is not None and after.type not in (_STARTS | {"_NL", "IF", "MINUS", "NOT"}):
        return None  # `block f(c): = ...`
    what = "block" if head.type == "BLOCK" else "function"
    written = c.piece(head.start_pos, c.tokens[colon].start_pos)
    hint = f"write it on one line: `{written} = ...`"
    if colon + 1 < len(c.tokens) and c.tokens[colon + 1].type != "_NL":
        end = _scan(c, colon + 1, stop=set())
        body = c.piece(c.tokens[colon + 1].start_pos, c.tokens[end - 1].end_pos)
        body = re.sub(r"^return\s+", "", body)  # `def f(x): return x * 2`
        hint = f"write `{written} = {body}`"
    message = f"a {what} is defined with '=', not ':'"
    if head.type == "BLOCK":
        message = f"a {what} on one line is defined with '=', not ':'"
    return NetdslError(
        f"syntax error: {message}",
        c.span(c.tokens[colon].start_pos, c.tokens[colon].end_pos),
        hint=hint,
    )


def _missing_comma(c: _Context) -> NetdslError | None:
    """`add(id conv3 64)`: two arguments of a call with no comma between them."""
    tok, prev = c.token, c.previous
    if tok is None or tok.type not in _STARTS or prev is None or prev.type not in _ENDS:
        return None
    if "COMMA" not in c.e.expected:
        return None
    stack = c.open_at(c.at)
    if not stack or stack[-1].type != "CALL_NAME":
        return None
    call = stack[-1]
    inside = c.tokens[next(i for i, t in enumerate(c.tokens) if t is call) + 1 : c.at]
    if any(t.type in ("IF", "THEN", "ELSE", "FOR") for t in inside):
        return None  # inside a conditional or a comprehension: not a list of arguments
    name = str(call)[:-1]
    what = "branches" if name in MERGES else "arguments"
    end = _closing(c, c.at)
    written = c.piece(call.start_pos, prev.end_pos) + ", " + c.piece(tok.start_pos, end)
    return NetdslError(
        f"syntax error: missing ',' between the {what} of {name}",
        c.span(prev.end_pos, prev.end_pos + 1),
        hint=f"write `{written}`",
    )
