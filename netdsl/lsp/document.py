"""One open file, compiled: its errors and warnings, its networks, the shape each line of a
body produces, and the answers an editor asks for (hover, completion, symbols, rename).

Everything here is in netdsl's terms: spans with 1-based lines and 1-based character
columns, Markdown strings, plain records. server.py writes them in the editor protocol's.
A file is compiled whole on every change (parse, load its `use`s, elaborate every network):
a 515-node ResNet-152 takes about 50 ms, less than the time between keystrokes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ..analysis import analyze, layer_call
from ..calls import block_call
from ..compiler import deep_stack, gc_paused
from ..elaborate import Elaborator
from ..errors import NetdslError, SourceRegistry, Span, source_lines
from ..ir import Network, Node, Scope
from ..layers import CATALOGUE, MERGES, REQUIRED, fmt_shape, layer_names, lookup
from ..lint import lint
from ..loader import Loader
from ..resources import STDLIB_DIR, zoo_dir
from .index import Definition, Index, Occurrence

# words the grammar reserves: no block or parameter may take them
KEYWORDS = frozenset(
    "use defaults block network def input output if then else and or not as in id true false "
    "for train tokens of".split()
)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class Related:
    """A place a diagnostic points to besides its own: a hint, a note, the error itself."""

    path: str  # the real path of the file
    span: Span
    message: str


@dataclass
class Problem:
    """An error or warning of this document, placed in it."""

    severity: str  # "error" | "warning"
    message: str
    span: Span
    code: str | None = None
    related: list[Related] = field(default_factory=list)


@dataclass
class Completion:
    label: str
    kind: str  # "layer" | "block" | "function" | "parameter" | "value" | "module" | "argument"
    detail: str = ""
    insert: str | None = None
    documentation: str = ""


@dataclass
class Symbol:
    name: str
    kind: str  # "network" | "block" | "function" | "parameter" | "value"
    span: Span
    selection: Span
    detail: str = ""
    children: list = field(default_factory=list)


class RenameRefused(Exception):
    """A rename the editor asked for that would not be a rename (a layer name, a name taken)."""


class EditorLoader(Loader):
    """A Loader that reads open documents from the editor, not the disk, and remembers which
    file each `use` brought in."""

    def __init__(self, overlay: dict[str, str] | None = None) -> None:
        super().__init__()
        self.overlay = overlay or {}  # real path -> text of an open document
        self.use_targets: dict[int, object] = {}  # id(ast.Use) -> ModuleEnv

    def load_file(self, path, display=None):
        key = str(Path(path).resolve())
        text = self.overlay.get(key)
        if text is None or key in self._cache:
            return super().load_file(path, display)
        return self._load(display or str(path), text, key)

    def _import(self, env, use) -> None:
        super()._import(env, use)
        target = str(self._resolve(env.path, use, env.location).resolve())
        self.use_targets[id(use)] = self._cache.get(target)

    def real_paths(self) -> dict[str, str]:
        """How messages name each loaded file -> where it is."""
        return {env.path: env.location or env.path for env in self._cache.values()}


class Document:
    """A compiled snapshot of one document's text."""

    def __init__(
        self,
        path: str,
        text: str,
        overlay: dict[str, str] | None = None,
        previous: Document | None = None,
    ) -> None:
        self.path = path  # the real path (or the editor's name for an unsaved file)
        self.text = text
        self.lines = source_lines(text)
        self.errors: list[NetdslError] = []
        self.warnings: list = []
        self.networks: list[Network] = []
        self.index: Index | None = None
        self.files: set[str] = set()  # real paths of every file loaded for it
        self._paths: dict[str, str] = {}
        self.crash: str | None = None
        self._compile(overlay)
        # while the text does not parse, completion reads the last index that did
        self.completion_index = self.index or (previous.completion_index if previous else None)

    # ---- compiling --------------------------------------------------------------------------

    def _compile(self, overlay) -> None:
        loader = EditorLoader({k: v for k, v in (overlay or {}).items() if k != self.path})
        try:
            with deep_stack(), gc_paused():
                try:
                    menv = loader.load_text(self.text, self.path)
                except NetdslError as e:
                    self.errors.append(e)
                    self.index = self._index_without_the_line_of(e, overlay)
                    return
                finally:
                    self._paths = loader.real_paths()
                    self.files = set(self._paths.values())
                self.index = Index(menv, self.text, loader.use_targets)
                for ndef in menv.module.networks:
                    try:
                        net = Elaborator().network(menv, ndef.name)
                    except NetdslError as e:
                        self.errors.append(e)
                        continue
                    self.networks.append(net)
                    self.warnings.extend(lint(net, menv))
        except NetdslError as e:  # deep_stack: nested too deeply
            self.errors.append(e)
        except Exception as e:  # a bug in netdsl: said in the editor, not a dead server
            self.crash = f"netdsl internal error: {type(e).__name__}: {e} (a bug in netdsl)"

    def _index_without_the_line_of(self, error: NetdslError, overlay) -> Index | None:
        """While a line is being typed the file does not parse (`stem(64) +`): index the
        text with that line blanked (and the next one to fail, twice more), so hover,
        completion and go-to-definition keep working on the other lines."""
        lines = list(self.lines)
        for _ in range(3):
            if not self.here(error.span) or not 0 < error.span.line <= len(lines):
                break
            line = error.span.line
            while line > 1 and not lines[line - 1].strip():  # an error at the end of the file
                line -= 1
            lines[line - 1] = ""
            loader = EditorLoader({k: v for k, v in (overlay or {}).items() if k != self.path})
            text = "\n".join(lines)
            try:
                menv = loader.load_text(text, self.path)
            except NetdslError as e:
                error = e
                continue
            finally:
                SourceRegistry.add(self.path, self.text)  # messages quote the real text
            return Index(menv, text, loader.use_targets)
        return None

    def real_path(self, file: str) -> str:
        """Where the file that messages call `file` is."""
        if file == self.path or file in self._paths:
            return self._paths.get(file, file)
        for prefix, folder in (("netdsl/stdlib/", STDLIB_DIR), ("architectures/", zoo_dir())):
            if file.startswith(prefix):
                return str(folder / file.removeprefix(prefix))
        return str(Path(file).resolve())

    def here(self, span: Span | None) -> bool:
        return span is not None and span.file == self.path

    # ---- diagnostics ------------------------------------------------------------------------

    def problems(self) -> list[Problem]:
        out = [self._problem(e) for e in self.errors]
        if self.crash is not None:
            out.append(Problem("error", self.crash, Span(self.path, 1, 1)))
        seen = set()
        for warning in self.warnings:
            key = (warning.code, warning.message, warning.span)
            if key in seen or not self.here(warning.span):
                continue
            seen.add(key)
            related = []
            if warning.hint:
                related.append(Related(self.path, warning.span, f"hint: {warning.hint}"))
            out.append(Problem("warning", warning.message, warning.span, warning.code, related))
        return out

    def _problem(self, error: NetdslError) -> Problem:
        """An error placed in this document: where it is, or, for an error in a file this
        one uses, at the outermost call in this document that led to it."""
        related: list[Related] = []
        span = error.span
        if not self.here(span):
            calls = [n.span for n in error.notes if self.here(n.span)]
            if span is not None:
                related.append(Related(self.real_path(span.file), span, error.message))
            span = calls[-1] if calls else self._first_use() or Span(self.path, 1, 1)
        where = error.span or span
        if error.hint:
            related.append(Related(self.real_path(where.file), where, f"hint: {error.hint}"))
        for note in error.notes:
            at = note.span or where
            related.append(Related(self.real_path(at.file), at, note.text))
        return Problem("error", error.message, span, None, related)

    def _first_use(self) -> Span | None:
        for line, text in enumerate(self.lines, 1):
            if text.startswith("use"):
                return Span(self.path, line, 1, line, len(text) + 1)
        return None

    # ---- shapes -----------------------------------------------------------------------------

    @cached_property
    def items(self) -> dict:
        """(line, column, end line, end column) -> (Node or Scope, Network): the first
        instance of each layer, block call and repeat written in this document."""
        found: dict = {}
        for net in self.networks:
            for item in net.root.walk():
                span = item.span
                if self.here(span):
                    found.setdefault(
                        (span.line, span.column, span.end_line, span.end_column), (item, net)
                    )
        return found

    @cached_property
    def line_shapes(self) -> dict[int, str]:
        """Line -> the output shape of what ends last on it (the outermost item, on a tie)."""
        best: dict[int, tuple] = {}
        for (_, _, end_line, end_column), (item, _) in self.items.items():
            shape = _shape(item)
            if shape is None or end_line is None:
                continue
            line, column = end_line, end_column
            if column == 1 and line > 1:  # the span ends with the newline of the line before
                line, column = line - 1, len(self.lines[line - 2]) + 1
            if line not in best or column > best[line][0]:
                best[line] = (column, shape)
        return {line: shape for line, (_, shape) in best.items()}

    def inlay_hints(self, first: int, last: int) -> list[tuple[int, int, str]]:
        """(line, column after the line's last character, label) for lines first..last."""
        hints = []
        for line, shape in sorted(self.line_shapes.items()):
            if first <= line <= last and line <= len(self.lines):
                hints.append((line, len(self.lines[line - 1]) + 1, shape))
        return hints

    def _analysis(self, net: Network):
        cache = self.__dict__.setdefault("_analyses", {})
        if id(net) not in cache:
            cache[id(net)] = analyze(net)
        return cache[id(net)]

    def item_at(self, line: int, column: int, kinds=(Node, Scope)):
        """The innermost layer or block call whose text covers the position."""
        best = None
        for (l0, c0, l1, c1), (item, net) in self.items.items():
            if not isinstance(item, kinds) or l1 is None:
                continue
            if (l0, c0) <= (line, column) <= (l1, c1):
                size = (l1 - l0, c1 - c0 if l1 == l0 else c1)
                if best is None or size < best[0]:
                    best = (size, item, net)
        return (best[1], best[2]) if best else None

    def _item_starting(self, span: Span, kinds=(Node, Scope)):
        for (l0, c0, _, _), (item, net) in self.items.items():
            if (l0, c0) == (span.line, span.column) and isinstance(item, kinds):
                return item, net
        return None

    # ---- hover ------------------------------------------------------------------------------

    def hover(self, line: int, column: int) -> str | None:
        occurrence = self.index.at(line, column) if self.index else None
        if occurrence is not None:
            text = self._hover_occurrence(occurrence)
            if text:
                return text
        found = self.item_at(line, column)
        if found is None:
            return None
        item, net = found
        return self._layer_hover(item, net) if isinstance(item, Node) else self._instance_text(item)

    def _hover_occurrence(self, occ: Occurrence) -> str | None:
        definition = occ.definition
        if occ.kind == "layer":
            found = self._item_starting(occ.span, Node)
            return self._layer_hover(*found) if found else _layer_doc(occ.name)
        if occ.kind == "argument":
            return _argument_doc(occ.layer, occ.name)
        if definition is None:
            return None
        if occ.kind == "module":
            module = definition.node
            names = ", ".join(f"`{b.name}`" for b in (*module.blocks, *module.functions))
            return f"`use {occ.name}`: {definition.path}" + (
                f"\n\ndefines {names}" if names else ""
            )
        if occ.kind in ("block", "function"):
            text = _code(_signature(definition)) + _doc_of(definition)
            if occ.kind == "block":
                found = (
                    None if occ.defines else self._item_starting(occ.span, Scope)
                ) or self._first_instance(definition.name)
                if found is not None:
                    text += "\n\n---\n\n" + self._instance_text(found[0])
            return text + f"\n\n{_where(definition)}"
        if occ.kind == "network":
            net = next((n for n in self.networks if n.name == occ.name), None)
            text = _code(_signature(definition)) + _doc_of(definition)
            if net is not None:
                text += (
                    f"\n\n---\n\noutput {fmt_shape(net.main_output.node.out_shape)} · "
                    f"{net.total_params:,} params · {net.total_macs:,} MACs"
                )
            return text
        if occ.kind == "parameter":
            return self._parameter_hover(occ)
        if occ.kind == "value":
            shape = self.line_shapes.get(_last_line_of(definition.node))
            text = f"`{occ.name}`: a named value of {definition.owner}"
            return text + (f" · {shape}" if shape else "")
        return None

    def _parameter_hover(self, occ: Occurrence) -> str:
        definition = occ.definition
        default = definition.node.default
        head = f"`{occ.name}`: parameter of {definition.owner}"
        if default is not None:
            head += f" (default `{_source_text(default.span)}`)"
        kind, owner = definition.owner.split(" ", 1)
        value = None
        if kind == "network":
            net = next((n for n in self.networks if n.name == owner), None)
            if net is not None and occ.name in net.params:
                value = net.params[occ.name]
        elif kind == "block":
            call = None if occ.defines else self.item_at(occ.span.line, occ.span.column, Scope)
            if call is None or call[0].block != owner:
                call = self._first_instance(owner)
            if call is not None and occ.name in call[0].args:
                value = call[0].args[occ.name]
                head += f"\n\n`{occ.name}` = `{_value_text(value)}` in `{block_call(call[0], self._blocks())}`"
                return head
        if value is not None:
            head += f"\n\n`{occ.name}` = `{_value_text(value)}`"
        return head

    def _blocks(self) -> dict:
        """Every block signature the file's networks use, for printing calls."""
        return {name: sig for net in self.networks for name, sig in net.blocks.items()}

    def _first_instance(self, block: str):
        for net in self.networks:
            for item in net.root.walk():
                if isinstance(item, Scope) and item.kind == "block" and item.block == block:
                    return item, net
        return None

    def _instance_text(self, scope: Scope) -> str:
        shape = _shape(scope)
        head = f"`{block_call(scope, self._blocks())}`" + (f" → {shape}" if shape else "")
        return f"{head} · {scope.params:,} params · {scope.macs:,} MACs"

    def _layer_hover(self, node: Node, net: Network) -> str:
        from ..explain import rf_short

        if node.op not in CATALOGUE and node.op not in MERGES:  # an input
            return f"**{node.op} {fmt_shape(node.out_shape)}**"
        facts = self._analysis(net).facts(node)
        inputs = " + ".join(fmt_shape(tuple(int(d.value) for d in s)) for s in node.in_shapes)
        lines = [
            _code(layer_call(node)),
            f"**output {fmt_shape(node.out_shape)}**" + (f" (input {inputs})" if inputs else ""),
            f"params {node.params:,} · MACs {node.macs:,} · receptive field {rf_short(facts.rf)}",
        ]
        spec = CATALOGUE.get(node.op)
        if spec is not None:
            lines.append(spec.doc)
        return "\n\n".join(lines)

    # ---- go to definition, references, rename ------------------------------------------------

    def definition(self, line: int, column: int) -> Definition | None:
        occurrence = self.index.at(line, column) if self.index else None
        return occurrence.definition if occurrence else None

    def rename(self, line: int, column: int, new: str, others: list[Document]) -> dict:
        """{real path: [spans to replace with `new`]}; RenameRefused says why not."""
        occurrence = self.index.at(line, column) if self.index else None
        if occurrence is None or occurrence.kind in ("layer", "argument"):
            what = f"'{occurrence.name}' is a layer" if occurrence else "nothing here"
            raise RenameRefused(f"{what}: only blocks and parameters can be renamed")
        definition = occurrence.definition
        if definition is None or occurrence.kind not in ("block", "parameter"):
            raise RenameRefused(f"'{occurrence.name}': only blocks and parameters can be renamed")
        if not _IDENTIFIER.match(new) or new in KEYWORDS:
            raise RenameRefused(f"'{new}' is not a valid name")
        if lookup(new) is not None or new in MERGES:
            raise RenameRefused(f"'{new}' is a layer of the catalogue")
        documents = {d.path: d for d in (self, *others) if d.index is not None}
        owner = documents.get(definition.path)
        if owner is None:
            where = (
                "the standard library"
                if Path(definition.path).parent == STDLIB_DIR
                else (f"{definition.path}, which is not open")
            )
            raise RenameRefused(f"'{definition.name}' is defined in {where}")
        if new == definition.name:
            return {}
        if definition.kind == "block":
            taken = owner.index.menv.lookup_block(new) or owner.index.menv.lookup_function(new)
            if taken is not None or new in owner.index.definitions:
                raise RenameRefused(f"'{new}' is already defined")
        else:
            owner_node = owner.index.definitions.get(definition.owner.split(" ", 1)[1])
            names = {
                o.name
                for o in owner.index.occurrences
                if o.defines and o.definition.owner == definition.owner
            }
            if new in names or owner_node is None:
                raise RenameRefused(f"'{new}' is already a name in {definition.owner}")
        edits: dict[str, list[Span]] = {}
        for document in documents.values():
            spans = [o.span for o in document.index.references(definition)]
            if spans:
                edits[document.path] = spans
        return edits

    # ---- completion -------------------------------------------------------------------------

    def completions(self, line: int, column: int, typed_space: bool = False) -> list[Completion]:
        """What may be written at the cursor. A space the editor reports as it is typed asks
        only where a space leads somewhere definite: a layer's keywords, a `use`'s modules."""
        prefix = self.lines[line - 1][: column - 1] if 0 < line <= len(self.lines) else ""
        if re.match(r"^\s*use\s+\w*$", prefix):
            return [
                Completion(p.stem, "module", str(p), documentation=_first_comment(p))
                for p in sorted(STDLIB_DIR.glob("*.net"))
            ]
        arguments = _arguments_context(prefix)
        if arguments is not None:
            return self._argument_completions(*arguments)
        return [] if typed_space else self._name_completions(line)

    def _argument_completions(self, callee: str, written: set[str]) -> list[Completion]:
        found = lookup(callee)
        if found is not None:
            spec, presets = found
            return [
                Completion(f"{a.name}=", "argument", _arg_detail(a), documentation=a.doc)
                for a in spec.args
                if a.name not in written and a.name not in presets
            ]
        index = self.completion_index
        definition = index.lookup_name(callee) if index else None
        if definition is not None and definition.kind == "block":
            return [
                Completion(
                    f"{p.name}=",
                    "parameter",
                    f"default {_source_text(p.default.span)}" if p.default else "required",
                )
                for p in definition.node.params
                if p.name not in written
            ]
        return []

    def _name_completions(self, line: int) -> list[Completion]:
        out = []
        index = self.completion_index
        if index is not None:
            for definition in index.visible_names(line):
                out.append(Completion(definition.name, definition.kind, definition.owner))
            blocks = {**{n: None for n in index.menv.imported}, **index.menv.own}
            for name in blocks:
                definition = index.lookup_name(name)
                out.append(
                    Completion(
                        name,
                        "block",
                        _signature(definition),
                        f"{name}($0)",
                        _doc_of(definition).strip(),
                    )
                )
            for name in index.menv.functions:
                definition = index.lookup_name(name)
                out.append(Completion(name, "function", _signature(definition), f"{name}($0)"))
        for name in layer_names():
            spec, presets = lookup(name)
            out.append(
                Completion(name, "layer", _layer_usage(name, spec, presets), documentation=spec.doc)
            )
        for name, merge in MERGES.items():
            out.append(
                Completion(name, "layer", f"{name}(branch, branch, ...)", f"{name}($0)", merge.doc)
            )
        return out

    # ---- outline ----------------------------------------------------------------------------

    def symbols(self) -> list[Symbol]:
        if self.index is None:
            return []
        out = []
        module = self.index.menv.module
        items = sorted(
            (*module.networks, *module.blocks, *module.functions), key=lambda i: i.span.line
        )
        for item in items:
            definition = self.index.definitions[item.name]
            detail = _signature(definition)
            if definition.kind == "network":
                net = next((n for n in self.networks if n.name == item.name), None)
                if net is not None:
                    detail = f"→ {fmt_shape(net.main_output.node.out_shape)}"
            label = f"{definition.kind} {item.name}"
            children = [
                Symbol(o.name, o.definition.kind, o.definition.node.span, o.span)
                for o in self.index.occurrences
                if o.defines and o.definition.owner == label
            ]
            span = _whole_lines(item.span, self.lines)
            out.append(Symbol(item.name, definition.kind, span, item.name_span, detail, children))
        return out


