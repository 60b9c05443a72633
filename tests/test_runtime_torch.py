"""netdsl/runtime/torch_train.py, the PyTorch train.py's runtime, called in-process.

Its header names (RECIPE, build_model, ...) are set to those train.py would define
for a tiny network (test_runtime_common.load_header). tests/test_torch_train.py runs
generated scripts end to end (torchrun, digits, resume).
"""

from __future__ import annotations

import os
import random

import pytest
from conftest import compile_text, need
from test_runtime_common import TINY, load_header, stand_ins

torch = need("torch")
rt = pytest.importorskip("netdsl.runtime.torch_train")


@pytest.fixture
def header(tmp_path, monkeypatch):
    """Set the runtime's header names to train.py's for `source` (TINY by default)."""
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)

    def set_header(source: str = TINY, module: str = "tiny_torch") -> dict:
        names = load_header("torch", compile_text(source), tmp_path, module)
        for name in stand_ins("torch_train"):
            monkeypatch.setattr(rt, name, names[name])
        return names

    return set_header


def args(*argv: str):
    return rt.parse_args(["--device", "cpu", *argv])


# ---- arguments, processes ------------------------------------------------------------------


def test_flags_default_to_the_recipe(header):
    header()
    a = args()
    assert (a.epochs, a.batch_size, a.momentum, a.weight_decay) == (2, 8, 0.9, 1e-4)
    assert (a.data, a.checkpoint, a.lr, a.resume) == ("synthetic", "tiny.pt", None, False)
    a = args("--epochs", "5", "--batch-size", "16", "--data", "digits", "--amp")
    assert (a.epochs, a.batch_size, a.data, a.amp) == (5, 16, "digits", True)


def test_sgd_learning_rate_scales_with_the_batch_size(header, monkeypatch):
    header()
    assert rt.default_lr(8) == pytest.approx(0.1)
    assert rt.default_lr(32) == pytest.approx(0.4)
    monkeypatch.setitem(rt.RECIPE, "optimizer", "adam")
    assert rt.default_lr(32) == pytest.approx(0.1)


def test_a_single_process_on_the_cpu(header):
    header()
    runtime = rt.Runtime("cpu")
    assert (runtime.distributed, runtime.rank, runtime.world, runtime.main) == (
        False,
        0,
        1,
        True,
    )
    assert runtime.device == torch.device("cpu")
    assert runtime.sum(1.0, 2.0) == [1.0, 2.0]
    assert rt.device_map(runtime) is None  # nothing pinned


def test_placed_parts_go_to_the_cpu_there(header):
    header(
        "network twin(classes=4):\n    input 3x8x8\n    conv3 8 @gpu(1) + relu + gap + fc classes\n",
        "twin_torch",
    )
    assert rt.PLACED and rt.DEVICES_PARAM == "devices"
    devices = rt.device_map(rt.Runtime("cpu"))
    assert devices == {name: "cpu" for name in rt.DEVICES} and devices
    model = rt.build(args(), rt.Runtime("cpu"), (3, 8, 8), 4)
    assert model(torch.zeros(2, 3, 8, 8)).shape == (2, 4)


# ---- data ----------------------------------------------------------------------------------


def test_synthetic_data_is_the_same_for_every_process(header):
    header()
    a = args("--samples", "100")
    train, test, classes = rt.datasets_for(a, (1, 8, 8))
    assert (len(train), test, classes) == (100, None, 3)
    again, _, _ = rt.datasets_for(a, (1, 8, 8))
    x, y = train[70]
    assert x.shape == (1, 8, 8) and 0 <= int(y) < 3
    assert torch.equal(x, again[70][0]) and torch.equal(x, train[70 - 64][0])


def test_digits_resized_to_the_input_or_flattened(header):
    need("sklearn")
    header()
    train, test, classes = rt.digits((3, 16, 16))
    assert (len(train), len(test), classes) == (1437, 360, 10)
    x, y = train[0]
    assert x.shape == (3, 16, 16) and y.dtype == torch.long
    flat, _, _ = rt.digits((70,))  # 8x8 pixels, then six zeros
    assert flat[0][0].shape == (70,)


def test_loaders_split_batches_and_skip_when_resuming(header):
    header()
    a = args("--samples", "40")
    train, _, _ = rt.datasets_for(a, (1, 8, 8))
    test = torch.utils.data.TensorDataset(torch.zeros(10, 1, 8, 8), torch.zeros(10).long())
    sampler, loader, test_loader = rt.data_loaders(a, rt.Runtime("cpu"), train, test, 8)
    assert len(loader) == 5 and [len(y) for _, y in test_loader] == [8, 2]
    sampler.set_epoch(0)
    order = list(sampler)
    sampler.skip = 16  # two batches done
    assert list(sampler) == order[16:] and len(loader) == 3
    assert rt.data_loaders(a, rt.Runtime("cpu"), train, None, 8)[2] is None


# ---- the model, its loss and optimizer -------------------------------------------------------


def test_build_checks_the_input_size(header, capsys):
    header()
    model = rt.build(args(), rt.Runtime("cpu"), (3, 8, 8), 3)
    model.train()
    main, aux = model(torch.zeros(2, 3, 8, 8))
    assert main.shape == aux.shape == (2, 3)
    with pytest.raises(SystemExit, match="tiny cannot run on 3x1x1 inputs"):
        rt.build(args(), rt.Runtime("cpu"), (3, 1, 1), 3)


