"""Messages for the habits people bring from PyTorch and Keras (issue 22's semantic rows).

Each test is a wrong program a student writes and the exact message that should tell them
the netdsl spelling at once; the same programs appear in docs/errors.md.
"""

from __future__ import annotations

import pytest
from conftest import ARCHITECTURES, run_cli

from netdsl import NetdslError, compile_text


def report(src: str, path: str = "err.net") -> str:
    with pytest.raises(NetdslError) as info:
        compile_text(src, path)
    return info.value.format()


def lines(*text: str) -> str:
    return "\n".join(text)


NET = "network net:\n    input 3x32x32\n"  # the mistake is on line 3


# ---- channels last ------------------------------------------------------------------------------


def test_a_channels_last_input_is_blamed_at_the_input_line():
    src = "network net:\n    input 224x224x3\n    conv3 64 + relu + maxpool2 + maxpool2\n"
    assert report(src) == lines(
        "err.net:2:11: this input looks like H x W x C (224x224x3): netdsl takes C x H x W",
        "        input 224x224x3",
        "              ^~~~~~~~~",
        "hint: write `input 3x224x224`",
        "err.net:3:34: note: which leads to: maxpool: the W size falls to zero: input 1, "
        "padding 0, kernel 2",
    )


@pytest.mark.parametrize("shape", ["3x224x224", "1x28x28", "4x84x84", "784", "64x64x1"])
def test_inputs_that_are_not_channels_last_keep_the_shape_error(shape):
    """Only a shape error after an H x W x C-looking input is re-blamed; `64x64x1` reads as
    channels last, but here it has no shape error to explain."""
    body = "flatten + fc 10" if shape == "784" else "conv 8 k=1 + flatten + fc 10"
    src = f"network net:\n    input {shape}\n    {body}\n"
    assert compile_text(src, "ok.net").name == "net"


def test_a_shape_error_after_a_channels_first_input_is_unchanged():
    src = "network net:\n    input 3x4x4\n    conv 8 k=5\n"
    assert report(src).splitlines()[0] == (
        "err.net:3:5: conv: the H size falls to zero: input 4, padding 0, kernel 5"
    )


# ---- PyTorch's argument order -------------------------------------------------------------------


def test_conv_with_pytorch_in_and_out_channels():
    assert report(NET + "    conv(3, 64) + relu\n") == lines(
        "err.net:3:5: conv: 3 output channels with a 64x64 kernel: netdsl's conv takes (c, k), "
        "not PyTorch's (in_channels, out_channels)",
        "        conv(3, 64) + relu",
        "        ^~~~~~~~~~~",
        "hint: netdsl infers the input channels: write `conv 64 k=3`",
    )


def test_conv_with_in_channels_and_a_kernel_by_name():
    assert report(NET + "    conv 3 64 k=3 + relu\n") == lines(
        "err.net:3:15: conv: argument 'k' given twice",
        "        conv 3 64 k=3 + relu",
        "                  ^",
        "hint: netdsl infers the input channels: write `conv 64 k=3`",
    )


def test_conv_with_pytorchs_three_positional_arguments():
    assert report(NET + "    conv(3, 64, 5)\n") == lines(
        "err.net:3:17: conv takes 2 positional arguments but 3 were given",
        "        conv(3, 64, 5)",
        "                    ^",
        "hint: netdsl infers the input channels: write `conv 64 k=5`",
    )


def test_legal_convs_are_not_taken_for_pytorchs_order():
    ok = (
        "network net:\n    input 3x32x32\n    conv 64 3 + conv 64 3 s=2 + conv(3, 5) + conv 3 k=7\n"
    )
    assert compile_text(ok, "ok.net").name == "net"
    e = report(NET + "    conv 64 3 2\n").splitlines()
    assert e[-1] == "hint: conv takes 2 positional arguments (c, k); give the others by name"
    # a large kernel that keeps many channels and fits the map is meant (RepLKNet's 31 x 31)
    large = "network net:\n    input 64x56x56\n    conv 64 k=31 p=15 + conv 64 k=31 p=15 g=64\n"
    assert compile_text(large, "ok.net").name == "net"


# ---- keyword names ------------------------------------------------------------------------------


def test_keras_activation_keyword():
    assert report(NET + "    conv(64, (3, 3), activation=relu)\n") == lines(
        "err.net:3:22: conv has no argument 'activation'",
        "        conv(64, (3, 3), activation=relu)",
        "                         ^~~~~~~~~~",
        "hint: netdsl calls it act: `act=relu`",
    )


