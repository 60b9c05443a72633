"""`netdsl profile`: the generated PyTorch model built and measured on the CPU.

Small networks, one or two timed steps: what is checked is the report's shape (a row per
top-level block, the totals, throughput, FLOPs, peak memory) and that the figures it
prints are netdsl's; never a GPU (`--device cuda` is checked only where there is none).
"""

from __future__ import annotations

import re

import pytest
from conftest import compile_text, need, run_cli

from netdsl.flops import step_flops

SMALL = """\
block unit(c) = conv3 c + bn + relu

network small(classes=10):
    input 3x16x16
    unit(8) + maxpool 2
    add(unit(8) + dwconv3, id) + relu
    gap + fc classes
"""

TOKENS = """\
network tiny_vit:
    input 3x16x16
    patch_embed 32 4 + cls_token + pos_embed
    add(layernorm + attention 4, id) + layernorm + token_pool + fc 10
"""


@pytest.fixture
def small(tmp_path):
    need("torch")
    path = tmp_path / "small.net"
    path.write_text(SMALL, encoding="utf-8")
    return str(path)


def profile(capsys, *argv):
    return run_cli(capsys, "profile", "--warmup", "1", "--iters", "2", *argv)


def rows(out: str) -> dict[str, list[str]]:
    """The table's rows by their first cell (the block's name)."""
    table = out.split("\n\n")[1].splitlines()
    return {line.split()[0]: line.split()[1:] for line in table[2:] if not line.startswith("-")}


def test_eval_profile_has_a_row_per_block_and_totals(small, capsys):
    code, out, err = profile(capsys, small, "--target", "torch", "--batch", "2")
    assert code == 0, err
    assert out.startswith("small: cpu, eval, batch 2, fp32; 2 steps after 1 warm-up")
    table = rows(out)
    assert list(table)[:7] == ["unit1", "maxpool", "unit2", "dwconv", "add", "relu", "gap"]
    assert table["add"][1:4] == ["-", "-", "0"]  # a join in forward: no module, no time
    assert "(between" in table and "Total" in table
    assert table["maxpool"][0] == "8x8x8"
    assert table["Total"][1] == "100.0"
    net = compile_text(SMALL)
    figures = step_flops(net, 2)
    assert f"FLOPs:       {figures.forward_eval:,} per step: forward (eval path)" in out
    assert re.search(r"throughput:  [\d,.]+ images/s", out)
    assert "MFU:         n/a (no peak is known for CPUs)" in out
    assert re.search(r"peak memory: [\d,.]+ MiB \(torch.profiler", out)
    assert "warm-up" in err and "measure" in err


def test_train_profile_times_backward_and_the_optimizer(small, capsys):
    code, out, err = profile(capsys, small, "--batch", "2", "--train", "--optimizer", "adam")
    assert code == 0, err
    assert "train, batch 2, fp32" in out and "optimizer adam" in out
    head = out.split("\n\n")[1].splitlines()[0].split()
    assert head[:5] == ["Block", "Output", "Fwd", "ms", "Bwd"]
    table = rows(out)
    assert "(optimizer" in table
    assert all(cell != "-" for cell in table["unit1"][1:3])  # forward and backward times
    figures = step_flops(compile_text(SMALL), 2, attention="cpu")
    assert f"FLOPs:       {figures.total:,} per step: forward" in out
    assert "input grads" in out and "weight grads" in out
    # the depthwise conv: FlopCounterMode's weight gradient x 8, and the arithmetic beside it
    assert figures.overcount > 0
    assert f"arithmetic:  {figures.total - figures.overcount:,} per step" in out


def test_amp_on_the_cpu_is_bf16_autocast(small, capsys):
    code, out, err = profile(capsys, small, "--batch", "2", "--train", "--amp")
    assert code == 0, err
    assert "bf16 autocast" in out


def test_token_network_and_channels_last(tmp_path, capsys):
    need("torch")
    path = tmp_path / "tiny_vit.net"
    path.write_text(TOKENS, encoding="utf-8")
    code, out, err = profile(capsys, str(path), "--train", "--channels-last")
    assert code == 0, err
    assert "channels_last" in out
    assert {"patch_embed", "cls_token", "pos_embed", "add", "fc"} <= set(rows(out))


def test_errors_are_netdsl_errors(small, capsys):
    torch = need("torch")
    if not torch.cuda.is_available():
        code, _, err = profile(capsys, small, "--device", "cuda")
        assert code == 1
        assert "--device cuda: PyTorch finds no CUDA device" in err
        assert "Traceback" not in err
    code, _, err = profile(capsys, small, "--target", "keras")
    assert (code, err.splitlines()[0]) == (
        1,
        "netdsl: netdsl profile measures PyTorch models; --target keras is not one",
    )
    code, _, err = profile(capsys, small, "--batch", "0")
    assert code == 2 and "--batch must be 1 or more, got 0" in err
    code, _, err = profile(capsys, small, "--iters", "0")
    assert code == 2 and "--iters must be 1 or more, got 0" in err


def test_batchnorm_on_one_sample_in_training(tmp_path, capsys):
    need("torch")
    path = tmp_path / "flat.net"
    path.write_text("network flat:\n    input 8\n    fc 4 + bn + fc 2\n", encoding="utf-8")
    code, _, err = profile(capsys, str(path), "--train")
    assert code == 1 and "Traceback" not in err
    assert "the generated PyTorch model failed at batch 1" in err
    assert "use --batch 2" in err


@pytest.mark.slow
def test_compile_runs_or_says_why(small, capsys):
    """torch.compile needs a C++ compiler on the CPU: it runs, or the error says so."""
    code, out, err = profile(capsys, small, "--compile")
    if code == 0:
        assert "torch.compile" in out
        assert rows(out)["unit1"][1] == "-"  # no per-block times under compile
    else:
        assert code == 1 and "torch.compile failed" in err
