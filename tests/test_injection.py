"""No DSL text can inject code into a generated program.

A catalogue of hostile names and strings goes into every place a name or a
value can take in a .net file, and through every template: the PyTorch and
Keras models, both training scripts and the Graphviz diagram. Each case is
either refused with a located NetdslError that names the problem, or it
compiles to a file whose syntax tree is the tree the same program gives with
a harmless name: the same constructs, the same imports and calls, the payload
only inside string constants or as a fresh identifier that collides with
nothing. A sample of the generated PyTorch models is executed and run; Keras
files are compiled by Python (importing Keras would double this file's time).
"""

from __future__ import annotations

import ast
import builtins
import functools
import inspect
import keyword
import shutil
import subprocess

import pytest
from conftest import need

from netdsl import NetdslError, compile_text
from netdsl.cli import main
from netdsl.emit import get_emitter
from netdsl.render import to_dot

NEUTRAL = "zq"  # the harmless name every place is compared against
FILE = "inj.net"

# ---- the payloads --------------------------------------------------------------------------------

# names that can never reach generated code: each with the reason given
KEYWORDS = [
    "class",
    "def",
    "import",
    "lambda",
    "None",
    "True",
    "False",
    "return",
    "yield",
    "await",
    "async",
    "global",
    "del",
    "with",
    "raise",
    "while",
    "from",
]
SOFT_KEYWORDS = ["match", "case", "_"]
BUILTINS = [
    "print",
    "eval",
    "exec",
    "open",
    "compile",
    "globals",
    "getattr",
    "super",
    "object",
    "len",
    "exit",
    "breakpoint",
    "str",
    "Exception",
    "type",
]
DUNDERS = ["__import__", "__init__", "__class__", "__builtins__", "__name__", "__x", "x__"]
NON_ASCII = ["é", "café", "ℓ", "Σ", "ｘ", "ｉｍｐｏｒｔ", "x\u200b", "x\u00a0y"]
TOO_LONG = ["a" * 65, "A" * 300]
# DSL words: the grammar owns them
DSL_WORDS = [
    "if",
    "else",
    "then",
    "in",
    "for",
    "not",
    "true",
    "id",
    "input",
    "output",
    "block",
    "train",
    "as",
]

# names that may be accepted, and then must neither shadow nor be shadowed
INTERNALS = [
    # frameworks and the modules generated code imports
    "torch",
    "nn",
    "F",
    "Tensor",
    "keras",
    "layers",
    "ops",
    "np",
    "math",
    "warnings",
    "os",
    "sys",
    "json",
    "argparse",
    "annotations",
    # generated code's own names
    "self",
    "x",
    "out",
    "identity",
    "inputs",
    "outputs",
    "model",
    "result",
    "forward",
    "build_model",
    "INPUT_SHAPE",
    "INPUT_SHAPES",
    "DEVICES",
    "place_devices",
    "in_channels",
    "name",
    "training",
    "device",
    "channels",
    "args",
    "RECIPE",
    "NETWORK",
    "main",
    "classes",
    # nn.Module and keras.Model attributes
    "to",
    "cuda",
    "apply",
    "modules",
    "parameters",
    "state_dict",
    "add_module",
    "call",
    "build",
    # class names of the frameworks and of netdsl's helpers
    "Module",
    "Model",
    "Conv2d",
    "Scale",
    "DropPath",
    "SeparableConv2d",
    "BatchNorm2dNoScale",
    "LocalResponseNorm",
    "MaxPoolPadding2D",
    "PaddedAveragePooling2D",
    "ChannelShuffle",
    "ceil_mode_padding",
    # the DSL's own vocabulary and the names netdsl gives layers and classes
    "conv",
    "conv1",
    "relu",
    "relu1",
    "add",
    "b",
    "B",
    "n",
    "N",
    "c",
    "Zq",
    "zq_",
    "same",
    "none",
    "range",
    # near misses, and names a linter finds ambiguous (E741: Keras code renames them)
    "Torch",
    "X",
    "Forward",
    "print_",
    "class_",
    "_x",
    "a" * 64,
    "l",
    "I",
    "O",
    "i",
]

MUST_REJECT = {
    **{n: "is a Python keyword" for n in KEYWORDS + SOFT_KEYWORDS},
    **{n: "is a Python built-in name" for n in BUILTINS},
    **{n: "double underscore" for n in DUNDERS},
    **{n: "syntax error: unexpected character" for n in NON_ASCII},
    **{n: "is longer than 64 characters" for n in TOO_LONG},
}
NAMES = [*MUST_REJECT, *DSL_WORDS, *INTERNALS]

