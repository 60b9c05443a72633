"""netdsl/runtime/torch_train.py, the PyTorch train.py's runtime, called in-process.

Its header names (RECIPE, build_model, ...) are set to those train.py would define
for a tiny network (test_runtime_common.load_header). tests/test_torch_train.py runs
generated scripts end to end (torchrun, digits, resume).
"""

from __future__ import annotations

import math
import os
import random
import re

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
    scheduler = rt.make_scheduler(args("--epochs", "2"), optimizer, 2)
    if rates is None:
        assert scheduler is None
        return
    seen = []
    for _ in rates:
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx(rates)


def test_a_language_models_schedule_counts_steps(header, monkeypatch):
    """cosine over the steps of all epochs, after a warm-up of --warmup steps."""
    header()
    monkeypatch.setitem(rt.RECIPE, "schedule", {"name": "cosine", "warmup": 2000})
    optimizer = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), 1.0)
    scheduler = rt.make_scheduler(args("--warmup", "2"), optimizer, 4)
    seen = []
    for _ in range(7):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([0.1, 0.55, 1.0, 0.8535534, 0.5, 0.1464466, 0.0])


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


# ---- token ids: language models -----------------------------------------------------------

# next-token logits over the input's own vocabulary: train.py's language-model mode
LM = """
block ffn(d) = layernorm + fc d
network lm(context=8, vocab=256):
    input context tokens of vocab
    wte = embedding 16
    wte + pos_embed + add(id, layernorm + attention 2 causal=true) + add(id, ffn(16))
    + fc vocab bias=false tie=wte

train:
    optimizer adamw lr=1e-2
    schedule cosine warmup=1000
    batch_size 4
    epochs 2
    augment mixup
"""


def test_the_header_says_whether_the_network_is_a_language_model(header):
    header(LM, "lm_torch")
    assert (rt.VOCAB, rt.LANGUAGE_MODEL, rt.CAUSAL) == (256, True, True)
    header(LM.replace(" causal=true", ""), "lm_ahead")
    assert (rt.VOCAB, rt.LANGUAGE_MODEL, rt.CAUSAL) == (256, True, False)
    classifier = LM.replace("+ fc vocab bias=false tie=wte", "+ token_pool mean + fc 5")
    header(classifier, "ids_classifier")
    assert (rt.VOCAB, rt.LANGUAGE_MODEL, rt.OUTPUT_FEATURES) == (256, False, 5)
    header()
    assert (rt.VOCAB, rt.LANGUAGE_MODEL) == (None, False)


def test_a_text_in_windows_each_target_the_next_byte(header, tmp_path):
    header(LM, "lm_torch")
    path = tmp_path / "t.txt"
    path.write_bytes(bytes(range(200)))  # 180 to train on, 20 held out
    train, test, classes = rt.datasets_for(args("--data", f"text:{path}"), (8,))
    assert (len(train), len(test), classes) == (22, 2, 256)  # (180 - 1) // 8, (20 - 1) // 8
    x, y = train[1]
    assert x.tolist() == list(range(8, 16)) and y.tolist() == list(range(9, 17))
    assert x.dtype == y.dtype == torch.long
    assert test[1][1].tolist() == list(range(189, 197))
    with pytest.raises(SystemExit, match="error: --data digits gives images"):
        rt.datasets_for(args("--data", "digits"), (8,))


def test_synthetic_token_ids(header):
    header(LM, "lm_torch")
    train, test, classes = rt.datasets_for(args("--samples", "5"), (8,))
    assert (len(train), test, classes) == (5, None, 256)
    x, y = train[4]
    assert torch.equal(x[1:], y[:-1]) and 0 <= int(x.min()) and int(x.max()) < 256
    header(LM.replace("+ fc vocab bias=false tie=wte", "+ token_pool mean + fc 5"), "idc")
    train, _, classes = rt.datasets_for(args("--samples", "5"), (8,))
    x, y = train[0]
    assert (x.dtype, x.shape, classes) == (torch.long, (8,), 5) and 0 <= int(y) < 5


def test_the_loss_is_the_mean_over_every_position(header):
    header(LM, "lm_torch")
    torch.manual_seed(0)
    logits, targets = torch.randn(2, 8, 256), torch.randint(0, 256, (2, 8))
    each = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    assert each.shape == (2, 8)
    assert torch.allclose(rt.Loss(0.0, 0.0)(logits, targets), each.mean())


def test_a_language_model_builds_with_its_own_vocabulary(header):
    header(LM, "lm_torch")
    model = rt.build(args(), rt.Runtime("cpu"), (8,), 256)
    assert model(torch.zeros(2, 8, dtype=torch.long)).shape == (2, 8, 256)


def test_greedy_generation_takes_the_most_likely_next_id(header):
    header(LM, "lm_torch")
    a = args()

    class Echo(torch.nn.Module):  # predicts the id after its last input, plus one
        def forward(self, x):
            return torch.nn.functional.one_hot((x + 1) % 256, 256).float()

    prompt = torch.arange(8, dtype=torch.uint8)
    assert rt.generate(Echo(), prompt, 5, rt.Runtime("cpu"), a) == [8, 9, 10, 11, 12]


