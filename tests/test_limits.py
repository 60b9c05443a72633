"""Limits that keep mistaken or hostile programs from exhausting the machine.

Each limit is met through the real `netdsl` command: exit status 1 (2 for a bad
flag), the `file:line:col:` of the DSL text responsible and a message that says
which limit was hit, never a traceback, a RecursionError or a hang.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ARCHITECTURES, ROOT, compile_text, run_cli

from netdsl import NetdslError
from netdsl.commandline import MAX_NODES
from netdsl.elaborate import Limits
from netdsl.parser import MAX_DIGITS, MAX_NESTING

RESNET_CIFAR = str(ARCHITECTURES / "resnet_cifar.net")
NET = "network n:\n    input 3x8x8\n"  # the mistake then sits on line 3
MAX_INT = Limits().max_int
MAX_ELEMENTS = Limits().max_elements


def check(tmp_path, capsys, source: str, *flags: str):
    """`netdsl check` on `source`: (exit status, path, stdout, stderr)."""
    path = tmp_path / "limits.net"
    path.write_text(source, encoding="utf-8")
    code, out, err = run_cli(capsys, "check", str(path), *flags)
    return code, str(path), out, err


def fails(tmp_path, capsys, source: str, where: str, message: str, *flags: str) -> str:
    """`netdsl check` exits 1 and its first line is `FILE:where: message`; returns stderr."""
    code, path, out, err = check(tmp_path, capsys, source, *flags)
    assert (code, out) == (1, ""), err
    assert err.splitlines()[0] == f"{path}:{where}: {message}"
    assert "Traceback" not in err and "internal error" not in err
    return err


# ---- elaborated nodes ----------------------------------------------------------------------------


@pytest.mark.slow
def test_the_default_node_limit_fits_a_10000_layer_network(capsys):
    """ResNet-10004 (6n+2 with n = 1667) is a routine network, not an error."""
    code, out, err = run_cli(capsys, "check", RESNET_CIFAR, "--param", "depth=10004")
    assert (code, err) == (0, "")
    assert out.startswith(f"{RESNET_CIFAR}: ok: resnet_cifar, 40020 nodes, ")
    assert MAX_NODES == Limits().max_nodes > 40020


@pytest.mark.slow
def test_max_nodes_refuses_a_larger_network_where_the_limit_is_crossed(capsys):
    code, out, err = run_cli(
        capsys, "check", RESNET_CIFAR, "--param", "depth=10004", "--max-nodes", "1000"
    )
    assert (code, out) == (1, "")
    lines = err.splitlines()
    # the 1,001st layer is a BatchNorm inside the standard library's conv_bn
    assert lines[0].endswith(
        "resnet.net:7:48: the network has more than 1000 nodes (layers and merges)"
    )
    assert "hint: raise the limit with --max-nodes if this is intended" in lines
    # zoo files are named as the zoo names them, wherever netdsl is installed
    assert lines[-1] == "architectures/resnet_cifar.net:34:7: note: in block cifar_stage, used here"


def test_max_nodes_counts_exactly_what_check_reports(tmp_path, capsys):
    """A network of N nodes passes `--max-nodes N` and fails `--max-nodes N-1`."""
    source = NET + "    conv3 8 + relu + [conv3 8 + relu]*3 + gap\n"
    code, path, out, _ = check(tmp_path, capsys, source)
    assert (code, out) == (0, f"{path}: ok: n, 10 nodes, 1,976 params, 124,416 MACs\n")
    assert check(tmp_path, capsys, source, "--max-nodes", "10")[0] == 0
    fails(
        tmp_path,
        capsys,
        source,
        "3:43",
        "the network has more than 9 nodes (layers and merges)",
        "--max-nodes",
        "9",
    )


def test_nested_repeats_stop_at_the_node_limit(tmp_path, capsys):
    """Each count is within its limit; their product is not, and elaboration stops there."""
    fails(
        tmp_path,
        capsys,
        NET + "    [[[relu]*100000]*100000]*100000\n",
        "3:8",
        "the network has more than 1000 nodes (layers and merges)",
        "--max-nodes",
        "1000",
    )


@pytest.mark.parametrize(
    "command",
    [
        ["summary", "--json"],
        ["compile", "--target", "keras", "-o", "out.py", "--train"],
        ["render", "-o", "out.dot"],
    ],
)
def test_every_command_honours_max_nodes(tmp_path, capsys, command):
    """The limit guards each command that compiles, and nothing is written past it."""
    path = tmp_path / "big.net"
    path.write_text(NET + "    [conv3 4 + relu]*50\n")
    argv = [a if a not in ("out.py", "out.dot") else str(tmp_path / a) for a in command[1:]]
    code, out, err = run_cli(capsys, command[0], str(path), *argv, "--max-nodes", "20")
    assert (code, out) == (1, "")
    assert (
        err.splitlines()[0]
        == f"{path}:3:16: the network has more than 20 nodes (layers and merges)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.net"]


@pytest.mark.parametrize(
    "command",
    [["check"], ["summary"], ["compile", "--target", "torch"], ["render", "-o", "out.dot"]],
)
@pytest.mark.parametrize("value", ["0", "-3"])
def test_max_nodes_must_be_positive(tmp_path, capsys, command, value):
    path = tmp_path / "ok.net"
    path.write_text(NET + "    relu\n")
    code, out, err = run_cli(capsys, command[0], str(path), *command[1:], "--max-nodes", value)
    assert (code, out) == (2, "")
    assert err.splitlines()[-1] == (
        f"netdsl {command[0]}: error: --max-nodes must be a positive integer, got {value}"
    )
    assert err.startswith(f"usage: netdsl {command[0]} ")
    assert not (tmp_path / "out.dot").exists()


def test_max_nodes_must_be_an_integer(capsys):
    code, out, err = run_cli(capsys, "check", RESNET_CIFAR, "--max-nodes", "lots")
    assert (code, out) == (2, "")
    assert (
        err.splitlines()[-1]
        == "netdsl check: error: argument --max-nodes: invalid int value: 'lots'"
    )


# ---- block recursion -----------------------------------------------------------------------------


FRACTAL = """\
block fractal(c, n) = if n == 1 then conv3 c else mean(conv3 c, fractal(c, n - 1) + fractal(c, n - 1))

