"""`netdsl lsp` as a command: what it says without pygls, and what other commands do not pay
for it (the protocol tests are in test_lsp.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_without_pygls_the_command_says_what_to_install():
    hide = "import sys; sys.modules['pygls'] = None; from netdsl.cli import main; sys.exit(main(['lsp']))"
    result = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True)
    assert result.returncode == 2
    assert "netdsl lsp: error: the language server needs pygls: pip install 'netdsl[lsp]'" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_check_does_not_import_the_language_server():
    probe = (
        "import sys; from netdsl.cli import main; main(['check', '-q', 'architectures/lenet5.net']);"
        " print(sorted(m for m in sys.modules if m.startswith(('pygls', 'lsprotocol', 'netdsl.lsp'))))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.strip() == "[]"
