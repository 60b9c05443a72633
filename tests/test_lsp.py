"""`netdsl lsp`, driven as an editor drives it: a real `python -m netdsl lsp` process spoken
to over stdin/stdout (pytest-lsp). One server serves the whole module (starting one costs
about a second); each test opens its own document URI, so tests do not see each other's text.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pygls")
pytest_lsp = pytest.importorskip("pytest_lsp")

from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from netdsl.resources import STDLIB_DIR

ROOT = Path(__file__).resolve().parent.parent
RESNET50 = ROOT / "architectures" / "resnet50.net"
STDLIB_RESNET = (STDLIB_DIR / "resnet.net").resolve()

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_lsp.fixture(
    scope="module",
    config=ClientServerConfig(server_command=[sys.executable, "-m", "netdsl", "lsp"]),
)
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            root_uri=ROOT.as_uri(),
        )
    )
    yield
    await lsp_client.shutdown_session()


async def open_document(client: LanguageClient, path: Path, text: str | None = None):
    """Open `path` (with `text` instead of its contents) and wait for its diagnostics."""
    uri = path.resolve().as_uri()
    text = path.read_text() if text is None else text
    item = types.TextDocumentItem(uri=uri, language_id="netdsl", version=1, text=text)
    client.diagnostics.pop(uri, None)
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=item))
    return uri, await diagnostics_of(client, uri)


async def change_document(client: LanguageClient, uri: str, text: str, version: int = 2):
    client.diagnostics.pop(uri, None)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )
    return await diagnostics_of(client, uri)


async def diagnostics_of(client: LanguageClient, uri: str, timeout: float = 20):
    """The next diagnostics published for `uri` (the client's handler records each)."""
    waited = 0.0
    while uri not in client.diagnostics:
        assert waited < timeout, f"no diagnostics for {uri} in {timeout} s"
        await asyncio.sleep(0.005)
        waited += 0.005
    return list(client.diagnostics[uri])


async def close(client: LanguageClient, uri: str) -> None:
    """Close a document and wait for its diagnostics to be cleared."""
    client.diagnostics.pop(uri, None)
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    assert await diagnostics_of(client, uri) == []


def position_of(text: str, needle: str, offset: int = 0) -> types.Position:
    """The position of `needle` in `text` (UTF-16 columns, as the protocol counts)."""
    index = text.index(needle) + offset
    line = text.count("\n", 0, index)
    start = text.rfind("\n", 0, index) + 1
    return types.Position(line, len(text[start:index].encode("utf-16-le")) // 2)


def check_says(tmp_path: Path, text: str) -> str:
    """What `netdsl check` prints for the same text on stderr (errors and warnings)."""
    path = tmp_path / "resnet50.net"
    path.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "netdsl", "check", str(path)], capture_output=True, text=True
    )
    return result.stderr


async def shapes_on(client: LanguageClient, uri: str, line: int) -> list[str]:
    """The inlay hints (output shapes) shown at the end of one line."""
    hints = await client.text_document_inlay_hint_async(
        types.InlayHintParams(
            types.TextDocumentIdentifier(uri),
            types.Range(types.Position(line, 0), types.Position(line + 1, 0)),
        )
    )
    return [h.label for h in hints if h.position.line == line]


# ---- the acceptance ------------------------------------------------------------------


async def test_resnet50_opens_without_diagnostics(client: LanguageClient):
    uri, diagnostics = await open_document(client, RESNET50)
    assert diagnostics == []
    await close(client, uri)


