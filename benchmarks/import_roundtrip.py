"""Round trip of every torchvision classification model through `netdsl import`.

For each model of torchvision.models.list_models(module=torchvision.models): import it
(random init, eval mode), compile the .net, load the original's weights by order into the
generated PyTorch model and compare eval outputs on one random input. Prints a table:
model, importable?, lines of the .net (non-blank, non-comment), max relative error, and the
reason when it does not import (the importer's message). Needs torchvision:

    .ci/venv-torchvision/bin/python benchmarks/import_roundtrip.py [--models a,b] [--input 3x64x64]
"""

from __future__ import annotations

import argparse
import sys
import time

from common import machine  # noqa: F401 - puts this tree's netdsl first on sys.path


def main() -> int:
    import torch
    import torchvision

    from netdsl.errors import NetdslError
    from netdsl.importer.roundtrip import TORCHVISION_ARGS, torchvision_roundtrip

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated names (default: all)")
    parser.add_argument("--input", default="3x64x64", help="input CxHxW (default 3x64x64)")
    args = parser.parse_args()
    default = tuple(int(d) for d in args.input.split("x"))
    names = (
        args.models.split(",")
        if args.models
        else sorted(torchvision.models.list_models(module=torchvision.models))
    )
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}")
    print(f"{'model':<22} {'imports':<8} {'lines':>5} {'max rel err':>12}  reason")
    ok = 0
    for name in names:
        start = time.perf_counter()
        try:
            result = torchvision_roundtrip(name, default)
        except NetdslError as e:
            print(f"{name:<22} {'no':<8} {'':>5} {'':>12}  {e.message}")
            continue
        except Exception as e:  # a recovery bug or a failed pairing: report, go on
            first = str(e).splitlines()[0] if str(e) else ""
            print(f"{name:<22} {'FAIL':<8} {'':>5} {'':>12}  {type(e).__name__}: {first[:160]}")
            continue
        finally:
            sys.stdout.flush()
        good = result.error <= 1e-4
        ok += good
        seconds = time.perf_counter() - start
        built = ", ".join(f"{k}={v}" for k, v in TORCHVISION_ARGS.get(name, {}).items())
        print(
            f"{name:<22} {'yes' if good else 'DIFF':<8} {result.lines:>5} {result.error:>12.2e}"
            f"  ({seconds:.1f} s{'; built with ' + built if built else ''})"
        )
    print(f"{ok} of {len(names)} models import with equal outputs (rel 1e-4)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
