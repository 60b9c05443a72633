"""Reading files: source text -> parsed modules with their `use`d blocks resolved."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from . import ast
from .errors import NetdslError, SourceRegistry, Span, did_you_mean
from .parser import parse
from .resources import STDLIB_DIR

MAX_SOURCE_BYTES = 4 * 1024 * 1024


@dataclass(eq=False)
class ModuleEnv:
    """One parsed file and the blocks visible in it."""

    path: str
    module: ast.Module
    imported: dict = field(default_factory=dict)  # name -> (BlockDef, ModuleEnv)
    own: dict = field(default_factory=dict)  # name -> BlockDef
    defaults_cache: dict | None = None
    location: str = ""  # where the file is, for `use "path"`; `path` is how messages name it
    functions: dict = field(default_factory=dict)  # name -> (FunctionDef, ModuleEnv)

    def lookup_function(self, name: str):
        return self.functions.get(name)

    def lookup_block(self, name: str):
        if name in self.own:
            return self.own[name], self
        return self.imported.get(name)

    def block_names(self) -> list[str]:
        return list(self.own) + list(self.imported)


def read_source(path: str | os.PathLike) -> str:
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise NetdslError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise NetdslError(f"{path} is a directory, not a .net file") from None
    except OSError as e:
        raise NetdslError(f"cannot read {path}: {e.strerror}") from None
    if len(data) > MAX_SOURCE_BYTES:
        raise NetdslError(f"{path} is larger than {MAX_SOURCE_BYTES // 1024 // 1024} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        line_start = data.rfind(b"\n", 0, e.start) + 1
        column = len(data[line_start : e.start].decode("utf-8", "replace")) + 1  # characters
        # the excerpt quotes this file (bad bytes shown as U+FFFD), not an older text of the path
        SourceRegistry.add(str(path), data.decode("utf-8", "replace"))
        raise NetdslError(
            f"file is not UTF-8 text (byte 0x{data[e.start]:02x})",
            Span(str(path), line, column, line, column + 1),
        ) from None


class Loader:
    """Parses files once each and resolves `use` (cycles are errors)."""

    def __init__(self) -> None:
        self._cache: dict[str, ModuleEnv] = {}
        self._loading: list[str] = []

    def load_file(self, path: str | os.PathLike, display: str | None = None) -> ModuleEnv:
        """Parse a file once; `display` is how locations name it (stdlib files, say)."""
        key = str(Path(path).resolve()) if Path(path).exists() else str(path)
        if key in self._cache:
            return self._cache[key]
        return self._load(display or str(path), read_source(path), key)

    def load_text(self, text: str, path: str = "<input>") -> ModuleEnv:
        return self._load(path, text, path)

    def _load(self, path: str, text: str, key: str) -> ModuleEnv:
        module = parse(text, path)
        env = ModuleEnv(path, module, own={b.name: b for b in module.blocks}, location=key)
        env.functions = {f.name: (f, env) for f in module.functions}
        self._loading.append(key)
        try:
            for use in module.uses:
                self._import(env, use)
        finally:
            self._loading.pop()
        self._cache[key] = env
        return env

    def _import(self, env: ModuleEnv, use: ast.Use) -> None:
        target = self._resolve(env.path, use, env.location)
        key = str(target.resolve())
        if key in self._loading:
            raise NetdslError(f"'use' cycle: {target.name} is already being loaded", use.span)
        display = None if use.is_path else f"netdsl/stdlib/{target.name}"
        used = self.load_file(target, display)
        for name, block in used.own.items():
            if name in env.own:
                continue  # a file's own definitions take precedence
            if name in env.imported and env.imported[name][0] is not block:
                other = env.imported[name][1].path
                raise NetdslError(
                    f"block '{name}' is defined both in {other} and in {used.path}",
                    use.span,
                    hint="define it in this file to choose one",
                )
            env.imported[name] = (block, used)
        for name, found in used.functions.items():
            env.functions.setdefault(name, found)  # a file's own definitions take precedence

    def _resolve(self, here: str, use: ast.Use, location: str = "") -> Path:
        if use.is_path:
            base = Path.cwd()
            try:
                # beside the file, named as messages name the file where that is the same
                # place (a zoo file is architectures/NAME.net, from any directory)
                shown = Path(here).parent if Path(here).exists() else base
                real = Path(location).parent if location and Path(location).exists() else shown
                base = shown if real.resolve() == shown.resolve() else real
                target = base / use.target
                if not target.exists() and target.suffix != ".net":
                    target = target.with_suffix(".net")
                found = target.is_file()
            except (OSError, ValueError):  # a name too long, a NUL byte: no such file
                found = False
            if not found:
                raise NetdslError(f"cannot find '{use.target}' (looked in {base})", use.span)
            return target
        target = STDLIB_DIR / f"{use.target}.net"
        if not target.is_file():
            available = sorted(p.stem for p in STDLIB_DIR.glob("*.net"))
            raise NetdslError(
                f"no standard library module '{use.target}'",
                use.span,
                hint=did_you_mean(use.target, available) or "available: " + ", ".join(available),
            )
        return target