network f(depth=4):
    input 3x8x8
    fractal(4, depth) + relu
"""


def test_recursion_with_a_base_case_works(tmp_path, capsys):
    """FractalNet's f_{C+1} = join(f_C + f_C, conv) is recursive, and fine."""
    # (its convs stack with no ReLU between them, as the warning says: not this test's point)
    code, path, out, err = check(tmp_path, capsys, FRACTAL, "--no-warn")
    assert (code, err) == (0, "")  # 2^4 - 1 convs, 2^3 - 1 means, the input and relu
    assert out == f"{path}: ok: f, 24 nodes, 2,076 params, 129,024 MACs\n"
    code, out, err = run_cli(capsys, "check", str(ARCHITECTURES / "fractalnet.net"))
    assert (code, err) == (0, "")


def test_recursion_just_inside_the_depth_limit_compiles(tmp_path, capsys):
    """199 nested calls elaborate, and both emitters (which recurse on the block tree) cope."""
    path = tmp_path / "chain.net"
    path.write_text(
        "block chain(n) = if n == 0 then relu else relu + chain(n - 1)\n" + NET + "    chain(198)\n"
    )
    for target in ("torch", "keras"):
        code, out, err = run_cli(capsys, "compile", str(path), "--target", target)
        assert (code, err) == (0, "")
        compile(out, f"chain_{target}.py", "exec")  # valid Python, nesting included


RUNAWAY = "block grow(c) = conv3 c + grow(c + 1)\n" + NET + "    grow(4)\n"


def test_runaway_recursion_names_the_block_and_the_depth_limit(tmp_path, capsys):
    err = fails(
        tmp_path,
        capsys,
        RUNAWAY,
        "1:27",
        "blocks nest more than 200 deep (grow -> grow -> grow -> grow -> ...)",
    )
    assert "hint: does grow have a base case that ends its recursion?" in err.splitlines()


