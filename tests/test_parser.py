"""The parser: every syntactic construct gives the AST a user would expect.

Expressions are compared as small S-expressions (`sx`) so a test reads like
the grammar: `("+", ("*", ("[]", ...), "n"), "maxpool2")`.
"""

from __future__ import annotations

import pytest

from netdsl import ast
from netdsl.errors import NetdslError, Span
from netdsl.parser import parse


def sx(e):
    """An AST expression as nested tuples, without spans."""
    if isinstance(e, ast.Number):
        return e.value
    if isinstance(e, ast.Bool):
        return e.value
    if isinstance(e, ast.Name):
        return e.id
    if isinstance(e, ast.String):
        return ("str", e.value)
    if isinstance(e, ast.Shape):
        return ("shape", *e.dims)
    if isinstance(e, ast.Identity):
        return "<id>"
    if isinstance(e, ast.BlockInput):
        return "<in>"
    if isinstance(e, ast.Attr):
        return (".", sx(e.obj), e.attr)
    if isinstance(e, ast.Call):
        kind = "call" if e.parenthesised else "app"
        return (kind, e.name, tuple(sx(a) for a in e.args), {k: sx(v) for k, v, _ in e.kwargs})
    if isinstance(e, ast.Tuple):
        return ("tuple", *(sx(i) for i in e.items))
    if isinstance(e, ast.Group):
        return ("[]", sx(e.body))
    if isinstance(e, (ast.BinOp, ast.Compare, ast.BoolOp)):
        return (e.op, sx(e.left), sx(e.right))
    if isinstance(e, ast.Neg):
        return ("neg", sx(e.operand))
    if isinstance(e, ast.Not):
        return ("not", sx(e.operand))
    if isinstance(e, ast.IfExpr):
        return ("if", sx(e.cond), sx(e.then), sx(e.orelse))
    if isinstance(e, ast.Label):
        return ("as", sx(e.body), e.name)
    if isinstance(e, ast.Annotated):
        return ("@", sx(e.body), (e.annotation.name, *(sx(a) for a in e.annotation.args)))
    raise AssertionError(f"no sx for {e!r}")


def body(src: str) -> tuple:
    return parse(src, "p.net").networks[0].body


def stmts(*lines: str) -> tuple:
    """The statements of a network whose body is `lines` (after an input line)."""
    text = "network n:\n    input 3x8x8\n" + "".join(f"    {line}\n" for line in lines)
    return body(text)[1:]


def expr(text: str):
    (stmt,) = stmts(text)
    assert isinstance(stmt, ast.ExprStmt)
    return sx(stmt.expr)


def syntax_error(src: str) -> NetdslError:
    with pytest.raises(NetdslError) as info:
        parse(src, "bad.net")
    return info.value


def app(name, *args, **kwargs):
    return ("app", name, args, kwargs)


def call(name, *args, **kwargs):
    return ("call", name, args, kwargs)


# ---- file items --------------------------------------------------------------


def test_file_items_are_sorted_into_the_module():
    m = parse(
        "# a comment\n"
        "use resnet\n"
        'use "lib/blocks.net"\n'
        "defaults conv act=relu bias=false\n"
        "block unit = relu\n"
        "network a(classes=10):\n"
        "    input 3x32x32\n"
        "network b:\n"
        "    input 784\n"
        "train:\n"
        "    epochs 3\n",
        "m.net",
    )
    assert [(u.target, u.is_path) for u in m.uses] == [("resnet", False), ("lib/blocks.net", True)]
    (d,) = m.defaults
    assert d.layer == "conv"
    assert [(k, sx(v)) for k, v, _ in d.kwargs] == [("act", "relu"), ("bias", False)]
    assert [b.name for b in m.blocks] == ["unit"]
    assert m.blocks[0].module == "m.net"
    assert [n.name for n in m.networks] == ["a", "b"]
    assert m.train is not None and m.train.entries[0].key == "epochs"


def test_block_in_expression_form_with_params_and_defaults():
    (b,) = parse("block conv_bn(c, k=3, s=(k//2)) = conv c k=k s=s + bn\n", "m.net").blocks
    assert b.name == "conv_bn"
    assert [(p.name, None if p.default is None else sx(p.default)) for p in b.params] == [
        ("c", None),
        ("k", 3),
        ("s", ("//", "k", 2)),
    ]
    assert sx(b.body) == ("+", app("conv", "c", k="k", s="s"), "bn")


