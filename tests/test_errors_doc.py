"""docs/errors.md stays true and complete.

Each example there is one or more files (a ```netdsl block is saved as
example.net, or as the name its first line gives: `# file: NAME`, followed by
`(without this line)` for a file whose own first line matters) and a
```text block that starts with the command (`$ netdsl check example.net`)
followed by exactly what netdsl prints. The examples run here in a scratch
folder, in-process, 80 columns wide; the output must equal the documented text
and the exit status must be 1 (2 under a heading that says "exit 2").

The doc must also be complete: the literal text of every message that netdsl's
source raises (NetdslError, UsageError, ShapeError) appears in it, in an
example or in a grouped list.

After changing a message, `python tests/test_errors_doc.py` rewrites the
documented outputs from what netdsl prints now; review the diff.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "errors.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.DOTALL | re.MULTILINE)
FILE_MARK = re.compile(r"^# file: (\S+)(.*)$")
ERRORS = ("NetdslError", "UsageError", "ShapeError")


@dataclass
class Example:
    line: int  # where the ```text block's output starts in the doc
    heading: str  # the `## ` section it is in
    files: dict  # name -> bytes
    argv: list
    shown: str
    start: int  # offsets of the output in the doc's text, for rewriting it
    end: int

    @property
    def expected_exit(self) -> int:
        return 2 if "exit 2" in self.heading else 1


def examples(text: str | None = None) -> list[Example]:
    text = DOC.read_text(encoding="utf-8") if text is None else text
    headings = [(m.start(), m.group(1)) for m in re.finditer(r"^## (.*)$", text, re.MULTILINE)]
    found, files = [], {}
    for m in FENCE.finditer(text):
        lang, body = m.group(1), m.group(2)
        first = body.split("\n", 1)[0]
        mark = FILE_MARK.match(first)
        if lang == "netdsl" or mark:
            name = mark.group(1) if mark else "example.net"
            encoding = "latin-1" if mark and "(saved as Latin-1)" in mark.group(2) else "utf-8"
            if mark and "(without this line)" in mark.group(2):  # a file with a set first line
                body = body.split("\n", 1)[1]
            files[name] = body.encode(encoding)
        elif lang == "text" and first.startswith("$ "):
            heading = [h for pos, h in headings if pos < m.start()][-1:] or [""]
            output_start = m.start(2) + len(first) + 1
            found.append(
                Example(
                    text.count("\n", 0, output_start) + 1,
                    heading[0],
                    files,
                    shlex.split(first[2:]),
                    body[len(first) + 1 :],
                    output_start,
                    m.end(2),
                )
            )
            files = {}
    return found


def run(example: Example, folder: Path) -> tuple[int, str]:
    """Write the example's files into `folder` and run its command there."""
    from netdsl.cli import main

    assert example.argv[0] == "netdsl", f"docs/errors.md:{example.line}: not a netdsl command"
    for name, data in example.files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    out = io.StringIO()
    cwd, columns = os.getcwd(), os.environ.get("COLUMNS")
    os.chdir(folder)
    os.environ["COLUMNS"] = "80"  # argparse wraps its usage line to the terminal
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                code = main(example.argv[1:])
            except SystemExit as e:  # argparse's own usage errors
                code = e.code
    finally:
        os.chdir(cwd)
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    return code, out.getvalue()


EXAMPLES = examples()


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"line{e.line}" for e in EXAMPLES])
def test_each_example_prints_what_the_doc_shows(example, tmp_path):
    code, output = run(example, tmp_path)
    where = f"docs/errors.md:{example.line} ({example.heading})"
    assert output == example.shown, (
        f"{where}: netdsl now prints\n{output}\nbut the doc "
        "shows\n" + example.shown + "\n(python tests/test_errors_doc.py rewrites the outputs)"
    )
    assert code == example.expected_exit, f"{where}: exit {code}"
    assert "Traceback" not in output and "internal error" not in output, where


def test_examples_are_many_and_grouped():
    assert len(EXAMPLES) >= 80
    sections = re.findall(r"^## (.*)$", DOC.read_text(encoding="utf-8"), re.MULTILINE)
    for section in (
        "Syntax",
        "Names and calls",
        "Shapes",
        "Limits",
        "Files",
        "Train section",
        "Placement",
        "Command line",
    ):
        assert any(s.startswith(section) for s in sections), section
    assert {e.expected_exit for e in EXAMPLES} == {1, 2}


def raised_messages() -> list[tuple[str, int, str]]:
    """(file, line, the longest literal piece) of every error message in netdsl's source."""
    found = []
    for path in sorted((ROOT / "netdsl").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ERRORS
                and node.args
            ):
                continue
            message = node.args[0]
            parts = (
                [message]
                if isinstance(message, ast.Constant)
                else [v for v in getattr(message, "values", []) if isinstance(v, ast.Constant)]
            )
            if isinstance(message, ast.BinOp):  # "literal " + ", ".join(...)
                parts = [message.left] if isinstance(message.left, ast.Constant) else []
            pieces = [str(p.value) for p in parts if isinstance(p.value, str)]
            if pieces:
                found.append(
                    (str(path.relative_to(ROOT)), node.lineno, max(pieces, key=len).strip())
                )
    return found


def test_every_message_in_the_source_is_in_the_doc():
    """A new error without an entry in docs/errors.md fails here."""
    doc = DOC.read_text(encoding="utf-8")
    messages = raised_messages()
    assert len(messages) >= 120
    missing = [
        f"{file}:{line}: {piece!r}"
        for file, line, piece in messages
        if len(piece) >= 6 and piece not in doc
    ]
    assert not missing, "docs/errors.md does not show these messages:\n" + "\n".join(missing)


def update() -> None:
    """Rewrite every documented output with what netdsl prints now."""
    import tempfile

    text = DOC.read_text(encoding="utf-8")
    for example in reversed(examples(text)):
        with tempfile.TemporaryDirectory() as folder:
            code, output = run(example, Path(folder))
        if code != example.expected_exit:
            print(
                f"docs/errors.md:{example.line}: exit {code}, expected {example.expected_exit}",
                file=sys.stderr,
            )
        text = text[: example.start] + output + text[example.end :]
    DOC.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    update()
