"""Language-server latency on ResNet-152: what an editor waits for after a keystroke.

    python benchmarks/lsp_latency.py [--runs 40]

Starts a real `python -m netdsl lsp` process and speaks to it over its stdin/stdout as an
editor does (a minimal JSON-RPC client, standard library only, so the client adds no event
loop of its own to the figures). Opens architectures/resnet152.net (515 layers and merges,
60 M parameters), then measures, each `--runs` times:

- didChange -> publishDiagnostics: the time from sending an edited text (a stage's depth
  changed, 36 <-> 35 units, so every edit recompiles a different network) to receiving its
  diagnostics: the whole recompile (parse, `use resnet`, elaborate, warnings) and the trip;
- the same, for an edit that is an error (`s=0`: the error, its notes, the call site);
- hover on `stage(128, ...)` of an unchanged document (the compiled document is cached);
- hover sent right after a didChange, before its diagnostics: the request compiles first;
- inlay hints for the whole file after a change (the shapes of each line).

Then, in this process, where the time of one recompile goes (compile vs the index and
shapes). Reports median, 95% interval of the median, 90th percentile and range, in ms.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, fmt_ci, median, netdsl_env, print_header, table  # noqa: E402

TARGET = ROOT / "architectures" / "resnet152.net"


class Client:
    """Just enough of an LSP client: framed JSON-RPC over a server's pipes."""

    def __init__(self, command: list[str], env: dict) -> None:
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=ROOT
        )
        self.next_id = 0
        self.pending: list[dict] = []  # notifications read while waiting for a response

    def send(self, message: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def receive(self) -> dict:
        length = 0
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("the server exited")
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return json.loads(self.process.stdout.read(length))

    def request(self, method: str, params: dict) -> dict:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        while True:
            message = self.receive()
            if message.get("id") == self.next_id and "method" not in message:
                if "error" in message:
                    raise RuntimeError(message["error"])
                return message.get("result")
            if "id" not in message:
                self.pending.append(message)

    def notify(self, method: str, params: dict) -> None:
        self.send({"method": method, "params": params})

    def diagnostics(self, uri: str) -> list:
        while True:
            message = self.pending.pop(0) if self.pending else self.receive()
            if message.get("method") == "textDocument/publishDiagnostics":
                if message["params"]["uri"] == uri:
                    return message["params"]["diagnostics"]

    def close(self) -> None:
        self.request("shutdown", None)
        self.notify("exit", None)
        self.process.wait(timeout=10)


def ms(seconds: float) -> float:
    return seconds * 1000


def row(label: str, xs: list[float]) -> list:
    ordered = sorted(xs)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return [label, f"{median(xs):.1f}", fmt_ci(xs), f"{p90:.1f}", f"{min(xs):.1f}-{max(xs):.1f}"]


def position_of(text: str, needle: str) -> dict:
    index = text.index(needle)
    line = text.count("\n", 0, index)
    start = text.rfind("\n", 0, index) + 1
    return {"line": line, "character": len(text[start:index].encode("utf-16-le")) // 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    env, how = netdsl_env()
    print_header(
        "netdsl lsp: latency on ResNet-152", {"netdsl": how, "runs": args.runs, "file": TARGET}
    )

    text = TARGET.read_text()
    deeper = text.replace("stage(256, 36,", "stage(256, 35,")
    broken = text.replace("stage(128, 8, s=2,", "stage(128, 8, s=0,")
    assert deeper != text and broken != text
    uri = TARGET.as_uri()
    doc = {"uri": uri}

    started = time.perf_counter()
    client = Client([sys.executable, "-m", "netdsl", "lsp"], env)
    client.request("initialize", {"processId": None, "rootUri": ROOT.as_uri(), "capabilities": {}})
    client.notify("initialized", {})
    ready = time.perf_counter()
    client.notify(
        "textDocument/didOpen",
        {"textDocument": {**doc, "languageId": "netdsl", "version": 1, "text": text}},
    )
    assert client.diagnostics(uri) == []
    opened = time.perf_counter()

    version = 1
    results: dict[str, list[float]] = {
        k: [] for k in ("change", "error", "hover", "hover+", "inlay")
    }

    current = text

    def change(new_text: str) -> None:
        nonlocal version, current
        assert new_text != current  # an edit the server has not compiled yet
        version, current = version + 1, new_text
        client.notify(
            "textDocument/didChange",
            {"textDocument": {**doc, "version": version}, "contentChanges": [{"text": new_text}]},
        )

    stage = {"textDocument": doc, "position": position_of(text, "stage(128")}
    whole = {"start": {"line": 0, "character": 0}, "end": {"line": 40, "character": 0}}

    def other() -> str:
        return deeper if current == text else text

    for _ in range(args.runs):
        start = time.perf_counter()
        change(other())
        assert client.diagnostics(uri) == []
        results["change"].append(ms(time.perf_counter() - start))

        start = time.perf_counter()
        hover = client.request("textDocument/hover", stage)
        results["hover"].append(ms(time.perf_counter() - start))
        assert "x28x28" in hover["contents"]["value"]

        start = time.perf_counter()
        change(broken)
        (error,) = client.diagnostics(uri)
        results["error"].append(ms(time.perf_counter() - start))
        assert "'s' must be a positive integer" in error["message"]

        change(other())
        start = time.perf_counter()
        hover = client.request("textDocument/hover", stage)
        results["hover+"].append(ms(time.perf_counter() - start))
        assert "x28x28" in hover["contents"]["value"]
        client.diagnostics(uri)

        change(other())
        start = time.perf_counter()
        hints = client.request("textDocument/inlayHint", {"textDocument": doc, "range": whole})
        results["inlay"].append(ms(time.perf_counter() - start))
        assert any("2048x7x7" in h["label"] for h in hints)
        client.diagnostics(uri)
    client.close()

    print(f"server start to initialized: {ms(ready - started):.0f} ms (one run)")
    print(f"didOpen to its first diagnostics: {ms(opened - ready):.0f} ms (one run)")
    print()
    print(
        table(
            ["round trip (ms)", "median", "95% CI", "p90", "range"],
            [
                row("didChange -> publishDiagnostics (no error)", results["change"]),
                row("didChange -> publishDiagnostics (an error)", results["error"]),
                row("hover, document unchanged", results["hover"]),
                row("hover right after a didChange", results["hover+"]),
                row("inlay hints right after a didChange", results["inlay"]),
            ],
        )
    )
    print()
    breakdown(deeper)


def breakdown(text: str) -> None:
    """One recompile in this process: the compiler's part and the editor's part."""
    from netdsl.lsp.document import Document

    path = str(TARGET)
    compile_times, document_times, shapes_times = [], [], []
    for _ in range(15):
        start = time.perf_counter()
        from netdsl.compiler import compile_text

        compile_text(text, path)
        compile_times.append(ms(time.perf_counter() - start))
        start = time.perf_counter()
        document = Document(path, text)
        document.problems()
        document_times.append(ms(time.perf_counter() - start))
        start = time.perf_counter()
        document.inlay_hints(1, 40)
        shapes_times.append(ms(time.perf_counter() - start))
    print(
        table(
            ["in one process (ms)", "median", "95% CI", "p90", "range"],
            [
                row("compile_text (parse, use, elaborate)", compile_times),
                row("Document: compile every network, index, warnings", document_times),
                row("line shapes (first inlay hints)", shapes_times),
            ],
        )
    )


if __name__ == "__main__":
    main()
