"""Numbers in the language: `**`, pow/log/sqrt/exp, `def` functions, tuples with indexing
and len, repeats over the rows of a table; exact values, located errors, and the
generated code of both targets (module-level functions, `import math`, loops)."""

from __future__ import annotations

import math
import shutil
import subprocess
import textwrap

import pytest
from backends import build_torch, check_backends

from netdsl import NetdslError, compile_text
from netdsl.emit import get_emitter


def net(src: str, **kwargs):
    return compile_text(textwrap.dedent(src), "e.net", **kwargs)


def value(expr: str, prelude: str = ""):
    """The value of a numeric expression, as a network parameter's default."""
    n = net(f"{prelude}\nnetwork n(v={expr}):\n    input 3x4x4\n    relu\n")
    return n.params["v"].value


def error(src: str) -> NetdslError:
    with pytest.raises(NetdslError) as e:
        net(src)
    return e.value


def source(n, target: str) -> str:
    return get_emitter(target).emit_model(n)


def ruff_clean(text: str) -> None:
    if shutil.which("ruff") is None:
        pytest.skip("ruff is not installed")
    for args in (["check"], ["format", "--check", "--diff"]):
        done = subprocess.run(
            ["ruff", *args, "--isolated", "--stdin-filename", "model.py", "-"],
            input=text,
            text=True,
            capture_output=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr


# ---- `**` and the math functions ----------------------------------------------------


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("2 ** 10", 1024),
        ("2 ** 3 ** 2", 512),  # right-associative
        ("-2 ** 2", -4),  # binds tighter than unary minus
        ("(-2) ** 2", 4),
        ("2 ** -1", 0.5),
        ("2 * 3 ** 2", 18),
        ("pow(2, 0.5)", 2**0.5),
        ("log(100)", math.log(100)),
        ("log(8, 2)", math.log(8, 2)),
        ("sqrt(2)", math.sqrt(2)),
        ("exp(1)", math.e),
        ("round(log(48 / 24) / log(2.5))", round(math.log(2) / math.log(2.5))),
        ("len((1, 2, 3))", 3),
    ],
)
def test_numeric_values_are_pythons(expr, expected):
    got = value(expr)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    "expr, message",
    [
        ("log(0)", "log() needs a positive number, got 0"),
        ("log(-1.5)", "log() needs a positive number, got -1.5"),
        ("log(8, 1)", "the base of log() must be positive and not 1, got 1"),
        ("sqrt(-4)", "sqrt() needs a non-negative number, got -4"),
        ("exp(1000)", "exp(): number too large"),
        ("0 ** -1", "0 cannot be raised to a negative power"),
        ("(-8) ** 0.5", "a negative number to a fractional power is not a real number"),
        ("pow(-8, 0.5)", "a negative number to a fractional power is not a real number"),
        ("10 ** 400", "number too large (limit 4611686018427387904)"),
        ("10.0 ** 400", "number too large"),
        ("pow(2)", "pow() takes 2 arguments"),
        ("log(1, 2, 3)", "log() takes 1 or 2 arguments"),
        ("len(3)", "len() takes a tuple, got an integer"),
    ],
)
def test_domain_errors_are_located(expr, message):
    e = error(f"network n(v={expr}):\n    input 3x4x4\n    relu\n")
    assert e.message == message
    assert e.span.line == 1


@pytest.mark.slow
def test_power_and_math_in_generated_code():
    n = net("""
        network n(w=16, m=2.5):
            input 3x8x8
            conv1 round(w * m ** 2)
            conv1 round(sqrt(w) * log(w, 2) + exp(1))
    """)
    torch_text, keras_text = source(n, "torch"), source(n, "keras")
    assert "round(w * m**2)" in torch_text
    assert "round(math.sqrt(w) * (math.log(w) / math.log(2)) + 2.718281828459045)" in torch_text
    assert "\nimport math\n" in torch_text and "\nimport math\n" in keras_text
    for text in (torch_text, keras_text):
        ruff_clean(text)
    _, model = build_torch(n, w=9, m=2.0)
    assert model.conv2.out_channels == round(math.sqrt(9) * math.log(9, 2) + math.e)


