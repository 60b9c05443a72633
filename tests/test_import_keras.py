"""`netdsl import` of Keras models: the Keras front end (netdsl/importer/keras_frontend.py).

The acceptance: keras.applications.MobileNet(weights=None) imports to a .net file whose
summary equals architectures/mobilenet.net, layer for layer. The zoo file ends in logits, as
every netdsl network does (the training script's loss applies the softmax), so the default
MobileNet's closing softmax (classifier_activation) is left out, and the file says so.
"""

from __future__ import annotations

import pytest

keras = pytest.importorskip("keras")

from netdsl.errors import NetdslError  # noqa: E402
from netdsl.importer import keras_frontend  # noqa: E402


def summary_rows(network) -> tuple:
    from netdsl.summary import summary_dict

    found = summary_dict(network)
    layers = [(x["op"], tuple(x["out_shape"]), x["params"], x["macs"]) for x in found["layers"]]
    return found["params"], found["macs"], layers


def imported_network(source):
    from netdsl.compiler import compile_text
    from netdsl.importer.recover import recover

    return compile_text(recover(keras_frontend.read(source)), "<imported>")


@pytest.mark.slow
def test_mobilenet_imports_to_the_zoo_summary():
    from netdsl.api import load

    zoo = summary_rows(load("mobilenet").network)
    assert summary_rows(imported_network("keras.applications:MobileNet")) == zoo
    logits = imported_network("keras.applications:MobileNet(classifier_activation=None)")
    assert summary_rows(logits) == zoo


def test_a_closing_softmax_is_left_out_and_the_file_says_so():
    from netdsl.importer.recover import recover

    imported = keras_frontend.read(small_model())
    assert [x.op for x in imported.layers][-2:] == ["gap", "fc"]
    assert imported.outputs == ["fc"]
    assert "The closing softmax (fc_act) is left out" in recover(imported)


def small_model():
    layers = keras.layers
    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="stem_conv1")(inputs)
    x = layers.BatchNormalization(epsilon=1e-3, momentum=0.9, name="stem_conv1_bn")(x)
    x = layers.ReLU(6.0, name="stem_conv1_relu")(x)
    y = layers.DepthwiseConv2D(3, padding="same", activation="relu", name="unit_1_dw")(x)
    x = layers.Add(name="unit_1_add")([x, y])
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.GlobalAveragePooling2D(name="global_average_pooling2d_7")(x)  # as Keras names
    x = layers.Dense(10, activation="softmax", name="fc")(x)
    return keras.Model(inputs, x, name="SmallNet")


def test_a_saved_model_maps_layer_by_layer(tmp_path):
    path = tmp_path / "small.keras"
    small_model().save(path)
    imported = keras_frontend.read(str(path))
    assert imported.name == "small_net"
    assert imported.inputs == {"x": (3, 16, 16)}
    got = [(x.name, x.op, x.args, x.inputs, x.path) for x in imported.layers]
    assert got == [
        # TensorFlow's "same" at stride 2 on an even size: one row and column, bottom right
        ("stem_conv1_pad", "zeropad", {"p": (0, 1, 0, 1)}, ["x"], ("conv1",)),
        ("stem_conv1", "conv",
         {"c": 8, "k": 3, "s": 2, "p": 0, "d": 1, "g": 1, "bias": False},
         ["stem_conv1_pad"], ("conv1",)),
        ("stem_conv1_bn", "bn", {"eps": 0.001, "momentum": 0.1}, ["stem_conv1"],
         ("conv1",)),
        ("stem_conv1_relu", "relu6", {}, ["stem_conv1_bn"], ("conv1",)),
        ("unit_1_dw", "dwconv", {"k": 3, "s": 1, "p": 1, "d": 1, "m": 1, "bias": True},
         ["stem_conv1_relu"], ("1",)),
        ("unit_1_dw_act", "relu", {}, ["unit_1_dw"], ("1",)),
        ("unit_1_add", "add", {}, ["stem_conv1_relu", "unit_1_dw_act"], ("1",)),
        ("pool", "maxpool", {"k": 2, "s": 2, "p": 0}, ["unit_1_add"], ()),
        ("global_average_pooling2d_7", "gap", {}, ["pool"], ()),  # no scope "7"
        ("fc", "fc", {"n": 10, "bias": True}, ["global_average_pooling2d_7"], ()),
    ]  # fmt: skip
    assert imported.outputs == ["fc"]
    network = imported_network(str(path))
    assert network.total_params == small_model().count_params() - 2 * 8  # less moving stats


def test_an_unsupported_layer_names_its_class_and_name():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(1 / 255, name="scale_in")(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, name="conv")(x))
    with pytest.raises(NetdslError) as caught:
        keras_frontend.read(model)
    assert caught.value.message == (
        "cannot import keras.layers.Rescaling 'scale_in' from Functional: netdsl has no such layer"
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("keras.applications:MobileNet(weights='imagenet')", "imports the architecture only"),
        ("keras.applications:MobileNet(alpha=open('x'))", "arguments must be Python literals"),
        ("keras.applications:NoSuchNet", "keras.applications has no NoSuchNet"),
        ("missing.keras", "cannot import missing.keras: no such file"),
    ],
)
def test_bad_sources_are_user_errors(source, message):
    with pytest.raises(NetdslError, match=message):
        keras_frontend.read(source)
