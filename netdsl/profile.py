"""`netdsl profile FILE --target torch`: build the generated PyTorch model and measure it.

The measured counterpart of `summary`'s static figures, with PyTorch's own tools:

* time per top-level block of the network (forward; backward too with --train), by
  module hooks: a forward pre-hook and hook on each block's module; in backward, a
  tensor hook on the block's output (its gradient arrives: the block's backward starts)
  and on its input (the gradient leaves it: the block's backward ends). On the CPU the
  clock is time.perf_counter; on CUDA, CUDA events on the current stream. Joins written
  in forward (add, concat) and layers called as functions run between blocks: their
  time is the "between blocks" row. With --compile no hooks are set (they would break
  the compiled graph): the step is timed as a whole;
* samples per second (batch / mean step time);
* peak memory: CUDA, torch.cuda.max_memory_allocated over the timed steps; CPU, one more
  step under torch.profiler(profile_memory=True): the bytes live when it starts
  (parameters, buffers, optimizer state, the input batch) plus the highest running
  sum of the allocations and frees the profiler records during the step. Both count
  tensor bytes (the caching allocator's blocks on CUDA), not the process's RSS;
* achieved FLOP/s from netdsl's FLOPs (netdsl/flops.py: FlopCounterMode's convention),
  and MFU against the device's peak where it is known (a table of GPU peaks; none for
  CPUs).

The model is generated into a temporary folder and imported from there, so the command
needs PyTorch and nothing else.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .commandline import add_common, load_network
from .errors import NetdslError, UsageError

# dense (no sparsity) peak TFLOP/s: (bf16, fp32 as cuDNN and cuBLAS run it by default for
# convolutions: TF32 tensor cores). Matched against torch.cuda.get_device_name, in order.
GPU_PEAKS = (
    ("H100 PCIe", 756.0, 378.0),
    ("H100 NVL", 835.0, 417.5),
    ("H100", 989.4, 494.7),  # SXM
    ("H200", 989.4, 494.7),
    ("GH200", 989.4, 494.7),
    ("A100", 312.0, 156.0),
    ("L40S", 362.0, 183.0),
    ("L4", 121.0, 60.0),
    ("A10", 125.0, 62.5),
)

OPTIMIZERS = ("sgd", "sgd-momentum", "adam", "adamw")


def gpu_peak(name: str, amp: bool) -> tuple[float, str] | None:
    """(peak FLOP/s, what it is) of a GPU whose name contains an entry of GPU_PEAKS."""
    for key, bf16, tf32 in GPU_PEAKS:
        if key.lower() in name.lower():
            if amp:
                return bf16 * 1e12, f"{key} bf16 dense peak, {bf16:g} TFLOP/s"
            return tf32 * 1e12, f"{key} TF32 dense peak, {tf32:g} TFLOP/s"
    return None


# ---- formatting ---------------------------------------------------------------------------


def si(value: float, unit: str) -> str:
    """1.23 GFLOP/s, 456 MFLOP ... (three significant digits)."""
    for prefix, size in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def mib(n: int) -> str:
    return f"{n / (1 << 20):,.1f} MiB"


class Progress:
    """A plain-text progress bar on stderr: redrawn in place on a terminal, else printed
    once when the phase ends."""

    def __init__(self, label: str, total: int, stream=None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.stream = stream or sys.stderr
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        if self.live:
            self._draw("\r")

    def _bar(self) -> str:
        width = 24
        filled = width * self.done // max(self.total, 1)
        return f"{self.label:<9} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}"

    def _draw(self, start: str) -> None:
        self.stream.write(start + self._bar())
        self.stream.flush()

    def step(self) -> None:
        self.done += 1
        if self.live:
            self._draw("\r")

    def close(self) -> None:
        self.stream.write(("\r" + self._bar() if self.live else self._bar()) + "\n")
        self.stream.flush()


# ---- the model ---------------------------------------------------------------------------


def _torch():
    try:
        import torch
    except ImportError as e:
        raise NetdslError(
            f"netdsl profile needs PyTorch ({e})", hint="install it: pip install torch"
        ) from None
    return torch


def build_model(net, folder: Path):
    """The generated PyTorch model (train mode), written to `folder` and imported."""
    from .emit.torch import TorchEmitter

    path = folder / f"netdsl_profile_{net.name}.py"
    path.write_text(TorchEmitter().emit_model(net), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_model()


@dataclass
class Block:
    """A top-level block or layer of the network: its module (None where forward computes
    it inline: a join, a layer called as a function) and its FLOPs."""

    name: str
    module: object
    flops: object  # flops.LayerFlops (the sum over the block)
    train_only: bool = False
    forward: list = field(default_factory=list)  # ms per timed step
    backward: list = field(default_factory=list)


def blocks(net, model, flops) -> list[Block]:
    from .emit.base import _attr

    found = []
    for child in net.root.children:
        if getattr(child, "op", None) == "input":
            continue
        module = getattr(model, _attr(child.name), None)
        train_only = bool(getattr(child, "train_only", False)) or bool(
            getattr(getattr(child, "output", None), "train_only", False)
        )
        found.append(
            Block(
                child.name,
                module if hasattr(module, "register_forward_hook") else None,
                flops.of(child),
                train_only,
            )
        )
    return found


def example_inputs(torch, net, batch: int, device: str, channels_last: bool) -> list:
    generator = torch.Generator().manual_seed(0)
    inputs = []
    for node in net.inputs.values():
        shape = (batch, *node.out_shape)
        vocab = getattr(node.out_shape, "vocab", None)
        if vocab is not None:
            x = torch.randint(vocab, shape, generator=generator)
        else:
            x = torch.randn(shape, generator=generator)
        x = x.to(device)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        inputs.append(x)
    return inputs


def make_optimizer(torch, name: str, params):
    if name == "sgd":
        return torch.optim.SGD(params, lr=1e-3)
    if name == "sgd-momentum":
        return torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    if name == "adam":
        return torch.optim.Adam(params, lr=1e-4)
    return torch.optim.AdamW(params, lr=1e-4)


# ---- clocks and hooks ----------------------------------------------------------------------


class Clock:
    """Time stamps: perf_counter on the CPU, CUDA events on a GPU (read after a sync)."""

    def __init__(self, torch, cuda: bool) -> None:
        self.torch, self.cuda = torch, cuda

    def stamp(self):
        if self.cuda:
            event = self.torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def ms(self, start, end) -> float:
        if self.cuda:
            return start.elapsed_time(end)
        return (end - start) * 1e3


def _tensors(value) -> list:
    if hasattr(value, "register_hook"):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


class BlockTimer:
    """Per-block stamps for one step (see the module doc); `harvest` turns them into ms."""

    def __init__(self, clock: Clock, found: list[Block], train: bool) -> None:
        self.clock, self.train = clock, train
        self.handles = []
        self.reset()
        for index, block in enumerate(found):
            if block.module is None:
                continue
            self.handles.append(block.module.register_forward_pre_hook(self._pre(index)))
            self.handles.append(block.module.register_forward_hook(self._post(index)))

    def reset(self) -> None:
        self.fwd: dict[int, list] = {}  # index -> [(start, end)]
        self.bwd_start: dict[int, list] = {}
        self.bwd_end: dict[int, list] = {}
        self.open: dict[int, list] = {}

    def _pre(self, index: int):
        def hook(module, args):
            self.open.setdefault(index, []).append(self.clock.stamp())
            if self.train:
                for t in _tensors(args):
                    if t.requires_grad:
                        t.register_hook(self._grad(self.bwd_end, index))

        return hook

    def _post(self, index: int):
        def hook(module, args, output):
            start = self.open[index].pop()
            self.fwd.setdefault(index, []).append((start, self.clock.stamp()))
            if self.train:
                for t in _tensors(output):
                    if t.requires_grad:
                        t.register_hook(self._grad(self.bwd_start, index))

        return hook

    def _grad(self, where: dict, index: int):
        def hook(grad):
            where.setdefault(index, []).append(self.clock.stamp())

        return hook

    def harvest(self, found: list[Block], backward_end) -> None:
        """Add this step's times (ms) to the blocks; call after clock.sync()."""
        ms = self.clock.ms
        for index, block in enumerate(found):
            if index in self.fwd:
                block.forward.append(sum(ms(a, b) for a, b in self.fwd[index]))
            starts = self.bwd_start.get(index)
            if self.train and starts:
                ends = self.bwd_end.get(index) or [backward_end]
                first = min(starts, key=lambda s: ms(starts[0], s))
                last = max(ends, key=lambda e: ms(first, e))
                block.backward.append(max(ms(first, last), 0.0))
        self.reset()

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