async def test_a_change_gives_the_diagnostic_check_gives(client: LanguageClient, tmp_path):
    """`stage(128, 4, s=2)` -> `s=3` elaborates (56 -> 19 -> 10 -> 5: every window fits),
    as `netdsl check` says too; `s=0` is the error, in the standard library's conv_bn, which
    the editor shows at the call in the open file and, as related information, where check
    points."""
    text = RESNET50.read_text()
    uri, _ = await open_document(client, tmp_path / "a.net", text)
    line = text[: text.index("stage(128, 4, s=2,")].count("\n")
    assert await shapes_on(client, uri, line) == ["→ 512x28x28"]
    s3 = text.replace("stage(128, 4, s=2,", "stage(128, 4, s=3,")
    assert await change_document(client, uri, s3) == []
    assert check_says(tmp_path, s3) == ""
    assert await shapes_on(client, uri, line) == ["→ 512x19x19"]  # the change, seen at once

    s0 = text.replace("stage(128, 4, s=2,", "stage(128, 4, s=0,")
    (diagnostic,) = await change_document(client, uri, s0, version=3)
    said = check_says(tmp_path, s0)
    where, message = re.match(r"(\S+:\d+:\d+): (.*)", said).groups()
    assert diagnostic.message == message
    assert diagnostic.source == "netdsl"
    assert diagnostic.severity == types.DiagnosticSeverity.Error
    assert diagnostic.range.start == position_of(s0, "stage(128, 4, s=0")
    first = diagnostic.related_information[0]
    assert first.location.uri == STDLIB_RESNET.as_uri()
    file, line, column = where.rsplit(":", 2)
    assert file == "netdsl/stdlib/resnet.net"
    assert first.location.range.start == types.Position(int(line) - 1, int(column) - 1)
    notes = [r.message for r in diagnostic.related_information]
    assert "in block stage, used here" in notes

    assert await change_document(client, uri, text, version=4) == []  # fixed: cleared
    await close(client, uri)


async def test_an_error_in_the_file_has_its_exact_range_and_hint(client, tmp_path):
    text = RESNET50.read_text().replace("stage(128, 4, s=2,", "stage(128, 4, t=2,")
    uri, (diagnostic,) = await open_document(client, tmp_path / "b.net", text)
    said = check_says(tmp_path, text)
    assert said.splitlines()[0].endswith(f": {diagnostic.message}")
    start = position_of(text, "t=2")
    assert diagnostic.range == types.Range(start, types.Position(start.line, start.character + 1))
    (hint,) = diagnostic.related_information
    assert hint.message == "hint: its definition: block stage(c, n, s=1, g=1, w=64, zero=false)"
    assert hint.location.range == diagnostic.range
    await close(client, uri)


async def test_hover_on_a_block_call_shows_its_output_shape(client: LanguageClient):
    uri, _ = await open_document(client, RESNET50)
    text = RESNET50.read_text()
    result = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), position_of(text, "stage(128", 2))
    )
    assert "block stage(c, n, s=1, g=1, w=64, zero=false)" in result.contents.value
    assert "→ 512x28x28" in result.contents.value
    await close(client, uri)


async def test_definition_of_stage_is_in_the_standard_library(client: LanguageClient):
    uri, _ = await open_document(client, RESNET50)
    text = RESNET50.read_text()
    location = await client.text_document_definition_async(
        types.DefinitionParams(types.TextDocumentIdentifier(uri), position_of(text, "stage(128"))
    )
    assert location.uri == STDLIB_RESNET.as_uri()
    lines = STDLIB_RESNET.read_text().split("\n")
    line = location.range.start.line
    assert lines[line].startswith("block stage(")
    assert location.range.start.character == len("block ")
    await close(client, uri)


async def test_completion_after_conv_offers_its_arguments(client: LanguageClient, tmp_path):
    text = "network n:\n    input 3x32x32\n    conv \n    conv 8 k=3 + \n"
    uri, _ = await open_document(client, tmp_path / "c.net", text)
    space = types.CompletionContext(
        trigger_kind=types.CompletionTriggerKind.TriggerCharacter, trigger_character=" "
    )

    async def complete(line: int, character: int) -> set[str]:
        result = await client.text_document_completion_async(
            types.CompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=line, character=character),
                context=space,
            )
        )
        return {item.label for item in result.items}

    labels = await complete(2, 9)  # `conv |`, as the space is typed
    assert {"c=", "k=", "s=", "p=", "bias=", "act=", "init="} <= labels
    assert "relu" not in labels
    assert "k=" not in await complete(3, 15)  # `conv 8 k=3 |`: k is written
    assert await complete(3, 17) == set()  # `+ |`: a space leads nowhere definite
    await close(client, uri)


# ---- the other features ------------------------------------------------------------------------

BLOCKS = """\
# two convolutions
# and a ReLU between them
block pair(c, k=3) = conv c k=k p=(k//2) + relu + conv c k=k p=(k//2)

network tiny(width=16):
    input 3x32x32
    x = pair(width)
    pair(width * 2, k=5)
        + gap
"""


