"""`netdsl explain`: the arithmetic behind every shape, count and byte, as a teacher writes it.

The numbers come from analysis.py; this module only lays them out, as plain
text (default) or as a Markdown handout (one table, block rows and totals).
"""

from __future__ import annotations

from dataclasses import replace

from . import initializers
from .analysis import (
    BYTES,
    Analysis,
    Count,
    Equation,
    LayerFacts,
    Note,
    Receptive,
    Window,
    analyze,
    layer_call,
)
from .calls import block_call
from .commandline import add_common, add_estimate_options, estimate_request, load_network
from .errors import NetdslError, did_you_mean
from .ir import Network, Node, Scope
from .layers import fmt_shape

CONVENTIONS = (
    "Shapes follow PyTorch (floor division unless ceil mode). Params = weights + biases + "
    "BatchNorm gamma/beta. MACs = conv and linear multiply-accumulates at batch 1. Memory is fp32 "
    "(4 B a value) at batch 1; forward activations count the input and each layer's new output "
    "(in-place activations, dropout and flatten add none); the training estimate is twice that "
    "(each activation is kept for backward and gets a gradient) plus max-pool indices and "
    "dropout masks. RF = receptive field in input pixels; jump = effective stride "
    "(r_out = r_in + (k - 1) x j_in, j_out = j_in x s; a merge takes the largest branch)."
)


class _Style:
    """Plain text uses ASCII; the Markdown handout uses typographic symbols."""

    def __init__(self, markdown: bool) -> None:
        self.markdown = markdown
        self.times = " × " if markdown else " x "
        self.mul = "·" if markdown else "*"
        self.arrow = " → " if markdown else " -> "

    def product(self, factors) -> str:
        return self.times.join(str(f) for f in factors)

    def count(self, count: Count) -> str:
        terms = [self.product(t) for t in count.terms]
        if len(terms) == 1 and len(count.terms[0]) == 1:
            return f"{count.value:,}"
        return " + ".join(terms) + f" = {count.value:,}"

    def formula(self, text: str) -> str:
        return text.replace(" x ", self.times) if self.markdown else text


# ---- pieces ----------------------------------------------------------------------------