# ---- helpers ----------------------------------------------------------------------------------


def _shape(item) -> str | None:
    node = item if isinstance(item, Node) else item.output
    return fmt_shape(node.out_shape) if node is not None else None


def _code(text: str) -> str:
    return f"```netdsl\n{text}\n```"


def _source_text(span: Span) -> str:
    """The DSL text of a span, from the registry of texts read."""
    text = SourceRegistry.text(span.file)
    if text is None:
        return ""
    lines = source_lines(text)
    end_line, end_column = span.end_line or span.line, span.end_column or span.column + 1
    if end_line == span.line:
        return lines[span.line - 1][span.column - 1 : end_column - 1]
    parts = [lines[span.line - 1][span.column - 1 :]]
    parts += lines[span.line : end_line - 1]
    parts.append(lines[end_line - 1][: end_column - 1])
    return " ".join(p.strip() for p in parts)


def _signature(definition: Definition) -> str:
    node = definition.node
    params = ", ".join(
        p.name + (f"={_source_text(p.default.span)}" if p.default is not None else "")
        for p in node.params
    )
    keyword = {"function": "def"}.get(definition.kind, definition.kind)
    return f"{keyword} {node.name}({params})" if node.params else f"{keyword} {node.name}"


def _doc_of(definition: Definition) -> str:
    text = SourceRegistry.text(definition.node.span.file)
    if text is None:
        return ""
    lines = source_lines(text)
    out: list[str] = []
    row = definition.node.span.line - 2
    while 0 <= row < len(lines) and lines[row].lstrip().startswith("#"):
        out.append(lines[row].lstrip()[1:].strip())
        row -= 1
    return "\n\n" + "\n".join(reversed(out)) if out else ""


