"""Syntax slips that are habits from Python, PyTorch and Keras: each message says what to write.

The parser alone would list the tokens it expected; for these slips netdsl names the habit and
gives the corrected spelling, built from the program's own text (issue 22). The full message is
the behaviour under test, as in test_errors.py.
"""

from __future__ import annotations

import pytest
from test_errors import NET, lines, report

from netdsl import compile_text

# ---- a quoted name ------------------------------------------------------------------------------


def test_a_quoted_keyword_value_is_a_bare_word():
    assert report(NET + "    conv(64, k=3, act='relu')\n") == lines(
        "err.net:3:23: syntax error: netdsl has no strings here; write the bare word relu",
        "        conv(64, k=3, act='relu')",
        "                          ^~~~~~",
        "hint: names are bare words: `act=relu`",
    )


def test_keras_activation_keyword_in_quotes_gets_netdsls_keyword():
    assert report(NET + "    conv 64 activation='relu'\n") == lines(
        "err.net:3:24: syntax error: netdsl has no strings here; write the bare word relu",
        "        conv 64 activation='relu'",
        "                           ^~~~~~",
        "hint: names are bare words: `act=relu`",
    )


def test_a_quoted_name_after_a_word_keeps_the_word():
    assert report("use 'resnet'\n" + NET + "    conv3 16\n") == lines(
        "err.net:1:5: syntax error: netdsl has no strings here; write the bare word resnet",
        "    use 'resnet'",
        "        ^~~~~~~~",
        "hint: names are bare words: `use resnet`",
    )
    assert report(NET + "    conv3 16\ntrain:\n    optimizer 'adam'\n") == lines(
        "err.net:5:15: syntax error: netdsl has no strings here; write the bare word adam",
        "        optimizer 'adam'",
        "                  ^~~~~~",
        "hint: names are bare words: `optimizer adam`",
    )


def test_a_single_quoted_file_name_takes_double_quotes():
    assert report("use 'my.net'\n" + NET + "    conv3 16\n") == lines(
        "err.net:1:5: syntax error: netdsl has no '...' strings; write \"my.net\"",
        "    use 'my.net'",
        "        ^~~~~~~~",
    )


def test_a_double_quoted_activation_is_a_bare_word():
    assert report(NET + '    conv(64, k=3, act="relu")\n') == lines(
        "err.net:3:19: conv: 'act' must be an activation layer such as relu, got a string",
        '        conv(64, k=3, act="relu")',
        "                      ^~~",
        "hint: netdsl has no strings here: write the bare word relu (act=relu)",
    )


def test_a_lone_apostrophe_keeps_the_plain_message():
    assert report(NET + "    conv3 16 + relu'\n").splitlines()[0] == (
        'err.net:3:20: syntax error: unexpected character "\'"'
    )


# ---- an unclosed bracket ------------------------------------------------------------------------


def test_an_unclosed_parenthesis_is_reported_where_it_opens():
    src = (
        NET
        + "    conv(64, k=3\n    + relu\n    maxpool2\nnetwork m:\n    input 3x8x8\n    conv3 8\n"
    )
    assert report(src) == lines(
        "err.net:3:9: syntax error: this '(' is not closed",
        "        conv(64, k=3",
        "            ^",
        "hint: close it with ')': `conv(64, k=3)`",
        "err.net:6:1: note: still open at 'network'",
    )


def test_an_unclosed_square_bracket_at_the_end_of_the_file():
    assert report(NET + "    [conv3 64 + relu\n    maxpool2\n") == lines(
        "err.net:3:5: syntax error: this '[' is not closed",
        "        [conv3 64 + relu",
        "        ^",
        "hint: close it with ']': `[conv3 64 + relu]`",
        "note: still open at the end of the file",
    )


def test_an_unclosed_bracket_after_a_comma_suggests_no_closing_spot():
    assert report(NET + "    conv(16,\n") == lines(
        "err.net:3:9: syntax error: this '(' is not closed",
        "        conv(16,",
        "            ^",
        "hint: close it with ')'",
        "note: still open at the end of the file",
    )


def test_a_bracket_closed_on_a_later_line_is_not_called_unclosed():
    src = NET + "    concat(\n        conv1 8,\n        id\n        conv3 8)\n"
    assert report(src) == lines(
        "err.net:5:11: syntax error: missing ',' between the branches of concat",
        "            id",
        "              ^",
        "hint: write `concat(conv1 8, id, conv3 8)`",
    )


# ---- a missing comma ----------------------------------------------------------------------------


def test_a_missing_comma_between_layer_branches():
    assert report(NET + "    concat(conv1 8 conv3 8)\n") == lines(
        "err.net:3:19: missing ',' between the branches of concat",
        "        concat(conv1 8 conv3 8)",
        "                      ^",
        "hint: write `concat(conv1 8, conv3 8)`",
    )


def test_every_missing_comma_is_in_the_suggestion():
    assert report(NET + "    concat(conv1 8 conv3 8 + relu id)\n") == lines(
        "err.net:3:19: missing ',' between the branches of concat",
        "        concat(conv1 8 conv3 8 + relu id)",
        "                      ^",
        "hint: write `concat(conv1 8, conv3 8 + relu, id)`",
    )


def test_a_missing_comma_after_id():
    assert report(NET + "    add(id conv3 3)\n") == lines(
        "err.net:3:11: syntax error: missing ',' between the branches of add",
        "        add(id conv3 3)",
        "              ^",
        "hint: write `add(id, conv3 3)`",
    )


def test_a_missing_comma_between_arguments():
    assert report(NET + "    conv(64, k=3 s=2)\n") == lines(
        "err.net:3:17: syntax error: missing ',' between the arguments of conv",
        "        conv(64, k=3 s=2)",
        "                    ^",
        "hint: write `conv(64, k=3, s=2)`",
    )


