"""The language server: document.py's answers written in the Language Server Protocol.

Positions: netdsl counts 1-based lines and 1-based characters (code points); the protocol
counts 0-based lines and code units of the encoding agreed at initialisation (UTF-16 unless
the editor offers another), which pygls' position codec converts. Documents are synced
whole (a file is a few hundred lines at most), so the text the server compiles is the
editor's, byte for byte.
"""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from .. import __version__
from ..errors import NetdslError, SourceRegistry, Span, source_lines
from .document import Document, RenameRefused

SOURCE = "netdsl"
COLLECT_WHEN_IDLE_S = 0.3
COLLECT_AFTER_COMPILES = 3

_COMPLETION_KINDS = {
    "layer": types.CompletionItemKind.Function,
    "block": types.CompletionItemKind.Class,
    "function": types.CompletionItemKind.Function,
    "parameter": types.CompletionItemKind.Variable,
    "value": types.CompletionItemKind.Variable,
    "module": types.CompletionItemKind.Module,
    "argument": types.CompletionItemKind.Property,
}
_SYMBOL_KINDS = {
    "network": types.SymbolKind.Module,
    "block": types.SymbolKind.Class,
    "function": types.SymbolKind.Function,
    "parameter": types.SymbolKind.Variable,
    "value": types.SymbolKind.Variable,
}


class NetdslServer(LanguageServer):
    """Keeps one compiled Document per open file, recompiled when its text changes."""

    def __init__(self) -> None:
        super().__init__(
            "netdsl", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Full
        )
        self.documents: dict[str, Document] = {}  # uri -> the latest compiled snapshot
        self.dirty: set[str] = set()  # uris whose text changed since they were compiled
        # the task that compiles them (held here: the event loop keeps only a weak reference)
        self.refreshing: asyncio.Task | None = None
        self.collection: asyncio.TimerHandle | None = None
        self.compiles_since_collection = 0

    # ---- documents --------------------------------------------------------------------------

    def path_of(self, uri: str) -> str:
        path = to_fs_path(uri)
        return str(Path(path).resolve()) if path else uri

    def document(self, uri: str) -> Document:
        """The compiled document, compiled now if its text changed (a request that arrives
        before the diagnostics of the last keystroke were sent)."""
        text = self.workspace.get_text_document(uri).source
        known = self.documents.get(uri)
        if known is None or known.text != text:
            overlay = {d.path: d.text for u, d in self.documents.items() if u != uri}
            known = self.documents[uri] = Document(self.path_of(uri), text, overlay, known)
        return known

    def changed(self, uri: str) -> None:
        self.dirty.add(uri)
        if self.refreshing is None or self.refreshing.done():
            self.refreshing = asyncio.get_running_loop().create_task(self.refresh())

    async def refresh(self) -> None:
        """Compile and publish every changed document. Changes that arrive while one is
        compiled are read before the next: a burst of keystrokes costs one compile."""
        await asyncio.sleep(0)
        while self.dirty:
            uri = self.dirty.pop()
            if uri not in self.workspace.text_documents:
                continue
            document = self.document(uri)
            self.publish(uri, document)
            for other, known in list(self.documents.items()):
                if other != uri and document.path in known.files:
                    self.documents.pop(other)
                    self.dirty.add(other)  # it uses this file: compile it again
            await asyncio.sleep(0)
        self.collect_later()

    def collect_later(self) -> None:
        """Collect the replaced snapshots once the editor is idle for a moment, or now after
        many compiles without a pause (see serve)."""
        if self.collection is not None:
            self.collection.cancel()
        self.compiles_since_collection += 1
        if self.compiles_since_collection >= COLLECT_AFTER_COMPILES:
            self.collect()
        else:
            self.collection = asyncio.get_running_loop().call_later(
                COLLECT_WHEN_IDLE_S, self.collect
            )

    def collect(self) -> None:
        self.collection = None
        self.compiles_since_collection = 0
        gc.collect()

    def publish(self, uri: str, document: Document) -> None:
        diagnostics = [self.diagnostic(document, p) for p in document.problems()]
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics)
        )

    # ---- positions --------------------------------------------------------------------------

    def lines(self, path: str, file: str | None = None) -> list[str]:
        """The lines of a file, as the server last compiled it."""
        for document in self.documents.values():
            if document.path == path:
                return document.lines
        text = SourceRegistry.text(file) if file else None
        if text is None:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                text = ""
        return source_lines(text)

    def position(self, lines: list[str], line: int, column: int) -> types.Position:
        """netdsl's 1-based line and character -> the protocol's position."""
        codec = self.workspace.position_codec
        return codec.position_to_client_units(lines, types.Position(line - 1, max(column - 1, 0)))

    def range(self, lines: list[str], span: Span) -> types.Range:
        end_line = span.end_line or span.line
        end_column = span.end_column or span.column + 1
        return types.Range(
            start=self.position(lines, span.line, span.column),
            end=self.position(lines, end_line, end_column),
        )

    def location(self, path: str, span: Span | None) -> types.Location:
        if span is None:
            zero = types.Position(0, 0)
            return types.Location(from_fs_path(path), types.Range(zero, zero))
        return types.Location(from_fs_path(path), self.range(self.lines(path, span.file), span))

    def cursor(self, document: Document, position: types.Position) -> tuple[int, int]:
        """The protocol's position -> netdsl's 1-based line and character."""
        codec = self.workspace.position_codec
        at = codec.position_from_client_units(document.lines, position)
        return at.line + 1, at.character + 1

    def diagnostic(self, document: Document, problem) -> types.Diagnostic:
        severity = (
            types.DiagnosticSeverity.Error
            if problem.severity == "error"
            else types.DiagnosticSeverity.Warning
        )
        return types.Diagnostic(
            range=self.range(document.lines, problem.span),
            message=problem.message,
            severity=severity,
            code=problem.code,
            source=SOURCE,
            related_information=[
                types.DiagnosticRelatedInformation(self.location(r.path, r.span), r.message)
                for r in problem.related
            ]
            or None,
        )


