"""`netdsl zoo`: the networks in architectures/, their figures and their references.

Every zoo file opens with a header comment that states what the file claims,
so the claim can be listed and checked (`netdsl zoo --check`):

    # ResNet-50 — He et al., "Deep Residual Learning ..." (CVPR 2016), Table 1.
    # Reference: torchvision.models.resnet50 — where it departs from the paper, and why.
    # Expected: 25,557,032 params, 4,089,184,256 MACs at 3x224x224.

* the title is the first line, up to " — ";
* `Reference:` names the implementation whose figures the file matches, up to
  " — " or the end of the line; a file without one names the paper's table:
  `Reference: paper (Table 6) — ...`;
* `Expected:` holds the reference's figures: `N params`, or `N params+buffers`
  where the reference is Keras (its count_params() includes BatchNorm's moving
  mean and variance, which netdsl counts as buffers); then optionally `M MACs`;
  then `at CxHxW` (or `at F` for a flat input);
* `Init:` names the initialisation the file states (its reference's, or its
  paper's), up to the next field line.

The header is the first run of `#` lines; other lines of it are free prose.
docs/zoo.md is this module's `--markdown` output.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .symbolic import TokenIds

_NUMBER = r"(\d[\d,]*)"
_EXPECTED = re.compile(
    rf"^{_NUMBER} params(?P<buffers>\s*\+\s*buffers)?\b.*?(?:{_NUMBER} MACs\b.*?)?"
    r"\bat (?P<input>\d+(?:x\d+)*)\.?\s*$"
)


@dataclass
class Header:
    title: str = ""
    reference: str = ""
    expected_params: int | None = None
    with_buffers: bool = False  # the expected count includes BatchNorm buffers (Keras)
    expected_macs: int | None = None
    expected_input: tuple[int, ...] | None = None
    init: str = ""
    problems: tuple[str, ...] = ()


@dataclass
class Entry:
    name: str
    path: str
    title: str
    reference: str
    input: tuple[int, ...]
    params: int
    buffers: int
    macs: int
    header: Header

    def mismatches(self) -> list[str]:
        """How the compiled figures differ from the header's Expected line."""
        h = self.header
        found = list(h.problems)
        if h.expected_params is not None:
            counted = self.params + (self.buffers if h.with_buffers else 0)
            if counted != h.expected_params:
                what = "params+buffers" if h.with_buffers else "params"
                found.append(f"{what} {counted:,}, expected {h.expected_params:,}")
        if h.expected_macs is not None and self.macs != h.expected_macs:
            found.append(f"MACs {self.macs:,}, expected {h.expected_macs:,}")
        if h.expected_input is not None and self.input != h.expected_input:
            found.append(f"input {_shape(self.input)}, expected {_shape(h.expected_input)}")
        return found


def _int(text: str | None) -> int | None:
    return int(text.replace(",", "")) if text else None


def _shape(dims) -> str:
    """3x224x224; token ids as `1024 ids < 50257` (their vocabulary)."""
    text = "x".join(str(d) for d in dims)
    return f"{text} ids < {dims.vocab}" if isinstance(dims, TokenIds) else text


def _continued(lines: list[str], start: int) -> str:
    """A header field's text: its line and the lines after it, up to the next `Field:` line."""
    parts = [lines[start]]
    for line in lines[start + 1 :]:
        if re.match(r"^\w[\w ]*:", line) or not line:
            break
        parts.append(line)
    return " ".join(parts)


def read_header(text: str) -> Header:
    """Parse the leading `#` comment of a zoo file (see the module docstring)."""
    lines = []
    for raw in text.splitlines():
        if not raw.startswith("#"):
            break
        lines.append(raw[1:].strip())
    header = Header()
    problems = []
    if lines:
        header.title = lines[0].split(" — ")[0].strip()
    for i, line in enumerate(lines):
        if line.startswith("Reference:"):
            header.reference = line[len("Reference:") :].split(" — ")[0].strip().rstrip(".")
        elif line.startswith("Init:"):
            header.init = _continued(lines, i)[len("Init:") :].strip()
        elif line.startswith("Expected:"):
            value = _continued(lines, i)[len("Expected:") :].strip()
            m = _EXPECTED.match(value)
            if m is None:
                problems.append(f"cannot read the Expected line: {value!r}")
                continue
            header.expected_params = _int(m.group(1))
            header.with_buffers = bool(m.group("buffers"))
            header.expected_macs = _int(m.group(3))
            header.expected_input = tuple(int(d) for d in m.group("input").split("x"))
    if not header.reference:
        problems.append("no '# Reference:' line in the header")
    if header.expected_params is None and not problems:
        problems.append("no '# Expected:' line in the header")
    header.problems = tuple(problems)
    return header


def zoo_files(directory: Path | None = None) -> list[Path]:
    """The zoo's files in natural order: resnet18, resnet34, ..., resnet152."""
    from .resources import zoo_dir

    def key(path: Path):
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.stem)]

    return sorted((directory or zoo_dir()).glob("*.net"), key=key)


