"""The playground site, built once per test session: the `site` fixture.

    pytest_plugins = ("playground_site",)

in test_playground.py and test_playground_browser.py; registered once as a plugin, so the
build (under a second with a warm download cache, ~/.cache/netdsl) runs once.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """The folder `netdsl playground -o DIR` writes."""
    from netdsl.playground import build

    folder = tmp_path_factory.mktemp("playground") / "site"
    build(folder)
    return folder