def test_loss_weighs_the_aux_outputs_and_takes_the_log_of_softmax(header, monkeypatch):
    header()
    torch.manual_seed(0)
    main, aux, y = torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    ce = torch.nn.functional.cross_entropy
    assert torch.allclose(rt.Loss(0.3, 0.0)((main, aux), y), ce(main, y) + 0.3 * ce(aux, y))
    monkeypatch.setattr(rt, "SOFTMAX_OUTPUT", True)
    assert torch.allclose(rt.Loss(0.3, 0.0)(main.softmax(1), y), ce(main, y))


@pytest.mark.parametrize(
    "optimizer, kind",
    [("sgd", "SGD"), ("adam", "Adam"), ("adamw", "AdamW"), ("rmsprop", "RMSprop")],
)
def test_the_recipes_optimizer(header, monkeypatch, optimizer, kind):
    header()
    monkeypatch.setitem(rt.RECIPE, "optimizer", optimizer)
    a = args("--lr", "0.5", "--weight-decay", "0.01")
    made = rt.make_optimizer(a, torch.nn.Linear(2, 2))
    assert type(made).__name__ == kind
    assert made.param_groups[0]["lr"] == 0.5 and made.param_groups[0]["weight_decay"] == 0.01


@pytest.mark.parametrize(
    "schedule, rates",
    [
        ({"name": "none"}, None),
        ({"name": "step", "step": 1, "gamma": 0.5}, [1.0, 0.5, 0.25]),
        ({"name": "multistep", "milestones": [2]}, [1.0, 1.0, 0.1]),
        ({"name": "cosine", "warmup": 1}, [0.1, 1.0, 0.5]),
    ],
)
def test_the_recipes_schedule_per_epoch(header, monkeypatch, schedule, rates):
    header()
    monkeypatch.setitem(rt.RECIPE, "schedule", schedule)
    optimizer = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), 1.0)
    scheduler = rt.make_scheduler(args("--epochs", "2"), optimizer)
    if rates is None:
        assert scheduler is None
        return
    seen = []
    for _ in rates:
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx(rates)


# ---- checkpoints ---------------------------------------------------------------------------


def test_checkpoint_round_trip_restores_the_position_and_the_random_state(header, tmp_path):
    header()
    a = args()
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), 0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    random.seed(5)
    state = rt.training_state(model, optimizer, scheduler, scaler, (7, 1, 3), a)
    path = tmp_path / "ckpt" / "a.pt"
    rt.save_checkpoint(str(path), state)
    assert os.listdir(path.parent) == ["a.pt"]
    expected = random.random(), torch.rand(2)
    assert (state["network"], state["args"]["checkpoint"]) == ("tiny", "tiny.pt")

    fresh = torch.nn.Linear(3, 2)
    fresh_optimizer = torch.optim.SGD(fresh.parameters(), 0.1, momentum=0.9)
    fresh_scheduler = torch.optim.lr_scheduler.StepLR(fresh_optimizer, 1)
    position = rt.resume(
        str(path), fresh, fresh_optimizer, fresh_scheduler, scaler, torch.device("cpu")
    )
    assert position == (7, 1, 3)
    assert (random.random(), *torch.rand(2).tolist()) == (expected[0], *expected[1].tolist())
    assert torch.equal(fresh.weight, model.weight)
    momentum = [o.state_dict()["state"][0]["momentum_buffer"] for o in (optimizer, fresh_optimizer)]
    assert torch.equal(*momentum)
    assert fresh_scheduler.last_epoch == 1
    with pytest.raises(SystemExit, match="error: --resume: no checkpoint at nowhere.pt"):
        rt.resume("nowhere.pt", fresh, fresh_optimizer, None, scaler, torch.device("cpu"))


def test_a_failed_checkpoint_leaves_no_file_behind(tmp_path):
    with pytest.raises(Exception):  # noqa: B017 - whatever pickling raises
        rt.save_checkpoint(str(tmp_path / "a.pt"), {"lambda": lambda: 0})
    assert os.listdir(tmp_path) == []


# ---- the whole loop --------------------------------------------------------------------------


@pytest.mark.slow
def test_main_trains_checkpoints_and_resumes(header, tmp_path, capsys):
    header()
    checkpoint = str(tmp_path / "tiny.pt")
    common = ["--device", "cpu", "--samples", "32", "--checkpoint", checkpoint]
    rt.main(["--steps", "3", *common])
    out = capsys.readouterr()
    assert "tiny: " in out.out and "synthetic data, 32 examples of 3x8x8; batch 8" in out.out
    assert "augment: cutout 2 px, mixup alpha 0.2" in out.out
    assert f"saved {checkpoint} at step 3 (epoch 1, batch 3)" in out.out
    assert "step 3 loss" in out.err
    rt.main(["--resume", *common])
    out = capsys.readouterr().out
    assert f"resumed from {checkpoint} at step 3 (epoch 1)" in out
    assert f"saved {checkpoint} at step 8 (end of epoch 2)" in out
    state = torch.load(checkpoint, weights_only=False)
    assert (state["step"], state["epoch"], state["batch"]) == (8, 2, 0)