def human_bytes(n: int) -> str:
    """1,161,600 B (1.1 MiB): exact bytes, then a binary-prefixed size."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n:,} B ({n / size:.1f} {unit})"
    return f"{n:,} B"


def short_bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def window_formula(w: Window) -> str:
    k = "k" if w.d == 1 else "k_eff"
    rounding = "ceil" if w.ceil else "floor"
    return f"{rounding}((in - {k} + 2p)/s) + 1"


def window_text(w: Window, style: _Style) -> str:
    """(227 - 11)/4 + 1 = 55, with floor/ceil written out only where they change something."""
    num = f"{w.size} - {w.k_eff}"
    if w.p:
        num += f" + 2{style.mul}{w.p}"
    prefix = f"{w.axis}: "
    if w.s == 1:
        text = f"{num} + 1 = {w.out}"
    elif w.exact:
        text = f"({num})/{w.s} + 1 = {w.out}"
    else:
        fn = "ceil" if w.ceil else "floor"
        text = f"{fn}(({num})/{w.s}) + 1 = {fn}({w.numerator}/{w.s}) + 1"
        if w.last_dropped:
            text += f" = {w.out + 1}, minus 1: the last window would start in the padding = {w.out}"
        else:
            text += f" = {w.out}"
    if w.d != 1:
        text += f"   (k_eff = {w.d}{style.mul}({w.k} - 1) + 1 = {w.k_eff})"
    return prefix + text


def step_text(step, style: _Style) -> tuple[str, str]:
    """(formula, substituted) for one shape-derivation step."""
    if isinstance(step, Window):
        return window_formula(step), window_text(step, style)
    if isinstance(step, Equation):
        op = style.times if step.op == "x" else f" {step.op} "
        return "", f"{step.label} = " + op.join(
            f"{v:,}" if step.op == "x" else str(v) for v in step.operands
        ) + f" = {step.result:,}"
    return "", step.text


def rf_text(rf: Receptive | None, style: _Style) -> str:
    if rf is None:
        return "n/a (no image input)"
    if rf.unknown:
        return rf.unknown
    approx = "~" if rf.approximate else ""
    if rf.rule in ("window", "global") and rf.steps:
        axes = [("", rf.steps[0])] if rf.square else [("H: ", rf.steps[0]), ("W: ", rf.steps[1])]
        parts = []
        for label, a in axes:
            r = (
                f"{a.r_in} + ({a.k} - 1){style.times}{a.j_in} = {approx}{a.r} px"
                if a.k > 1
                else f"{approx}{a.r} px"
            )
            if rf.rule == "global":
                parts.append(f"{label}{r} (the whole {a.k}-wide grid)")
                continue
            j = f"jump {a.j_in}{style.times}{a.s} = {a.j}" if a.s != 1 else f"jump {a.j}"
            parts.append(f"{label}{r}, {j}")
        return "; ".join(parts)
    text = rf_short(rf)
    return ("largest branch: " + text) if rf.rule == "merge" else text


def rf_short(rf: Receptive | None) -> str:
    if rf is None:
        return "n/a"
    if rf.unknown:
        return "n/a (upsampled)"
    approx = "~" if rf.approximate else ""
    r = f"{approx}{rf.r[0]}" if rf.r[0] == rf.r[1] else f"{approx}{rf.r[0]}x{rf.r[1]}"
    if rf.grid == (1, 1):  # one position: a jump means nothing any more
        return f"{r} px"
    j = f"{rf.j[0]}" if rf.j[0] == rf.j[1] else f"{rf.j[0]}x{rf.j[1]}"
    return f"{r} px, jump {j}"


def rf_beyond_input(analysis: Analysis) -> str | None:
    """Why the output's receptive field is wider than the input, when it is (VGG-16: 404 px
    on 224): the sentence that keeps the number from looking like a bug."""
    rf, net = analysis.output_rf(), analysis.net
    shape = next(iter(net.inputs.values())).out_shape if net.inputs else ()
    if rf is None or rf.unknown or len(shape) != 3 or (rf.r[0] <= shape[1] and rf.r[1] <= shape[2]):
        return None
    size = f"{shape[1]} px" if shape[1] == shape[2] else f"{shape[1]}x{shape[2]} px"
    field = rf_short(replace(rf, grid=(1, 1)))  # without the jump
    return (
        f"more than the {size} input: the fields of units near the border reach into the "
        f"zero padding, and {field} is what the output could see of an unbounded image"
    )


def memory_text(facts: LayerFacts, style: _Style) -> tuple[str, str]:
    m = facts.memory
    shape = facts.node.out_shape
    if m.how == "in place":
        return "", f"in place: no new memory ({fmt_shape(shape)} overwrites its input)"
    if m.how == "identity":
        return "", (
            f"identity at inference: no new memory; training keeps a "
            f"{m.extra} ({m.train_bytes:,} B)"
        )
    if m.how == "view":
        return "", "a view of its input: no new memory"
    dims = style.times.join(str(d) for d in shape)
    text = f"{dims}{style.times}{BYTES} B = {human_bytes(m.bytes)}; training {m.train_bytes:,} B"
    if m.extra:
        text += f" (with {m.extra})"
    formula = {3: "C x H x W x 4 B", 2: "N x D x 4 B"}.get(len(shape), "features x 4 B")
    return style.formula(formula), text


def training_breakdown(a: Analysis) -> str:
    """2 x forward + what backward keeps beyond the activations + train-only heads."""
    extra = a.train_bytes - 2 * a.forward_bytes - a.train_only_bytes
    text = "2 x forward"
    if extra:
        text += f" + {extra:,} B of max-pool indices and dropout masks"
    if a.train_only_bytes:
        text += f" + {a.train_only_bytes:,} B for the train-only heads"
    return text


# ---- selection ---------------------------------------------------------------------------


def _visible(scope: Scope) -> bool:
    return any(True for _ in scope.nodes())


def _counts_as_level(scope: Scope) -> bool:
    return scope.kind in ("block", "repeat", "group")


def find(net: Network, name: str) -> list:
    """Nodes or scopes named `name`: an exact id first, else every id ending in `.name`."""
    scopes = [s for s in net.root.walk() if isinstance(s, Scope) and s.id]
    for item in [*scopes, *net.nodes()]:
        if item.id == name:
            return [item]
    hits = [s for s in scopes if s.id.endswith("." + name) and s.kind != "iteration"]
    hits += [n for n in net.nodes() if n.id.endswith("." + name)]
    if not hits:
        ids = [n.id for n in net.nodes()] + [s.id for s in scopes]
        raise NetdslError(
            f"no layer or block '{name}' in network {net.name}",
            hint=did_you_mean(name, ids) or "run `netdsl summary FILE` to list the layer names",
        )
    return hits


# ---- plain text -----------------------------------------------------------------------------


class _Text:
    def __init__(self, analysis: Analysis, depth: int | None, style: _Style, estimate=None) -> None:
        self.a, self.depth, self.style = analysis, depth, style
        self.estimate = estimate  # summary.Estimate: memory and FLOPs at a batch, or None
        self.saved = {m.node.id: m for m in estimate.memory.layers} if estimate is not None else {}
        self.lines: list[str] = []
        self.width = min(max([len(f) for f in _formulas(analysis)] + [24]), 40) + 1

    def out(self, indent: int, text: str) -> None:
        self.lines.append("  " * indent + text)

    def layer(self, node: Node, indent: int, detailed: bool = False) -> None:
        facts = self.a.facts(node)
        st = self.style
        shape = fmt_shape(node.out_shape)
        if node.op == "input":
            self.out(
                indent,
                f"{node.id}: {shape}    RF {rf_short(facts.rf)}    "
                f"{human_bytes(facts.memory.bytes)}",
            )
            return
        simple = (
            facts.params is None
            and facts.macs is None
            and all(
                isinstance(s, Note) and s.text == "same shape as the input" for s in facts.shape
            )
        )
        train = "  [train only]" if node.train_only else ""
        if simple and not detailed:
            mem = {
                "in place": "in place",
                "identity": "no memory at inference",
                "view": "view",
            }.get(facts.memory.how, short_bytes(facts.memory.new_bytes))
            saves = self.saved_text(node)
            self.out(
                indent,
                f"{node.id}: {layer_call(node)}    {shape}    "
                f"RF {rf_short(facts.rf)}    {mem}{train}"
                + (f"    saves {saves}" if saves else ""),
            )
            return
        ins = ", ".join(fmt_shape(tuple(int(d.value) for d in s)) for s in node.in_shapes)
        self.out(indent, f"{node.id}: {layer_call(node)}    {ins}{st.arrow}{shape}{train}")
        rows: list[tuple[str, str, str]] = []
        steps = sorted(facts.shape, key=lambda step: not isinstance(step, Window))
        shown = set()
        for i, step in enumerate(steps):
            formula, text = step_text(step, st)
            rows.append(("shape" if i == 0 else "", "" if formula in shown else formula, text))
            shown.add(formula)
        if facts.params is not None:
            rows.append(("params", st.formula(facts.params.formula), st.count(facts.params)))
            if facts.params.note:
                rows.append(("", "", facts.params.note))
        if facts.macs is not None:
            rows.append(("MACs", st.formula(facts.macs.formula), st.count(facts.macs)))
        for i, r in enumerate(initializers.resolve(node)):
            init, drawn = initializers.explained(r)
            written = r.tensor.role if init.startswith("=") else f"{r.tensor.role}: {init}"
            rows.append(("init" if i == 0 else "", written, drawn))
        rf_formula = (
            "r + (k - 1) x j; j x s" if facts.rf and facts.rf.rule in ("window", "global") else ""
        )
        rows.append(("RF", rf_formula, rf_text(facts.rf, st)))
        rows.append(("memory", *memory_text(facts, st)))
        if self.estimate is not None:
            rows += self.estimate_rows(node)
        for label, formula, text in rows:
            if len(formula) > self.width:  # a long formula gets its own line
                self.out(indent + 1, f"{label:<7} {formula}")
                label, formula = "", ""
            self.out(indent + 1, f"{label:<7} {formula:<{self.width}} {text}".rstrip())

    def saved_text(self, node: Node) -> str:
        """What the layer keeps for backward at the estimate's batch: `input 1.5 MiB (shared)`."""
        m = self.saved.get(node.id)
        if m is None or not self.estimate.memory.train:
            return ""
        parts = [
            f"{what} {short_bytes(n)}" + (f" ({shared})" if shared else "")
            for what, n, shared in m.saved
        ]
        return " + ".join(parts) if parts else "nothing"

    def estimate_rows(self, node: Node) -> list[tuple[str, str, str]]:
        est, rows = self.estimate, []
        m = self.saved.get(node.id)
        if m is not None and est.memory.train:
            rows.append(("saved", f"for backward at batch {est.batch}", self.saved_text(node)))
        flops = est.flops.by_id.get(node.id) if est.flops is not None else None
        if flops is not None and flops.total:
            text = (
                f"forward {flops.forward:,} + input grad {flops.input_grad:,} + weight grad "
                f"{flops.weight_grad:,} = {flops.total:,}"
            )
            rows.append(("FLOPs", f"training step, batch {est.batch}", text))
        return rows

    def scope(self, scope: Scope, indent: int, level: int) -> None:
        if not _visible(scope):
            return
        if not _counts_as_level(scope):
            for child in scope.children:
                self.child(child, indent, level)
            return
        t = self.a.totals(scope)
        shape_in = fmt_shape(tuple(int(d.value) for d in scope.in_shape))
        shape_out = fmt_shape(tuple(int(d.value) for d in scope.out_shape))
        name, call = scope.id or scope.name, block_call(scope, self.a.net.blocks)
        head = (
            f"{name}: {call}" if call != scope.label else name
        ) + f"    {shape_in}{self.style.arrow}{shape_out}"
        summary = (
            f"{t.params:,} params, {t.macs:,} MACs, activations "
            f"{short_bytes(t.new_bytes)} (training {short_bytes(t.train_bytes)}), "
            f"RF {rf_short(self.a.output_rf(scope))}"
        )
        if self.depth is not None and level >= self.depth:
            self.out(indent, f"{head}    [{summary}]")
            return
        self.out(indent, f"{head}")
        for child in scope.children:
            self.child(child, indent + 1, level + 1)
        self.out(indent, f"= {scope.id or scope.name} total: {summary}")

    def child(self, child, indent: int, level: int) -> None:
        if isinstance(child, Scope):
            self.scope(child, indent, level)
        else:
            self.layer(child, indent)

    def totals(self) -> None:
        a, net = self.a, self.a.net
        out = self.out
        out(0, "")
        out(0, f"network total ({net.name})")
        out(
            1,
            f"params       {net.total_params:,}  (BatchNorm running statistics, buffers: "
            f"{net.total_buffers:,})",
        )
        out(1, f"MACs         {net.total_macs:,}")
        out(1, f"RF at output {rf_short(a.output_rf())}")
        beyond = rf_beyond_input(a)
        if beyond:
            out(1, f"             {beyond}")
        out(
            1,
            f"activations  forward {human_bytes(a.forward_bytes)}: the input and every "
            "layer's new output",
        )
        out(
            1,
            f"             peak at inference {human_bytes(a.peak_bytes)}: each tensor freed "
            "after its last use",
        )
        out(
            1,
            f"             training estimate {human_bytes(a.train_bytes)}: "
            + training_breakdown(a),
        )
        state = (
            f" + optimizer state ({a.optimizer}) {short_bytes(a.optimizer_bytes)}"
            if a.optimizer
            else " (no train section: optimizer state not counted)"
        )
        out(
            1,
            f"parameters   weights {short_bytes(a.param_bytes)} + gradients "
            f"{short_bytes(a.grad_bytes)}{state}",
        )


