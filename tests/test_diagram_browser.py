"""The interactive diagram in a real browser: `render -o net.html` opened in headless
Chromium from a local http server, clicked, hovered, searched and exported as a user would."""

from __future__ import annotations

import html

import pytest
from browser import chromium_browser, page, serve  # noqa: F401  (page is a fixture)
from conftest import ARCHITECTURES, compile_text, run_cli

import netdsl
from netdsl import compile_file
from netdsl.api import Model
from netdsl.web.diagram import diagram_data, diagram_html

pytestmark = pytest.mark.slow

RESNET50 = ARCHITECTURES / "resnet50.net"


@pytest.fixture(scope="module")
def resnet50_data():
    return diagram_data(compile_file(RESNET50))


def _scope_key(data, scope_id):
    return "s" + str(next(i for i, s in enumerate(data["scopes"]) if s["id"] == scope_id))


def _node_key(data, node_id):
    return "n" + str(next(i for i, n in enumerate(data["nodes"]) if n["id"] == node_id))


def _open(page, url, name):  # noqa: F811
    """Open a diagram page, refusing every request that leaves the local server."""
    outside = []

    def route(request):
        if request.request.url.startswith(url):
            request.continue_()
        else:
            outside.append(request.request.url)
            request.abort()

    page.route("**/*", route)
    page.goto(f"{url}/{name}")
    page.wait_for_selector("#netdsl svg g.node")
    return outside