def entry(path: Path) -> Entry:
    """Compile one zoo file with its default parameters and read its header."""
    from .compiler import compile_file

    header = read_header(path.read_text(encoding="utf-8"))
    net = compile_file(path)
    shape = next(iter(net.inputs.values())).out_shape
    return Entry(
        path.stem,
        str(path),
        header.title,
        header.reference,
        shape,
        net.total_params,
        net.total_buffers,
        net.total_macs,
        header,
    )


def entries(directory: Path | None = None) -> list[Entry]:
    return [entry(p) for p in zoo_files(directory)]


# ---- output ---------------------------------------------------------------------------------

MARKDOWN_INTRO = """\
# The architecture zoo

Every network in `architectures/`, compiled with its default parameters. Each
file names its paper and the implementation it reproduces (the *reference*),
and states the reference's figures in its header; `netdsl zoo --check` (run by
the tests) compiles every file and fails on any difference.

- **Params** count weights, biases and BatchNorm's scale and shift;
  **BN buffers** are BatchNorm's running mean and variance. Keras'
  `count_params()` includes those buffers, so a Keras reference's figure is
  params + buffers (marked †).
- **MACs** are the multiply-accumulates of conv and linear layers, batch 1, on
  the eval path (train-time auxiliary heads excluded) — the convention of
  `torch.utils.flop_counter` and fvcore.
- A file's header reads:

      # ResNet-50 — He et al., "Deep Residual Learning ..." (CVPR 2016), Table 1.
      # Reference: torchvision.models.resnet50 — how and why it departs from the paper.
      # Expected: 25,557,032 params, 4,089,184,256 MACs at 3x224x224.
      # Init: torchvision's: every conv kaiming_normal(fan_out, relu), ...

  (`N params+buffers` for a Keras reference; `Reference: paper (...)` where
  there is no library implementation.) The `Init:` line names the scheme the
  file writes (`init=`, `defaults conv init=...`), listed below the table.

Regenerate this page with `netdsl zoo --markdown > docs/zoo.md`; a test fails
when it is stale.
"""


def markdown(items: list[Entry]) -> str:
    rows = [
        "| Network | Architecture | Input | Params | BN buffers | MACs | Reference |",
        "|---|---|---|--:|--:|--:|---|",
    ]
    for e in items:
        mark = " †" if e.header.with_buffers else ""
        reference = e.reference.replace("|", "\\|")
        rows.append(
            f"| [{e.name}](../architectures/{e.name}.net) | {e.title} | "
            f"{_shape(e.input)} | {e.params:,} | {e.buffers:,} | {e.macs:,} | "
            f"{reference}{mark} |"
        )
    inits = ["## Initialisation", ""]
    inits += [f"- **{e.name}**: {e.header.init or '(not stated)'}" for e in items]
    return MARKDOWN_INTRO + "\n" + "\n".join(rows) + "\n\n" + "\n".join(inits) + "\n"


def table(items: list[Entry]) -> str:
    rows = [("network", "params", "MACs", "input", "reference")]
    for e in items:
        rows.append((e.name, f"{e.params:,}", f"{e.macs:,}", _shape(e.input), e.reference))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(
        f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  "
        f"{r[3]:<{widths[3]}}  {r[4]}"
        for r in rows
    )


def as_json(e: Entry) -> dict:
    h = e.header
    return {
        "name": e.name,
        "path": e.path,
        "title": e.title,
        "reference": e.reference,
        "input": list(e.input),
        "params": e.params,
        "buffers": e.buffers,
        "macs": e.macs,
        "expected": {
            "params": h.expected_params,
            "includes_buffers": h.with_buffers,
            "macs": h.expected_macs,
            "input": list(h.expected_input) if h.expected_input else None,
        },
        "mismatches": e.mismatches(),
    }


def cmd_zoo(args) -> int:
    items = entries()
    if args.check:
        failed = [(e, e.mismatches()) for e in items if e.mismatches()]
        for e, problems in failed:
            print(f"{e.path}: {'; '.join(problems)}", file=sys.stderr)
        if not failed:
            print(f"{len(items)} networks match their references")
        return 1 if failed else 0
    if args.json:
        print(json.dumps([as_json(e) for e in items], indent=1))
    elif args.markdown:
        sys.stdout.write(markdown(items))
    else:
        print(table(items))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "zoo", help="list the architecture zoo: params, MACs, input, reference"
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--markdown", action="store_true", help="print docs/zoo.md: the zoo as a Markdown page"
    )
    group.add_argument("--json", action="store_true", help="print a JSON list")
    group.add_argument(
        "--check",
        action="store_true",
        help="exit 1 unless every network matches its header's Expected figures",
    )
    p.set_defaults(func=cmd_zoo)


__all__ = ["Entry", "Header", "entries", "entry", "markdown", "read_header", "zoo_files"]
