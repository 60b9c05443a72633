"""docs/tutorial.md stays true: its programs check, its commands run and print what it shows.

The tutorial's programs carry a first line `# file: NAME`; they are written to a
scratch directory, and every `$ ` command of its ```console blocks runs there in
order. `netdsl` commands run in-process and must print exactly the lines shown
(a `...` line skips any number of lines); other commands (the generated
scripts) must exit 0, and what the tutorial shows of their output is compared
the same way when it shows any. A ```python excerpt after `<!-- from FILE -->`
must be in the generated FILE, in order, where `...` lines skip. The images in
docs/images are what the tutorial's render commands draw.
"""

from __future__ import annotations

import contextlib
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


def test_tutorial_programs_check():
    check_doc_programs(TUTORIAL, minimum=4)


def test_tutorial_images_exist_and_are_svg():
    text = TUTORIAL.read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(images) >= 3
    for image in images:
        path = TUTORIAL.parent / image
        assert path.is_file(), f"{image} is referenced but missing"
        assert path.read_text(encoding="utf-8").lstrip().startswith(("<?xml", "<svg")), image


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
    """`shown` equals `actual` (or a part of it), where a `...` line stands for any lines."""
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


def run_netdsl(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code
    return code, out.getvalue()


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
    failing = {name for name, checks in doc_files(TUTORIAL, tmp_path).items() if not checks}
    monkeypatch.chdir(tmp_path)
    found = commands(TUTORIAL)
    assert len(found) >= 10
    for line, command, shown in found:
        argv = shlex.split(command, comments=True)
        where = f"docs/tutorial.md:{line}: `{command}`"
        if argv[0] == "netdsl":
            code, output = run_netdsl(argv[1:])
            expected = 1 if failing & set(argv) else 0
        else:
            assert argv[0] == "python", f"{where}: only netdsl and python commands are run"
            result = subprocess.run(
                [sys.executable, *argv[1:]],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            code, output, expected = result.returncode, result.stdout + result.stderr, 0
        assert code == expected, f"{where} exited {code}:\n{output}"
        if shown or argv[0] == "netdsl":
            assert shown_in(shown, output.splitlines()), (
                f"{where} printed:\n{output}\nbut the tutorial shows:\n" + "\n".join(shown)
            )
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