@pytest.mark.parametrize(
    "call, hint",
    [
        ("conv(64, 3, kernel_size=3)", "netdsl calls it k: `k=3`"),
        ("conv(filters=64, k=3)", "netdsl calls it c: `c=64`"),
        ("conv(out_channels=64, k=3)", "netdsl calls it c: `c=64`"),
        ("conv(64, 3, in_channels=3)", "netdsl infers in_channels from the input: leave it out"),
        ("conv(64, 3, strides=2)", "netdsl calls it s: `s=2`"),
        ("conv(64, 3, use_bias=false)", "netdsl calls it bias: `bias=false`"),
        ("flatten + fc(10, units=10)", "netdsl calls it n: `n=10`"),
        ("maxpool(pool_size=2)", "netdsl calls it k: `k=2`"),
        ("bn activation=relu", "bn has no activation argument: add it as a layer, `bn ... + relu`"),
    ],
)
def test_framework_keywords_get_the_netdsl_name(call, hint):
    assert report(NET + f"    {call}\n").splitlines()[-1] == f"hint: {hint}"


# ---- framework class names ----------------------------------------------------------------------


def test_pytorch_conv2d():
    assert report(NET + "    Conv2d(3, 64, 3)\n") == lines(
        "err.net:3:5: unknown layer, block or name 'Conv2d'",
        "        Conv2d(3, 64, 3)",
        "        ^~~~~~~~~~~~~~~~",
        "hint: Conv2d(3, 64, 3) is how PyTorch writes it; in netdsl: `conv 64 k=3` "
        "(the input channels are inferred)",
    )


def test_pytorch_module_prefix():
    assert report(NET + "    conv3 64 + nn.ReLU()\n") == lines(
        "err.net:3:16: syntax error: netdsl's layer names take no module prefix ('nn.')",
        "        conv3 64 + nn.ReLU()",
        "                   ^~~~~~~~~",
        "hint: nn.ReLU() is how PyTorch writes it; in netdsl: `relu`",
    )


def test_keras_dense():
    assert report("network net:\n    input 784\n    Dense(10)\n") == lines(
        "err.net:3:5: unknown layer, block or name 'Dense'",
        "        Dense(10)",
        "        ^~~~~~~~~",
        "hint: Dense(10) is how Keras writes it; in netdsl: `fc 10`",
    )


def test_keras_max_pooling():
    assert report(NET + "    MaxPooling2D(2)\n") == lines(
        "err.net:3:5: unknown layer, block or name 'MaxPooling2D'",
        "        MaxPooling2D(2)",
        "        ^~~~~~~~~~~~~~~",
        "hint: MaxPooling2D(2) is how Keras writes it; in netdsl: `maxpool2`",
    )


@pytest.mark.parametrize(
    "call, spelling",
    [
        (
            "BatchNorm2d(64)",
            "is how PyTorch writes it; in netdsl: `bn` (the input channels are inferred)",
        ),
        (
            "Linear(512, 10)",
            "is how PyTorch writes it; in netdsl: `fc 10` (the input features are inferred)",
        ),
        ("Dropout(0.5)", "is how PyTorch and Keras write it; in netdsl: `dropout 0.5`"),
        ("MaxPool2d(3, 2, 1)", "is how PyTorch writes it; in netdsl: `maxpool 3 s=2 p=1`"),
        ("MaxPool2d(2, 2)", "is how PyTorch writes it; in netdsl: `maxpool2`"),
        ("AvgPool2d(2)", "is how PyTorch writes it; in netdsl: `avgpool2`"),
        ("AdaptiveAvgPool2d((1, 1))", "is how PyTorch writes it; in netdsl: `gap`"),
        ("AdaptiveAvgPool2d(7)", "is how PyTorch writes it; in netdsl: `adaptive_avgpool 7`"),
        ("Flatten()", "is how PyTorch and Keras write it; in netdsl: `flatten`"),
        ("ReLU(inplace=True)", "is how PyTorch and Keras write it; in netdsl: `relu`"),
        ("Softmax(dim=1)", "is how PyTorch and Keras write it; in netdsl: `softmax`"),
        ("LeakyReLU(0.2)", "is how PyTorch and Keras write it; in netdsl: `leaky_relu 0.2`"),
        ("GlobalAveragePooling2D()", "is how Keras writes it; in netdsl: `gap`"),
        ("BatchNormalization()", "is how Keras writes it; in netdsl: `bn`"),
        (
            'Conv2D(64, (3, 3), padding="same", activation="relu")',
            "is how Keras writes it; in netdsl: `conv3 64 act=relu`",
        ),
        ("Conv2D(32, 3, strides=2)", "is how Keras writes it; in netdsl: `conv 32 k=3 s=2`"),
        (
            "Conv2d(64, 128, kernel_size=3, stride=2, padding=1, bias=False)",
            "is how PyTorch writes it; in netdsl: `conv 128 k=3 s=2 p=1 bias=false` "
            "(the input channels are inferred)",
        ),
        ("layers.Dense(10)", "is how Keras writes it; in netdsl: `fc 10`"),
        ("tf.keras.layers.MaxPooling2D(2)", "is how Keras writes it; in netdsl: `maxpool2`"),
    ],
)
def test_framework_classes_get_the_netdsl_spelling_with_their_arguments(call, spelling):
    assert report(NET + f"    {call}\n").splitlines()[-1] == f"hint: {call} {spelling}"