async def test_inlay_hints_show_each_lines_output_shape(client: LanguageClient, tmp_path):
    uri, _ = await open_document(client, tmp_path / "d.net", BLOCKS)
    hints = await client.text_document_inlay_hint_async(
        types.InlayHintParams(
            types.TextDocumentIdentifier(uri),
            types.Range(types.Position(0, 0), types.Position(9, 0)),
        )
    )
    shown = {h.position.line: h.label for h in hints}
    assert shown == {
        2: "→ 16x32x32",  # the block's line, from its first instance: pair(width)
        5: "→ 3x32x32",
        6: "→ 16x32x32",
        7: "→ 32x32x32",
        8: "→ 32x1x1",
    }
    assert hints[0].position.character == len(BLOCKS.split("\n")[2])
    await close(client, uri)


async def test_hover_on_a_layer_and_a_parameter(client: LanguageClient, tmp_path):
    uri, _ = await open_document(client, tmp_path / "e.net", BLOCKS)
    doc = types.TextDocumentIdentifier(uri)
    layer = await client.text_document_hover_async(
        types.HoverParams(doc, position_of(BLOCKS, "relu"))
    )
    assert "output 16x32x32" in layer.contents.value
    assert "receptive field 3 px" in layer.contents.value
    conv = await client.text_document_hover_async(
        types.HoverParams(doc, position_of(BLOCKS, "conv c"))
    )
    assert "params 448" in conv.contents.value  # 16 x 3 x 3 x 3 + 16
    parameter = await client.text_document_hover_async(
        types.HoverParams(doc, position_of(BLOCKS, "k=3"))
    )
    assert "`k` = `3` in `pair(16)`" in parameter.contents.value  # its first instance
    block = await client.text_document_hover_async(
        types.HoverParams(doc, position_of(BLOCKS, "pair(c"))
    )
    assert "two convolutions\nand a ReLU between them" in block.contents.value
    await close(client, uri)


async def test_document_symbols(client: LanguageClient, tmp_path):
    uri, _ = await open_document(client, tmp_path / "f.net", BLOCKS)
    symbols = await client.text_document_document_symbol_async(
        types.DocumentSymbolParams(types.TextDocumentIdentifier(uri))
    )
    outline = {s.name: [c.name for c in s.children or []] for s in symbols}
    assert outline == {"pair": ["c", "k"], "tiny": ["width", "x"]}
    assert [s.kind for s in symbols] == [types.SymbolKind.Class, types.SymbolKind.Module]
    await close(client, uri)


async def test_references_of_a_block_and_a_parameter(client: LanguageClient, tmp_path):
    uri, _ = await open_document(client, tmp_path / "g.net", BLOCKS)
    doc = types.TextDocumentIdentifier(uri)
    block = await client.text_document_references_async(
        types.ReferenceParams(
            text_document=doc,
            position=position_of(BLOCKS, "pair(width)"),
            context=types.ReferenceContext(include_declaration=True),
        )
    )
    assert [r.range.start.line for r in block] == [2, 6, 7]
    k = await client.text_document_references_async(
        types.ReferenceParams(
            text_document=doc,
            position=position_of(BLOCKS, "k=5"),
            context=types.ReferenceContext(include_declaration=False),
        )
    )
    # the four values k=k, p=(k//2) in the body and the keyword of pair(width * 2, k=5);
    # not the convs' own `k=` keywords, nor the declaration
    assert sorted((r.range.start.line, r.range.start.character) for r in k) == [
        (2, 30),
        (2, 35),
        (2, 59),
        (2, 64),
        (7, 20),
    ]
    await close(client, uri)


async def test_rename_a_block_and_refuse_a_layer(client: LanguageClient, tmp_path):
    uri, _ = await open_document(client, tmp_path / "h.net", BLOCKS)
    doc = types.TextDocumentIdentifier(uri)
    edit = await client.text_document_rename_async(
        types.RenameParams(doc, position_of(BLOCKS, "pair(width)"), "twin")
    )
    edits = edit.changes[uri]
    assert len(edits) == 3 and {e.new_text for e in edits} == {"twin"}
    with pytest.raises(Exception, match="'relu' is a layer"):
        await client.text_document_rename_async(
            types.RenameParams(doc, position_of(BLOCKS, "relu"), "act")
        )
    with pytest.raises(Exception, match="'conv' is a layer of the catalogue"):
        await client.text_document_rename_async(
            types.RenameParams(doc, position_of(BLOCKS, "pair(width)"), "conv")
        )
    await close(client, uri)


