"""The playground's Python side: what the page's Web Worker calls inside Pyodide.

Every answer is the command line's own: the text is written to a file of the same name in
a folder of the (virtual) file system and `netdsl check | summary | explain | compile` run
on it through netdsl.cli.main, so what the playground shows is byte for byte what
`netdsl ... FILE` prints. The diagnostics' positions come from the language server's
Document (lsp/document.py), which places an error of a used file at the call that led to
it. Plain Python runs this module too (tests/test_playground.py compares it with the CLI).

Each function takes the file's name (`resnet50.net`) and text and returns JSON text.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
from pathlib import Path

from ...cli import main
from ...lsp.document import Document

COMMANDS = {
    "summary": ["summary"],
    "explain": ["explain"],
    "torch": ["compile", "--target", "torch"],
    "keras": ["compile", "--target", "keras"],
}
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.net$")
_folder: list[Path] = []  # where the files are written: one folder for the process


def _workspace() -> Path:
    if not _folder:
        _folder.append(Path(tempfile.mkdtemp(prefix="netdsl-playground-")))
    return _folder[0]


@contextlib.contextmanager
def _in_workspace(name: str, text: str):
    """The text as the file `name`, alone in the workspace, which is the current directory
    while the block runs (the CLI names a file as it was given: `resnet50.net:12:5: ...`)."""
    if not _NAME.match(name):
        raise ValueError(f"not a playground file name: {name!r}")
    folder = _workspace()
    for other in folder.iterdir():  # the file is alone, as the page shows it
        if other.name != name:
            other.unlink()
    (folder / name).write_text(text, encoding="utf-8")
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def _run(argv: list[str]) -> dict:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return {"status": status, "stdout": out.getvalue(), "stderr": err.getvalue()}


def check(name: str, text: str) -> str:
    """{problems: [{severity, message, line, column, end_line, end_column, code}], report}:
    the markers for the editor and the report `netdsl check FILE` prints (stderr, then
    stdout)."""
    with _in_workspace(name, text):
        document = Document(name, text)
        report = [error.format() for error in document.errors]
        if document.crash:
            report.append(document.crash)
        seen = set()
        warnings = []
        for warning in document.warnings:
            key = (warning.code, warning.message, warning.span)
            if key not in seen:
                seen.add(key)
                warnings.append(warning)
        report += [warning.format() for warning in warnings]
        if not document.errors and not document.crash and document.networks:
            net = document.networks[0]
            counted = f", {len(warnings)} warning{'s' * (len(warnings) != 1)}" if warnings else ""
            report.append(
                f"{name}: ok: {net.name}, {len(net.nodes())} nodes, {net.total_params:,} "
                f"params, {net.total_macs:,} MACs{counted}"
            )
        problems = [
            {
                "severity": problem.severity,
                "message": problem.message,
                "line": problem.span.line,
                "column": problem.span.column,
                "end_line": problem.span.end_line or problem.span.line,
                "end_column": problem.span.end_column or problem.span.column + 1,
                "code": problem.code,
            }
            for problem in document.problems()
        ]
    return json.dumps({"problems": problems, "report": "\n".join(report)})


def run(name: str, text: str, command: str) -> str:
    """{status, stdout, stderr} of `netdsl summary | explain | compile --target T` FILE."""
    with _in_workspace(name, text):
        return json.dumps(_run([*COMMANDS[command][:1], name, *COMMANDS[command][1:]]))


def diagram(name: str, text: str) -> str:
    """{data} for NetdslDiagram.mount (web/diagram.py), or {error} as the CLI prints it."""
    from ...compiler import compile_file
    from ...errors import NetdslError
    from ..diagram import diagram_data

    with _in_workspace(name, text):
        try:
            return json.dumps({"data": diagram_data(compile_file(name))})
        except NetdslError as e:
            return json.dumps({"error": e.format()})
