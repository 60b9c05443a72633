"""The interactive HTML diagram: how long it takes to build and to show, and how big it is.

    python benchmarks/diagram.py [--runs 3] [--no-browser]

For resnet50, resnet_cifar at depth 1202 (4,812 nodes) and a synthetic 40,003-node chain
(`[conv 16 k=3 p=1 + relu]*20000`): the compile time, then `diagram_data` and
`diagram_html` (the page `netdsl render -o net.html` writes) in this process, and the
page's size. In headless Chromium (Debian's `chromium`, driven by Playwright) from a
local http server: the first view drawn (ms from the page's start: parsing the page and
its data, compiling Graphviz's WebAssembly, laying out and inserting the first view),
then a few interactions, each until the next frame is painted. Medians of --runs fresh
page loads.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, print_header, table  # noqa: E402

BIG = (
    "network chain40k:\n    input 3x32x32\n    [conv 16 k=3 p=1 + relu]*20000\n    + gap + fc 10\n"
)

# (name, what to compile, interactions: (label, JavaScript on window.netdslDiagram))
CASES = [
    (
        "resnet50",
        {"path": ROOT / "architectures/resnet50.net"},
        [
            ("expand stage2", "d.expand('stage2')"),
            ("expand all (175 nodes)", "d.expandAll()"),
            ("search 'conv_bn2'", "d.search('conv_bn2')"),
            ("collapse all", "d.collapseAll()"),
        ],
    ),
    (
        "resnet_cifar depth=1202",
        {"path": ROOT / "architectures/resnet_cifar.net", "params": {"depth": 1202}},
        [
            ("expand cifar_stage2 (200 units)", "d.expand('cifar_stage2')"),
            ("expand all", "d.expandAll()"),
            ("search 'units.150.conv_bn2'", "d.search('units.150.conv_bn2')"),
            ("collapse all", "d.collapseAll()"),
        ],
    ),
    (
        "chain of 40,003 nodes",
        {"text": BIG},
        [
            ("expand convs (20,000 iterations)", "d.expand('convs')"),
            ("search 'convs.15000.conv'", "d.search('convs.15000.conv')"),
            ("collapse all", "d.collapseAll()"),
        ],
    ),
]


def compile_case(spec: dict):
    from netdsl import compile_file, compile_text
    from netdsl.api import _params

    if "text" in spec:
        return compile_text(spec["text"], "chain40k.net")
    return compile_file(spec["path"], params=_params(spec.get("params", {})))


def timed(fn, runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002
        pass


def browser_figures(page_path: Path, interactions: list, runs: int) -> dict:
    from playwright.sync_api import sync_playwright

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(page_path.parent))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{page_path.name}"
    figures: dict = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=shutil.which("chromium"), args=["--no-sandbox"]
            )
            for _ in range(runs):
                page = browser.new_page(viewport={"width": 1600, "height": 900})
                page.goto(url)
                page.wait_for_function("window.netdslReadyAt !== undefined", timeout=120_000)
                figures.setdefault("first view", []).append(page.evaluate("window.netdslReadyAt"))
                figures.setdefault("  of it, Graphviz (layout)", []).append(
                    page.evaluate("netdslDiagram.layoutMs()")
                )
                for label, action in interactions:
                    ms = page.evaluate(
                        "async () => { const d = window.netdslDiagram; const t = performance.now();"
                        f" await {action};"
                        " await new Promise(r => requestAnimationFrame(() => setTimeout(r)));"
                        " return performance.now() - t; }"
                    )
                    boxes = page.locator("#netdsl svg g.node").count()
                    figures.setdefault(f"{label} ({boxes} boxes)", []).append(ms)
                page.close()
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    return {k: statistics.median(v) for k, v in figures.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()

    import json

    from netdsl.web.diagram import diagram_data, diagram_html

    browser = not args.no_browser and shutil.which("chromium")
    print_header("Interactive HTML diagram", {"browser": browser or "not measured"})
    rows, in_browser = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec, interactions in CASES:
            compile_s, net = timed(lambda spec=spec: compile_case(spec), args.runs)
            data_s, data = timed(lambda net=net: diagram_data(net), args.runs)
            html_s, page = timed(lambda net=net: diagram_html(net), args.runs)
            json_mb = len(json.dumps(data, separators=(",", ":"))) / 1e6
            rows.append(
                [
                    name,
                    f"{len(net.nodes()):,}",
                    f"{compile_s:.2f}",
                    f"{data_s:.2f}",
                    f"{html_s:.2f}",
                    f"{json_mb:.2f}",
                    f"{len(page.encode()) / 1e6:.2f}",
                ]
            )
            if browser:
                path = Path(tmp) / f"case{len(rows)}.html"
                path.write_text(page, encoding="utf-8")
                in_browser[name] = browser_figures(path, interactions, args.runs)
    print("## Building the page (Python, seconds; medians)")
    print()
    headers = ["network", "nodes", "compile", "diagram_data", "diagram_html", "data MB", "page MB"]
    print(table(headers, rows))
    print()
    print("The page is the data plus the inlined Viz.js (1.33 MB, Graphviz as WebAssembly).")
    for name, figures in in_browser.items():
        print()
        print(f"## {name} in Chromium (ms; medians of {args.runs} page loads)")
        print()
        print(table(["step", "ms"], [[k, f"{v:.0f}"] for k, v in figures.items()]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