def test_one_branch_keeps_its_message():
    assert report(NET + "    concat(conv1 8)\n") == lines(
        "err.net:3:5: concat needs at least two branches",
        "        concat(conv1 8)",
        "        ^~~~~~~~~~~~~~~",
        "hint: e.g. concat(id, conv3 64)",
    )
    compile_text(NET + "    concat(conv1 8, conv3 8)\n", "ok.net")


# ---- definitions with ':' -----------------------------------------------------------------------


def test_a_one_line_block_with_a_colon():
    assert report("block f(c): conv3 c + relu\n" + NET + "    f(16)\n") == lines(
        "err.net:1:11: syntax error: a block on one line is defined with '=', not ':'",
        "    block f(c): conv3 c + relu",
        "              ^",
        "hint: write `block f(c) = conv3 c + relu`",
    )


def test_a_block_with_a_colon_and_indented_lines_is_valid():
    compile_text("block f(c):\n    conv3 c\n    relu\n" + NET + "    f(16)\n", "ok.net")


def test_a_python_def():
    assert report("def half(x): return x // 2\n" + NET + "    conv3 (half(16))\n") == lines(
        "err.net:1:12: syntax error: a function is defined with '=', not ':'",
        "    def half(x): return x // 2",
        "               ^",
        "hint: write `def half(x) = x // 2`",
    )
    assert report("def half(x):\n    x // 2\n" + NET + "    conv3 (half(16))\n") == lines(
        "err.net:1:12: syntax error: a function is defined with '=', not ':'",
        "    def half(x):",
        "               ^",
        "hint: write it on one line: `def half(x) = ...`",
    )


# ---- repeat written with x ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "column", "written", "caret"),
    [
        ("[conv3 64] x 3", 16, "x 3", "^~~"),
        ("[conv3 64] × 3", 16, "× 3", "^~~"),
        ("[conv3 64]x3", 15, "x3", "^~"),
        ("[conv3 64]×3", 15, "×3", "^~"),
    ],
)
def test_a_repeat_written_with_x(line, column, written, caret):
    assert report(NET + f"    {line}\n") == lines(
        f"err.net:3:{column}: syntax error: repeat with *3, not {written}",
        f"        {line}",
        " " * (column + 3) + caret,
        "hint: write `[conv3 64]*3`",
    )


def test_a_repeat_by_a_parameter_written_with_x():
    assert report("network n(d=2):\n    input 3x8x8\n    [conv3 64 + relu] x d\n") == lines(
        "err.net:3:23: syntax error: repeat with *d, not x d",
        "        [conv3 64 + relu] x d",
        "                          ^~~",
        "hint: write `[conv3 64 + relu]*d`",
    )


# ---- Python's conditional expression ------------------------------------------------------------


def test_pythons_conditional_in_parentheses():
    src = "block f(c, s=1) = conv1 (64 if s == 1 else 32)\n" + NET + "    f(16)\n"
    assert report(src) == lines(
        "err.net:1:26: syntax error: netdsl writes `if c then a else b`, not Python's "
        "`a if c else b`",
        "    block f(c, s=1) = conv1 (64 if s == 1 else 32)",
        "                             ^~~~~~~~~~~~~~~~~~~~",
        "hint: write `if s == 1 then 64 else 32`",
    )


def test_pythons_conditional_as_a_branch():
    src = "block f(c, s=1) = add(id if s == 1 else conv1 c, conv3 c)\n" + NET + "    f(3)\n"
    assert report(src) == lines(
        "err.net:1:23: syntax error: netdsl writes `if c then a else b`, not Python's "
        "`a if c else b`",
        "    block f(c, s=1) = add(id if s == 1 else conv1 c, conv3 c)",
        "                          ^~~~~~~~~~~~~~~~~~~~~~~~~",
        "hint: write `if s == 1 then id else conv1 c`",
    )


def test_pythons_conditional_as_a_keyword_value_gets_parentheses():
    src = "network n(down=true):\n    input 3x8x8\n    conv3 16 s=2 if down else 1\n"
    assert report(src) == lines(
        "err.net:3:16: syntax error: netdsl writes `if c then a else b`, not Python's "
        "`a if c else b`",
        "        conv3 16 s=2 if down else 1",
        "                   ^~~~~~~~~~~~~~~~",
        "hint: write `s=(if down then 2 else 1)`",
    )


def test_pythons_conditional_without_else():
    assert report(NET + "    conv3 16 if true\n") == lines(
        "err.net:3:14: syntax error: netdsl writes `if c then a else b`, not Python's "
        "`a if c else b`",
        "        conv3 16 if true",
        "                 ^~",
    )


def test_every_suggested_spelling_compiles():
    """The corrections the hints above write, put together, are a valid program."""
    compile_text(
        "use resnet\n"
        "def half(x) = x // 2\n"
        "block f(c) = conv3 c + relu\n"
        "block g(c, s=1) = conv1 (if s == 1 then 64 else 32)\n"
        "block h(c, s=1) = add(if s == 1 then id else conv1 c, conv3 c)\n"
        "network n(down=true):\n"
        "    input 3x8x8\n"
        "    conv(64, k=3, act=relu)\n"
        "    conv3 16 s=(if down then 2 else 1)\n"
        "    [conv3 64]*3\n"
        "    f(16) + g(16) + h(64)\n"
        "    conv3 (half(16))\n"
        "    concat(conv1 8, conv3 8 + relu, id)\n"
        "    add(id, conv3 24)\n"
        "    conv(64, k=3, s=2)\n"
        "train:\n"
        "    optimizer adam\n",
        "ok.net",
    )