def _formulas(analysis: Analysis):
    """Every formula the text may print, to size its column."""
    for facts in analysis.layers.values():
        for step in facts.shape:
            yield step_text(step, _Style(False))[0]
        for count in (facts.params, facts.macs):
            if count is not None:
                yield count.formula


def conventions(net: Network) -> str:
    """CONVENTIONS, with attention's matrix products named where the network has attention."""
    if not any(n.op == "attention" for n in net.nodes()):
        return CONVENTIONS
    return CONVENTIONS.replace(
        "MACs = conv and linear multiply-accumulates",
        "MACs = conv and linear multiply-accumulates plus attention's Q K^T and A V per head",
    )


def _text(analysis: Analysis, depth: int | None, targets: list | None, estimate=None) -> str:
    net = analysis.net
    t = _Text(analysis, depth, _Style(False), estimate)
    t.out(0, f"{net.name} ({net.path}): the arithmetic, layer by layer")
    for line in _wrap(conventions(net), 96):
        t.out(0, line)
    t.out(0, "")
    if targets is not None:
        for item in targets:
            if isinstance(item, Scope):
                t.scope(item, 0, 0)
            else:
                t.layer(item, 0, detailed=True)
        return "\n".join(t.lines) + "\n"
    for child in net.root.children:
        t.child(child, 0, 0)
    t.totals()
    if estimate is not None:
        from .summary import estimate_text

        t.out(0, "")
        t.lines += estimate_text(estimate).splitlines()
    return "\n".join(t.lines) + "\n"


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width)