# the names most likely to break a program that does not mangle them
RUN_SAMPLE = [
    "torch",
    "nn",
    "F",
    "Tensor",
    "self",
    "x",
    "out",
    "forward",
    "training",
    "to",
    "in_channels",
    "identity",
    "layers",
    "keras",
    "ops",
    "inputs",
    "model",
    "Scale",
    "b",
    "B",
    "n",
    "N",
    "conv",
    "relu",
    "Zq",
]

# strings inside DSL quotes (which cannot hold a quote or a line break)
STRINGS = [
    "relu\\",
    "\\",
    "\\\\",
    "x'); import os; ('",
    "'''",
    "\\'\\'\\'",
    "\x00",
    "\r",
    "\t",
    "\x0b\x0c",
    "{{ x }}",
    "{% if 1 %}",
    "${x}",
    "%(x)s",
    "é ℓ Σ ｘ",
    "\u2028\u2029",
    "\u202e",
    "\ufeff",
    "\\N{BULLET}",
    "\\u0022",
    "\\x22",
    "#",
    "a" * 300,
    "same",
]
# values from the command line or Python (`--param mode=...`) can hold anything
OVERRIDES = [
    *STRINGS,
    'a"; import os; "',
    '\n__import__("os").system("id")\n',
    '"""',
    "\\\n",
    "'\"\n",
    "\r\nimport os",
    '"""\nimport os\n"""',
]
# file names a .net file may have (they reach headers, docstrings and messages)
PATHS = [
    'evil"""\nimport os.net',
    "a\nimport os.net",
    "x\r.net",
    "é.net",
    "\u2028.net",
    "#.net",
    "a\\.net",
    "' + __import__('os') + '.net",
    "{{ x }}.net",
    "nul\x00.net",
]

# ---- where a name can go: programs in which {N} is the payload -------------------------------------

HEAD = "network n:\n    input 3x8x8\n"
PLACES = {
    "network": "network {N}(classes=10):\n    input 3x8x8\n    conv3 4 + gap + flatten + fc classes\n",
    "network parameter": "network n({N}=4, classes=10):\n    input 3x8x8\n"
    "    conv3 {N} + gap + flatten + fc classes\n",
    "block": "block {N}(c) = conv3 c + relu + scale 0.5 + drop_path 0.1\n"
    + HEAD
    + "    {N}(4) + {N}(5)\n",
    "block parameter": "block b({N}, s=1) = conv3 {N} s=s + relu\n"
    + HEAD
    + "    b(4) + b({N}=6, s=2)\n",
    "block default": "block b(c, {N}=2) = conv3 (c * {N}) + relu\n"
    "network n(k=3):\n    input 3x8x8\n    b(2) + b(2, {N}=k)\n",
    "label": HEAD + "    conv3 4 as {N} + relu + conv3 4\n",
    "block label": "block b(c) = conv3 c as {N} + relu\n" + HEAD + "    b(4) + [b(4)]*2\n",
    "repeat label": HEAD + "    [conv3 4 + relu as {N}]*2 + conv3 4\n",
    "tensor value": HEAD + "    {N} = conv3 4 + relu\n    add({N}, conv3 4) + concat({N}, id)\n",
    "block value": "block b(c):\n    {N} = conv3 c\n    add({N}, sigmoid)\n"
    + HEAD
    + "    b(4) + b(4)\n",
    "number value": HEAD + "    {N} = 2 * 2\n    conv3 {N} + [relu]*{N}\n",
    "block number value": "block b(c):\n    {N} = c * 2\n    conv3 {N}\n"
    + HEAD
    + "    b(2) + b(3)\n",
    "input": "network n:\n    input {N} 3x8x8\n    conv3 4\n    add({N} + conv3 4, id)\n",
    "second input": "network n:\n    input img 3x8x8\n    input {N} 3x8x8\n"
    "    add(img + conv3 4, {N} + conv3 4)\n",
    "output": HEAD + "    conv3 4 + relu\n    output aux @train = gap + flatten + fc 10\n"
    "    output {N} = conv3 4 + gap + flatten + fc 5\n",
    "aux output": HEAD + "    conv3 4 + relu\n    output {N} @train = gap + flatten + fc 10\n"
    "    output main = conv3 4 + gap + flatten + fc 5\n",
    "index": HEAD + "    [conv3 (4 + {N}) for {N} in range(3)]\n",
    "block index": "block b(c) = [conv3 (c + {N}) + relu for {N} in range(2)]\n"
    + HEAD
    + "    b(4) + b(5)\n",
    "placed label": HEAD + "    conv3 4 as {N} @gpu(1) + relu @cpu + conv3 4 @gpu(0)\n",
    "placed block": "block {N}(c) = sepconv c + lrn + shuffle 2\n"
    + HEAD
    + "    {N}(4) @gpu(0) + {N}(4) @gpu(1) + maxpool 3 s=2 ceil=true\n",
    "train option": HEAD + "    conv3 4\ntrain:\n    augment random_crop(8, {N}=4) hflip\n",
    "train choice": HEAD + "    conv3 4\ntrain:\n    optimizer {N} lr=0.1\n",
    "train augment": HEAD + "    conv3 4\ntrain:\n    augment {N}\n",
    "annotation": HEAD + "    conv3 4 @{N}\n",
}
# places where a name is data (a recipe key, a choice, an annotation), not an identifier
DATA_PLACES = {"train option", "train choice", "train augment", "annotation"}
# the train.py templates read the network's name, parameters, outputs, placement and recipe:
# there the names most likely to clash go through them too
TRAIN_PLACES = {"network", "network parameter", "aux output", "placed label", "train option"}
TRAIN_SAMPLE = {
    "torch",
    "keras",
    "np",
    "os",
    "json",
    "argparse",
    "model",
    "x",
    "args",
    "main",
    "RECIPE",
    "NETWORK",
    "build_model",
    "DEVICES",
    "classes",
    "a" * 64,
}

