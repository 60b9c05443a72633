"""`netdsl playground`: the static site it builds, and the Python its page runs.

The site must work from any static host with no network: every file it loads is in the
folder, the build is the same bytes every time, and the page's Python (bridge.py) answers
exactly what the CLI prints for the same file. The browser side is
test_playground_browser.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest
from conftest import ARCHITECTURES, ROOT, run_cli
from playground_site import SKIP_ADD, SKIP_FIXED

from netdsl import playground
from netdsl.errors import NetdslError
from netdsl.web.playground import bridge

pytest_plugins = ("playground_site",)  # the `site` fixture: the site, built once a session

OWN_FILES = ("index.html", "app.js", "worker.js", "playground.css")
# URLs the vendored files hold that nothing loads: XML namespace names, the credits in
# Graphviz's wasm, and Pyodide's default package CDN, which worker.js replaces with the
# site's own folder (packageBaseUrl) and which no package load reaches (none is loaded)
INERT_URLS = (
    "http://www.w3.org/",
    "https://www.graphviz.org",
    "https://libexpat.github.io",
    "https://cdn.jsdelivr.net/pyodide/v${",
)


def netdsl_process(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [sys.executable, "-m", "netdsl", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )


# ---- the site ---------------------------------------------------------------------------------


def test_the_site_holds_everything_the_page_loads(site):
    files = sorted(p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file())
    wheels = [f"{pin.wheel}" for pin in playground.WHEELS]
    assert files == sorted(
        [
            *OWN_FILES,
            *(f"pyodide/{name}" for name in playground.PYODIDE.files),
            *(f"wheels/{name}" for name in wheels),
            "wheels/netdsl-0.1.0-py3-none-any.whl",
            "vendor/codemirror.js",
            "vendor/viz-global.js",
            "vendor/diagram.js",
            "vendor/diagram.css",
        ]
    )
    data = page_data(site)
    assert data["wheels"] == [*wheels, "netdsl-0.1.0-py3-none-any.whl"]
    assert data["default"] == "resnet50"
    assert sorted(data["examples"]) == sorted(p.stem for p in ARCHITECTURES.glob("*.net"))
    assert data["examples"]["resnet50"] == (ARCHITECTURES / "resnet50.net").read_text()
    # the editor colours netdsl's own words
    assert {"conv", "bn", "relu", "maxpool", "fc"} <= set(data["words"]["layers"])
    assert {"add", "concat"} <= set(data["words"]["merges"])
    assert {"network", "block", "use", "input"} <= set(data["words"]["keywords"])


def page_data(site: Path) -> dict:
    html = (site / "index.html").read_text()
    found = re.search(
        r'<script type="application/json" id="netdsl-data">(.*?)</script>', html, re.S
    )
    return json.loads(found.group(1))


def test_nothing_in_the_site_loads_from_another_host(site):
    """The page, its worker and stylesheet name no URL at all; the vendored files only ones
    that nothing fetches (the browser test checks every request the page makes, too)."""
    url = re.compile(r"https?://[^\s\"'`)<>\\]*")
    for name in OWN_FILES:
        text = (site / name).read_text()
        if name == "index.html":  # the zoo's comments are data, not links
            text = text.split('id="netdsl-data">')[0] + text.split("</script>", 1)[1]
        assert not url.findall(text), name
    for path in site.rglob("*"):
        if path.suffix in (".js", ".mjs", ".css") and path.name not in OWN_FILES:
            for found in url.findall(path.read_text(errors="replace")):
                assert found.startswith(INERT_URLS), f"{path.relative_to(site)}: {found}"


def test_the_build_is_the_same_bytes_every_time(site):
    again = playground.site_files()
    assert sorted(again) == sorted(
        p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()
    )
    for name, data in again.items():
        assert (site / name).read_bytes() == data, name


def test_the_netdsl_wheel_carries_the_package_data_and_runs_alone(site, tmp_path):
    wheel = site / "wheels/netdsl-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path / "site-packages")
    assert "netdsl/grammars/netdsl.lark" in names
    assert "netdsl/architectures/resnet50.net" in names
    assert "netdsl/stdlib/resnet.net" in names
    assert "netdsl/web/playground/bridge.py" in names
    assert any(name.startswith("netdsl/templates/torch/") for name in names)
    assert not [n for n in names if "__pycache__" in n or n.endswith((".js", ".pyc"))]
    assert "netdsl-0.1.0.dist-info/RECORD" in names


@pytest.mark.slow
def test_the_browser_side_imports_neither_numpy_nor_torch(site, tmp_path):
    """What the page runs, from the wheel alone, with numpy, torch, TensorFlow, Keras and
    Pygments made unimportable: Pyodide has none of them."""
    with zipfile.ZipFile(site / "wheels/netdsl-0.1.0-py3-none-any.whl") as archive:
        archive.extractall(tmp_path / "site-packages")
    script = """
