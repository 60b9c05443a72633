"""Generated PyTorch models vs torchvision's: forward and forward+backward time.

Run in a venv that has torchvision (see docs/performance.md):

    /tmp/tvenv/bin/python benchmarks/torch_vs_torchvision.py

For each pair, torchvision's weights are loaded into the generated model by order
(netdsl.weights.load_by_order) and the eval outputs compared, so both models compute
the same function on the same numbers. Each model is measured in a fresh process;
timing interleaves the two models in it (generated, reference, then reference,
generated, ...), after warm-up, with
the thread count fixed; the figure is the median of the per-pair ratios, of wall time
and of CPU time (with one thread, CPU time leaves out waiting for a core, which other
work on a shared machine inflates), and the ratio of the two best wall times. A control
row times torchvision's model against a copy of itself the same way: the noise floor.
Each median comes with its 95% bootstrap interval (how far it could move were the pairs
drawn again): a target is resolved when the interval lies on one side of it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    NETS,
    ROOT,
    fmt_ci,
    in_fresh_process,
    median,
    print_header,
    table,
    versions,
)

# name: (.net file, torchvision constructor, keyword arguments); load_by_order pairs
# googlenet's aux heads, which torchvision registers after inception5b, by structure
PAIRS = {
    "resnet50": (ROOT / "architectures/resnet50.net", "resnet50", {}),
    "densenet121": (ROOT / "architectures/densenet121.net", "densenet121", {}),
    "googlenet": (
        ROOT / "architectures/googlenet.net",
        "googlenet",
        {"aux_logits": True, "init_weights": True},
    ),
    "mobilenet_v2": (NETS / "mobilenet_v2.net", "mobilenet_v2", {}),
}


def build_pair(name: str):
    import torchvision

    import netdsl
    from netdsl.weights import load_by_order

    path, ctor, kwargs = PAIRS[name]
    ref = getattr(torchvision.models, ctor)(weights=None, **kwargs)
    gen = netdsl.load(str(path)).to_torch()
    load_by_order(gen, ref)
    return gen, ref


def main_output(out):
    if isinstance(out, tuple):  # train mode with aux heads (a namedtuple in torchvision)
        return out[0]
    return out


def loss_of(out):
    outs = out if isinstance(out, tuple) else (out,)
    return sum(o.float().mean() for o in outs if o is not None)


def check_same(gen, ref, shape) -> float:
    import torch

    gen.eval(), ref.eval()
    x = torch.randn(2, *shape)
    with torch.no_grad():
        a, b = main_output(gen(x)), main_output(ref(x))
    return float((a - b).abs().max())


def step_fn(model, x, mode: str):
    """The timed pass, and what to do after it outside the clock (drop the gradients, so
    every backward writes fresh ones rather than accumulating)."""
    import torch

    if mode == "eval":
        model.eval()

        def step():
            with torch.no_grad():
                model(x)

        return step, lambda: None
    model.train()
    return (lambda: loss_of(model(x)).backward()), (lambda: model.zero_grad(set_to_none=True))


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def timed(step) -> tuple[float, float, int]:
    """Wall and CPU seconds of one pass (with one torch thread, the CPU time leaves out
    the time spent waiting for a core that other work on the machine holds), and the
    minor page faults it took: fresh pages for tensors that malloc got from the kernel."""
    run, after = step
    wall, cpu, faults = time.perf_counter(), time.process_time(), minor_faults()
    run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    faults = minor_faults() - faults
    after()
    return wall, cpu, faults


def compare(gen, ref, x, mode: str, reps: int, warmup: int) -> dict:
    steps = {"gen": step_fn(gen, x, mode), "ref": step_fn(ref, x, mode)}
    for _ in range(warmup):
        timed(steps["gen"]), timed(steps["ref"])
    out = {"gen": [], "ref": [], "ratios": [], "cpu_ratios": [], "gen_faults": [], "ref_faults": []}
    for r in range(reps):
        order = ("gen", "ref") if r % 2 == 0 else ("ref", "gen")
        got = {k: timed(steps[k]) for k in order}
        for k in ("gen", "ref"):
            out[k].append(got[k][0])
            out[f"{k}_faults"].append(got[k][2])
        out["ratios"].append(got["gen"][0] / got["ref"][0])
        out["cpu_ratios"].append(got["gen"][1] / got["ref"][1])
    return out


def op_counts(model, x, mode: str) -> dict:
    """{aten op: calls} of one pass, from torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    run, after = step_fn(model, x, mode)
    run(), after()  # warm
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    after()
    return {e.key: e.count for e in prof.key_averages() if e.key.startswith("aten::")}


def op_differences(gen, ref, batch: int) -> list[list]:
    """The aten ops whose call counts differ between the two models, per pass."""
    import torch

    x = torch.randn(batch, 3, 224, 224)
    rows = []
    for mode in ("eval", "train"):
        a, b = op_counts(gen, x, mode), op_counts(ref, x, mode)
        diff = [
            f"{op[6:]} {a.get(op, 0)}/{b.get(op, 0)}"
            for op in sorted(set(a) | set(b))
            if a.get(op, 0) != b.get(op, 0)
        ]
        rows.append([mode, f"{sum(a.values())}/{sum(b.values())}", ", ".join(diff) or "none"])
    return rows


