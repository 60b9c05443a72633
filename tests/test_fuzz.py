"""Mutation fuzzing: broken versions of the zoo never crash netdsl.

Each input is a zoo file (or a standard-library module, or a doc program) with
one to three mutations: tokens inserted, deleted, duplicated or swapped; bytes
inserted, deleted or replaced (non-UTF-8 bytes and NUL among them);
truncation; numbers made huge; expressions nested thousands of levels deep;
names replaced by hostile identifiers. Every input goes through
`netdsl compile FILE --target torch` (in-process, through netdsl.cli.main,
with a per-input time limit), and where that fails, through `netdsl check`:
each must end with exit status 0, or 1 and a message located at
`FILE:LINE:COLUMN:`, never a traceback, an internal error or a hang; and
the Python it prints on success must parse.

The inputs are seeded, so a failure names the seed that reproduces it
(`mutate(seed)`). `NETDSL_FUZZ=N` runs N inputs instead of the default 2,000; the
fast loop (`pytest -m "not slow"`) runs 40 of other seeds instead.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import random
import re
import signal
import time

import pytest
from conftest import ARCHITECTURES, ROOT

from netdsl.cli import main

COUNT = int(os.environ.get("NETDSL_FUZZ", "2000"))
TIME_LIMIT = 10.0  # seconds per command; a hang is a failure
# mutated repeat counts may ask for huge networks: the limit keeps each input fast
# (the limit itself is tested in test_limits.py)
MAX_NODES = "3000"
SAMPLE = 15  # inputs in the fast loop (`-m "not slow"`), beside the COUNT of the full run

CORPUS = sorted(ARCHITECTURES.glob("*.net")) + sorted((ROOT / "netdsl" / "stdlib").glob("*.net"))
TOKEN = re.compile(
    r'\s+|#[^\n]*|"[^"\n]*"|[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?'
    r"|==|!=|<=|>=|//|.",
    re.DOTALL,
)
NUMBER = re.compile(r"\d+(?:\.\d*)?(?:[eE][+-]?\d+)?")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# what an inserted token may be: the language's own words and symbols, and worse
VOCABULARY = [
    "block",
    "network",
    "use",
    "defaults",
    "train",
    ":",
    "input",
    "output",
    "if",
    "then",
    "else",
    "and",
    "or",
    "not",
    "as",
    "id",
    "in",
    "true",
    "false",
    "none",
    "same",
    "for",
    "range(",
    "conv",
    "conv3",
    "conv0",
    "maxpool2",
    "fc",
    "bn",
    "relu",
    "gap",
    "flatten",
    "concat(",
    "add(",
    "mul(",
    "mean(",
    "(",
    ")",
    "[",
    "]",
    ",",
    "=",
    "+",
    "-",
    "*",
    "//",
    "/",
    "%",
    "==",
    "<",
    "@",
    "@gpu(",
    "@train",
    "@cpu",
    ".",
    ".c",
    "in.c",
    "x",
    "\n",
    "\n    ",
    "\\\n",
    "#",
    '"',
    '"x"',
    "0",
    "1",
    "-1",
    "0.5",
    "3x224x224",
    "1e999",
    "1e-999",
    "2**62",
    "9" * 30,
    "0x10",
    "_",
    "__init__",
    "class",
    "print",
    "self",
    "é",
    "ℕ",
    "\t",
    "\r",
    "\x00",
    "\ufeff",
    "\u2028",
    "×",
    "k=",
    "s=",
    "p=",
    "d=",
    "g=",
    "act=",
    "bias=",
    "ceil=true",
    "[relu]*0",
    "[relu]*100000",
    "[relu]*100001",
]
HOSTILE = [
    "class",
    "__import__",
    "print",
    "self",
    "torch",
    "nn",
    "keras",
    "layers",
    "x",
    "forward",
    "build_model",
    "INPUT_SHAPE",
    "_",
    "a" * 80,
    "naïve",
    "ℓ",
    "Σ",
]


def _tokens(text: str) -> list[str]:
    return TOKEN.findall(text)


def _words(tokens: list[str]) -> list[int]:
    return [i for i, t in enumerate(tokens) if not t.isspace() and not t.startswith("#")]


def _mutate_text(text: str, rng: random.Random) -> str | bytes:
    tokens = _tokens(text)
    if not tokens:  # an earlier mutation truncated the file to nothing
        return rng.choice(VOCABULARY)
    words = _words(tokens) or [0]
    kind = rng.choice(
        [
            "insert",
            "insert",
            "delete",
            "delete",
            "swap",
            "duplicate",
            "line",
            "number",
            "nest",
            "hostile",
            "truncate",
            "bytes",
        ]
    )
    if kind == "insert":
        i = rng.randrange(len(tokens) + 1)
        tokens.insert(i, rng.choice([" ", ""]) + rng.choice(VOCABULARY) + rng.choice([" ", ""]))
    elif kind == "delete":
        del tokens[rng.choice(words)]
    elif kind == "swap":
        a, b = rng.choice(words), rng.choice(words)
        tokens[a], tokens[b] = tokens[b], tokens[a]
    elif kind == "duplicate":
        i = rng.choice(words)
        tokens.insert(i, tokens[i])
    elif kind == "line":  # delete, duplicate or move a whole line
        lines = "".join(tokens).split("\n")
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        action = rng.choice(["delete", "duplicate", "move"])
        if action == "delete":
            del lines[i]
        elif action == "duplicate":
            lines.insert(j, lines[i])
        else:
            lines.insert(j, lines.pop(i))
        return "\n".join(lines)
    elif kind == "number":
        numbers = [i for i, t in enumerate(tokens) if NUMBER.fullmatch(t)] or words
        tokens[rng.choice(numbers)] = rng.choice(
            [
                "0",
                "-1",
                "4611686018427387904",
                "4611686018427387905",
                "9" * rng.randint(20, 400),
                "1e308",
                "1e999",
                "0.0000001",
                str(2**40),
                str(10**12),
                "99999",
                "100001",
                "3x99999x99999",
                "1x1x1",
                "0x0",
            ]
        )
    elif kind == "nest":
        i = rng.choice(words)
        depth = rng.choice([10, 200, 499, 501, 3000, 20000])
        opener, closer = rng.choice(
            [
                ("(", ")"),
                ("[", "]"),
                ("-", ""),
                ("not ", ""),
                ("concat(id, ", ")"),
                ("[", "]*1"),
                ("(", ") + relu"),
                ("if true then ", " else id"),
            ]
        )
        tokens[i] = opener * depth + tokens[i] + closer * depth
    elif kind == "hostile":
        names = [i for i, t in enumerate(tokens) if NAME.fullmatch(t)] or words
        tokens[rng.choice(names)] = rng.choice(HOSTILE)
    elif kind == "truncate":
        return "".join(tokens)[: rng.randrange(len(text) + 1)]
    else:
        data = bytearray("".join(tokens).encode("utf-8"))
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(data) + 1)
            byte = rng.choice([0, 0x80, 0xFF, 0xC3, 0xE2, 0x0C, 0x1B, 0x7F, rng.randrange(256)])
            action = rng.choice(["insert", "replace", "delete"])
            if action == "insert" or i == len(data):
                data[i:i] = bytes([byte])
            elif action == "replace":
                data[i] = byte
            else:
                del data[i]
        return bytes(data)
    return "".join(tokens)


def mutate(seed: int) -> tuple[str, bytes]:
    """(what it was made from, the mutated file's bytes) for one seed."""
    rng = random.Random(seed)
    base = rng.choice(CORPUS)
    data: str | bytes = base.read_text(encoding="utf-8")
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        data = _mutate_text(text, rng)
    return base.name, data if isinstance(data, bytes) else data.encode("utf-8")


class Hang(BaseException):
    """Raised by the timer: not an Exception, so netdsl's handlers cannot catch it."""


def _on_alarm(signum, frame):
    raise Hang


def run(argv: list[str]) -> tuple[int, str, str, float]:
    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT)
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as e:  # argparse
                code = e.code
    except Hang:
        code = "hang"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return code, out.getvalue(), err.getvalue(), time.perf_counter() - start


