"""The static memory estimate (netdsl/memory.py) against torch.profiler's memory profiler on
a real training step of the generated PyTorch model, and its command-line surface.

The measurement: one warm-up step (so that the optimizer's state exists, as in every step
but the first), then one profiled step (forward, `sum(out.float().mean())`, backward,
Adam's step, zero_grad(set_to_none=True)) under
`torch.profiler.profile(profile_memory=True, record_shapes=True, with_stack=True)`, its
tensors sorted by `prof._memory_profile()` into PARAMETER, GRADIENT, OPTIMIZER_STATE,
ACTIVATION, INPUT, TEMPORARY, AUTOGRAD_DETAIL (and unknown). Each category's figure is
its largest total over the step; the peak is the largest total of all tensors alive at
once. The estimate must be within 5 % per category and 10 % at the peak, in fp32 and
under bf16 autocast, at batch 8 and the zoo's own input (docs/memory.md has the table).
"""

from __future__ import annotations

import collections
import json
import os

import pytest
from backends import build_torch, example_input
from conftest import need

import netdsl
from netdsl.cli import main
from netdsl.memory import HEADROOM, estimate, largest_batch, parse_size
from netdsl.zoo import zoo_files

BATCH = 8
CATEGORY = 0.05  # parameters, gradients, optimizer state, activations
PEAK = 0.10

# fast: two small networks (tanh + average pooling + fc; fire modules: concat, in-place ReLU)
FAST = ["lenet5", "squeezenet1_1"]
# slow, by default: a network of each family of ops the zoo uses (45 s on a quiet machine);
# NETDSL_MEMORY_ZOO=all runs every network but gpt2 (minutes on a quiet machine, up to two
# hours on 2 busy cores: see docs/memory.md)
SLOW = ["resnet18", "mobilenet_v3_small", "alexnet", "vit", "shufflenet_v2"]
# left out of the whole-zoo run on this machine: gpt2's batch of 8 x 1024 tokens saves
# about 20 GB for backward (the math attention path keeps three 8 x 12 x 1024 x 1024
# tensors a layer), more than a 23 GB machine holds beside the profiler's trace
TOO_LARGE = {"gpt2"}


def measure(net, batch: int = BATCH, amp: bool = False) -> dict:
    """Largest bytes per memory-profiler category over one steady training step, and the peak."""
    torch = need("torch")
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import Action

    _, model = build_torch(net)
    model.train()
    opt = torch.optim.Adam(model.parameters())
    inputs = [example_input(node, batch) for node in net.inputs.values()]

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            out = model(*inputs)
            if isinstance(out, dict):
                outs = list(out.values())
            elif isinstance(out, (tuple, list)):
                outs = list(out)
            else:
                outs = [out]
            loss = sum(o.float().mean() for o in outs)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # the optimizer's state exists from here on
    with profile(
        activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True
    ) as prof:
        step()
    memory = prof._memory_profile()
    now: collections.Counter = collections.Counter()
    largest: collections.Counter = collections.Counter()
    peak = 0
    for _, action, (key, version), size in memory.timeline:
        if key.device.type != "cpu":
            continue

        def category(v, key=key):
            c = memory._categories.get(key, v)
            return c.name if c is not None else "UNKNOWN"

        if action in (Action.PREEXISTING, Action.CREATE):
            now[category(version)] += size
        elif action == Action.INCREMENT_VERSION:
            now[category(version)] -= size
            now[category(version + 1)] += size
        elif action == Action.DESTROY:
            now[category(version)] -= size
        for k, v in now.items():
            largest[k] = max(largest[k], v)
        peak = max(peak, sum(now.values()))
    return {**largest, "PEAK": peak}


def compare(name: str, amp: bool) -> list[tuple[str, int, int, float]]:
    """(category, estimated, measured, relative error) for one zoo network."""
    net = netdsl.load(name).network
    est = estimate(net, batch=BATCH, amp=amp, optimizer="adam")
    got = measure(net, amp=amp)
    rows = [
        ("parameters", est.parameters, got.get("PARAMETER", 0)),
        ("gradients", est.gradients, got.get("GRADIENT", 0)),
        ("optimizer state", est.optimizer_state, got.get("OPTIMIZER_STATE", 0)),
        ("activations", est.activations, got.get("ACTIVATION", 0)),
        ("peak", est.peak, got["PEAK"]),
    ]
    table = [(c, e, m, (e - m) / m if m else float(e != 0)) for c, e, m in rows]
    print(f"\n{name} batch {BATCH} {'bf16 autocast' if amp else 'fp32'}:")
    for c, e, m, r in table:
        print(f"  {c:<16} estimate {e / 2**20:10.1f} MiB  measured {m / 2**20:10.1f} MiB  {r:+.1%}")
    return table


