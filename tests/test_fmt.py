"""`netdsl fmt`: the layout rules, comments, idempotence, the command, and the zoo.

Every zoo file is kept formatted; a scrambled copy of each (spaces added and removed
where the grammar allows, blank lines added, continuation lines re-indented, trailing
spaces) formats back to the committed file byte for byte, with the same graph.
"""

from __future__ import annotations

import random
import subprocess
import sys
from functools import cache

import pytest
from conftest import ARCHITECTURES, ROOT

from netdsl.cli import main
from netdsl.errors import NetdslError
from netdsl.fmt import _lexer, format_text
from netdsl.ir import Scope
from netdsl.parser import _CLOSE, _OPEN

STDLIB = ROOT / "netdsl" / "stdlib"
ZOO = sorted(ARCHITECTURES.glob("*.net")) + sorted(STDLIB.glob("*.net"))


def fmt(text: str) -> str:
    return format_text(text, "test.net")


# ---- the rules, one at a time ------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after"),
    [
        # one space between atoms of the layer form, keyword arguments tight
        ("block b = conv  96 k = 11 s= 4\n", "block b = conv 96 k=11 s=4\n"),
        # statement `=` spaced, parameter defaults tight, commas followed by one space
        ("block f(c=64,k = 3) =conv c k=k\n", "block f(c=64, k=3) = conv c k=k\n"),
        # unary minus tight, binary operators spaced
        ("block b = conv 8 bias_init= - 2+relu\n", "block b = conv 8 bias_init=-2 + relu\n"),
        (
            "def h(v, d=8) = max(d,int(v+d/2)//d*d)\n",
            "def h(v, d=8) = max(d, int(v + d / 2) // d * d)\n",
        ),
        ("def h(a) = -a**2 - (a%3)\n", "def h(a) = -a ** 2 - (a % 3)\n"),
        # a repeat's `*` tight, no spaces inside brackets
        ("block g(n, c) = [ conv3 c ] * n+maxpool2\n", "block g(n, c) = [conv3 c]*n + maxpool2\n"),
        ("block g(n) = [ conv3 8 ] * ( n - 1 )\n", "block g(n) = [conv3 8]*(n - 1)\n"),
        # an index stays tight to what it indexes; `.`, `@` tight
        ("block b(t) = conv3 t[0] . c  @gpu( 0 )\n", "block b(t) = conv3 t[0].c @gpu(0)\n"),
        # comparisons and keywords spaced
        (
            "block b(s=1) = if s==1  and in.c==8 then id else conv1 8\n",
            "block b(s=1) = if s == 1 and in.c == 8 then id else conv1 8\n",
        ),
        ("use   resnet   \n", "use resnet\n"),
    ],
)
def test_spacing(before, after):
    assert fmt(before) == after


def test_statements_in_a_body_are_indented_4_and_their_plus_lines_align_with_them():
    before = "network n:\n  input   3x32x32\n        conv 8\n          + relu\n  + gap\n"
    assert fmt(before) == "network n:\n    input 3x32x32\n    conv 8\n    + relu\n    + gap\n"


def test_a_line_after_a_trailing_operator_in_a_body_is_indented_4_more():
    before = "network n:\n    input 3x32x32\n    x = conv 8 +\n relu\n"
    assert fmt(before) == "network n:\n    input 3x32x32\n    x = conv 8 +\n        relu\n"


def test_continuation_lines_of_a_top_level_definition_are_indented_4():
    assert fmt("block b =\n      conv3 8\n  + relu\n") == "block b =\n    conv3 8\n    + relu\n"


def test_lines_aligned_with_a_bracket_stay_aligned_with_it():
    before = "block b = concat(conv3 8,\n                     conv3 8 + relu\n   + relu,\n          id)\n"
    after = (
        "block b = concat(conv3 8,\n"
        "                 conv3 8 + relu\n"
        "                 + relu,\n"
        "                 id)\n"
    )
    assert fmt(before) == after


def test_a_hanging_bracket_indents_its_lines_4_and_an_argument_going_on_8():
    before = "block b = concat(\n  conv3 8,\n  conv3 8\n + relu)\n"
    assert fmt(before) == "block b = concat(\n    conv3 8,\n    conv3 8\n        + relu)\n"


def test_the_parameters_of_a_definition_hang_8():
    before = "network n(a=1,\n  b=2):\n    input 3x8x8\n"
    assert fmt(before) == "network n(a=1,\n        b=2):\n    input 3x8x8\n"


