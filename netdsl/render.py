"""`netdsl render`: the network as a Graphviz diagram fit for a slide.

The DOT text is built here (no graphviz Python package). Blocks become
clusters, or single nodes beyond `--depth`; parallel branches sit side by side
because Graphviz ranks them so; shapes label the edges and parameter counts
the nodes. A normalisation or activation that directly follows a layer is
drawn inside that layer's box (`conv 64 k=3 p=1 + bn + relu`), so a ResNet
reads as its paper's figure, not as three times as many boxes.

`.dot` is written by Python alone; `.svg`, `.png` and `.pdf` run the `dot`
program. Every label is escaped: block and layer names come from the DSL.

Every file carries output.MARK (a DOT `comment`, which Graphviz copies into an
SVG; a PNG text chunk; the PDF's Producer), so rendering again overwrites a
diagram netdsl drew but not another file of the same name without --force.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import zlib
from dataclasses import dataclass, field

from .analysis import block_call, layer_call
from .commandline import add_common, load_network
from .errors import NetdslError, UsageError
from .ir import Network, Node, Scope
from .layers import CATALOGUE, MERGES, MINOR, fmt_shape, traits
from .output import MARK, check_writable, marked_by_netdsl, write_atomic

FORMATS = {".dot": None, ".gv": None, ".svg": "svg", ".png": "png", ".pdf": "pdf"}
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


def _only_scope(scope: Scope) -> Scope | None:
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


def _level_scope(scope: Scope) -> bool:
    return scope.kind in ("block", "repeat", "group")


class _Builder:
    def __init__(self, net: Network, depth: int | None) -> None:
        self.net, self.depth = net, depth
        self.boxes: list[Box] = []
        self.box_of: dict = {}  # id(node) -> Box
        self.consumers: dict = {}
        for node in net.nodes():
            for src in node.inputs:
                self.consumers[id(src)] = self.consumers.get(id(src), 0) + 1
        self.collapsed: dict = {}  # id(scope) -> Box
        self._clusters: dict = {}  # id(scope) -> drawn as a cluster
        self._cluster_count = 0  # numbers clusters uniquely, the same on every run
        self._assign(net.root, 0)

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
                counts = _level_scope(child)
                inner = _only_scope(child)
                if (
                    counts
                    and self.depth is not None
                    and (
                        level >= self.depth
                        or (level + 1 >= self.depth and inner is not None and _level_scope(inner))
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
        if self.consumers.get(id(src), 0) != 1 or src.train_only != node.train_only:
            return None
        # every scope between the host and this node holds nothing but the host's box
        members = {id(n) for n in (host.node, *host.folded)}
        scope = host.node.scope
        while scope is not None and scope is not node.scope:
            if any(id(n) not in members for n in scope.nodes()):
                return None
            scope = scope.parent
        return host if scope is node.scope else None

    # -- clusters ------------------------------------------------------------------------

    def _boxes_in(self, scope: Scope) -> set:
        return {self.box_of[id(n)].key for n in scope.nodes()}

    def _is_cluster(self, scope: Scope) -> bool:
        """Drawn as a frame around its boxes: an expanded block holding more than one box."""
        known = self._clusters.get(id(scope))
        if known is None:
            known = (
                _level_scope(scope)
                and scope.kind != "repeat"
                and id(scope) not in self.collapsed
                and len(self._boxes_in(scope)) > 1
            )
            self._clusters[id(scope)] = known
        return known

    def _drawn_device(self, node: Node) -> str | None:
        """The device the enclosing cluster's label already shows."""
        scope = node.scope
        while scope is not None and scope.parent is not None and not self._is_cluster(scope):
            scope = scope.parent
        return scope.device if scope is not None and scope.parent is not None else None

    def _short_id(self, node: Node) -> str:
        """The node's id relative to the cluster it is drawn in ('' when it adds nothing)."""
        scope = node.scope
        while scope is not None and scope.parent is not None and not self._is_cluster(scope):
            scope = scope.parent
        name = node.id
        if scope is not None and scope.id and name.startswith(scope.id + "."):
            name = name[len(scope.id) + 1 :]
        return "" if name == node.op else name

    def _home(self, box: Box) -> Scope | None:
        """The scope a box is drawn in: its host node's, or a collapsed block's parent."""
        return box.scope.parent if box.scope is not None else box.node.scope

    # -- text ----------------------------------------------------------------------------

    def dot(self) -> str:
        net = self.net
        title = (
            f'<<b>{_h(net.name)}</b>  <font point-size="12">{net.total_params:,} params'
            f" · {net.total_macs:,} MACs</font>>"
        )
        lines = [
            f"digraph {_q(net.name)} {{",
            f"  comment={_q(MARK)};",
            (
                f"  graph [rankdir=TB, newrank=true, nodesep=0.25, ranksep=0.32, fontname={_q(FONT)},"
                f' fontsize=18, labelloc=t, label={title}, bgcolor="white", pad=0.3];'
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
        placed: dict = {}  # id(scope) -> [box]
        for box in self.boxes:
            placed.setdefault(id(self._home(box)), []).append(box)
        self._emit_scope(net.root, placed, lines, 1, 0)
        lines.extend(self._edges())
        lines.append("}")
        return "\n".join(lines) + "\n"

    def _emit_scope(self, scope: Scope, placed: dict, lines: list, indent: int, depth: int) -> None:
        pad = "  " * indent
        for box in placed.get(id(scope), ()):
            lines.append(pad + self._node_stmt(box))
        for child in scope.children:
            if not isinstance(child, Scope) or id(child) in self.collapsed:
                continue
            if not any(True for _ in child.nodes()):
                continue
            if self._is_cluster(child):
                fill = CLUSTER_FILLS[depth % len(CLUSTER_FILLS)]
                name = scope_title(child)
                call = block_call(child)
                extra = "" if call == name else f'  <font color="#4f6278">{_h(call)}</font>'
                if child.device and child.device != (child.parent.device if child.parent else None):
                    extra += f'  <font color="#b5535f">@{_h(child.device)}</font>'
                label = f"<<b>{_h(name)}</b>{extra}>"
                self._cluster_count += 1  # (a scope id may repeat; a memory address would vary)
                cluster = f"cluster_{child.id}_{self._cluster_count}"
                lines.append(f"{pad}subgraph {_q(cluster)} {{")
                lines.append(
                    f'{pad}  graph [label={label}, labeljust=l, style="rounded,filled",'
                    f' fillcolor={_q(fill)}, color="#a9b4c0", penwidth=1.0,'
                    " fontsize=13, margin=10];"
                )
                self._emit_scope(child, placed, lines, indent + 1, depth + 1)
                lines.append(f"{pad}}}")
            else:
                self._emit_scope(child, placed, lines, indent, depth)

    def _node_stmt(self, box: Box) -> str:
        if box.scope is not None:
            return self._block_stmt(box)
        node = box.node
        cat = category(node.op)
        fill, border = COLOURS[cat]
        tooltip = _q(f"{node.id} ({node.span})")
        if node.op == "input":
            label = (
                f"<<b>{_h(node.id)}</b><br/>"
                f'<font point-size="11">{_h(fmt_shape(node.out_shape))}</font>>'
            )
            return (
                f"{box.key} [label={label}, fillcolor={_q(fill)}, color={_q(border)},"
                f' fontcolor="white", tooltip={tooltip}];'
            )
        params = node.params + sum(n.params for n in box.folded)
        if node.op in MERGES:
            head = f"<b>{_h(node.op)}</b>"
        else:
            head = f"<b>{_h(layer_call(node))}</b>"
        rows = [head]
        calls = [layer_call(n) for n in box.folded]
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
        name = scope_title(scope)
        shape = fmt_shape(tuple(int(d.value) for d in scope.out_shape))
        calls = [block_call(scope)]
        inner = _only_scope(scope)
        if inner is not None and inner.kind == "repeat":
            calls.append("= " + block_call(inner))
        if scope.device:
            calls.append(f"@{scope.device}")
        rows = [
            f"<b>{_h(name)}</b>",
            *(_h(c) for c in calls if c != name),
            (f'<font point-size="10" color="#4a5562">{_h(shape)} · {scope.params:,} params</font>'),
        ]
        tooltip = _q(f"{scope.id} ({scope.span})")
        train_only = all(n.train_only for n in scope.nodes())
        style = ', style="rounded,filled,dashed"' if train_only else ""
        return (
            f"{box.key} [label=<{'<br/>'.join(rows)}>, fillcolor={_q(fill)},"
            f" color={_q(border)}, penwidth=1.6{style}, tooltip={tooltip}];"
        )

    def _edges(self) -> list[str]:
        lines, seen = [], set()
        for node in self.net.nodes():
            v = self.box_of[id(node)]
            for index, src in enumerate(node.inputs):
                u = self.box_of[id(src)]
                if u is v or (u.key, v.key) in seen:
                    continue
                seen.add((u.key, v.key))
                style = ", style=dashed" if node.train_only else ""
                label = " " + fmt_shape(src.out_shape)
                if index and node.op not in MERGES:  # only its size is read (`crop size=x`)
                    label, style = f" size {fmt_shape(src.out_shape[1:])}", ", style=dotted"
                lines.append(f"  {u.key} -> {v.key} [label={_q(label)}{style}];")
        for i, out in enumerate(self.net.outputs):
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
                f"  {u.key} -> {key} [label={_q(' ' + fmt_shape(out.node.out_shape))}"
                + (", style=dashed" if out.train_only else "")
                + "];"
            )
        return lines


def to_dot(net: Network, depth: int | None = None) -> str:
    """The diagram as DOT text; `depth` collapses blocks nested deeper than N into one box."""
    if depth is not None and depth < 0:
        raise NetdslError(f"--depth must be 0 or more, got {depth}")
    return _Builder(net, depth).dot()


# ---- running dot, writing files --------------------------------------------------------


def dot_program() -> str | None:
    return shutil.which("dot")


def _need_dot(fmt: str) -> str:
    program = dot_program()
    if program is None:
        raise NetdslError(
            f"rendering .{fmt} needs Graphviz's `dot` program, which is not on PATH",
            hint="install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew "
            "install graphviz; conda: conda install graphviz), or write a .dot file",
        )
    return program


def run_dot(dot_text: str, fmt: str) -> bytes:
    """DOT text -> the bytes of an svg/png/pdf, through the `dot` program."""
    program = _need_dot(fmt)
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


def render(net: Network, path: str, depth: int | None = None) -> str:
    """Draw `net` into `path` (.svg, .png, .pdf, or .dot/.gv for the DOT text)."""
    fmt = output_format(path)
    text = to_dot(net, depth)
    data = text.encode("utf-8") if fmt is None else run_dot(text, fmt)
    write_atomic(path, _MARKERS.get(fmt, lambda d: d)(data))
    return path


def cmd_render(args) -> int:
    try:
        fmt = output_format(args.output)  # a bad extension fails before compiling
    except NetdslError as e:
        raise UsageError(e.message) from None  # on the command line, a wrong -o is usage
    if fmt is not None:
        _need_dot(fmt)
    target = check_writable(args.output, args.force or marked_by_netdsl(args.output))
    net = load_network(args, args.file)
    render(net, str(target), args.depth)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("render", help="draw the network with Graphviz (.svg .png .pdf .dot)")
    p.add_argument("file", metavar="FILE")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="output file: .svg, .png or .pdf (need Graphviz's dot) or .dot",
    )
    p.add_argument(
        "--depth",
        type=int,
        metavar="N",
        help="show N levels of blocks; deeper blocks become one box",
    )
    p.add_argument("--force", action="store_true", help="overwrite a file that netdsl did not draw")
    add_common(p)
    p.set_defaults(func=cmd_render)
