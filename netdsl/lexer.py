"""A Pygments lexer for netdsl, so docs and notebooks highlight `.net` code.

Registered as a Pygments plugin (pyproject: `pygments.lexers` entry point):
use `netdsl` or `net` as the language of a fenced block, or highlight any
`*.net` file. The token rules mirror grammars/netdsl.lark; layer names come
from the layer catalogue (and initializer families from netdsl.initializers), so new
layers highlight without touching this file.
"""

from __future__ import annotations

from typing import ClassVar

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import (
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Text,
    Whitespace,
)

from .initializers import FAMILIES, MODES
from .layers import CATALOGUE, MERGES
from .symbolic import FUNCTIONS, INSTANCE_FUNCTIONS

KEYWORDS = ("if", "then", "else", "and", "or", "not", "as", "in", "for", "output", "input")
CONSTANTS = ("true", "false", "same", "valid", "none", "id", *MODES)
LAYERS = tuple(sorted(CATALOGUE, key=len, reverse=True))
_IDENT_END = r"(?![A-Za-z0-9_])"


class NetdslLexer(RegexLexer):
    """netdsl: blocks, networks and layers (`block vgg(n, c) = [conv3 c]*n + maxpool2`)."""

    name = "netdsl"
    aliases: ClassVar[list] = ["netdsl", "net"]
    filenames: ClassVar[list] = ["*.net"]
    mimetypes: ClassVar[list] = ["text/x-netdsl"]
    url = "https://github.com/netdsl/netdsl"

    tokens: ClassVar[dict] = {
        "root": [
            (r"[ \t\f]+", Whitespace),
            (r"\r?\n", Whitespace),
            (r"\\[ \t]*\r?\n", Text),
            (r"#.*$", Comment.Single),
            (r'"[^"\n]*"', String.Double),
            # definitions: the defined name is highlighted as such
            (
                r"(block|network|def)([ \t]+)([A-Za-z_][A-Za-z0-9_]*)",
                bygroups(Keyword.Declaration, Whitespace, Name.Function),
            ),
            (r"(use)(\b)", bygroups(Keyword.Namespace, Text)),
            (
                r"(defaults)([ \t]+)([A-Za-z_][A-Za-z0-9_]*)",
                bygroups(Keyword.Declaration, Whitespace, Name.Builtin),
            ),
            (r"^(train)([ \t]*)(:)", bygroups(Keyword.Declaration, Whitespace, Punctuation)),
            # placement and train-only annotations: @gpu(1), @cpu, @train
            (r"@[ \t]*[A-Za-z_][A-Za-z0-9_]*", Name.Decorator),
            # keyword arguments: k=3 (but not ==)
            (
                r"([A-Za-z_][A-Za-z0-9_]*)([ \t]*)(=)(?!=)",
                bygroups(Name.Attribute, Whitespace, Operator),
            ),
            (r"(as)([ \t]+)([A-Za-z_][A-Za-z0-9_]*)", bygroups(Keyword, Whitespace, Name.Label)),
            (words(KEYWORDS, suffix=r"\b"), Keyword),
            (words(CONSTANTS, suffix=r"\b"), Keyword.Constant),
            (words(tuple(MERGES), suffix=r"(?=\s*\()"), Name.Builtin),
            (words((*FUNCTIONS, *INSTANCE_FUNCTIONS, "range"), suffix=r"(?=\s*\()"), Name.Builtin),
            (words(tuple(FAMILIES), suffix=_IDENT_END), Name.Builtin),  # kaiming_normal(...)
            (r"(?:conv|dwconv|sepconv|maxpool|avgpool)[1-9][0-9]*" + _IDENT_END, Name.Builtin),
            (words(LAYERS, suffix=_IDENT_END), Name.Builtin),
            # shapes before numbers: 3x224x224, 1x7
            (r"\d+(?:[x×]\d+)+" + _IDENT_END, Number.Integer),
            (r"(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+", Number.Float),
            (r"\d+", Number.Integer),
            (r"==|!=|<=|>=|//|[-+*/%<>=]", Operator),
            (r"[()\[\],.:]", Punctuation),
            (r"[A-Za-z_][A-Za-z0-9_]*(?=\()", Name.Function),  # a block call
            (r"[A-Za-z_][A-Za-z0-9_]*", Name),
        ],
    }