def test_a_long_sequence_is_broken_before_a_plus_as_late_as_fits():
    layers = " + ".join(["conv3 8 + relu"] * 10)
    after = fmt(f"network n:\n    input 3x8x8\n    {layers}\n")
    lines = after.splitlines()
    assert lines[2:] == [
        "    conv3 8 + relu + conv3 8 + relu + conv3 8 + relu + conv3 8 + relu + conv3 8 + relu"
        " + conv3 8",
        "    + relu + conv3 8 + relu + conv3 8 + relu + conv3 8 + relu + conv3 8 + relu",
    ]
    assert all(len(line) <= 100 for line in lines)


def test_a_long_argument_list_is_broken_after_a_comma_and_aligned():
    arguments = ", ".join(["conv3 8 + relu + bn"] * 8)
    after = fmt(f"network n:\n    input 3x8x8\n    concat({arguments})\n")
    assert after.splitlines()[2:] == [
        "    concat(conv3 8 + relu + bn, conv3 8 + relu + bn, conv3 8 + relu + bn, conv3 8 + relu + bn,",
        "           conv3 8 + relu + bn, conv3 8 + relu + bn, conv3 8 + relu + bn, conv3 8 + relu + bn)",
    ]


def test_the_authors_line_breaks_are_kept():
    text = "block b = conv3 8\n    + relu\n    + bn\n"
    assert fmt(text) == text


def test_blank_lines_are_limited_to_one_and_removed_at_the_ends():
    before = "\n\n# top\n\n\n\nuse resnet\n\n\nnetwork n:\n    input 3x8x8\n\n\n    conv3 8\n\n\n"
    after = "# top\n\nuse resnet\n\nnetwork n:\n    input 3x8x8\n\n    conv3 8\n"
    assert fmt(before) == after


def test_trailing_whitespace_goes_and_the_file_ends_in_one_newline():
    assert fmt("use resnet   \t") == "use resnet\n"
    assert fmt("use resnet\r\n\r\n") == "use resnet\n"


def test_a_table_of_tuples_has_its_columns_right_aligned():
    before = "def t = ((1, 16, 1),\n         (6, 24, 2),\n         (6, 320, 10))\n"
    after = "def t = ((1, 16, 1),\n         (6,  24,  2),\n         (6, 320, 10))\n"
    assert fmt(before) == after


def test_tokens_of_has_one_space():
    before = "network n:\n    input 8 tokens   of 100\n    embedding 4\n"
    assert fmt(before) == "network n:\n    input 8 tokens of 100\n    embedding 4\n"


# ---- comments ----------------------------------------------------------------------------


def test_trailing_comments_of_a_statement_are_aligned_in_one_column():
    before = (
        "network n:\n    input 3x8x8\n"
        "    conv3 8          # first\n"
        "    + relu         # second\n"
        "    + conv3 8 + relu # third\n"
    )
    # the column most of them use, moved right for code that reaches a little past it
    after = (
        "network n:\n    input 3x8x8\n"
        "    conv3 8             # first\n"
        "    + relu              # second\n"
        "    + conv3 8 + relu    # third\n"
    ).replace("    # ", "  # ")
    assert fmt(before) == after


def test_a_comment_after_much_longer_code_is_not_aligned_with_the_others():
    long = "+ fc 10 init=uniform(-2.4 / 84, 2.4 / 84) bias_init=uniform(-2.4 / 84, 2.4 / 84)"
    before = (
        f"network n:\n    input 3x8x8\n    conv3 8     # a\n    + relu      # b\n    {long} # c\n"
    )
    after = (
        f"network n:\n    input 3x8x8\n    conv3 8     # a\n    + relu      # b\n    {long}  # c\n"
    )
    assert fmt(before) == after


def test_a_comment_too_close_to_its_code_moves_two_spaces_after_it():
    assert fmt("use resnet# why\n") == "use resnet  # why\n"


def test_the_column_of_a_comment_written_further_right_is_kept():
    text = "use resnet               # why\n"
    assert fmt(text) == text


def test_comments_on_their_own_lines_take_the_indentation_of_the_next_statement():
    before = "network n:\n  # the input\n    input 3x8x8\n        # a layer\n    conv3 8\n"
    after = "network n:\n    # the input\n    input 3x8x8\n    # a layer\n    conv3 8\n"
    assert fmt(before) == after


def test_a_comment_closing_a_body_stays_in_the_body():
    before = "network n:\n    input 3x8x8\n    conv3 8\n  # more later\n\nblock b = id\n"
    after = "network n:\n    input 3x8x8\n    conv3 8\n    # more later\n\nblock b = id\n"
    assert fmt(before) == after