def test_evaluation_counts_tokens(header, tmp_path):
    header(LM, "lm_torch")
    path = tmp_path / "t.txt"
    path.write_bytes(b"abcdefgh" * 40)
    a = args("--data", f"text:{path}")
    train, test, _ = rt.datasets_for(a, (8,))
    _, _, loader = rt.data_loaders(a, rt.Runtime("cpu"), train, test, 4)
    torch.manual_seed(0)
    model = rt.build(a, rt.Runtime("cpu"), (8,), 256)
    loss, accuracy = rt.evaluate(model, loader, rt.Runtime("cpu"), a)
    x, y = next(iter(torch.utils.data.DataLoader(test, batch_size=len(test))))
    with torch.no_grad():
        out = model(x)
    assert loss == pytest.approx(float(rt.Loss(0.0, 0.0)(out, y)), rel=1e-5)
    assert accuracy == pytest.approx(float((out.argmax(-1) == y).float().mean()))


# ---- FSDP ------------------------------------------------------------------------------------


def test_fsdp_shards_the_outermost_blocks(header):
    header(LM, "lm_torch")
    model = rt.build(args(), rt.Runtime("cpu"), (8,), 256)
    # the ffn blocks; not PositionEmbedding (a parameter of its own) nor SelfAttention
    # (an nn.MultiheadAttention), which the model file defines too
    assert [type(b).__name__ for b in rt.fsdp_blocks(model)] == ["Ffn"]
    header(
        "block unit(c) = conv3 c + relu\nblock stage(c) = unit(c) + unit(c)\n"
        "network deep(classes=3):\n    input 3x8x8\n"
        "    stage(4) + maxpool2 + stage(8) + gap + fc classes\n",
        "deep_torch",
    )
    model = rt.build(args(), rt.Runtime("cpu"), (3, 8, 8), 3)
    assert [type(b).__name__ for b in rt.fsdp_blocks(model)] == ["Stage", "Stage"]


def test_fsdp_refuses_one_process_and_placed_models(header, monkeypatch):
    header(LM, "lm_torch")
    model = rt.build(args(), rt.Runtime("cpu"), (8,), 256)
    with pytest.raises(SystemExit, match=r"^error: --fsdp shards the model across"):
        rt.shard(model, rt.Runtime("cpu"))
    runtime = rt.Runtime("cpu")
    runtime.distributed = True
    monkeypatch.setattr(rt, "PLACED", True)
    with pytest.raises(SystemExit, match=r"^error: --fsdp cannot shard a model whose"):
        rt.shard(model, runtime)


def test_a_view_a_sharded_block_returns_is_copied():
    x = torch.ones(2, 3)
    view, fresh = x.view(6), x + 1
    copied = rt.copy_view(None, (), view)
    assert copied is not None and not copied._is_view() and torch.equal(copied, view)
    assert rt.copy_view(None, (), fresh) is None


def test_an_optimizer_state_keyed_by_name():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    optimizer = torch.optim.SGD(model.parameters(), 0.1, momentum=0.9)
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    names = [name for name, _ in model.named_parameters()]
    named = rt.by_name(optimizer.state_dict(), names)
    assert list(named["state"]) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert named["param_groups"][0]["params"] == names
    assert named["param_groups"][0]["lr"] == 0.1
    assert torch.equal(named["state"]["1.bias"]["momentum_buffer"], model[1].bias.grad)


@pytest.mark.slow
def test_main_trains_a_language_model_on_a_text(header, tmp_path, capsys):
    header(LM, "lm_torch")
    path = tmp_path / "t.txt"
    path.write_bytes(b"the cat sat on the mat. " * 40)  # 960 bytes: 864 + 96
    checkpoint = str(tmp_path / "lm.pt")
    argv = ["--device", "cpu", "--data", f"text:{path}", "--checkpoint", checkpoint]
    rt.main([*argv, "--epochs", "1", "--sample", "12", "--log-every", "1"])
    out = capsys.readouterr()
    assert f"text:{path} data, 107 windows of 8 + 1 ids; batch 4, adamw lr 0.01" in out.out
    assert "note: the recipe's mixup cannot apply to token ids: not done" in out.out
    assert re.search(r"step 26 loss [\d.]+ ppl [\d.]+ acc [\d.]+% \d+ tok/s", out.err)
    figures = r"test loss ([\d.]+) \(perplexity ([\d.]+)\), test accuracy [\d.]+%"
    loss, perplexity = map(float, re.search(figures, out.out).groups())
    assert perplexity == pytest.approx(math.exp(loss), rel=1e-3)
    assert re.search(r"sample after 'the cat ':\n  '.{1,12}'\n", out.out)  # the prompt
    state = torch.load(checkpoint, weights_only=False)
    # the schedule counts steps: 26 of the 1,000 of warm-up, 0.1 of the rate at first
    assert state["scheduler"]["_schedulers"][0]["last_epoch"] == 26