def test_block_without_params_and_with_trailing_comma():
    m = parse("block a = relu\nblock b(c,) = conv3 c\nblock e() = id\n", "m.net")
    assert [(b.name, len(b.params)) for b in m.blocks] == [("a", 0), ("b", 1), ("e", 0)]


def test_block_in_statement_form():
    (b,) = parse(
        "block unit(c):\n    x = conv3 c\n    if c > 1: relu\n    add(x, id)\n", "m.net"
    ).blocks
    assert isinstance(b.body, tuple)
    let, cond, last = b.body
    assert isinstance(let, ast.LetStmt) and let.name == "x" and sx(let.expr) == app("conv3", "c")
    assert isinstance(cond, ast.IfStmt) and sx(cond.cond) == (">", "c", 1)
    assert sx(cond.body.expr) == "relu"
    assert sx(last.expr) == call("add", "x", "<id>")


def test_indentation_is_not_significant_items_end_at_the_next_keyword():
    m = parse("network n:\ninput 3x8x8\nrelu\nblock b = relu\n", "m.net")
    assert len(m.networks[0].body) == 2 and m.blocks[0].name == "b"


# ---- statements ----------------------------------------------------------------


def test_input_forms():
    s = body(
        "network n(s=32):\n    input 3x224x224\n    input img 3×32×32\n"
        "    input 784\n    input (3, s, s)\n"
    )
    assert [(i.name, sx(i.shape)) for i in s] == [
        (None, ("shape", 3, 224, 224)),
        ("img", ("shape", 3, 32, 32)),
        (None, 784),
        (None, ("tuple", 3, "s", "s")),
    ]


def test_output_forms():
    outs = stmts("output", "output logits", "output aux @train = gap + fc 10", "output = relu")
    assert [(o.name, [a.name for a in o.annotations], o.expr and sx(o.expr)) for o in outs] == [
        (None, [], None),
        ("logits", [], None),
        ("aux", ["train"], ("+", "gap", app("fc", 10))),
        (None, [], "relu"),
    ]


def test_let_expression_and_if_statements():
    let, plain, cond = stmts("x = conv3 16", "x + relu", "if in.c == 3: relu")
    assert isinstance(let, ast.LetStmt) and let.name == "x"
    assert isinstance(plain, ast.ExprStmt) and sx(plain.expr) == ("+", "x", "relu")
    assert isinstance(cond, ast.IfStmt)
    assert sx(cond.cond) == ("==", (".", "<in>", "c"), 3)


def test_train_section_entries():
    m = parse(
        "network n:\n    input 3x8x8\ntrain:\n"
        "    optimizer sgd lr=0.1 momentum=0.9\n"
        "    schedule multistep milestones=(30, 60)\n"
        "    augment random_crop(224) hflip\n",
        "m.net",
    )
    entries = [
        (e.key, [sx(a) for a in e.args], {k: sx(v) for k, v, _ in e.kwargs})
        for e in m.train.entries
    ]
    assert entries == [
        ("optimizer", ["sgd"], {"lr": 0.1, "momentum": 0.9}),
        ("schedule", ["multistep"], {"milestones": ("tuple", 30, 60)}),
        ("augment", [call("random_crop", 224), "hflip"], {}),
    ]


# ---- expressions ---------------------------------------------------------------


def test_product_card_vgg_block():
    (b,) = parse("block vgg(n, c) = [conv3 c]*n + maxpool2\n", "m.net").blocks
    assert sx(b.body) == ("+", ("*", ("[]", app("conv3", "c")), "n"), "maxpool2")


def test_space_form_takes_atoms_and_keywords():
    assert expr("conv 96 k=11 s=4 p=0") == app("conv", 96, k=11, s=4, p=0)
    assert expr("conv1 (4*k) bias=false") == app("conv1", ("*", 4, "k"), bias=False)
    assert expr("conv 64 k=(1, 7) p=(0, 3)") == app(
        "conv", 64, k=("tuple", 1, 7), p=("tuple", 0, 3)
    )
    assert expr("conv 64 k=1x7") == app("conv", 64, k=("shape", 1, 7))
    # a keyword may come first in the space form
    assert expr("conv k=3 16") == app("conv", 16, k=3)
    # an argument may be a parenthesised call of a block or a tensor attribute
    assert expr("conv1 in.c") == app("conv1", (".", "<in>", "c"))
    assert expr("f (c*2)") == app("f", ("*", "c", 2))


