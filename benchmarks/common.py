"""Shared by the benchmark scripts: the machine's description, statistics, tables.

Only the standard library here, so every script (in any venv) can import it.
"""

from __future__ import annotations

import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NETS = Path(__file__).resolve().parent / "nets"
if str(ROOT) not in sys.path:  # measure the netdsl of this tree, whatever is installed
    sys.path.insert(1, str(ROOT))


def machine() -> dict:
    """CPU model, cores, memory, OS and Python: read off the machine, not assumed."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    except OSError:
        pass
    try:
        load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "?"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?",
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0] + f" ({sys.executable})",
        "load average at start": load,
    }


def versions(*modules: str) -> dict:
    out = {}
    for name in modules:
        try:
            module = __import__(name)
            out[name] = getattr(module, "__version__", "?")
        except ImportError:
            out[name] = "not installed"
    return out


def print_header(title: str, extra: dict | None = None) -> None:
    print(f"# {title}")
    print()
    for key, value in {**machine(), **(extra or {})}.items():
        print(f"- {key}: {value}")
    print()


def median(xs):
    return statistics.median(xs)


def median_ci(xs, level: float = 0.95, resamples: int = 4000) -> tuple[float, float]:
    """Percentile-bootstrap interval of the median: how far the median of these pairs
    could move were the pairs drawn again. Seeded, so a report's interval follows from
    its samples alone."""
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(resamples))
    tail = (1 - level) / 2
    return medians[int(tail * resamples)], medians[int((1 - tail) * resamples) - 1]


def fmt_ci(xs) -> str:
    low, high = median_ci(xs)
    return f"{low:.3f}-{high:.3f}"


def spread(xs) -> str:
    """min-max of the samples, as a compact string."""
    return f"{min(xs):.3g}-{max(xs):.3g}"


def iqr(xs) -> tuple[float, float]:
    if len(xs) < 4:
        return min(xs), max(xs)
    q = statistics.quantiles(xs, n=4)
    return q[0], q[2]


def table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def netdsl_env() -> tuple[dict, str]:
    """The environment for a `netdsl` process: this one's, plus the source tree on
    PYTHONPATH when the installed package does not import from it (an editable install
    made from another checkout, say). Returns it with a line that says which."""
    env = dict(os.environ)
    probe = [sys.executable, "-c", "import netdsl.cli; print(netdsl.cli.__file__)"]
    found = subprocess.run(probe, cwd="/", env=env, capture_output=True, text=True)
    if found.returncode == 0 and Path(found.stdout.strip()).is_relative_to(ROOT):
        return env, "the installed package (imports from this tree)"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env, f"PYTHONPATH={ROOT} (the installed package does not import from this tree)"


def run_timed(cmd: list[str], env: dict | None = None, cwd: Path = ROOT) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one whole process."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def in_fresh_process(script: str, argv: list[str], env: dict | None = None) -> dict:
    """Run `script argv --result FILE` in a new interpreter and return the JSON it wrote.

    The model comparisons measure each model in a process of its own: what one model
    leaves in the allocator (freed blocks, glibc's moving mmap threshold) otherwise
    shifts the next model's timings by several percent, one side of a pair more than
    the other."""
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        subprocess.run(
            [sys.executable, script, *argv, "--result", str(result)],
            check=True,
            stdout=subprocess.DEVNULL,
            env=env,
        )
        return json.loads(result.read_text())