def test_resnet50_page(page, tmp_path, capsys, resnet50_data):  # noqa: F811
    data = resnet50_data
    code, _, err = run_cli(capsys, "render", str(RESNET50), "-o", str(tmp_path / "net.html"))
    assert code == 0, err
    with serve(tmp_path) as url:
        outside = _open(page, url, "net.html")

        # collapsed to the top level: the stem and four stages, each one box
        blocks = page.locator("g.netdsl-block")
        assert sorted(blocks.evaluate_all("gs => gs.map(g => g.id)")) == sorted(
            "b_" + _scope_key(data, s) for s in ("stem", "stage1", "stage2", "stage3", "stage4")
        )

        # click stage2: a frame with its bottlenecks inside
        stage2 = _scope_key(data, "stage2")
        page.click(f"#b_{stage2}")
        page.wait_for_selector(f"#c_{stage2}")
        assert page.locator(f"#b_{stage2}").count() == 0
        first = page.locator(f"#b_{_scope_key(data, 'stage2.bottleneck')}")
        assert "bottleneck(128, s=2)" in first.text_content()
        assert page.locator(f"#b_{_scope_key(data, 'stage2.bottlenecks')}").count() == 1

        # hover: the tooltip shows the block's shape and counts
        page.hover(f"#b_{_scope_key(data, 'stage1')}")
        tip = page.locator(".netdsl-tip")
        assert tip.is_visible()
        assert "215,808 params" in tip.text_content() and "256x56x56" in tip.text_content()

        # click a layer: its source line, and an event for an editor to follow
        page.evaluate(
            "document.getElementById('netdsl').addEventListener('netdsl-source',"
            " e => { window.lastSource = e.detail; })"
        )
        page.click(f"#b_{_node_key(data, 'fc')}")
        source = page.locator(".netdsl-source")
        assert "architectures/resnet50.net:18:13" in source.text_content()
        assert "+ gap + fc classes" in source.locator("pre").text_content()
        event = page.evaluate("window.lastSource")
        assert (event["line"], event["col"]) == (18, 13)
        assert event["file"] == "architectures/resnet50.net"

        # collapse stage2 again by its frame
        page.click(f"#c_{stage2} text")
        page.wait_for_selector(f"#b_{stage2}")

        # search by name: the match is highlighted, blocks around it opened
        page.fill(".netdsl-search", "conv_bn2")
        page.press(".netdsl-search", "Enter")
        page.wait_for_function(
            "document.querySelector('.netdsl-status').textContent.includes('match')"
        )
        assert "16 matches for 'conv_bn2'" in page.text_content(".netdsl-status")
        assert page.locator("g.netdsl-match").count() == 16  # one per bottleneck
        page.fill(".netdsl-search", "fc")
        page.press(".netdsl-search", "Enter")
        page.wait_for_function(
            "document.querySelector('.netdsl-status').textContent.includes(\"'fc'\")"
        )
        assert page.locator("g.netdsl-match").evaluate_all("gs => gs.map(g => g.id)") == [
            "b_" + _node_key(data, "fc")
        ]

        # export the current view
        with page.expect_download() as download:
            page.click("text=Export SVG")
        assert download.value.suggested_filename == "resnet50.svg"
        svg = open(download.value.path(), encoding="utf-8").read()
        assert svg.startswith("<?xml") and "<svg" in svg and "stage2" in svg
        with page.expect_download() as download:
            page.click("text=Export PNG")
        assert download.value.suggested_filename == "resnet50.png"
        assert open(download.value.path(), "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert outside == [], "the page asked for something beyond its own file"


def test_a_long_repeat_shows_its_ends_and_one_box_for_the_rest(page, tmp_path):  # noqa: F811
    net = compile_text("network long:\n    input 3x8x8\n    [conv 4 k=1 + relu]*40\n")
    (tmp_path / "long.html").write_text(diagram_html(net, depth=1), encoding="utf-8")
    with serve(tmp_path) as url:
        _open(page, url, "long.html")
        gap = page.locator("g.netdsl-gap")
        assert "30 more" in gap.text_content()  # 8 first, 2 last
        gap.click()
        page.wait_for_function(
            "document.querySelector('g.netdsl-gap text').textContent.includes('14')"
        )
        assert page.locator("g.netdsl-layer").count() == 8 + 16 + 2
        page.fill(".netdsl-search", "convs.33.conv")
        page.press(".netdsl-search", "Enter")
        page.wait_for_selector("g.netdsl-match")
        match = page.locator("g.netdsl-match").evaluate("g => g.id")
        assert match == "b_" + _node_key(diagram_data(net), "convs.33.conv")
        assert page.locator("g.netdsl-gap").count() == 2  # the gap split around the match


def test_update_redraws_an_edited_network_in_place(page, tmp_path, resnet50_data):  # noqa: F811
    """The playground's way: one mounted diagram, new data after each edit; what the user
    expanded stays expanded."""
    (tmp_path / "net.html").write_text(diagram_html(compile_file(RESNET50)), encoding="utf-8")
    edited = diagram_data(netdsl.load(str(RESNET50), params={"classes": 10}).network)
    with serve(tmp_path) as url:
        _open(page, url, "net.html")
        page.evaluate("netdslDiagram.expand('stage3')")
        page.evaluate("data => netdslDiagram.update(data)", edited)
        stage3 = _scope_key(edited, "stage3")
        assert page.locator(f"#c_{stage3}").count() == 1  # still open
        assert "fc 10" in page.text_content(f"#b_{_node_key(edited, 'fc')}")


def test_notebook_outputs_do_not_clash(page, tmp_path):  # noqa: F811
    """Two models displayed in one notebook: each diagram draws in its own frame."""
    first = Model(compile_file(RESNET50))._repr_html_()
    second = Model(compile_text("network tiny:\n    input 3x8x8\n    conv 4 k=1\n"))._repr_html_()
    head = '<!DOCTYPE html><html><head><meta charset="utf-8"></head>'  # as Jupyter serves it
    notebook = f"{head}<body>{first}<hr>{second}</body></html>"
    (tmp_path / "notebook.html").write_text(notebook, encoding="utf-8")
    with serve(tmp_path) as url:
        page.goto(f"{url}/notebook.html")
        frames = [f for f in page.frames if f is not page.main_frame]
        assert len(frames) == 2
        for frame in frames:
            frame.wait_for_selector("#netdsl svg g.node")
        assert "stage1" in frames[0].text_content("#netdsl svg")
        assert "conv 4 k=1" in frames[1].text_content("#netdsl svg")
        assert html.escape("25,557,032") in page.text_content(".netdsl-summary")
    # a notebook front end that writes outputs into an about:blank page (no base URL)
    page.set_content(notebook)
    page.frames[1].wait_for_selector("#netdsl svg g.node")