def _where(definition: Definition) -> str:
    return f"defined in {definition.span.file}:{definition.span.line}"


def _value_text(value) -> str:
    if isinstance(value, Node):
        return value.name or value.op
    called = getattr(value, "called_as", None)
    if called is not None:
        return called
    raw = getattr(value, "value", value)
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, tuple):
        return "(" + ", ".join(_value_text(v) for v in raw) + ")"
    if isinstance(raw, float):
        return f"{raw:g}"
    if isinstance(raw, (int, str)):
        return str(raw)
    return "a " + type(value).__name__.removesuffix("Frag").lower()


def _default_text(default) -> str:
    if isinstance(default, bool):
        return "true" if default else "false"
    if default is None:
        return "none"
    if isinstance(default, tuple):
        return "x".join(str(d) for d in default)
    return str(default)


def _arg_detail(arg) -> str:
    if arg.default is REQUIRED:
        return "required"
    return f"default {_default_text(arg.default)}"


def _layer_usage(shown: str, spec, presets: dict) -> str:
    parts = [shown]
    for name in spec.positional:
        if name not in presets:
            parts.append(name if spec.arg(name).default is REQUIRED else f"[{name}]")
    for arg in spec.args:
        if arg.name not in spec.positional and arg.name not in presets:
            parts.append(
                f"{arg.name}={_default_text(arg.default)}"
                if arg.default is not REQUIRED
                else f"{arg.name}="
            )
    return " ".join(parts)


