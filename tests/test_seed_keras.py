"""The seed's own Keras code: AlexNet, ZF-Net and VGG-16 as the lecture notes write them.

The notes teach these three networks as Keras `Sequential` programs: one layer per
line, `Conv2D(96, (11, 11), strides=(4, 4), ...)`, `MaxPooling2D`, `Flatten`, `Dense`,
`Dropout`. Each program is written below as a course writes it (Keras 3, with a
`keras.Input` first), and checked against the zoo file it corresponds to, compiled to
Keras by netdsl: the same `count_params()`, the same output shape at every pooling
layer, and the same weights and output shape at every Conv2D and Dense layer, in order.

What a plain Sequential program cannot say, and how the comparison treats it:

* LRN (AlexNet, ZF-Net): Keras has no such layer and the notes' programs leave it out.
  It has no weights and keeps the shape, so neither figure compared here sees it.
* AlexNet's two towers: see `test_alexnet`.
* Softmax on the last layer: the programs end in `activation="softmax"` as the notes
  do; the zoo files give logits. No weights, same shape.
"""

from __future__ import annotations

import gc

import pytest
from backends import build_keras
from conftest import ARCHITECTURES, need

from netdsl import compile_file


def classifier(layers) -> list:
    """The three networks' shared head, as the notes write it: two 4096-unit layers with
    dropout, then the 1000-way softmax."""
    return [
        layers.Flatten(),
        layers.Dense(4096, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(4096, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(1000, activation="softmax"),
    ]


def alexnet_program(keras, groups: int = 1):
    """AlexNet as the notes write it, at 227x227 (the paper's "224" does not give 55x55).
    `groups=2` splits conv2, conv4 and conv5 between the two GPUs' halves."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(227, 227, 3)),
            layers.Conv2D(96, (11, 11), strides=(4, 4), activation="relu"),  # 55x55x96
            layers.MaxPooling2D(pool_size=(3, 3), strides=(2, 2)),  # 27x27x96
            layers.Conv2D(256, (5, 5), padding="same", activation="relu", groups=groups),
            layers.MaxPooling2D(pool_size=(3, 3), strides=(2, 2)),  # 13x13x256
            layers.Conv2D(384, (3, 3), padding="same", activation="relu"),
            layers.Conv2D(384, (3, 3), padding="same", activation="relu", groups=groups),
            layers.Conv2D(256, (3, 3), padding="same", activation="relu", groups=groups),
            layers.MaxPooling2D(pool_size=(3, 3), strides=(2, 2)),  # 6x6x256
            *classifier(layers),
        ]
    )


def zfnet_program(keras):
    """ZF-Net (Zeiler & Fergus, Fig. 3): AlexNet with a 7x7/2 first layer and a stride-2
    second layer. The figure's 110x110 after layer 1 needs one pixel of padding before
    the 7x7/2 conv (224 + 2 - 7) / 2 + 1 = 110; "same" pooling gives the figure's 55 and
    13 (zero-padding after, where the zoo file pads both sides: the shapes are the same)."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(224, 224, 3)),
            layers.ZeroPadding2D(padding=(1, 1)),
            layers.Conv2D(96, (7, 7), strides=(2, 2), activation="relu"),  # 110x110x96
            layers.MaxPooling2D(pool_size=(3, 3), strides=(2, 2), padding="same"),  # 55x55
            layers.Conv2D(256, (5, 5), strides=(2, 2), activation="relu"),  # 26x26x256
            layers.MaxPooling2D(pool_size=(3, 3), strides=(2, 2), padding="same"),  # 13x13
            layers.Conv2D(384, (3, 3), padding="same", activation="relu"),
            layers.Conv2D(384, (3, 3), padding="same", activation="relu"),
            layers.Conv2D(256, (3, 3), padding="same", activation="relu"),
            layers.MaxPooling2D(pool_size=(3, 3), strides=(2, 2)),  # 6x6x256
            *classifier(layers),
        ]
    )