# where a string can go: {S} sits inside DSL quotes
STRING_PLACES = {
    "block string default": 'block b(c, mode="{S}") = if mode == "{S}" then conv3 c else '
    "conv3 c + relu\n" + HEAD + '    b(4) + b(4, mode="other")\n',
    "block string argument": 'block b(c, mode="plain") = if mode == "plain" then conv3 c '
    "else conv3 c + relu\n" + HEAD + '    b(4) + b(4, mode="{S}")\n',
    "network string parameter": 'block b(c, mode="plain") = if mode == "plain" then conv3 c '
    'else relu\nnetwork n(mode="{S}"):\n    input 3x8x8\n'
    "    b(4, mode) + b(4, mode)\n",
    "train strings": HEAD + '    conv3 4\ntrain:\n    optimizer adam betas="{S}"\n'
    '    schedule multistep milestones=("{S}", 3)\n'
    '    augment random_crop(8, padding="{S}")\n',
    "layer string": HEAD + '    conv 4 k=3 p="{S}"\n',
    "activation string": HEAD + '    conv3 4 act="{S}"\n',
    "use string": 'use "{S}"\n' + HEAD + "    conv3 4\n",
    "train choice string": HEAD + '    conv3 4\ntrain:\n    optimizer "{S}"\n',
}
STRING_TRAIN_PLACES = {"train strings", "network string parameter"}
# where no string but `same` means anything
REFUSED_STRING_PLACES = {"layer string", "activation string", "use string", "train choice string"}


def trains(place: str, name: str) -> bool:
    """Whether this case also goes through the train.py templates."""
    return place in STRING_TRAIN_PLACES or (place in TRAIN_PLACES and name in TRAIN_SAMPLE)


# ---- compiling and comparing ---------------------------------------------------------------------


class Refused(Exception):
    pass


@functools.cache
def outputs(
    source: str, path: str = FILE, train: bool = False, params: tuple = ()
) -> dict[str, str] | NetdslError:
    """The generated files of a program, or the NetdslError that refused it."""
    try:
        net = compile_text(source, path, params=dict(params))
        files = {}
        for target in ("torch", "keras"):
            emitter = get_emitter(target)
            files[f"{target} model"] = emitter.emit_model(net)
            if train:
                files[f"{target} train"] = emitter.emit_train(net, "model")
        files["dot"] = to_dot(net)
        return files
    except NetdslError as e:
        return e


def assert_located(error: NetdslError, path: str = FILE) -> None:
    assert error.span is not None, f"unlocated: {error.message}"
    assert (error.span.file, error.span.line >= 1, error.span.column >= 1) == (path, True, True)
    assert "Traceback" not in error.format()


_API = {
    "forward",
    "__init__",
    "build_model",
    "INPUT_SHAPE",
    "INPUT_SHAPES",
    "DEVICES",
    "call",
    "build",
    "get_config",
}


FORBIDDEN_CALLS = {
    "eval",
    "exec",
    "compile",
    "__import__",
    "open",
    "getattr",
    "setattr",
    "globals",
    "locals",
    "vars",
    "breakpoint",
    "input",
}
FORBIDDEN_MODULES = {"os", "subprocess", "sys", "shutil", "importlib", "builtins", "socket"}
_DEFS = (ast.FunctionDef, ast.ClassDef)