def _layer_doc(name: str) -> str | None:
    found = lookup(name)
    if found is None:
        merge = MERGES.get(name)
        return f"**{name}**: {merge.doc}" if merge else None
    spec, presets = found
    lines = [_code(_layer_usage(name, spec, presets)), spec.doc, ""]
    for arg in spec.args:
        if arg.name not in presets:
            lines.append(f"- `{arg.name}` ({_arg_detail(arg)}): {arg.doc}")
    return "\n".join(lines)


def _argument_doc(layer: str, name: str) -> str | None:
    found = lookup(layer)
    if found is None:
        return None
    arg = found[0].arg(name)
    if arg is None:
        return None
    return f"`{name}` of {found[0].name} ({_arg_detail(arg)}): {arg.doc}"


def _first_comment(path: Path) -> str:
    try:
        first = path.read_text(encoding="utf-8").split("\n", 1)[0]
    except OSError:
        return ""
    return first.lstrip("# ").strip()


_CALL_OPEN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\($")
_KEYWORDS_WRITTEN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)")


def _arguments_context(prefix: str) -> tuple[str, set[str]] | None:
    """(callee, keywords already written) when the cursor is among a call's arguments: in
    `conv 64 k=3 |` (a layer's space form) or in `stage(128, |` (an open parenthesis)."""
    depth = 0
    for i in range(len(prefix) - 1, -1, -1):
        char = prefix[i]
        if char in ")]":
            depth += 1
        elif char in "([":
            if depth == 0:
                match = _CALL_OPEN.search(prefix[: i + 1]) if char == "(" else None
                if match is None:
                    break
                inside = prefix[i + 1 :]
                return match.group(1), set(_KEYWORDS_WRITTEN.findall(inside))
            depth -= 1
    # the space form: the last segment after `+`, `(`, `[`, `,`, `=` or a keyword
    segment = re.split(r"[+(\[,]|\b(?:then|else|defaults)\b", prefix)[-1]
    match = re.match(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s+(.*)$", segment)
    if match is None or lookup(match.group(1)) is None:
        return None
    rest = match.group(2)
    if rest and not rest[-1].isspace() and not re.search(r"(^|\s)[A-Za-z_]\w*$", rest):
        return None  # in the middle of a value
    return match.group(1), set(_KEYWORDS_WRITTEN.findall(rest))


def _last_line_of(node) -> int:
    return node.span.end_line or node.span.line


def _whole_lines(span: Span, lines: list[str]) -> Span:
    end = span.end_line or span.line
    if end > span.line and span.end_column == 1:
        end -= 1
    return Span(span.file, span.line, 1, end, len(lines[end - 1]) + 1 if end <= len(lines) else 1)


__all__ = ["Document", "Problem", "Related", "Completion", "Symbol", "RenameRefused"]