def test_a_comment_right_after_a_bracket_heads_its_table():
    before = (
        "network n(t=(#a, b\n"
        "             (1, 2),   # one\n"
        "             (3, 4))): # two\n"
        "    input 3x8x8\n"
    )
    after = (
        "network n(t=(#a, b\n"
        "             (1, 2),    # one\n"
        "             (3, 4))):  # two\n"
        "    input 3x8x8\n"
    )
    assert fmt(before) == after


def _comments(text: str) -> list[str]:
    return [str(t).rstrip() for t in _lexer().lex(text, dont_ignore=True) if t.type == "COMMENT"]


# ---- idempotence and errors --------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "block b = concat(conv3 8,\n   conv3 8 + relu,\n            id)\n",
        "network n:\n    input 3x8x8\n    conv3 8   # a\n    + relu # bb\n",
        "network n:\n    input 3x8x8\n    " + " + ".join(["conv3 8"] * 30) + "\n",
        "block b = concat(\n  conv3 8,\n  conv3 8\n + relu)\n",
    ],
)
def test_formatting_twice_changes_nothing_more(text):
    once = fmt(text)
    assert fmt(once) == once


def test_a_program_that_does_not_parse_is_a_located_error():
    with pytest.raises(NetdslError) as caught:
        format_text("network n:\n    input 3x8x8\n    conv 3 +\n", "bad.net")
    assert str(caught.value.span).startswith("bad.net:3:")


# ---- the command -------------------------------------------------------------------------

UGLY = "block b =conv3  8+relu\n"
PRETTY = "block b = conv3 8 + relu\n"


def test_fmt_rewrites_files_in_place_and_says_which(tmp_path, capsys):
    ugly, pretty = tmp_path / "ugly.net", tmp_path / "pretty.net"
    ugly.write_text(UGLY)
    pretty.write_text(PRETTY)
    assert main(["fmt", str(ugly), str(pretty)]) == 0
    out = capsys.readouterr().out
    assert out == f"reformatted {ugly}\n1 file reformatted, 1 file left unchanged\n"
    assert ugly.read_text() == PRETTY
    assert pretty.read_text() == PRETTY


def test_fmt_check_changes_nothing_and_exits_1_if_a_file_would_change(tmp_path, capsys):
    ugly, pretty = tmp_path / "ugly.net", tmp_path / "pretty.net"
    ugly.write_text(UGLY)
    pretty.write_text(PRETTY)
    assert main(["fmt", "--check", str(ugly), str(pretty)]) == 1
    out = capsys.readouterr().out
    assert out == f"would reformat {ugly}\n1 file would be reformatted, 1 file already formatted\n"
    assert ugly.read_text() == UGLY
    assert main(["fmt", "--check", str(pretty)]) == 0


def test_fmt_diff_prints_a_unified_diff(tmp_path, capsys):
    ugly = tmp_path / "ugly.net"
    ugly.write_text(UGLY)
    assert main(["fmt", "--diff", str(ugly)]) == 1
    out = capsys.readouterr().out
    assert f"--- {ugly}\n+++ {ugly}\n" in out
    assert f"-{UGLY}+{PRETTY}" in out
    assert ugly.read_text() == UGLY


