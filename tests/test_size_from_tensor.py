"""A size taken from a named tensor: `upsample size=img` (FCN's and FPN's "upsample to the
size of that map") and `crop size=x` (U-Net's crop-and-concat: the centre of the copied
map, as large as the up-convolution's output).

The tensor is the layer node's second input; the shape rules read its height and width;
the generated PyTorch reads them at run time (`F.interpolate(x, size=img.shape[-2:], ...)`,
`center_crop(skip, x_.shape[-2:])`), so a block that crops or upsamples to a tensor
parameter is one class for every instance and the model runs at other input sizes;
Keras reads the static shapes when the model is built (`layers.Resizing(img.shape[1],
img.shape[2])`, `layers.Cropping2D(center_cropping(skip, x_))`). Odd differences split as
torchvision's center_crop splits them: top = round((H - h) / 2), Python's round.
"""

from __future__ import annotations

import pytest
from backends import build_torch, check_backends, check_torch, keras_source, torch_source
from conftest import ARCHITECTURES, compile_text, need

from netdsl import compile_file
from netdsl.analysis import layer_call
from netdsl.errors import NetdslError
from netdsl.explain import explain
from netdsl.layers import TensorSize, center_offsets, derivation

# FCN's head: down by 4, a classifier, then back to the input's size
FCN = """\
network seg(classes=3):
    input img 3x20x24
    conv 8 k=3 s=2 p=1 + bn + relu + conv 8 k=3 s=2 p=1 + relu + conv1 classes
    + upsample size=img mode=bilinear
"""

# nearest to a whole multiple of the input (4x), the size of an intermediate map (FPN's
# top-down path: the coarser map upsampled to the finer one's size, then added)
FPN = """\
network fpn:
    input 3x16x16
    c2 = conv 8 k=3 s=2 p=1 + relu
    c3 = c2 + conv 8 k=3 s=2 p=1 + relu
    c4 = c3 + conv 8 k=3 s=2 p=1 + relu
    p3 = add(c4 + upsample size=c3, c3 + conv1 8)
    add(p3 + upsample size=c2, c2 + conv1 8) + conv1 2
"""

# U-Net's up step at two levels: valid convs, odd map sizes (19 -> 14: 2 rows above, 3
# below; 42 -> 24: 9 and 9)
UNET = """\
block up(skip, c):
    x = conv_transpose c k=2 s=2
    concat(skip + crop size=x, x) + conv c k=3 + relu

network tiny(classes=2):
    input 1x44x44
    d1 = conv 4 k=3 + relu
    d2 = d1 + maxpool2 + conv 8 k=3 + relu
    d2 + maxpool2 + conv 16 k=3 + relu
    + up(d2, 8)
    + up(d1, 4)
    + conv1 classes
"""


def error(src: str) -> NetdslError:
    with pytest.raises(NetdslError) as info:
        compile_text(src)
    return info.value


def nodes(net, op: str) -> list:
    return [n for n in net.nodes() if n.op == op]


# ---- elaboration -----------------------------------------------------------------------------


def test_upsample_reads_the_tensor_as_its_second_input():
    net = compile_text(FCN)
    (up,) = nodes(net, "upsample")
    assert up.inputs == [nodes(net, "conv")[-1], net.inputs["img"]]
    assert [tuple(int(d.value) for d in s) for s in up.in_shapes] == [(3, 5, 6), (3, 20, 24)]
    assert up.out_shape == (3, 20, 24)
    assert (up.params, up.macs) == (0, 0)
    assert up.attrs["size"] == TensorSize("img")
    assert (net.inputs["img"].id, up.id) in net.graph.edges
    assert layer_call(up) == "upsample size=img mode=bilinear"
    assert derivation(up)[0].text == "resized to the size of img: 20x24 (bilinear)"


def test_explain_shows_both_inputs_and_no_receptive_field_from_the_size():
    text = explain(compile_text(FCN))
    assert "upsample size=img mode=bilinear    3x5x6, 3x20x24 -> 3x20x24" in text
    # the size is not a branch: the receptive field follows the first input only
    assert "RF                                            largest branch" not in text


