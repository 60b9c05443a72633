"""The generated train.py on token networks: a language model trained on a text.

gpt2.net's small configuration (context 64, a vocabulary of 256 bytes, D = 64, two
blocks of two heads) learns next-byte prediction on docs/tutorial.md (the project's
own text, read as bytes: no tokenizer, nothing downloaded) in both targets, and the
PyTorch script trains it under torchrun with FSDP2 (`--fsdp`) on the CPU (gloo) to
the very weights that DDP reaches. In-process tests of the same code are in
test_runtime_*.py.
"""

from __future__ import annotations

import itertools
import math
import re
import subprocess
import sys

import pytest
from conftest import ROOT, need
from test_keras_train import run as run_keras
from test_torch_train import run, saved, write

from netdsl import compile_file
from netdsl.emit import get_emitter

SMALL = [
    *("--param", "context=64", "--param", "vocab=256", "--param", "dim=64"),
    *("--param", "depth=2", "--param", "heads=2"),
]
TEXT = ROOT / "docs" / "tutorial.md"  # some 30 kB of English and code
SIZE = TEXT.stat().st_size
WINDOWS = (SIZE - SIZE // 10 - 1) // 64  # of 64 + 1 bytes in the first nine tenths
STEPS = WINDOWS // 16  # batches of 16 in an epoch
# the flags of a short run: the recipe's warm-up (2,000 steps) is longer than it
SHORT = ["--data", f"text:{TEXT}", "--batch-size", "16", "--lr", "1e-2", "--warmup", "0"]
CHANCE = math.log(256)  # the loss of a uniform guess over the 256 bytes: 5.55
DOC = (ROOT / "docs" / "training.md").read_text(encoding="utf-8")


def documented(message: str) -> str:
    """`message`, which docs/training.md must show as a line of its own."""
    lines = [line.strip() for line in DOC.splitlines()]
    assert message in lines, f"docs/training.md does not show {message!r}"
    return message


def losses(out: str) -> tuple[list[float], list[float]]:
    """The training losses of the progress lines and the test losses, in order."""
    train = [float(x) for x in re.findall(r"step \d+ loss ([\d.]+) ppl", out)]
    test = [float(x) for x in re.findall(r"test loss ([\d.]+) \(perplexity", out)]
    return train, test


@pytest.mark.slow
def test_gpt2_learns_next_byte_prediction_on_a_text(tmp_path):
    torch = need("torch")
    script = write(tmp_path, "gpt2", *SMALL)
    assert STEPS >= 20
    out = run(script, *SHORT, "--epochs", "3", "--log-every", "1", "--sample", "32")
    assert (
        f"gpt2: 120,576 parameters; text:{TEXT} data, {WINDOWS} windows of 64 + 1 ids; "
        "batch 16, adamw lr 0.01; cpu"
    ) in out
    train, test = losses(out)
    assert len(train) == 3 * STEPS and len(test) == 3, out
    assert train[-1] < train[0] and test[-1] < test[0], out
    assert test[-1] < CHANCE - 2.0, out  # byte statistics and more learnt
    perplexity = float(re.findall(r"\(perplexity ([\d.]+)\)", out)[-1])
    assert perplexity == pytest.approx(math.exp(test[-1]), rel=1e-3)
    sample = re.search(r"sample after '.*':\n  '(.*)'\n", out)
    assert sample is not None and len(sample.group(1)) <= 32, out
    state = saved(tmp_path / "gpt2.pt")
    assert state["step"] == 3 * STEPS
    # tied: one table of 256 x 64, saved under the embedding's name and the output
    # layer's (as the MLPs' first weights, 256 x 64 too, are not)
    tables = [v for v in state["model"].values() if v.shape == (256, 64)]
    assert sum(torch.equal(a, b) for a, b in itertools.combinations(tables, 2)) == 1


@pytest.mark.slow
def test_a_vocabulary_below_256_cannot_read_bytes(tmp_path):
    script = write(tmp_path, "gpt2", *SMALL, "--param", "vocab=100")
    done = subprocess.run(
        [sys.executable, str(script), "--device", "cpu", *SHORT],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert done.stderr.strip().endswith(
        documented(
            "error: --data text reads bytes, token ids 0..255, but the input's "
            "vocabulary is 100: recompile with a vocabulary of at least 256"
        )
    )


@pytest.mark.slow
def test_synthetic_token_ids_by_default(tmp_path):
    script = write(tmp_path, "gpt2", *SMALL)
    out = run(script, "--steps", "2", "--batch-size", "4", "--samples", "16")
    assert "synthetic data, 16 windows of 64 + 1 ids" in out
    assert re.search(r"step 2 loss [\d.]+ ppl [\d.]+ acc [\d.]+% \d+ tok/s", out), out


# ---- FSDP2 under torchrun, on the CPU ------------------------------------------------


@pytest.fixture(scope="module")
def fsdp(tmp_path_factory):
    """gpt2 small trained 2 epochs by two processes with --fsdp: (folder, output)."""
    need("torch")
    folder = tmp_path_factory.mktemp("fsdp")
    script = write(folder, "gpt2", *SMALL)
    args = [*SHORT, "--epochs", "2", "--sample", "0"]
    out = run(script, *args, "--fsdp", "--checkpoint", "fsdp.pt", torchrun=2, timeout=300)
    return folder, out


@pytest.mark.slow
def test_fsdp_reaches_the_weights_ddp_does(fsdp):
    torch = need("torch")
    folder, out = fsdp
    assert "2 processes (FSDP over 2 blocks and the root, gloo), rank 0 on cpu" in out
    assert "; 2 processes (FSDP over 2 blocks and the root, gloo), rank 0 on cpu\n" in DOC
    assert out.count(f"saved fsdp.pt at step {2 * STEPS} (end of epoch 2)") == 1
    args = [*SHORT, "--epochs", "2", "--sample", "0"]
    ddp = run(folder / "train.py", *args, "--checkpoint", "ddp.pt", torchrun=2, timeout=300)
    assert losses(ddp) == losses(out)
    sharded, replicated = saved(folder / "fsdp.pt"), saved(folder / "ddp.pt")
    assert sharded["model"].keys() == replicated["model"].keys()
    for name, value in replicated["model"].items():
        assert torch.allclose(sharded["model"][name], value, atol=1e-6), name


@pytest.mark.slow
def test_an_fsdp_checkpoint_resumes_without_fsdp(fsdp):
    """Its optimizer state, keyed by parameter name, loads into DDP's processes; the
    resumed run ends where the uninterrupted one did."""
    torch = need("torch")
    folder, _ = fsdp
    args = [*SHORT, "--epochs", "2", "--sample", "0", "--checkpoint", "part.pt"]
    stop = STEPS + 3  # part-way through the second epoch
    run(folder / "train.py", *args, "--fsdp", "--steps", f"{stop}", torchrun=2, timeout=300)
    part = saved(folder / "part.pt")
    assert part["args"]["fsdp"] and (part["step"], part["epoch"], part["batch"]) == (stop, 1, 3)
    named = part["optimizer"]["state"]  # keyed by parameter name, not position
    assert len(named) > 10 and set(named) <= set(part["model"])
    out = run(folder / "train.py", *args, "--resume", torchrun=2, timeout=300)
    assert f"resumed from part.pt at step {stop} (epoch 2)" in out
    resumed, straight = saved(folder / "part.pt"), saved(folder / "fsdp.pt")
    assert resumed["step"] == straight["step"] == 2 * STEPS
    for name, value in straight["model"].items():
        assert torch.allclose(resumed["model"][name], value, atol=1e-5), name


# a residual around each block, added in place to the block's output (`out += wte`),
# which is a view (a linear layer's on tokens): FSDP's backward hook must survive it
RESIDUAL = """
block ffn(d) = layernorm + fc d
network res(context=16, vocab=256):
    input context tokens of vocab
    wte = embedding 16
    wte + add(id, ffn(16)) + add(id, ffn(16)) + fc vocab bias=false tie=wte

train:
    optimizer adam lr=1e-2
    batch_size 8
    epochs 1
"""


@pytest.mark.slow
def test_fsdp_trains_blocks_whose_output_is_added_to_in_place(tmp_path):
    torch = need("torch")
    script = write(tmp_path, "res", source=RESIDUAL)
    assert "out += wte" in (tmp_path / "res.py").read_text()
    args = ["--data", f"text:{TEXT}", "--steps", "4", "--sample", "0"]
    out = run(script, *args, "--fsdp", "--checkpoint", "f.pt", torchrun=2, timeout=300)
    assert "(FSDP over 2 blocks and the root, gloo)" in out
    run(script, *args, "--checkpoint", "d.pt", torchrun=2, timeout=300)
    sharded, replicated = saved(tmp_path / "f.pt"), saved(tmp_path / "d.pt")
    for name, value in replicated["model"].items():
        assert torch.allclose(sharded["model"][name], value, atol=1e-6), name


@pytest.mark.slow
def test_fsdp_needs_several_processes(tmp_path):
    script = write(tmp_path, "gpt2", *SMALL)
    done = subprocess.run(
        [sys.executable, str(script), "--device", "cpu", "--fsdp", "--steps", "1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert done.stderr.strip().endswith(
        documented(
            "error: --fsdp shards the model across processes: run train.py under "
            "torchrun --nproc_per_node=N (N of 2 or more)"
        )
    )


# ---- Keras ---------------------------------------------------------------------------


@pytest.mark.slow
def test_keras_gpt2_learns_next_byte_prediction_on_a_text(tmp_path):
    need("keras")
    params = dict(context=64, vocab=256, dim=64, depth=2, heads=2)
    net = compile_file(ROOT / "architectures" / "gpt2.net", params=params)
    emitter = get_emitter("keras")
    (tmp_path / "gpt2k.py").write_text(emitter.emit_model(net))
    (tmp_path / "train.py").write_text(emitter.emit_train(net, "gpt2k"))
    out = run_keras(tmp_path, *SHORT, "--epochs", "3", "--verbose", "2", "--sample", "16")
    assert f"text:{TEXT} data of {WINDOWS} windows of 64 + 1 ids" in out
    train = [float(x) for x in re.findall(r" - loss: ([\d.]+)", out)]
    test = [float(x) for x in re.findall(r" - val_loss: ([\d.]+)", out)]
    assert len(train) == len(test) == 3 and train[-1] < train[0], out
    assert test[-1] < CHANCE - 2.0, out
    final = float(re.search(r"test loss ([\d.]+) \(perplexity ([\d.]+)\)", out).group(1))
    assert final == pytest.approx(test[-1], abs=1e-4)
    assert re.search(r"sample after '.*':\n  '.*'\n", out), out


def test_a_model_that_sees_later_tokens_is_noted(tmp_path):
    """gpt2 without its causal masks: the next-token loss can be had by copying."""
    need("torch")
    source = (ROOT / "architectures" / "gpt2.net").read_text().replace(" causal=true", "")
    script = write(tmp_path, "seer", *SMALL, source=source)
    out = run(script, "--steps", "1", "--batch-size", "2", "--samples", "4")
    assert (
        documented(
            "note: some layer lets a position see later ones (an attention without "
            "causal=true): the model can read the next token it is asked to predict"
        )
        in out
    )
