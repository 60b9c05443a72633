"""The playground site, built once per test session: the `site` fixture.

    pytest_plugins = ("playground_site",)

in test_playground.py and test_playground_browser.py; registered once as a plugin, so the
build (under a second with a warm download cache, ~/.cache/netdsl) runs once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

# a program with an `add` whose branches differ (32 vs 16 channels, line 4), and its fix
SKIP_ADD = """\
network skip:
    input 3x32x32
    conv 16 k=3 p=1 + relu
    + add(conv 16 k=3 p=1, conv 32 k=3 p=1)
    + gap + fc 10
"""
SKIP_FIXED = SKIP_ADD.replace("conv 32", "conv 16")


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """The folder `netdsl playground -o DIR` writes."""
    from netdsl.playground import build

    folder = tmp_path_factory.mktemp("playground") / "site"
    build(folder)
    return folder