def _dotted(func: ast.expr) -> str | None:
    """What a call calls, as a dotted name (`nn.Conv2d`, `self.conv`, `layers.ReLU(...)`)."""
    parts = []
    while isinstance(func, (ast.Attribute, ast.Call)):
        if isinstance(func, ast.Attribute):
            parts.append(func.attr)
            func = func.value
        else:
            func = func.func
    return ".".join([func.id, *reversed(parts)]) if isinstance(func, ast.Name) else None


class Scan:
    """A top-level statement flattened into `tokens`: node types, constants, and each
    identifier as ("id", namespace, scope, spelling[, "arg"]). Namespaces: `name`
    (variables, functions, classes), `self` (attributes of self, methods), `attr` (other
    attributes), `kw` (keyword arguments); the scope is the function a local belongs to, or
    the class of a self attribute. Also what it `calls` and `imports`."""

    def __init__(self, stmt: ast.stmt, index: int) -> None:
        self.tokens: list = []
        self.calls: set[str] = set()
        self.imports: set[str] = set()
        self._index, self._count = index, 0
        self._walk(stmt, None, frozenset(), None, ())

    def _walk(self, node, function, local, klass, container) -> None:
        out = self.tokens
        kind = type(node)
        out.append(kind.__name__)
        if kind in _DEFS:
            scope = (self._index, self._count)
            self._count += 1
            method = klass is not None and container == klass  # an attribute of instances
            out.append(("id", "self" if method else "name", container, node.name))
            if kind is ast.FunctionDef:
                function = scope
                local = {
                    n.arg if isinstance(n, ast.arg) else n.id
                    for n in ast.walk(node)
                    if isinstance(n, ast.arg)
                    or (isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
                }
            else:
                klass = scope
            container = scope
        elif kind is ast.Call:
            dotted = _dotted(node.func)
            if dotted:
                self.calls.add(dotted)
        elif kind is ast.Import or kind is ast.ImportFrom:
            module = f"from {node.module} " if kind is ast.ImportFrom else ""
            self.imports |= {f"{module}import {a.name} as {a.asname}" for a in node.names}
        for field in node._fields:
            value = getattr(node, field, None)
            if kind is ast.Name and field == "id":
                out.append(("id", "name", function if value in local else (), value))
            elif kind is ast.arg and field == "arg":
                out.append(("id", "name", function, value, "arg"))
            elif kind is ast.Attribute and field == "attr":
                mine = isinstance(node.value, ast.Name) and node.value.id == "self"
                out.append(("id", "self", klass, value) if mine else ("id", "attr", (), value))
            elif kind is ast.keyword and field == "arg":
                out.append(("id", "kw", (), value))
            elif kind in _DEFS and field == "name":
                continue
            elif (kind is ast.alias or kind is ast.ImportFrom) and isinstance(value, str):
                out.append(("id", "name", (), value))
            elif isinstance(value, ast.AST):
                self._walk(value, function, local, klass, container)
            elif isinstance(value, list):
                out.append(len(value))
                for item in value:
                    if isinstance(item, ast.AST):
                        self._walk(item, function, local, klass, container)
                    else:
                        out.append(("v", item))
            elif kind is ast.Constant and isinstance(value, str):
                out.append(("str",))  # data: the tests of strings check it
            else:
                out.append(("v", repr(value)))


def _segments(text: str, tree: ast.Module) -> list[str]:
    lines = text.splitlines()
    return ["\n".join(lines[s.lineno - 1 : s.end_lineno]) for s in tree.body]


class Neutral:
    """What the neutral program's file is made of, worked out once per file."""

    def __init__(self, text: str) -> None:
        self.tree = ast.parse(text)
        self.segments = _segments(text, self.tree)
        self.defined = {n.name for n in self.tree.body if isinstance(n, _DEFS)}
        scans = [Scan(stmt, i) for i, stmt in enumerate(self.tree.body)]
        self.tokens = [scan.tokens for scan in scans]
        self.imports = set().union(*(scan.imports for scan in scans))
        self.calls = set().union(*(scan.calls for scan in scans))
        ids = [t for tokens in self.tokens for t in tokens if isinstance(t, tuple) and t[0] == "id"]
        # the names this file chooses: definitions, parameters (and their keywords),
        # assignments, attributes it sets on self
        self.renamable = set()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ClassDef):
                self.renamable.add(("name", node.name))
                self.renamable |= {
                    ("self", n.name) for n in node.body if isinstance(n, ast.FunctionDef)
                }
            elif isinstance(node, ast.FunctionDef):
                self.renamable.add(("name", node.name))
            elif isinstance(node, ast.arg):
                self.renamable |= {("name", node.arg), ("kw", node.arg)}
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                self.renamable.add(("name", node.id))
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                self.renamable.add(("self", node.attr))
        self.renamable = {(s, n) for s, n in self.renamable if n not in _API}
        future = {
            a.name
            for n in self.tree.body
            if isinstance(n, ast.ImportFrom) and n.module == "__future__"
            for a in n.names
        }
        fixed = {(t[1], t[3]) for t in ids} - self.renamable
        # what a renamed identifier may not be spelled as: a name the file uses as it is
        self.taboo = {
            "name": {n for s, n in fixed if s == "name"} - future | set(dir(builtins)),
            "self": {n for s, n in fixed if s == "self"} | _module_attributes(),
            "attr": set(),
            "kw": set(),
        }


