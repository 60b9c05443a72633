"""`netdsl render`: the network as a Graphviz diagram fit for a slide.

The DOT text is built here (no graphviz Python package). Blocks become
clusters, or single nodes beyond `--depth`; parallel branches sit side by side
because Graphviz ranks them so; shapes label the edges and parameter counts
the nodes. A normalisation or activation that directly follows a layer is
drawn inside that layer's box (`conv 64 k=3 p=1 + bn + relu`), so a ResNet
reads as its paper's figure, not as three times as many boxes.

For slides: `--layer` draws one block alone, `--direction LR` lays the chain out
sideways, and `--fit W:H` wraps it into columns (rows) chosen by laying it out with
Graphviz and measuring. Branches keep their source order (flat invisible edges; Graphviz's
`ordering` alone does not hold across clusters), and a block collapsed into one box still
shows the shortcut around it.

`.dot` is written by Python alone; `.svg`, `.png` and `.pdf` run the `dot`
program. Every label is escaped: block and layer names come from the DSL.

Every file carries output.MARK (a DOT `comment`, which Graphviz copies into an
SVG; a PNG text chunk; the PDF's Producer), so rendering again overwrites a
diagram netdsl drew but not another file of the same name without --force.
"""

from __future__ import annotations

import copy
import difflib
import html
import os
import re
import shutil
import subprocess
import zlib
from dataclasses import dataclass, field

from .analysis import layer_call
from .calls import block_call
from .commandline import add_common, load_network
from .errors import NetdslError, UsageError
from .ir import Network, Node, Output, Scope
from .layers import CATALOGUE, MERGES, MINOR, fmt_shape, traits
from .output import MARK, check_writable, marked_by_netdsl, write_atomic

FORMATS = {".dot": None, ".gv": None, ".svg": "svg", ".png": "png", ".pdf": "pdf", ".html": "html"}
FONT = "Helvetica,Arial,sans-serif"
DOT_TIMEOUT = 120  # seconds
PNG_DPI = 150  # sharp on a projected slide

# fill, border by op category
COLOURS = {
    "conv": ("#dbe9f6", "#4a7fb5"),
    "pool": ("#fde4cc", "#c97a2b"),
    "linear": ("#e5dbf3", "#7b5ea7"),
    "norm": ("#dcefdc", "#4e9a4e"),
    "activation": ("#fff2c2", "#b8962e"),
    "regularization": ("#eeeeee", "#888888"),
    "shape": ("#f4f4f4", "#888888"),
    "merge": ("#f7d6d9", "#b5535f"),
    "attention": ("#d4efec", "#2f8f86"),
    "tokens": ("#f3e6f0", "#9a5a8a"),
    "block": ("#d5dde8", "#4f6278"),
    "io": ("#3d4752", "#3d4752"),
}
CLUSTER_FILLS = ("#f5f7fa", "#e9eef4")


def category(op: str) -> str:
    if op in MERGES:
        return "merge"
    if op == "input":
        return "io"
    spec = CATALOGUE.get(op)
    return spec.category if spec is not None else "shape"


@dataclass(eq=False)
class Box:
    """One box of the diagram: a layer (with what is folded into it) or a collapsed block."""

    key: str
    node: Node | None = None
    scope: Scope | None = None
    folded: list = field(default_factory=list)

    @property
    def last(self) -> Node:
        return self.folded[-1] if self.folded else self.node


# ---- building the DOT text -----------------------------------------------------------


def _q(text: str) -> str:
    """A DOT double-quoted string."""
    text = _printable(str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n"))
    return '"' + text + '"'


def _h(text) -> str:
    """Text for an HTML-like label."""
    return html.escape(_printable(str(text)), quote=True)


def _printable(text: str) -> str:
    """Graphviz refuses a NUL byte (and shows no other control character): `?` for them."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == "\n" else "?" for c in text)


def only_scope(scope: Scope) -> Scope | None:
    """The single child scope that holds all of `scope`'s nodes, if there is one."""
    holders = [
        c for c in scope.children if not isinstance(c, Scope) or any(True for _ in c.nodes())
    ]
    return holders[0] if len(holders) == 1 and isinstance(holders[0], Scope) else None


def scope_title(scope: Scope) -> str:
    """A scope's name as a reader knows it: `stage2`, or `bottlenecks.0` inside a repeat."""
    name = scope.label or scope.name or scope.block or scope.kind
    if name.isdigit() and scope.parent is not None:
        holder = scope.parent
        if holder.kind == "iteration" and holder.parent is not None:
            holder = holder.parent
        return f"{holder.name}.{name}" if holder.name else name
    return name


def drawn_call(node: Node) -> str:
    """The layer as written, less its initialisers (`init=`, `gamma_init=`): a diagram
    shows the architecture, and on a slide `init=kaiming_normal(fan_out, relu)` on
    every conv doubles each box's width. (summary and explain still show them.)"""
    spec = CATALOGUE.get(node.op)
    if spec is None:
        return layer_call(node)
    drop = [n for n in node.attrs if (arg := spec.arg(n)) is not None and arg.kind == "init"]
    if not drop:
        return layer_call(node)
    bare = copy.copy(node)
    bare.attrs = {k: v for k, v in node.attrs.items() if k not in drop}
    return layer_call(bare)


def layer_head(node: Node) -> str:
    """The first line of a layer's box: the call as written, or a merge's op alone."""
    return node.op if node.op in MERGES else drawn_call(node)


def block_rows(scope: Scope, blocks: dict) -> list[str]:
    """A collapsed block's text lines: its name, then its call (and the repeat it wraps,
    its device) where they say more than the name."""
    name = scope_title(scope)
    calls = [block_call(scope, blocks)]
    inner = only_scope(scope)
    if inner is not None and inner.kind == "repeat":
        calls.append("= " + block_call(inner, blocks))
    if scope.device:
        calls.append(f"@{scope.device}")
    return [name, *(c for c in calls if c != name)]


def folded_into(net: Network) -> dict:
    """id(node) -> the node whose box it is drawn in: a normalisation or activation right
    after its layer, as the full diagram folds them (`conv 64 k=3 + bn + relu`)."""
    builder = _Builder(net, None)
    return {id(n): box.node for box in builder.boxes for n in box.folded}


def level_scope(scope: Scope) -> bool:
    """A scope the diagram draws as a box or a frame: a block, a repeat, a group."""
    return scope.kind in ("block", "repeat", "group")


class _Builder:
    """The DOT text of `top` (the network's root, or the one block `--layer` names)."""

    def __init__(
        self, net: Network, depth: int | None, top: Scope | None = None, direction: str = "TB"
    ) -> None:
        self.net, self.depth, self.direction = net, depth, direction
        self.top = top if top is not None else net.root
        self.boxes: list[Box] = []
        self.box_of: dict = {}  # id(node) -> Box
        self.collapsed: dict = {}  # id(scope) -> Box
        self._clusters: dict = {}  # id(scope) -> drawn as a cluster
        self._cluster_count = 0  # numbers clusters uniquely, the same on every run
        self.outside: list[Box] = []  # --layer: the tensors the block reads from outside
        self.bypass: dict = {}  # box key -> (shortcut text, merge text or None)
        self.column: dict = {}  # box key -> column (row with LR) of a --fit drawing
        self._assign(self.top, 0)
        self._inside = list(self.top.nodes()) if top is not None else net.nodes()
        for node in self._inside:
            for src in node.inputs:
                if id(src) not in self.box_of:
                    box = Box(key=f"x{len(self.outside)}", node=src)
                    self.outside.append(box)
                    self.box_of[id(src)] = box
        for box in self.boxes:
            if box.scope is not None:
                drawn = shortcut(box.scope, net.blocks)
                if drawn is not None:
                    self.bypass[box.key] = drawn

    # -- boxes ---------------------------------------------------------------------------

    def _new(self, **kw) -> Box:
        box = Box(key=f"u{len(self.boxes)}", **kw)
        self.boxes.append(box)
        return box

    def _assign(self, scope: Scope, level: int) -> None:
        for child in scope.children:
            if isinstance(child, Scope):
                if not any(True for _ in child.nodes()):
                    continue
                counts = level_scope(child)
                inner = only_scope(child)
                if (
                    counts
                    and self.depth is not None
                    and (
                        level >= self.depth
                        or (level + 1 >= self.depth and inner is not None and level_scope(inner))
                    )
                ):
                    # a block that only wraps one collapsed block is drawn as one box
                    box = self._new(scope=child)
                    self.collapsed[id(child)] = box
                    for node in child.nodes():
                        self.box_of[id(node)] = box
                else:
                    self._assign(child, level + 1 if counts else level)
            else:
                self._place(child)

    def _place(self, node: Node) -> None:
        host = self._fold_target(node)
        if host is not None:
            host.folded.append(node)
            self.box_of[id(node)] = host
        else:
            self.box_of[id(node)] = self._new(node=node)

    def _fold_target(self, node: Node) -> Box | None:
        if MINOR not in traits(node.op) or len(node.inputs) != 1:
            return None
        src = node.inputs[0]
        host = self.box_of.get(id(src))
        if host is None or host.node is None or host.node.op == "input" or host.last is not src:
            return None
        if len(self.net.readers[src.id]) != 1 or src.train_only != node.train_only:
            return None
        # every scope between the host and this node holds nothing but the host's box
        members = {id(n) for n in (host.node, *host.folded)}
        scope = host.node.scope
        while scope is not None and scope is not node.scope:
            if any(id(n) not in members for n in scope.nodes()):
                return None
            scope = scope.parent
        return host if scope is node.scope else None

    def enter(self, box: Box) -> str:
        """The DOT node an edge into the box ends at (a bypassed block's fork point)."""
        return box.key + "_in" if box.key in self.bypass else box.key

    def leave(self, box: Box) -> str:
        """The DOT node an edge out of the box starts from (a bypassed block's join)."""
        return box.key + "_out" if box.key in self.bypass else box.key

    # -- clusters ------------------------------------------------------------------------

    def frames(self, box: Box) -> set:
        """The clusters (scope ids) a box is drawn inside."""
        scope = box.scope.parent if box.scope is not None else box.node.scope
        found = set()
        while scope is not None and scope is not self.top:
            if self._is_cluster(scope):
                found.add(id(scope))
            scope = scope.parent
        return found

    def _boxes_in(self, scope: Scope) -> set:
        return {self.box_of[id(n)].key for n in scope.nodes()}

    def _is_cluster(self, scope: Scope) -> bool:
        """Drawn as a frame around its boxes: an expanded block holding more than one box."""
        known = self._clusters.get(id(scope))
        if known is None:
            known = (
                level_scope(scope)
                and scope.kind != "repeat"
                and id(scope) not in self.collapsed
                and len(self._boxes_in(scope)) > 1
            )
            self._clusters[id(scope)] = known
        return known

    def _drawn_device(self, node: Node) -> str | None:
        """The device the enclosing cluster's label already shows."""
        scope = node.scope
        while scope is not None and scope is not self.top and not self._is_cluster(scope):
            scope = scope.parent
        return scope.device if scope is not None and scope is not self.top else None

    def _short_id(self, node: Node) -> str:
        """The node's id relative to the cluster it is drawn in ('' when it adds nothing)."""
        scope = node.scope
        while scope is not None and scope is not self.top and not self._is_cluster(scope):
            scope = scope.parent
        name = node.id
        if scope is not None and scope.id and name.startswith(scope.id + "."):
            name = name[len(scope.id) + 1 :]
        return "" if name == node.op else name

    # -- text ----------------------------------------------------------------------------

    def _title(self) -> str:
        net, top = self.net, self.top
        if top is net.root:
            return (
                f'<<b>{_h(net.name)}</b>  <font point-size="12">{net.total_params:,} params'
                f" · {net.total_macs:,} MACs</font>>"
            )
        call = block_call(top, net.blocks)
        name = top.id or scope_title(top)
        extra = "" if call == name else f'  <font color="#4f6278">{_h(call)}</font>'
        return (
            f'<<b>{_h(name)}</b>{extra}  <font point-size="12">{top.params:,} params'
            f" · {top.macs:,} MACs · in {_h(net.name)}</font>>"
        )

    def dot(self, columns: list | None = None) -> str:
        """The DOT text; `columns` (lists of box keys) wraps the chain into columns (rows)."""
        lines = [
            f"digraph {_q(self.net.name)} {{",
            f"  comment={_q(MARK)};",
            (
                f"  graph [rankdir={self.direction}, newrank=true, ordering=out, remincross=false, nodesep=0.25,"
                f" ranksep=0.32, fontname={_q(FONT)}, fontsize=18, labelloc=t,"
                f' label={self._title()}, bgcolor="white", pad=0.3];'
            ),
            (
                f'  node [shape=box, style="rounded,filled", fontname={_q(FONT)}, fontsize=12,'
                ' penwidth=1.2, margin="0.14,0.06", height=0.3];'
            ),
            (
                f'  edge [fontname={_q(FONT)}, fontsize=10, color="#6b7785", fontcolor="#4a5562",'
                " arrowsize=0.6, penwidth=1.0];"
            ),
        ]
        self.column = {}
        self._parts: dict = {}  # id(scope) -> times its cluster was drawn (once per column)
        if not columns:
            for box in self.outside:
                lines.extend("  " + s for s in self._node_stmts(box))
            self._emit_scope(self.top, lines, 1, 0, None)
        else:
            for i, keys in enumerate(columns):
                self.column.update(dict.fromkeys(keys, i))
                lines.append(f'  subgraph "cluster_column{i}" {{')
                lines.append('    graph [label="", style=invis, margin=4];')
                if i == 0:
                    for box in self.outside:
                        lines.extend("    " + s for s in self._node_stmts(box))
                else:  # where the chain comes in from the previous column
                    lines.append(f'    column{i} [shape=point, width=0.07, color="#6b7785"];')
                self._emit_scope(self.top, lines, 2, 0, set(keys))
                lines.append("  }")
            firsts = [f"column{i}" if i else None for i in range(len(columns))]
            by_key = {box.key: box for box in self.boxes}
            firsts[0] = self.outside[0].key if self.outside else self.enter(by_key[columns[0][0]])
            # the columns start level with each other, in order (invisible flat edges)
            lines.append(f"  {{rank=same; {'; '.join(firsts)};}}")
            lines.append(f"  {' -> '.join(self._across(firsts))} [style=invis];")
        lines.extend(self._edges())
        lines.extend(self._branch_order())
        lines.append("}")
        return "\n".join(lines) + "\n"

    def _branch_order(self) -> list[str]:
        """Branches left to right (top to bottom with LR) in source order: the first boxes
        of the branches that leave one box share a rank, chained by invisible edges
        (Graphviz keeps a flat edge's ends in order; `ordering=out` alone does not hold
        across clusters)."""
        sources: dict = {}  # box key -> the boxes it feeds
        for u, v, _node, _index in self.box_edges():
            sources.setdefault(v.key, set()).add(u.key)
        heads: dict = {}  # (fork box, column) -> [the entry node of each branch], in order
        for u, v, _node, _index in self.box_edges():
            if sources[v.key] == {u.key}:  # (from another column: from its entry point)
                heads.setdefault((u.key, self.column.get(v.key)), []).append(self.enter(v))
        return [
            f"  {{rank=same; {' -> '.join(self._across(keys))} [style=invis];}}"
            for keys in heads.values()
            if len(keys) > 1
        ]

    def _across(self, keys: list) -> list:
        """Keys in the order a flat edge chain must list them to be drawn first-to-last
        left to right (TB) or top to bottom (LR: Graphviz puts the first lowest)."""
        return keys if self.direction == "TB" else keys[::-1]

    def _emit_scope(self, scope: Scope, lines: list, indent: int, depth: int, keep) -> None:
        """Boxes and clusters in source order, so Graphviz draws branches left to right as
        they were written (with `ordering=out`); only the boxes in `keep` when given."""
        pad = "  " * indent
        for child in scope.children:
            if not isinstance(child, Scope):
                box = self.box_of[id(child)]
                if box.node is child and (keep is None or box.key in keep):
                    lines.extend(pad + s for s in self._node_stmts(box))
                continue
            if not any(True for _ in child.nodes()):
                continue
            if id(child) in self.collapsed:
                box = self.collapsed[id(child)]
                if keep is None or box.key in keep:
                    lines.extend(pad + s for s in self._node_stmts(box))
                continue
            if keep is not None and not self._boxes_in(child) & keep:
                continue
            if self._is_cluster(child):
                fill = CLUSTER_FILLS[depth % len(CLUSTER_FILLS)]
                name = scope_title(child)
                call = block_call(child, self.net.blocks)
                extra = "" if call == name else f'  <font color="#4f6278">{_h(call)}</font>'
                if child.device and child.device != (child.parent.device if child.parent else None):
                    extra += f'  <font color="#b5535f">@{_h(child.device)}</font>'
                part = self._parts.get(id(child), 0)
                self._parts[id(child)] = part + 1
                if part:
                    extra += '  <font color="#4a5562">(continued)</font>'
                label = f"<<b>{_h(name)}</b>{extra}>"
                self._cluster_count += 1  # (a scope id may repeat; a memory address would vary)
                cluster = f"cluster_{child.id}_{self._cluster_count}"
                lines.append(f"{pad}subgraph {_q(cluster)} {{")
                lines.append(
                    f'{pad}  graph [label={label}, labeljust=l, style="rounded,filled",'
                    f' fillcolor={_q(fill)}, color="#a9b4c0", penwidth=1.0,'
                    " fontsize=13, margin=10];"
                )
                self._emit_scope(child, lines, indent + 1, depth + 1, keep)
                lines.append(f"{pad}}}")
            else:
                self._emit_scope(child, lines, indent, depth, keep)

    def _node_stmts(self, box: Box) -> list[str]:
        if box.scope is None:
            return [self._node_stmt(box)]
        stmts = [self._block_stmt(box)]
        bypass = self.bypass.get(box.key)
        if bypass is not None:
            shortcut, merge = bypass
            fill, border = COLOURS["merge"]
            fork, join = self.enter(box), self.leave(box)
            stmts.insert(0, f'{fork} [shape=point, width=0.07, color="#6b7785"];')
            if merge is None:  # shortcuts inside, not around: a join point, a dashed bypass
                stmts.append(f'{join} [shape=point, width=0.07, color="#6b7785"];')
            else:
                stmts.append(
                    f"{join} [label=<<b>{_h(merge)}</b>>, fillcolor={_q(fill)},"
                    f' color={_q(border)}, margin="0.1,0.03"];'
                )
            style = ", style=dashed" if merge is None else ""
            # heavy edges keep the block in line with the chain; the bypass goes round it
            stmts.append(f"{fork} -> {box.key} [arrowhead=none, weight=8];")
            stmts.append(f"{box.key} -> {join} [weight=8];")
            stmts.append(
                f'{fork} -> {join} [label={_q(" " + shortcut)}, color="#b5535f",'
                f' fontcolor="#b5535f", penwidth=1.4{style}];'
            )
        return stmts

    def _node_stmt(self, box: Box) -> str:
        node = box.node
        cat = category(node.op)
        fill, border = COLOURS[cat]
        tooltip = _q(f"{node.id} ({node.span})")
        if node.op == "input" or box in self.outside:
            name = node.id if node.op == "input" or node is not self.top.input else "input"
            label = (
                f"<<b>{_h(name)}</b><br/>"
                f'<font point-size="11">{_h(fmt_shape(node.out_shape))}</font>>'
            )
            fill, border = COLOURS["io"]
            return (
                f"{box.key} [label={label}, fillcolor={_q(fill)}, color={_q(border)},"
                f' fontcolor="white", tooltip={tooltip}];'
            )
        params = node.params + sum(n.params for n in box.folded)
        rows = [f"<b>{_h(layer_head(node))}</b>"]
        calls = [drawn_call(n) for n in box.folded]
        for i in range(0, len(calls), 3):  # three to a line keeps the box narrow
            rows.append(_h(("+ " if i else "") + " + ".join(calls[i : i + 3])))
        short = self._short_id(node)
        small = [_h(short)] if short else []
        if node.device and node.device != self._drawn_device(node):
            small.append(f'<font color="#b5535f">@{_h(node.device)}</font>')
        if params:
            small.append(f"{params:,} params")
        if small:
            rows.append(f'<font point-size="10" color="#4a5562">{" · ".join(small)}</font>')
        label = "<" + "<br/>".join(rows) + ">"
        style = "rounded,filled" + (",dashed" if node.train_only else "")
        shape = ", shape=box" if node.op not in MERGES else ', shape=box, margin="0.1,0.03"'
        return (
            f"{box.key} [label={label}, fillcolor={_q(fill)}, color={_q(border)},"
            f" style={_q(style)}{shape}, tooltip={tooltip}];"
        )

    def _block_stmt(self, box: Box) -> str:
        scope = box.scope
        fill, border = COLOURS["block"]
        name, *calls = block_rows(scope, self.net.blocks)
        shape = fmt_shape(tuple(int(d.value) for d in scope.out_shape))
        rows = [
            f"<b>{_h(name)}</b>",
            *(_h(c) for c in calls),
            (f'<font point-size="10" color="#4a5562">{_h(shape)} · {scope.params:,} params</font>'),
        ]
        tooltip = _q(f"{scope.id} ({scope.span})")
        train_only = all(n.train_only for n in scope.nodes())
        style = ', style="rounded,filled,dashed"' if train_only else ""
        return (
            f"{box.key} [label=<{'<br/>'.join(rows)}>, fillcolor={_q(fill)},"
            f" color={_q(border)}, penwidth=1.6{style}, tooltip={tooltip}];"
        )

    def box_edges(self) -> list:
        """(from box, to box, node, input index) once per pair of boxes, in source order."""
        pairs, seen = [], set()
        for node in self._inside:
            v = self.box_of[id(node)]
            for index, src in enumerate(node.inputs):
                u = self.box_of[id(src)]
                if u is v or (u.key, v.key) in seen:
                    continue
                seen.add((u.key, v.key))
                pairs.append((u, v, node, index))
        return pairs

    def _edges(self) -> list[str]:
        lines, jumps = [], set()
        for u, v, node, index in self.box_edges():
            src = node.inputs[index]
            style = ", style=dashed" if node.train_only else ""
            label = " " + fmt_shape(src.out_shape)
            if index and node.op not in MERGES:  # only its size is read (`crop size=x`)
                label, style = f" size {fmt_shape(src.out_shape[1:])}", ", style=dotted"
            head = self.column.get(v.key, 0)
            if self.column.get(u.key, 0) != head:
                # one long edge to the next column's entry point, whatever reads the tensor
                # (an xlabel: a labelled edge between two nodes of one rank crashes dot)
                if (u.key, head) not in jumps:
                    jumps.add((u.key, head))
                    lines.append(
                        f"  {self.leave(u)} -> column{head} [xlabel={_q(label)},"
                        ' arrowhead=none, constraint=false, style="dashed"];'
                    )
                lines.append(
                    f"  column{head} -> {self.enter(v)}{' [' + style[2:] + ']' if style else ''};"
                )
                continue
            lines.append(f"  {self.leave(u)} -> {self.enter(v)} [label={_q(label)}{style}];")
        outputs = self.net.outputs
        if self.top is not self.net.root:
            outputs = [Output("output", self.top.output, False, self.top.span)]
        for i, out in enumerate(outputs):
            u = self.box_of[id(out.node)]
            key = f"out{i}"
            fill, border = COLOURS["io"]
            what = fmt_shape(out.node.out_shape) + (" (train only)" if out.train_only else "")
            label = f'<<b>{_h(out.name)}</b><br/><font point-size="11">{_h(what)}</font>>'
            style = "rounded,filled" + (",dashed" if out.train_only else "")
            lines.append(
                f"  {key} [label={label}, fillcolor={_q(fill)}, color={_q(border)},"
                f' fontcolor="white", style={_q(style)}];'
            )
            lines.append(
                f"  {self.leave(u)} -> {key} [label={_q(' ' + fmt_shape(out.node.out_shape))}"
                + (", style=dashed" if out.train_only else "")
                + "];"
            )
        return lines


# ---- skip connections of a collapsed block ------------------------------------------------


def _chain(node: Node, scope: Scope, members: set) -> list | None:
    """The nodes from `node` back to the scope's input along single inputs ([] when `node`
    is the input itself), or None when the path leaves the scope or forks."""
    path = []
    while node is not scope.input:
        if id(node) not in members or len(node.inputs) != 1:
            return None
        path.append(node)
        node = node.inputs[0]
    return path


def _residual(scope: Scope, blocks: dict) -> tuple[str, str] | None:
    """(shortcut, join) when the block ends in an add of its own input (through a short
    path): `("identity", "add + relu")`, `("conv_bn(512, k=1, s=2)", "add + relu")`."""
    members = {id(n) for n in scope.nodes()}
    node, after = scope.output, []
    while node is not None and id(node) in members and node.op != "add":
        if MINOR not in traits(node.op) or len(node.inputs) != 1:
            return None
        after.append(node)
        node = node.inputs[0]
    if node is None or id(node) not in members or len(node.inputs) < 2:
        return None
    paths = [_chain(src, scope, members) for src in node.inputs]
    known = [p for p in paths if p is not None]
    if not known:
        return None
    path = min(known, key=len)
    if len(known) == len(paths) and all(len(p) == len(path) for p in known):
        return None  # two equal paths from the input: a sum of branches, not a shortcut
    join = " + ".join(["add", *(layer_call(n) for n in reversed(after))])
    return _path_text(path, blocks), join


def _path_text(path: list, blocks: dict) -> str:
    """A shortcut as written: `identity`, the block that is all of it, or its layers."""
    if not path:
        return "identity"
    wanted = {id(n) for n in path}
    holder = path[0].scope
    while holder is not None and not (
        holder.kind == "block" and wanted <= {id(n) for n in holder.nodes()}
    ):
        holder = holder.parent
    while holder is not None and holder.kind == "block":
        inner = only_scope(holder)  # the innermost block that holds exactly the path
        if inner is None or not wanted <= {id(n) for n in inner.nodes()}:
            break
        holder = inner
    if holder is not None and {id(n) for n in holder.nodes()} == wanted:
        while holder.kind != "block":
            holder = holder.parent
        return block_call(holder, blocks)
    return " + ".join(layer_call(n) for n in reversed(path))


def shortcut(scope: Scope, blocks: dict) -> tuple[str, str | None] | None:
    """What a collapsed box shows of the skip connections inside it: its own shortcut
    (with the join), each unit's of a repeat, or a count of the ones further in."""
    own = _residual(scope, blocks) if scope.kind == "block" else None
    if own is not None:
        return own
    units = _residual_units(scope, blocks)
    if not units:
        return None
    if scope.kind == "repeat" and len(units) == len(scope.children):
        texts = {shortcut for shortcut, _ in units}
        joins = {join for _, join in units}
        if len(texts) == 1 and len(joins) == 1:
            n = len(units)
            return f"{texts.pop()} (each of {n})", f"{joins.pop()} (x{n})"
    n = len(units)
    return f"{n} shortcut{'s' * (n != 1)} inside", None


def _residual_units(scope: Scope, blocks: dict) -> list:
    """The outermost residual blocks inside `scope`, as _residual describes each."""
    found = []
    for child in scope.children:
        if not isinstance(child, Scope):
            continue
        own = _residual(child, blocks) if child.kind == "block" else None
        if own is not None:
            found.append(own)
        else:
            found.extend(_residual_units(child, blocks))
    return found


DIRECTIONS = ("TB", "LR")
MAX_COLUMNS = 12  # beyond this many columns a page is a wall of text anyway
COLUMN_GAP = 0.6  # inches between columns (rows), with their clusters' margins
SPLIT_COST = 0.3  # a split frame costs as much as missing the target by 0.3 column
SLIDE_WIDTH = 1920  # pixels: the page --fit fills (a 16:9 slide is 1920 x 1080)
TRIED_LAYOUTS = 3  # of the predicted best column counts, how many --fit lays out to measure


def to_dot(
    net: Network,
    depth: int | None = None,
    *,
    layer: str | None = None,
    direction: str = "TB",
    fit: float | None = None,
) -> str:
    """The diagram as DOT text; `depth` collapses blocks nested deeper than N into one box,
    `layer` draws one block alone, `direction` is TB or LR, and `fit` (width / height)
    wraps a long chain into columns (rows with LR) to approach that aspect ratio."""
    if depth is not None and depth < 0:
        raise NetdslError(f"--depth must be 0 or more, got {depth}")
    if direction not in DIRECTIONS:
        raise NetdslError(f"--direction must be TB or LR, got '{direction}'")
    if fit is not None and not fit > 0:
        raise NetdslError(f"--fit needs a positive width:height, got {fit}")
    top = find_layer(net, layer) if layer is not None else None
    builder = _Builder(net, depth, top, direction)
    if fit is None:
        return builder.dot()
    return builder.dot(_columns(builder, fit))


def find_layer(net: Network, name: str) -> Scope:
    """The block or stage `name` names: its id (`stage2`, `stage2.bottlenecks.0`), its
    label, or a block's name (its first call)."""
    scopes = [s for s in net.root.walk() if isinstance(s, Scope) and level_scope(s)]
    scopes = [s for s in scopes if any(True for _ in s.nodes())]
    for pick in (
        lambda s: s.id == name,
        lambda s: scope_title(s) == name or s.label == name,
        lambda s: s.kind == "block" and s.block == name,
    ):
        for scope in scopes:
            if pick(scope):
                return scope
    names = {s.id for s in scopes} | {s.block for s in scopes if s.block}
    close = difflib.get_close_matches(name, sorted(names), n=3, cutoff=0.6)
    known = sorted(s.id for s in scopes if s.parent is net.root)
    hint = (
        f"did you mean {' or '.join(repr(c) for c in close)}?"
        if close
        else ("its blocks: " + ", ".join(known[:12]) if known else "it has no blocks")
    )
    raise UsageError(f"--layer: {net.name} has no block or stage '{name}'; {hint}")


def parse_fit(text: str) -> float:
    """`16:9`, `4:3` or a number (width / height) -> width / height."""
    parts = text.split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or not all(v > 0 and v < float("inf") for v in values):
        raise UsageError(f"--fit takes a page's width:height, like 16:9 or 4:3; got '{text}'")
    return values[0] / values[1] if len(values) == 2 else values[0]


# ---- --fit: wrapping a chain into columns ----------------------------------------------


def _columns(builder: _Builder, ratio: float) -> list | None:
    """Box keys per column (row with LR), or None for one: the chain laid out once by
    `dot -Tplain`, cut only where a single tensor crosses, into the number of columns
    whose drawing shows its text largest on a page of `ratio` (width / height) --
    SLIDE_WIDTH pixels wide, its text never drawn larger than Graphviz's own size, so a
    chain that already fits stays one column."""
    boxes = builder.boxes
    if len(boxes) < 2:
        return None
    plain = run_dot(builder.dot(), "plain", why="--fit").decode("utf-8", "replace")
    extent = _extents(plain, builder)
    order = {box.key: i for i, box in enumerate(boxes)}
    tails: dict = {}  # cut after box i -> the boxes an edge across it starts from
    for u, v, _node, _index in builder.box_edges():
        if u.key not in order:
            continue
        for i in range(order[u.key], order[v.key]):
            tails.setdefault(i, set()).add(u.key)
    cuts = [i for i in range(len(boxes) - 1) if len(tails.get(i, ())) <= 1]
    along = [extent.get(box.key) for box in boxes]
    if not cuts or any(e is None for e in along):
        return None
    start, total = along[0][0], max(e[1] for e in along) - along[0][0]
    frames = [builder.frames(box) for box in boxes]
    split = {c: len(frames[c] & frames[c + 1]) for c in cuts}  # frames a cut splits
    page = (SLIDE_WIDTH, SLIDE_WIDTH / ratio)
    width, height = (float(f) for f in plain.split("\n", 1)[0].split()[2:4])
    measured = [(_scale(width, height, page), 1, None)]  # (scale, columns, keys)
    predicted = []
    for k in range(2, min(MAX_COLUMNS, len(cuts) + 1) + 1):
        chosen, last = [], -1
        for m in range(1, k):
            target = start + total * m / k
            options = [c for c in cuts if c > last]
            if not options:
                break
            # a cut between blocks beats a nearer one that splits a frame across columns
            last = min(
                options,
                key=lambda c: abs(along[c + 1][0] - target) + SPLIT_COST * total / k * split[c],
            )
            chosen.append(last)
        groups = _split(list(range(len(boxes))), chosen)
        sizes = [_group_size(along, g) for g in groups]
        length = max(s[0] for s in sizes)
        cross = sum(s[1] for s in sizes) + COLUMN_GAP * (len(groups) - 1)
        w, h = (cross, length) if builder.direction == "TB" else (length, cross)
        predicted.append((_scale(w, h, page), len(groups), groups))
    # the prediction misses cluster frames and labels: lay out the best few and measure
    for _scale_guess, k, groups in sorted(predicted, key=lambda p: (-p[0], p[1]))[:TRIED_LAYOUTS]:
        keys = [[boxes[i].key for i in group] for group in groups]
        try:
            head = run_dot(builder.dot(keys), "plain", why="--fit").split(b"\n", 1)[0].split()
        except NetdslError:
            continue  # a layout Graphviz cannot make (it has crashed on some): not this one
        measured.append((_scale(float(head[2]), float(head[3]), page), k, keys))
    # the largest text; of (nearly) equal ones, the fewest columns
    top = max(scale for scale, _k, _keys in measured)
    return min((k, keys) for scale, k, keys in measured if scale >= top * 0.97)[1]


def _scale(width: float, height: float, page: tuple) -> float:
    """How much a drawing of width x height inches (at PNG_DPI) is scaled to fill the page,
    capped at 1: drawing it larger than its own size helps no one read it."""
    return min(1.0, page[0] / (width * PNG_DPI), page[1] / (height * PNG_DPI))


def _split(items: list, cuts: list) -> list:
    groups, begin = [], 0
    for c in cuts:
        groups.append(items[begin : c + 1])
        begin = c + 1
    groups.append(items[begin:])
    return [g for g in groups if g]


def _group_size(along: list, group: list) -> tuple[float, float]:
    """(length along the chain, width across it) of a run of boxes, in inches."""
    lo = min(along[i][0] for i in group)
    hi = max(along[i][1] for i in group)
    left = min(along[i][2] for i in group)
    right = max(along[i][3] for i in group)
    return hi - lo, right - left


def _extents(plain: str, builder: _Builder) -> dict:
    """box key -> (start, end along the chain, left, right across it), in inches, from
    `dot -Tplain` (y grows upwards there, so a top-to-bottom chain runs down it)."""
    owner = {}
    for box in builder.boxes:
        for name in {box.key, builder.enter(box), builder.leave(box)}:
            owner[name] = box.key
    extent: dict = {}
    for line in plain.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[0] != "node" or fields[1] not in owner:
            continue
        x, y, w, h = (float(f) for f in fields[2:6])
        if builder.direction == "TB":
            span = (-(y + h / 2), -(y - h / 2), x - w / 2, x + w / 2)
        else:
            span = (x - w / 2, x + w / 2, y - h / 2, y + h / 2)
        key = owner[fields[1]]
        old = extent.get(key)
        if old is not None:
            span = (
                min(old[0], span[0]),
                max(old[1], span[1]),
                min(old[2], span[2]),
                max(old[3], span[3]),
            )
        extent[key] = span
    return extent


# ---- running dot, writing files --------------------------------------------------------


def dot_program() -> str | None:
    return shutil.which("dot")


def _need_dot(fmt: str, why: str | None = None) -> str:
    program = dot_program()
    if program is None:
        raise NetdslError(
            f"{why or 'rendering .' + fmt} needs Graphviz's `dot` program, which is not on PATH",
            hint="install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew "
            "install graphviz; conda: conda install graphviz), or write a .dot file",
        )
    return program


def run_dot(dot_text: str, fmt: str, why: str | None = None) -> bytes:
    """DOT text -> the bytes of an svg/png/pdf (or plain layout), through `dot`."""
    program = _need_dot(fmt, why)
    extra = [f"-Gdpi={PNG_DPI}"] if fmt == "png" else []
    try:
        done = subprocess.run(
            [program, f"-T{fmt}", *extra],
            input=dot_text.encode("utf-8"),
            capture_output=True,
            timeout=DOT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise NetdslError(
            f"Graphviz took more than {DOT_TIMEOUT} s to lay out the diagram",
            hint="collapse blocks with --depth",
        ) from None
    except OSError as e:
        raise NetdslError(f"could not run Graphviz's dot: {e}") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise NetdslError(
            "Graphviz's dot failed: "
            + (message[-1] if message else f"exit status {done.returncode}")
        )
    return done.stdout


def output_format(path: str) -> str | None:
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise NetdslError(
            f"cannot render to '{ext or path}': choose an output ending in "
            + ", ".join(sorted(FORMATS))
        )
    return FORMATS[ext]


def _mark_png(data: bytes) -> bytes:
    """A `Software` text chunk saying netdsl made it, right after the PNG's header chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return data
    end = 8 + 12 + int.from_bytes(data[8:12], "big")
    body = b"tEXt" + b"Software\x00" + MARK.encode()
    chunk = (len(body) - 4).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")
    return data[:end] + chunk + data[end:]


def _mark_pdf(data: bytes) -> bytes:
    """The PDF's Producer string replaced by MARK, padded to the same length (so every
    byte offset in the file stays valid); left alone where that does not fit."""
    found = re.search(rb"/Producer \(", data)
    if found is None:
        return data
    start = found.end() - 1  # the opening parenthesis
    i, depth = start, 0
    while i < len(data):
        if data[i] == 0x5C:  # backslash: an escaped character
            i += 2
            continue
        depth += {0x28: 1, 0x29: -1}.get(data[i], 0)
        if depth == 0:
            break
        i += 1
    new = b"(" + MARK.encode() + b")"
    if i >= len(data) or len(new) > i + 1 - start:
        return data
    return data[:start] + new.ljust(i + 1 - start) + data[i + 1 :]


def _undate_pdf(data: bytes) -> bytes:
    """The PDF's CreationDate entry (cairo writes the time of drawing) blanked out with
    spaces, so drawing the same network twice gives the same bytes; the entry is
    optional, and blanks keep every byte offset valid."""
    return re.sub(
        rb"/CreationDate \(D:[0-9Z+\-']*\)", lambda m: b" " * len(m.group()), data, count=1
    )


def _finish_pdf(data: bytes) -> bytes:
    return _undate_pdf(_mark_pdf(data))


_MARKERS = {"png": _mark_png, "pdf": _finish_pdf}


def render(
    net: Network,
    path: str,
    depth: int | None = None,
    *,
    layer: str | None = None,
    direction: str = "TB",
    fit: float | None = None,
) -> str:
    """Draw `net` into `path` (.svg, .png, .pdf, .dot/.gv for the DOT text, or .html for
    the interactive diagram, its blocks expanded `depth` levels deep)."""
    fmt = output_format(path)
    if fmt == "html":
        from .web.diagram import diagram_html

        _static_only(layer=layer, direction=direction, fit=fit)
        write_atomic(path, diagram_html(net, depth=depth).encode("utf-8"))
        return path
    text = to_dot(net, depth, layer=layer, direction=direction, fit=fit)
    data = text.encode("utf-8") if fmt is None else run_dot(text, fmt)
    write_atomic(path, _MARKERS.get(fmt, lambda d: d)(data))
    return path


def _static_only(*, layer, direction, fit) -> None:
    """The .html diagram expands blocks itself: the options that shape one drawing do not
    apply to it."""
    given = [
        name
        for name, value in (
            ("--layer", layer),
            ("--direction LR", direction != "TB"),
            ("--fit", fit),
        )
        if value
    ]
    if given:
        raise UsageError(
            f"{' and '.join(given)}: not for an .html diagram, which is laid out in the "
            "browser (its blocks expand on a click; --depth sets how many start open)"
        )


def cmd_render(args) -> int:
    try:
        fmt = output_format(args.output)  # a bad extension fails before compiling
    except NetdslError as e:
        raise UsageError(e.message) from None  # on the command line, a wrong -o is usage
    fit = parse_fit(args.fit) if args.fit is not None else None
    if fmt == "html":
        _static_only(layer=args.layer, direction=args.direction, fit=fit)
    elif fmt is not None:
        _need_dot(fmt)
    if fit is not None:
        _need_dot("plain", "--fit")  # it measures a first layout
    target = check_writable(args.output, args.force or marked_by_netdsl(args.output))
    net = load_network(args, args.file)
    render(net, str(target), args.depth, layer=args.layer, direction=args.direction, fit=fit)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "render", help="draw the network with Graphviz (.svg .png .pdf .dot), or .html to explore"
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="output file: .svg, .png or .pdf (need Graphviz's dot), .dot, or .html (an "
        "interactive diagram in one file: click blocks to expand them)",
    )
    p.add_argument(
        "--depth",
        type=int,
        metavar="N",
        help="show N levels of blocks; deeper blocks become one box (.html: how many levels "
        "start expanded; default none)",
    )
    p.add_argument(
        "--layer",
        metavar="NAME",
        help="draw one block or stage alone: its id as summary shows it (stage2, "
        "stage2.bottlenecks.0) or a block's name (its first call)",
    )
    p.add_argument(
        "--direction",
        choices=DIRECTIONS,
        default="TB",
        help="TB: top to bottom (default); LR: left to right",
    )
    p.add_argument(
        "--fit",
        metavar="W:H",
        help="wrap a long chain into columns (rows with LR) to approach a page's aspect "
        "ratio, e.g. 16:9 (needs Graphviz's dot, even for .dot)",
    )
    p.add_argument("--force", action="store_true", help="overwrite a file that netdsl did not draw")
    add_common(p)
    p.set_defaults(func=cmd_render)