def problem(path: str, code, out: str, err: str, command: str) -> str | None:
    """What is wrong with one command's outcome (None: exit 0, or 1 with a located message)."""
    if code == "hang":
        return f"{command}: no answer within {TIME_LIMIT} s"
    if "Traceback" in err or "internal error" in err:
        return f"{command}: crashed:\n{err[-2000:]}"
    if code == 0:
        if command == "compile":
            try:
                ast.parse(out)
            except SyntaxError as e:
                return f"compile: printed Python that does not parse: {e}"
        return None
    if code != 1:
        return f"{command}: exit status {code}:\n{err[-1000:]}"
    first = err.splitlines()[0] if err else ""
    # the mistake may surface inside a used block (netdsl/stdlib/...), with a note
    # pointing back at the call in the file
    if not re.match(r"\S.*\.net:\d+:\d+: \S", first):
        return f"{command}: the message is not located at FILE:LINE:COLUMN:\n{err[-1000:]}"
    if not first.startswith(path) and f"{path}:" not in err:
        return f"{command}: the message does not lead back to {path}:\n{err[-1000:]}"
    return None


def fuzz(folder, seeds) -> list[tuple]:
    """Each seed's mutated input through compile (and check): (seed, origin, exit status of
    compile, the problem found or None, seconds, stderr)."""
    results = []
    for seed in seeds:
        origin, data = mutate(seed)
        path = folder / f"m{seed}.net"
        path.write_bytes(data)
        argv = ["compile", str(path), "--target", "torch", "--max-nodes", MAX_NODES]
        code, out, err, seconds = run(argv)
        found = problem(str(path), code, out, err, "compile")
        checked = None
        if code != 0 and found is None:  # `check` stops where compile did
            checked = run(["check", str(path), "--max-nodes", MAX_NODES])
            found = problem(str(path), checked[0], checked[1], checked[2], "check")
            if found is None and checked[0] == 0:
                found = f"check passes but compile failed:\n{err[-1000:]}"
        results.append((seed, origin, code, found, seconds, err))
    return results


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return fuzz(tmp_path_factory.mktemp("fuzz"), range(COUNT))


