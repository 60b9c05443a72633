"""`netdsl export`: ONNX traced from the generated PyTorch model, checked and run by onnxruntime."""

from __future__ import annotations

import sys

import pytest
from conftest import ARCHITECTURES, compile_text, need, run_cli

from netdsl.compiler import compile_file

torch = need("torch")
onnx = need("onnx")
need("onnxscript")
ort = need("onnxruntime")

from netdsl.export import _build_on_cpu, export_onnx, exported_by_netdsl

TWO_INPUTS = """
network two(classes=10):
    input img 3x16x16
    input meta 8
    f = img + conv3 8 + relu + gap + flatten
    m = meta + fc 8
    output logits = concat(f, m) + fc classes
    output aux @train = fc 3
"""


def session(data: bytes):
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def resnet18():
    """ResNet-18 at 3x64x64 (quick), its torch model and the ONNX bytes traced from that model."""
    net = compile_file(ARCHITECTURES / "resnet18.net", input_shape=(3, 64, 64))
    model = _build_on_cpu(net).eval()
    return net, model, export_onnx(net, model=model)


@pytest.mark.slow
def test_resnet18_exports_valid_onnx(resnet18):
    net, _, data = resnet18
    proto = onnx.load_from_string(data)
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["output"]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [3, 64, 64]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["netdsl.network"] == "resnet18" and int(meta["netdsl.params"]) == net.total_params


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.slow
def test_onnxruntime_computes_what_torch_computes(resnet18, batch):
    _, model, data = resnet18
    x = torch.randn(batch, 3, 64, 64)
    (got,) = session(data).run(None, {"input": x.numpy()})
    with torch.no_grad():
        want = model(x).numpy()
    assert got.shape == want.shape == (batch, 1000)
    assert abs(got - want).max() < 1e-4


@pytest.mark.slow
def test_names_are_the_dsl_names_and_train_outputs_are_dropped():
    net = compile_text(TWO_INPUTS)
    model = _build_on_cpu(net)
    data = export_onnx(net, model=model)
    assert model.training  # traced in eval mode, handed back as it came
    model.eval()
    proto = onnx.load_from_string(data)
    assert [i.name for i in proto.graph.input] == ["img", "meta"]
    assert [o.name for o in proto.graph.output] == ["logits"]  # not the @train aux head
    img, meta = torch.randn(2, 3, 16, 16), torch.randn(2, 8)
    (got,) = session(data).run(None, {"img": img.numpy(), "meta": meta.numpy()})
    with torch.no_grad():
        want = model(img, meta).numpy()
    assert abs(got - want).max() < 1e-5


@pytest.mark.slow
def test_an_output_named_like_an_input_is_renamed():
    net = compile_text("network n:\n    input x 4\n    output x = fc 2\n")
    proto = onnx.load_from_string(export_onnx(net, dynamic_batch=False))
    assert [i.name for i in proto.graph.input] == ["x"]
    assert [o.name for o in proto.graph.output] == ["x_out"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1


@pytest.mark.slow
def test_placed_networks_export_on_the_cpu():
    net = compile_text("network n:\n    input 3x8x8\n    conv3 4 @gpu(0) + gap + fc 2 @gpu(1)\n")
    onnx.checker.check_model(onnx.load_from_string(export_onnx(net)))


# ---- the command -----------------------------------------------------------------------------


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.net"
    path.write_text(
        "network tiny(classes=10):\n    input 3x16x16\n"
        "    conv3 8 + bn + relu + maxpool2 + gap + fc classes\n"
    )
    return path


@pytest.mark.slow
def test_cli_writes_the_file_and_says_what_it_wrote(capsys, tiny, tmp_path):
    out_path = tmp_path / "tiny.onnx"
    code, out, err = run_cli(
        capsys, "export", str(tiny), "-o", str(out_path), "--param", "classes=4", "--input", "3x8x8"
    )
    assert code == 0, err
    assert (
        out.startswith(f"wrote {out_path} (")
        and "input (batch, 3, 8, 8) -> output (batch, 4)" in out
    )
    assert "torch.onnx" not in out + err  # the exporter's progress lines are not shown
    proto = onnx.load(str(out_path))
    onnx.checker.check_model(proto)
    (got,) = session(str(out_path)).run(None, {"input": torch.randn(5, 3, 8, 8).numpy()})
    assert got.shape == (5, 4)
    assert exported_by_netdsl(out_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.net", "tiny.onnx"]


@pytest.mark.slow
def test_cli_overwrites_its_own_export_but_not_other_files(capsys, tiny, tmp_path):
    out_path = tmp_path / "model.onnx"
    assert run_cli(capsys, "export", str(tiny), "-o", str(out_path), "-q")[0] == 0
    assert run_cli(capsys, "export", str(tiny), "-o", str(out_path), "-q")[:2] == (0, "")
    foreign = tmp_path / "foreign.onnx"
    foreign.write_bytes(b"not ours")
    code, _, err = run_cli(capsys, "export", str(tiny), "-o", str(foreign))
    assert code == 1 and "was not generated by netdsl; use --force" in err
    assert foreign.read_bytes() == b"not ours"
    assert run_cli(capsys, "export", str(tiny), "-o", str(foreign), "--force", "-q")[0] == 0
    assert exported_by_netdsl(foreign)


def test_cli_user_errors(capsys, tiny, tmp_path):
    code, _, err = run_cli(capsys, "export", str(tiny), "-o", str(tmp_path / "model.pb"))
    assert code == 2 and "must end in .onnx" in err  # a usage error
    code, _, err = run_cli(capsys, "export", str(tiny), "-o", str(tmp_path / "no" / "m.onnx"))
    assert code == 1 and "does not exist" in err
    bad = tmp_path / "bad.net"
    bad.write_text("network bad:\n    input 3x8x8\n    add(conv3 4, id)\n")
    code, _, err = run_cli(capsys, "export", str(bad), "-o", str(tmp_path / "bad.onnx"))
    assert code == 1 and "bad.net:3:" in err and "Traceback" not in err
    assert run_cli(capsys, "export", str(tiny))[0] == 2  # -o is required
    assert not list(tmp_path.glob("*.onnx"))


def test_exporter_failure_is_a_netdsl_error_and_writes_nothing(capsys, tiny, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("Unsupported operator: aten::frobnicate\nmore detail")

    monkeypatch.setattr(torch.onnx, "export", broken)
    out_path = tmp_path / "m.onnx"
    code, _, err = run_cli(capsys, "export", str(tiny), "-o", str(out_path))
    assert code == 1
    assert err == (
        "netdsl: torch.onnx could not export network tiny: "
        "Unsupported operator: aten::frobnicate\n"
        "hint: if the dynamic batch dimension is the problem, --static-batch exports "
        "for a batch of 1\n"
    )
    assert not out_path.exists() and not list(tmp_path.glob(".netdsl-*"))


@pytest.mark.parametrize(
    "module, package", [("onnxscript", "pip install onnxscript"), ("torch", "pip install torch")]
)
def test_missing_packages_are_named(capsys, tiny, tmp_path, monkeypatch, module, package):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now fails
    code, _, err = run_cli(capsys, "export", str(tiny), "-o", str(tmp_path / "m.onnx"))
    assert code == 1 and package in err and "Traceback" not in err


def test_export_is_registered_without_importing_torch():
    import subprocess

    probe = (
        "import sys\nfrom netdsl.cli import build_parser\nbuild_parser()\n"
        "print(sorted(m for m in ('torch', 'onnx', 'onnxscript') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.stdout == "[]\n", result.stderr
