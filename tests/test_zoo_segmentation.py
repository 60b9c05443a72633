"""The segmentation rows: U-Net (architectures/unet.net) and FCN-ResNet50 (fcn_resnet50.net).

U-Net — Ronneberger, Fischer & Brox, MICCAI 2015, Fig. 1 — has no library implementation,
so its reference is `PaperUNet` below, a plain PyTorch module written from the figure:
two valid 3x3 convs + ReLU per level (blue arrows), 2x2 max pools (red), 2x2
up-convolutions halving the channels (green), the contracting path's map cropped to its
centre and concatenated (gray, the copy first), a 1x1 conv to 2 classes; 572x572x1 in,
388x388x2 out. Its parameters and MACs (torch.utils.flop_counter / 2, batch 1) are the
file's Expected figures, Fig. 1's map sizes are the file's, and its weights load by order
into the generated model with equal outputs.

FCN-ResNet50's figures and weights are checked against torchvision in test_zoo.py and
test_references.py (TORCHVISION_BUILDERS); here, the structure torchvision builds with
replace_stride_with_dilation=[False, True, True].
"""

from __future__ import annotations

import pytest
from backends import build_torch
from conftest import ARCHITECTURES, need
from test_zoo import net, out_shape, scopes

from netdsl import compile_file
from netdsl.errors import NetdslError
from netdsl.layers import center_offsets

# Fig. 1's map sizes (x = y): each level's two convs, on the way down and on the way up
DOWN = [(570, 568), (282, 280), (138, 136), (66, 64), (30, 28)]
UP_CONV = [56, 104, 200, 392]  # the up-convolutions' outputs, the crops' sizes
UP = [(54, 52), (102, 100), (198, 196), (390, 388)]
WIDTHS = [64, 128, 256, 512, 1024]
# PaperUNet's figures at 1x572x572 (sum of parameters; FlopCounterMode / 2, batch 1)
UNET_PARAMS, UNET_MACS = 31_030_658, 150_428_424_448


def paper_unet(in_channels: int = 1, classes: int = 2):
    """U-Net as drawn in Fig. 1, modules registered in the order the figure is read."""
    nn = need("torch").nn
    torch = need("torch")

    def double_conv(cin: int, c: int):
        return nn.Sequential(nn.Conv2d(cin, c, 3), nn.ReLU(), nn.Conv2d(c, c, 3), nn.ReLU())

    def center_crop(x, size):
        top, left = (x.shape[2] - size[0]) // 2, (x.shape[3] - size[1]) // 2
        return x[:, :, top : top + size[0], left : left + size[1]]

    class PaperUNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            cins = [in_channels, *WIDTHS[:-1]]
            self.down = nn.ModuleList(double_conv(a, b) for a, b in zip(cins, WIDTHS))
            self.pool = nn.MaxPool2d(2)
            self.up = nn.ModuleList()
            for c in reversed(WIDTHS[:-1]):  # 512, 256, 128, 64
                self.up.append(
                    nn.ModuleList(
                        [nn.ConvTranspose2d(2 * c, c, 2, stride=2), double_conv(2 * c, c)]
                    )
                )
            self.head = nn.Conv2d(WIDTHS[0], classes, 1)
            self.maps: list[tuple[int, ...]] = []

        def forward(self, x):
            self.maps = []
            skips = []
            for i, level in enumerate(self.down):
                x = level(x if i == 0 else self.pool(x))
                self.maps.append(tuple(x.shape[1:]))
                skips.append(x)
            for (upconv, convs), skip in zip(self.up, reversed(skips[:-1])):
                x = upconv(x)
                x = torch.cat([center_crop(skip, x.shape[2:]), x], 1)
                x = convs(x)
                self.maps.append(tuple(x.shape[1:]))
            return self.head(x)

    return PaperUNet()


def unet_at(size: int):
    return compile_file(ARCHITECTURES / "unet.net", input_shape=(1, size, size))


# ---- U-Net: the file against Fig. 1 (no torch) ------------------------------------------------


def test_unet_map_sizes_follow_fig_1():
    network = net("unet")
    down = [s for s in scopes(network, "double_conv") if s.id.count(".") <= 1][:5]
    assert [out_shape(s) for s in down] == [(c, n[1], n[1]) for c, n in zip(WIDTHS, DOWN)]
    convs = [n for s in down for n in s.walk() if getattr(n, "op", None) == "conv"]
    assert [n.out_shape[1] for n in convs] == [m for pair in DOWN for m in pair]
    ups = scopes(network, "up")
    assert [out_shape(s) for s in ups] == [
        (c, n[1], n[1]) for c, n in zip(reversed(WIDTHS[:-1]), UP)
    ]
    transposed = [n for n in network.nodes() if n.op == "conv_transpose"]
    crops = [n for n in network.nodes() if n.op == "crop"]
    assert [n.out_shape for n in transposed] == [
        (c, m, m) for c, m in zip(reversed(WIDTHS[:-1]), UP_CONV)
    ]
    assert [n.out_shape for n in crops] == [n.out_shape for n in transposed]
    # each crop reads the up-convolution's output for its size (crop size=x) ...
    assert [n.inputs[1] for n in crops] == transposed
    # ... 64 -> 56, 136 -> 104, 280 -> 200, 568 -> 392: the centre, equal amounts on every side
    assert [crop_sides(n) for n in crops] == [(4, 4), (16, 16), (40, 40), (88, 88)]
    assert [n for n in network.nodes() if n.op == "conv"][-1].out_shape == (2, 388, 388)