@functools.cache
def _neutral(text: str) -> Neutral:
    return Neutral(text)


@functools.cache
def _module_attributes() -> frozenset:
    """What an nn.Module instance already has: a submodule may not take these names."""
    try:
        import torch
    except ImportError:
        return frozenset()
    return frozenset(dir(torch.nn.Module()))


def assert_same_program(text: str, neutral_text: str, what: str, model: bool) -> None:
    """`text` is the neutral file with the neutral name respelled: nothing added, nothing
    shadowed. Top-level statements that read the same are the same and are skipped."""
    base = _neutral(neutral_text)
    tree = ast.parse(text)
    if model:  # the compiler's own checks too (nesting, duplicate arguments)
        try:
            compile(tree, what, "exec")
        except SyntaxError as e:
            raise AssertionError(f"{what}: {e}") from None
    segments = _segments(text, tree)
    assert len(segments) == len(base.segments), f"{what}: a different program"
    changed = [i for i, (a, b) in enumerate(zip(segments, base.segments)) if a != b]
    scans = {i: Scan(tree.body[i], i) for i in changed}
    imports = set().union(*(scan.imports for scan in scans.values()))
    assert imports <= base.imports, f"{what}: imports {sorted(imports - base.imports)}"
    defined = base.defined | {n.name for n in tree.body if isinstance(n, _DEFS)}
    calls = set().union(*(scan.calls for scan in scans.values()))
    bad = {
        c
        for c in calls
        if c.split(".")[0] in FORBIDDEN_CALLS | FORBIDDEN_MODULES and c.split(".")[0] not in defined
    }
    assert bad <= base.calls, f"{what}: calls {sorted(bad - base.calls)}"
    forward: dict = {}
    backward: dict = {}
    for i in changed:
        mine, theirs = scans[i].tokens, base.tokens[i]
        assert len(mine) == len(theirs), f"{what}: a different statement:\n{segments[i]}"
        for got, want in zip(mine, theirs):
            if not (isinstance(want, tuple) and want[0] == "id" and isinstance(got, tuple)):
                assert got == want, f"{what}: {got!r} in place of {want!r}:\n{segments[i]}"
                continue
            # the same kind of identifier, bound in the same scope: a local hides nothing
            assert got[:3] == want[:3], f"{what}: {got} in place of {want}:\n{segments[i]}"
            space, scope, old, new = want[1], want[2], want[3], got[3]
            if (space, old) not in base.renamable:
                assert new == old, f"{what}: '{new}' in place of '{old}'"
                continue
            # renamed: one spelling per name, no two names spelled alike, and never the
            # spelling of something the file uses unchanged
            assert forward.setdefault((space, scope, old), new) == new, f"{what}: '{old}' respelled"
            assert backward.setdefault((space, scope, new), old) == old, (
                f"{what}: '{new}' stands for both '{old}' and '{backward[(space, scope, new)]}'"
            )
            if want[4:] == ("arg",):  # a parameter: its callers' keyword is spelled alike
                assert forward.setdefault(("kw", (), old), new) == new, (
                    f"{what}: parameter '{old}' and its keyword spelled differently"
                )
            assert new.isidentifier() and new.isascii() and not keyword.iskeyword(new), new
            if new != old:
                assert new not in base.taboo[space], (
                    f"{what}: '{new}' hides a name the file uses:\n{segments[i]}"
                )


def check_dot(text: str, neutral: str, what: str) -> None:
    """Quoting keeps the diagram's structure: as many statements and edges as the neutral one."""
    for line in text.split("\n"):
        assert line.count('"') % 2 == 0 or '\\"' in line, f"{what}: unbalanced quotes: {line}"
    assert text.count("->") == neutral.count("->"), f"{what}: edges changed"
    assert text.count("\n") == neutral.count("\n"), f"{what}: statements changed"