def test_no_math_import_without_math():
    n = net("network n(w=16):\n    input 3x8x8\n    conv1 (w ** 2)\n")
    assert "import math" not in source(n, "torch")
    assert "import math" not in source(n, "keras")


# ---- `def` functions ----------------------------------------------------------------

MAKE_DIVISIBLE = "def make_divisible(v, d=8) = max(d, int(v + d / 2) // d * d)\n"


@pytest.mark.parametrize(
    "call, expected",
    [
        ("make_divisible(37)", 40),
        ("make_divisible(37, 16)", 32),
        ("make_divisible(d=4, v=37)", 36),
        ("make_divisible(3)", 8),
    ],
)
def test_function_values(call, expected):
    assert value(call, MAKE_DIVISIBLE) == expected


def test_functions_call_functions_and_see_only_their_parameters():
    prelude = "def twice(x) = 2 * x\ndef quad(x) = twice(twice(x))\n"
    assert value("quad(3)", prelude) == 12


@pytest.mark.parametrize(
    "prelude, call, message",
    [
        (MAKE_DIVISIBLE, "make_divisible()", "function make_divisible needs argument 'v'"),
        (
            MAKE_DIVISIBLE,
            "make_divisible(1, 2, 3)",
            "function make_divisible takes 2 arguments but 3 were given",
        ),
        (MAKE_DIVISIBLE, "make_divisible(1, e=2)", "function make_divisible has no parameter 'e'"),
        (MAKE_DIVISIBLE, "make_divisible(1, v=2)", "argument 'v' given twice"),
        (
            MAKE_DIVISIBLE,
            "make_divisible(relu)",
            "function make_divisible takes numbers and tuples; 'v' is a layer",
        ),  # fmt: skip
        ("def f(x) = conv3 x\n", "f(2)", "function f returns a layer, not a number"),
        ("def f(x) = f(x - 1)\n", "f(2)", "function f calls itself; functions cannot be recursive"),
        ("def f(x, d=relu) = x\n", "f(2)", "the default of 'd' must be a constant number or tuple"),
        ("def f(x) = x + in.c\n", "f(2)", "`in` is only defined inside a block or after `input`"),
        ("def f(x) = x\n", "f 2", "write f(...) with parentheses"),
        ("def ceil(x) = x\n", "2", "function 'ceil' would hide the built-in function of that name"),
        ("def relu(x) = x\n", "2", "function 'relu' would hide the built-in layer of that name"),
        ("def max(x) = x\n", "2", "function name 'max' is a Python built-in name"),
        (
            "def build_model(x) = x\n",
            "2",
            "function name 'build_model' is reserved for the generated code",
        ),  # fmt: skip
    ],
)
def test_function_errors(prelude, call, message):
    e = error(f"{prelude}network n(v={call}):\n    input 3x4x4\n    relu\n")
    assert e.message == message


@pytest.mark.parametrize(
    "use, message",
    [
        ("conv3 w", "conv3: 'c' must be a positive integer, got block w (layers)"),
        ("conv3 (w + 1)", "cannot apply '+' to block w (layers) and an integer"),
        ("conv3 max(w, 2)", "expected a number, got block w (layers)"),
    ],
)
def test_a_block_where_a_number_belongs_points_to_functions(use, message):
    e = error(f"block w(c=2) = conv1 c\nnetwork n:\n    input 3x4x4\n    {use}\n")
    assert e.message == message
    assert e.hint == (
        "a block builds layers and has no numeric value; to compute a number, define a "
        "function: def w(c) = expression"
    )


def test_a_function_and_a_block_of_the_same_name_are_refused():
    e = error("def f(x) = x\nblock f(c) = conv3 c\nnetwork n:\n    input 3x4x4\n    f(2)\n")
    assert e.message == "function 'f' has the name of a block"


