"""Differential testing: inferred shapes and parameters = PyTorch's = Keras'.

Random valid programs (tests/strategies.py) are compiled, and the generated
models are built and run (tests/backends.py):

* every program: the PyTorch model's per-layer output shapes (forward hooks),
  parameters and buffers are the inferred ones, and one training step runs;
* a share of them: the Keras model's per-layer output shapes, trainable weights
  and count_params() are the inferred ones, and with the PyTorch weights copied
  over, both models compute the same outputs.

How many programs: the Hypothesis profile's `max_examples` through PyTorch, a
tenth of that (at least 50) through Keras, whose model building is slow. The
default profile (`ci`, registered in conftest.py) runs 300 and 50 with a fixed
seed; `pytest tests/test_differential.py --hypothesis-profile=deep` runs 5,000
and 500 with fresh random programs. NETDSL_KERAS_SHARE=N sends one program in N
through Keras instead of one in ten (1: all of them, e.g. 5,000 with `deep`).

Every disagreement these found is a regression test below: a small explicit
program, named after what went wrong.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
import warnings

import pytest
from backends import check_backends, check_torch, keras_source, torch_source
from conftest import compile_text, need
from hypothesis import given, settings
from strategies import programs

need("torch")

# one program in ten goes through Keras too (NETDSL_KERAS_SHARE=1: every program)
KERAS_SHARE = max(1, int(os.environ.get("NETDSL_KERAS_SHARE", "10")))
KERAS_MINIMUM = 50


def _compile(text: str):
    return compile_text(text)


@settings(deadline=None)
@given(programs(torch_only=True))
@pytest.mark.slow
def test_random_programs_inferred_equals_torch(text):
    net = _compile(text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "this machine has 0 GPUs" (@gpu parts)
        check_torch(net, backward=True)


@settings(deadline=None, max_examples=max(KERAS_MINIMUM, settings().max_examples // KERAS_SHARE))
@given(programs())
@pytest.mark.slow
def test_random_programs_inferred_equals_torch_equals_keras(text):
    need("keras")
    check_backends(_compile(text))


@pytest.mark.slow
def test_random_programs_generate_ruff_clean_code(tmp_path):
    """Generated files pass `ruff check` and `ruff format --check` as written, whatever the
    program: long messages, deep nesting and odd names are laid out like black would."""
    ruff = shutil.which("ruff")
    if ruff is None:
        need("ruff")  # the dev extra installs it: a failure in CI, a skip elsewhere
        ruff = shutil.which("ruff") or pytest.skip("ruff is not on PATH")
    sources: list[tuple[str, str]] = []

    @settings(deadline=None, max_examples=max(KERAS_MINIMUM, settings().max_examples // 5))
    @given(programs())
    def collect(text):
        net = _compile(text)
        sources.append((text, torch_source(net)))
        sources.append((text, keras_source(net)))

    collect()
    for i, (_, source) in enumerate(sources):
        (tmp_path / f"generated_{i}.py").write_text(source)
    for args in (["check", "-q"], ["format", "--check", "-q"]):
        done = subprocess.run(
            [ruff, *args, "--isolated", str(tmp_path)], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout[-3000:]


# ---- regressions: disagreements the random programs found -------------------------------------


def program(body: str, blocks: str = "", shape: str = "3x16x16") -> str:
    return (
        textwrap.dedent(blocks)
        + f"network probe(classes=5):\n    input {shape}\n"
        + textwrap.indent(textwrap.dedent(body).strip(), "    ")
        + "\n"
    )


def test_a_block_repeated_zero_times_by_a_parameter_refuses_other_counts_in_lint_clean_code(
    tmp_path,
):
    """Found by the random programs: the Keras `raise ValueError(...)` for a repeat whose
    count the file fixed at 0 was one line of 120 characters."""
    net = _compile(
        program(
            "rb(1, 0)",
            blocks="""
        block rb(c, n=1):
            t0 = [conv3 c + relu]*n
            conv1 c
    """,
        )
    )
    check_backends(net)
    assert_formatted(net, tmp_path)


def test_an_argument_too_long_for_its_line_is_split_like_ruff_splits_it(tmp_path):
    """Found by the deep run: `groups=c if n > 0 else ...` longer than a line was written
    on one line; ruff splits it before `if`, `else` and the loosest operators."""
    net = _compile(
        program(
            "grouped(8, 2) + grouped(8, 0)",
            shape="8x16x16",
            blocks="""
        block grouped(channels_of_the_block, number_of_repeats=1) =
            conv3 channels_of_the_block g=(if number_of_repeats > 0 then channels_of_the_block
                else channels_of_the_block * (number_of_repeats + 1) // (number_of_repeats + 1))
    """,
        )
    )
    check_backends(net)
    assert "            if number_of_repeats > 0\n" in torch_source(net)
    assert_formatted(net, tmp_path)


def test_labelled_parts_alike_but_for_their_input_channels_are_two_classes():
    """Found by the deep run: `(...) as lbl1 + (...) as lbl2` with the same layers on 1 and
    on 3 channels became one class (a conditional's branches hid the difference), so the
    second part's convolution expected 1 channel: PyTorch counted 36 parameters, not 38."""
    part = "([if width > 4 then conv1 1 else id] + [if in.c == 1 then conv1 3 else id])"
    net = _compile(
        program(f"tanh + {part} as lbl1 + {part} as lbl2\ngap + fc classes", shape="1x8x8").replace(
            "classes=5", "classes=5, width=8"
        )
    )
    assert net.total_params == 38
    check_backends(net)


def test_a_transposed_conv_with_a_kernel_narrower_than_its_stride_keeps_pytorchs_size():
    """Found by the deep run: `conv_transpose 5 k=1 s=2` on 8x8 is 15x15 in PyTorch,
    (8 - 1) x 2 + 1, but Keras' "valid" Conv2DTranspose without output_padding is 16x16
    (in x s); writing output_padding=0 gives PyTorch's size."""
    net = _compile(
        program("conv_transpose 5 k=1 s=2 bias=false + conv1 1\nflatten + fc 5", shape="1x8x8")
    )
    assert net.total_params == 5 + 6 + 15 * 15 * 5 + 5
    check_backends(net)
    assert "output_padding=0" in keras_source(net)


def test_a_layer_norm_of_near_constant_values_is_compared_with_the_exact_answer():
    """Found by the deep run: a layer norm over three channels that a ReLU has nearly zeroed
    divides by about sqrt(eps), so float32 rounding grows up to 316x; PyTorch itself is
    4e-5 of the output scale from its float64 answer and Keras 9e-5 from PyTorch. The check
    then measures each framework against the float64 answer (tests/backends.py)."""
    blocks = """
block cbr(c, k=3, s=1) = conv c k=k s=s p=(k//2) bias=false + bn + relu
block deep(c, n) = if n <= 1 then conv3 c + relu else conv3 c + deep(c, n - 1)
"""
    body = "relu + deep(6, 3) + relu + conv1 7\ncbr(3, 1) + layernorm + instancenorm\ngap + fc 5"
    check_backends(_compile(program(body, blocks, shape="4x12x12")))


def assert_formatted(net, folder) -> None:
    for name, source in (("t.py", torch_source(net)), ("k.py", keras_source(net))):
        (folder / name).write_text(source)
    ruff = shutil.which("ruff") or pytest.skip("ruff is not on PATH")
    done = subprocess.run(
        [ruff, "format", "--check", "--isolated", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout
