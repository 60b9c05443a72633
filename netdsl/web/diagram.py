"""The interactive HTML diagram: the network as data for netdsl/web/diagram.js.

Python says what the diagram shows (render.py's texts, colours, folds and shortcuts, so
a box reads the same as in `render -o x.svg`); the browser decides what is expanded, builds
the DOT text of that view alone and lays it out with Graphviz compiled to WebAssembly
(@viz-js/viz, vendored in netdsl/web/vendor/). `diagram_html` inlines all of it into one
page that needs no network.

The data is one JSON object. Scopes and nodes are lists in DSL order; a scope lists its
children as node indexes and, for scopes, `~index` (negative numbers), so the browser can
walk the tree in source order without a tree of objects per node.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..emit.templates import render as render_template
from ..ir import Network, Node, Scope
from ..layers import fmt_shape
from ..output import MARK
from ..render import (
    COLOURS,
    block_rows,
    category,
    folded_into,
    layer_head,
    level_scope,
    only_scope,
    scope_title,
    shortcut,
)
from .vendor import vendored

HERE = Path(__file__).resolve().parent
BYTES_PER_VALUE = 4  # float32: what the memory column assumes, at batch 1


def _elements(shape) -> int:
    count = 1
    for d in shape:
        count *= int(d)
    return count


def _shape_text(scope: Scope) -> str:
    return fmt_shape(tuple(int(d.value) for d in scope.out_shape)) if scope.out_shape else ""


class _Collector:
    def __init__(self, net: Network) -> None:
        self.net = net
        self.files: list[str] = []
        self.file_index: dict = {}
        self.lines: dict = {}  # "file index:line" -> text
        self.node_index = {id(n): i for i, n in enumerate(net.nodes())}
        self.scopes: list[dict] = []

    def loc(self, span) -> list:
        if span is None:
            return []
        index = self.file_index.get(span.file)
        if index is None:
            index = self.file_index[span.file] = len(self.files)
            self.files.append(span.file)
        key = f"{index}:{span.line}"
        if key not in self.lines:
            text = self.net.sources.line(span.file, span.line)
            self.lines[key] = text.rstrip("\n") if text is not None else ""
        return [index, span.line, span.column]

    def scope(self, scope: Scope, parent: int, level: int, position: int) -> int | None:
        """Add `scope` (and what is below it); None for a scope without nodes."""
        if not any(True for _ in scope.nodes()):
            return None
        index = len(self.scopes)
        drawn = level_scope(scope)
        entry: dict = {"id": scope.id, "kind": scope.kind, "parent": parent, "at": position}
        self.scopes.append(entry)
        inner = only_scope(scope) if drawn else None
        through = inner is not None and level_scope(inner)
        if drawn:
            rows = block_rows(scope, self.net.blocks)
            output = scope.output
            entry.update(
                title=scope_title(scope),
                rows=rows,
                level=level,
                shape=_shape_text(scope),
                params=scope.params,
                macs=scope.macs,
                memory=_elements(output.out_shape) * BYTES_PER_VALUE if output else 0,
                loc=self.loc(scope.span),
                train=all(n.train_only for n in scope.nodes()),
            )
            cut = shortcut(scope, self.net.blocks) if scope.kind != "network" else None
            if cut is not None:
                entry["shortcut"] = list(cut)
        children = []
        for i, child in enumerate(scope.children):
            if isinstance(child, Node):
                children.append(self.node_index[id(child)])
                continue
            # a block that only wraps another (a stage around its repeat) is one level
            inner_level = level if (through and child is inner) else level + drawn
            if scope.kind == "network":
                inner_level = 0
            sub = self.scope(child, index, inner_level, i)
            if sub is not None:
                children.append(~sub)
        entry["children"] = children
        if through:  # expanding it expands the one it wraps
            entry["through"] = ~children[0]
        return index


def diagram_data(net: Network) -> dict:
    """The network as diagram.js draws it (JSON-able; the same network, the same data)."""
    collect = _Collector(net)
    collect.scope(net.root, -1, 0, 0)
    scope_of: dict = {}
    for index, entry in enumerate(collect.scopes):
        for child in entry["children"]:
            if child >= 0:
                scope_of[child] = index
    hosts = folded_into(net)
    index_of = collect.node_index
    nodes = []
    for i, node in enumerate(net.nodes()):
        item = {
            "id": node.id,
            "name": node.name,
            "op": node.op,
            "call": layer_head(node) if node.op != "input" else node.id,
            "cat": category(node.op),
            "scope": scope_of[i],
            "shape": fmt_shape(node.out_shape),
            "params": node.params,
            "macs": 0 if node.train_only else node.macs,
            "memory": _elements(node.out_shape) * BYTES_PER_VALUE,
            "loc": collect.loc(node.span),
        }
        host = hosts.get(id(node))
        if host is not None:
            item["host"] = index_of[id(host)]
        if node.train_only:
            item["train"] = True
        nodes.append(item)
    edges = [
        [index_of[id(src)], i, position]
        for i, node in enumerate(net.nodes())
        for position, src in enumerate(node.inputs)
    ]
    return {
        "name": net.name,
        "params": net.total_params,
        "macs": net.total_macs,
        "colours": {name: list(pair) for name, pair in COLOURS.items()},
        "scopes": collect.scopes,
        "nodes": nodes,
        "edges": edges,
        "outputs": [[o.name, index_of[id(o.node)], o.train_only] for o in net.outputs],
        "files": collect.files,
        "lines": collect.lines,
    }


def _script_json(data) -> str:
    """JSON that cannot end its <script> element early (`<` is written as \\u003c)."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _script_text(text: str) -> str:
    """A vendored or own script for an inline <script>: `</script` would end it."""
    if "</script" in text.lower():
        raise ValueError("an inlined script contains '</script'")
    return text


def diagram_html(net: Network, *, depth: int | None = None, title: str | None = None) -> str:
    """One self-contained page (scripts, styles and data inline; it fetches nothing) with
    the interactive diagram, blocks expanded `depth` levels deep (default: none)."""
    return render_template(
        "html/diagram.html.j2",
        {
            "title": title or net.name,
            "mark": MARK,  # so `render -o` may overwrite the page next time
            "options": _script_json({"depth": depth or 0}),
            "data": _script_json(diagram_data(net)),
            "viz_js": _script_text(vendored("viz-global.js")),
            "diagram_js": _script_text((HERE / "diagram.js").read_text(encoding="utf-8")),
            "diagram_css": (HERE / "diagram.css").read_text(encoding="utf-8"),
        },
    )
