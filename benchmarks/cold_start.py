"""Cold start: `netdsl check architectures/resnet50.net` as a whole process.

    python benchmarks/cold_start.py [--runs 30]

Runs each command as a fresh process, the commands interleaved (one of each per round,
in a rotating order), and reports the median, the interquartile range and the minimum
of the wall time, and the median CPU time (user + system). The interpreter's own start
is measured alongside (`python -S -c pass`, `python -I -c pass`, `python -c pass`), so
the figure can be read against what no Python program can go below. The console
script is the one installed beside this interpreter (not a pyenv shim).

Bytecode: like any installed package, netdsl is measured with its modules' bytecode
cached; the script writes it first (`compileall`), since a sandbox may set
PYTHONDONTWRITEBYTECODE. `--where` adds where the time goes: `-X importtime` grouped
by package, and the compiler's own phases in one process.
"""

from __future__ import annotations

import argparse
import compileall
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, netdsl_env, print_header, run_timed, table  # noqa: E402

TARGET = "architectures/resnet50.net"


def commands() -> list[tuple[str, list[str]]]:
    py = sys.executable
    script = Path(py).parent / "netdsl"
    found = [
        ("python -S -c pass", [py, "-S", "-c", "pass"]),
        ("python -I -c pass", [py, "-I", "-c", "pass"]),
        ("python -c pass", [py, "-c", "pass"]),
        ("python -c 'import netdsl.cli'", [py, "-c", "import netdsl.cli"]),
        (f"python -m netdsl check {TARGET}", [py, "-m", "netdsl", "check", TARGET]),
    ]
    if script.exists():
        found.append((f"netdsl check {TARGET}", [str(script), "check", TARGET]))
    return found


def importtime_by_package() -> list[list]:
    """Self time of every import on the check path, summed per top-level package."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "netdsl", "check", TARGET],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    totals: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = (part.strip() for part in line[len("import time:") :].split("|"))
        package = name.split(".")[0]
        if package.startswith("_"):
            package = "(stdlib, C)"
        elif package not in ("netdsl", "lark", "regex", "site", "certifi"):
            package = "(stdlib)"
        totals[package] = totals.get(package, 0.0) + float(self_us) / 1000
    return [[k, f"{v:.1f}"] for k, v in sorted(totals.items(), key=lambda kv: -kv[1])]


# the command's own path: lark imported without `regex`, the collector off (netdsl.cli.main)
PHASES = r"""
import gc, time
t0 = time.perf_counter()
import netdsl.cli
netdsl.cli._import_lark_without_regex()
import netdsl.compiler, netdsl.parser
gc.disable()
t1 = time.perf_counter()
netdsl.parser._lark()
t2 = time.perf_counter()
from netdsl.loader import Loader
menv = Loader().load_file("{target}", "{target}")
t3 = time.perf_counter()
from netdsl.elaborate import Elaborator
net = Elaborator().network(menv)
t4 = time.perf_counter()
print(f"{{(t1 - t0) * 1e3:.1f}} {{(t2 - t1) * 1e3:.1f}} {{(t3 - t2) * 1e3:.1f}} {{(t4 - t3) * 1e3:.1f}}")
"""


def phases(runs: int) -> list[list]:
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", PHASES.format(target=TARGET)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        samples.append([float(v) for v in out])
    names = [
        "import netdsl.cli + compiler + parser (lark)",
        "load the grammar (lark cache)",
        f"parse {TARGET} and the resnet stdlib",
        "elaborate (shapes, params, MACs)",
    ]
    return [[n, f"{statistics.median(col):.1f}"] for n, col in zip(names, zip(*samples))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="rounds (each runs every command)")
    parser.add_argument("--where", action="store_true", help="also show where the time goes")
    args = parser.parse_args(argv)

    compileall.compile_dir(str(ROOT / "netdsl"), quiet=1)
    env, netdsl_from = netdsl_env()
    cmds = commands()
    print_header(
        "Cold start",
        {
            "PYTHONDONTWRITEBYTECODE": env.get("PYTHONDONTWRITEBYTECODE", "(unset)"),
            "netdsl from": netdsl_from,
            "rounds": args.runs,
        },
    )
    for _, cmd in cmds:  # warm the page cache
        run_timed(cmd, env)
    walls: dict[str, list[float]] = {name: [] for name, _ in cmds}
    cpus: dict[str, list[float]] = {name: [] for name, _ in cmds}
    for r in range(args.runs):
        order = cmds[r % len(cmds) :] + cmds[: r % len(cmds)]
        for name, cmd in order:
            wall, cpu = run_timed(cmd, env)
            walls[name].append(wall)
            cpus[name].append(cpu)
    rows = []
    for name, _ in cmds:
        w = walls[name]
        q = statistics.quantiles(w, n=4)
        rows.append(
            [
                f"`{name}`",
                f"**{statistics.median(w) * 1e3:.0f}**",
                f"{q[0] * 1e3:.0f}-{q[2] * 1e3:.0f}",
                f"{min(w) * 1e3:.0f}",
                f"{statistics.median(cpus[name]) * 1e3:.0f}",
            ]
        )
    print(table(["command", "wall ms (median)", "wall IQR", "wall min", "CPU ms (median)"], rows))
    if args.where:
        print()
        print(
            table(
                ["imports on the check path, by package", "self ms (-X importtime)"],
                importtime_by_package(),
            )
        )
        print()
        print(
            table(
                ["phase (in one process, after the interpreter's start)", "ms (median)"],
                phases(max(5, args.runs // 3)),
            )
        )
    return 0


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"\n(benchmark took {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    sys.exit(code)