def test_arithmetic_after_a_space_form_call_is_not_an_argument():
    # `conv3 c*2` is (conv3 c) * 2: the elaborator then asks for brackets or parentheses
    assert expr("conv3 c*2") == ("*", app("conv3", "c"), 2)
    assert expr("conv3 c + 1") == ("+", app("conv3", "c"), 1)


def test_parenthesised_calls_take_full_expressions():
    assert expr("stage(c*4, n-1, s=2)") == call("stage", ("*", "c", 4), ("-", "n", 1), s=2)
    assert expr("conv_bn(64, k=7,)") == call("conv_bn", 64, k=7)
    assert expr("f()") == call("f")
    assert expr("concat(id, bn + relu + conv3 k)") == call(
        "concat", "<id>", ("+", ("+", "bn", "relu"), app("conv3", "k"))
    )


def test_operator_precedence_and_associativity():
    assert expr("a + b * c - d // e % f / g") == (
        "-",
        ("+", "a", ("*", "b", "c")),
        ("/", ("%", ("//", "d", "e"), "f"), "g"),
    )
    assert expr("-a * 2") == ("*", ("neg", "a"), 2)
    assert expr("a - -b") == ("-", "a", ("neg", "b"))


def test_comparisons_and_boolean_operators():
    (let,) = stmts("x = not a == b and c < d or e >= f")
    assert sx(let.expr) == (
        "or",
        ("and", ("not", ("==", "a", "b")), ("<", "c", "d")),
        (">=", "e", "f"),
    )
    for op in ("==", "!=", "<", "<=", ">", ">="):
        (let,) = stmts(f"x = a {op} b")
        assert sx(let.expr) == (op, "a", "b")


def test_conditional_expressions_nest_to_the_right():
    (let,) = stmts("x = if a then b else if c then d else e")
    assert sx(let.expr) == ("if", "a", "b", ("if", "c", "d", "e"))
    assert expr("if s == 1 and in.c == c then id else conv1 c s=s") == (
        "if",
        ("and", ("==", "s", 1), ("==", (".", "<in>", "c"), "c")),
        "<id>",
        app("conv1", "c", s="s"),
    )


def test_tuples_shapes_numbers_strings_and_constants():
    (let,) = stmts('x = f((1,), (1, 2,), 1e-4, .5, 3., 2E3, 7, "s", true, false, id, in)')
    assert sx(let.expr)[2] == (
        ("tuple", 1),
        ("tuple", 1, 2),
        0.0001,
        0.5,
        3.0,
        2000.0,
        7,
        ("str", "s"),
        True,
        False,
        "<id>",
        "<in>",
    )
    (let,) = stmts("x = 3x224x224")
    assert sx(let.expr) == ("shape", 3, 224, 224)
    assert type(stmts("x = 7")[0].expr.value) is int
    assert type(stmts("x = 7.0")[0].expr.value) is float


def test_attributes_chain_on_names_and_in():
    (let,) = stmts("x = y.c * in.h")
    assert sx(let.expr) == ("*", (".", "y", "c"), (".", "<in>", "h"))


def test_labels_and_annotations_bind_tighter_than_sequence():
    assert expr("relu + conv 3 as head") == ("+", "relu", ("as", app("conv", 3), "head"))
    assert expr("relu + conv3 8 @gpu(1)") == ("+", "relu", ("@", app("conv3", 8), ("gpu", 1)))
    assert expr("(conv3 8 + relu) @cpu") == ("@", ("+", app("conv3", 8), "relu"), ("cpu",))
    assert expr("relu as r @gpu(0)") == ("@", ("as", "relu", "r"), ("gpu", 0))


def test_merges_and_groups():
    assert expr("[concat(id, conv3 k)]*n") == (
        "*",
        ("[]", call("concat", "<id>", app("conv3", "k"))),
        "n",
    )
    assert expr("mul(id, gap + sigmoid)") == call("mul", "<id>", ("+", "gap", "sigmoid"))


# ---- spans ---------------------------------------------------------------------


