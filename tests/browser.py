"""Headless Chromium for the tests that check what a user sees in a browser.

    from browser import chromium_browser, page, serve  # noqa: F401  (fixtures)

    def test_x(page, tmp_path):
        with serve(tmp_path) as url:
            page.goto(f"{url}/net.html")

`serve(directory)` serves a folder over http on 127.0.0.1 (a free port, in a thread, quiet):
pages that load wasm or fetch files need http, not file://. `page` is a fresh Playwright page
(1280x800, downloads accepted) in one Chromium per test module: Debian's
`chromium` executable, driven by Playwright's Python API (no `playwright install`). Without
Chromium or Playwright the test is skipped, but fails where CI is set (as `need()` does). An
uncaught JavaScript error in the page fails the test that caused it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import need

# --no-sandbox: CI containers run as root, where Chromium's sandbox refuses to start
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1280, "height": 800}


@contextlib.contextmanager
def serve(directory: str | os.PathLike) -> Iterator[str]:
    """Serve `directory` on 127.0.0.1 at a free port while the block runs: the base URL
    (without its closing slash). The server is `netdsl playground --serve`'s own."""
    from netdsl.playground import serving

    with serving(Path(directory)) as url:
        yield url.rstrip("/")


def chromium_path() -> str:
    """Debian's Chromium: skipped without it, failing where CI is set."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "no `chromium` executable on PATH (Debian: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def chromium_browser():
    """One Chromium per test module, stopped at the module's end: Playwright's sync API keeps
    an asyncio loop marked running while it is started, which would break the asyncio tests
    of later modules (the language server's)."""
    executable = chromium_path()
    sync_api = need("playwright.sync_api")
    playwright = sync_api.sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


@pytest.fixture
def page(chromium_browser):
    """A fresh page in its own browser context (no shared storage between tests)."""
    context = chromium_browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    new_page = context.new_page()
    errors: list[str] = []
    new_page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield new_page
    finally:
        context.close()
    assert not errors, f"uncaught JavaScript errors in the page: {errors}"
