"""`netdsl playground`: the zero-install web playground, a static site.

`netdsl playground -o DIR` writes a folder any static host can serve: an editor page
(CodeMirror 6, bundled into netdsl/web/vendor/codemirror.js) whose netdsl runs in the
browser, under Pyodide in a Web Worker, so typing never waits for the compiler. Every file
the page loads is in DIR: Pyodide from the npm registry, wheels of netdsl's pure-Python
dependencies from PyPI (MarkupSafe built here from its sdist without the C speedups, which
it falls back from), netdsl itself zipped from the installed package, all pinned by hash.
Downloads are cached ($NETDSL_CACHE, else ~/.cache/netdsl), so a rebuild needs no network.

`netdsl playground --serve` builds (to a temporary folder unless -o) and serves it on
127.0.0.1 until Ctrl-C. The page calls netdsl/web/playground/bridge.py, which answers with
the CLI's own outputs (diagnostics as `netdsl check` prints them, `summary`, `explain`,
`compile`), so the playground shows what the command line would.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import functools
import hashlib
import http.server
import io
import json
import sys
import tarfile
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import NetdslError, UsageError
from .resources import PACKAGE_DIR, data_dir

WEB_DIR = PACKAGE_DIR / "web"
PAGE_DIR = WEB_DIR / "playground"
VENDOR_DIR = WEB_DIR / "vendor"
# the page's own files, copied as they are; index.html gets the build's data
PAGE_FILES = ("app.js", "worker.js", "playground.css")
# what the page loads besides its own files (diagram.js: the interactive diagram of `render`)
ASSETS = {
    "vendor/codemirror.js": VENDOR_DIR / "codemirror.js",
    "vendor/viz-global.js": VENDOR_DIR / "viz-global.js",
    "vendor/diagram.js": WEB_DIR / "diagram.js",
    "vendor/diagram.css": WEB_DIR / "diagram.css",
}
MARKER = "netdsl-playground"  # in index.html: a folder netdsl built, safe to write over
PACKAGE_DATA = (".net", ".lark", ".j2", ".json", ".typed")  # non-Python files netdsl reads
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # every wheel entry's timestamp: the same bytes every build


@dataclass(frozen=True)
class NpmPin:
    package: str
    version: str
    integrity: str  # the registry's dist.integrity
    files: tuple[str, ...]


# Pyodide 0.29.5: CPython 3.13.2 compiled to WebAssembly. Only what loadPyodide() reads: no
# Pyodide packages are loaded (netdsl's dependencies come as the wheels below).
PYODIDE = NpmPin(
    package="pyodide",
    version="0.29.5",
    integrity="sha512-TkYrUv9m8QmfImADKRmpwZulL48E0uUaBSO+dvRQKyAJc0qh9gu7jn8btyHPh3NZm1r2IH2YrJhIr7Q2B9urAw==",
    files=(
        "pyodide.js",
        "pyodide.mjs",
        "pyodide.asm.js",
        "pyodide.asm.wasm",
        "python_stdlib.zip",
        "pyodide-lock.json",
    ),
)


@dataclass(frozen=True)
class PypiPin:
    """A file of PyPI, by its sha256; `sdist` ones are turned into a pure wheel here."""

    name: str
    version: str
    url: str
    sha256: str
    sdist: bool = False

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[1]

    @property
    def wheel(self) -> str:
        if not self.sdist:
            return self.filename
        return f"{self.name}-{self.version}-py3-none-any.whl"


_FILES = "https://files.pythonhosted.org/packages"
WHEELS = (
    PypiPin(
        "lark",
        "1.3.1",
        f"{_FILES}/82/3d/14ce75ef66813643812f3093ab17e46d3a206942ce7376d31ec2d36229e7/"
        "lark-1.3.1-py3-none-any.whl",
        "c629b661023a014c37da873b4ff58a817398d12635d3bbb2c5a03be7fe5d1e12",
    ),
    PypiPin(
        "networkx",
        "3.6.1",
        f"{_FILES}/9e/c9/b2622292ea83fbb4ec318f5b9ab867d0a28ab43c5717bb85b0a5f6b3b0a4/"
        "networkx-3.6.1-py3-none-any.whl",
        "d47fbf302e7d9cbbb9e2555a0d267983d2aa476bac30e90dfbe5669bd57f3762",
    ),
    PypiPin(
        "jinja2",
        "3.1.6",
        f"{_FILES}/62/a1/3d680cbfd5f4b8f15abc1d571870c5fc3e594bb582bc3b64ea099db13e56/"
        "jinja2-3.1.6-py3-none-any.whl",
        "85ece4451f492d0c13c5dd7c13a64681a86afae63a5f347908daf103ce6d2f67",
    ),
    PypiPin(
        "markupsafe",
        "3.0.3",
        f"{_FILES}/7e/99/7690b6d4034fffd95959cbe0c02de8deb3098cc577c67bb6a24fe5d7caa7/"
        "markupsafe-3.0.3.tar.gz",
        "722695808f4b6457b320fdc131280796bdceb04ab50fe1795cd540799ebe1698",
        sdist=True,
    ),
)
DEFAULT_EXAMPLE = "resnet50"
CACHE_HINT = (
    "the playground's files are downloaded once and then kept in the cache "
    "($NETDSL_CACHE, else ~/.cache/netdsl): build it once with network access"
)


# ---- downloads ----------------------------------------------------------------------------------


def fetch_npm(pin: NpmPin) -> dict[str, bytes]:
    from .web.vendor import fetch_npm as fetch

    try:
        return fetch(pin.package, pin.version, pin.integrity, pin.files)
    except NetdslError as e:
        raise NetdslError(e.message, hint=e.hint or CACHE_HINT) from None


def fetch_pypi(pin: PypiPin) -> bytes:
    """The file, checked against its sha256, from the cache when it is there."""
    from .web import vendor

    cached = vendor.cache_dir() / "pypi" / pin.filename
    if cached.is_file():
        data = cached.read_bytes()
        if hashlib.sha256(data).hexdigest() == pin.sha256:
            return data
    try:
        data = vendor.download(pin.url)
    except NetdslError as e:
        raise NetdslError(e.message, hint=CACHE_HINT) from None
    if hashlib.sha256(data).hexdigest() != pin.sha256:
        raise NetdslError(f"{pin.filename} from PyPI fails its sha256 check (pinned {pin.sha256})")
    vendor.keep(cached, data)
    return data


# ---- wheels -------------------------------------------------------------------------------------


def write_wheel(name: str, version: str, files: dict[str, bytes], metadata: str) -> bytes:
    """A pure-Python wheel of `files` ({path in site-packages: bytes}): the same bytes for the
    same files (sorted entries, one timestamp, fixed permissions)."""
    dist_info = f"{name}-{version}.dist-info"
    entries = dict(sorted(files.items()))
    entries[f"{dist_info}/METADATA"] = metadata.encode()
    entries[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: netdsl playground\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n"
    )
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for path, data in entries.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        writer.writerow([path, f"sha256={digest}", len(data)])
    writer.writerow([f"{dist_info}/RECORD", "", ""])
    entries[f"{dist_info}/RECORD"] = record.getvalue().encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as wheel:
        for path, data in entries.items():
            info = zipfile.ZipInfo(path, ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            wheel.writestr(info, data)
    return out.getvalue()


def wheel_from_sdist(pin: PypiPin) -> bytes:
    """A pure wheel of the sdist's `src/<name>/` without its C sources: MarkupSafe imports
    `_speedups` in a try and falls back to `_native` (pure Python)."""
    top = f"{pin.name}-{pin.version}/"
    files: dict[str, bytes] = {}
    metadata = ""
    with tarfile.open(fileobj=io.BytesIO(fetch_pypi(pin)), mode="r:gz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.startswith(top):
                continue
            path = member.name.removeprefix(top)
            if path == "PKG-INFO":
                metadata = tar.extractfile(member).read().decode()
            elif path.startswith(f"src/{pin.name}/") and not path.endswith(".c"):
                files[path.removeprefix("src/")] = tar.extractfile(member).read()
    if not files or not metadata:
        raise NetdslError(f"{pin.filename} has no src/{pin.name}/ package or no PKG-INFO")
    return write_wheel(pin.name, pin.version, files, metadata)


def netdsl_wheel() -> tuple[str, bytes]:
    """netdsl as the browser runs it: the installed package's Python files and its data
    (grammars, templates, architectures under netdsl/, where resources.py looks first)."""
    from . import __version__

    files: dict[str, bytes] = {}
    for path in sorted(PACKAGE_DIR.rglob("*")):
        relative = path.relative_to(PACKAGE_DIR)
        if not path.is_file() or "__pycache__" in relative.parts:
            continue
        # of web/ (the browser's side: JavaScript, the npm sources), only the Python
        if path.suffix == ".py" or (relative.parts[0] != "web" and path.suffix in PACKAGE_DATA):
            files[f"netdsl/{relative.as_posix()}"] = path.read_bytes()
    for name in ("grammars", "templates", "architectures"):
        folder = data_dir(name)
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                files[f"netdsl/{name}/{path.relative_to(folder).as_posix()}"] = path.read_bytes()
    metadata = f"Metadata-Version: 2.1\nName: netdsl\nVersion: {__version__}\n"
    return f"netdsl-{__version__}-py3-none-any.whl", write_wheel(
        "netdsl", __version__, files, metadata
    )


# ---- the site -----------------------------------------------------------------------------------


def highlight_words() -> dict[str, list[str]]:
    """The words the editor colours, read from netdsl itself (no Pygments needed)."""
    from .initializers import FAMILIES, MODES
    from .layers import CATALOGUE, MERGES
    from .lsp.document import KEYWORDS
    from .symbolic import FUNCTIONS, INSTANCE_FUNCTIONS

    constants = {"true", "false", "same", "valid", "none", "id", *MODES}
    return {
        "keywords": sorted(KEYWORDS - constants),
        "constants": sorted(constants),
        "layers": sorted(CATALOGUE),
        "merges": sorted(MERGES),
        "functions": sorted({*FUNCTIONS, *INSTANCE_FUNCTIONS, "range"}),
        "initializers": sorted(FAMILIES),
    }


def examples() -> dict[str, str]:
    return {
        path.stem: path.read_text(encoding="utf-8")
        for path in sorted(data_dir("architectures").glob("*.net"))
    }


def site_files() -> dict[str, bytes]:
    """Every file of the site: {path in DIR: bytes}."""
    files: dict[str, bytes] = {}
    for name, data in fetch_npm(PYODIDE).items():
        files[f"pyodide/{name}"] = data
    wheels = []
    for pin in WHEELS:
        files[f"wheels/{pin.wheel}"] = wheel_from_sdist(pin) if pin.sdist else fetch_pypi(pin)
        wheels.append(pin.wheel)
    name, data = netdsl_wheel()
    files[f"wheels/{name}"] = data
    wheels.append(name)
    for target, source in ASSETS.items():
        if not source.is_file():
            raise NetdslError(
                f"netdsl installation is missing {source.relative_to(PACKAGE_DIR.parent)}"
            )
        files[target] = source.read_bytes()
    for page_file in PAGE_FILES:
        files[page_file] = (PAGE_DIR / page_file).read_bytes()
    data = {
        "wheels": wheels,
        "pyodide": PYODIDE.version,
        "words": highlight_words(),
        "examples": examples(),
        "default": DEFAULT_EXAMPLE,
    }
    # `</` cannot end the script element the JSON sits in
    inline = json.dumps(data, sort_keys=True, ensure_ascii=False).replace("</", "<\\/")
    page = (PAGE_DIR / "index.html").read_text(encoding="utf-8")
    files["index.html"] = page.replace("{{ data }}", inline).encode()
    return dict(sorted(files.items()))


def build(out: Path) -> list[Path]:
    """Write the site into `out` (new, empty, or a playground built before)."""
    index = out / "index.html"
    if out.exists() and not out.is_dir():
        raise NetdslError(f"{out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        built_before = index.is_file() and MARKER in index.read_text(errors="replace")
        if not built_before:
            raise NetdslError(
                f"{out} is not empty and not a playground netdsl built: give a new or empty folder"
            )
    written = []
    for path, data in site_files().items():
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or target.read_bytes() != data:
            target.write_bytes(data)
        written.append(target)
    return written


# ---- serving ------------------------------------------------------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm",  # WebAssembly.instantiateStreaming insists on it
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".whl": "application/zip",
    }

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """A browser that stops reading (a cancelled request, a closed tab) is not an error
        worth a traceback; anything else still prints one."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serving(folder: Path, port: int = 0):
    """An http server for `folder` on 127.0.0.1 (port 0: a free one), serving in a thread
    while the block runs: its base URL."""
    handler = functools.partial(_Handler, directory=str(folder))
    try:
        server = _Server(("127.0.0.1", port), handler)
    except OSError as e:
        raise NetdslError(f"cannot serve on 127.0.0.1:{port}: {e.strerror}") from None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def serve(folder: Path, port: int) -> None:
    """Serve until Ctrl-C."""
    with serving(folder, port) as url:
        print(f"netdsl playground: {url} (Ctrl-C stops)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


def cmd_playground(args) -> int:
    if not args.output and not args.serve:
        raise UsageError("give -o DIR (write the site) or --serve (build and serve it)")
    if args.port is not None and not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {args.port}")
    if args.port is not None and not args.serve:
        raise UsageError("--port goes with --serve")
    if args.output:
        folder = Path(args.output)
        written = build(folder)
        size = sum(p.stat().st_size for p in written)
        print(f"wrote {folder}/ ({len(written)} files, {size / 2**20:.1f} MiB)")
        if args.serve:
            serve(folder, args.port or 8000)
        return 0
    with tempfile.TemporaryDirectory(prefix="netdsl-playground-") as tmp:
        build(Path(tmp))
        serve(Path(tmp), args.port or 8000)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "playground",
        help="build the web playground (netdsl in the browser, no install) and serve it",
    )
    p.add_argument("-o", "--output", metavar="DIR", help="write the static site into DIR")
    p.add_argument(
        "--serve", action="store_true", help="serve the site on 127.0.0.1 (Ctrl-C stops)"
    )
    p.add_argument("--port", type=int, metavar="N", help="with --serve: the port (default 8000)")
    p.set_defaults(func=cmd_playground)


__all__ = ["build", "site_files", "register", "WHEELS", "PYODIDE"]