def check_case(
    source: str,
    neutral: str,
    what: str,
    train: bool,
    path: str = FILE,
    neutral_path: str = FILE,
    params=(),
    neutral_params=(),
):
    """The case is refused with a located error, or generates the neutral program respelled."""
    result = outputs(source, path, train, params)
    if isinstance(result, NetdslError):
        assert_located(result, path)
        raise Refused(result.message)
    base = outputs(neutral, neutral_path, train, neutral_params)
    assert not isinstance(base, NetdslError), f"{what}: the neutral program fails: {base}"
    for name, text in result.items():
        if name == "dot":
            check_dot(text, base[name], f"{what} ({name})")
        else:
            assert_same_program(text, base[name], f"{what} ({name})", "model" in name)
    return result


# ---- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("place", list(PLACES))
def test_names_in_every_place(place):
    """Every catalogued name in this place: refused with its reason, or compiled safely."""
    template = PLACES[place]
    neutral = template.replace("{N}", NEUTRAL)
    accepted = []
    for name in NAMES:
        what = f"{place} {name!r}"
        try:
            check_case(template.replace("{N}", name), neutral, what, trains(place, name))
        except Refused as refused:
            message = str(refused)
            if "syntax error" in message or name in DSL_WORDS:
                continue
            if place in DATA_PLACES:
                assert name.lower() in message.lower(), f"{what}: does not name it: {message}"
            elif name in MUST_REJECT:
                assert MUST_REJECT[name] in message and f"'{name}'" in message, f"{what}: {message}"
            continue
        assert name not in MUST_REJECT or place == "train option", f"{what} was accepted"
        if place == "network parameter":  # build_model(**params) takes the DSL's names
            files = outputs(template.replace("{N}", name), FILE, trains(place, name))
            for target in ("torch model", "keras model"):
                assert name in _build_model_parameters(files[target]), f"{what} ({target})"
        accepted.append(name)
    assert len(accepted) >= (0 if place in DATA_PLACES - {"train option"} else 40), place


def _build_model_parameters(text: str) -> list[str]:
    tree = ast.parse(text)
    build = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "build_model")
    return [a.arg for a in build.args.args + build.args.kwonlyargs]


def test_the_refusals_read_well():
    """One of each: the message names the name and why, and the hint offers another."""
    e = outputs("block b(c) = conv3 c as class + relu\n" + HEAD + "    b(4)\n")
    assert (e.message, e.hint) == (
        "label name 'class' is a Python keyword",
        "choose another name, e.g. 'class_'",
    )
    assert (e.span.line, e.span.column) == (1, 14)
    e = outputs(HEAD + "    é = conv3 4\n")
    assert (e.message, e.hint) == (
        "syntax error: unexpected character 'é'",
        "names and numbers are plain ASCII",
    )
    assert (e.span.line, e.span.column) == (3, 5)
    e = outputs(PLACES["block parameter"].replace("{N}", "a" * 300))
    assert e.message == f"parameter name '{'a' * 300}' is longer than 64 characters"
    e = outputs(PLACES["network"].replace("{N}", "torch"))
    assert e.message == "network name 'torch' is reserved for the generated code"