server = NetdslServer()


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: NetdslServer, params: types.DidOpenTextDocumentParams) -> None:
    ls.changed(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: NetdslServer, params: types.DidChangeTextDocumentParams) -> None:
    ls.changed(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: NetdslServer, params: types.DidSaveTextDocumentParams) -> None:
    ls.changed(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: NetdslServer, params: types.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    closed = ls.documents.pop(uri, None)
    ls.dirty.discard(uri)
    ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))
    if closed is not None:  # the files that use it read it from the disk again
        for other, known in list(ls.documents.items()):
            if closed.path in known.files:
                ls.documents.pop(other)
                ls.changed(other)


@server.feature(types.TEXT_DOCUMENT_HOVER)
def hover(ls: NetdslServer, params: types.HoverParams) -> types.Hover | None:
    document = ls.document(params.text_document.uri)
    text = document.hover(*ls.cursor(document, params.position))
    if text is None:
        return None
    return types.Hover(types.MarkupContent(types.MarkupKind.Markdown, text))


@server.feature(types.TEXT_DOCUMENT_INLAY_HINT)
def inlay_hints(ls: NetdslServer, params: types.InlayHintParams) -> list[types.InlayHint]:
    document = ls.document(params.text_document.uri)
    first, last = params.range.start.line + 1, params.range.end.line + 1
    return [
        types.InlayHint(
            position=ls.position(document.lines, line, column),
            label=f"→ {shape}",
            kind=types.InlayHintKind.Type,
            padding_left=True,
        )
        for line, column, shape in document.inlay_hints(first, last)
    ]


@server.feature(types.TEXT_DOCUMENT_DEFINITION)
def definition(ls: NetdslServer, params: types.DefinitionParams) -> types.Location | None:
    document = ls.document(params.text_document.uri)
    found = document.definition(*ls.cursor(document, params.position))
    if found is None or (found.span is None and found.kind != "module"):
        return None
    return ls.location(found.path, found.span)


@server.feature(types.TEXT_DOCUMENT_REFERENCES)
def references(ls: NetdslServer, params: types.ReferenceParams) -> list[types.Location]:
    document = ls.document(params.text_document.uri)
    found = document.definition(*ls.cursor(document, params.position))
    if found is None:
        return []
    out = []
    for uri in list(ls.documents):
        other = ls.document(uri)
        if other.index is None:
            continue
        for occurrence in other.index.references(found):
            if occurrence.defines and not params.context.include_declaration:
                continue
            out.append(types.Location(uri, ls.range(other.lines, occurrence.span)))
    return out