# ---- markdown ------------------------------------------------------------------------------


class _Markdown:
    HEADER = (
        "| Layer | Op | Output | Shape | Params | MACs | RF, jump | Memory |\n"
        "|---|---|---|---|---|---|---|---|"
    )

    def __init__(self, analysis: Analysis, depth: int | None) -> None:
        self.a, self.depth, self.style = analysis, depth, _Style(True)
        self.rows: list[str] = []

    def row(self, *cells) -> None:
        self.rows.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")

    def layer(self, node: Node) -> None:
        f = self.a.facts(node)
        st = self.style
        steps = sorted(f.shape, key=lambda step: not isinstance(step, Window))
        shape = "; ".join(
            step_text(s, st)[1]
            for s in steps
            if not (isinstance(s, Note) and s.text == "same shape as the input")
        )
        params = st.count(f.params) if f.params else ""
        macs = st.count(f.macs) if f.macs else ""
        if f.memory.how in ("in place", "identity", "view"):
            mem = f.memory.how
        else:
            mem = short_bytes(f.memory.new_bytes)
        name = node.id + (" (train only)" if node.train_only else "")
        op = layer_call(node) if node.op != "input" else "input"
        self.row(
            name, f"`{op}`", fmt_shape(node.out_shape), shape, params, macs, rf_short(f.rf), mem
        )

    def scope(self, scope: Scope, level: int) -> None:
        if not _visible(scope):
            return
        if not _counts_as_level(scope):
            for child in scope.children:
                self.child(child, level)
            return
        t = self.a.totals(scope)
        shape = fmt_shape(tuple(int(d.value) for d in scope.out_shape))
        name = scope.id or scope.name
        cells = (
            f"{t.params:,}",
            f"{t.macs:,}",
            rf_short(self.a.output_rf(scope)),
            short_bytes(t.new_bytes),
        )
        call = f"`{block_call(scope, self.a.net.blocks)}`"
        if self.depth is not None and level >= self.depth:
            self.row(f"**{name}**", call, shape, "", *cells)
            return
        self.row(f"**{name}**", call, "", "", "", "", "", "")
        for child in scope.children:
            self.child(child, level + 1)
        self.row(f"**= {name}**", "total", shape, "", *cells)

    def child(self, child, level: int) -> None:
        if isinstance(child, Scope):
            self.scope(child, level)
        else:
            self.layer(child)


