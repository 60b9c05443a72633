"""The editor packages in editors/: the VS Code extension's grammar, snippets and packaging.

The grammar test tokenizes every zoo file as VS Code does (vscode-textmate on Oniguruma, in
node) and checks that each character gets the same class of token (comment, keyword, layer,
number ...) as from the Pygments lexer, so that the docs and the editor show the same thing.
node and the extension's node_modules (`npm ci` in editors/vscode) are a skip for users
without them, and a failure when CI is set.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest
from conftest import ARCHITECTURES, ROOT, compile_text, need

need("pygments")

from pygments.token import (
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
)

from netdsl import textmate
from netdsl.initializers import FAMILIES
from netdsl.layers import CATALOGUE, MERGES
from netdsl.lexer import NetdslLexer
from netdsl.parser import parse
from netdsl.resources import STDLIB_DIR
from netdsl.symbolic import FUNCTIONS, INSTANCE_FUNCTIONS

VSCODE = ROOT / "editors" / "vscode"
GRAMMAR = VSCODE / "syntaxes" / "netdsl.tmLanguage.json"
ZOO = sorted([*ARCHITECTURES.glob("*.net"), *STDLIB_DIR.glob("*.net")])

# every word the lexer highlights as a builtin, in the places it does so, and the keywords
WORDS_SOURCE = "\n".join(
    [
        "def half(v) = v / 2",
        "block repeat(n) = [conv3 8 for i in range(n)]",
        *(f"    + {layer}" for layer in sorted(CATALOGUE)),
        *(f"    + {merge}(id, id)" for merge in MERGES),
        *(f"    x = {function}(1)" for function in (*FUNCTIONS, *INSTANCE_FUNCTIONS)),
        *(f"    conv 8 init={family}" for family in FAMILIES),
    ]
)

# token classes: (Pygments token type, TextMate scope prefix, class), the most specific first
CLASSES = [
    (Comment, "comment.", "comment"),
    (String, "string.", "string"),
    (Keyword.Constant, "constant.language", "constant"),
    (Number, "constant.numeric", "number"),
    (Operator, "keyword.operator", "operator"),
    (Keyword, "keyword.", "keyword"),
    (Name.Builtin, "support.function", "builtin"),
    (Name.Decorator, "entity.name.function.decorator", "decorator"),
    (Name.Function, "entity.name.function", "function"),
    (Name.Attribute, "variable.parameter", "parameter"),
    (Name.Label, "entity.name.label", "label"),
    (Name, "variable.other", "name"),
    (Punctuation, "punctuation.", "punctuation"),
]


def lexer_class(token) -> str:
    return next((name for kind, _, name in CLASSES if token in kind), "text")


def textmate_class(scopes: list[str]) -> str:
    innermost = scopes[-1]
    return next((name for _, prefix, name in CLASSES if innermost.startswith(prefix)), "text")


def lexer_classes(text: str) -> list[str]:
    """The class of each character of `text`, from the Pygments lexer."""
    classes = ["text"] * len(text)
    for start, token, value in NetdslLexer().get_tokens_unprocessed(text):
        classes[start : start + len(value)] = [lexer_class(token)] * len(value)
    return classes


def textmate_classes(text: str, tokens: list) -> list[str]:
    """The class of each character of `text`, from tokenize.mjs's tokens (line, start, end)."""
    line_starts = [0]
    for line in text.split("\n")[:-1]:
        line_starts.append(line_starts[-1] + len(line) + 1)
    classes = ["text"] * len(text)
    for line, start, end, scopes in tokens:
        offset = line_starts[line]
        classes[offset + start : offset + end] = [textmate_class(scopes)] * (end - start)
    return classes


