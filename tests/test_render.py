"""`netdsl render`: Graphviz diagrams of every zoo network, and life without Graphviz."""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET

import pytest
from conftest import ARCHITECTURES, compile_text

from netdsl import NetdslError, compile_file
from netdsl.cli import main
from netdsl.ir import Scope
from netdsl.render import _h, _q, _undate_pdf, render, to_dot


def need_dot():
    """Graphviz is a system package: skip without it, except in CI, which installs it."""
    if shutil.which("dot") is None:
        if os.environ.get("CI"):
            pytest.fail("Graphviz's dot is not installed (Debian: apt-get install graphviz)")
        pytest.skip("Graphviz's dot is not installed")


def _top_level_blocks(net) -> list[str]:
    return [
        c.label or c.name
        for c in net.root.children
        if isinstance(c, Scope) and c.kind in ("block", "group") and any(True for _ in c.nodes())
    ]


def _svg_text(path) -> str:
    root = ET.parse(path).getroot()  # raises on malformed XML
    assert root.tag.endswith("svg")
    return " ".join("".join(el.itertext()) for el in root.iter() if el.tag.endswith("text"))


@pytest.mark.parametrize("path", sorted(ARCHITECTURES.glob("*.net")), ids=lambda p: p.stem)
def test_every_zoo_network_renders_to_svg(path, tmp_path):
    need_dot()
    net = compile_file(path)
    out = tmp_path / f"{path.stem}.svg"
    render(net, str(out))
    text = _svg_text(out)
    assert net.name in text
    for block in _top_level_blocks(net):
        assert block in text, f"{block} is not named in the diagram"
    assert f"{net.total_params:,} params" in text


def test_depth_collapses_blocks():
    net = compile_file(ARCHITECTURES / "resnet50.net")
    dot = to_dot(net, depth=0)
    assert "stage(128, 4, s=2)" in dot and "1,219,584 params" in dot
    assert "conv 64 k=1" not in dot  # nothing inside a stage is drawn
    full = to_dot(net)
    assert full.count("subgraph") > 10 and "conv 64 k=1 p=0 bias=false" in full
    assert "bn + relu" in full  # conv + bn + relu drawn as one box


def test_labels_are_escaped():
    assert _q('a "b" \\ c\nd') == '"a \\"b\\" \\\\ c\\nd"'
    assert _h('<b>&"') == "&lt;b&gt;&amp;&quot;"
    net = compile_text("network t:\n    input 3x8x8\n    conv3 4 as x_b + relu\n")
    dot = to_dot(net)
    assert "<<b>" in dot and "x_b" in dot


def _no_dot(monkeypatch, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_dot_output_needs_no_graphviz(tmp_path, monkeypatch):
    _no_dot(monkeypatch, tmp_path)
    out = tmp_path / "vgg16.dot"
    assert main(["render", str(ARCHITECTURES / "vgg16.net"), "-o", str(out)]) == 0
    text = out.read_text()
    assert text.startswith('digraph "vgg16" {') and text.rstrip().endswith("}")
    assert "vgg(2, 64)" in text


def test_svg_without_graphviz_is_a_clear_error(tmp_path, monkeypatch, capsys):
    _no_dot(monkeypatch, tmp_path)
    out = tmp_path / "vgg16.svg"
    out.write_text("old")
    assert main(["render", str(ARCHITECTURES / "vgg16.net"), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "Graphviz" in err and "apt-get install graphviz" in err
    assert "Traceback" not in err
    assert out.read_text() == "old"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty-bin", "vgg16.svg"]


def test_bad_extension_and_missing_directory(tmp_path, capsys):
    vgg = str(ARCHITECTURES / "vgg16.net")
    assert main(["render", vgg, "-o", str(tmp_path / "x.jpg")]) == 2  # a usage error
    assert "choose an output ending in" in capsys.readouterr().err
    assert main(["render", vgg, "-o", str(tmp_path / "no" / "x.dot")]) == 1
    assert "no such directory" in capsys.readouterr().err


def test_png_and_pdf(tmp_path):
    need_dot()
    net = compile_text("network t:\n    input 3x32x32\n    conv3 8 + relu + gap + fc 10\n")
    for ext, magic in ((".png", b"\x89PNG"), (".pdf", b"%PDF")):
        out = tmp_path / f"t{ext}"
        render(net, str(out))
        assert out.read_bytes().startswith(magic)
        assert oct(out.stat().st_mode & 0o777) != "0o600"  # not mkstemp's private mode


def test_pdf_is_the_same_bytes_every_time(tmp_path):
    """cairo dates a PDF when it draws it; netdsl blanks the date, so a diagram in version
    control changes only when the network does."""
    need_dot()
    net = compile_text("network t:\n    input 3x32x32\n    conv3 8 + relu + gap + fc 10\n")
    drawn = []
    for name in ("a.pdf", "b.pdf"):
        render(net, str(tmp_path / name))
        drawn.append((tmp_path / name).read_bytes())
    assert b"/CreationDate" not in drawn[0] and drawn[0] == drawn[1]
    cairo = (
        b"<< /Producer (cairo 1.16.0 (https://cairographics.org))\n"
        b"   /CreationDate (D:20261127045445Z)\n>>\n"
    )
    undated = _undate_pdf(cairo)
    assert len(undated) == len(cairo) and b"D:2026" not in undated  # offsets stay valid


def test_negative_depth_is_an_error():
    net = compile_text("network t:\n    input 3x8x8\n    conv3 4\n")
    with pytest.raises(NetdslError):
        to_dot(net, depth=-1)
