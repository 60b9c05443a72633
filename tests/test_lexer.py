"""The Pygments lexer: registered by entry point, and it understands every zoo file."""

from __future__ import annotations

import pytest
from conftest import need

pygments = need("pygments")

from conftest import ARCHITECTURES
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, String

from netdsl.lexer import NetdslLexer
from netdsl.resources import STDLIB_DIR

SOURCE = """# VGG blocks
use "common.net"
defaults conv act=relu
block vgg(n, c) = [conv3 c]*n + maxpool2
network net(classes=1000):
    input 3x224x224
    vgg(2, 64) + conv 96 k=11 s=4 p=0 as conv1 @gpu(1)
    + if in.c == 64 then id else conv1 (c*2)
    + dropout 0.5 + fc classes
    output aux @train = gap + fc 10
train:
    optimizer sgd lr=1e-2 momentum=0.9
"""


def _tokens(text):
    return [(t, v) for t, v in NetdslLexer().get_tokens(text) if v.strip()]


def test_registered_by_entry_point():
    assert isinstance(get_lexer_by_name("netdsl"), NetdslLexer)
    assert isinstance(get_lexer_by_name("net"), NetdslLexer)
    assert isinstance(get_lexer_for_filename("resnet50.net"), NetdslLexer)


def test_token_kinds():
    tokens = _tokens(SOURCE)
    kinds = {v: t for t, v in tokens}
    assert kinds["# VGG blocks"] in Comment
    assert kinds['"common.net"'] in String
    assert kinds["block"] in Keyword and kinds["network"] in Keyword
    assert kinds["vgg"] in Name.Function
    assert kinds["conv3"] in Name.Builtin and kinds["maxpool2"] in Name.Builtin
    assert kinds["fc"] in Name.Builtin and kinds["dropout"] in Name.Builtin
    assert kinds["3x224x224"] in Number and kinds["1e-2"] in Number and kinds["0.5"] in Number
    assert kinds["k"] in Name.Attribute and kinds["lr"] in Name.Attribute
    assert kinds["=="] in Operator and kinds["*"] in Operator and kinds["+"] in Operator
    assert kinds["@gpu"] in Name.Decorator and kinds["@train"] in Name.Decorator
    assert kinds["if"] in Keyword and kinds["then"] in Keyword and kinds["id"] in Keyword
    assert kinds["conv1"] in Name.Builtin  # the shorthand layer in `conv1 (c*2)`


def test_label_after_as():
    tokens = _tokens("network t:\n    input 3x8x8\n    conv3 4 as conv1\n")
    assert (Name.Label, "conv1") in tokens


@pytest.mark.parametrize(
    "path", sorted([*ARCHITECTURES.glob("*.net"), *STDLIB_DIR.glob("*.net")]), ids=lambda p: p.stem
)
def test_every_shipped_file_lexes_without_errors(path):
    text = path.read_text()
    tokens = list(NetdslLexer(stripnl=False).get_tokens(text))
    assert not [v for t, v in tokens if t in Error]
    assert "".join(v for _, v in tokens).rstrip("\n") == text.rstrip("\n")
