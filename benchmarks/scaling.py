"""Compiler scaling: CIFAR ResNets from 20 to 10,004 layers.

    python benchmarks/scaling.py [--depths 20,56,110,1202,5000,10004] [--reps 3]

architectures/resnet_cifar.net with `--param depth=N` (N = 6n + 2). Two views:

* in one process, after warm-up (imports done, grammar and templates loaded), with the
  cyclic garbage collector off as in the `netdsl` command: check (parse + elaborate:
  every shape, parameter and MAC), then the PyTorch and the Keras source. Time per node
  is each stage's time over the network's nodes.
* whole processes: `netdsl check` and `netdsl compile --target torch|keras -o FILE`, as
  a user runs them (interpreter start, imports and exit included).

Medians of --reps runs; the depths run interleaved (one of each per round, in a rotating
order).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, netdsl_env, print_header, run_timed, table  # noqa: E402

NET = "architectures/resnet_cifar.net"


def rotated(items: list, r: int) -> list:
    """Round r's order: each item leads once every len(items) rounds."""
    return items[r % len(items) :] + items[: r % len(items)]


def in_process(depths: list[int], reps: int, targets: list[str]) -> dict:
    from netdsl.compiler import compile_file
    from netdsl.emit import get_emitter
    from netdsl.loader import Loader
    from netdsl.symbolic import Num

    emitters = {t: get_emitter(t) for t in targets}
    warm = compile_file(ROOT / NET, params={"depth": Num(20)})
    for emitter in emitters.values():
        emitter.emit_model(warm)
    gc.disable()
    samples = {d: {"check": [], "parse": [], **{t: [] for t in targets}} for d in depths}
    nodes = {}
    for r in range(reps):
        for depth in rotated(depths, r):
            gc.collect()
            start = time.perf_counter()  # the part of check that does not depend on depth
            Loader().load_file(ROOT / NET, NET)
            samples[depth]["parse"].append(time.perf_counter() - start)
            start = time.perf_counter()
            net = compile_file(ROOT / NET, params={"depth": Num(depth)})
            samples[depth]["check"].append(time.perf_counter() - start)
            nodes[depth] = len(net.nodes())
            for target, emitter in emitters.items():
                start = time.perf_counter()
                emitter.emit_model(net)
                samples[depth][target].append(time.perf_counter() - start)
            del net
    gc.enable()
    return {
        d: {"nodes": nodes[d], **{k: statistics.median(v) for k, v in s.items()}}
        for d, s in samples.items()
    }


def whole_process(depths: list[int], reps: int, targets: list[str]) -> dict:
    script = Path(sys.executable).parent / "netdsl"
    base = [str(script)] if script.exists() else [sys.executable, "-m", "netdsl"]
    env, _ = netdsl_env()
    out = {d: {"check": [], **{t: [] for t in targets}} for d in depths}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(reps):
            for depth in rotated(depths, r):
                param = ["--param", f"depth={depth}"]
                out[depth]["check"].append(run_timed(base + ["check", NET, "-q"] + param, env))
                for target in targets:
                    dest = str(Path(tmp) / f"m{depth}_{target}.py")
                    cmd = (
                        base
                        + ["compile", NET, "--target", target, "-o", dest, "-q", "--force"]
                        + param
                    )
                    out[depth][target].append(run_timed(cmd, env))
    return {
        d: {
            k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
            for k, v in s.items()
        }
        for d, s in out.items()
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depths", default="20,56,110,1202,5000,10004")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--targets", default="torch,keras")
    parser.add_argument("--no-processes", action="store_true", help="skip the whole-process runs")
    args = parser.parse_args(argv)
    depths = [int(d) for d in args.depths.split(",")]
    targets = args.targets.split(",")
    print_header(
        "Compiler scaling",
        {
            "network": f"{NET} --param depth=N",
            "netdsl from": netdsl_env()[1],
            "reps (median)": args.reps,
        },
    )

    measured = in_process(depths, args.reps, targets)
    rows = []
    for d in depths:
        m = measured[d]
        elaborate = m["check"] - m["parse"]
        row = [
            d,
            f"{m['nodes']:,}",
            f"{m['check'] * 1e3:.0f}",
            f"{m['check'] / m['nodes'] * 1e6:.0f}",
            f"{m['parse'] * 1e3:.0f}",
            f"{elaborate / m['nodes'] * 1e6:.0f}",
        ]
        for t in targets:
            row += [f"{m[t] * 1e3:.0f}", f"{m[t] / m['nodes'] * 1e6:.0f}"]
        rows.append(row)
    headers = [
        "depth",
        "nodes",
        "check ms",
        "check µs/node",
        "of which parse ms",
        "elaborate µs/node",
    ]
    for t in targets:
        headers += [f"{t} source ms", f"{t} µs/node"]
    print("In one process (after warm-up; collector off):\n")
    print(table(headers, rows))
    small, large = measured[depths[0]], measured[depths[-1]]
    print()
    for m in (small, large):
        m["elaborate"] = m["check"] - m["parse"]
    for stage in ["check", "elaborate"] + targets:
        a, b = small[stage] / small["nodes"], large[stage] / large["nodes"]
        marginal = (large[stage] - small[stage]) / (large["nodes"] - small["nodes"])
        print(
            f"- {stage}: µs/node {a * 1e6:.0f} at depth {depths[0]}, {b * 1e6:.0f} at depth "
            f"{depths[-1]} (ratio {max(a, b) / min(a, b):.2f}); marginal "
            f"{marginal * 1e6:.0f} µs/node"
        )

    if not args.no_processes:
        processes = whole_process(depths, args.reps, targets)
        rows = []
        for d in depths:
            p = processes[d]
            row = [d, f"{measured[d]['nodes']:,}"]
            for stage in ["check"] + targets:
                wall, cpu = p[stage]
                row.append(f"{wall:.2f} ({cpu:.2f})")
            rows.append(row)
        print("\nWhole processes, wall s (CPU s):\n")
        print(
            table(
                ["depth", "nodes", "`netdsl check`"]
                + [f"`netdsl compile --target {t}`" for t in targets],
                rows,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