def crop_sides(node) -> tuple[int, int]:
    """The rows a center crop removes above and below."""
    return center_offsets(node.in_shapes[0][1].value, node.out_shape[1])


def test_unet_input_sizes_keep_every_pooled_map_even():
    """A tile suits the network when each 2x2 max pool sees an even map (Sec. 3): 572 - 16k,
    down to 188 (below it the bottom map is too small for the up path's valid convs). Those
    are the sizes at which every crop removes as much on each side."""
    even, compiles = set(), set()
    for size in range(124, 600, 4):
        try:
            network = unet_at(size)
        except NetdslError:
            continue
        compiles.add(size)
        crops = [crop_sides(n) for n in network.nodes() if n.op == "crop"]
        if all(before == after for before, after in crops):
            even.add(size)
    assert even == set(range(188, 600, 16))
    assert {572, 508, 444, 380, 316, 252, 188} <= even
    assert compiles == set(range(188, 600, 4))  # the crop centres any size (see below)


def test_unet_odd_map_crops_one_row_more_at_one_end():
    """566 -> 283 (odd): the crop of 63 rows to 54 removes 4 above and 5 below
    (torchvision's center_crop: round(9 / 2) = 4)."""
    crops = [n for n in unet_at(570).nodes() if n.op == "crop"]
    assert (crops[0].in_shapes[0][1].value, crops[0].out_shape[1]) == (63, 54)
    assert crop_sides(crops[0]) == (4, 5)


# ---- U-Net: the file against the reference module --------------------------------------------


@pytest.mark.slow
def test_unet_params_and_macs_equal_the_reference():
    torch = need("torch")
    from torch.utils.flop_counter import FlopCounterMode

    reference = paper_unet()
    assert sum(p.numel() for p in reference.parameters()) == UNET_PARAMS
    with torch.device("meta"):
        meta = paper_unet()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        meta(torch.empty(1, 1, 572, 572, device="meta"))
    assert counter.get_total_flops() // 2 == UNET_MACS
    assert meta.maps == [
        *((c, n[1], n[1]) for c, n in zip(WIDTHS, DOWN)),
        *((c, n[1], n[1]) for c, n in zip(reversed(WIDTHS[:-1]), UP)),
    ]
    network = net("unet")
    assert (network.total_params, network.total_macs) == (UNET_PARAMS, UNET_MACS)


@pytest.mark.slow
@pytest.mark.parametrize("size", [188, 252])
def test_unet_reference_weights_give_the_same_outputs(size):
    """Fig. 1's module's weights load by order into the generated model (same order: down,
    then each up-conv before its convs, then the 1x1 head): equal outputs at a small tile."""
    torch = need("torch")
    from test_references import assert_same_outputs

    network = unet_at(size)
    _, model = build_torch(network)
    torch.manual_seed(1)
    reference = paper_unet()
    assert_same_outputs(network, model, reference, batch=2)
    out = size - 184  # 572 -> 388: the valid convs lose 184 rows in all
    assert tuple(model(torch.zeros(1, 1, size, size)).shape) == (1, 2, out, out)


# ---- FCN-ResNet50: torchvision's dilated backbone ---------------------------------------------


def test_fcn_backbone_trades_strides_for_dilation():
    """layer3 and layer4 keep stride 1: each first unit keeps the previous dilation (1, 2),
    the others dilate by 2 and 4, padding as much (torchvision's _make_layer(dilate=True))."""
    network = net("fcn_resnet50")
    convs = [n for n in network.nodes() if n.op == "conv" and n.id.startswith("dilated_stage")]
    dilated = [(n.value("d"), n.value("p")) for n in convs if n.value("k") == 3]
    assert dilated == [(1, 1)] + [(2, 2)] * 5 + [(2, 2)] + [(4, 4)] * 2
    assert all(n.value("s") == 1 for n in convs)
    stages = scopes(network, "dilated_stage")
    assert [out_shape(s) for s in stages] == [(1024, 65, 65), (2048, 65, 65)]  # output stride 8
    head = scopes(network, "fcn_head")[0]
    assert out_shape(head) == (21, 65, 65)
    last = list(network.nodes())[-1]
    assert (last.op, last.out_shape, last.attrs["mode"]) == ("upsample", (21, 520, 520), "bilinear")


def test_fcn_upsamples_to_any_input_size():
    network = compile_file(ARCHITECTURES / "fcn_resnet50.net", input_shape=(3, 97, 75))
    assert list(network.nodes())[-1].out_shape == (21, 97, 75)