def vgg16_program(keras):
    """VGG-16, configuration D of Table 1. The notes' program writes one kernel as
    `(3, 2)`, a typo (every conv of Table 1 is 3x3, and "same" padding hides it from
    the shapes but not from the weights): here it is `(3, 3)`."""
    layers = keras.layers

    def conv(filters):
        return layers.Conv2D(filters, (3, 3), padding="same", activation="relu")

    def pool():
        return layers.MaxPooling2D(pool_size=(2, 2), strides=(2, 2))

    return keras.Sequential(
        [
            keras.Input(shape=(224, 224, 3)),
            conv(64), conv(64), pool(),  # 112x112x64
            conv(128), conv(128), pool(),  # 56x56x128
            conv(256), conv(256), conv(256), pool(),  # 28x28x256
            conv(512), conv(512), conv(512), pool(),  # 14x14x512
            conv(512), conv(512), conv(512), pool(),  # 7x7x512
            *classifier(layers),
        ]
    )  # fmt: skip


def profile(model) -> dict[str, list]:
    """Output shapes (H, W, C) of the pooling layers, and (class, weight shapes, output
    shape) of the Conv2D and Dense layers, each in the model's order."""
    pools, weighted = [], []
    for layer in model.layers:
        kind = type(layer).__name__
        shape = tuple(layer.output.shape[1:])
        if kind.endswith("Pooling2D"):
            pools.append(shape)
        elif kind in ("Conv2D", "Dense"):
            weighted.append((kind, [tuple(w.shape) for w in layer.weights], shape))
    return {"pools": pools, "weighted": weighted}


def compare(program, name: str) -> dict[str, list]:
    """The seed program's figures against the zoo file's Keras model; returns the zoo
    model's profile for the test's own assertions."""
    keras = need("keras")
    try:
        seed = program(keras)
        _, zoo = build_keras(compile_file(ARCHITECTURES / f"{name}.net"))
        assert seed.count_params() == zoo.count_params()
        ours, theirs = profile(seed), profile(zoo)
        assert ours["weighted"] == theirs["weighted"]
        return {"seed": ours["pools"], "zoo": theirs["pools"], "params": seed.count_params()}
    finally:
        keras.backend.clear_session()
        gc.collect()


@pytest.mark.slow
def test_alexnet():
    """Against alexnet_one_tower.net, not alexnet.net: the notes' program is one
    Sequential stack with no groups, which is the one-tower file layer for layer
    (alexnet.net's two towers are two parallel stacks joined by concats, which a
    Sequential program cannot write). The same program with `groups=2` at conv2, conv4
    and conv5, the way a one-GPU port writes the towers, has alexnet.net's count."""
    found = compare(alexnet_program, "alexnet_one_tower")
    assert found["params"] == 62_378_344
    assert found["seed"] == found["zoo"] == [(27, 27, 96), (13, 13, 256), (6, 6, 256)]

    keras = need("keras")
    try:
        towers = alexnet_program(keras, groups=2).count_params()
    finally:
        keras.backend.clear_session()
    assert towers == compile_file(ARCHITECTURES / "alexnet.net").total_params == 60_965_224


@pytest.mark.slow
def test_zfnet():
    found = compare(zfnet_program, "zfnet")
    assert found["params"] == 62_357_608
    assert found["seed"] == found["zoo"] == [(55, 55, 96), (13, 13, 256), (6, 6, 256)]


@pytest.mark.slow
def test_vgg16():
    """The zoo file (torchvision's vgg16) ends its features with an adaptive 7x7 average
    pool, the identity at 224x224, which the notes' program does not write: the zoo
    model has one pooling layer more, whose output is the last max pool's."""
    found = compare(vgg16_program, "vgg16")
    assert found["params"] == 138_357_544
    maxpools = [(112, 112, 64), (56, 56, 128), (28, 28, 256), (14, 14, 512), (7, 7, 512)]
    assert found["seed"] == maxpools
    assert found["zoo"] == [*maxpools, (7, 7, 512)]