def check(name: str, amp: bool) -> None:
    wrong = [
        f"{c}: estimate {e:,} B, measured {m:,} B ({r:+.1%})"
        for c, e, m, r in compare(name, amp)
        if abs(r) > (PEAK if c == "peak" else CATEGORY)
    ]
    assert not wrong, f"{name} ({'amp' if amp else 'fp32'}): " + "; ".join(wrong)


# squeezenet1_1's profiled steps take seconds (the memory profiler records every op's
# stack): slow; its concat and in-place ReLU stay in the fast set through the saved-tensor
# and inference-peak checks below, and the cells network's concat through the training step
@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "amp"])
@pytest.mark.parametrize(
    "name", [n if n == "lenet5" else pytest.param(n, marks=pytest.mark.slow) for n in FAST]
)
def test_estimate_matches_the_profiler(name, amp):
    check(name, amp)


CELLS = """\
block cell(p, c) = concat(relu + conv3 c bias=false + bn, p + relu + conv3 c bias=false + bn)

network cells(classes=10):
    input 3x32x32
    c0 = conv3 16 bias=false + bn
    c1 = c0 + cell(c0, 16)
    c2 = c1 + cell(c0, 16)
    c3 = c2 + cell(c1, 16)
    c4 = c3 + cell(c2, 16)
    c4 + relu + gap + fc classes
"""


def test_named_values_live_until_their_forward_returns(tmp_path):
    """NASNet's cells read the two cell outputs before them, which the network names (c0 ...
    c16): the generated forward keeps each in its own variable until it returns, after the
    last cell that reads it. A quarter of this network's activations are such outputs that
    no op saves (each reader starts with a ReLU, which saves its own output)."""
    path = tmp_path / "cells.net"
    path.write_text(CELLS, encoding="utf-8")
    check(str(path), amp=False)


def measure_inference(net, batch: int = BATCH) -> int:
    """Peak bytes of one forward pass under torch.no_grad(): the parameters and the input
    (allocated before), plus the largest total the profiler sees allocated at once."""
    torch = need("torch")
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import Action

    _, model = build_torch(net)
    model.eval()
    inputs = [example_input(node, batch) for node in net.inputs.values()]
    with torch.no_grad():
        model(*inputs)
        with profile(
            activities=[ProfilerActivity.CPU],
            profile_memory=True,
            record_shapes=True,
            with_stack=True,
        ) as prof:
            model(*inputs)
    live = peak = 0
    for _, action, _, size in prof._memory_profile().timeline:
        if action == Action.CREATE:
            live += size
        elif action == Action.DESTROY:
            live -= size
        peak = max(peak, live)
    before = sum(p.numel() * p.element_size() for p in model.parameters())
    before += sum(x.numel() * x.element_size() for x in inputs)
    return before + peak


# the inference peak: a fast network, and families whose layers differ (slow)
INFERENCE = [
    "squeezenet1_1",
    *(pytest.param(n, marks=pytest.mark.slow) for n in ("resnet50", "vgg16", "densenet121")),
]


@pytest.mark.parametrize("name", INFERENCE)
def test_inference_peak_matches_the_profiler(name):
    """Under no_grad each tensor goes after its last reader, except a block's input, which
    the caller's variable holds until the block returns; convolutions and max pooling
    allocate a buffer of their own (docs/memory.md)."""
    net = netdsl.load(name).network
    est = estimate(net, batch=BATCH, train=False).inference_peak
    got = measure_inference(net)
    assert abs(est - got) / got <= CATEGORY, f"{name}: estimate {est:,} B, measured {got:,} B"


def _slow_names() -> list[str]:
    if os.environ.get("NETDSL_MEMORY_ZOO") == "all":
        names = [p.stem for p in zoo_files()]
        return [n for n in names if n not in FAST and n not in TOO_LARGE]
    return SLOW


@pytest.mark.slow
@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "amp"])
@pytest.mark.parametrize("name", _slow_names())
def test_zoo_estimate_matches_the_profiler(name, amp):
    check(name, amp)


# ---- what autograd saves, storage by storage: exact, and quick enough for the whole zoo ------