def test_crop_to_a_tensor_takes_the_centre():
    net = compile_text(UNET)
    crops = nodes(net, "crop")
    transposed = nodes(net, "conv_transpose")
    assert [c.inputs[1] for c in crops] == transposed
    assert [c.out_shape for c in crops] == [(8, 14, 14), (4, 24, 24)]
    assert [int(c.in_shapes[0][1].value) for c in crops] == [19, 42]
    assert [(c.params, c.macs) for c in crops] == [(0, 0), (0, 0)]
    notes = derivation(crops[0])
    assert notes[0].text == "the center, as large as x: 14x14"
    assert (notes[1].operands, notes[1].result) == ((19, 2, 3), 14)
    assert layer_call(crops[0]) == "crop size=x"


@pytest.mark.parametrize(
    "difference, sides",
    [(0, (0, 0)), (1, (0, 1)), (2, (1, 1)), (3, (2, 1)), (4, (2, 2)), (5, (2, 3)), (9, (4, 5))],
)
def test_odd_differences_split_as_torchvision_rounds(difference, sides):
    """torchvision's center_crop: top = int(round((H - h) / 2.0)), round half to even."""
    assert center_offsets(20 + difference, 20) == sides


# ---- errors ----------------------------------------------------------------------------------


def test_crop_to_a_larger_tensor_is_refused():
    e = error("network n:\n    input 3x8x8\n    a = conv1 4\n    conv 4 k=3 + crop size=a\n")
    assert e.message == (
        "crop: the input (6x6) is smaller than a's 8x8; a center crop only removes rows "
        "and columns (input 4x6x6)"
    )
    assert (e.span.line, e.span.column) == (4, 18)
    assert "zeropad" in e.hint


@pytest.mark.parametrize("layer", ["upsample size=f", "crop size=f"])
def test_a_flat_tensor_has_no_size(layer):
    e = error(f"network n:\n    input x 3x8x8\n    f = gap + flatten\n    x + conv1 4 + {layer}\n")
    name = layer.split()[0]
    assert e.message.startswith(
        f"{name}: size=f needs an image tensor (C x H x W), but 'f' is a flat tensor of 3 features"
    )
    assert e.hint.endswith("or size=(h, w)")


@pytest.mark.parametrize(
    "layer, message",
    [
        (
            "crop size=(4, 4)",
            "crop: 'size' must be a named tensor (its height and width are the size), got a tuple",
        ),
        (
            "crop size=relu",
            "crop: 'size' must be a named tensor (its height and width are the size), got a layer",
        ),
        (
            "upsample size=relu",
            "upsample: 'size' must be a positive integer, a pair (h, w) or a named tensor "
            "(its height and width), got a layer",
        ),
    ],
)
def test_a_size_that_is_not_a_tensor(layer, message):
    e = error(f"network n:\n    input 3x8x8\n    conv1 4 + {layer}\n")
    assert e.message == message


def test_a_tensor_given_positionally_points_to_size():
    e = error("network n:\n    input 3x8x8\n    a = conv1 4\n    conv 4 k=3 + crop a\n")
    assert e.message == "'a' is a tensor, not an argument of crop"
    assert e.hint == "to take a's height and width, write `crop size=a`"


@pytest.mark.parametrize(
    "layer, message",
    [
        ("crop", "crop needs the rows and columns to remove, or size="),
        ("crop 1 size=a", "crop takes the rows and columns to remove or size=, not both"),
    ],
)
def test_crop_needs_one_of_its_two_forms(layer, message):
    e = error(f"network n:\n    input 3x8x8\n    a = conv1 4\n    conv1 4 + {layer}\n")
    assert e.message.startswith(message)
    assert "crop size=x" in e.hint


def test_keras_refuses_nearest_to_a_size_that_is_not_a_whole_multiple():
    net = compile_text("network n:\n    input img 3x10x10\n    conv 4 k=3 + upsample size=img\n")
    with pytest.raises(NetdslError, match="Keras' nearest resizing picks other pixels"):
        keras_source(net)
    assert "F.interpolate(out, size=img.shape[-2:])" in torch_source(net)  # torch: exact


# ---- generated code --------------------------------------------------------------------------


def test_torch_interpolates_to_the_size_read_at_run_time():
    source = torch_source(compile_text(FCN))
    assert "from torch.nn import functional as F\n" in source
    assert (
        'F.interpolate(\n            out, size=img.shape[-2:], mode="bilinear", '
        "align_corners=False\n        )"
    ) in source
    assert "nn.Upsample" not in source and "self.upsample" not in source


