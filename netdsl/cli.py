"""The `netdsl` command.

Exit status: 0 success, 1 an error in the user's program (printed with its
location, never a traceback), 2 bad command-line usage. Framework packages
(torch, keras) are imported only by the commands that need them.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import sys
import traceback

from .commandline import add_common, add_estimate_options, estimate_request, load_network
from .errors import NetdslError, UsageError

EXIT_OK, EXIT_USER, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 70


# Subcommands that live in their own modules (each has `register(subparsers)`; what they
# share with check and summary is in commandline.py, which imports none of them).
# Only the module of the command being run is imported, so `netdsl check`
# stays fast; `netdsl --help` imports them all to list them.
COMMAND_MODULES = {
    "compile": "netdsl.emit.command",
    "render": "netdsl.render",
    "explain": "netdsl.explain",
    "export": "netdsl.export",
    "zoo": "netdsl.zoo",
    "profile": "netdsl.profile",
    "fmt": "netdsl.fmt",
    "lsp": "netdsl.lsp",
    "import": "netdsl.importer.command",
    "playground": "netdsl.playground",
}


def cmd_check(args) -> int:
    status = EXIT_OK
    for path in args.files:
        try:
            net = load_network(args, path)
        except UsageError:
            raise  # a bad command line is not an error in one file (exit 2)
        except NetdslError as e:
            print(e.format(), file=sys.stderr)
            status = EXIT_USER
            continue
        warnings = []
        if not args.no_warn:
            from .lint import lint

            warnings = lint(net)
            for warning in warnings:
                print(warning.format(), file=sys.stderr)
        if not args.quiet:
            counted = f", {len(warnings)} warning{'s' * (len(warnings) != 1)}" if warnings else ""
            print(
                f"{path}: ok: {net.name}, {len(net.nodes())} nodes, {net.total_params:,} params, "
                f"{net.total_macs:,} MACs{counted}"
            )
    return status


def cmd_summary(args) -> int:
    from .summary import Estimate, estimate_text, summary_dict, summary_table

    request = estimate_request(args)
    net = load_network(args, args.file)
    if args.json:
        print(json.dumps(summary_dict(net, request), indent=None if args.compact else 1))
    else:
        print(summary_table(net, args.depth))
        if request is not None:  # the memory and FLOPs of a step (docs/memory.md)
            print(estimate_text(Estimate(net, request)))
    return EXIT_OK


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with `command`, only that subcommand's module is imported."""
    parser = argparse.ArgumentParser(
        prog="netdsl",
        description="Describe neural networks as text; check shapes, count parameters and "
        "MACs, emit PyTorch or Keras code.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"netdsl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.set_defaults(commands=sub.choices)  # each command's parser, for its usage line

    p = sub.add_parser("check", help="check that files elaborate: syntax, names and every shape")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("-q", "--quiet", action="store_true", help="print errors and warnings only")
    p.add_argument(
        "--no-warn",
        action="store_true",
        help="leave out the warnings (programs that check but are probably not meant: a "
        "conv stack with no activation, a bias before BatchNorm, ...; `# netdsl: "
        "ignore[code]` on a line silences one there)",
    )
    add_common(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("summary", help="per-layer output shapes, parameters and MACs")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--compact", action="store_true", help="with --json: on one line")
    p.add_argument("--depth", type=int, metavar="N", help="collapse blocks deeper than N")
    add_common(p)
    add_estimate_options(p)
    p.set_defaults(func=cmd_summary)

    for name, module_name in COMMAND_MODULES.items():
        if command in ("check", "summary") or (command in COMMAND_MODULES and command != name):
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:
                raise
            continue
        module.register(sub)
    return parser


def _command_of(argv: list[str]) -> str | None:
    for arg in argv:
        if not arg.startswith("-"):
            return arg
        if arg in ("-h", "--help", "--version"):
            return None
    return None


def _import_lark_without_regex() -> None:
    """Import lark with the third-party `regex` module hidden.

    lark imports `regex`, when it is installed, for grammars that use Unicode categories
    (netdsl's does not); that import alone costs the `netdsl` command more than parsing
    a file. Only the command does this: a program that imports netdsl keeps its lark.
    """
    if "lark" in sys.modules or "regex" in sys.modules:
        return
    sys.modules["regex"] = None  # type: ignore[assignment]  # `import regex` fails
    try:
        import lark  # noqa: F401
    finally:
        if sys.modules.get("regex", 0) is None:
            del sys.modules["regex"]


# Commands that only build netdsl's own data structures: run as the program, they need
# no cyclic garbage collector (see main).
_NO_COLLECTOR = ("check", "summary", "compile")


def main(argv: list[str] | None = None) -> int:
    as_program = argv is None  # the `netdsl` command (tests and callers pass argv)
    argv = sys.argv[1:] if argv is None else argv
    command = _command_of(argv)
    parser = build_parser(command)
    args, unknown = parser.parse_known_args(argv)
    # a mistake in a command's arguments is shown with that command's usage, not netdsl's
    command_parser = args.commands.get(args.command, parser)
    if unknown:
        command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if as_program:
        _import_lark_without_regex()
    from .compiler import deep_stack

    if as_program and command in _NO_COLLECTOR:
        # The compiled network is a large graph of linked objects that lives until the
        # process ends: the collector's passes over it would cost more than compiling it
        # (a third of a second for a 1,202-layer ResNet), and free nothing.
        gc.disable()
    try:
        with deep_stack():  # emitters and renderers recurse on the block tree, too
            return args.func(args)
    except UsageError as e:
        command_parser.print_usage(sys.stderr)
        print(f"{command_parser.prog}: error: {e.message}", file=sys.stderr)
        return EXIT_USAGE
    except NetdslError as e:
        print(e.format(), file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as e:  # a bug in netdsl, not in the user's program
        if os.environ.get("NETDSL_DEBUG"):
            traceback.print_exc()
        print(
            f"netdsl: internal error: {type(e).__name__}: {e}\n"
            "this is a bug in netdsl; set NETDSL_DEBUG=1 for details",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    finally:
        if as_program:
            gc.freeze()  # the process exits next: its last collection can skip it all


if __name__ == "__main__":
    sys.exit(main())