def test_a_framework_name_without_brackets_keeps_did_you_mean():
    assert report(NET + "    Dense 10\n").splitlines()[-1] == "hint: did you mean 'fc'?"


# ---- the standard library and undeclared numbers ------------------------------------------------


def test_a_standard_library_block_without_use():
    assert report("network net:\n    input 3x56x56\n    bottleneck(256)\n") == lines(
        "err.net:3:5: unknown layer, block or name 'bottleneck'",
        "        bottleneck(256)",
        "        ^~~~~~~~~~~~~~~",
        "hint: 'bottleneck' is in the standard library: add `use resnet` at the top of the file",
    )


@pytest.mark.parametrize(
    "block, module",
    [("dense_block(6)", "densenet"), ("fire(16, 64, 64)", "squeezenet"), ("vgg(2, 64)", "vgg")],
)
def test_every_standard_library_module_is_named(block, module):
    hint = report(NET + f"    {block}\n").splitlines()[-1]
    name = block.split("(")[0]
    assert hint == (
        f"hint: '{name}' is in the standard library: add `use {module}` at the top of the file"
    )


def test_an_undeclared_number_in_a_network():
    assert report(NET + "    conv3 width\n") == lines(
        "err.net:3:11: unknown layer, block or name 'width'",
        "        conv3 width",
        "              ^~~~~",
        "hint: if 'width' is meant as a number, declare it as a network parameter: "
        "`network net(width=64)`",
    )


def test_an_undeclared_number_keeps_the_networks_parameters():
    src = "network vgg(classes=10, sizes=(1, 2)):\n    input 3x32x32\n    conv3 (width * 2)\n"
    assert report(src).splitlines()[-1] == (
        "hint: if 'width' is meant as a number, declare it as a network parameter: "
        "`network vgg(classes=10, sizes=(1, 2), width=64)`"
    )


def test_an_undeclared_number_in_a_block():
    src = "block unit(c, s=1) = conv3 c s=stride\n" + NET + "    unit(64)\n"
    assert report(src).splitlines()[3] == (
        "hint: if 'stride' is meant as a number, declare it as a block parameter: "
        "`block unit(c, s=1, stride=1)`"
    )


def test_a_misspelt_number_still_gets_did_you_mean():
    src = "network net(classes=10):\n    input 3x32x32\n    conv3 clases\n"
    assert report(src).splitlines()[-1] == "hint: did you mean 'classes'?"


def test_an_unknown_activation_is_not_taken_for_a_number():
    assert report(NET + "    conv3 64 act=rleu\n").splitlines()[-1] == "hint: did you mean 'relu'?"


# ---- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["check"], ["compile", "--target", "torch"]])
def test_a_word_for_a_parameter_is_a_usage_error(capsys, command):
    vgg16 = str(ARCHITECTURES / "vgg16.net")
    code, out, err = run_cli(capsys, *command, vgg16, "--param", "classes=ten")
    assert (code, out) == (2, "")
    assert err.splitlines()[-1] == (
        f"netdsl {command[0]}: error: --param classes=ten: 'ten' is not a number "
        "(a parameter takes a number, true, false or a shape such as 3x224x224)"
    )


def test_a_missing_parameter_value_is_a_usage_error(capsys):
    code, _, err = run_cli(capsys, "check", str(ARCHITECTURES / "vgg16.net"), "--param", "classes=")
    assert code == 2
    assert err.splitlines()[-1] == (
        "netdsl check: error: --param classes=: the value is missing "
        "(a parameter takes a number, true, false or a shape such as 3x224x224)"
    )


def test_a_module_prefix_without_brackets():
    assert report(NET + "    conv3 64 + nn.ReLU\n") == lines(
        "err.net:3:16: unknown layer, block or name 'nn'",
        "        conv3 64 + nn.ReLU",
        "                   ^~",
        "hint: netdsl's layer names take no module prefix ('nn.'): write relu, conv 64 k=3, ...",
    )
