"""A block parameter bound to a named tensor: `block cell(prev, c)` called as `cell(a, 4)`.

Elaboration (shapes, counts, the graph's edge), errors, the generated PyTorch and Keras code
(the extra forward input, the call site, one class for every instance) and, on a few
programs, inferred = PyTorch = Keras on converted weights (tests/backends.py).
"""

from __future__ import annotations

import pytest
from backends import check_backends, keras_source, torch_source
from conftest import compile_text

from netdsl.errors import NetdslError
from netdsl.ir import TensorArg

# a two-input cell used three times, on tensors named at different places
CELLS = """\
block cell(prev, c) = concat(prev + conv1 c, conv1 c)
network n:
    input 3x8x8
    a = conv1 4
    b = a + conv1 4
    c = b + cell(a, 4)
    d = c + cell(b, 4)
    e = d + cell(a, 6)
    e + gap + fc 2
"""

# a block whose tensor argument is its own named value
OWN_VALUE = """\
block cell(prev, c) = concat(prev + conv1 c, conv1 c)
block pair(c):
    a = conv3 c
    b = a + conv3 c + relu
    b + cell(a, c)
network n:
    input 3x8x8
    conv1 4 + pair(4) + pair(6) + gap + fc 3
"""

# a tensor parameter as a sequence's start, a merge branch, and its shape
USES = """\
block mix(p, c) = add(p + conv1 c, conv1 c) + concat(id, p) + conv1 (p.c + c)
network n:
    input 3x8x8
    a = conv3 5
    b = a + conv3 6 + relu
    b + mix(a, 6) + gap + fc 2
"""

# a nested block passing its tensor parameter on, and a tensor parameter that is `in`
NESTED = """\
block inner(p, c) = add(conv1 c, p + conv1 c)
block outer(p, c) = inner(p, c) + relu + inner(p, c) + inner(in, c)
network n:
    input 3x8x8
    a = conv1 4
    b = a + conv1 5
    c = b + outer(a, 6)
    c + gap + fc 2
"""

PROGRAMS = {"cells": CELLS, "own_value": OWN_VALUE, "uses": USES, "nested": NESTED}


def error(src: str) -> NetdslError:
    with pytest.raises(NetdslError) as info:
        compile_text(src)
    return info.value


# ---- elaboration -----------------------------------------------------------------------------


def test_shapes_params_and_the_graph_edge():
    net = compile_text(CELLS)
    by_id = {n.id: n for n in net.nodes()}
    a, b = by_id["conv1"], by_id["conv2"]
    assert by_id["cell1.conv1"].inputs == [a]  # prev + conv1 c reads a
    assert by_id["cell1.conv2"].inputs == [b]  # the block's input
    assert by_id["cell2.conv1"].inputs == [b]
    assert by_id["cell3.conv1"].inputs == [a]
    assert by_id["cell1.concat"].out_shape == (8, 8, 8)
    assert by_id["cell3.concat"].out_shape == (12, 8, 8)
    # conv1 of prev: 4 in (a's channels) -> 4, 6; conv1 of x: 4, 8, 8 in
    assert [by_id[f"cell{i}.conv1"].params for i in (1, 2, 3)] == [20, 20, 30]
    assert [by_id[f"cell{i}.conv2"].params for i in (1, 2, 3)] == [20, 36, 54]
    assert net.total_params == 16 + 20 + 40 + 56 + 84 + 26
    assert ("conv1", "cell1.conv1") in net.graph.edges


def test_the_scope_records_the_tensor_as_external_and_its_argument():
    net = compile_text(CELLS)
    cell = next(s for s in net.root.children if getattr(s, "block", None) == "cell")
    arg = cell.args["prev"]
    assert isinstance(arg, TensorArg)
    assert (arg.name, arg.node.id, arg.symbol) == ("a", "conv1", "prev_channels")
    assert cell.external == [arg.node]
    assert cell.call_args[0] == (None, arg)


def test_attributes_follow_the_tensor():
    net = compile_text(USES)
    last = [n for n in net.nodes() if n.op == "conv"][-1]
    assert last.id == "mix.conv3"
    assert last.value("c") == 11  # p.c + c = 5 + 6
    assert last.attrs["c"].expr.render() == "p_channels + c"


def test_summary_names_the_tensor_in_the_call():
    from netdsl.calls import block_call

    net = compile_text(CELLS)
    cells = [s for s in net.root.children if getattr(s, "block", None) == "cell"]
    assert [block_call(s) for s in cells] == ["cell(a, 4)", "cell(b, 4)", "cell(a, 6)"]


# ---- errors --------------------------------------------------------------------------------


