"""`netdsl render` for slides: --layer, --direction, --fit, branches in source order,
shortcuts of collapsed blocks, and one text for a block call in every command."""

from __future__ import annotations

import re

import pytest
from conftest import ARCHITECTURES, compile_text
from test_render import need_dot

from netdsl import compile_file
from netdsl.calls import block_call
from netdsl.cli import main
from netdsl.ir import Scope
from netdsl.render import _Builder, _h, find_layer, parse_fit, run_dot, to_dot

RESNET50 = ARCHITECTURES / "resnet50.net"
INCEPTION_V3 = ARCHITECTURES / "inception_v3.net"


@pytest.fixture(scope="module")
def resnet50():
    return compile_file(RESNET50)


@pytest.fixture(scope="module")
def inception_v3():
    return compile_file(INCEPTION_V3)


def _layout(dot_text: str) -> tuple[tuple[float, float], dict]:
    """(width, height) of the drawing and node name -> (x, y), from `dot -Tplain`."""
    plain = run_dot(dot_text, "plain").decode()
    size, pos = None, {}
    for line in plain.splitlines():
        fields = line.split()
        if fields[0] == "graph":
            size = (float(fields[2]), float(fields[3]))
        elif fields[0] == "node":
            pos[fields[1]] = (float(fields[2]), float(fields[3]))
    return size, pos


def _node_keys(dot_text: str) -> set:
    return set(re.findall(r"^\s*(\w+) \[label=", dot_text, re.M))


# ---- --layer ----------------------------------------------------------------------------


def test_layer_draws_one_stage_alone(resnet50):
    dot = to_dot(resnet50, layer="stage2")
    assert "<b>stage2</b>" in dot and "stage(128, 4, s=2)" in dot and "1,219,584 params" in dot
    assert "bottleneck(128, s=2)" in dot and "bottlenecks.2" in dot
    assert "<b>stem" not in dot and "<b>stage1" not in dot and "fc 1000" not in dot
    # one input (what stage1 hands over) and one output, nothing else from outside
    assert dot.count('fontcolor="white"') == 2
    assert "256x56x56" in dot and "512x28x28" in dot


def test_layer_by_block_name_is_its_first_call(resnet50):
    assert find_layer(resnet50, "bottleneck").id == "stage1.bottleneck"
    assert find_layer(resnet50, "stage2.bottlenecks.0").id == "stage2.bottlenecks.0"
    dot = to_dot(resnet50, layer="bottleneck")
    assert "<b>stage1.bottleneck</b>" in dot and "bottleneck(64)" in dot
    assert dot.count("conv 64") == 2 and "conv 256 k=1" in dot  # the branch and projection