def test_torch_unet_up_is_one_class():
    source = torch_source(compile_text(UNET))
    assert source.count("class Up(") == 1 and "class Up2" not in source
    assert "skip = center_crop(skip, x_.shape[-2:])" in source
    assert "def center_crop(x: Tensor, size: tuple[int, int]) -> Tensor:" in source
    assert "Crop2d" not in source and "functional as F" not in source


def test_the_zoo_unet_has_one_class_per_block():
    source = torch_source(compile_file(ARCHITECTURES / "unet.net"))
    classes = [line.split("(")[0][6:] for line in source.splitlines() if line.startswith("class")]
    assert classes == ["DoubleConv", "Down", "Up", "Unet"]
    for level in range(1, 5):
        assert f"self.up{level} = Up(" in source


def test_the_zoo_fcn_upsamples_at_run_time():
    source = torch_source(compile_file(ARCHITECTURES / "fcn_resnet50.net"))
    assert "size=img.shape[-2:]" in source and "(520, 520)" not in source


def test_keras_reads_the_static_shapes():
    fcn = keras_source(compile_text(FCN))
    assert 'layers.Resizing(img.shape[1], img.shape[2], name="upsample")(out)' in fcn
    unet = keras_source(compile_text(UNET))
    assert 'skip = layers.Cropping2D(center_cropping(skip, x_), name=f"{name}_crop")(skip)' in unet
    assert "def up2" not in unet


@pytest.mark.parametrize("program", [FCN, FPN, UNET], ids=["fcn", "fpn", "unet"])
def test_generated_code_is_ruff_clean(program):
    from test_expressions_numeric import ruff_clean

    net = compile_text(program)
    ruff_clean(torch_source(net))
    ruff_clean(keras_source(net))


# ---- real forward passes ---------------------------------------------------------------------


@pytest.mark.parametrize("program", [FCN, FPN, UNET], ids=["fcn", "fpn", "unet"])
def test_inferred_torch_and_keras_agree(program):
    """Shapes, parameters, and the same outputs on converted weights (rel 1e-4)."""
    check_backends(compile_text(program), backward=True)


def test_align_corners_in_torch():
    net = compile_text(FCN.replace("mode=bilinear", "mode=bilinear align_corners=true"))
    check_torch(net)
    assert "align_corners=True" in torch_source(net)


@pytest.mark.parametrize(
    "program, other, expected",
    [(FCN, (3, 37, 29), (3, 37, 29)), (UNET, (1, 60, 60), (2, 38, 38))],
    ids=["fcn", "unet"],
)
def test_the_torch_model_runs_at_other_input_sizes(program, other, expected):
    """The sizes are read at run time: the model generated for one input size runs at
    another, with the output the DSL infers there, and the crops take the same centre."""
    torch = need("torch")
    _, model = build_torch(compile_text(program))
    there = compile_text(program, input_shape=other)
    assert there.main_output.node.out_shape == expected
    with torch.no_grad():
        out = model(torch.randn(1, *other))
    assert tuple(out.shape[1:]) == expected
    # the same weights in a model generated for that size: the same values
    _, fixed = build_torch(there)
    fixed.load_state_dict(model.state_dict())
    x = torch.randn(2, *other)
    with torch.no_grad():
        torch.testing.assert_close(model(x), fixed(x))


def test_the_crop_helper_takes_torchvisions_centre():
    torch = need("torch")
    module, _ = build_torch(compile_text(UNET))
    x = torch.arange(2 * 3 * 13 * 11, dtype=torch.float32).reshape(2, 3, 13, 11)
    for h, w in [(13, 11), (12, 10), (10, 6), (8, 7), (4, 2), (1, 1)]:
        top, _ = center_offsets(13, h)
        left, _ = center_offsets(11, w)
        expected = x[:, :, top : top + h, left : left + w]
        assert torch.equal(module.center_crop(x, torch.Size((h, w))), expected)


@pytest.mark.torchvision
@pytest.mark.slow
def test_the_crop_helper_equals_torchvision_center_crop():
    torch = need("torch")
    functional = pytest.importorskip("torchvision.transforms.functional")
    module, _ = build_torch(compile_text(UNET))
    x = torch.randn(2, 3, 17, 16)
    for h in range(1, 18):
        for w in (1, 5, 8, 11, 16):
            expected = functional.center_crop(x, [h, w])
            assert torch.equal(module.center_crop(x, (h, w)), expected), (h, w)