def measure(name: str, args) -> dict:
    """One model's table rows, raw samples and op differences, in this process."""
    import copy

    import torch

    gen, ref = build_pair(name)
    shape = (3, 224, 224)
    diff = check_same(gen, ref, shape)
    ops = []
    if args.ops:
        modules = f"{len(list(gen.modules()))}/{len(list(ref.modules()))}"
        ops = [[name, modules, *row] for row in op_differences(gen, ref, 2)]
    n_gen = sum(p.numel() for p in gen.parameters())
    n_ref = sum(p.numel() for p in ref.parameters())
    runs = [("eval", args.eval_batch), ("train", args.train_batch)]
    if args.small_batch:
        runs.insert(1, ("eval", args.small_batch))
    pairs = [(name, gen)]
    if name == args.control:
        pairs.append((f"{name} (control: torchvision vs a copy of itself)", copy.deepcopy(ref)))
    rows, raw = [], {}
    for mode, batch in runs:
        x = torch.randn(batch, *shape)
        for label, model in pairs:
            result = compare(model, ref, x, mode, args.reps, args.warmup)
            raw[f"{label}/{mode}/{batch}"] = result
            ratios, cpu = result["ratios"], result["cpu_ratios"]
            ratios_ci, cpu_ci = fmt_ci(ratios), fmt_ci(cpu)  # 4,000 resamples each
            best = min(result["gen"]) / min(result["ref"])
            what = "forward (eval, no_grad)" if mode == "eval" else "forward+backward (train)"
            rows.append(
                [
                    label,
                    what,
                    batch,
                    f"{median(result['gen']) * 1e3:.1f}",
                    f"{median(result['ref']) * 1e3:.1f}",
                    f"**{median(ratios):.3f}**",
                    ratios_ci,
                    f"{best:.3f}",
                    f"**{median(cpu):.3f}**",
                    cpu_ci,
                    f"{median(result['gen_faults']):,.0f} / {median(result['ref_faults']):,.0f}",
                    f"{diff:.1e}" if mode == "eval" and batch == args.eval_batch else "",
                    f"{n_gen:,}" + ("" if n_gen == n_ref else f" vs {n_ref:,}"),
                ]
            )
            print(
                f"{label} {mode} b={batch}: ratio {median(ratios):.3f} "
                f"(95% interval {ratios_ci}), of best times {best:.3f}; CPU time "
                f"{median(cpu):.3f} ({cpu_ci})",
                file=sys.stderr,
                flush=True,
            )
    return {"rows": rows, "raw": raw, "ops": ops}


# glibc malloc with its thresholds fixed: blocks up to 32 MiB (the largest mmap threshold
# glibc takes) come from the heap and are reused, and the heap is never trimmed
FIXED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}
FIXED_MALLOC_TEXT = ", ".join(f"{k}={v}" for k, v in FIXED_MALLOC.items())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(PAIRS), help="comma-separated")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--eval-batch", type=int, default=8)
    parser.add_argument("--train-batch", type=int, default=4)
    parser.add_argument(
        "--small-batch",
        type=int,
        default=1,
        help="an extra eval row at this batch, where Python overhead shows (0: none)",
    )
    parser.add_argument("--reps", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--control",
        default="resnet50",
        help="also time this model's torchvision version against a copy of "
        "itself: the noise floor of the ratio ('': none)",
    )
    parser.add_argument(
        "--ops",
        action="store_true",
        help="also list the aten ops whose call counts differ (torch.profiler)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the raw samples here")
    parser.add_argument(
        "--fixed-malloc",
        action="store_true",
        help="run the models with glibc malloc's thresholds fixed "
        f"({FIXED_MALLOC_TEXT}): "
        "tensors reuse heap memory instead of faulting in fresh pages",
    )
    parser.add_argument("--result", metavar="PATH", help=argparse.SUPPRESS)  # a child's report
    args = parser.parse_args(argv)
    names = args.models.split(",")
    if args.result:  # a child: measure one model
        import torch

        torch.manual_seed(0)
        torch.set_num_threads(args.threads)
        Path(args.result).write_text(json.dumps(measure(names[0], args)))
        return 0
    print_header(
        "Generated PyTorch vs torchvision",
        {
            **versions("torch", "torchvision"),
            "torch threads": args.threads,
            "reps (interleaved)": args.reps,
            "warm-up steps": args.warmup,
            "process": "a fresh one per model",
            "malloc": f"thresholds fixed: {FIXED_MALLOC_TEXT}"
            if args.fixed_malloc
            else "glibc's defaults (dynamic mmap threshold)",
        },
    )
    rows, raw, ops = [], {}, []
    passed = [
        "--threads",
        str(args.threads),
        "--eval-batch",
        str(args.eval_batch),
        "--train-batch",
        str(args.train_batch),
        "--small-batch",
        str(args.small_batch),
        "--reps",
        str(args.reps),
        "--warmup",
        str(args.warmup),
        "--control",
        args.control,
        *(["--ops"] if args.ops else []),
    ]
    for name in names:
        got = in_fresh_process(
            __file__,
            [*passed, "--models", name],
            {**os.environ, **FIXED_MALLOC} if args.fixed_malloc else None,
        )
        rows += got["rows"]
        raw.update(got["raw"])
        ops += got["ops"]
    print(
        table(
            [
                "model",
                "pass",
                "batch",
                "netdsl ms (median)",
                "torchvision ms (median)",
                "wall ratio netdsl/torchvision (median of pairs)",
                "wall ratio: 95% interval of the median",
                "ratio of best times",
                "CPU-time ratio (median of pairs)",
                "CPU-time ratio: 95% interval",
                "page faults per pass netdsl / torchvision (median)",
                "max abs output diff (same weights)",
                "params",
            ],
            rows,
        )
    )
    if ops:
        print()
        print(
            table(
                [
                    "model",
                    "nn.Modules netdsl/torchvision",
                    "pass (batch 2)",
                    "aten calls netdsl/torchvision",
                    "ops called a different number of times (netdsl/torchvision)",
                ],
                ops,
            )
        )
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
