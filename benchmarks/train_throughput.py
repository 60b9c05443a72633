"""Training-step throughput: the generated model vs torchvision's, with train.py's flags.

    /tmp/tvenv/bin/python benchmarks/train_throughput.py [--model resnet50]

One optimizer step as the generated train.py takes it (templates/torch/train.py.j2):
inputs and model in channels-last memory format with --channels-last, the forward pass
and loss under torch.autocast with --amp (bfloat16 on the CPU; the GradScaler is off
there, as in train.py), SGD with the recipe's momentum and weight decay, the model
wrapped in torch.compile with --compile. The same step runs on torchvision's model
with the same flags and the same weights (loaded by order). After warm-up (which,
with --compile, includes compiling: reported separately), steps of the two models
alternate; images/s is the batch over the median step time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import median, print_header, table, versions  # noqa: E402
from torch_vs_torchvision import PAIRS, build_pair  # noqa: E402

CONFIGS = {
    "fp32": dict(amp=False, channels_last=False, compile=False),
    "--channels-last": dict(amp=False, channels_last=True, compile=False),
    "--amp --channels-last": dict(amp=True, channels_last=True, compile=False),
    "--amp --channels-last --compile": dict(amp=True, channels_last=True, compile=True),
}


def make_step(
    model, batch: int, size: int, classes: int, amp: bool, channels_last: bool, compile: bool
):
    import torch
    from torch import nn

    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, classes, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    criterion = nn.CrossEntropyLoss()
    net = torch.compile(model) if compile else model

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            out = net(x)
            out = out[0] if isinstance(out, tuple) else out
            loss = criterion(out, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet50", choices=sorted(PAIRS))
    parser.add_argument(
        "--configs", default=",".join(CONFIGS), help="comma-separated, from: " + ", ".join(CONFIGS)
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument(
        "--size",
        type=int,
        default=224,
        help="image side (the models end in global pooling: any size works)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2, help="steps before timing")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per model")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    cpu_flags = ""
    try:
        flags = [line for line in open("/proc/cpuinfo") if line.startswith("flags")][0].split()
        cpu_flags = (
            ", ".join(
                f for f in ("avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16") if f in flags
            )
            or "none of avx512f/bf16/amx"
        )
    except (OSError, IndexError):
        pass
    print_header(
        f"Training steps: generated {args.model} vs torchvision's",
        {
            **versions("torch", "torchvision"),
            "device": "CPU (no GPU in this task)",
            "CPU features for bf16": cpu_flags,
            "torch threads": args.threads,
            "batch": args.batch,
            "image": f"3x{args.size}x{args.size}",
            "warm-up steps": args.warmup,
            "timed steps (interleaved)": args.steps,
        },
    )
    rows = []
    for name in args.configs.split(","):
        options = CONFIGS[name]
        gen, ref = build_pair(args.model)
        classes = 1000
        steps = {
            "gen": make_step(gen, args.batch, args.size, classes, **options),
            "ref": make_step(ref, args.batch, args.size, classes, **options),
        }
        first = {}
        for key in ("gen", "ref"):
            start = time.perf_counter()
            steps[key]()
            first[key] = time.perf_counter() - start
        for _ in range(args.warmup - 1):
            steps["gen"](), steps["ref"]()
        times = {"gen": [], "ref": []}
        ratios = []
        for r in range(args.steps):
            got = {}
            for key in ("gen", "ref") if r % 2 == 0 else ("ref", "gen"):
                start = time.perf_counter()
                steps[key]()
                got[key] = time.perf_counter() - start
                times[key].append(got[key])
            ratios.append(got["ref"] / got["gen"])  # throughput ratio: gen images/s over ref's
        gen_ips = args.batch / median(times["gen"])
        ref_ips = args.batch / median(times["ref"])
        rows.append(
            [
                f"`{name}`",
                f"{gen_ips:.2f}",
                f"{ref_ips:.2f}",
                f"**{median(ratios):.3f}**",
                f"{min(ratios):.3f}-{max(ratios):.3f}",
                f"{first['gen']:.1f} / {first['ref']:.1f}",
            ]
        )
        print(
            f"{name}: {gen_ips:.2f} vs {ref_ips:.2f} img/s, ratio {median(ratios):.3f}",
            file=sys.stderr,
            flush=True,
        )
        del gen, ref, steps
        torch._dynamo.reset()
    print(
        table(
            [
                "flags",
                "netdsl images/s",
                "torchvision images/s",
                "throughput ratio netdsl/torchvision (median of pairs)",
                "ratio min-max",
                "first step s, netdsl / torchvision (includes compiling; netdsl's model compiles first, "
                "torchvision's then finds the kernels both share in inductor's caches)",
            ],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