def _md_cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _markdown(analysis: Analysis, depth: int | None, targets: list | None, estimate=None) -> str:
    net = analysis.net
    md = _Markdown(analysis, depth)
    for item in targets if targets is not None else net.root.children:
        md.child(item, 0)
    lines = [
        f"# {net.name}: the arithmetic, layer by layer",
        "",
        conventions(net),
        "",
        md.HEADER,
        *md.rows,
        "",
    ]
    if targets is None:
        a = analysis
        state = (
            f" + optimizer state ({a.optimizer}) {short_bytes(a.optimizer_bytes)}"
            if a.optimizer
            else ""
        )
        lines += [
            "## Totals",
            "",
            f"- **Parameters:** {net.total_params:,} (BatchNorm buffers: {net.total_buffers:,})",
            f"- **MACs:** {net.total_macs:,}",
            f"- **Receptive field at the output:** {rf_short(a.output_rf())}"
            + (f", {beyond}" if (beyond := rf_beyond_input(a)) else ""),
            f"- **Forward activations:** {human_bytes(a.forward_bytes)}",
            f"- **Peak at inference:** {human_bytes(a.peak_bytes)}",
            (
                f"- **Training estimate (activations):** {human_bytes(a.train_bytes)}: "
                + training_breakdown(a).replace(" x ", " × ")
            ),
            (
                f"- **Parameter memory:** weights {short_bytes(a.param_bytes)} + gradients "
                f"{short_bytes(a.grad_bytes)}{state}"
            ),
            "",
        ]
    if estimate is not None:
        from .summary import estimate_text

        lines += ["## Memory and FLOPs of a step", "", "```", estimate_text(estimate), "```", ""]
    return "\n".join(lines)