def test_unknown_layer_is_a_usage_error_with_close_names(capsys, tmp_path):
    out = tmp_path / "x.dot"
    assert main(["render", str(RESNET50), "--layer", "stag2", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "has no block or stage 'stag2'" in err and "did you mean 'stage2'" in err
    assert "Traceback" not in err and not out.exists()
    assert main(["render", str(RESNET50), "--layer", "zzz", "-o", str(out)]) == 2
    assert "its blocks: stage1, stage2, stage3, stage4, stem" in capsys.readouterr().err


def test_layer_at_a_depth(resnet50):
    dot = to_dot(resnet50, depth=0, layer="stage3")
    assert "[bottleneck(256)] x 5" in dot and "conv 256" not in dot


# ---- --direction, --fit: options ---------------------------------------------------------


def test_direction_sets_rankdir(resnet50):
    assert "rankdir=TB" in to_dot(resnet50, depth=0)
    assert "rankdir=LR" in to_dot(resnet50, depth=0, direction="LR")


def test_left_to_right_is_wide():
    need_dot()
    net = compile_file(ARCHITECTURES / "vgg16.net")
    (w, h), _ = _layout(to_dot(net, depth=0, direction="LR"))
    assert w > 2 * h
    (w, h), _ = _layout(to_dot(net, depth=0))
    assert h > 2 * w


@pytest.mark.parametrize(
    "args, message",
    [
        (["--direction", "BT"], "invalid choice: 'BT'"),
        (["--fit", "16x9"], "--fit takes a page's width:height"),
        (["--fit", "0:9"], "--fit takes a page's width:height"),
        (["--fit", "16:9:1"], "--fit takes a page's width:height"),
        (["--fit", "inf"], "--fit takes a page's width:height"),
    ],
)
def test_bad_options_are_usage_errors(args, message, capsys, tmp_path):
    out = tmp_path / "x.dot"
    with pytest.raises(SystemExit) if args[0] == "--direction" else _no_exit():
        code = main(["render", str(RESNET50), *args, "-o", str(out)])
        assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


class _no_exit:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_parse_fit():
    assert parse_fit("16:9") == pytest.approx(16 / 9)
    assert parse_fit("1.5") == 1.5


def test_fit_needs_graphviz_even_for_dot(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    out = tmp_path / "x.dot"
    assert main(["render", str(RESNET50), "--fit", "16:9", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "--fit needs Graphviz's `dot` program" in err and not out.exists()


# ---- --fit: the layout -------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1, None])
def test_fit_wraps_resnet50_into_columns_near_16_9(resnet50, depth):
    need_dot()
    (w, h), _ = _layout(to_dot(resnet50, depth))
    assert w / h < 0.4  # one tall strip
    dot = to_dot(resnet50, depth, fit=16 / 9)
    columns = dot.count('subgraph "cluster_column')
    assert columns >= 3
    (w, h), _ = _layout(dot)
    assert 1.3 < w / h < 2.4, (w, h)
    assert dot.count("constraint=false") == columns - 1  # one jump into each next column


def test_fit_at_depth_1_cuts_between_stages(resnet50):
    need_dot()
    dot = to_dot(resnet50, 1, fit=16 / 9)
    assert "(continued)" not in dot  # every stage whole in its column


def test_fit_left_to_right_makes_rows(resnet50):
    need_dot()
    dot = to_dot(resnet50, 1, direction="LR", fit=16 / 9)
    assert dot.count('subgraph "cluster_column') >= 2
    (w, h), _ = _layout(dot)
    assert 1.2 < w / h < 2.6, (w, h)


def test_fit_of_a_short_chain_is_one_column():
    need_dot()
    net = compile_text("network t:\n    input 3x32x32\n    conv3 8 + relu + gap + fc 10\n")
    assert "cluster_column" not in to_dot(net, fit=16 / 9)


# ---- branches in source order ------------------------------------------------------------


def test_inception_branches_left_to_right_in_source_order(inception_v3):
    """inception_b's third branch (the max pool) was drawn leftmost: every concat's inputs
    now sit left to right in the order the program lists them."""
    need_dot()
    builder = _Builder(inception_v3, None)
    _, pos = _layout(builder.dot())
    lasts = {  # each concat -> x of the last box of each of its branches
        node.id: [pos[builder.box_of[id(src)].key][0] for src in node.inputs]
        for node in inception_v3.nodes()
        if node.op == "concat"
    }
    assert len(lasts) == 15 and len(lasts["inception_b.concat"]) == 3  # 11 modules, 4 split3
    assert {name: xs for name, xs in lasts.items() if xs != sorted(xs)} == {}


def test_branches_top_to_bottom_left_to_right(inception_v3):
    need_dot()
    builder = _Builder(inception_v3, None, direction="LR")
    _, pos = _layout(builder.dot())
    node = next(n for n in inception_v3.nodes() if n.id == "inception_b.concat")
    ys = [pos[builder.box_of[id(src)].key][1] for src in node.inputs]
    assert ys == sorted(ys, reverse=True)  # (y grows upwards in -Tplain)


# ---- skip connections at every depth -----------------------------------------------------


def test_resnet50_shortcuts_at_depth_1(resnet50):
    dot = to_dot(resnet50, depth=1)
    # the first unit of each stage projects, the repeated ones add their input
    for projection in ("conv_bn(256, k=1)", "conv_bn(512, k=1, s=2)", "conv_bn(2048, k=1, s=2)"):
        assert f'label=" {projection}"' in dot
    for n in (2, 3, 5):
        assert f'label=" identity (each of {n})"' in dot
    assert dot.count("_in -> ") == 2 * 8 and dot.count("<b>add + relu</b>") == 4


def test_resnet50_shortcuts_at_depth_0(resnet50):
    dot = to_dot(resnet50, depth=0)
    for n in (3, 4, 6):
        assert f'label=" {n} shortcuts inside"' in dot
    assert dot.count("style=dashed") == 4  # inside a stage, not around it


def test_a_network_without_add_draws_no_shortcut():
    dot = to_dot(compile_file(ARCHITECTURES / "vgg16.net"), depth=0)
    assert "_in" not in dot and "shortcut" not in dot


def test_shortcut_drawn_in_the_image(resnet50, tmp_path):
    need_dot()
    _, pos = _layout(to_dot(resnet50, depth=1))
    forks = [k for k in pos if k.endswith("_in")]
    joins = [k for k in pos if k.endswith("_out")]
    assert len(forks) == len(joins) == 8
    for fork in forks:  # the join sits below its fork, the block between them
        box = fork[: -len("_in")]
        assert pos[fork][1] > pos[box][1] > pos[box + "_out"][1]


# ---- one text for a block call -----------------------------------------------------------


def _calls_at_depth_1(net) -> dict:
    """id -> call of every block and repeat summary --depth 1 shows as a row or a frame."""
    found = {}
    for scope in net.root.walk():
        if isinstance(scope, Scope) and scope.kind in ("block", "repeat") and scope.depth <= 2:
            found[scope.id] = block_call(scope, net.blocks)
    return found


def test_block_calls_print_the_same_in_every_command(resnet50, capsys, tmp_path):
    calls = _calls_at_depth_1(resnet50)
    assert calls["stage2"] == "stage(128, 4, s=2)"
    assert calls["stage2.bottleneck"] == "bottleneck(128, s=2)"
    assert calls["stage2.bottlenecks"] == "[bottleneck(128)] x 3"
    assert main(["summary", str(RESNET50), "--depth", "1"]) == 0
    summary = capsys.readouterr().out
    assert main(["explain", str(RESNET50), "--markdown", "--depth", "1"]) == 0
    markdown = capsys.readouterr().out
    out = tmp_path / "r.dot"
    assert main(["render", str(RESNET50), "--depth", "1", "-o", str(out)]) == 0
    dot = out.read_text()
    rows = {line.split()[0]: line for line in summary.splitlines() if line.strip()}
    for scope_id, call in calls.items():
        if scope_id in rows:  # a collapsed block: its row
            assert f"  {call}  " in rows[scope_id], scope_id
        assert f"| **{scope_id}** | `{call}` |" in markdown, scope_id
        assert _h(call) in dot, scope_id
    assert "1, 1, 64" not in summary + markdown + dot


def test_call_text_rules():
    net = compile_text(
        "block f(a, b=1, c=2, p=same) = conv3 a\n"
        "network t:\n    input 3x8x8\n    f(4) + f(4, 1, 3) + f(4, b=5) + f(4, p=0)\n"
    )
    calls = [block_call(s, net.blocks) for s in net.root.children if isinstance(s, Scope)]
    assert calls == ["f(4)", "f(4, c=3)", "f(4, b=5)", "f(4, p=0)"]
    # without the signatures: as written
    assert [block_call(s) for s in net.root.children if isinstance(s, Scope)][1] == "f(4, 1, 3)"


def test_render_labels_leave_initialisers_out(resnet50):
    dot = to_dot(resnet50)
    assert "kaiming_normal" not in dot and "conv 64 k=1 p=0 bias=false" in dot
