"""index(B) and count(B): a block's running position over the whole network, and the total.

Stochastic depth's linear rule (EfficientNet, ConvNeXt: block j of the network's L drops with
p * j / L) is then written once instead of offsets typed per stage. The values are numbers in
the generated code, so the parameters that decide how often a block is used are fixed there.
"""

from __future__ import annotations

import pytest
from backends import check_backends, torch_source
from conftest import compile_text

from netdsl.errors import NetdslError

STAGES = """\
block unit(p) = add(id, conv3 in.c + drop_path p)
block stage(n, p, first, total) = [unit(p * (first + i) / (total - 1)) for i in range(n)]

network net(depths=(2, 3, 1), drop=0.4, classes=3):
    input 4x8x8
    stage(depths[0], drop, index(unit), count(unit)) + conv1 8
    + stage(depths[1], drop, index(unit), count(unit)) + conv1 8
    + add(stage(depths[2], drop, index(unit), count(unit)),
          stage(1, drop, index(unit), count(unit)))
    + [unit(index(unit) / count(unit))]*2
    + gap + flatten + fc classes
"""


def rates(net) -> list[float]:
    return [round(n.attrs["p"].value, 6) for n in net.nodes() if n.op == "drop_path"]


def test_each_stage_starts_where_the_previous_ended():
    net = compile_text(STAGES)
    # 9 units: 7 in stages (0.4 * j / 8 for j = 0..6), then 7/9 and 8/9 in the repeat
    assert rates(net) == [round(0.4 * j / 8, 6) for j in range(7)] + [
        round(7 / 9, 6),
        round(8 / 9, 6),
    ]


def test_the_generated_code_passes_the_numbers_and_guards_the_depths():
    net = compile_text(STAGES)
    assert net.frozen_params == ["depths"]  # the rate and the classes stay parameters
    source = torch_source(net)
    assert "self.stage1 = Stage(4, depths[0], drop, 0, 9)" in source
    assert "self.stage2 = Stage(8, depths[1], drop, 2, 9)" in source
    assert "this file was generated for depths=(2, 3, 1)" in source
    assert source.count("class Stage(") == 1 and "class Stage2" not in source


def test_inside_its_own_block_index_is_the_instances_position():
    net = compile_text(
        "block unit(p) = add(id, conv3 in.c + drop_path (p * index(unit) / count(unit)))\n"
        "block stage(n, p) = [unit(p)]*n\n"
        "network net:\n    input 4x8x8\n"
        "    stage(2, 0.5) + conv1 8 + stage(3, 0.5) + unit(0.5) + gap + fc 2\n"
    )
    assert rates(net) == [round(0.5 * j / 6, 6) for j in range(6)]


def test_index_outside_the_block_counts_the_instances_before():
    net = compile_text(
        "block unit(p=0.0) = conv1 in.c + drop_path p\n"
        "network net:\n    input 4x8x8\n"
        "    unit + unit(index(unit) / 10) + add(unit, unit(index(unit) / 10))\n"
        "    x = unit(index(unit) / 10)\n"
        "    [unit(index(unit) / 10)]*2 + gap + fc 2\n"
    )
    assert rates(net) == [0.0, 0.1, 0.0, 0.3, 0.4, 0.5, 0.6]


def test_count_that_changes_the_structure_is_refused():
    text = (
        "block unit = conv1 in.c\n"
        "network net:\n    input 4x8x8\n"
        "    unit + (if count(unit) > 2 then unit else id) + gap + fc 2\n"
    )
    with pytest.raises(NetdslError) as info:
        compile_text(text)
    assert info.value.message == (
        "count(unit) changes how many unit the network has (2 when it was read, 1 after)"
    )
    assert info.value.hint == (
        "let count(unit) set rates and widths, not whether or how often unit is used"
    )


def test_an_error_in_the_counting_pass_says_so():
    with pytest.raises(NetdslError) as info:
        compile_text("block unit = conv1 in.c\nnetwork net:\n    input 4x8x8\n    fc count(unit)\n")
    assert "in a first pass that counts blocks, where count(unit) reads 1,000,000" in [
        n.message for n in info.value.notes
    ]


@pytest.mark.parametrize(
    "use, message",
    [
        ("index(relu)", "index(): 'relu' is not a block"),
        ("count(untt)", "count(): 'untt' is not a block"),
        ("index(unit, 2)", "index() takes the name of a block: index(unit)"),
        ("index(2)", "index() takes the name of a block: index(unit)"),
        ("f(1)", "index() counts the network's blocks; a function cannot read it"),
    ],
)
def test_errors(use, message):
    text = (
        "def f(x) = x + index(unit)\n"
        "block unit(p=0.0) = conv1 in.c + drop_path p\n"
        f"network net:\n    input 4x8x8\n    unit(0.1 * {use}) + fc 2\n"
    )
    with pytest.raises(NetdslError) as info:
        compile_text(text)
    assert info.value.message == message


def test_index_and_count_are_reserved_function_names():
    with pytest.raises(NetdslError) as info:
        compile_text("def count(x) = x\nnetwork n:\n    input 3x4x4\n    relu\n")
    assert info.value.message == "function 'count' would hide the built-in function of that name"


@pytest.mark.slow
def test_pytorch_and_keras_agree():
    check_backends(compile_text(STAGES))
