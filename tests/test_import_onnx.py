"""`netdsl import FILE.onnx`: the ONNX front end (netdsl/importer/onnx_frontend.py).

The acceptance: resnet18 exported by `netdsl export` imports back to a .net file whose
summary equals the zoo's resnet18 (parameters, MACs, and every layer's op, shape,
parameters and MACs in order). torch.onnx.export of torchvision's resnet18 is in
test_import_onnx_torchvision.py. Small graphs built here check each op's mapping.
"""

from __future__ import annotations

import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from netdsl.errors import NetdslError  # noqa: E402
from netdsl.importer import onnx_frontend  # noqa: E402


def summary_rows(network) -> tuple:
    """What must be equal: totals, and each layer's op, shape, parameters and MACs."""
    from netdsl.summary import summary_dict

    found = summary_dict(network)
    layers = [(x["op"], tuple(x["out_shape"]), x["params"], x["macs"]) for x in found["layers"]]
    return found["params"], found["macs"], layers


def imported_network(path):
    from netdsl.compiler import compile_text
    from netdsl.importer.recover import recover

    return compile_text(recover(onnx_frontend.read(path)), "<imported>")


@pytest.mark.slow
def test_netdsl_export_of_resnet18_imports_back_to_the_zoo_summary(tmp_path):
    """`netdsl export` folds each BatchNorm into its conv; the import writes both back."""
    pytest.importorskip("torch")
    from netdsl.api import load
    from netdsl.cli import main

    path = tmp_path / "r.onnx"
    assert main(["export", "resnet18", "-o", str(path), "-q"]) == 0
    assert summary_rows(imported_network(path)) == summary_rows(load("resnet18").network)


# ---- small graphs: one op each, TorchScript-style node names -----------------------------


def weight(name: str, *shape: int):
    import numpy as np

    return numpy_helper.from_array(np.zeros(shape, np.float32), name)


def model_of(nodes, initializers, out_shape, in_shape=(1, 3, 8, 8)):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, out_shape)],
        initializer=initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def read_model(tmp_path, model, inputs=None):
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    return onnx_frontend.read(path, inputs)


def test_ops_map_with_their_numbers_and_scopes(tmp_path):
    node = helper.make_node
    nodes = [
        node("Conv", ["input", "features.0.conv.weight"], ["a"], "/features/features.0/conv/Conv",
             kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], group=1),
        node("BatchNormalization", ["a", "bn.w", "bn.b", "bn.m", "bn.v"], ["b"],
             "/features/features.0/bn/BatchNormalization", epsilon=1e-3, momentum=0.99),
        node("Clip", ["b", "zero", "six"], ["c"], "/features/features.0/act/Clip"),
        node("Conv", ["c", "features.1.weight"], ["d"], "/features/features.1/Conv",
             kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=16),
        node("HardSwish", ["d"], ["e"], "/features/HardSwish"),
        node("GlobalAveragePool", ["e"], ["f"], "/pool/GlobalAveragePool"),
        node("Sigmoid", ["f"], ["g"], "/gate/Sigmoid"),
        node("Mul", ["e", "g"], ["h"], "/Mul"),
        node("Concat", ["h", "e"], ["i"], "/Concat", axis=1),
        node("GlobalAveragePool", ["i"], ["j"], "/avgpool/GlobalAveragePool"),
        node("Flatten", ["j"], ["k"], "/Flatten", axis=1),
        node("Gemm", ["k", "fc.weight", "fc.bias"], ["out"], "/fc/Gemm", transB=1),
    ]  # fmt: skip
    inits = [
        weight("features.0.conv.weight", 16, 3, 3, 3),
        *(weight(f"bn.{n}", 16) for n in "wbmv"),
        numpy_helper.from_array(__import__("numpy").float32(0), "zero"),
        numpy_helper.from_array(__import__("numpy").float32(6), "six"),
        weight("features.1.weight", 16, 1, 3, 3),
        weight("fc.weight", 10, 32),
        weight("fc.bias", 10),
    ]
    imported = read_model(tmp_path, model_of(nodes, inits, [1, 10]))
    assert imported.inputs == {"x": (3, 8, 8)}
    got = [(x.name, x.op, x.args, x.path) for x in imported.layers]
    assert got == [
        ("features.0.conv", "conv",
         {"c": 16, "k": 3, "s": 2, "p": 1, "d": 1, "g": 1, "bias": False}, ("features", "0")),
        ("features.0.bn", "bn", {"eps": 0.001, "momentum": 0.01}, ("features", "0")),
        ("features.0.act", "relu6", {}, ("features", "0")),
        ("features.1", "dwconv",
         {"k": 3, "s": 1, "p": 1, "d": 1, "m": 1, "bias": False}, ("features",)),
        ("features.HardSwish", "hardswish", {}, ("features",)),
        ("pool", "gap", {}, ()),
        ("gate", "sigmoid", {}, ()),
        ("Mul", "mul", {}, ()),
        ("Concat", "concat", {}, ()),
        ("avgpool", "gap", {}, ()),
        ("fc", "fc", {"n": 10, "bias": True}, ()),  # the Flatten of C x 1 x 1: fc reads it
    ]  # fmt: skip
    assert imported.layers[7].inputs == ["features.HardSwish", "gate"]
    assert imported.outputs == ["fc"]


def test_an_unsupported_op_names_its_type_and_node(tmp_path):
    nodes = [helper.make_node("Erf", ["input"], ["out"], "/block/gelu/Erf")]
    with pytest.raises(NetdslError) as caught:
        read_model(tmp_path, model_of(nodes, [], [1, 3, 8, 8]))
    assert caught.value.message.startswith("cannot import ONNX Erf node '/block/gelu/Erf' from ")
    assert caught.value.message.endswith(": netdsl has no such layer")


def test_an_open_input_size_needs_input(tmp_path):
    nodes = [helper.make_node("Relu", ["input"], ["out"], "/Relu")]
    model = model_of(nodes, [], [1, 3, 8, 8], in_shape=("batch", 3, "h", "w"))
    with pytest.raises(NetdslError, match="has no fixed size .3x\\?x\\?.; give one with --input"):
        read_model(tmp_path, model)
    assert read_model(tmp_path, model, (3, 32, 32)).inputs == {"x": (3, 32, 32)}