def need_node() -> str:
    """node, with the extension's node_modules installed: a skip without them, unless CI is set."""
    node = shutil.which("node")
    if node is None:
        missing = "node (https://nodejs.org, or `apt-get install nodejs npm`)"
    elif not (VSCODE / "node_modules" / "vscode-textmate").is_dir():
        missing = "editors/vscode/node_modules: run `npm ci` in editors/vscode"
    else:
        return node
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the editor tests, which need {missing}")
    pytest.skip(f"needs {missing}")


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory) -> dict[str, tuple[str, list]]:
    """Every zoo file and WORDS_SOURCE, tokenized by one node process: {name: (text, tokens)}."""
    node = need_node()
    words = tmp_path_factory.mktemp("editors") / "words.net"
    words.write_text(WORDS_SOURCE, encoding="utf-8")
    paths = {path.relative_to(ROOT).as_posix(): path for path in ZOO} | {"words": words}
    run = subprocess.run(
        [node, VSCODE / "test" / "tokenize.mjs", *map(str, paths.values())],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    tokens = json.loads(run.stdout)
    return {
        name: (path.read_text(encoding="utf-8"), tokens[str(path)]) for name, path in paths.items()
    }


def test_the_committed_grammar_is_the_generated_one():
    assert GRAMMAR.read_text(encoding="utf-8") == textmate.render(), (
        "editors/vscode/syntaxes/netdsl.tmLanguage.json is out of date: run "
        "`python -m netdsl.textmate > editors/vscode/syntaxes/netdsl.tmLanguage.json`"
    )


@pytest.mark.parametrize("name", [*(p.relative_to(ROOT).as_posix() for p in ZOO), "words"])
def test_textmate_grammar_and_pygments_lexer_agree(tokenized, name):
    text, tokens = tokenized[name]
    lexed, highlighted = lexer_classes(text), textmate_classes(text, tokens)
    lines = text.split("\n")
    disagreements = []
    offset = 0
    while offset < len(text):
        if text[offset].isspace() or lexed[offset] == highlighted[offset]:
            offset += 1
            continue
        end = offset  # the run of characters that disagree alike
        while end < len(text) and (lexed[end], highlighted[end]) == (
            lexed[offset],
            highlighted[offset],
        ):
            end += 1
        line = text.count("\n", 0, offset)
        column = offset - text.rfind("\n", 0, offset) - 1
        disagreements.append(
            f"{name}:{line + 1}:{column + 1}: {text[offset:end]!r} is {highlighted[offset]} "
            f"in VS Code, {lexed[offset]} in Pygments\n    {lines[line]}"
        )
        offset = end
    assert not disagreements, "\n".join(disagreements[:20])


def test_every_layer_merge_function_and_initializer_highlights_as_a_builtin(tokenized):
    text, tokens = tokenized["words"]
    classes = textmate_classes(text, tokens)

    def highlighted(word: str) -> str:
        match = re.search(rf"(?<![\w.]){word}\b", text)
        [kind] = set(classes[match.start() : match.end()])
        return kind

    for word in [*CATALOGUE, *MERGES, *FUNCTIONS, *INSTANCE_FUNCTIONS, "range", *FAMILIES]:
        assert highlighted(word) == "builtin", word
    for word in ["def", "block", "for", "in"]:
        assert highlighted(word) == "keyword", word


# ---- the rest of the extension ------------------------------------------------------------------


def _manifest() -> dict:
    return json.loads((VSCODE / "package.json").read_text(encoding="utf-8"))


def test_the_manifest_points_at_files_that_exist():
    manifest = _manifest()
    contributes = manifest["contributes"]
    [language] = contributes["languages"]
    [grammar] = contributes["grammars"]
    assert language["id"] == grammar["language"] == "netdsl"
    assert language["extensions"] == [f".{t}" for t in textmate.grammar()["fileTypes"]]
    assert grammar["scopeName"] == textmate.grammar()["scopeName"]
    for path in (
        manifest["main"],
        language["configuration"],
        grammar["path"],
        *(s["path"] for s in contributes["snippets"]),
    ):
        assert (VSCODE / path).is_file(), path
    settings = contributes["configuration"]["properties"]
    assert settings["netdsl.server.command"]["default"] == ["netdsl", "lsp"]


def _expand(body: list[str]) -> str:
    """A snippet as typed with every default accepted: `${1:x}` -> x, `${1|a,b|}` -> a, $0 -> ''."""
    text = "\n".join(body).replace("\t", "    ")
    text = re.sub(r"\$\{\d+\|([^,|]*)[^}]*\}", r"\1", text)
    text = re.sub(r"\$\{\d+:([^}]*)\}", r"\1", text)
    return re.sub(r"\$\d+", "", text) + "\n"


def test_snippets_expand_to_programs_that_check():
    snippets = json.loads((VSCODE / "snippets" / "netdsl.json").read_text(encoding="utf-8"))
    text = {name: _expand(snippet["body"]) for name, snippet in snippets.items()}
    compile_text(text["network"])
    program = (
        text["use"]
        + text["block"]
        + text["residual block"]
        + "network uses_the_snippets:\n"
        + "    input 3x32x32\n"
        + "    unit(16) + residual(16) + residual(32, s=2) + stem(16) + gap + fc 10\n"
        + text["train section"]
    )
    assert compile_text(program).total_params > 0
    for snippet in text.values():
        parse(snippet, "snippet.net")


def test_the_use_snippet_offers_every_standard_library_module():
    snippets = json.loads((VSCODE / "snippets" / "netdsl.json").read_text(encoding="utf-8"))
    choices = re.search(r"\$\{1\|([^|]*)\|\}", snippets["use"]["body"][0]).group(1)
    assert sorted(choices.split(",")) == sorted(path.stem for path in STDLIB_DIR.glob("*.net"))


def test_a_line_ending_in_a_colon_indents_the_next_one():
    """language-configuration.json's indentation rule, checked on the zoo (JavaScript and Python
    read these regular expressions alike). A header broken over lines (`network m(a=1,` ...
    `b=2):`) indents from its last line, as in Python: the rule sees one line."""
    config = json.loads((VSCODE / "language-configuration.json").read_text(encoding="utf-8"))
    indent_after = re.compile(config["indentationRules"]["increaseIndentPattern"])
    assert config["comments"]["lineComment"] == "#"
    headers = 0
    for path in ZOO:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        depth = 0  # open brackets before the line
        for line, following in zip(lines, lines[1:]):
            code = line.split("#", 1)[0].rstrip()
            assert bool(indent_after.match(line)) == code.endswith(":"), f"{path.name}: {line!r}"
            if code.endswith(":") and depth == 0:
                headers += 1
                assert len(following) - len(following.lstrip()) > len(line) - len(line.lstrip())
            depth += code.count("(") + code.count("[") - code.count(")") - code.count("]")
    assert headers >= len(list(ARCHITECTURES.glob("*.net")))


def test_the_client_is_valid_javascript():
    node = need_node()
    check = subprocess.run([node, "--check", VSCODE / "extension.js"], capture_output=True)
    assert check.returncode == 0, check.stderr.decode()


@pytest.mark.slow
def test_the_extension_packages_into_a_vsix(tmp_path):
    node = need_node()
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout
    assert int(version.lstrip("v").split(".")[0]) >= 20, (
        f"@vscode/vsce needs node 20+, not {version}"
    )
    npx = shutil.which("npx")
    assert npx, "npx comes with node's npm"
    vsix = tmp_path / "netdsl.vsix"
    run = subprocess.run(
        [npx, "--no-install", "vsce", "package", "--out", vsix],
        cwd=VSCODE,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    names = set(zipfile.ZipFile(vsix).namelist())
    for path in (
        "package.json",
        "extension.js",
        "language-configuration.json",
        "syntaxes/netdsl.tmLanguage.json",
        "snippets/netdsl.json",
        "readme.md",  # vsce lower-cases these two
        "changelog.md",
        "LICENSE.txt",
        "node_modules/vscode-languageclient/node.js",
    ):
        assert f"extension/{path}" in names, path
    # what only the tests and the packaging use stays out
    for left_out in ("test/", "node_modules/vscode-textmate/", "node_modules/@vscode/vsce/"):
        assert not [name for name in names if name.startswith(f"extension/{left_out}")], left_out


# ---- Neovim and Helix ---------------------------------------------------------------------------

NEOVIM = ROOT / "editors" / "neovim" / "netdsl.lua"
HELIX = ROOT / "editors" / "helix" / "languages.toml"


def _helix() -> dict:
    tomllib = need("tomllib")  # Python 3.11+
    return tomllib.loads(HELIX.read_text(encoding="utf-8"))


def test_helix_runs_the_server_and_the_formatter_netdsl_has():
    config = _helix()
    [language] = config["language"]
    assert language["name"] == "netdsl"
    assert language["scope"] == textmate.grammar()["scopeName"]
    assert language["file-types"] == textmate.grammar()["fileTypes"]
    assert language["comment-tokens"] == "#"
    [server] = language["language-servers"]
    assert [
        config["language-server"][server]["command"],
        *config["language-server"][server]["args"],
    ] == ["netdsl", "lsp"]
    assert [language["formatter"]["command"], *language["formatter"]["args"]] == [
        "netdsl",
        "fmt",
        "-",
    ]


def test_the_editors_formatter_command_formats_stdin_to_stdout(tmp_path):
    """Helix's `formatter` and Neovim's `formatprg`, `netdsl fmt -`, print what `netdsl fmt FILE`
    writes."""
    formatter = _helix()["language"][0]["formatter"]
    command = [formatter["command"], *formatter["args"]]
    assert f'formatprg = "{" ".join(command)}"' in NEOVIM.read_text(encoding="utf-8")
    source = "use resnet\nnetwork t(c=8):\n  input 3x32x32\n  stem(c)+stage(c,2)   # two units\n"
    (tmp_path / "t.net").write_text(source, encoding="utf-8")
    netdsl = [sys.executable, "-m", "netdsl"]
    subprocess.run([*netdsl, "fmt", "t.net"], cwd=tmp_path, check=True, capture_output=True)
    formatted = (tmp_path / "t.net").read_text(encoding="utf-8")
    run = subprocess.run(
        [*netdsl, *command[1:]], input=source, capture_output=True, text=True, timeout=60
    )
    assert (run.returncode, run.stderr) == (0, "")
    assert run.stdout == formatted != source


def test_neovim_takes_every_zoo_file_for_netdsl():
    """netdsl.lua's content test for `.net` files (Lua patterns: `%s` is `\\s`)."""
    lua = NEOVIM.read_text(encoding="utf-8")
    definitions = re.search(r"local DEFINITION = \{(.*?)\}", lua).group(1)
    patterns = [p.replace("%s", r"\s") for p in re.findall(r'"([^"]+)"', definitions)]
    lines_read = int(re.search(r"nvim_buf_get_lines\(bufnr, 0, (\d+), false\)", lua).group(1))
    assert 'vim.lsp.config("netdsl", { cmd = cmd' in lua and 'or { "netdsl", "lsp" }' in lua
    for path in ZOO:
        head = path.read_text(encoding="utf-8").splitlines()[:lines_read]
        assert any(re.match(p, line) for p in patterns for line in head), path.name
