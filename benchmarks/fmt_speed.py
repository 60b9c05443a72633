"""How long `netdsl fmt` takes: each zoo file, and a long generated file.

    python benchmarks/fmt_speed.py [--runs 20]

`format_text` is timed in one process, the grammar already loaded (an editor's language
server formats that way); the median and the interquartile range over the runs are
reported for the slowest zoo files, the whole zoo, and a 3,000-line network body with a
trailing comment on every line (comment alignment and the safety net's second parse
included).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, median, print_header, spread, table  # noqa: E402

from netdsl.fmt import format_text  # noqa: E402

ZOO = sorted((ROOT / "architectures").glob("*.net")) + sorted(
    (ROOT / "netdsl" / "stdlib").glob("*.net")
)


def long_program(lines: int) -> str:
    body = "".join(f"    x{i} = conv3 8 + relu   # layer {i}\n" for i in range(lines))
    return "network long:\n    input 3x8x8\n" + body


def times(text: str, path: str, runs: int) -> list[float]:
    """Milliseconds per call."""
    found = []
    for _ in range(runs):
        start = time.perf_counter()
        format_text(text, path)
        found.append((time.perf_counter() - start) * 1e3)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    print_header("netdsl fmt: format_text per file")
    texts = {str(p.relative_to(ROOT)): p.read_text() for p in ZOO}
    for path, text in texts.items():  # warm up: grammar, lexer, caches
        format_text(text, path)
    measured = {path: times(text, path, args.runs) for path, text in texts.items()}
    slowest = sorted(measured, key=lambda p: -median(measured[p]))[:5]
    rows = [
        [p, len(texts[p].splitlines()), f"{median(measured[p]):.1f}", spread(measured[p])]
        for p in slowest
    ]
    whole = [sum(run) for run in zip(*measured.values(), strict=True)]
    rows.append(
        [
            f"the whole zoo ({len(texts)} files)",
            sum(len(t.splitlines()) for t in texts.values()),
            f"{median(whole):.0f}",
            spread(whole),
        ]
    )
    long = long_program(3000)
    long_times = times(long, "long.net", max(3, args.runs // 5))
    rows.append(
        [
            "3,000-line body, comments aligned",
            3002,
            f"{median(long_times):.0f}",
            spread(long_times),
        ]
    )
    print(table(["file", "lines", "median ms", "spread ms"], rows))


if __name__ == "__main__":
    main()
