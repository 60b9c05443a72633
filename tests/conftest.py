"""Shared test helpers and Hypothesis profiles.

Framework tests use `need("torch")` / `need("keras")`: a skip for users
without the framework, but a failure when CI is set (CI installs both).
"""

from __future__ import annotations

import gc
import importlib
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent

# Hypothesis profiles (`pytest --hypothesis-profile=NAME`). `ci`, the default, is fast
# and reproducible: the same programs every run. `deep` explores: 5,000 fresh random
# programs through PyTorch (and 500 through Keras) in tests/test_differential.py;
# failures are saved in .hypothesis/ and replayed first on the next run.
_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile(
    "ci",
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=_QUIET,
    print_blob=True,
)
settings.register_profile(
    "deep", max_examples=5000, deadline=None, suppress_health_check=_QUIET, print_blob=True
)
settings.load_profile(os.environ.get("NETDSL_HYPOTHESIS_PROFILE", "ci"))
ARCHITECTURES = ROOT / "architectures"


# ---- the fast inner loop ------------------------------------------------------------------------

# `python -m pytest -m "not slow"` runs in under a minute; CI runs everything. Whole tests and
# modules are marked where they are (`pytest.mark.slow`, `pytestmark`); a parametrised test
# over the zoo (or another long list) keeps these cases in the fast set and the rest is slow.
FAST_CASES = {
    ("test_torch_backend.py", "test_zoo_module_matches_the_inferred_network"): {
        "lenet5",
        "highway",
        "resnet50",
        "squeezenet1_1",
    },
    ("test_cross_backend.py", "test_torch_and_keras_agree"): {"lenet5"},
    ("test_injection.py", "test_names_in_every_place"): {
        "network",
        "block parameter",
        "label",
        "annotation",
        "train augment",
    },
    ("test_injection.py", "test_strings_in_every_place"): {
        "block string default",
        "block string argument",
        "layer string",
        "activation string",
        "use string",
        "train choice string",
    },
    # each zoo file's layout is scrambled and formatted back (test_fmt.py formats every file
    # in the fast set too): a file of each kind of text, tables, cells, long calls, comments
    ("test_fmt.py", "test_a_scrambled_zoo_file_formats_back_to_itself_with_the_same_graph"): {
        "lenet5.net",
        "resnet50.net",
        "inception_v3.net",
        "efficientnet.net",
        "mobilenet_v3_large.net",
        "nasnet_mobile.net",
        "regnet.net",
        "gpt2.net",
        "resnet.net",
        "inception.net",
    },
    ("test_explain.py", "test_every_zoo_network_explains"): {
        "lenet5",
        "alexnet",
        "resnet50",
        "inception_v3",
        "nasnet_mobile",
        "efficientnet",
        "shufflenet_v2",
        "unet",
        "vit",
        "gpt2",
    },
    ("test_render.py", "test_every_zoo_network_renders_to_svg"): {
        "lenet5",
        "resnet50",
        "googlenet",
        "alexnet",
        "densenet121",
    },
}


@pytest.hookimpl(tryfirst=True)  # before -m selects by the marks
def pytest_collection_modifyitems(config, items):
    for item in items:
        fast = FAST_CASES.get((item.path.name, getattr(item, "originalname", item.name)))
        callspec = getattr(item, "callspec", None)
        if fast is not None and callspec is not None and callspec.id not in fast:
            item.add_marker(pytest.mark.slow)


def pytest_collection_finish(session):
    """What collecting imported (torch, TensorFlow, Keras, the test modules) lives as long as
    the session: frozen, the garbage collector's full passes stop walking it again and again,
    which took a quarter of the fast loop's time (39 s of CPU time -> 29 s)."""
    gc.freeze()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With NETDSL_NO_SKIPS set, a skipped test fails: .ci/run's torchvision step sets it, so
    that its tests cannot pass by not running (an import that fails there skips them)."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("NETDSL_NO_SKIPS") and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped where every test must run (NETDSL_NO_SKIPS is set): {reason}"


def need(module: str):
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


def compile_text(text: str, **kwargs):
    from netdsl import compile_text as _compile

    return _compile(text, "test.net", **kwargs)


# ---- examples in the docs ----------------------------------------------------------------------

# a first line `# file: NAME` names a program for the commands shown after it; one that says
# `(does not check)` demonstrates an error and must fail
FILE_MARK = re.compile(r"^# file: (\S+)(.*)$")


def doc_blocks(doc: Path, lang: str) -> list[tuple[int, str]]:
    """The ```lang fenced blocks of a Markdown file, with the line each one's text starts on."""
    text = doc.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, m.start(1)) + 1, m.group(1))
        for m in re.finditer(rf"```{lang}\n(.*?)```", text, flags=re.DOTALL)
    ]


def doc_programs(doc: Path) -> list[tuple[int, str]]:
    """The ```netdsl blocks that are complete programs (they define a network)."""
    return [
        (line, block)
        for line, block in doc_blocks(doc, "netdsl")
        if re.search(r"^network ", block, flags=re.MULTILINE)
    ]


def doc_files(doc: Path, folder: Path) -> dict[str, bool]:
    """Write the `# file: NAME` programs of `doc` into `folder`: {NAME: whether it must check}."""
    files = {}
    for _, block in doc_blocks(doc, "netdsl"):
        mark = FILE_MARK.match(block.splitlines()[0])
        if mark:
            (folder / mark.group(1)).write_text(block, encoding="utf-8")
            files[mark.group(1)] = "(does not check)" not in mark.group(2)
    return files


def check_doc_programs(doc: Path, minimum: int = 1) -> list[tuple[int, str]]:
    """Every complete program in `doc` checks, except those marked `(does not check)`, which fail.

    Programs are compiled beside the doc's `# file:` programs, so `use "NAME"` finds them.
    """
    import tempfile

    from netdsl import NetdslError, compile_file, compile_text

    programs = doc_programs(doc)
    assert len(programs) >= minimum, f"{doc.name}: {len(programs)} programs, expected {minimum}+"
    where = doc.relative_to(ROOT) if doc.is_relative_to(ROOT) else doc
    with tempfile.TemporaryDirectory() as folder:
        doc_files(doc, Path(folder))
        for line, program in programs:
            mark = FILE_MARK.match(program.splitlines()[0])
            failing = bool(mark) and "(does not check)" in mark.group(2)
            try:
                if mark:  # from its file, so that `use "sibling.net"` resolves
                    compile_file(Path(folder) / mark.group(1))
                else:
                    compile_text(program, f"{where}#line{line}")
            except NetdslError as e:
                if not failing:
                    raise AssertionError(
                        f"{where}:{line}: the example does not check:\n{program}\n{e}"
                    ) from None
            else:
                assert not failing, f"{where}:{line}: marked `(does not check)` but checks"
    return programs


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """`netdsl ARGV` in this process: exit code, stdout and stderr."""
    from netdsl.cli import main

    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse's own usage errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err