@pytest.mark.parametrize("target", ["torch", "keras"])
def test_hostile_names_through_the_command(tmp_path, capsys, target):
    """`netdsl compile` exits 1 with the located message and writes nothing."""
    source = tmp_path / "evil.net"
    source.write_text(PLACES["block label"].replace("{N}", "__import__"))
    code = main(
        ["compile", str(source), "--target", target, "-o", str(tmp_path / "m.py"), "--train"]
    )
    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    assert err.splitlines()[0] == (
        f"{source}:1:14: label name '__import__' may not start or end with a double underscore"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.net"]


# ---- strings and values --------------------------------------------------------------------------


def _string_literals(text: str) -> set:
    return {
        n.value
        for n in ast.walk(ast.parse(text))
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }


@pytest.mark.parametrize("place", list(STRING_PLACES))
def test_strings_in_every_place(place):
    """A string reaches generated code only as a Python literal of exactly its value."""
    template = STRING_PLACES[place]
    neutral = template.replace("{S}", "same" if place == "layer string" else NEUTRAL)
    train = place in STRING_TRAIN_PLACES
    for text in STRINGS:
        what = f"{place} {text!r}"
        try:
            files = check_case(template.replace("{S}", text), neutral, what, train)
        except Refused:
            continue
        assert place not in REFUSED_STRING_PLACES or text == "same", f"{what} was accepted"
        if place.startswith("train"):
            for name in ("torch train", "keras train"):
                assert text in _string_literals(files[name]), f"{what}: {name}"
        elif place == "network string parameter":
            for name in ("torch model", "keras model"):
                assert text in _string_literals(files[name]), f"{what}: {name}"


# fast: the values only an override can hold (quotes, newlines) and a few of STRINGS, which
# test_strings_in_every_place sends into generated code (from six places in the fast set);
# CI runs them all
FAST_OVERRIDES = {*OVERRIDES[len(STRINGS) :], "relu\\", "x'); import os; ('", "{{ x }}", "\x00"}


@pytest.mark.parametrize(
    "value",
    [v if v in FAST_OVERRIDES else pytest.param(v, marks=pytest.mark.slow) for v in OVERRIDES],
)
def test_parameter_overrides_are_literals(value):
    """`--param mode=...` can hold quotes and newlines: still one string constant."""
    template = STRING_PLACES["network string parameter"]
    files = check_case(
        template.replace("{S}", "plain"),
        template.replace("{S}", "plain"),
        f"--param mode={value!r}",
        train=True,
        params=(("mode", value),),
        neutral_params=(("mode", NEUTRAL),),
    )
    for name in ("torch model", "keras model"):
        assert value in _string_literals(files[name]), name


@pytest.mark.parametrize("path", PATHS)
def test_file_names(path):
    """A file's name reaches headers and docstrings as text, never as code."""
    files = check_case(
        PLACES["aux output"].replace("{N}", "aux"),
        PLACES["aux output"].replace("{N}", "aux"),
        f"file {path!r}",
        train=True,
        path=path,
    )
    for text in files.values():
        assert text.startswith(("# Generated by netdsl", "//", "digraph")), text[:80]


@pytest.mark.parametrize(
    "index, error",
    [
        ('"1"', "@gpu takes a GPU index such as 0 or 1"),
        ("1024", "@gpu takes a GPU index such as 0 or 1"),
        ("-1", "@gpu takes a GPU index such as 0 or 1"),
        ("1.5", "@gpu takes a GPU index such as 0 or 1"),
        ("true", "@gpu takes a GPU index such as 0 or 1"),
        ("relu", "@gpu takes a GPU index such as 0 or 1"),
        ("0, 1", "write @gpu(i) with the GPU's index"),
    ],
)
def test_placement_arguments(index, error):
    e = outputs(HEAD + f"    conv3 4 @gpu({index})\n")
    assert isinstance(e, NetdslError) and e.message == error
    assert_located(e)


def test_placement_devices_are_literals():
    """The highest GPU index allowed lands in DEVICES as the string it names."""
    files = outputs(HEAD + "    conv3 4 as head @gpu(1023) + relu\n", train=True)
    assert "cuda:1023" in _string_literals(files["torch model"])


# ---- model file names (-o) -----------------------------------------------------------------------


@pytest.mark.parametrize("target", ["torch", "keras"])
@pytest.mark.parametrize(
    "stem, problem",
    [
        ("class", "the model file name must be a Python module name, got 'class'"),
        ("None", "the model file name must be a Python module name, got 'None'"),
        ("my-model", "the model file name must be a Python module name, got 'my-model'"),
        (
            "os",
            "a model file named os.py would hide the module 'os' from train.py; "
            "give the model another name with -o",
        ),
        (
            "json",
            "a model file named json.py would hide the module 'json' from train.py; "
            "give the model another name with -o",
        ),
    ],
)
def test_model_file_names_that_train_py_cannot_import(tmp_path, capsys, target, stem, problem):
    """train.py imports the model by its file name: that name must be importable and new."""
    source = tmp_path / "n.net"
    source.write_text(PLACES["network"].replace("{N}", "n"))
    code = main(
        ["compile", str(source), "--target", target, "-o", str(tmp_path / f"{stem}.py"), "--train"]
    )
    out, err = capsys.readouterr()
    assert (code, out, err) == (1, "", f"netdsl: {problem}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.net"]


@pytest.mark.parametrize(
    "target, shadowed", [("torch", "torch"), ("keras", "keras"), ("keras", "numpy")]
)
def test_model_file_names_that_hide_a_framework(tmp_path, capsys, target, shadowed):
    source = tmp_path / "n.net"
    source.write_text(PLACES["network"].replace("{N}", "n"))
    code = main(
        [
            "compile",
            str(source),
            "--target",
            target,
            "-o",
            str(tmp_path / f"{shadowed}.py"),
            "--train",
        ]
    )
    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    assert err == (
        f"netdsl: a model file named {shadowed}.py would hide the module "
        f"'{shadowed}' from train.py; give the model another name with -o\n"
    )


def test_a_non_ascii_model_file_name_is_importable(tmp_path, capsys):
    """`-o é.py` is a legal module name: train.py imports it by that name."""
    source = tmp_path / "n.net"
    source.write_text(PLACES["network"].replace("{N}", "n"))
    imports = {
        "torch": "from é import INPUT_SHAPE, build_model",
        "keras": "model_module = importlib.import_module('é')",
    }
    for target, statement in imports.items():
        code = main(
            [
                "compile",
                str(source),
                "--target",
                target,
                "-o",
                str(tmp_path / "é.py"),
                "--train",
                "-q",
            ]
        )
        assert code == 0
        tree = ast.parse((tmp_path / "train.py").read_text(encoding="utf-8"))
        assert statement in {ast.unparse(n) for n in tree.body}
    capsys.readouterr()


# ---- the diagram ---------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_graphviz_reads_every_diagram():
    """Accepted cases' DOT, one graph after another through one `dot` run."""
    graphs = []
    for place, template in PLACES.items():
        for name in RUN_SAMPLE[::3]:
            result = outputs(template.replace("{N}", name), FILE, trains(place, name))
            if not isinstance(result, NetdslError):
                graphs.append(result["dot"])
    for place, template in STRING_PLACES.items():
        for text in STRINGS:
            result = outputs(template.replace("{S}", text), FILE, place in STRING_TRAIN_PLACES)
            if not isinstance(result, NetdslError):
                graphs.append(result["dot"])
    for path in PATHS:
        graphs.append(outputs(PLACES["aux output"].replace("{N}", "aux"), path, True)["dot"])
    assert len(graphs) > 150
    done = subprocess.run(
        ["dot", "-Tsvg"],
        input="\n".join(graphs).encode(),
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    assert done.stderr == b""
    assert done.stdout.count(b"</svg>") == len(graphs)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_render_command_quotes_file_names(tmp_path, capsys):
    """A file name full of DOT and HTML syntax stays inside its quoted tooltip."""
    source = tmp_path / 'a"b\\<i>&c].net'
    source.write_text(PLACES["block label"].replace("{N}", "self"))
    assert main(["render", str(source), "-o", str(tmp_path / "n.dot")]) == 0
    text = (tmp_path / "n.dot").read_text()
    quoted = str(source).replace("\\", "\\\\").replace('"', '\\"')
    assert f'tooltip="input ({quoted}:3:5)"' in text
    assert main(["render", str(source), "-o", str(tmp_path / "n.svg")]) == 0
    svg = (tmp_path / "n.svg").read_text()
    assert "a&quot;b\\&lt;i&gt;&amp;c].net:3:5" in svg
    capsys.readouterr()


# ---- running the generated code ------------------------------------------------------------------


def _exec(text: str, name: str) -> dict:
    namespace: dict = {"__name__": name}
    exec(compile(text, f"<{name}>", "exec"), namespace)  # noqa: S102 - the code under test
    return namespace


@pytest.mark.filterwarnings("ignore:this machine has")  # @gpu(i) on a CPU
@pytest.mark.slow
def test_generated_torch_models_build_and_run():
    """Accepted names change nothing a model computes: the neutral program's output shape."""
    torch = need("torch")
    ran = 0
    example = torch.randn(1, 3, 8, 8)
    for place, template in PLACES.items():
        neutral = outputs(template.replace("{N}", NEUTRAL))
        if isinstance(neutral, NetdslError):  # a place for names as data: none compiles
            continue
        with torch.no_grad():
            want = _exec(neutral["torch model"], "neutral")["build_model"]().eval()
            inputs = [example] * (2 if place == "second input" else 1)
            shape = tuple(want(*inputs).shape)
            for name in RUN_SAMPLE:
                result = outputs(template.replace("{N}", name), FILE, trains(place, name))
                if isinstance(result, NetdslError):
                    continue
                model = _exec(result["torch model"], f"{place} {name}")["build_model"]().eval()
                assert tuple(model(*inputs).shape) == shape, f"{place} {name!r}"
                assert sum(p.numel() for p in model.parameters()) == sum(
                    p.numel() for p in want.parameters()
                ), f"{place} {name!r}"
                ran += 1
    assert ran > 200


def test_payload_overrides_reach_build_model_as_values():
    """A hostile --param value is the string default of build_model's parameter, nothing more."""
    need("torch")
    value = '"; import os; os.system("false"); "'
    files = outputs(
        STRING_PLACES["network string parameter"].replace("{S}", "plain"), params=(("mode", value),)
    )
    namespace = _exec(files["torch model"], "override")
    assert "os" not in namespace
    signature = inspect.signature(namespace["build_model"])
    assert signature.parameters["mode"].default == value
    assert namespace["build_model"]().training  # it builds
