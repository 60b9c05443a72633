"""Output safety: every command that writes a file writes all of it or nothing.

`compile -o` (and `--train`, which adds train.py), `render -o` and `export -o`
stage each file as a temporary `.netdsl-*` beside its target and rename it into
place (netdsl/output.py). A user relies on four things, checked here for every
writer: an error of any kind (a bad program, a failure injected mid-write, an
interrupt) leaves the directory exactly as it was, previous outputs byte for
byte; a file netdsl did not write is refused without --force; a bad -o is a
clean exit-1 error; written files get the umask's permissions, not 0600.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat

import pytest
from conftest import need, run_cli

import netdsl.output
from netdsl.cli import main

TINY = "network tiny(classes=10):\n    input 3x16x16\n    conv3 8 + bn + relu + maxpool2 + gap + fc classes\n"
OTHER = "network other(classes=10):\n    input 3x16x16\n    conv3 4 + relu + gap + fc classes\n"
BAD = {  # programs that fail, each in a different stage
    "syntax": "network tiny:\n    input 3x16x16\n    conv3 8 +\n",
    "shape": "network tiny:\n    input 3x16x16\n    add(conv3 8, id)\n",
    "arithmetic": "network tiny:\n    input 3x16x16\n    conv3 (8 // 0)\n",
    "not utf-8": b"network tiny:\n    input 3x16x16\n    conv3 8 # \xff\n",
}
FOREIGN = b"my own notes, not netdsl's\n"

# name -> (argv after FILE, the files written); DIR stands for the output directory
WRITERS = {
    "compile torch": (["compile", "--target", "torch", "-o", "DIR/model.py"], ["model.py"]),
    "compile keras": (["compile", "--target", "keras", "-o", "DIR/model.py"], ["model.py"]),
    "train torch": (
        ["compile", "--target", "torch", "--train", "-o", "DIR/model.py"],
        ["model.py", "train.py"],
    ),
    "train keras": (
        ["compile", "--target", "keras", "--train", "-o", "DIR/model.py"],
        ["model.py", "train.py"],
    ),
    "render dot": (["render", "-o", "DIR/net.dot"], ["net.dot"]),
    "render svg": (["render", "-o", "DIR/net.svg"], ["net.svg"]),
    "render png": (["render", "-o", "DIR/net.png"], ["net.png"]),
    "render pdf": (["render", "-o", "DIR/net.pdf"], ["net.pdf"]),
}
SINGLE = ["compile torch", "compile keras", "render dot", "render svg", "render png"]


def need_dot():
    """Graphviz is a system package: skip without it, except in CI, which installs it."""
    if shutil.which("dot") is None:
        if os.environ.get("CI"):
            pytest.fail("Graphviz's dot is not installed (Debian: apt-get install graphviz)")
        pytest.skip("Graphviz's dot is not installed")


class Writer:
    """One writing command pointed at an output folder."""

    def __init__(self, name: str, tmp_path):
        argv, files = WRITERS[name]
        if name.startswith("render") and not name.endswith("dot"):
            need_dot()
        self.name, self.dir = name, tmp_path / "out"
        self.dir.mkdir()
        self.argv = [a.replace("DIR", str(self.dir)) for a in argv]
        self.paths = [self.dir / f for f in files]
        self.sources = tmp_path

    def source(self, text: str | bytes, name: str = "net.net") -> str:
        path = self.sources / name
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        return str(path)

    def __call__(self, capsys, text: str | bytes = TINY, *extra: str) -> tuple[int, str, str]:
        return run_cli(capsys, self.argv[0], self.source(text), *self.argv[1:], *extra)

    def snapshot(self) -> dict[str, bytes]:
        """Every file of the output folder (temporary files included) and its bytes."""
        return {p.name: p.read_bytes() for p in sorted(self.dir.iterdir())}


@pytest.fixture(params=list(WRITERS))
def writer(request, tmp_path):
    return Writer(request.param, tmp_path)


@pytest.fixture(params=SINGLE)
def single(request, tmp_path):
    return Writer(request.param, tmp_path)


@pytest.fixture(params=["train torch", "train keras"])
def trainer(request, tmp_path):
    return Writer(request.param, tmp_path)


# ---- (a) an error leaves nothing behind and the previous output as it was ---------------------


@pytest.mark.parametrize("kind", list(BAD))
def test_a_bad_program_writes_nothing(capsys, writer, kind):
    """Nothing is created, and the message is the program's error, located."""
    code, _, err = writer(capsys, BAD[kind])
    assert code == 1 and "net.net:" in err and "Traceback" not in err, err
    assert writer.snapshot() == {}