async def test_a_non_ascii_character_before_an_error(client: LanguageClient, tmp_path):
    """Columns count UTF-16 code units: 'é' is one, '𝛼' (outside the BMP) two."""
    text = 'network n:\n    input 3x32x32\n    conv 8 act="é𝛼" q=1\n'
    uri, (diagnostic,) = await open_document(client, tmp_path / "i.net", text)
    assert diagnostic.message == "conv has no argument 'q'"
    assert diagnostic.range.start == types.Position(2, len('    conv 8 act="é𝛼" ') + 1)
    await close(client, uri)


async def test_rename_a_parameter_and_a_block_used_by_another_open_file(client, tmp_path):
    library = "block pair(c, k=3) = conv c k=k + relu + conv c k=k\n"
    main = 'use "lib.net"\n\nnetwork n:\n    input 3x32x32\n    pair(8, k=5) + gap\n'
    (tmp_path / "lib.net").write_text(library)  # `use "lib.net"` looks beside main.net
    (tmp_path / "main.net").write_text(main)
    lib_uri, _ = await open_document(client, tmp_path / "lib.net")
    main_uri, diagnostics = await open_document(client, tmp_path / "main.net")
    assert diagnostics == []
    edit = await client.text_document_rename_async(
        types.RenameParams(
            text_document=types.TextDocumentIdentifier(uri=main_uri),
            position=position_of(main, "pair"),
            new_name="twin",
        )
    )
    assert {uri: len(edits) for uri, edits in edit.changes.items()} == {lib_uri: 1, main_uri: 1}
    edit = await client.text_document_rename_async(
        types.RenameParams(
            text_document=types.TextDocumentIdentifier(uri=main_uri),
            position=position_of(main, "k=5"),
            new_name="kernel",
        )
    )
    # the declaration, the two uses in the body, the keyword of the call in main.net
    assert {uri: len(edits) for uri, edits in edit.changes.items()} == {lib_uri: 3, main_uri: 1}
    with pytest.raises(Exception, match="'c' is already a name in block pair"):
        await client.text_document_rename_async(
            types.RenameParams(
                text_document=types.TextDocumentIdentifier(uri=lib_uri),
                position=position_of(library, "k=3"),
                new_name="c",
            )
        )
    await close(client, main_uri)
    await close(client, lib_uri)


async def test_a_change_to_a_used_file_rechecks_the_file_that_uses_it(client, tmp_path):
    library = "block pair(c) = conv c k=3 p=1 + relu\n"
    main = 'use "lib2.net"\n\nnetwork n:\n    input 3x32x32\n    pair(8) + gap\n'
    (tmp_path / "lib2.net").write_text(library)
    (tmp_path / "main2.net").write_text(main)
    lib_uri, _ = await open_document(client, tmp_path / "lib2.net")
    main_uri, _ = await open_document(client, tmp_path / "main2.net")
    client.diagnostics.pop(main_uri, None)
    await change_document(
        client, lib_uri, "block pair(c) = conv c k=3 p=1 + add(relu, conv (c * 2) k=1)\n"
    )
    (diagnostic,) = await diagnostics_of(client, main_uri)
    assert diagnostic.range.start == position_of(main, "pair(8)")
    assert "used here" in diagnostic.related_information[-1].message
    client.diagnostics.pop(main_uri, None)
    await close(client, lib_uri)  # main2.net reads lib2.net from the disk again: no error
    assert await diagnostics_of(client, main_uri) == []
    await close(client, main_uri)