def test_a_tensor_as_a_layer_argument():
    e = error(
        "block f(p, c) = conv1 p\nnetwork n:\n    input 3x8x8\n    a = conv1 4\n    f(a, 4)\n"
    )
    assert e.message == "'p' is a tensor, not an argument of conv1"
    assert (e.span.line, e.span.column) == (1, 23)
    assert "t.c" in e.hint
    assert e.notes[0].message == "in block f, used here"


def test_a_tensor_in_arithmetic():
    e = error(
        "block f(p, c) = p + conv1 (p * c)\nnetwork n:\n    input 3x8x8\n"
        "    a = conv1 4\n    f(a, 4)\n"
    )
    assert e.message == "cannot apply '*' to a tensor and an integer"
    assert "t.c" in e.hint


@pytest.mark.parametrize(
    "body, column",
    [("p + conv1 c", 17), ("add(p, id)", 21), ("conv1 p.c", 23), ("concat(id, p)", 28)],
)
def test_a_number_where_the_block_uses_a_tensor(body, column):
    e = error(f"block f(p, c) = {body}\nnetwork n:\n    input 3x8x8\n    f(3, 4)\n")
    assert e.message == "block f uses 'p' as a tensor, but was given an integer"
    assert (e.span.line, e.span.column) == (1, column)
    assert e.hint == "pass a named tensor for 'p': f(x, ...) where `x = ...` names a tensor"


def test_an_argument_computed_from_a_tensor_must_be_named_first():
    e = error(
        "block f(p, c) = p + conv1 c\nnetwork n:\n    input 3x8x8\n    a = conv1 4\n"
        "    f(a + relu, 4)\n"
    )
    assert e.message == "a block argument that starts from a named tensor must be the name alone"
    assert e.span.line == 5


def test_a_repeat_passing_a_named_tensor_is_refused_by_the_emitters():
    net = compile_text(
        "block f(p, c) = add(p + conv1 c, conv1 c)\nnetwork n:\n    input 3x8x8\n"
        "    a = conv1 4\n    [f(a, 4)]*2\n"
    )
    assert net.total_params == 16 + 2 * 40  # it elaborates
    with pytest.raises(NetdslError, match="cannot yet pass the named value 'a' into a repeated"):
        torch_source(net)


# ---- generated code ------------------------------------------------------------------------


def test_torch_forward_takes_the_tensor_and_init_its_channels():
    source = torch_source(compile_text(CELLS))
    assert source.count("class Cell(") == 1 and "class Cell2" not in source
    assert "def __init__(self, in_channels: int, prev_channels: int, c: int) -> None:" in source
    assert "self.conv1 = nn.Conv2d(prev_channels, c, kernel_size=1)" in source
    assert "def forward(self, x: Tensor, prev: Tensor) -> Tensor:" in source
    assert "self.cell1 = Cell(4, 4, c=4)" in source
    assert "self.cell2 = Cell(8, 4, c=4)" in source
    assert "self.cell3 = Cell(8, 4, c=6)" in source
    assert "c = self.cell1(b, a)  # 8x8x8" in source
    assert "d = self.cell2(c, b)  # 8x8x8" in source


def test_keras_function_takes_the_tensor():
    source = keras_source(compile_text(CELLS))
    assert "def cell(x, prev, c, name=None):" in source
    assert 'c = cell(b, a, c=4, name="cell1")' in source
    assert "def cell2" not in source


def test_channels_of_a_tensor_parameter_in_keras():
    source = keras_source(compile_text(USES))
    assert "def mix(x, p, c, name=None):" in source
    assert "p_channels = p.shape[-1]" in source


def test_nested_blocks_pass_the_tensor_on():
    net = compile_text(NESTED)
    source = torch_source(net)
    assert source.count("class Inner(") == 1 and "class Inner2" not in source
    assert "def forward(self, x: Tensor, p: Tensor) -> Tensor:" in source
    assert "self.inner1 = Inner(in_channels, p_channels, c=c)" in source
    assert "self.inner3 = Inner(c, in_channels, c=c)" in source  # `in` as the tensor
    keras = keras_source(net)
    assert "def outer(x, p, c, name=None):" in keras


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_generated_code_is_ruff_clean(name, tmp_path):
    import shutil
    import subprocess

    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    net = compile_text(PROGRAMS[name])
    for target, text in (("torch", torch_source(net)), ("keras", keras_source(net))):
        path = tmp_path / f"{name}_{target}.py"
        path.write_text(text)
        for args in (["check", "--no-cache", str(path)], ["format", "--diff", str(path)]):
            result = subprocess.run([ruff, *args], capture_output=True, text=True)
            assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PROGRAMS))
def test_inferred_torch_and_keras_agree(name):
    check_backends(compile_text(PROGRAMS[name]))
