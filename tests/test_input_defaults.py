"""A block parameter whose default reads the block's input: `block head(c=in.c // 4)`.

Each call that leaves the parameter out gets the value its own input gives; the generated
class takes it as `c=None` and computes it from `in_channels`, as torchvision writes
`squeeze_channels = _make_divisible(input_channels // 4, 8)`.
"""

from __future__ import annotations

import pytest
from backends import check_backends, check_torch, keras_source, torch_source
from conftest import compile_text

from netdsl.errors import NetdslError
from netdsl.ir import Scope

HEAD = """\
# a bottleneck whose width defaults to a quarter of its input's, its middle to twice that
block head(c=in.c // 4, k=3, d=c * 2) =
    conv c k=k p=(k // 2) + relu + conv1 d + relu + conv1 in.c

network n:
    input 16x8x8
    head + head(c=2) + conv1 32 + head(k=1) + [head]*2 + gap + flatten + fc 3
"""


def _instances(net, block: str) -> list[dict]:
    return [
        {k: v.value for k, v in scope.args.items()}
        for scope in net.root.walk()
        if isinstance(scope, Scope) and scope.kind == "block" and scope.block == block
    ]


def test_each_call_gets_its_own_inputs_value():
    net = compile_text(HEAD)
    assert _instances(net, "head") == [
        {"c": 4, "k": 3, "d": 8},
        {"c": 2, "k": 3, "d": 4},
        {"c": 8, "k": 1, "d": 16},
        {"c": 8, "k": 3, "d": 16},
        {"c": 8, "k": 3, "d": 16},
    ]
    # 16 -> 4 -> 8 -> 16; 16 -> 2 -> 4 -> 16; then three at 32 -> 8 -> 16 -> 32
    assert net.total_params == (
        (16 * 4 * 9 + 4) + (4 * 8 + 8) + (8 * 16 + 16)
        + (16 * 2 * 9 + 2) + (2 * 4 + 4) + (4 * 16 + 16)
        + (16 * 32 + 32)
        + (32 * 8 + 8) + (8 * 16 + 16) + (16 * 32 + 32)
        + 2 * ((32 * 8 * 9 + 8) + (8 * 16 + 16) + (16 * 32 + 32))
        + (32 * 3 + 3)
    )  # fmt: skip


def test_the_generated_class_computes_the_default_from_its_input():
    net = compile_text(HEAD)
    source = torch_source(net)
    assert source.count("class Head(") == 1 and "class Head2" not in source
    assert (
        "self, in_channels: int, c: int | None = None, k: int = 3, d: int | None = None\n" in source
    )
    assert "if c is None:\n            c = in_channels // 4\n" in source
    assert "if d is None:\n            d = c * 2\n" in source
    assert "Head(16)\n" in source and "Head(16, c=2)" in source and "Head(32, k=1)" in source
    keras = keras_source(net)
    assert "in_channels = x.shape[-1]\n    if c is None:\n        c = in_channels // 4\n" in keras


def test_pytorch_builds_the_inferred_network():
    check_torch(compile_text(HEAD))


@pytest.mark.slow
def test_pytorch_and_keras_agree_on_converted_weights():
    check_backends(compile_text(HEAD))


def test_an_explicit_argument_wins_and_defaults_follow_it():
    net = compile_text(HEAD.replace("head + head(c=2)", "head(d=5) + head(c=2)"))
    assert _instances(net, "head")[0] == {"c": 4, "k": 3, "d": 5}


@pytest.mark.parametrize(
    "text, message",
    [
        (  # a network's parameters are read before there is any input
            "network n(c=in.c):\n    input 3x8x8\n    conv1 c\n",
            "`in` is only defined inside a block or after `input`",
        ),
        (  # a function has no input
            "def f(x=in.c) = x\nnetwork n:\n    input 3x8x8\n    conv1 f()\n",
            "`in` is only defined inside a block or after `input`",
        ),
    ],
)
def test_where_in_means_nothing_it_stays_an_error(text, message):
    with pytest.raises(NetdslError) as info:
        compile_text(text)
    assert info.value.message == message