def test_runaway_recursion_in_the_real_command_has_no_traceback(tmp_path):
    """As a program (recursion limit raised, collector off), the same one located message."""
    path = tmp_path / "runaway.net"
    path.write_text(RUNAWAY)
    result = subprocess.run(
        [sys.executable, "-m", "netdsl", "check", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines()[0] == (
        f"{path}:1:27: blocks nest more than 200 deep (grow -> grow -> grow -> grow -> ...)"
    )
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_runaway_recursion_beyond_python_stack_is_still_a_netdsl_error():
    """With the depth limit lifted, Python's own stack gives out first: still located."""
    with pytest.raises(NetdslError) as info:
        compile_text(RUNAWAY, limits=Limits(max_block_depth=10**6))
    assert info.value.message == "block grow nests too deeply to elaborate"
    assert (info.value.span.line, info.value.span.column) == (1, 27)


# ---- repeat counts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, where",
    [
        ("[relu]*100001", "3:12"),
        ("[relu for i in range(100001)]", "3:20"),
        ("[relu for i in range(5, 100006)]", "3:20"),
    ],
)
def test_repeat_counts_over_the_limit(tmp_path, capsys, body, where):
    fails(
        tmp_path,
        capsys,
        NET + f"    {body}\n",
        where,
        "repeat count 100001 exceeds the limit of 100000",
    )


def test_repeat_count_from_a_parameter(tmp_path, capsys):
    """The count is checked as computed, whatever --param made it."""
    source = "network n(depth=20):\n    input 3x8x8\n    [relu]*(depth * 1000)\n"
    assert check(tmp_path, capsys, source)[0] == 0
    fails(
        tmp_path,
        capsys,
        source,
        "3:13",
        "repeat count 2000000 exceeds the limit of 100000",
        "--param",
        "depth=2000",
    )


# ---- tensor sizes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source, where, message",
    [
        (
            "network n:\n    input 3x1000000x1000000\n",
            "2:11",
            f"tensor of 3x1000000x1000000 has 3000000000000 elements, more than the limit of "
            f"{MAX_ELEMENTS}",
        ),
        (
            NET + "    conv3 100000000000\n",
            "3:5",
            f"tensor of 100000000000x8x8 has 6400000000000 elements, more than the limit of "
            f"{MAX_ELEMENTS}",
        ),
        (
            "network n:\n    input 8\n    fc 2000000000000\n",
            "3:5",
            f"tensor of 2000000000000 has 2000000000000 elements, more than the limit of "
            f"{MAX_ELEMENTS}",
        ),
        (
            "network n:\n    input 2000000\n    fc 1000000\n",
            "3:5",
            f"fc has 2000001000000 parameters, more than the limit of {MAX_ELEMENTS}",
        ),
        (
            "network n:\n    input 1000000x1x1\n    conv1 2000000\n",
            "3:5",
            f"conv1 has 2000002000000 parameters, more than the limit of {MAX_ELEMENTS}",
        ),
    ],
)
def test_tensors_over_max_elements(tmp_path, capsys, source, where, message):
    """An output or a weight tensor no machine could hold is an error, not an emitted model."""
    fails(tmp_path, capsys, source, where, message)


def test_input_override_is_checked_too(tmp_path, capsys):
    fails(
        tmp_path,
        capsys,
        NET + "    relu\n",
        "2:11",
        f"tensor of 3x1000000x1000000 has 3000000000000 elements, more than the limit of "
        f"{MAX_ELEMENTS}",
        "--input",
        "3x1000000x1000000",
    )


# ---- numbers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr, where, message",
    [
        (f"{MAX_INT} * 4", "3:9", f"number too large (limit {MAX_INT})"),
        (f"-{MAX_INT} * 4", "3:9", f"number too large (limit {MAX_INT})"),
        ("3000000000 * 3000000000 * 3000000000", "3:9", f"number too large (limit {MAX_INT})"),
        (f"{MAX_INT} + {MAX_INT}", "3:9", f"number too large (limit {MAX_INT})"),
        ("1e300 * 1e300", "3:9", "number too large"),  # a float literal beyond the limit
        ("int(1e300)", "3:13", "number too large"),
        ("16 // (4 - 4)", "3:12", "division by zero"),
        ("16 / 0.0", "3:12", "division by zero"),
        ("16 % (2 * 0)", "3:12", "division by zero"),
        ("1e999", "3:9", "number is not finite"),
    ],
)
def test_parameter_arithmetic(tmp_path, capsys, expr, where, message):
    fails(tmp_path, capsys, NET + f"    x = {expr}\n", where, message)


def test_overflow_and_division_by_zero_inside_a_block(tmp_path, capsys):
    """Located at the operator in the block, with the call that got there."""
    source = (
        "block wide(c, g) = conv3 (c * c * c) + conv3 (c // g)\n"
        "network n(c=4, g=2):\n    input 3x8x8\n    wide(c, g)\n"
    )
    assert check(tmp_path, capsys, source)[0] == 0
    err = fails(
        tmp_path,
        capsys,
        source,
        "1:27",
        f"number too large (limit {MAX_INT})",
        "--param",
        "c=3000000000",
    )
    assert err.splitlines()[-1].endswith(":4:5: note: in block wide, used here")
    err = fails(tmp_path, capsys, source, "1:49", "division by zero", "--param", "g=0")
    assert "hint: the right operand evaluates to 0" in err


def test_parameter_override_too_large(tmp_path, capsys):
    fails(
        tmp_path,
        capsys,
        "network n(c=4):\n    input 3x8x8\n    conv3 c\n",
        "1:11",
        f"the value given for parameter 'c': number too large (limit {MAX_INT})",
        "--param",
        f"c={MAX_INT * 2}",
    )


