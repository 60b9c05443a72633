"""The interactive HTML diagram's data and page (netdsl/web): what the browser is given.

What the page does with it is tests/test_diagram_browser.py's part (headless Chromium).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tarfile

import pytest
from conftest import ARCHITECTURES, compile_text, run_cli

from netdsl import NetdslError, compile_file
from netdsl.output import MARK
from netdsl.web import vendor
from netdsl.web.diagram import diagram_data, diagram_html

RESNET50 = ARCHITECTURES / "resnet50.net"


@pytest.fixture(scope="module")
def resnet50():
    return compile_file(RESNET50)


@pytest.fixture(scope="module")
def data(resnet50):
    return diagram_data(resnet50)


def _scope(data, scope_id):
    return next(s for s in data["scopes"] if s["id"] == scope_id)


def _node(data, node_id):
    return next(n for n in data["nodes"] if n["id"] == node_id)


def test_top_level_blocks_are_the_stem_and_four_stages(data):
    top = [s for s in data["scopes"] if s["parent"] == 0 and "rows" in s]
    assert [s["id"] for s in top] == ["stem", "stage1", "stage2", "stage3", "stage4"]
    assert all(s["level"] == 0 for s in top)
    stage2 = _scope(data, "stage2")
    assert stage2["rows"] == ["stage2", "stage(128, 4, s=2)"]
    assert stage2["params"] == 1_219_584 and stage2["shape"] == "512x28x28"
    assert stage2["memory"] == 512 * 28 * 28 * 4  # its output, float32 at batch 1


def test_collapsed_blocks_keep_their_shortcuts(data):
    # a bottleneck's add is drawn around the box, as `render` draws it
    assert _scope(data, "stage2.bottleneck")["shortcut"] == ["conv_bn(512, k=1, s=2)", "add + relu"]
    assert _scope(data, "stage2.bottlenecks")["shortcut"] == [
        "identity (each of 3)",
        "add + relu (x3)",
    ]
    assert _scope(data, "stage2")["shortcut"] == ["4 shortcuts inside", None]
    assert "shortcut" not in _scope(data, "stem")


def test_layers_carry_what_the_tooltip_shows(data, resnet50):
    conv = _node(data, "stage2.bottleneck.conv_bn2.conv")
    node = resnet50.node(conv["id"])
    assert conv["call"] == "conv 128 k=3 s=2 p=1 bias=false"  # no init=: render's text
    assert conv["shape"] == "128x28x28" and conv["params"] == node.params
    assert conv["macs"] == node.macs and conv["memory"] == 128 * 28 * 28 * 4
    # bn and relu after a conv are drawn in its box
    host = data["nodes"].index(conv)
    assert _node(data, "stage2.bottleneck.conv_bn2.bn")["host"] == host
    assert _node(data, "stage2.bottleneck.relu2")["host"] == host


def test_source_locations_point_at_the_text(data):
    fc = _node(data, "fc")
    file, line, col = fc["loc"]
    assert data["files"][file] == str(RESNET50.relative_to(ARCHITECTURES.parent))
    text = data["lines"][f"{file}:{line}"]
    assert text == "    + gap + fc classes" and text[col - 1 :].startswith("fc classes")
    file, line, col = _scope(data, "stage2")["loc"]
    assert data["lines"][f"{file}:{line}"][col - 1 :].startswith("stage(128, 4, s=2")
    # a layer of a stdlib block points into the stdlib file
    conv = _node(data, "stage2.bottleneck.conv_bn2.conv")
    assert data["files"][conv["loc"][0]].endswith("stdlib/resnet.net")


def test_edges_keep_concat_order():
    net = compile_text(
        "network n:\n    input 3x8x8\n    a = conv 4 k=1\n    b = conv 5 k=1\n    concat(b, a)\n"
    )
    data = diagram_data(net)
    ids = [n["id"] for n in data["nodes"]]
    into = {(ids[s], position) for s, d, position in data["edges"] if ids[d] == "concat"}
    assert into == {("conv2", 0), ("conv1", 1)}  # b (the second conv) first


def test_scopes_list_children_in_source_order(data):
    stage2 = data["scopes"].index(_scope(data, "stage2"))
    children = [data["scopes"][~c]["id"] for c in data["scopes"][stage2]["children"]]
    assert children == ["stage2.bottleneck", "stage2.bottlenecks"]
    root = data["scopes"][0]["children"]
    assert root[0] >= 0 and data["nodes"][root[0]]["id"] == "input"


def test_page_is_deterministic_and_self_contained(resnet50):
    page = diagram_html(resnet50, depth=1)
    assert page == diagram_html(compile_file(RESNET50), depth=1)
    assert MARK in page[:2000]  # so that render -o may overwrite it
    assert "<script src" not in page and "<link" not in page and "@import" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", page)
    # the only URLs are namespaces and the vendored Graphviz's licence banner: inert text
    urls = set(re.findall(r"https?://[\w./-]+", page))
    inert = {
        "http://www.w3.org/1999/xlink",
        "http://www.w3.org/2000/svg",
        "http://www.w3.org/2000/xmlns/",
        "http://www.w3.org/XML/1998/namespace",
        "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd",
        "https://www.graphviz.org",
        "https://libexpat.github.io",
    }
    assert urls <= inert, urls - inert


def test_page_data_round_trips_and_cannot_end_its_script():
    net = compile_text("network n:\n    input 3x8x8\n    conv 4 k=1  # </script><b> in a comment\n")
    page = diagram_html(net)
    found = re.search(r'<script type="application/json" id="netdsl-data">(.*?)</script>', page)
    assert json.loads(found.group(1)) == json.loads(json.dumps(diagram_data(net)))
    assert "</script><b> in a comment" in json.loads(found.group(1))["lines"]["0:3"]
    assert page.count("</script>") == page.count("<script")


def test_render_writes_html_and_refuses_static_options(tmp_path, capsys):
    out = tmp_path / "net.html"
    code, _, err = run_cli(capsys, "render", str(RESNET50), "-o", str(out), "--depth", "1")
    assert code == 0, err
    page = out.read_text(encoding="utf-8")
    assert page == diagram_html(compile_file(RESNET50), depth=1)
    code, _, err = run_cli(capsys, "render", str(RESNET50), "-o", str(out))  # netdsl's own file
    assert code == 0, err
    code, _, err = run_cli(capsys, "render", str(RESNET50), "-o", str(out), "--fit", "16:9")
    assert code == 2 and "--fit: not for an .html diagram" in err


# ---- vendoring ----------------------------------------------------------------------------


def _tarball(files: dict) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def test_fetch_npm_checks_the_pinned_integrity(tmp_path, monkeypatch):
    monkeypatch.setenv("NETDSL_CACHE", str(tmp_path))
    good = _tarball({"lib/x.js": b"x = 1;", "LICENSE": b"MIT"})
    registry = {
        "https://registry.npmjs.org/@s/x/1.0.0": json.dumps(
            {"dist": {"integrity": _integrity(good), "tarball": "https://t/x.tgz"}}
        ).encode(),
        "https://t/x.tgz": good,
    }
    asked = []
    monkeypatch.setattr(vendor, "download", lambda url: asked.append(url) or registry[url])
    files = vendor.fetch_npm("@s/x", "1.0.0", _integrity(good), ["lib/x.js"])
    assert files == {"lib/x.js": b"x = 1;"} and len(asked) == 2
    vendor.fetch_npm("@s/x", "1.0.0", _integrity(good), ["lib/x.js"])
    assert len(asked) == 2  # the second time from the cache
    # a tarball that is not the pinned one is refused, from the cache or the registry
    with pytest.raises(NetdslError, match="integrity"):
        vendor.fetch_npm("@s/x", "1.0.0", _integrity(b"other"), ["lib/x.js"])
    registry["https://t/x.tgz"] = b"tampered"
    (tmp_path / "npm" / "@s__x-1.0.0.tgz").unlink()
    with pytest.raises(NetdslError, match="sha512 check"):
        vendor.fetch_npm("@s/x", "1.0.0", _integrity(good), ["lib/x.js"])
    with pytest.raises(NetdslError, match="has no lib/y.js"):
        registry["https://t/x.tgz"] = good
        vendor.fetch_npm("@s/x", "1.0.0", _integrity(good), ["lib/y.js"])


def test_vendored_files_are_the_pinned_ones():
    lines = (vendor.VENDOR_DIR / "VERSIONS").read_text(encoding="utf-8").splitlines()
    pin = vendor.VIZ
    assert f"{pin.package} {pin.version} {pin.integrity} {pin.licence}" in lines
    for name in pin.files.values():
        assert (vendor.VENDOR_DIR / name).is_file()
    assert f"Viz.js {pin.version}" in vendor.vendored("viz-global.js")[:200]
    assert "MIT License" in (vendor.VENDOR_DIR / "viz-LICENSE").read_text(encoding="utf-8")
