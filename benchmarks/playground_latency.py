"""How long the web playground takes to show a diagnostic after a keystroke, on ResNet-50.

    python benchmarks/playground_latency.py [--keystrokes N]

Builds the site (`netdsl playground`, from the download cache), serves it on 127.0.0.1,
opens it in headless Chromium (Debian's `chromium`, driven by Playwright) and types into
the ResNet-50 example: alternately an `x` at the end of its last layer line (`fc classesx`:
an unknown name, an error) and a Backspace (the error goes). Each keystroke waits until the
page shows the diagnostics of the text it made, then until the Summary tab has caught up,
so every keystroke starts from an idle page, as a pause in typing does.

Two clocks: the page's own (from the editor's change to the diagnostics drawn: the
debounce, the worker's check under Pyodide, the markers), and the test's wall clock around
the keystroke (plus Playwright's polling). tests/test_playground_browser.py runs
`measure()` and prints the same figures; nothing asserts a timing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import median, print_header, spread, table

LAST_LAYER_LINE = 18  # architectures/resnet50.net: `    + gap + fc classes`


def open_playground(page, url: str, timeout_s: float = 120) -> float:
    """Load the page and wait for its first diagnostics: the seconds that took."""
    start = time.perf_counter()
    page.goto(url)
    page.wait_for_selector("body[data-checked]", timeout=timeout_s * 1000)
    return time.perf_counter() - start


def settled(page, version: int) -> None:
    """Wait until the diagnostics and the active tab show text version `version`."""
    page.wait_for_function(
        """(version) => document.body.dataset.checked === String(version)
            && document.querySelector('.panel:not([hidden])').dataset.version === String(version)""",
        arg=version,
        timeout=60_000,
    )


def measure(page, keystrokes: int = 10) -> dict:
    """Type `keystrokes` keys into the loaded ResNet-50; the page's and the wall clock's
    milliseconds from each key to its diagnostics."""
    page.evaluate(
        """(line) => {
            const view = window.netdslPlayground.view;
            view.dispatch({selection: {anchor: view.state.doc.line(line).to}});
            view.focus();
        }""",
        LAST_LAYER_LINE,
    )
    version = int(page.evaluate("document.body.dataset.checked"))
    settled(page, version)
    before = len(page.evaluate("window.netdslPlayground.latencies"))
    wall = []
    for i in range(keystrokes):
        wants_error = i % 2 == 0
        start = time.perf_counter()
        page.keyboard.press("x" if wants_error else "Backspace")
        version += 1
        page.wait_for_function(
            "(version) => document.body.dataset.checked === String(version)",
            arg=version,
            timeout=60_000,
        )
        wall.append((time.perf_counter() - start) * 1000)
        shown = page.inner_text("#problems")
        assert ("error" in page.get_attribute("#problems", "class")) == wants_error, shown
        settled(page, version)
    page_ms = page.evaluate("window.netdslPlayground.latencies")[before:]
    return {"page_ms": page_ms, "wall_ms": wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keystrokes", type=int, default=20)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from netdsl.playground import PYODIDE, build, serving

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        build(Path(tmp))
        built = time.perf_counter() - start
        with sync_playwright() as playwright, serving(Path(tmp)) as url:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
            )
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            print_header(
                "netdsl playground: keystroke to diagnostic, ResNet-50",
                {"chromium": browser.version, "pyodide": PYODIDE.version},
            )
            loaded = open_playground(page, url)
            startup = page.evaluate("window.netdslPlayground.startup")
            result = measure(page, args.keystrokes)
            browser.close()
    print(f"site build (warm download cache): {built:.2f} s")
    print(
        f"page load to first diagnostics: {loaded:.2f} s (Pyodide and netdsl: {startup / 1000:.2f} s)"
    )
    print()
    rows = []
    for clock in ("page_ms", "wall_ms"):
        xs = result[clock]
        rows.append([clock.replace("_ms", ""), len(xs), f"{median(xs):.0f}", spread(xs)])
    print(table(["clock", "keystrokes", "median ms", "min-max ms"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