@pytest.mark.parametrize(
    "source, where, digits",
    [
        (NET + "    conv3 " + "9" * (MAX_DIGITS + 1) + "\n", "3:11", MAX_DIGITS + 1),
        ("network n:\n    input 3x" + "9" * (MAX_DIGITS + 1) + "x8\n", "2:11", MAX_DIGITS + 1),
        (NET + "    relu\ntrain:\n    epochs " + "9" * 5000 + "\n", "5:12", 5000),
    ],
)
def test_huge_integer_literal(tmp_path, capsys, source, where, digits):
    """int() of thousands of digits is refused by Python (and slow): the parser stops first."""
    fails(tmp_path, capsys, source, where, f"number too large ({digits} digits)")


def test_integer_literal_within_the_digit_limit_meets_the_value_limit(tmp_path, capsys):
    fails(
        tmp_path,
        capsys,
        NET + "    conv3 " + "9" * MAX_DIGITS + "\n",
        "3:11",
        f"number too large (limit {MAX_INT})",
    )


# ---- nesting -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr",
    [
        "conv3 " + "(1 + " * 600 + "1" + ")" * 600,
        "[" * 600 + "relu" + "]" * 600,
        "add(id, " * 600 + "relu" + ")" * 600,
        "x = " + "-" * 600 + "1",
        "if " + " and ".join(["true"] * 600) + ": relu",
    ],
)
def test_deep_nesting_is_refused_by_the_parser(tmp_path, capsys, expr):
    code, path, out, err = check(tmp_path, capsys, NET + f"    {expr}\n")
    assert (code, out) == (1, "")
    first = err.splitlines()[0]
    assert first.startswith(f"{path}:3:")
    assert first.endswith(f": expressions nest more than {MAX_NESTING} levels deep")
    assert "hint: write the repetition as a repeat, [ ... ]*n, or split it into blocks" in err


def test_deep_nesting_in_the_real_command_has_no_traceback(tmp_path):
    path = tmp_path / "deep.net"
    path.write_text(NET + "    " + "[" * 5000 + "relu" + "]" * 5000 + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "netdsl", "check", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines()[0].endswith(
        f": expressions nest more than {MAX_NESTING} levels deep"
    )
    assert "Traceback" not in result.stderr


def test_nesting_at_the_limit_still_compiles(capsys, tmp_path):
    """Nested merges just inside MAX_NESTING elaborate and emit."""
    depth = MAX_NESTING // 2 - 1  # each merge is a call and its argument list
    path = tmp_path / "nested.net"
    path.write_text(NET + "    " + "add(id, " * depth + "relu" + ")" * depth + "\n")
    code, out, err = run_cli(capsys, "compile", str(path), "--target", "torch")
    assert (code, err) == (0, "")
    compile(out, "nested.py", "exec")


def test_redundant_parentheses_do_not_nest():
    """`((((4))))` is the number 4: parentheses alone make no tree to recurse on."""
    net = compile_text(NET + "    conv3 " + "(" * 5000 + "4" + ")" * 5000 + "\n")
    assert net.main_output.node.out_shape == (4, 8, 8)


@pytest.mark.slow
def test_long_chains_are_not_nesting(tmp_path, capsys):
    """`a + b + c + ...` of 20,000 terms is a loop, not a 20,000-deep tree."""
    code, path, out, err = check(
        tmp_path,
        capsys,
        NET
        + "    "
        + " + ".join(["relu"] * 20_000)
        + "\n    x = "
        + " - ".join(["1"] * 5_000)
        + "\n",
    )
    assert (code, err) == (0, "")
    assert out == f"{path}: ok: n, 20001 nodes, 0 params, 0 MACs\n"


# ---- train section -------------------------------------------------------------------------------


TRAIN = NET + "    relu\ntrain:\n"


@pytest.mark.parametrize(
    "entry, where, message",
    [
        ("lr 1e999", "5:8", "train: number is not finite"),
        ("optimizer sgd lr=0.1 momentum=1e400", "5:35", "train: number is not finite"),
        ("weight_decay (-1e999)", "5:20", "train: number is not finite"),
        ("optimizer adam betas=(0.9, 1e999)", "5:32", "train: number is not finite"),
        ("schedule multistep milestones=(30, 1e999)", "5:40", "train: number is not finite"),
        ("epochs 4611686018427387905", "5:12", f"train: number too large (limit {MAX_INT})"),
    ],
)
def test_train_settings_must_be_finite_and_bounded(tmp_path, capsys, entry, where, message):
    """Every train value becomes a Python literal in train.py: `inf` would be a NameError."""
    fails(tmp_path, capsys, TRAIN + f"    {entry}\n", where, message)
