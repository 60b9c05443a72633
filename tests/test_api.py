"""The notebook API: netdsl.load and the object it returns."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import ARCHITECTURES, need

import netdsl
from netdsl import NetdslError

TINY = """
network tiny(classes=10):
    input 3x32x32
    conv3 16 + bn + relu + maxpool2 + gap + fc classes
"""


def test_load_accepts_a_path_a_zoo_name_and_source_text():
    by_path = netdsl.load(str(ARCHITECTURES / "resnet50.net"))
    by_pathlike = netdsl.load(ARCHITECTURES / "resnet50.net")
    by_name = netdsl.load("resnet50")
    assert by_path.params == by_pathlike.params == by_name.params == 25_557_032
    by_text = netdsl.load(TINY)
    assert by_text.name == "tiny"
    assert by_text.network.main_output.node.out_shape == (10,)


def test_load_overrides_parameters():
    net = netdsl.load(TINY, params={"classes": 3})
    assert net.network.main_output.node.out_shape == (3,)
    vgg = netdsl.load(ARCHITECTURES / "vgg16.net", params={"classes": 10})
    assert vgg.params == 138_357_544 - 4096 * 990 - 990


def test_load_errors_are_netdsl_errors():
    with pytest.raises(NetdslError, match="no such file or zoo network"):
        netdsl.load("no_such_network")
    with pytest.raises(NetdslError):
        netdsl.load("network broken:\n    input 3x8x8\n    conv3\n")
    with pytest.raises(NetdslError):
        netdsl.load(42)


def test_summary_and_explain():
    net = netdsl.load(TINY)
    assert "conv" in net.summary() and "params:" in net.summary()
    data = net.summary_dict()
    assert data["network"] == "tiny" and data["params"] == net.params
    text = net.explain()
    assert "16 x 3 x 3 x 3 + 16 = 448" in text
    assert "| conv |" in net.explain(markdown=True)
    assert "tiny" in repr(net) and f"{net.params:,} params" in repr(net)


def test_repr_html_is_an_escaped_table():
    net = netdsl.load("resnet50")
    page = net._repr_html_()
    assert page.startswith("<div") and page.endswith("</div>")
    assert "<table" in page and "25,557,032" in page
    # display_depth=1: the stages open, the bottlenecks inside them one row each
    assert "bottleneck(128, s=2)" in page
    assert "[bottleneck(128)] x 3" in page
    assert page.count("<tr>") == page.count("</tr>")


def test_repr_html_shows_the_interactive_diagram_beside_the_table():
    import html
    import re

    from netdsl.web.diagram import diagram_html

    net = netdsl.load("resnet50")
    page = net._repr_html_()
    table, frame = page.index("<table"), page.index("<iframe")
    assert table < frame  # the table first (left), the diagram beside it
    frames = re.findall(r'<iframe ([^>]*) srcdoc="([^"]*)"></iframe>', page)
    assert len(frames) == 1
    attributes, srcdoc = frames[0]
    assert 'sandbox="allow-scripts allow-downloads"' in attributes
    # the whole diagram page, opened as deep as the notebook's table
    assert html.unescape(srcdoc) == diagram_html(net.network, depth=net.display_depth)
    # a second model's output has its own page: nothing outside the iframes to clash
    other = netdsl.load(TINY)._repr_html_()
    outside = re.sub(r'srcdoc="[^"]*"', "", page + other)
    assert "<script" not in outside and " id=" not in outside


def test_dot_and_render(tmp_path):
    net = netdsl.load(TINY)
    assert net.dot().startswith('digraph "tiny"')
    out = net.render(tmp_path / "tiny.dot")
    assert Path(out).read_text() == net.dot()


def test_repr_svg(tmp_path, monkeypatch):
    net = netdsl.load(TINY)
    if shutil.which("dot"):
        svg = net._repr_svg_()
        assert "<svg" in svg and "tiny" in svg
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert net._repr_svg_() is None  # IPython then shows the other representations


def test_to_torch_builds_a_module_without_writing_a_file(tmp_path, monkeypatch):
    pytest.importorskip("netdsl.emit.torch")
    torch = need("torch")
    monkeypatch.chdir(tmp_path)
    net = netdsl.load(TINY)
    assert "def build_model" in net.source("torch")
    model = net.to_torch().eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 32, 32))
    assert tuple(out.shape) == (2, 10)
    assert sum(p.numel() for p in model.parameters()) == net.params
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_resnet50_to_torch_is_a_working_module_and_writes_no_file(tmp_path, monkeypatch):
    pytest.importorskip("netdsl.emit.torch")
    torch = need("torch")
    (tmp_path / "architectures").symlink_to(ARCHITECTURES, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    zoo_before = sorted(p.name for p in ARCHITECTURES.iterdir())
    net = netdsl.load("architectures/resnet50.net", input_shape=(3, 64, 64))
    model = net.to_torch()
    assert isinstance(model, torch.nn.Module)
    assert sum(p.numel() for p in model.parameters()) == net.params == 25_557_032
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert tuple(out.shape) == (2, 1000) and bool(torch.isfinite(out).all())
    assert [p.name for p in tmp_path.iterdir()] == ["architectures"]
    assert sorted(p.name for p in ARCHITECTURES.iterdir()) == zoo_before


def test_source_is_what_netdsl_compile_prints(capsys):
    pytest.importorskip("netdsl.emit.torch")
    from netdsl.cli import main

    path = str(ARCHITECTURES / "resnet50.net")
    assert main(["compile", path, "--target", "torch"]) == 0
    assert capsys.readouterr().out == netdsl.load(path).source("torch")
    assert main(["compile", path, "--target", "torch", "--input", "3x64x64"]) == 0
    printed = capsys.readouterr().out
    assert printed == netdsl.load(path, input_shape=(3, 64, 64)).source("torch")
    assert "INPUT_SHAPE = (3, 64, 64)" in printed


def test_input_shape_is_the_input_option():
    by_tuple = netdsl.load(TINY, input_shape=(3, 16, 16))
    by_text = netdsl.load(TINY, input_shape="3x16x16")
    assert by_tuple.network.inputs["input"].out_shape == (3, 16, 16)
    assert by_tuple.summary() == by_text.summary()
    flat = netdsl.load("network mlp:\n    input 784\n    fc 10\n", input_shape=100)
    assert flat.params == 100 * 10 + 10
    for bad in [(3, 0, 16), (3, 16), "3x16", "3xa", True, (3.0, 16, 16), "3x16x16x16"]:
        with pytest.raises(NetdslError, match="input_shape must be"):
            netdsl.load(TINY, input_shape=bad)


@pytest.mark.parametrize("target", ["torch", "keras"])
def test_generated_docstrings_quote_the_text_the_network_was_compiled_from(tmp_path, target):
    # the text is kept with the network when it is elaborated: another file compiled later
    # under the same path (an edited file, say) does not change what the first one quotes
    from netdsl import compile_file
    from netdsl.emit import get_emitter

    first = "network a:\n    input 4x8x8\n    (add(conv3 4, id) + relu) as head\n    gap + fc 2\n"
    second = "network b:\n    input 4x8x8\n    (conv1 4 + relu) as tail\n    # unrelated\n"
    path = tmp_path / "model.net"
    path.write_text(first, encoding="utf-8")
    net = compile_file(str(path))
    path.write_text(second, encoding="utf-8")
    compile_file(str(path))
    code = get_emitter(target).emit_model(net)
    assert "(add(conv3 4, id) + relu) as head\n" in code
    assert "conv1 4" not in code and "unrelated" not in code
