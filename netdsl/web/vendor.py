"""Vendor JavaScript packages from the npm registry into netdsl/web/vendor/.

`python -m netdsl.web.vendor` downloads the pinned tarballs, checks each against the
sha512 integrity pinned here (and the registry's metadata against the pin), and writes the
files netdsl serves inline, with their licences and a VERSIONS file. The vendored files
are committed, so `netdsl render -o net.html` works offline; this tool is how they are
refreshed (change a pin, run it, commit). `fetch_npm` is also the playground's way to
fetch its own npm packages; tarballs are cached under $NETDSL_CACHE (~/.cache/netdsl).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import NetdslError

REGISTRY = "https://registry.npmjs.org"
VENDOR_DIR = Path(__file__).resolve().parent / "vendor"
TIMEOUT = 60  # seconds per request
VERSIONS_HEADER = "# package version integrity licence (python -m netdsl.web.vendor)"


@dataclass(frozen=True)
class Pin:
    package: str
    version: str
    integrity: str  # the registry's dist.integrity: "sha512-" + base64 of the tarball's digest
    files: dict  # path in the tarball (under package/) -> name in netdsl/web/vendor/
    licence: str  # the package's licence, with what it bundles
    licence_text: str = ""  # written beside the files where the tarball ships none


VIZ = Pin(
    package="@viz-js/viz",
    version="3.31.0",
    integrity="sha512-r7zlQdRvcwvIpjHGgs+KNWHeE/P5/Dq7k8ZAKaMCbZqomxCBJV78gVuQYaHzFVca+kB0mX0fMW9UFevCOBG50A==",
    files={"dist/viz-global.js": "viz-global.js"},  # the wasm is inside it (one file)
    licence="MIT; bundles Graphviz (EPL-1.0) and Expat (MIT) in object code",
    # the tarball has no licence file: package.json says MIT, the file's banner the holder
    licence_text="""\
@viz-js/viz 3.31.0 (https://github.com/mdaines/viz-js), dist/viz-global.js

MIT License

Copyright (c) Michael Daines

Permission is hereby granted, free of charge, to any person obtaining a copy of this
software and associated documentation files (the "Software"), to deal in the Software
without restriction, including without limitation the rights to use, copy, modify, merge,
publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons
to whom the Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED,
INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR
PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE
FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER
DEALINGS IN THE SOFTWARE.

This distribution contains other software in object code form:
Graphviz https://www.graphviz.org (Eclipse Public License 1.0)
Expat https://libexpat.github.io (MIT License)
""",
)
PINS = (VIZ,)


def cache_dir() -> Path:
    """Where downloads are kept (npm/ tarballs here, pypi/ files for the playground)."""
    return Path(os.environ.get("NETDSL_CACHE") or Path.home() / ".cache" / "netdsl")


def _digest(data: bytes, integrity: str) -> bool:
    algorithm, _, expected = integrity.partition("-")
    if algorithm != "sha512":
        raise NetdslError(f"npm integrity '{integrity}': only sha512 is accepted")
    return base64.b64encode(hashlib.sha512(data).digest()).decode() == expected


def download(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            return response.read()
    except OSError as e:
        raise NetdslError(f"could not download {url}: {e}") from None


def keep(path: Path, data: bytes) -> None:
    """Into the cache, through a temporary file: an interrupted download leaves no entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(path)


def tarball(package: str, version: str, integrity: str) -> bytes:
    """The package's tarball, checked against `integrity` (from the cache when it is there)."""
    cached = cache_dir() / "npm" / f"{package.replace('/', '__')}-{version}.tgz"
    if cached.is_file():
        data = cached.read_bytes()
        if _digest(data, integrity):
            return data
    meta = json.loads(download(f"{REGISTRY}/{package}/{version}"))
    dist = meta.get("dist", {})
    if dist.get("integrity") != integrity:
        raise NetdslError(
            f"{package}@{version}: the registry's integrity {dist.get('integrity')!r} is not "
            f"the pinned {integrity!r}"
        )
    data = download(dist["tarball"])
    if not _digest(data, integrity):
        raise NetdslError(f"{package}@{version}: the downloaded tarball fails its sha512 check")
    keep(cached, data)
    return data


def fetch_npm(package: str, version: str, integrity: str, files) -> dict[str, bytes]:
    """{path: bytes} of `files` (paths inside the package, like `lib/viz-standalone.js`)
    from the npm tarball of package@version, whose sha512 must be `integrity`."""
    wanted = {f"package/{name}": name for name in files}
    found: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(tarball(package, version, integrity)), mode="r:gz") as tar:
        for member in tar:
            name = wanted.get(member.name)
            if name is not None and member.isfile():
                found[name] = tar.extractfile(member).read()
    missing = sorted(set(files) - set(found))
    if missing:
        raise NetdslError(f"{package}@{version} has no {', '.join(missing)}")
    return found


def vendor(pins=PINS, folder: Path = VENDOR_DIR) -> list[Path]:
    """Write every pinned package's files into `folder`, and its line into VERSIONS (one
    line per package, sorted; lines of packages other callers vendored are kept)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    versions = folder / "VERSIONS"
    # other callers' packages (the playground's) keep their lines; these pins replace theirs
    named = {pin.package for pin in pins}
    kept = versions.read_text(encoding="utf-8").splitlines() if versions.is_file() else []
    lines = [VERSIONS_HEADER]
    lines += [line for line in kept if line.split(" ", 1)[0] not in named | {"#"}]
    for pin in pins:
        for path, data in fetch_npm(pin.package, pin.version, pin.integrity, pin.files).items():
            target = folder / pin.files[path]
            target.write_bytes(data)
            written.append(target)
        if pin.licence_text:
            target = folder / f"{pin.package.rsplit('/', 1)[-1]}-LICENSE"
            target.write_text(pin.licence_text, encoding="utf-8")
            written.append(target)
        lines.append(f"{pin.package} {pin.version} {pin.integrity} {pin.licence}")
    lines[1:] = sorted(lines[1:])
    versions.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [*written, versions]


def vendored(name: str) -> str:
    """A vendored file's text (they ship in the package; see vendor())."""
    path = VENDOR_DIR / name
    if not path.is_file():
        raise NetdslError(
            f"netdsl installation is missing its vendored {name}",
            hint="run `python -m netdsl.web.vendor` in a source checkout",
        )
    return path.read_text(encoding="utf-8")


def main() -> int:
    for path in vendor():
        print(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
