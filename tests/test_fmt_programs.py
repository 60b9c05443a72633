"""`netdsl fmt` on random valid programs (tests/strategies.py): the layout is a fixed
point (formatting twice changes nothing), a scrambled layout formats to the same text,
and the elaborated graph is the one of the program as generated."""

from __future__ import annotations

import pytest
from conftest import compile_text
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import programs
from test_fmt import graph, scramble

from netdsl.fmt import format_text

FAST_EXAMPLES = 12


def check(text: str, seed: int) -> None:
    formatted = format_text(text, "test.net")
    assert format_text(formatted, "test.net") == formatted
    assert format_text(scramble(text, seed), "test.net") == formatted
    assert graph(compile_text(formatted)) == graph(compile_text(text))


@settings(deadline=None, max_examples=FAST_EXAMPLES)
@given(programs(), st.integers(0, 2**32))
def test_random_programs_format_to_a_fixed_point_with_the_same_graph(text, seed):
    check(text, seed)


@pytest.mark.slow
@settings(deadline=None)
@given(programs(torch_only=True), st.integers(0, 2**32))
def test_many_random_programs_format_to_a_fixed_point_with_the_same_graph(text, seed):
    check(text, seed)
