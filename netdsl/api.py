"""The notebook API: `netdsl.load(...)` and the object it returns.

    >>> net = netdsl.load("resnet50")          # a zoo name, a path, or source text
    >>> print(net.summary()); print(net.explain(layer="conv1"))
    >>> model = net.to_torch()                 # an nn.Module, no file written
    >>> net                                    # in Jupyter: a table and a diagram

Everything delegates to the modules that do the work (summary, explain,
render, emit); this one only adapts them to interactive use. Frameworks are
imported when a method needs them, never by `import netdsl`.
"""

from __future__ import annotations

import html
import itertools
import linecache
import os
import sys
import types

from .errors import NetdslError
from .ir import Network, Node, Scope

_TEXT_STARTS = ("network", "block", "use", "defaults", "#", "train")
_modules = itertools.count()


def load(
    source,
    params: dict | None = None,
    network: str | None = None,
    input_shape: tuple | str | None = None,
) -> Model:
    """Compile a path, a zoo network name (`"resnet50"`) or netdsl source text.

    `params` overrides network parameters (`{"classes": 10}`), as `--param`
    does on the command line; `network` picks one network of a file;
    `input_shape` (`(3, 64, 64)` or `"3x64x64"`) replaces the first input's
    shape, as `--input` does.
    """
    from .compiler import compile_file, compile_text, resolve

    options = {
        "params": _params(params or {}),
        "network": network,
        "input_shape": _shape(input_shape),
    }
    if isinstance(source, os.PathLike):
        return Model(compile_file(source, **options))
    if not isinstance(source, str):
        raise NetdslError(
            f"netdsl.load takes a path, a zoo name or source text, not {type(source).__name__}"
        )
    if "\n" not in source and os.path.exists(source):
        return Model(compile_file(source, **options))
    if "\n" in source or source.lstrip().startswith(_TEXT_STARTS):
        return Model(compile_text(source, "<text>", **options))
    return Model(compile_file(resolve(source), **options))


def _shape(shape) -> tuple | None:
    """`(3, 64, 64)`, `[3, 64, 64]`, `"3x64x64"` or `784` -> a tuple of ints (or None)."""
    if shape is None:
        return None
    items = (shape,) if isinstance(shape, int) else shape
    if isinstance(shape, str):
        parts = shape.lower().replace("×", "x").split("x")
        items = [int(p) if p.strip().isdigit() else None for p in parts]
    try:
        dims = tuple(items)
    except TypeError:
        dims = ()
    if len(dims) not in (1, 3) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims
    ):
        raise NetdslError(
            f"input_shape must be (C, H, W) or (features,) of positive integers, got {shape!r}"
        )
    return dims


def _params(params: dict) -> dict:
    """Python values -> the traced values the elaborator takes (what --param produces)."""
    from .compiler import parse_param
    from .symbolic import Num, Tup

    out = {}
    for name, value in params.items():
        if isinstance(value, (bool, int, float)):
            out[name] = Num(value)
        elif isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value):
            out[name] = Tup(Num(v) for v in value)
        else:
            out[name] = parse_param(f"{name}={value}")[1]
    return out