@pytest.mark.slow
def test_functions_become_module_level_python_functions():
    n = net(
        MAKE_DIVISIBLE
        + """
        def width(w0, wa, j) = round(w0 + wa * j)
        block unit(c, e=0.75) = conv1 make_divisible(c * e) + relu
        network n(w=32):
            input 3x8x8
            conv3 make_divisible(w * 1.5)
            unit(w)
            unit(24)
            conv1 width(w, 8, 2)
        """.replace("\n        ", "\n")
    )
    torch_text, keras_text = source(n, "torch"), source(n, "keras")
    expected = "def make_divisible(v, d=8):\n    return max(d, int(v + d / 2) // d * d)\n"
    for text in (torch_text, keras_text):
        assert text.count(expected) == 1
        assert "def width(w0, wa, j):\n    return round(w0 + wa * j)\n" in text
        assert "import math" not in text
        ruff_clean(text)
    assert "make_divisible(c * e)" in torch_text
    assert "nn.Conv2d(3, make_divisible(w * 1.5)" in torch_text
    check_backends(n)
    _, model = build_torch(n, w=40)
    assert model.conv1.out_channels == 64  # make_divisible(60)


def test_a_function_of_constants_is_a_literal():
    n = net(MAKE_DIVISIBLE + "network n:\n    input 3x8x8\n    conv1 make_divisible(37)\n")
    text = source(n, "torch")
    assert "def make_divisible" not in text and "nn.Conv2d(3, 40, kernel_size=1)" in text


# ---- tuples ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("(8, 16, 32)[0]", 8),
        ("(8, 16, 32)[-1]", 32),
        ("((1, 16, 1, 1), (6, 24, 2, 2))[1][1]", 24),
        ("((1, 16, 1, 1), (6, 24, 2, 2))[-1][-2]", 2),
        ("len(((1, 16), (6, 24), (6, 32)))", 3),
        ("(8, 16, 32)[1 + 1]", 32),
    ],
)
def test_indexing(expr, expected):
    assert value(expr) == expected


@pytest.mark.parametrize(
    "expr, message",
    [
        ("(8, 16)[2]", "index 2 is out of range for a tuple of 2 items"),
        ("(8, 16)[-3]", "index -3 is out of range for a tuple of 2 items"),
        ("(8, 16)[0.5]", "a tuple index must be an integer, got 0.5"),
        ("(8, 16)[true]", "a tuple index must be an integer, got True"),
        ("(relu, 2)", "tuples hold numbers and tuples, not a layer"),
    ],
)
def test_index_errors(expr, message):
    e = error(f"network n(v={expr}):\n    input 3x4x4\n    relu\n")
    assert e.message == message


def test_indexing_a_non_tuple():
    e = error("network n:\n    input 3x4x4\n    w = 3\n    conv1 w[0]\n")
    assert e.message == "only tuples can be indexed; this is an integer"


def test_a_space_before_a_bracket_is_still_a_group():
    n = net("network n(w=(8, 16)):\n    input 3x8x8\n    conv1 w[1] + [relu]*2\n")
    assert [x.op for x in n.nodes()][1:] == ["conv", "relu", "relu"]


def test_tuple_parameters_in_generated_code():
    n = net("""
        block stage(c, n) = [conv3 c + relu]*n
        network n(table=((16, 1), (24, 2)), widths=(8, 16, 32)):
            input 3x8x8
            conv1 widths[-1]
            conv1 (widths[0] * len(widths))
            stage(table[1][0], table[-1][1])
    """)
    text = source(n, "torch")
    assert "table: tuple[tuple[int, ...], ...] = ((16, 1), (24, 2))" in text
    assert "nn.Conv2d(3, widths[-1], kernel_size=1)" in text
    assert "Stage(widths[0] * len(widths), table[1][0], table[-1][1])" in text
    ruff_clean(text)
    ruff_clean(source(n, "keras"))
    check_backends(n)
    _, model = build_torch(n, widths=(4, 6), table=((5, 1), (7, 3)))
    assert model.conv1.out_channels == 6 and model.conv2.out_channels == 8


# ---- repeats over a table -------------------------------------------------------------


def test_a_table_parameter_keeps_its_loop():
    n = net("""
        block body(table) = [conv3 c s=s + relu for (c, s) in table]
        network n(settings=((16, 1), (24, 2))):
            input 3x32x32
            body(settings)
    """)
    assert [d.value for d in n.root.out_shape] == [24, 16, 16]
    text = source(n, "torch")
    assert "for c_row in range(len(table)):" in text
    assert "stride=table[c_row][1]" in text
    ruff_clean(text)
    ruff_clean(source(n, "keras"))
    check_backends(n)
    _, model = build_torch(n, settings=((4, 2), (6, 1)))
    assert len(model.body.convs) == 4 and model.body.convs[2].out_channels == 6