def test_a_bad_program_leaves_the_previous_output_byte_identical(capsys, writer):
    assert writer(capsys)[0] == 0
    before = writer.snapshot()
    assert sorted(before) == sorted(p.name for p in writer.paths)
    for kind, text in BAD.items():
        assert writer(capsys, text)[0] == 1, kind
        assert writer.snapshot() == before, kind
    missing = run_cli(capsys, writer.argv[0], str(writer.sources / "absent.net"), *writer.argv[1:])
    assert missing[0] == 1 and "no such file or zoo network" in missing[2]
    assert writer.snapshot() == before


class _FailingFile:
    """A file object whose write stores half the data, then fails as a full disk would."""

    def __init__(self, f, error: BaseException):
        self.f, self.error = f, error

    def write(self, data: bytes) -> int:
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        raise self.error

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def fail_writes(monkeypatch, error: BaseException, after: int = 0) -> None:
    """The (after+1)-th file netdsl writes fails half-way with `error`."""
    real = os.fdopen
    calls = []

    def fdopen(fd, *args, **kwargs):
        calls.append(fd)
        f = real(fd, *args, **kwargs)
        return _FailingFile(f, error) if len(calls) == after + 1 else f

    monkeypatch.setattr(netdsl.output.os, "fdopen", fdopen)