import json, sys
for name in ("numpy", "torch", "tensorflow", "keras", "pygments", "scipy"):
    sys.modules[name] = None
import netdsl
assert netdsl.__file__.startswith(sys.argv[1]), netdsl.__file__
from netdsl.web.playground import bridge

pytest_plugins = ("playground_site",)  # the `site` fixture: the site, built once a session
text = open(sys.argv[2]).read()
print(json.loads(bridge.check("resnet50.net", text))["report"])
for command in ("summary", "explain", "torch", "keras"):
    assert json.loads(bridge.run("resnet50.net", text, command))["status"] == 0, command
assert "data" in json.loads(bridge.diagram("resnet50.net", text))
"""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(tmp_path / "site-packages"),
            str(ARCHITECTURES / "resnet50.net"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site-packages")},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("resnet50.net: ok: resnet50, 175 nodes, 25,557,032 params")


def test_markupsafe_is_built_pure(site):
    with zipfile.ZipFile(site / "wheels/markupsafe-3.0.3-py3-none-any.whl") as archive:
        names = archive.namelist()
        wheel_file = archive.read("markupsafe-3.0.3.dist-info/WHEEL").decode()
    assert "markupsafe/_native.py" in names
    assert not [n for n in names if n.endswith((".c", ".so"))]
    assert "Tag: py3-none-any" in wheel_file


# ---- the page's Python gives the CLI's outputs ------------------------------------------------


@pytest.mark.parametrize(
    "name, text",
    [
        ("skip.net", SKIP_ADD),
        ("skip.net", SKIP_FIXED),
        ("resnet50.net", (ARCHITECTURES / "resnet50.net").read_text()),
    ],
    ids=["add-mismatch", "fixed", "resnet50"],
)
def test_the_diagnostics_are_what_netdsl_check_prints(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    cli = netdsl_process("check", name, cwd=tmp_path)
    answer = json.loads(bridge.check(name, text))
    assert answer["report"] + "\n" == cli.stderr + cli.stdout


def test_an_add_mismatch_is_marked_at_its_line():
    answer = json.loads(bridge.check("skip.net", SKIP_ADD))
    [problem] = answer["problems"]
    assert problem["severity"] == "error"
    assert (problem["line"], problem["column"]) == (4, 7)
    assert problem["message"].startswith("add: branch shapes differ")
    assert answer["report"].startswith("skip.net:4:7: add: branch shapes differ")


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(bridge.COMMANDS))
@pytest.mark.parametrize("example", ["resnet50", "inception_v3"])
def test_the_tabs_are_what_the_cli_prints(tmp_path, command, example):
    text = (ARCHITECTURES / f"{example}.net").read_text()
    name = f"{example}.net"
    (tmp_path / name).write_text(text)
    argv = bridge.COMMANDS[command]
    cli = netdsl_process(argv[0], name, *argv[1:], cwd=tmp_path)
    answer = json.loads(bridge.run(name, text, command))
    assert (answer["status"], answer["stdout"], answer["stderr"]) == (
        cli.returncode,
        cli.stdout,
        cli.stderr,
    )


def test_a_tab_of_a_wrong_program_shows_the_error_as_the_cli_does():
    answer = json.loads(bridge.run("skip.net", SKIP_ADD, "torch"))
    assert answer["status"] == 1 and answer["stdout"] == ""
    assert answer["stderr"].startswith("skip.net:4:7: add: branch shapes differ")


def test_the_diagram_tab_gets_the_diagram_data():
    answer = json.loads(bridge.diagram("skip.net", SKIP_FIXED))
    assert answer["data"]["nodes"]
    assert json.loads(bridge.diagram("skip.net", SKIP_ADD))["error"].startswith("skip.net:4:7:")


# ---- the command ------------------------------------------------------------------------------


def test_without_a_download_cache_or_network_the_build_says_what_to_do(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("NETDSL_CACHE", str(tmp_path / "empty-cache"))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    code, out, err = run_cli(capsys, "playground", "-o", str(tmp_path / "site"))
    assert code == 1
    assert "could not download https://registry.npmjs.org/pyodide" in err
    assert "hint: the playground's files are downloaded once" in err
    assert "Traceback" not in err


def test_a_folder_of_other_files_is_not_written_into(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, "playground", "-o", str(tmp_path))
    assert code == 1
    assert "is not empty and not a playground netdsl built" in err
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_the_site_is_rebuilt_in_place(site, capsys):
    code, out, _ = run_cli(capsys, "playground", "-o", str(site))
    assert code == 0
    count = sum(1 for path in site.rglob("*") if path.is_file())
    assert out.startswith(f"wrote {site}/ ({count} files, ")


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "give -o DIR (write the site) or --serve"),
        (["--port", "8000", "-o", "x"], "--port goes with --serve"),
        (["--serve", "--port", "70000"], "--port must be between 0 and 65535"),
    ],
)
def test_usage_errors(capsys, argv, message):
    code, _, err = run_cli(capsys, "playground", *argv)
    assert code == 2
    assert message in err


@pytest.mark.slow
def test_serve_prints_its_url_serves_wasm_as_wasm_and_stops_on_ctrl_c(site):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "netdsl", "playground", "--serve", "--port", "0", "-o", str(site)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout.readline().startswith(f"wrote {site}/")
        line = process.stdout.readline()
        url = re.match(
            r"netdsl playground: (http://127\.0\.0\.1:\d+/) \(Ctrl-C stops\)", line
        ).group(1)
        with urllib.request.urlopen(url + "pyodide/pyodide.asm.wasm") as response:
            assert response.headers["Content-Type"] == "application/wasm"
        with urllib.request.urlopen(url) as response:
            assert b"netdsl-playground" in response.read()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        assert "Traceback" not in process.stderr.read()
    finally:
        process.kill()
        process.wait()


def test_offline_rebuilds_come_from_the_cache(site, tmp_path, monkeypatch):
    """The session's build filled the cache: a second build needs no network."""

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    playground.build(tmp_path / "again")
    assert (tmp_path / "again/pyodide/pyodide.asm.wasm").read_bytes() == (
        site / "pyodide/pyodide.asm.wasm"
    ).read_bytes()