@server.feature(
    types.TEXT_DOCUMENT_COMPLETION,
    types.CompletionOptions(trigger_characters=[" ", "(", ","]),
)
def completion(ls: NetdslServer, params: types.CompletionParams) -> types.CompletionList:
    document = ls.document(params.text_document.uri)
    context = params.context
    typed_space = context is not None and context.trigger_character == " "
    items = []
    for c in document.completions(*ls.cursor(document, params.position), typed_space):
        snippet = c.insert is not None and "$0" in c.insert
        items.append(
            types.CompletionItem(
                label=c.label,
                kind=_COMPLETION_KINDS.get(c.kind),
                detail=c.detail or None,
                documentation=types.MarkupContent(types.MarkupKind.Markdown, c.documentation)
                if c.documentation
                else None,
                insert_text=c.insert,
                insert_text_format=types.InsertTextFormat.Snippet if snippet else None,
            )
        )
    return types.CompletionList(is_incomplete=False, items=items)


@server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def document_symbols(
    ls: NetdslServer, params: types.DocumentSymbolParams
) -> list[types.DocumentSymbol]:
    document = ls.document(params.text_document.uri)

    def convert(symbol) -> types.DocumentSymbol:
        return types.DocumentSymbol(
            name=symbol.name,
            kind=_SYMBOL_KINDS[symbol.kind],
            range=ls.range(document.lines, symbol.span),
            selection_range=ls.range(document.lines, symbol.selection),
            detail=symbol.detail or None,
            children=[convert(c) for c in symbol.children] or None,
        )

    return [convert(s) for s in document.symbols()]


@server.feature(types.TEXT_DOCUMENT_FORMATTING)
def formatting(ls: NetdslServer, params: types.DocumentFormattingParams) -> list[types.TextEdit]:
    """One edit that replaces the whole text with `netdsl fmt`'s; none for a file that does
    not parse (fmt refuses it, and the diagnostics say why)."""
    from ..fmt import format_text

    document = ls.document(params.text_document.uri)
    try:
        formatted = format_text(document.text, document.path)
    except NetdslError:
        return []
    if formatted == document.text:
        return []
    lines = document.lines
    end = ls.position(lines, len(lines), len(lines[-1]) + 1)
    return [types.TextEdit(types.Range(types.Position(0, 0), end), formatted)]


def _refused(error: RenameRefused) -> JsonRpcException:
    return JsonRpcException(str(error), code=types.LSPErrorCodes.RequestFailed)


@server.feature(types.TEXT_DOCUMENT_PREPARE_RENAME)
def prepare_rename(ls: NetdslServer, params: types.PrepareRenameParams) -> types.Range | None:
    document = ls.document(params.text_document.uri)
    line, column = ls.cursor(document, params.position)
    occurrence = document.index.at(line, column) if document.index else None
    try:
        document.rename(line, column, occurrence.name if occurrence else "", _others(ls, document))
    except RenameRefused as e:
        raise _refused(e) from None
    return ls.range(document.lines, occurrence.span)


@server.feature(types.TEXT_DOCUMENT_RENAME)
def rename(ls: NetdslServer, params: types.RenameParams) -> types.WorkspaceEdit:
    document = ls.document(params.text_document.uri)
    line, column = ls.cursor(document, params.position)
    try:
        edits = document.rename(line, column, params.new_name, _others(ls, document))
    except RenameRefused as e:
        raise _refused(e) from None
    uris = {d.path: uri for uri, d in ls.documents.items()}
    changes = {}
    for path, spans in edits.items():
        lines = ls.lines(path)
        changes[uris[path]] = [types.TextEdit(ls.range(lines, s), params.new_name) for s in spans]
    return types.WorkspaceEdit(changes=changes)


def _others(ls: NetdslServer, document: Document) -> list[Document]:
    return [ls.document(uri) for uri, d in list(ls.documents.items()) if d is not document]


def serve(tcp: tuple[str, int] | None = None) -> None:
    """Run until the editor says exit.

    The cyclic garbage collector runs only when the editor pauses (or after 3 compiles
    without a pause): a replaced snapshot of ResNet-152 is some 16,000 linked objects, and
    the collector's own schedule would stop a keystroke's compile for 30-80 ms, as long as
    the compile itself, where an explicit collection costs about 8 ms (what the server
    imported is frozen out of the collector's passes first)."""
    gc.collect()
    gc.freeze()
    gc.disable()
    if tcp is None:
        server.start_io()
    else:
        server.start_tcp(*tcp)