def test_spans_point_at_the_source_text():
    (stmt,) = stmts("relu + conv 96 k=11")
    seq = stmt.expr
    assert seq.span == Span("p.net", 3, 5, 3, 24)
    assert seq.op_span == Span("p.net", 3, 10, 3, 11)
    conv = seq.right
    assert conv.span == Span("p.net", 3, 12, 3, 24)
    ((name, value, kspan),) = conv.kwargs
    assert (name, kspan) == ("k", Span("p.net", 3, 20, 3, 21))
    assert value.span == Span("p.net", 3, 22, 3, 24)


# ---- lines, continuation and comments ----------------------------------------------


def test_a_newline_ends_a_statement():
    a, b = stmts("conv3 16", "relu")
    assert sx(a.expr) == app("conv3", 16) and sx(b.expr) == "relu"


@pytest.mark.parametrize(
    "lines",
    [
        ["conv3 16 +", "    relu"],  # after an operator
        ["conv3 16", "+ relu"],  # before a line starting with +
        ["conv3 16  # the first layer", "# a comment line between", "", "+ relu"],
        ["conv3 16 + \\", "relu"],  # backslash
        ["conv3 16 +  # comment after the operator", "relu"],
    ],
)
def test_continuation_rules_for_sequences(lines):
    (stmt,) = stmts(*lines)
    assert sx(stmt.expr) == ("+", app("conv3", 16), "relu")


def test_continuation_inside_brackets_and_parentheses():
    (stmt,) = stmts("conv(16,", "     k=3)", "+ [relu", "   + bn]*2")
    assert sx(stmt.expr) == ("+", call("conv", 16, k=3), ("*", ("[]", ("+", "relu", "bn")), 2))


def test_continuation_before_then_else_and_or_at_as():
    (stmt,) = stmts("if in.c == 3", "    then relu", "    else id")
    assert sx(stmt.expr) == ("if", ("==", (".", "<in>", "c"), 3), "relu", "<id>")
    (let,) = stmts("x = a", "  and b", "  or c")
    assert sx(let.expr) == ("or", ("and", "a", "b"), "c")
    (stmt,) = stmts("conv3 16", "  as c1", "  @gpu(1)")
    assert sx(stmt.expr) == ("@", ("as", app("conv3", 16), "c1"), ("gpu", 1))


def test_continuation_after_keywords_equals_and_commas():
    (let,) = stmts("x = if", "  a then", "  b else", "  c")
    assert sx(let.expr) == ("if", "a", "b", "c")
    (let,) = stmts("x =", "  not", "  b")
    assert sx(let.expr) == ("not", "b")


def test_a_line_starting_with_minus_is_a_new_statement():
    first, second = stmts("x = a", "- b")
    assert sx(first.expr) == "a" and sx(second.expr) == ("neg", "b")


def test_crlf_tabs_and_no_final_newline():
    (stmt,) = parse("network n:\r\n\tinput 3x8x8\r\n\trelu", "p.net").networks[0].body[1:]
    assert sx(stmt.expr) == "relu"


def test_empty_and_comment_only_files_parse_to_empty_modules():
    for text in ("", "\n\n", "# only a comment", "# a\n# b\n"):
        m = parse(text, "p.net")
        assert (m.uses, m.blocks, m.networks, m.train) == ((), (), (), None)


# ---- syntax errors ----------------------------------------------------------------


def test_syntax_error_lists_what_was_expected_in_netdsl_terms():
    e = syntax_error("network n:\n    input 3x8x8\n    conv3 16 + relu +\n")
    assert e.span.file == "bad.net" and (e.span.line, e.span.column) == (3, 22)
    assert e.message == (
        "syntax error: unexpected end of line; expected one of '(', '-', '[', 'false', 'id', "
        "'in', 'true', a call such as conv_bn(, a name, a number, a shape such as 3x224x224, "
        'a string in "quotes"'
    )


def test_syntax_error_with_a_single_expectation_says_so():
    e = syntax_error("network n:\n    input 3x8x8\n    relu as\n")
    assert e.message == "syntax error: unexpected end of line; expected a name"
    assert (e.span.line, e.span.column) == (3, 12)


def test_missing_colon_after_network_header():
    e = syntax_error("network lenet5\n    input 1x28x28\n")
    assert e.message == "syntax error: unexpected end of line; expected one of ':', '='"
    assert (e.span.line, e.span.column) == (1, 15)
    assert e.hint == "a network header ends with ':', e.g. `network lenet5:`"