async def test_use_hover_definition_and_completion(client: LanguageClient, tmp_path):
    text = "use resnet\n\nnetwork n(width=32):\n    input 3x64x64\n    stem(width) + \n"
    uri, _ = await open_document(client, tmp_path / "j.net", text)
    doc = types.TextDocumentIdentifier(uri=uri)
    hover = await client.text_document_hover_async(
        types.HoverParams(text_document=doc, position=position_of(text, "resnet"))
    )
    assert str(STDLIB_RESNET) in hover.contents.value and "`bottleneck`" in hover.contents.value
    location = await client.text_document_definition_async(
        types.DefinitionParams(text_document=doc, position=position_of(text, "resnet"))
    )
    assert location.uri == STDLIB_RESNET.as_uri() and location.range.start.line == 0
    modules = await client.text_document_completion_async(
        types.CompletionParams(text_document=doc, position=types.Position(line=0, character=4))
    )
    assert {"resnet", "vgg", "densenet"} <= {item.label for item in modules.items}
    names = await client.text_document_completion_async(
        types.CompletionParams(text_document=doc, position=types.Position(line=4, character=19))
    )
    kinds = {item.label: item.kind for item in names.items}
    assert kinds["width"] == types.CompletionItemKind.Variable  # a parameter in scope
    assert kinds["bottleneck"] == types.CompletionItemKind.Class  # a block of `use resnet`
    assert kinds["conv3"] == types.CompletionItemKind.Function  # a layer
    stage = next(item for item in names.items if item.label == "stage")
    assert stage.detail == "block stage(c, n, s=1, g=1, w=64, zero=false)"
    await close(client, uri)


async def test_warnings_are_diagnostics_with_their_code(client: LanguageClient, tmp_path):
    text = "network n:\n    input 3x32x32\n    conv 8 k=3 p=1 + bn + relu\n"
    uri, (warning,) = await open_document(client, tmp_path / "k.net", text)
    assert warning.severity == types.DiagnosticSeverity.Warning
    assert warning.code == "bias-before-bn"
    assert warning.source == "netdsl"
    assert warning.range.start == position_of(text, "conv 8")
    assert warning.related_information[0].message.startswith("hint: ")
    said = check_says(tmp_path, text)  # what `netdsl check` says of the same text
    assert f":3:5: warning: {warning.message} [bias-before-bn]" in said
    await close(client, uri)


async def test_formatting_is_one_edit_through_fmt(client: LanguageClient, tmp_path):
    from netdsl.fmt import format_text

    text = "network n:\n    input 3x32x32\n    conv 8 k=3 p=1 +   relu\n"
    uri, _ = await open_document(client, tmp_path / "l.net", text)
    options = types.FormattingOptions(tab_size=4, insert_spaces=True)
    (edit,) = await client.text_document_formatting_async(
        types.DocumentFormattingParams(
            text_document=types.TextDocumentIdentifier(uri=uri), options=options
        )
    )
    assert edit.new_text == format_text(text)
    assert edit.range == types.Range(
        start=types.Position(line=0, character=0), end=types.Position(line=3, character=0)
    )
    await change_document(client, uri, text + "    conv (\n")
    assert not await client.text_document_formatting_async(
        types.DocumentFormattingParams(
            text_document=types.TextDocumentIdentifier(uri=uri), options=options
        )
    )
    await close(client, uri)


async def test_definition_and_references_of_a_function_and_a_named_value(client, tmp_path):
    text = (
        "def half(v) = v // 2\n\nnetwork n(width=16):\n    input 3x32x32\n"
        "    x = conv width k=3 p=1\n    add(x, conv (half(width) * 2) k=1)\n"
    )
    uri, diagnostics = await open_document(client, tmp_path / "m.net", text)
    assert diagnostics == []
    doc = types.TextDocumentIdentifier(uri=uri)
    half = await client.text_document_definition_async(
        types.DefinitionParams(text_document=doc, position=position_of(text, "half(width"))
    )
    assert half.range.start == position_of(text, "half(v)")
    x = await client.text_document_definition_async(
        types.DefinitionParams(text_document=doc, position=position_of(text, "x, conv"))
    )
    assert x.range.start == position_of(text, "x = conv")
    uses = await client.text_document_references_async(
        types.ReferenceParams(
            text_document=doc,
            position=position_of(text, "x = conv"),
            context=types.ReferenceContext(include_declaration=True),
        )
    )
    assert [u.range.start for u in uses] == [
        position_of(text, "x = conv"),
        position_of(text, "x, conv"),
    ]
    await close(client, uri)
