"""README.md and docs/tutorial.md stay true: their programs check, their commands run and
print exactly what they show.

A doc's programs carry a first line `# file: NAME`; they are written to a scratch
directory, and every `$ ` command of its ```console blocks runs there in order.
`netdsl` commands run in-process; other commands (the generated scripts) run as
`python`. Each must print exactly the lines shown after it, line for line: a doc
cannot skip lines of an output. The one allowance is for what varies from run to
run, a script's timings: in the output of a generated script (never of netdsl, whose
output does not vary), `…` stands for one number, e.g. `1740 img/s` shown as
`… img/s`. A ```python excerpt after `<!-- from FILE -->` must be in the generated
FILE, in order, where `...` lines skip (an excerpt is a part of a file, not an
output). The images in docs/images are what the tutorial's render commands draw.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, check_doc_programs, doc_blocks, doc_files, need

from netdsl.cli import main

TUTORIAL = ROOT / "docs" / "tutorial.md"
README = ROOT / "README.md"
TIMING = "…"  # in a script's documented output: one number that varies between runs
NUMBER = r"\d[\d,.]*"


def test_tutorial_programs_check():
    check_doc_programs(TUTORIAL, minimum=4)


def test_readme_programs_check():
    check_doc_programs(README, minimum=2)


def test_tutorial_images_exist_and_are_svg_or_png():
    text = TUTORIAL.read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(images) >= 3
    for image in images:
        path = TUTORIAL.parent / image
        assert path.is_file(), f"{image} is referenced but missing"
        data = path.read_bytes()
        if image.endswith(".png"):
            assert data.startswith(b"\x89PNG\r\n\x1a\n"), image
        else:
            assert data.decode("utf-8").lstrip().startswith(("<?xml", "<svg")), image


def commands(doc) -> list[tuple[int, str, list[str]]]:
    """(line, command, the output lines shown after it) for each `$ ` line of ```console blocks."""
    found = []
    for start, block in doc_blocks(doc, "console"):
        for offset, line in enumerate(block.splitlines()):
            if line.startswith("$ "):
                found.append((start + offset, line[2:], []))
            elif found and found[-1][0] >= start:
                found[-1][2].append(line.rstrip())
    return found


def shown_in(shown: list[str], actual: list[str], whole: bool = True) -> bool:
    """The excerpt `shown` is in `actual` (a generated file), where a `...` line stands for
    any lines; `whole`: it is all of `actual`."""
    pattern = "".join(
        ".*?\n" if line.strip() == "..." else re.escape(line) + "\n" for line in shown
    )
    actual = list(actual)
    while actual and not actual[-1].strip():
        actual.pop()
    text = "".join(line + "\n" for line in actual)
    if whole:
        return re.fullmatch(pattern, text, re.DOTALL) is not None
    return re.search("^" + pattern, text, re.DOTALL | re.MULTILINE) is not None


def output_differs(shown: list[str], printed: str) -> str | None:
    """None when `printed` is exactly the documented output `shown` (trailing spaces and
    blank lines aside; a `…` stands for one number), else the difference as a diff."""
    actual = [line.rstrip() for line in printed.splitlines()]
    while actual and not actual[-1]:
        actual.pop()
    expected = list(shown)
    while expected and not expected[-1]:
        expected.pop()
    same = len(actual) == len(expected) and all(
        a == e
        or (
            TIMING in e
            and re.fullmatch(NUMBER.join(re.escape(part) for part in e.split(TIMING)), a)
        )
        for a, e in zip(actual, expected)
    )
    if same:
        return None
    return "\n".join(
        difflib.unified_diff(expected, actual, "documented", "printed", lineterm="", n=2)
    )


def run_netdsl(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code
    return code, out.getvalue()


def run_doc_commands(doc, folder) -> None:
    """Run every `$ ` command of `doc`'s ```console blocks in `folder` (the current
    directory), where its `# file:` programs are written; each must print what is shown."""
    failing = {name for name, checks in doc_files(doc, folder).items() if not checks}
    found = commands(doc)
    for line, command, shown in found:
        argv = shlex.split(command, comments=True)
        where = f"{doc.relative_to(ROOT)}:{line}: `{command}`"
        if argv[0] == "netdsl":
            code, output = run_netdsl(argv[1:])
            expected = 1 if failing & set(argv) else 0
        else:
            assert argv[0] == "python", f"{where}: only netdsl and python commands are run"
            result = subprocess.run(  # both streams, interleaved as a terminal shows them
                [sys.executable, *argv[1:]],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=600,
                check=False,
            )
            code, output, expected = result.returncode, result.stdout, 0
        assert code == expected, f"{where} exited {code}:\n{output}"
        diff = output_differs(shown, output)
        assert diff is None, f"{where} does not print what the doc shows:\n{diff}"


DOCS = [README, TUTORIAL]


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_documented_outputs_are_whole(doc):
    """No documented output skips lines, and only a script's output has timings (`…`)."""
    found = commands(doc)
    assert found
    for line, command, shown in found:
        where = f"{doc.relative_to(ROOT)}:{line}: `{command}`"
        assert all(s.strip() not in ("...", TIMING) for s in shown), (
            f"{where}: a documented output shows every line (`...` skips none)"
        )
        if command.startswith("netdsl "):
            assert not any(TIMING in s for s in shown), (
                f"{where}: netdsl's output does not vary; `{TIMING}` is for a script's timings"
            )