def saved_by_autograd(net, batch: int, amp: bool) -> int:
    """Bytes of the distinct storages the autograd graph of one forward pass saves for
    backward (its grad_fns' `_saved_*` tensors), leaving out parameters, buffers and inputs."""
    torch = need("torch")
    _, model = build_torch(net)
    model.train()
    inputs = [example_input(node, batch) for node in net.inputs.values()]
    held = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    held |= {x.untyped_storage().data_ptr() for x in inputs}
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        out = model(*inputs)
        outs = list(out.values()) if isinstance(out, dict) else out
        outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
        loss = sum(o.float().mean() for o in outs)
    storages: dict = {}
    seen: set = set()
    stack = [loss.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        stack += [f for f, _ in fn.next_functions]
        for name in dir(fn):
            if not name.startswith("_saved_"):
                continue
            value = getattr(fn, name)
            for t in value if isinstance(value, (tuple, list)) else [value]:
                if isinstance(t, torch.Tensor):
                    storage = t.untyped_storage()
                    if storage.data_ptr() not in held:
                        storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


# slow, by default: a network of each family beyond SLOW's (the whole zoo at batch 2 takes
# minutes more than CI's budget on two cores); NETDSL_MEMORY_ZOO=all checks every network
SAVED = [*SLOW, "gpt2", "densenet121", "inception_v3", "nasnet_mobile", "unet", "convnext"]


def _zoo_cases():
    names = [p.stem for p in zoo_files()]
    if os.environ.get("NETDSL_MEMORY_ZOO") != "all":
        names = [n for n in names if n in FAST or n in SAVED]
    return [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in names]


@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "amp"])
@pytest.mark.parametrize("name", _zoo_cases())
def test_saved_for_backward_is_what_autograd_saves(name, amp):
    """The estimate's saved tensors (and, under autocast, the weights' copies the layers
    save) against the storages autograd's graph holds, at batch 2: within 0.5 %
    (what is left: autocast's copies of biases, cached but never saved)."""
    net = netdsl.load(name).network
    batch = 1 if name in TOO_LARGE else 2
    est = estimate(net, batch=batch, amp=amp)
    got = saved_by_autograd(net, batch, amp)
    assert est.saved + est.saved_copies == pytest.approx(got, rel=0.005), (
        f"{name}: estimated {est.saved + est.saved_copies:,} B, autograd saves {got:,} B"
    )


# ---- the estimate's own arithmetic (no torch) ---------------------------------------------


def test_categories_by_optimizer_and_dtype():
    net = netdsl.load("resnet18").network
    params = net.total_params
    adam = estimate(net, batch=8, optimizer="adam")
    assert adam.parameters == adam.gradients == 4 * params
    tensors = adam.optimizer_state - 2 * 4 * params
    assert tensors % 4 == 0 and 0 < tensors // 4 < 200  # one 4-byte step per parameter tensor
    assert estimate(net, batch=8, optimizer="sgd").optimizer_state == 0
    assert estimate(net, batch=8, optimizer="sgd-momentum").optimizer_state == 4 * params
    half = estimate(net, batch=8, dtype="bf16", optimizer="sgd")
    assert half.parameters == 2 * params and half.weight_copies == 0
    assert half.saved < adam.saved
    amp = estimate(net, batch=8, amp=True, optimizer="adam")
    conv_fc = sum(n.params for n in net.nodes() if n.op in ("conv", "fc"))
    assert amp.weight_copies == 2 * conv_fc  # autocast's bf16 copy of each weight it casts
    assert amp.parameters == adam.parameters and amp.saved < adam.saved
    inference = estimate(net, batch=8, train=False)
    assert inference.gradients == inference.optimizer_state == 0
    assert inference.peak == inference.inference_peak < adam.peak


def test_in_place_relu_saves_the_storage_it_overwrote():
    """BatchNorm saves its input; the ReLU after it, in place, saves its output, which is the
    BatchNorm's output storage: counted once, and no new output."""
    net = netdsl.load("resnet18").network
    layers = {m.node.id: m for m in estimate(net, batch=2).layers}
    relu = layers["stem.relu"]
    assert relu.how == "in place" and relu.output_bytes == 0
    assert relu.saved == [("its output (the overwritten input)", 2 * 64 * 112 * 112 * 4, "")]
    pool = layers["stem.maxpool"]
    assert [(w, s) for w, _, s in pool.saved] == [("input", "shared"), ("int64 indices", "")]


