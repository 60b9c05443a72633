"""Determinism: the same program gives the same bytes on every run, whatever the hash seed.

Generated code goes into version control and review, so a recompile that
reorders a set or prints a memory address would show up as a spurious diff.
Four processes run under PYTHONHASHSEED=0, 1, 12345 and "random" (a new seed
each time); each runs one driver that calls `netdsl.cli.main` for every command
that prints or writes (summary --json and the table, compile for both targets,
compile --train, render to DOT, explain and its Markdown, zoo --markdown) over
zoo files where sets, dicts and graphs matter (Inception's and DenseNet's
concats, AlexNet's two-GPU placement, GoogLeNet's auxiliary outputs, ResNet-50's
`use resnet`), plus a digest of every zoo file's generated models and training
scripts. Everything each process printed and wrote is compared byte for byte.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys

import pytest
from conftest import ARCHITECTURES, ROOT

# four processes compile the zoo (both targets, every command): minutes, so not in the fast loop
pytestmark = pytest.mark.slow

SEEDS = ("0", "1", "12345", "random")
FILES = ("inception_v3", "densenet121", "alexnet", "googlenet", "resnet50")

# Runs the jobs given as JSON in argv[1] inside the folder argv[2] (so that every path it
# prints is relative): each job's exit status, stdout and stderr go to NAME.out.
DRIVER = r"""
import contextlib, hashlib, io, json, os, sys
from pathlib import Path

from netdsl.cli import main

jobs, folder, zoo = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
os.chdir(folder)
for name, argv in jobs:
    for option in ("-o",):
        if option in argv:
            Path(argv[argv.index(option) + 1]).parent.mkdir(parents=True, exist_ok=True)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code
    Path(name + ".out").write_text(f"exit {code}\n{out.getvalue()}--- stderr\n{err.getvalue()}")

from netdsl import compile_file
from netdsl.emit.keras import KerasEmitter
from netdsl.emit.torch import TorchEmitter

lines = []
for path in sorted(Path(zoo).glob("*.net")):
    net = compile_file(path)
    for emitter in (TorchEmitter(), KerasEmitter()):
        for text in (emitter.emit_model(net), emitter.emit_train(net, "model")):
            lines.append(f"{path.name} {type(emitter).__name__} "
                         f"{hashlib.sha256(text.encode()).hexdigest()}")
Path("zoo-digests.txt").write_text("\n".join(lines) + "\n")
"""


def jobs() -> list[tuple[str, list[str]]]:
    found = []
    for name in FILES:
        path = str(ARCHITECTURES / f"{name}.net")
        found += [
            (f"{name}.summary-json", ["summary", path, "--json"]),
            (f"{name}.summary", ["summary", path]),
            (f"{name}.torch", ["compile", path, "--target", "torch"]),
            (f"{name}.keras", ["compile", path, "--target", "keras"]),
            (
                f"{name}.torch-train",
                ["compile", path, "--target", "torch", "--train", "-o", f"{name}/torch/model.py"],
            ),
            (
                f"{name}.keras-train",
                ["compile", path, "--target", "keras", "--train", "-o", f"{name}/keras/model.py"],
            ),
            (f"{name}.render", ["render", path, "-o", f"{name}/{name}.dot"]),
            (f"{name}.explain", ["explain", path]),
            (f"{name}.explain-md", ["explain", path, "--markdown"]),
        ]
    return found + [("zoo-markdown", ["zoo", "--markdown"])]


def contents(folder) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict[str, bytes]]:
    """{seed: {file: bytes}}: what each process printed and wrote (run side by side)."""
    base = tmp_path_factory.mktemp("determinism")
    argv = json.dumps(jobs())
    started = {}
    for seed in SEEDS:
        folder = base / f"seed-{seed}"
        folder.mkdir()
        env = dict(
            os.environ,
            PYTHONHASHSEED=seed,
            PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        )
        started[seed] = (
            folder,
            subprocess.Popen(
                [sys.executable, "-c", DRIVER, argv, str(folder), str(ARCHITECTURES)],
                env=env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            ),
        )
    results = {}
    for seed, (folder, process) in started.items():
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, f"PYTHONHASHSEED={seed}:\n{output}"
        results[seed] = contents(folder)
    return results


def test_every_command_ran_and_wrote_what_it_should(runs):
    """Comparing outputs proves nothing if a command failed the same way under every seed."""
    files = runs["0"]
    for name, _ in jobs():
        assert files[f"{name}.out"].startswith(b"exit 0\n"), files[f"{name}.out"][:2000]
    for name in FILES:
        for target in ("torch", "keras"):
            for script in ("model.py", "train.py"):
                assert files[f"{name}/{target}/{script}"].startswith(b"# Generated by netdsl")
        assert files[f"{name}/{name}.dot"].startswith(b"digraph ")
    digests = files["zoo-digests.txt"].decode().splitlines()
    assert len(digests) == 4 * len(list(ARCHITECTURES.glob("*.net")))


@pytest.mark.parametrize("seed", SEEDS[1:])
def test_output_is_byte_identical_under_another_hash_seed(runs, seed):
    expected, got = runs["0"], runs[seed]
    assert sorted(got) == sorted(expected)
    differing = [name for name in expected if got[name] != expected[name]]
    if differing:
        name = differing[0]
        diff = difflib.unified_diff(
            expected[name].decode("utf-8", "replace").splitlines(),
            got[name].decode("utf-8", "replace").splitlines(),
            "PYTHONHASHSEED=0",
            f"PYTHONHASHSEED={seed}",
            lineterm="",
            n=1,
        )
        pytest.fail(
            f"{len(differing)} outputs differ ({', '.join(differing[:8])}); {name}:\n"
            + "\n".join(list(diff)[:40])
        )
