"""`netdsl lsp`: the language server (diagnostics, shapes beside each line, hover, go to
definition, references, completion, outline, formatting, rename) for any editor that speaks
the Language Server Protocol. editors/ has the VS Code, Neovim and Helix set-ups.

pygls is imported only when the command runs (it is the optional `lsp` extra): other
commands never pay for it. index.py and document.py know nothing of the protocol.
"""

from __future__ import annotations

from ..errors import UsageError

INSTALL = "pip install 'netdsl[lsp]'"


def cmd_lsp(args) -> int:
    tcp = _address(args.tcp) if args.tcp else None
    try:
        from .server import serve
    except ModuleNotFoundError as e:
        if e.name is None or e.name.split(".")[0] not in ("pygls", "lsprotocol"):
            raise
        raise UsageError(f"the language server needs pygls: {INSTALL}") from None
    serve(tcp)
    return 0


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--tcp expects HOST:PORT such as 127.0.0.1:2087, got '{text}'")
    return host, int(port)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "lsp",
        help="run the language server (editors start it; it speaks LSP on stdin/stdout)",
        description="The netdsl language server: errors and warnings as you type, output "
        "shapes beside each line, hover, go to definition, references, completion, "
        f"outline, formatting and rename. Needs pygls: {INSTALL}.",
    )
    p.add_argument(
        "--tcp",
        metavar="HOST:PORT",
        help="listen on a TCP socket instead of stdin/stdout (to debug the server)",
    )
    p.set_defaults(func=cmd_lsp)