def test_largest_batch_is_the_last_that_fits():
    net = netdsl.load("resnet50").network
    budget = parse_size("4GiB")
    batch, est = largest_batch(net, budget, amp=True, optimizer="adam")
    usable = budget * (1 - HEADROOM)
    assert batch > 1 and est.batch == batch and est.peak <= usable
    assert estimate(net, batch=batch + 1, amp=True, optimizer="adam").peak > usable
    assert largest_batch(net, parse_size("100MiB"))[0] == 0


def test_sizes():
    assert parse_size("24GiB") == parse_size("24G") == 24 << 30
    assert parse_size("16GB") == 16 * 10**9
    assert parse_size("512MiB") == 512 << 20
    assert parse_size("1.5GiB") == 3 << 29
    with pytest.raises(ValueError):
        parse_size("lots")


# ---- the command line -----------------------------------------------------------------------


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_summary_prints_memory_and_flops(capsys):
    code, out, _ = run(
        capsys, "summary", "resnet50", "--batch", "8", "--amp", "--optimizer", "adam", "--train"
    )
    assert code == 0
    block = out[out.index("memory of a training step") :]
    assert "at batch 8, fp32 model under autocast" in block
    for label in (
        "parameters",
        "gradients",
        "optimizer state",
        "weight copies",
        "saved for backward",
        "peak",
        "peak at inference",
        "FLOPs of a training step",
    ):
        assert f"\n  {label} " in block or f"\n{label} " in block, label
    # without the options, summary prints what it always printed
    code, plain, _ = run(capsys, "summary", "resnet50")
    assert "memory of a" not in plain and plain.splitlines()[0] == out.splitlines()[0]


def test_summary_memory_budget(capsys):
    code, out, _ = run(capsys, "summary", "resnet50", "--memory", "24GiB", "--amp")
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("largest batch in 24.0 GiB: "))
    batch = int(line.split(": ")[1].split()[0])
    net = netdsl.load("resnet50").network
    # the file's train: section says sgd with momentum: that is the default optimizer
    assert estimate(net, batch=batch, amp=True).peak <= (24 << 30) * (1 - HEADROOM)
    assert estimate(net, batch=batch + 1, amp=True).peak > (24 << 30) * (1 - HEADROOM)
    assert "sgd-momentum" in out and "10% headroom" in line


def test_summary_json_keeps_its_keys_and_adds_the_estimate(capsys):
    code, out, _ = run(capsys, "summary", "resnet18", "--json", "--batch", "4", "--eval")
    data = json.loads(out)
    for key in ("network", "inputs", "outputs", "params", "buffers", "macs", "layers"):
        assert key in data
    assert data["memory"]["batch"] == 4 and data["memory"]["mode"] == "eval"
    assert data["flops"]["forward_eval"] == 2 * 4 * data["macs"]
    code, out, _ = run(capsys, "summary", "resnet18", "--json")
    assert "memory" not in json.loads(out)  # without the options: what it always printed
    code, out, _ = run(capsys, "summary", "resnet18", "--json", "--train")
    data = json.loads(out)
    assert data["memory"]["batch"] == 1 and data["memory"]["mode"] == "train"
    est = estimate(netdsl.load("resnet18").network, batch=1)
    assert data["memory"]["peak"] == est.peak
    assert data["memory"]["activations"] == est.activations
    conv = next(layer for layer in data["layers"] if layer["op"] == "conv")
    assert set(conv["memory"]) >= {"output_bytes", "saved_bytes"}
    assert conv["flops"]["forward"] == 2 * conv["macs"]
    assert sum(layer["flops"]["forward"] for layer in data["layers"]) == data["flops"]["forward"]


def test_explain_shows_what_each_layer_saves(capsys):
    code, out, _ = run(capsys, "explain", "resnet18", "--layer", "stem.maxpool", "--batch", "2")
    assert code == 0
    assert "saved   for backward at batch 2" in out and "int64 indices 3.1 MiB" in out
    code, out, _ = run(capsys, "explain", "resnet18", "--batch", "2", "--depth", "0")
    assert "memory of a training step at batch 2" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--amp", "--dtype", "bf16"], "--amp runs an fp32 model under autocast"),
        (["--batch", "0"], "--batch must be a positive integer, got 0"),
        (["--memory", "lots"], "--memory: not a size"),
    ],
)
def test_bad_estimate_options(capsys, argv, message):
    code, out, err = run(capsys, "summary", "lenet5", *argv)
    assert code == 2 and out == "" and message in err
