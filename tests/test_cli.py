"""The `netdsl` command: exit codes, check, summary (table and the JSON contract).

Most tests call `netdsl.cli.main` in-process; a few run the real command in a
subprocess for what only a process shows (tracebacks, imported modules).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from conftest import ARCHITECTURES, ROOT, check_doc_programs, run_cli

VGG16 = str(ARCHITECTURES / "vgg16.net")
RESNET50 = str(ARCHITECTURES / "resnet50.net")
DENSENET121 = str(ARCHITECTURES / "densenet121.net")


def netdsl(*argv: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "netdsl", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


@pytest.fixture
def bad_file(tmp_path):
    path = tmp_path / "bad.net"
    path.write_text("network n:\n    input 64x56x56\n    add(conv1 256, id)\n")
    return str(path)


# ---- exit codes --------------------------------------------------------------------------------


def test_check_clean_file_exits_0_with_a_one_line_report(capsys):
    code, out, err = run_cli(capsys, "check", VGG16)
    assert (code, err) == (0, "")
    assert out == f"{VGG16}: ok: vgg16, 41 nodes, 138,357,544 params, 15,470,264,320 MACs\n"


def test_check_user_error_exits_1_with_the_located_message(capsys, bad_file):
    code, out, err = run_cli(capsys, "check", bad_file)
    assert (code, out) == (1, "")
    assert err.splitlines()[:3] == [
        f"{bad_file}:3:5: add: branch shapes differ: 256x56x56 (branch 1) vs 64x56x56 (branch 2)",
        "        add(conv1 256, id)",
        "        ^~~~~~~~~~~~~~~~~~",
    ]


def test_check_several_files_reports_each_and_fails_if_any_fails(capsys, bad_file):
    code, out, err = run_cli(capsys, "check", VGG16, bad_file, RESNET50)
    assert code == 1
    assert [line.split(": ok: ")[0] for line in out.splitlines()] == [VGG16, RESNET50]
    assert err.startswith(f"{bad_file}:3:5: add:")


def test_check_quiet_prints_errors_only(capsys, bad_file):
    assert run_cli(capsys, "check", "-q", VGG16) == (0, "", "")
    code, out, err = run_cli(capsys, "check", "--quiet", VGG16, bad_file)
    assert (code, out) == (1, "") and err.startswith(bad_file)


def test_user_errors_exit_1_without_a_traceback(bad_file):
    for argv in (
        ["check", bad_file],
        ["summary", bad_file],
        ["check", "missing.net"],
        ["summary", VGG16, "--param", "clases=10"],
    ):
        result = netdsl(*argv)
        assert result.returncode == 1, argv
        assert "Traceback" not in result.stderr and result.stderr.strip(), argv
    assert (
        netdsl("check", "missing.net").stderr
        == "netdsl: no such file or zoo network: missing.net\n"
    )


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["check"],
        ["frobnicate", VGG16],
        ["summary", VGG16, "--bogus"],
        ["summary", VGG16, "--depth", "x"],
        ["summary"],
    ],
)
def test_bad_usage_exits_2(capsys, argv):
    code, out, err = run_cli(capsys, *argv)
    assert (code, out) == (2, "")
    assert "usage: netdsl" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv, error",
    [
        (["summary", VGG16, "--bogus"], "netdsl summary: error: unrecognized arguments: --bogus"),
        (
            ["check", VGG16, "--input", "3x32"],
            "netdsl check: error: --input expects CxHxW such as 3x64x64, got '3x32'",
        ),
        (
            ["compile", VGG16, "--target", "torch", "--param", "classes"],
            "netdsl compile: error: --param expects NAME=VALUE, got 'classes'",
        ),
    ],
)
def test_a_usage_mistake_shows_that_commands_usage(capsys, argv, error):
    """Not netdsl's one-line usage, which lists no options: the command's, which does."""
    code, out, err = run_cli(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.startswith(f"usage: netdsl {argv[0]} [-h]") and err.splitlines()[-1] == error


def test_zoo_networks_may_be_named_without_a_path(capsys):
    code, out, _ = run_cli(capsys, "check", "resnet50")
    assert code == 0 and out.startswith("resnet50: ok: resnet50, 175 nodes, 25,557,032 params")


# ---- summary --json: the contract ------------------------------------------------------------------


CONTRACT = {"network", "inputs", "outputs", "params", "macs", "layers"}
LAYER_KEYS = {"name", "op", "out_shape", "params", "macs", "source"}
# documented extras of a layer: what each tensor starts from (a layer with weights)
LAYER_EXTRAS = {"init"}
SOURCE = re.compile(r"^.+\.net:\d+:\d+$")


def summary(capsys, *argv: str) -> dict:
    code, out, err = run_cli(capsys, "summary", *argv, "--json")
    assert (code, err) == (0, "")
    return json.loads(out)


@pytest.mark.parametrize(
    "path, name, params, macs",
    [
        (VGG16, "vgg16", 138357544, 15470264320),
        (RESNET50, "resnet50", 25557032, 4089184256),
        (DENSENET121, "densenet121", 7978856, 2834161664),
    ],
)
def test_summary_json_reports_torchvision_figures(capsys, path, name, params, macs):
    d = summary(capsys, path)
    # the contract's keys, plus two documented extras
    assert set(d) == CONTRACT | {"buffers", "train_outputs"}
    assert (d["network"], d["params"], d["macs"]) == (name, params, macs)
    assert d["inputs"] == {"input": [3, 224, 224]}
    assert d["outputs"] == {"output": [1000]} and d["train_outputs"] == []
    for layer in d["layers"]:
        assert LAYER_KEYS <= set(layer) <= LAYER_KEYS | LAYER_EXTRAS, layer
        assert ("init" in layer) == (layer["params"] > 0), layer
        assert SOURCE.match(layer["source"]), layer
        assert all(isinstance(x, int) for x in layer["out_shape"])
    assert sum(layer["params"] for layer in d["layers"]) == params
    assert sum(layer["macs"] for layer in d["layers"]) == macs
    assert len({layer["name"] for layer in d["layers"]}) == len(d["layers"])
    assert d["layers"][-1]["op"] == "fc" and d["layers"][-1]["out_shape"] == [1000]


def test_summary_json_layers_in_detail(capsys):
    d = summary(capsys, VGG16)
    first = d["layers"][0]
    assert {k: first[k] for k in ("name", "op", "out_shape", "params", "macs")} == {
        "name": "vgg1.convs.0.conv",
        "op": "conv",
        "out_shape": [64, 224, 224],
        "params": 1792,
        "macs": 86704128,
    }
    assert [layer["op"] for layer in d["layers"][:2]] == ["conv", "relu"]
    assert d["buffers"] == 0
    assert summary(capsys, RESNET50)["buffers"] == 53120  # BatchNorm running mean and variance


def test_summary_json_marks_train_only_layers(capsys, tmp_path):
    path = tmp_path / "aux.net"
    path.write_text(
        "network n:\n    input 3x8x8\n    conv3 4\n"
        "    output aux @train = gap + fc 2\n    gap + fc 3\n"
    )
    d = summary(capsys, str(path))
    assert list(d["outputs"].items()) == [("output", [3]), ("aux", [2])]
    assert d["train_outputs"] == ["aux"]
    train_only = [layer["name"] for layer in d["layers"] if layer.get("train_only")]
    assert train_only == ["gap1", "fc1"]
    assert d["macs"] == 4 * 64 * 27 + 4 * 3  # the aux head's fc is not on the eval path
    assert d["params"] == 112 + 10 + 15


def test_param_override_changes_the_last_fc(capsys):
    d = summary(capsys, VGG16, "--param", "classes=10")
    assert d["outputs"] == {"output": [10]}
    assert d["layers"][-1]["params"] == 4096 * 10 + 10
    assert d["params"] == 138357544 - 4097000 + 40970
    code, out, _ = run_cli(capsys, "check", RESNET50, "--param", "classes=10")
    assert code == 0 and "23,528,522 params" in out


def test_param_override_of_an_unknown_parameter(capsys):
    code, out, err = run_cli(capsys, "summary", VGG16, "--param", "clases=10")
    assert (code, out) == (1, "")
    assert "network vgg16 has no parameter 'clases'" in err
    assert "hint: did you mean 'classes'?" in err


# ---- summary table ------------------------------------------------------------------------------


def test_summary_table_lists_every_layer_and_the_totals(capsys):
    code, out, _ = run_cli(capsys, "summary", VGG16)
    assert code == 0
    rows = out.splitlines()
    assert rows[0] == "vgg16 (architectures/vgg16.net)"  # zoo files: install-independent
    assert rows[1] == "inputs: input 3x224x224"
    assert rows[2].split() == ["Layer", "Op", "Output", "shape", "Params", "MACs"]
    assert rows[4].split() == ["vgg1.convs.0.conv", "conv", "64x224x224", "1,792", "86,704,128"]
    assert rows[-5].split() == ["fc3", "fc", "1000", "4,097,000", "4,096,000"]
    assert rows[-3].startswith("params: 138,357,544")
    assert rows[-2].startswith("MACs:   15,470,264,320")
    assert rows[-1] == "outputs: output 1000"
    assert len(rows) == 4 + 40 + 4


def test_summary_depth_collapses_blocks(capsys):
    code, out, _ = run_cli(capsys, "summary", VGG16, "--depth", "0")
    assert code == 0
    body = [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()[4:-4]]
    assert [row[0] for row in body[:5]] == [f"vgg{i}" for i in range(1, 6)]
    assert [row[1] for row in body[:5]] == [
        "vgg(2, 64)",
        "vgg(2, 128)",
        "vgg(3, 256)",
        "vgg(3, 512)",
        "vgg(3, 512)",
    ]
    assert body[0][2:] == ["64x112x112", "38,720", "1,936,392,192"]
    assert len(body) == 5 + 9
    code, out, _ = run_cli(capsys, "summary", RESNET50, "--depth", "1")
    names = [line.split()[0] for line in out.splitlines()[4:-4]]
    assert names[:5] == [
        "stem.conv_bn",
        "stem.relu",
        "stem.maxpool",
        "stage1.bottleneck",
        "stage1.bottlenecks",
    ]


# ---- check stays light ------------------------------------------------------------------------------


def test_check_imports_neither_torch_nor_tensorflow():
    probe = (
        "import sys\n"
        "from netdsl.cli import main\n"
        "code = main(['check', '-q', sys.argv[1]])\n"
        "heavy = sorted(m for m in ('torch', 'tensorflow', 'keras', 'jax') if m in sys.modules)\n"
        "print(code, heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, RESNET50],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.stdout == "0 []\n", result.stderr


# ---- the language reference's examples ------------------------------------------------------------


def test_language_reference_examples_check():
    """Every complete ```netdsl example in docs/language.md (one with a network) checks."""
    check_doc_programs(ROOT / "docs" / "language.md", minimum=20)


def test_no_module_imports_the_command_line_back():
    """cli.py imports the command modules; they (and everything else but `python -m netdsl`)
    take what they share from netdsl.commandline, so no import cycle runs through cli.py."""
    import ast

    importers = []
    for path in sorted((ROOT / "netdsl").rglob("*.py")):
        package = ["netdsl", *path.relative_to(ROOT / "netdsl").parent.parts]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                names = [module] + [f"{module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            if "netdsl.cli" in names:
                importers.append(path.relative_to(ROOT).as_posix())
    # the two ways the command line is run: `python -m netdsl`, and the web playground's
    # worker (which runs `netdsl summary FILE` ... inside Pyodide)
    assert importers == ["netdsl/__main__.py", "netdsl/web/playground/bridge.py"]