def assert_no_problems(outcomes) -> None:
    failures = [(seed, origin, found) for seed, origin, _, found, _, _ in outcomes if found]
    report = "\n\n".join(
        f"seed {seed} (from {origin}): {found}" for seed, origin, found in failures[:10]
    )
    assert not failures, f"{len(failures)} of {len(outcomes)} mutated inputs failed:\n{report}"


@pytest.mark.slow
def test_no_tracebacks_no_hangs_only_located_errors(outcomes):
    assert_no_problems(outcomes)
    assert len(outcomes) >= min(COUNT, 2000)


def test_a_sample_of_other_mutations_only_gives_located_errors(tmp_path):
    """The fast loop's share: a few inputs of seeds that the full run does not use."""
    assert_no_problems(fuzz(tmp_path, range(COUNT, COUNT + SAMPLE)))


@pytest.mark.slow
def test_the_mutations_reach_every_stage(outcomes):
    """The fuzzing is worth something: inputs fail in the lexer, parser, elaborator and
    emitter alike, and some still compile."""
    codes = [code for _, _, code, _, _, _ in outcomes]
    assert codes.count(0) >= len(codes) // 20, "almost nothing compiles: mutations too crude"
    messages = " ".join(err.split("\n", 1)[0] for *_, err in outcomes)
    for expected in (
        "syntax error",
        "unknown layer",
        "not UTF-8",
        "number too large",
        "nest more than",
    ):
        assert expected in messages, expected


def test_a_mutated_input_is_reproducible():
    assert mutate(7) == mutate(7)
    assert any(mutate(seed)[1] != mutate(seed + 1)[1] for seed in range(5))