def test_a_download_that_fails_its_hash_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("NETDSL_CACHE", str(tmp_path))

    class Tampered:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self):
            return b"not lark"

    monkeypatch.setattr(urllib.request, "urlopen", lambda *args, **kwargs: Tampered())
    with pytest.raises(NetdslError, match="lark-1.3.1-py3-none-any.whl from PyPI fails its sha256"):
        playground.fetch_pypi(playground.WHEELS[0])
    assert not (tmp_path / "pypi/lark-1.3.1-py3-none-any.whl").exists()


@pytest.mark.slow
def test_the_committed_codemirror_bundle_is_what_npm_ci_and_npm_run_build_make(tmp_path):
    """netdsl/web/vendor/codemirror.js is rebuilt from netdsl/web/codemirror-src (pinned by
    package-lock.json) to the same bytes."""
    npm = shutil.which("npm")
    if npm is None:
        if os.environ.get("CI"):
            pytest.fail("no `npm` on PATH")
        pytest.skip("no `npm` on PATH")
    source = ROOT / "netdsl/web/codemirror-src"
    work = tmp_path / "codemirror-src"
    work.mkdir()
    for name in ("package.json", "package-lock.json", "entry.js"):
        shutil.copy(source / name, work / name)
    (tmp_path / "vendor").mkdir()
    for argv in (["ci", "--no-audit", "--no-fund"], ["run", "build"]):
        done = subprocess.run([npm, *argv], cwd=work, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    built = (tmp_path / "vendor/codemirror.js").read_bytes()
    assert built == (ROOT / "netdsl/web/vendor/codemirror.js").read_bytes()