def test_a_literal_table_is_unrolled():
    n = net("""
        block stage(c, n, s) = conv3 c s=s + [conv3 c + relu]*(n - 1)
        network n:
            input 3x32x32
            [stage(r[0], r[1], r[2]) for r in ((8, 1, 1), (12, 2, 2))]
    """)
    assert [x.out_shape[0] for x in n.nodes() if x.op == "conv"] == [8, 12, 12]
    text = source(n, "torch")
    assert "Stage(3, 8, 1, 1), Stage2(8, 12, 2, 2)" in text
    ruff_clean(text)
    check_backends(n)


def test_table_errors():
    e = error("network n:\n    input 3x8x8\n    [conv3 c for (c, s) in ((8, 1), (4,))]\n")
    assert e.message == "row 1 of the table has 1 item; the repeat names 2"
    e = error("network n:\n    input 3x8x8\n    [conv3 c for (c, s) in (8, 16)]\n")
    assert e.message == "row 0 of the table has a number; the repeat names 2"
    e = error("network n:\n    input 3x8x8\n    [conv3 c for c in 3]\n")
    assert e.message == "a repeat with an index reads [body for i in range(n)]"
    e = error("network n:\n    input 3x8x8\n    [conv3 c for (c, c) in ((8, 1),)]\n")
    assert e.message == "'c' is named twice"


# ---- RegNet's quantized linear rule (the docs' example) ---------------------------------

REGNET = """
def width(j, w0, wa, wm) = round(w0 * wm ** round(log((w0 + wa * j) / w0) / log(wm)) / 8) * 8
network widths(w0=48, wa=27.89, wm=2.09):
    input 3x4x4
    [conv1 width(j, w0, wa, wm) for j in range(16)]
"""


def test_regnet_widths_match_the_papers_rule():
    n = net(REGNET)
    got = [x.out_shape[0] for x in n.nodes() if x.op == "conv"]
    w0, wa, wm = 48, 27.89, 2.09
    expected = []
    for j in range(16):
        s = round(math.log((w0 + wa * j) / w0) / math.log(wm))
        expected.append(round(w0 * wm**s / 8) * 8)
    assert got == expected
    # regnet_y_400mf's stages (torchvision's BlockParams.from_init_params): widths, depths
    assert sorted(set(got)) == [48, 104, 208, 440]
    assert [got.count(w) for w in sorted(set(got))] == [1, 3, 6, 6]
    for target in ("torch", "keras"):
        ruff_clean(source(n, target))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["regnet_widths", "table_repeat"])
def test_the_language_docs_examples(name):
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "language.md").read_text()
    (text,) = [b for b in re.findall(r"```netdsl\n(.*?)```", doc, re.S) if f"network {name}" in b]
    n = compile_text(text, "doc.net")
    if name == "regnet_widths":
        convs = [x.out_shape[0] for x in n.nodes() if x.op == "conv"]
        assert convs[:-1] == [48, 104, 104, 104] + [208] * 6 + [440] * 6 and convs[-1] == 112
    else:
        assert [d.value for d in n.root.out_shape] == [32, 4, 4]
    for target in ("torch", "keras"):
        ruff_clean(source(n, target))
    check_backends(n)


def test_a_function_parameter_without_a_default_may_not_follow_one_with_a_default():
    """The generated Python function could not be written (Python's own rule)."""
    with pytest.raises(NetdslError) as e:
        compile_text("def f(a=1, b) = a + b\nnetwork n:\n    input 3x8x8\n    conv1 (f(2, 3))\n")
    assert e.value.message == "function f: 'b' has no default but follows 'a', which has one"
    assert (e.value.span.line, e.value.span.column) == (1, 12)


def test_a_block_named_like_a_builtin_function_is_refused_as_a_block_name():
    with pytest.raises(NetdslError) as e:
        compile_text("block len(c) = conv1 c\nnetwork n:\n    input 3x8x8\n    len(4)\n")
    assert e.value.message == "block name 'len' is a Python built-in name"