def test_readme_commands_print_what_is_shown(tmp_path, monkeypatch):
    (tmp_path / "architectures").symlink_to(ROOT / "architectures")
    monkeypatch.chdir(tmp_path)
    assert len(commands(README)) >= 2
    run_doc_commands(README, tmp_path)


def test_output_comparison_is_exact():
    """What the doc tests accept: the lines printed, and numbers where `…` stands."""
    assert output_differs(["a", "b"], "a\nb\n\n") is None
    assert output_differs(["step 2 … img/s"], "step 2 1,740.5 img/s") is None
    assert "+b" in output_differs(["a"], "a\nb")  # a line the doc leaves out
    assert "-b" in output_differs(["a", "b"], "a")
    assert output_differs(["a", "..."], "a\nb") is not None  # `...` skips nothing
    assert output_differs(["step … img/s"], "step fast img/s") is not None  # numbers only
    assert output_differs(["step 2 img/s"], "step 3 img/s") is not None


@pytest.mark.slow
def test_tutorial_commands_work_and_print_what_is_shown(tmp_path, monkeypatch):
    need("torch")
    need("onnx")
    need("onnxscript")
    need("sklearn")
    if shutil.which("dot") is None:
        if os.environ.get("CI"):
            pytest.fail("Graphviz's dot is not installed")
        pytest.skip("Graphviz's dot is not installed")
    monkeypatch.chdir(tmp_path)
    assert len(commands(TUTORIAL)) >= 10
    run_doc_commands(TUTORIAL, tmp_path)
    excerpts = re.findall(
        r"<!-- from (\S+) -->\n```python\n(.*?)```",
        TUTORIAL.read_text(encoding="utf-8"),
        flags=re.DOTALL,
    )
    assert len(excerpts) >= 3
    for name, excerpt in excerpts:
        generated = (tmp_path / name).read_text(encoding="utf-8").splitlines()
        assert shown_in(excerpt.splitlines(), generated, whole=False), (
            f"docs/tutorial.md: this excerpt is not in the generated {name}:\n{excerpt}"
        )
    # the committed images are these renders (labels compared: layout varies with Graphviz)
    labels = re.compile(r"<text[^>]*>(.*?)</text>")
    rendered = sorted(tmp_path.glob("*.svg"))
    assert len(rendered) >= 3
    for svg in rendered:
        committed = TUTORIAL.parent / "images" / svg.name
        assert committed.is_file(), f"{svg.name} is rendered by the tutorial but not in docs/images"
        assert labels.findall(committed.read_text(encoding="utf-8")) == labels.findall(
            svg.read_text(encoding="utf-8")
        ), f"docs/images/{svg.name} is out of date: rerun the tutorial's render command"