# ---- peak memory -----------------------------------------------------------------------------


def _storage_bytes(tensors) -> int:
    seen = {}
    for t in tensors:
        if t is None or not hasattr(t, "untyped_storage"):
            continue
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def cpu_peak_bytes(torch, step, live: list) -> int | None:
    """One step under torch.profiler(profile_memory=True): the bytes of `live` tensors
    plus the highest running sum of the allocations and frees it records (None when the
    profiler gives no allocation events)."""
    from torch.profiler import ProfilerActivity, profile

    try:
        from torch._C._profiler import _EventType
    except ImportError:
        return None
    baseline = _storage_bytes(live)
    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        event = stack.pop()
        stack.extend(event.children)
        if event.tag == _EventType.Allocation and str(event.extra_fields.device) == "cpu":
            events.append((event.start_time_ns, event.extra_fields.alloc_size))
    if not events:
        return None
    events.sort()
    running = highest = 0
    for _, size in events:
        running += size
        highest = max(highest, running)
    return baseline + highest


@contextlib.contextmanager
def _quiet_stderr():
    """The profiler's C++ side writes start/stop lines and allocator warnings straight to
    file descriptor 2: hold them back while it runs."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# ---- the command -----------------------------------------------------------------------------


def _positive(args) -> None:
    for flag, value, least in (
        ("--batch", args.batch, 1),
        ("--iters", args.iters, 1),
        ("--warmup", args.warmup, 0),
    ):
        if value < least:
            raise UsageError(f"{flag} must be {least} or more, got {value}")


def cmd_profile(args) -> int:
    _positive(args)
    if args.target != "torch":
        raise NetdslError(
            f"netdsl profile measures PyTorch models; --target {args.target} is not one",
            hint="use --target torch",
        )
    net = load_network(args, args.file)
    torch = _torch()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise NetdslError(
            "--device cuda: PyTorch finds no CUDA device (torch.cuda.is_available() is False)",
            hint="profile on the CPU with --device cpu, or install a CUDA build of PyTorch",
        )
    from .flops import step_flops

    attention = "cpu" if args.device == "cpu" else "fused"
    flops = step_flops(net, args.batch, attention=attention if args.train else "fused")
    with tempfile.TemporaryDirectory(prefix="netdsl-profile-") as folder:
        model = build_model(net, Path(folder))
        report = measure(torch, net, model, flops, args)
    print(report)
    return 0


def measure(torch, net, model, flops, args) -> str:
    device, train, batch = args.device, args.train, args.batch
    cuda = device == "cuda"
    model = model.to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train(train)
    found = blocks(net, model, flops)
    inputs = example_inputs(torch, net, batch, device, args.channels_last)
    optimizer = make_optimizer(torch, args.optimizer, model.parameters()) if train else None
    clock = Clock(torch, cuda)
    runner = torch.compile(model) if args.compile else model
    timer = None if args.compile else BlockTimer(clock, found, train)
    amp = (
        torch.autocast(device_type=device, dtype=torch.bfloat16)
        if args.amp
        else contextlib.nullcontext()
    )
    marks: dict = {}

    def step():
        marks["start"] = clock.stamp()
        if train:
            optimizer.zero_grad(set_to_none=True)
            with amp:
                out = runner(*inputs)
            loss = sum(t.float().mean() for t in _tensors(out))
            marks["forward"] = clock.stamp()
            loss.backward()
            marks["backward"] = clock.stamp()
            optimizer.step()
        else:
            with torch.no_grad(), amp:
                runner(*inputs)
            marks["forward"] = marks["backward"] = clock.stamp()
        marks["end"] = clock.stamp()

    totals, forwards, backwards, optimizer_ms = [], [], [], []
    try:
        if args.warmup:
            bar = Progress("warm-up", args.warmup)
            for _ in range(args.warmup):
                step()
                clock.sync()
                bar.step()
                if timer:
                    timer.reset()
            bar.close()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        bar = Progress("measure", args.iters)
        for _ in range(args.iters):
            step()
            clock.sync()
            ms = clock.ms
            totals.append(ms(marks["start"], marks["end"]))
            forwards.append(ms(marks["start"], marks["forward"]))
            backwards.append(ms(marks["forward"], marks["backward"]))
            optimizer_ms.append(ms(marks["backward"], marks["end"]))
            if timer:
                timer.harvest(found, marks["backward"])
            bar.step()
        bar.close()
        if timer:
            timer.remove()
        if cuda:
            peak, method = torch.cuda.max_memory_allocated(), "torch.cuda.max_memory_allocated"
        else:
            live = [*model.parameters(), *model.buffers(), *inputs]
            if optimizer is not None:
                live += [t for s in optimizer.state.values() for t in s.values()]
            peak = cpu_peak_bytes(torch, step, live)
            method = "torch.profiler allocations + live tensors"
    except Exception as e:  # the generated model or torch failed at this batch
        raise _failure(torch, e, args) from None
    return report(net, flops, found, args, totals, forwards, backwards, optimizer_ms,
                  peak, method, torch)  # fmt: skip


def _failure(torch, e: Exception, args) -> NetdslError:
    oom = getattr(torch.cuda, "OutOfMemoryError", ())
    if isinstance(e, oom) or "out of memory" in str(e).lower():
        return NetdslError(
            f"out of memory at batch {args.batch} on {args.device}",
            hint="use a smaller --batch (netdsl summary estimates the memory a batch takes)",
        )
    if args.compile and type(e).__module__.startswith(("torch._dynamo", "torch._inductor")):
        return NetdslError(f"torch.compile failed: {type(e).__name__}: {e}")
    hint = None
    if "more than 1 value per channel" in str(e):
        hint = "BatchNorm in training needs more than one value per channel: use --batch 2"
    return NetdslError(
        f"the generated PyTorch model failed at batch {args.batch}: {type(e).__name__}: {e}",
        hint=hint,
    )


def report(net, flops, found, args, totals, forwards, backwards, optimizer_ms, peak, method,
           torch) -> str:  # fmt: skip
    train, batch = args.train, args.batch
    step_ms = statistics.mean(totals)
    spread = statistics.stdev(totals) if len(totals) > 1 else 0.0
    step_flops = flops.total if train else flops.forward_eval
    lines = []
    mode = [args.device, "train" if train else "eval", f"batch {batch}"]
    mode += ["bf16 autocast"] if args.amp else ["fp32"]
    mode += ["channels_last"] * args.channels_last + ["torch.compile"] * args.compile
    if train:
        mode.append(f"optimizer {args.optimizer}")
    lines.append(f"{net.name}: {', '.join(mode)}; {args.iters} steps after {args.warmup} warm-up")
    lines.append("")

    head = ["Block", "Output", "Fwd ms"] + (["Bwd ms"] if train else []) + ["Time %"]
    head += ["Step FLOPs", "FLOP/s"]
    rows = []
    timed = not args.compile
    for block in found:
        if block.train_only and not train:
            continue
        node = block.flops
        f = node.total if train else node.forward
        fwd = statistics.mean(block.forward) if block.forward else None
        bwd = statistics.mean(block.backward) if block.backward else None
        spent = (fwd or 0) + (bwd or 0) if train else fwd or 0
        cells = [block.name, _out(net, block.name)]
        cells.append(_ms(fwd) if timed and block.module is not None else "-")
        if train:
            cells.append(_ms(bwd) if timed and block.module is not None else "-")
        cells.append(f"{100 * spent / step_ms:.1f}" if timed and block.module is not None else "-")
        cells.append(si(f, "FLOP") if f else "0")
        cells.append(si(f / (spent / 1e3), "FLOP/s") if f and spent > 0 else "-")
        rows.append(cells)
    if timed:
        blocks_fwd = sum(statistics.mean(b.forward) for b in found if b.forward)
        other_fwd = statistics.mean(forwards) - blocks_fwd
        cells = ["(between blocks)", "", _ms(other_fwd)]
        if train:
            blocks_bwd = sum(statistics.mean(b.backward) for b in found if b.backward)
            cells.append(_ms(statistics.mean(backwards) - blocks_bwd))
        cells += ["", "", ""]
        rows.append(cells)
    if train:
        opt = statistics.mean(optimizer_ms)
        rows.append(["(optimizer step)", "", "", _ms(opt), f"{100 * opt / step_ms:.1f}", "0", "-"])
    total = ["Total", "", _ms(statistics.mean(forwards))]
    if train:
        total.append(_ms(statistics.mean(backwards)))
    total += ["100.0", si(step_flops, "FLOP"), si(step_flops / (step_ms / 1e3), "FLOP/s")]
    lines += _table(head, rows, total)
    lines.append("")

    samples = "images" if any(len(n.out_shape) == 3 for n in net.inputs.values()) else "samples"
    lines.append(f"step:        {step_ms:,.2f} ms (mean of {len(totals)}; sd {spread:,.2f} ms)")
    lines.append(f"throughput:  {batch * 1e3 / step_ms:,.1f} {samples}/s")
    achieved = step_flops / (step_ms / 1e3)
    if train:
        what = (
            f"forward {si(flops.forward, 'FLOP')} + backward {si(flops.backward, 'FLOP')} "
            f"(input grads {si(flops.input_grad, 'FLOP')}, weight grads "
            f"{si(flops.weight_grad, 'FLOP')})"
        )
    else:
        what = "forward (eval path)"
    lines.append(f"FLOPs:       {step_flops:,} per step: {what}")
    lines.append(f"achieved:    {si(achieved, 'FLOP/s')}")
    if train and flops.overcount:  # grouped convs: FlopCounterMode's weight gradients
        arithmetic = step_flops - flops.overcount
        achieved = arithmetic / (step_ms / 1e3)
        lines.append(
            f"arithmetic:  {arithmetic:,} per step, {si(achieved, 'FLOP/s')} (FlopCounterMode "
            f"counts grouped convs' weight gradients over all input channels: "
            f"{si(flops.overcount, 'FLOP')} more; MFU uses this figure)"
        )
    if args.device == "cuda":
        name = torch.cuda.get_device_name()
        peak_flops = gpu_peak(name, args.amp)
        if peak_flops:
            lines.append(f"MFU:         {100 * achieved / peak_flops[0]:.1f}% of {peak_flops[1]}")
        else:
            lines.append(f"MFU:         n/a (no known peak for {name})")
    else:
        lines.append("MFU:         n/a (no peak is known for CPUs)")
    shown = mib(peak) if peak is not None else "n/a (the profiler recorded no allocations)"
    lines.append(f"peak memory: {shown} ({method})")
    lines.append("convention:  FLOPs as torch.utils.flop_counter counts them (netdsl/flops.py)")
    return "\n".join(lines)


def _out(net, name: str) -> str:
    """The output shape of a top-level block or layer, as summary writes it (64x56x56)."""
    for child in net.root.children:
        if child.name == name:
            shape = child.out_shape if hasattr(child, "op") else child.result_shape
            try:
                return "x".join(str(int(getattr(d, "value", d))) for d in shape)
            except (TypeError, ValueError):
                return ""
    return ""


def _ms(value) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _table(head: list, rows: list, total: list) -> list[str]:
    widths = [max(len(str(r[i])) for r in [head, *rows, total]) for i in range(len(head))]

    def line(cells):
        first = f"{cells[0]:<{widths[0]}}"
        rest = [f"{str(c):>{w}}" for c, w in zip(cells[1:], widths[1:])]
        return "  ".join([first, *rest])

    rule = "-" * len(line(head))
    return [line(head), rule, *(line(r) for r in rows), rule, line(total)]


def register(sub: argparse._SubParsersAction) -> None:
    from .emit import TARGETS

    p = sub.add_parser(
        "profile",
        help="build the generated PyTorch model and measure it: time per block, "
        "samples/s, peak memory, achieved FLOP/s and MFU",
    )
    p.add_argument("file", metavar="FILE", help="a .net file or a zoo network name")
    p.add_argument("--target", default="torch", choices=sorted(TARGETS))
    p.add_argument("--batch", type=int, default=1, metavar="B", help="batch size (default 1)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--amp", action="store_true", help="bf16 autocast (CPU and CUDA)")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format")
    p.add_argument("--compile", action="store_true", help="torch.compile the model first")
    p.add_argument(
        "--train", action="store_true", help="a training step: forward, backward, optimizer"
    )
    p.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default="sgd-momentum",
        help="with --train (default sgd-momentum, as summary assumes)",
    )
    p.add_argument("--warmup", type=int, default=3, metavar="N", help="untimed steps (default 3)")
    p.add_argument("--iters", type=int, default=10, metavar="N", help="timed steps (default 10)")
    add_common(p)
    p.set_defaults(func=cmd_profile)