class Model:
    """A compiled netdsl network with notebook conveniences.

    `network` is the elaborated IR (netdsl.ir.Network) for anything not
    wrapped here. `display_depth` is the block depth Jupyter draws (None: all).
    """

    display_depth: int | None = 1

    def __init__(self, network: Network) -> None:
        self.network = network

    # -- facts ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.network.name

    @property
    def params(self) -> int:
        return self.network.total_params

    @property
    def macs(self) -> int:
        return self.network.total_macs

    def summary(self, depth: int | None = None) -> str:
        """The per-layer table of `netdsl summary`."""
        from .summary import summary_table

        return summary_table(self.network, depth)

    def summary_dict(self) -> dict:
        """The object of `netdsl summary --json`."""
        from .summary import summary_dict

        return summary_dict(self.network)

    def explain(
        self, layer: str | None = None, depth: int | None = None, markdown: bool = False
    ) -> str:
        """The arithmetic of every layer (see `netdsl explain`)."""
        from .explain import explain

        return explain(self.network, layer=layer, depth=depth, markdown=markdown)

    def analysis(self):
        """The numbers behind explain as data (netdsl.analysis.Analysis)."""
        from .analysis import analyze

        return analyze(self.network)

    # -- diagrams ------------------------------------------------------------------------

    def dot(self, depth: int | None = None) -> str:
        """The Graphviz DOT text of the diagram."""
        from .render import to_dot

        return to_dot(self.network, depth)

    def svg(self, depth: int | None = None) -> str:
        """The diagram as SVG text (needs Graphviz's `dot`)."""
        from .render import run_dot, to_dot

        return run_dot(to_dot(self.network, depth), "svg").decode("utf-8")

    def render(self, path: str | os.PathLike, depth: int | None = None) -> str:
        """Write the diagram to a .svg, .png, .pdf or .dot file; returns the path."""
        from .render import render

        return render(self.network, os.fspath(path), depth)

    # -- code ------------------------------------------------------------------------------

    def source(self, target: str = "torch") -> str:
        """The generated model file for `target` ("torch" or "keras"), as text."""
        from .emit import get_emitter

        return get_emitter(target).emit_model(self.network)

    def to_torch(self, **params):
        """A PyTorch nn.Module built from the generated source, without writing a file."""
        return self._build("torch", params)

    def to_keras(self, **params):
        """A keras.Model built from the generated source, without writing a file."""
        return self._build("keras", params)

    def module(self, target: str = "torch") -> types.ModuleType:
        """The generated source executed as a fresh, importable module."""
        code = self.source(target)
        name = f"netdsl_generated_{target}_{_identifier(self.name)}_{next(_modules)}"
        filename = f"<netdsl {target}: {self.name}>"
        # tracebacks and inspect.getsource show the generated lines
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        module = types.ModuleType(name, f"netdsl-generated {target} model for {self.name}")
        module.__file__ = filename
        sys.modules[name] = module  # so classes pickle and torch.save works
        try:
            exec(compile(code, filename, "exec"), module.__dict__)  # noqa: S102 - our own output
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return module

    def _build(self, target: str, params: dict):
        module = self.module(target)
        build = getattr(module, "build_model", None)
        if build is None:
            raise NetdslError(f"the generated {target} source defines no build_model()")
        return build(**params)

    # -- display ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"<netdsl.Model {self.name}: {self.params:,} params, {self.macs:,} MACs, "
            f"{len(self.network.nodes())} nodes>"
        )

    def _repr_html_(self) -> str:
        """The summary table beside the interactive diagram. The diagram is its own page
        in a sandboxed <iframe srcdoc>: its scripts, styles and element ids cannot clash
        with the notebook's or another model's, and it needs no server or extension."""
        from .web.diagram import diagram_html

        page = diagram_html(self.network, depth=self.display_depth)
        return (
            '<div class="netdsl-model" style="display:flex;gap:12px;align-items:flex-start;'
            'flex-wrap:wrap">'
            '<div style="flex:0 1 auto;max-width:45%;max-height:640px;overflow:auto">'
            + html_table(self.network, self.display_depth, open_rows=True)
            + "</div>"
            f'<iframe title="{html.escape(self.name)} diagram" sandbox="allow-scripts allow-downloads"'
            ' style="flex:1 1 420px;min-width:320px;height:640px;border:1px solid #d5dde8"'
            f' srcdoc="{html.escape(page, quote=True)}"></iframe>'
            "</div>"
        )

    def _repr_svg_(self) -> str | None:
        from .render import dot_program

        if dot_program() is None:
            return None
        try:
            return self.svg(self.display_depth)
        except NetdslError:
            return None


def _identifier(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


# ---- the HTML table ---------------------------------------------------------------------------


def _rows(scope: Scope, depth: int | None, blocks: dict, level: int = 0):
    from .calls import block_call

    for child in scope.children:
        if isinstance(child, Node):
            if child.op != "input":
                yield child.id, child.op, child.out_shape, child.params, child.macs
        elif not any(True for _ in child.nodes()):
            continue
        elif child.kind in ("block", "repeat", "group") and depth is not None and level >= depth:
            shape = tuple(int(d.value) for d in child.out_shape)
            yield child.id, block_call(child, blocks), shape, child.params, child.macs
        else:
            counts = child.kind in ("block", "repeat", "group")
            yield from _rows(child, depth, blocks, level + 1 if counts else level)


def html_table(net: Network, depth: int | None = None, open_rows: bool = False) -> str:
    """A compact HTML summary: totals, then the layer table in a <details> element (open
    with `open_rows`)."""
    from .layers import fmt_shape

    e = html.escape
    inputs = ", ".join(f"{e(k)} {fmt_shape(v.out_shape)}" for k, v in net.inputs.items())
    outputs = ", ".join(
        f"{e(o.name)} {fmt_shape(o.node.out_shape)}" + (" (train only)" if o.train_only else "")
        for o in net.outputs
    )
    cells = []
    for name, op, shape, params, macs in _rows(net.root, depth, net.blocks):
        cells.append(
            f'<tr><td style="text-align:left"><code>{e(name)}</code></td>'
            f'<td style="text-align:left">{e(op)}</td><td>{fmt_shape(shape)}</td>'
            f"<td>{params:,}</td><td>{macs:,}</td></tr>"
        )
    return (
        '<div class="netdsl-summary">'
        f"<p><b>{e(net.name)}</b> &mdash; {net.total_params:,} params, {net.total_macs:,} MACs"
        f"<br/>inputs: {inputs}; outputs: {outputs}</p>"
        f"<details{' open' if open_rows else ''}><summary>layers</summary>"
        '<table style="font-size:smaller"><thead><tr><th>Layer</th><th>Op</th>'
        "<th>Output shape</th><th>Params</th><th>MACs</th></tr></thead><tbody>"
        + "".join(cells)
        + "</tbody></table></details></div>"
    )