def test_a_full_disk_mid_write_leaves_the_previous_output(capsys, writer, monkeypatch):
    assert writer(capsys)[0] == 0
    before = writer.snapshot()
    fail_writes(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    code, _, err = writer(capsys, OTHER)
    assert code == 1
    assert err == f"netdsl: cannot write {writer.paths[0]}: No space left on device\n"
    assert writer.snapshot() == before


def test_an_interrupt_mid_write_leaves_no_partial_or_temporary_file(capsys, writer, monkeypatch):
    """Ctrl-C during the write: exit 130, and neither half a file nor a .netdsl-* file."""
    fail_writes(monkeypatch, KeyboardInterrupt())
    assert writer(capsys)[0] == 130
    assert writer.snapshot() == {}


def test_graphviz_failing_mid_output_writes_nothing(capsys, tmp_path, monkeypatch):
    """A `dot` that prints half an SVG and crashes: exit 1 with its message, old file kept."""
    writer = Writer("render svg", tmp_path)
    assert writer(capsys)[0] == 0
    before = writer.snapshot()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dot"
    fake.write_text("#!/bin/sh\nprintf '<svg><g>'\necho 'Error: out of memory' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    code, _, err = writer(capsys, OTHER)
    assert (code, err) == (1, "netdsl: Graphviz's dot failed: Error: out of memory\n")
    assert writer.snapshot() == before


def test_an_emitter_failing_after_the_model_writes_neither_file(capsys, trainer, monkeypatch):
    """train.py is generated before anything is written: its failure leaves model.py alone."""
    from netdsl.emit import get_emitter
    from netdsl.errors import NetdslError

    assert trainer(capsys)[0] == 0
    before = trainer.snapshot()
    emitter = type(get_emitter(trainer.argv[2]))

    def broken(self, net, module):
        raise NetdslError("the training script cannot be generated")

    monkeypatch.setattr(emitter, "emit_train", broken)
    code, _, err = trainer(capsys, OTHER)
    assert (code, err) == (1, "netdsl: the training script cannot be generated\n")
    assert trainer.snapshot() == before


# ---- --train: the model and train.py are written together or not at all ----------------------


def test_train_py_not_ours_is_refused_before_the_model_is_written(capsys, trainer):
    train = trainer.dir / "train.py"
    train.write_bytes(FOREIGN)
    code, _, err = trainer(capsys)
    assert code == 1
    assert err == (
        f"netdsl: {train} exists and was not generated by netdsl; use --force to overwrite it\n"
    )
    assert trainer.snapshot() == {"train.py": FOREIGN}  # no model.py either


def test_train_py_being_a_directory_is_refused_before_the_model_is_written(capsys, trainer):
    (trainer.dir / "train.py").mkdir()
    code, _, err = trainer(capsys)
    assert (code, err) == (
        1,
        f"netdsl: {trainer.dir / 'train.py'} is a directory; give a file name with -o\n",
    )
    assert [p.name for p in trainer.dir.iterdir()] == ["train.py"]


def test_train_py_failing_mid_write_leaves_the_model_as_it_was(capsys, trainer, monkeypatch):
    """The second file fails while being written: the first has not been replaced yet."""
    assert trainer(capsys)[0] == 0
    before = trainer.snapshot()
    fail_writes(monkeypatch, OSError(errno.EIO, "Input/output error"), after=1)
    code, _, err = trainer(capsys, OTHER)
    assert (code, err) == (1, f"netdsl: cannot write {trainer.paths[1]}: Input/output error\n")
    assert trainer.snapshot() == before


@pytest.mark.parametrize("existed", [True, False], ids=["model existed", "new model"])
def test_train_py_failing_to_rename_puts_the_model_back(capsys, trainer, monkeypatch, existed):
    """The last step, renaming train.py into place, fails after model.py was replaced:
    model.py gets its previous bytes back (or is removed if it is new)."""
    if existed:
        assert trainer(capsys)[0] == 0
    before = trainer.snapshot()
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if os.fspath(dst).endswith("train.py") and os.path.basename(src).startswith(".netdsl-"):
            raise OSError(errno.EROFS, "Read-only file system")
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(netdsl.output.os, "replace", replace)
    code, _, err = trainer(capsys, OTHER)
    assert (code, err) == (1, f"netdsl: cannot write {trainer.paths[1]}: Read-only file system\n")
    assert trainer.snapshot() == before


# ---- (b) a file netdsl did not write is not overwritten without --force ------------------------


def test_a_foreign_file_is_refused_then_overwritten_with_force(capsys, writer):
    target = writer.paths[0]
    target.write_bytes(FOREIGN)
    code, out, err = writer(capsys)
    assert (code, out) == (1, "")
    assert err == (
        f"netdsl: {target} exists and was not generated by netdsl; use --force to overwrite it\n"
    )
    assert writer.snapshot() == {target.name: FOREIGN}
    assert writer(capsys, TINY, "--force")[0] == 0
    assert target.read_bytes() != FOREIGN
    assert writer.snapshot().keys() == {p.name for p in writer.paths}


def test_a_file_netdsl_wrote_is_overwritten_without_force(capsys, writer):
    assert writer(capsys)[0] == 0
    first = writer.snapshot()
    assert writer(capsys, OTHER)[0] == 0  # a different network: different bytes
    second = writer.snapshot()
    assert second.keys() == first.keys()
    assert all(second[name] != first[name] for name in first), writer.name
    assert writer(capsys)[0] == 0
    assert writer.snapshot() == first  # and back: the same program, the same bytes


def test_every_written_file_says_netdsl_made_it(capsys, writer):
    """What lets the next run recognise its own file: the header of a Python file, a mark in
    a diagram (a DOT comment Graphviz copies into SVG, a PNG text chunk, the PDF Producer)."""
    assert writer(capsys)[0] == 0
    for path in writer.paths:
        if path.suffix == ".py":
            assert path.read_text().startswith(netdsl.output.HEADER + " "), path.name
        else:
            assert netdsl.output.marked_by_netdsl(path), path.name
    data = writer.paths[0].read_bytes()
    if writer.paths[0].suffix == ".png":  # the chunk is well formed: PNG readers skip it
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[37:41] == b"tEXt"
    if writer.paths[0].suffix == ".pdf":  # the same length as cairo's: no offset moved
        assert b"/Producer (Generated by netdsl)" in data and data.rstrip().endswith(b"%%EOF")


# ---- (c) a bad -o is a clean error -------------------------------------------------------------


def test_output_into_a_missing_directory(capsys, writer):
    missing = writer.dir / "no" / "such"
    argv = [a.replace(str(writer.dir), str(missing)) for a in writer.argv]
    code, out, err = run_cli(capsys, argv[0], writer.source(TINY), *argv[1:])
    target = missing / writer.paths[0].name
    assert (code, out) == (1, "")
    assert err == (
        f"netdsl: cannot write {target}: no such directory {missing}\n"
        f"hint: the directory does not exist; create it first (mkdir -p {missing})\n"
    )
    assert not missing.parent.exists()


def test_output_onto_a_directory(capsys, writer):
    target = writer.paths[0]
    target.mkdir()
    code, out, err = writer(capsys)
    assert (code, out) == (1, "")
    assert err == f"netdsl: {target} is a directory; give a file name with -o\n"
    assert [p.name for p in writer.dir.iterdir()] == [target.name]
    assert not any(target.iterdir())


def test_a_directory_netdsl_cannot_write_in(capsys, single, monkeypatch):
    """A read-only directory (simulated: root may write anywhere) fails before any byte."""

    def mkstemp(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(netdsl.output.tempfile, "mkstemp", mkstemp)
    code, _, err = single(capsys)
    assert (code, err) == (1, f"netdsl: cannot write {single.paths[0]}: Permission denied\n")
    assert single.snapshot() == {}


# ---- (d) permissions follow the umask ----------------------------------------------------------


def test_output_through_a_symbolic_link_writes_its_file(capsys, single, tmp_path):
    """As an editor saves: the link stays a link, and the file it points to gets the new
    bytes (a diagram linked into a docs folder is updated, not unlinked)."""
    real = tmp_path / "docs" / single.paths[0].name
    real.parent.mkdir()
    single.paths[0].symlink_to(real)  # dangling at first: the first run creates the file
    written = []
    for text in (TINY, OTHER):
        assert single(capsys, text)[0] == 0
        assert single.paths[0].is_symlink() and single.paths[0].resolve() == real.resolve()
        written.append(real.read_bytes())
    assert written[0] != written[1]  # the second network replaced the first one's output
    assert [p.name for p in single.dir.iterdir()] == [single.paths[0].name]  # no stray files
    assert [p.name for p in real.parent.iterdir()] == [real.name]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_honour_the_umask(capsys, single, umask, mode):
    old = os.umask(umask)
    try:
        assert single(capsys)[0] == 0
    finally:
        os.umask(old)
    for path in single.paths:
        assert stat.S_IMODE(path.stat().st_mode) == mode, path.name


# ---- export (torch + onnx): one small net traced once ------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> bytes:
    """The bytes of TINY exported to ONNX: the previous output of the tests below."""
    need("torch")
    need("onnx")
    need("onnxscript")
    folder = tmp_path_factory.mktemp("export")
    (folder / "tiny.net").write_text(TINY)
    assert main(["export", str(folder / "tiny.net"), "-o", str(folder / "tiny.onnx"), "-q"]) == 0
    return (folder / "tiny.onnx").read_bytes()


@pytest.fixture
def export_dir(tmp_path, exported):
    out = tmp_path / "out"
    out.mkdir()
    (out / "tiny.onnx").write_bytes(exported)
    (tmp_path / "tiny.net").write_text(TINY)
    return out


@pytest.mark.slow
def test_export_errors_leave_the_previous_onnx_file(capsys, export_dir, exported, monkeypatch):
    import netdsl.export

    target = export_dir / "tiny.onnx"
    for kind, text in BAD.items():
        bad = export_dir.parent / "bad.net"
        bad.write_bytes(text.encode() if isinstance(text, str) else text)
        code, _, err = run_cli(capsys, "export", str(bad), "-o", str(target))
        assert code == 1 and "bad.net:" in err, kind
        assert target.read_bytes() == exported, kind

    def broken(*args, **kwargs):
        raise netdsl.export.NetdslError("torch.onnx could not export network tiny: boom")

    monkeypatch.setattr(netdsl.export, "export_onnx", broken)
    code, _, err = run_cli(capsys, "export", str(export_dir.parent / "tiny.net"), "-o", str(target))
    assert (code, err) == (1, "netdsl: torch.onnx could not export network tiny: boom\n")
    assert target.read_bytes() == exported
    monkeypatch.undo()
    monkeypatch.setattr(netdsl.export, "export_onnx", lambda *a, **k: exported)
    fail_writes(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    code, _, err = run_cli(capsys, "export", str(export_dir.parent / "tiny.net"), "-o", str(target))
    assert (code, err) == (1, f"netdsl: cannot write {target}: No space left on device\n")
    assert [p.name for p in export_dir.iterdir()] == ["tiny.onnx"]
    assert target.read_bytes() == exported


@pytest.mark.slow
def test_export_refuses_a_foreign_file_and_honours_the_umask(
    capsys, export_dir, exported, monkeypatch
):
    import netdsl.export

    monkeypatch.setattr(netdsl.export, "export_onnx", lambda *a, **k: exported)
    source = str(export_dir.parent / "tiny.net")
    foreign = export_dir / "other.onnx"
    foreign.write_bytes(FOREIGN)
    code, _, err = run_cli(capsys, "export", source, "-o", str(foreign))
    assert (code, err) == (
        1,
        f"netdsl: {foreign} exists and was not generated by netdsl; use --force to overwrite it\n",
    )
    assert foreign.read_bytes() == FOREIGN
    old = os.umask(0o022)
    try:
        assert run_cli(capsys, "export", source, "-o", str(foreign), "--force", "-q")[0] == 0
        assert run_cli(capsys, "export", source, "-o", str(export_dir / "tiny.onnx"), "-q")[0] == 0
    finally:
        os.umask(old)
    assert foreign.read_bytes() == exported
    assert stat.S_IMODE(foreign.stat().st_mode) == 0o644
    assert sorted(p.name for p in export_dir.iterdir()) == ["other.onnx", "tiny.onnx"]
    missing = export_dir / "no" / "m.onnx"
    code, _, err = run_cli(capsys, "export", source, "-o", str(missing))
    assert code == 1 and f"no such directory {missing.parent}" in err
