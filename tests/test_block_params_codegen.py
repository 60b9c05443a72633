"""Layer-valued and boolean block parameters (issue 16): one generated class (Keras: one
builder function) per block definition. An activation passed to a block is a constructor
argument in torchvision's style (`act_layer: Callable[..., nn.Module] = nn.ReLU`, built as
`self.act = act_layer(inplace=True)`), `id` is `nn.Identity`, and a conditional that
selects structure is an `if use_se:` in the one class."""

from __future__ import annotations

import importlib.util
import re

from backends import check_backends
from conftest import need

from netdsl.compiler import compile_text
from netdsl.emit import get_emitter

LV = """
block cba(c, k=1, s=1, act=relu) = conv c k=k s=s p=(k // 2) bias=false + bn + act
block se(c) = mul(id, gap + conv1 (c // 4) + relu + conv1 c + hardsigmoid)
block bneck(exp, c, k=3, s=1, use_se=false, act=relu) =
    add(cba(exp, 1, act=act) + dwconv k=k s=s p=(k // 2) bias=false + bn + act
        + (if use_se then se(exp) else id) + cba(c, act=id), id)
network n:
    input 16x32x32
    bneck(16, 16) + bneck(64, 16, use_se=true, act=hardswish) + bneck(32, 16, k=5)
    + gap + fc 10
"""

LEAKY = """
block cba(c, act=relu) = conv c k=3 p=1 bias=false + bn + act
network m:
    input 8x16x16
    cba(8) + cba(16, act=(leaky_relu 0.2)) + cba(16, act=id) + gap + fc 4
"""


def _net(text: str):
    return compile_text(text, "lv.net")


def _emit(text: str, target: str) -> str:
    return get_emitter(target).emit_model(_net(text))


def test_one_class_per_block_definition():
    code = _emit(LV, "torch")
    assert re.findall(r"^class (\w+)", code, re.M) == ["Cba", "Bneck", "Se", "N"]
    assert "generated for" not in code
    assert "act_layer: Callable[..., nn.Module] = nn.ReLU" in code
    assert "self.act = act_layer(inplace=True)" in code
    assert "if use_se:" in code
    assert "act_layer=nn.Hardswish" in code and "act_layer=nn.Identity" in code
    keras = _emit(LV, "keras")
    assert re.findall(r"^def (\w+)", keras, re.M) == ["cba", "bneck", "se", "build_model"]
    assert "generated for" not in keras


def test_layer_with_arguments_and_id():
    code = _emit(LEAKY, "torch")
    assert re.findall(r"^class (\w+)", code, re.M) == ["Cba", "M"]
    assert "act_layer=partial(nn.LeakyReLU, negative_slope=0.2)" in code
    assert "from functools import partial" in code


def test_same_bytes():
    assert _emit(LV, "torch") == _emit(LV, "torch")
    assert _emit(LV, "keras") == _emit(LV, "keras")


def test_backends_agree():
    need("torch")
    need("keras")
    check_backends(_net(LV))
    check_backends(_net(LEAKY))


def test_generated_class_takes_other_arguments(tmp_path):
    torch = need("torch")
    path = tmp_path / "lv_model.py"
    path.write_text(_emit(LV, "torch"))
    spec = importlib.util.spec_from_file_location("lv_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.build_model()
    block = module.Bneck(16, 32, 16, use_se=True, act_layer=torch.nn.Hardswish)
    assert isinstance(block.act, torch.nn.Hardswish)
    assert isinstance(block.choice, module.Se)
    out = block.eval()(torch.randn(2, 16, 8, 8))
    assert out.shape == (2, 16, 8, 8)