def test_fmt_of_a_file_with_an_error_shows_it_located_and_goes_on(tmp_path, capsys):
    bad, ugly = tmp_path / "bad.net", tmp_path / "ugly.net"
    bad.write_text("network n:\n    input 3x8x8\n    conv3 8 +\n")
    ugly.write_text(UGLY)
    assert main(["fmt", str(bad), str(ugly)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"{bad}:3:")
    assert "^" in captured.err
    assert ugly.read_text() == PRETTY


def test_fmt_does_not_take_zoo_names(capsys):
    assert main(["fmt", "--check", "resnet50"]) == 1
    assert "no such file: resnet50" in capsys.readouterr().err


def test_fmt_dash_reads_stdin_and_writes_stdout():
    done = subprocess.run(
        [sys.executable, "-m", "netdsl", "fmt", "-"],
        input=UGLY,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, PRETTY, "")


def test_the_zoo_and_the_standard_library_are_formatted(capsys):
    assert main(["fmt", "--check", *map(str, ZOO)]) == 0
    assert capsys.readouterr().out == f"{len(ZOO)} files already formatted\n"


# ---- scrambled zoo files come back byte for byte, with the same graph ---------------------


def scramble(text: str, seed: int) -> str:
    """`text` with its layout disturbed where the grammar allows, comments left in place."""
    rng = random.Random(seed)
    lines: list[list] = [[]]
    for tok in _lexer().lex(text, dont_ignore=True):
        if tok.type == "_NL":
            lines.append([])
        else:
            lines[-1].append(tok)
    out: list[str] = []
    depth = 0
    for items in lines:
        code = [t for t in items if t.type != "COMMENT" and not t.type.startswith("__")]
        comment = next((t for t in items if t.type == "COMMENT"), None)
        if not code:
            text_line = "" if comment is None else " " * (comment.column - 1) + str(comment)
            out.append(text_line)
            if not items and rng.random() < 0.5:
                out.extend([""] * rng.randint(1, 2))
            continue
        opens_unclosed = _depth_after(code, depth) > depth
        # a comment's column and the column after an open bracket are where the author
        # put them: the line before them does not grow
        grow = comment is None and not opens_unclosed
        indent = code[0].column - 1
        if depth == 0 and not opens_unclosed:
            indent = rng.choice([i for i in (0, 1, 2, 4, 6, 8) if grow or i <= indent])
        parts = [" " * indent, str(code[0])]
        for a, b in zip(code, code[1:], strict=False):
            written = " " * (b.column - a.end_column) if b.line == a.line else " "
            parts.append(_disturb(a, b, written, rng, grow) + str(b))
        line = "".join(parts)
        if comment is not None:
            header = code[-1].end_pos == comment.start_pos
            if header:
                line += str(comment)
            else:
                line = line.ljust(comment.column - 2) + " " + str(comment)
        elif rng.random() < 0.3:
            line += " " * rng.randint(1, 3)
        out.append(line)
        depth = _depth_after(code, depth)
    scrambled = "\n".join(out) + "\n" * rng.randint(1, 3)
    assert _significant(scrambled) == _significant(text)
    return scrambled


def _depth_after(code, depth: int) -> int:
    for tok in code:
        if tok.type in _OPEN:
            depth += 1
        elif tok.type in _CLOSE:
            depth -= 1
    return depth


def _disturb(a, b, written: str, rng: random.Random, grow: bool) -> str:
    choices = ["", " "] + (["  ", "   "] if grow else [])
    choice = rng.choice(choices) if rng.random() < 0.5 else written
    if not grow and len(choice) > len(written):
        choice = written
    return choice if _lexes_apart(a.type, str(a), choice, b.type, str(b)) else written


@cache
def _lexes_apart(a_type: str, a: str, gap: str, b_type: str, b: str) -> bool:
    """Whether `a`, `gap`, `b` is read as the two tokens again."""
    return [(t.type, str(t)) for t in _lexer().lex(a + gap + b)] == [(a_type, a), (b_type, b)]


def _significant(text: str) -> list[tuple[str, str]]:
    return [(t.type, str(t)) for t in _lexer().lex(text) if t.type != "_NL"]


def graph(net) -> tuple[list, list]:
    """What elaboration made of a program: every layer, and the tree of blocks."""
    nodes = [
        (
            node.id,
            node.op,
            node.called_as,
            {key: repr(node.value(key)) for key in node.attrs},  # Num has no value equality
            node.out_shape,
            [source.id for source in node.inputs],
            node.params,
            node.macs,
        )
        for node in net.ordered
    ]
    scopes, stack = [], [net.root]
    while stack:
        scope = stack.pop()
        scopes.append((scope.kind, scope.block, scope.name, scope.id))
        stack.extend(child for child in reversed(scope.children) if isinstance(child, Scope))
    return nodes, scopes


def check_scrambled(path, seeds) -> None:
    text = path.read_text()
    for seed in seeds:
        scrambled = scramble(text, seed)
        assert scrambled != text
        formatted = format_text(scrambled, str(path))
        assert _comments(formatted) == _comments(scrambled)
        # formatted back to the very text: the same graph, with nothing left to compile
        # (random programs, which format to a new layout, compare graphs: test_fmt_programs.py)
        assert formatted == text, f"seed {seed}"


@pytest.mark.parametrize("path", ZOO, ids=lambda p: p.name)
def test_a_scrambled_zoo_file_formats_back_to_itself_with_the_same_graph(path):
    check_scrambled(path, seeds=[ZOO.index(path)])


@pytest.mark.slow
@pytest.mark.parametrize("path", ZOO, ids=lambda p: p.name)
def test_many_scrambled_zoo_files_format_back_to_themselves(path):
    check_scrambled(path, seeds=range(1000, 1004))