def test_missing_equals_after_block_header():
    e = syntax_error("block unit(c)\n")
    assert (e.span.line, e.span.column) == (1, 14)
    assert e.hint == "a block definition reads `block name(params) = expression`"


def test_unbalanced_brackets():
    e = syntax_error("network n:\n    input 3x8x8\n    conv3 16 + relu)\n")
    assert e.message == "syntax error: unexpected ')'; expected end of line"
    assert (e.span.line, e.span.column) == (3, 20)
    assert e.hint == "check that brackets are balanced"
    e = syntax_error("network n:\n    input 3x8x8\n    conv(16, k=3\n")
    assert e.message == "syntax error: this '(' is not closed"
    assert (e.span.line, e.span.column) == (3, 9)


def test_layers_without_plus_suggest_a_sequence():
    e = syntax_error("network n:\n    input 3x8x8\n    x = 3 relu\n")
    assert (e.span.line, e.span.column) == (3, 11)
    assert e.message.startswith("syntax error: unexpected 'relu'; expected one of ")
    assert e.hint == "separate layers with '+', e.g. `conv3 64 + relu`"


def test_a_line_cannot_start_with_star():
    e = syntax_error("network n:\n    input 3x8x8\n    x = a\n    * b\n")
    assert (e.span.line, e.span.column) == (4, 5)
    assert e.message.startswith("syntax error: unexpected '*'; expected one of ")


def test_power_operator_is_right_associative_and_binds_tighter_than_minus():
    m = parse("network n:\n    input 3x8x8\n    x = -2 ** 3 ** 2\n")
    e = m.networks[0].body[1].expr
    assert isinstance(e, ast.Neg) and e.operand.op == "**" and e.operand.right.op == "**"


@pytest.mark.parametrize(
    "char, shown, hint",
    [
        ("$", "'$'", None),
        ("é", "'é'", "names and numbers are plain ASCII"),
        ("\x00", "NUL", None),
    ],
)
def test_unexpected_characters(char, shown, hint):
    e = syntax_error(f"network n:\n    input 3x8x8\n    relu{char}\n")
    assert e.message == f"syntax error: unexpected character {shown}"
    assert (e.span.line, e.span.column) == (3, 9)
    assert e.hint == hint


def test_duplicate_definitions_are_located():
    e = syntax_error("block f = relu\nblock f = relu\n")
    assert e.message == "block 'f' is defined twice"
    assert (e.span.line, e.span.column) == (2, 7)  # at the name
    assert [(n.message, n.span.line) for n in e.notes] == [("first defined here", 1)]
    e = syntax_error("network a:\n    input 3\nnetwork a:\n    input 3\n")
    assert e.message == "network 'a' is defined twice"
    e = syntax_error("block f(c, c) = relu\n")
    assert e.message == "parameter 'c' declared twice" and e.span.column == 12
    e = syntax_error("network n:\n    input 3\ntrain:\n    lr 1\ntrain:\n    lr 2\n")
    assert e.message == "a file may have only one train section" and e.span.line == 5


def test_argument_errors_found_while_parsing():
    e = syntax_error("network n:\n    input 3x8x8\n    conv(16, k=3, 5)\n")
    assert e.message == "positional argument follows keyword argument"
    assert (e.span.line, e.span.column) == (3, 19)
    assert e.hint == "put positional arguments first"
    e = syntax_error("network n:\n    input 3x8x8\n    conv 16 k=3 k=5\n")
    assert e.message == "argument 'k' given twice"
    assert (e.span.line, e.span.column) == (3, 17)


def test_keywords_are_not_names():
    # `block` starts a new item, which then lacks its name
    e = syntax_error("network n:\n    input 3x8x8\n    block = 3\n")
    assert (e.span.line, e.span.column) == (3, 11)
    assert e.message == (
        "syntax error: unexpected '='; expected one of a call such as conv_bn(, a name"
    )
    e = syntax_error("network n:\n    input 3x8x8\n    x = input + 1\n")
    assert (e.span.line, e.span.column) == (3, 9)
    assert e.message.startswith("syntax error: unexpected 'input'; expected one of ")


def test_deep_parentheses_parse():
    (stmt,) = stmts("(" * 2000 + "relu" + ")" * 2000)
    assert sx(stmt.expr) == "relu"
