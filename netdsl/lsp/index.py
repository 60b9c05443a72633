"""Where each name of a file is written and what it means: the index behind go-to-definition,
find-references, rename and hover. It reads the parsed module and the blocks its `use`s bring
in; it knows nothing of the editor protocol (positions are netdsl's: 1-based lines and
1-based character columns).

A name written in a body means, in this order: a parameter or named value (`x = ...`) of
the enclosing definition, a block, a `def` function, a layer of the catalogue. Keyword
arguments of a block call (`stage(128, 4, s=2)`) are occurrences of that block's parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .. import ast
from ..errors import Span, source_lines
from ..layers import MERGES, lookup
from ..loader import ModuleEnv

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Definition:
    """Something a name can mean that is written somewhere: a block, a function, a network,
    a parameter (of `owner`), a named value (of `owner`) or a `use`d file (`path` is the
    file itself, `span` is None). Two files that see the same definition compare equal
    whatever they call its file (`span.file` is how each file's messages name it)."""

    kind: str  # "block" | "function" | "network" | "parameter" | "value" | "module"
    name: str
    path: str  # the real path of the file that defines it
    span: Span | None = field(compare=False)  # the name where it is defined
    owner: str = ""  # "block stage", "network resnet50", for parameters and values
    node: ast.Node | None = field(default=None, compare=False, hash=False, repr=False)
    at: tuple = ()  # (line, column) of `span`: what identifies it, with path and name

    def __post_init__(self) -> None:
        if self.span is not None and not self.at:
            object.__setattr__(self, "at", (self.span.line, self.span.column))


@dataclass(frozen=True)
class Occurrence:
    """A name as written in the indexed file, and what it means (None: a name the index
    cannot place, such as a comprehension's variable)."""

    kind: str  # "block" | "function" | "network" | "parameter" | "value" | "module"
    #            | "layer" | "argument" (a layer's keyword) | "unknown"
    name: str
    span: Span
    definition: Definition | None = None
    defines: bool = False  # the occurrence is the definition itself
    layer: str = ""  # for an argument: the layer whose keyword it is

    def contains(self, line: int, column: int) -> bool:
        return self.span.line == line and self.span.column <= column <= self.span.end_column


def name_span(span: Span, name: str) -> Span:
    """The span of `name` written at the start of `span`."""
    return Span(span.file, span.line, span.column, span.line, span.column + len(name))


class Index:
    """Every occurrence of a name in one file, in source order."""

    def __init__(self, menv: ModuleEnv, text: str, use_targets: dict | None = None) -> None:
        self.menv = menv
        self.path = menv.location or menv.path
        self.file = menv.path  # how spans name this file
        self.lines = source_lines(text)
        self.use_targets = use_targets or {}  # id(ast.Use) -> the used file's ModuleEnv
        self.occurrences: list[Occurrence] = []
        self.definitions: dict[str, Definition] = {}  # blocks, functions, networks of the file
        self._build()

    # ---- queries ----------------------------------------------------------------------------

    def at(self, line: int, column: int) -> Occurrence | None:
        """The occurrence under a cursor (a cursor right after a name still touches it)."""
        for occurrence in self.occurrences:
            if occurrence.contains(line, column):
                return occurrence
        return None

    def references(self, definition: Definition) -> list[Occurrence]:
        return [o for o in self.occurrences if o.definition == definition]

    def enclosing(self, line: int) -> ast.Node | None:
        """The block, function or network that `line` belongs to: the last one that starts
        at or before it (a line being typed after the end of a body still belongs to it)."""
        module = self.menv.module
        items = [i for i in (*module.blocks, *module.functions, *module.networks)]
        before = [i for i in items if i.span.line <= line]
        return max(before, key=lambda i: i.span.line) if before else None

    def visible_names(self, line: int) -> list[Definition]:
        """The parameters and named values in scope at `line` (completion)."""
        owner = self.enclosing(line)
        if owner is None:
            return []
        label = _owner_label(owner)
        return [
            o.definition
            for o in self.occurrences
            if o.defines
            and o.definition.owner == label
            and o.definition.kind in ("parameter", "value")
            and (o.definition.kind == "parameter" or o.span.line <= line)
        ]

    # ---- building -------------------------------------------------------------------------

    def _add(self, kind, name, span, definition=None, defines=False, layer="") -> None:
        self.occurrences.append(Occurrence(kind, name, span, definition, defines, layer))

    def _build(self) -> None:
        module = self.menv.module
        for use in module.uses:
            self._use(use)
        for item in module.blocks:
            self.definitions[item.name] = Definition(
                "block", item.name, self.path, item.name_span, node=item
            )
        for item in module.functions:
            self.definitions[item.name] = Definition(
                "function", item.name, self.path, item.name_span, node=item
            )
        for item in module.networks:
            self.definitions[item.name] = Definition(
                "network", item.name, self.path, item.name_span, node=item
            )
        for defaults in module.defaults:
            self._defaults(defaults, {})
        for item in (*module.blocks, *module.functions, *module.networks):
            self._definition(item)
        self.occurrences.sort(key=lambda o: (o.span.line, o.span.column))

    def _use(self, use: ast.Use) -> None:
        used = self.use_targets.get(id(use))
        span = self._word_after(use.span, "use")
        if span is None:
            return
        target = None
        if used is not None:
            target = Definition(
                "module", use.target, used.location or used.path, None, node=used.module
            )
        self._add("module", use.target, span, target)

    def _definition(self, item) -> None:
        kind = {ast.BlockDef: "block", ast.FunctionDef: "function"}.get(type(item), "network")
        definition = self.definitions[item.name]
        self._add(kind, item.name, item.name_span, definition, defines=True)
        label = _owner_label(item)
        scope: dict[str, Definition] = {}
        for param in item.params:
            found = Definition(
                "parameter", param.name, self.path, name_span(param.span, param.name), label, param
            )
            self._add("parameter", param.name, found.span, found, defines=True)
            scope[param.name] = found
        for param in item.params:
            if param.default is not None:
                self._expr(param.default, {}, label)
        body = item.body
        if isinstance(body, tuple):
            for stmt in body:
                self._stmt(stmt, scope, label)
        else:
            self._expr(body, scope, label)

    def _stmt(self, stmt, scope: dict, label: str) -> None:
        if isinstance(stmt, ast.LetStmt):
            self._expr(stmt.expr, scope, label)
            found = Definition(
                "value", stmt.name, self.path, name_span(stmt.span, stmt.name), label, stmt
            )
            self._add("value", stmt.name, found.span, found, defines=True)
            scope[stmt.name] = found
        elif isinstance(stmt, ast.InputStmt):
            if stmt.name is not None:
                span = self._word_after(stmt.span, "input")
                if span is not None:
                    found = Definition("value", stmt.name, self.path, span, label, stmt)
                    self._add("value", stmt.name, span, found, defines=True)
                    scope[stmt.name] = found
            self._expr(stmt.shape, scope, label)
            if stmt.vocab is not None:
                self._expr(stmt.vocab, scope, label)
        elif isinstance(stmt, ast.OutputStmt):
            if stmt.expr is not None:
                self._expr(stmt.expr, scope, label)
        elif isinstance(stmt, ast.ExprStmt):
            self._expr(stmt.expr, scope, label)
        elif isinstance(stmt, ast.IfStmt):
            self._expr(stmt.cond, scope, label)
            self._stmt(stmt.body, scope, label)
        elif isinstance(stmt, ast.Defaults):
            self._defaults(stmt, scope)

    def _defaults(self, defaults: ast.Defaults, scope: dict) -> None:
        span = self._word_after(defaults.span, "defaults")
        if span is not None and lookup(defaults.layer) is not None:
            self._add("layer", defaults.layer, span)
        for name, value, kspan in defaults.kwargs:
            self._add("argument", name, kspan, layer=defaults.layer)
            self._expr(value, scope, "")

    def _expr(self, node, scope: dict, label: str) -> None:
        stack = [node]
        while stack:
            node = stack.pop()
            if isinstance(node, ast.Name):
                self._name(node.id, node.span, scope)
            elif isinstance(node, ast.Call):
                self._call(node, scope)
                stack.extend(node.args)
                stack.extend(value for _, value, _ in node.kwargs)
            elif isinstance(node, ast.Comprehension):
                inner = dict(scope)
                for var in node.names or (node.var,):
                    inner[var] = None  # the loop's variable hides outer names
                self._expr(node.body, inner, label)
                stack.append(node.iterable)
            elif isinstance(node, ast.Node):
                for value in vars(node).values():
                    if isinstance(value, ast.Node):
                        stack.append(value)
                    elif isinstance(value, tuple):
                        stack.extend(v for v in value if isinstance(v, ast.Node))

    def _name(self, name: str, span: Span, scope: dict) -> None:
        if name in scope:
            found = scope[name]
            self._add(found.kind if found else "unknown", name, span, found)
            return
        target = self.lookup_name(name)
        if target is not None:
            self._add(target.kind, name, span, target)
        elif lookup(name) is not None:
            self._add("layer", name, span)

    def lookup_name(self, name: str) -> Definition | None:
        """A block or function visible in the file (its own or a `use`d file's)."""
        if name in self.definitions and self.definitions[name].kind != "network":
            return self.definitions[name]
        found = self.menv.lookup_block(name)
        if found is not None:
            block, env = found
            return Definition("block", name, env.location or env.path, block.name_span, node=block)
        found = self.menv.lookup_function(name)
        if found is not None:
            function, env = found
            return Definition(
                "function", name, env.location or env.path, function.name_span, node=function
            )
        return None

    def _call(self, call: ast.Call, scope: dict) -> None:
        span = name_span(call.span, call.name)
        target = None if call.name in scope else self.lookup_name(call.name)
        if target is not None:
            self._add(target.kind, call.name, span, target)
            if target.kind == "block":
                params = {p.name: p for p in target.node.params}
                for keyword, _, kspan in call.kwargs:
                    param = params.get(keyword)
                    found = None
                    if param is not None:
                        found = Definition(
                            "parameter",
                            keyword,
                            target.path,
                            name_span(param.span, keyword),
                            f"block {call.name}",
                            param,
                        )
                    self._add("parameter", keyword, kspan, found)
            return
        if lookup(call.name) is not None or call.name in MERGES:
            self._add("layer", call.name, span)
            for keyword, _, kspan in call.kwargs:
                self._add("argument", keyword, kspan, layer=call.name)

    def _word_after(self, span: Span, keyword: str) -> Span | None:
        """The span of the name after `keyword` at the start of `span` (`use resnet`)."""
        if not 0 < span.line <= len(self.lines):
            return None
        line = self.lines[span.line - 1]
        start = span.column - 1 + len(keyword)
        match = _WORD.search(line, start)
        quoted = re.compile(r'\s*"([^"\n]*)"').match(line, start)
        if quoted:  # use "blocks.net"
            return Span(self.file, span.line, quoted.start(1) + 1, span.line, quoted.end(1) + 1)
        if match is None:
            return None
        return Span(self.file, span.line, match.start() + 1, span.line, match.end() + 1)


def _owner_label(item) -> str:
    kind = {ast.BlockDef: "block", ast.FunctionDef: "function"}.get(type(item), "network")
    return f"{kind} {item.name}"
