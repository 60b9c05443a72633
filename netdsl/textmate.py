"""The TextMate grammar of editors/vscode, translated from the Pygments lexer.

`python -m netdsl.textmate > editors/vscode/syntaxes/netdsl.tmLanguage.json`

The lexer (netdsl/lexer.py) is the one place token rules are written; this
module turns each of its rules into a TextMate `match` rule, in the same
order, and each Pygments token type into a TextMate scope. A new layer in the
catalogue, or a new lexer rule, highlights in VS Code once the JSON is
regenerated (tests/test_editors.py fails until it is).

The translation is exact because both engines pick, at each position, the
first rule in order that matches there: TextMate takes the leftmost match of
all rules (ties go to the earlier rule), and when Pygments has consumed the
text before it, that is the same rule. Whitespace rules are kept, without a
scope, so that they keep their place in that order. A rule this module cannot
translate (a state change, another callback than `bygroups`) is an error, not
a rule left out.
"""

from __future__ import annotations

import json
import re
import string
import sys

from pygments.lexer import words
from pygments.token import (
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Text,
    Token,
)

from .lexer import NetdslLexer

TokenType = type(Token)  # Pygments' token types (`Name.Builtin`) are instances of this class

# A token type's scope is that of its nearest listed ancestor; None: no scope.
SCOPES: dict[TokenType, str | None] = {
    Comment: "comment.line.number-sign",
    String.Double: "string.quoted.double",
    String: "string.quoted",
    Keyword.Declaration: "keyword.other.declaration",
    Keyword.Namespace: "keyword.control.import",
    Keyword.Constant: "constant.language",
    Keyword: "keyword.control",
    Name.Decorator: "entity.name.function.decorator",
    Name.Function: "entity.name.function",
    Name.Builtin: "support.function",
    Name.Attribute: "variable.parameter",
    Name.Label: "entity.name.label",
    Name: "variable.other",
    Number.Float: "constant.numeric.float",
    Number.Integer: "constant.numeric.integer",
    Number: "constant.numeric",
    Operator: "keyword.operator",
    Punctuation: "punctuation.separator",
    Text: None,  # whitespace and line continuations
}

# a punctuation rule that is one character class becomes one rule a character, so that
# themes can tell an opening bracket from a comma
PUNCTUATION = {
    "(": "punctuation.parenthesis.begin",
    ")": "punctuation.parenthesis.end",
    "[": "punctuation.section.brackets.begin",
    "]": "punctuation.section.brackets.end",
    ",": "punctuation.separator.comma",
    ".": "punctuation.accessor",
    ":": "punctuation.separator.colon",
}
_CHARACTER_CLASS = re.compile(r"\[(?:\\.|[^\]\\])+\]")


def scope(token: TokenType) -> str | None:
    while token not in SCOPES:
        if token.parent is None:
            raise ValueError(f"netdsl.textmate has no scope for the token type {token}")
        token = token.parent
    name = SCOPES[token]
    return f"{name}.{NetdslLexer.aliases[0]}" if name else None


def _pattern(regex) -> str:
    return regex.get() if isinstance(regex, words) else regex


def _group_tokens(action) -> tuple[TokenType, ...]:
    """The token types of `bygroups(...)`: Pygments keeps them only in the callback's closure."""
    if action.__qualname__.startswith("bygroups.") and action.__code__.co_freevars == ("args",):
        return action.__closure__[0].cell_contents
    raise ValueError(f"netdsl.textmate cannot translate the lexer action {action!r}")


def _rules(pattern: str, action) -> list[dict]:
    if isinstance(action, TokenType):
        if action in Punctuation and _CHARACTER_CLASS.fullmatch(pattern):
            chars = [c for c in string.printable if re.fullmatch(pattern, c)]
            suffix = NetdslLexer.aliases[0]
            return [
                {"match": re.escape(c), "name": f"{PUNCTUATION.get(c, 'punctuation')}.{suffix}"}
                for c in chars
            ]
        named = scope(action)
        return [{"match": pattern, "name": named} if named else {"match": pattern}]
    captures = {
        str(group): {"name": scope(token)}
        for group, token in enumerate(_group_tokens(action), start=1)
        if scope(token)
    }
    return [{"match": pattern, "captures": captures}]


def grammar() -> dict:
    """The TextMate grammar (`source.netdsl`) of NetdslLexer's rules, in their order."""
    states = NetdslLexer.tokens
    if set(states) != {"root"}:
        raise ValueError(f"netdsl.textmate translates one lexer state, not {sorted(states)}")
    patterns = []
    for rule in states["root"]:
        if len(rule) != 2:
            raise ValueError(f"netdsl.textmate cannot translate a state change: {rule!r}")
        patterns += _rules(_pattern(rule[0]), rule[1])
    name = NetdslLexer.aliases[0]
    return {
        "information_for_contributors": [
            "Generated from netdsl/lexer.py by `python -m netdsl.textmate`: edit the lexer,",
            "then regenerate this file (tests/test_editors.py checks that it is current).",
        ],
        "name": name,
        "scopeName": f"source.{name}",
        "fileTypes": [pattern.removeprefix("*.") for pattern in NetdslLexer.filenames],
        "patterns": patterns,
    }


def render() -> str:
    return json.dumps(grammar(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.reconfigure(encoding="utf-8")
    sys.stdout.write(render())