# ---- API and command -------------------------------------------------------------------------


def explain(
    net: Network,
    layer: str | None = None,
    depth: int | None = None,
    markdown: bool = False,
    analysis: Analysis | None = None,
    estimate=None,
) -> str:
    """The per-layer arithmetic of `net` as text (or Markdown); `layer` narrows it to one name.
    `estimate` (a summary.Estimate, or the options of one as a dict) adds what each layer
    saves for backward, its FLOPs in a training step, and the memory by category."""
    if depth is not None and depth < 0:
        raise NetdslError(f"--depth must be 0 or more, got {depth}")
    analysis = analysis or analyze(net)
    targets = find(net, layer) if layer else None
    if isinstance(estimate, dict):
        from .summary import Estimate

        estimate = Estimate(net, estimate)
    return (_markdown if markdown else _text)(analysis, depth, targets, estimate)


def cmd_explain(args) -> int:
    request = estimate_request(args)
    net = load_network(args, args.file)
    text = explain(
        net, layer=args.layer, depth=args.depth, markdown=args.markdown, estimate=request
    )
    print(text, end="")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "explain",
        help="the arithmetic of every layer: shape derivations, factored parameter "
        "and MAC counts, receptive field, activation memory",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument(
        "--layer",
        metavar="NAME",
        help="explain one layer or block (its id or a suffix of it, e.g. conv1 or stage2)",
    )
    p.add_argument(
        "--depth",
        type=int,
        metavar="N",
        help="show N levels of blocks; deeper blocks become one line with totals",
    )
    p.add_argument("--markdown", action="store_true", help="a Markdown handout")
    add_common(p)
    add_estimate_options(p)
    p.set_defaults(func=cmd_explain)
