"""MobileNetV2, MnasNet and MobileNetV3 (architectures/mobilenet_v2.net, mnasnet.net,
mobilenet_v3_large.net, mobilenet_v3_small.net) against their papers' tables.

Sandler et al., "MobileNetV2" (CVPR 2018), Table 2: rows (t, c, n, s) of inverted residual
bottlenecks after a 3x3/2 conv of 32 channels, then a 1x1 conv to 1280. Tan et al., "MnasNet"
(CVPR 2019), as torchvision's mnasnet (the B1 model). Howard et al., "Searching for
MobileNetV3" (ICCV 2019), Tables 1 and 2: the bneck rows (kernel, expansion, out, SE, NL, s).
Width multipliers: torchvision's mobilenet_v2(width_mult=0.5) and mnasnet0_5 give the
figures below (model.parameters() in the reference environment).
"""

from __future__ import annotations

import pytest
from test_zoo import net, out_shape, scopes

from netdsl.emit import get_emitter

# Table 2 of MobileNetV2: per row, the units' output (c, size) and n
V2_ROWS = [
    (16, 112, 1),
    (24, 56, 2),
    (32, 28, 3),
    (64, 14, 4),
    (96, 14, 3),
    (160, 7, 3),
    (320, 7, 1),
]

# MobileNetV3 Tables 1 and 2: per bneck, (out, size, SE, NL) and the squeeze widths
V3 = {
    "mobilenet_v3_large": {
        "rows": [
            (16, 112, False, "relu"),
            (24, 56, False, "relu"),
            (24, 56, False, "relu"),
            (40, 28, True, "relu"),
            (40, 28, True, "relu"),
            (40, 28, True, "relu"),
            (80, 14, False, "hardswish"),
            (80, 14, False, "hardswish"),
            (80, 14, False, "hardswish"),
            (80, 14, False, "hardswish"),
            (112, 14, True, "hardswish"),
            (112, 14, True, "hardswish"),
            (160, 7, True, "hardswish"),
            (160, 7, True, "hardswish"),
            (160, 7, True, "hardswish"),
        ],
        # torchvision: _make_divisible(expanded // 4, 8)
        "squeeze": [24, 32, 32, 120, 168, 168, 240, 240],
        "head": (960, 1280),
    },
    "mobilenet_v3_small": {
        "rows": [
            (16, 56, True, "relu"),
            (24, 28, False, "relu"),
            (24, 28, False, "relu"),
            (40, 14, True, "hardswish"),
            (40, 14, True, "hardswish"),
            (40, 14, True, "hardswish"),
            (48, 14, True, "hardswish"),
            (48, 14, True, "hardswish"),
            (96, 7, True, "hardswish"),
            (96, 7, True, "hardswish"),
            (96, 7, True, "hardswish"),
        ],
        "squeeze": [8, 24, 64, 64, 32, 40, 72, 144, 144],
        "head": (576, 1024),
    },
}


def test_mobilenet_v2_follows_table_2():
    network = net("mobilenet_v2")
    rows = scopes(network, "bottlenecks")
    assert [out_shape(s) for s in rows] == [(c, n, n) for c, n, _ in V2_ROWS]
    units = [
        [u for u in s.walk() if getattr(u, "block", None) == "inverted_residual"] for s in rows
    ]
    assert [len(u) for u in units] == [n for _, _, n in V2_ROWS]
    # a shortcut wherever the unit keeps its shape: 10 of the 17 units
    assert (
        sum(
            1
            for s in scopes(network, "inverted_residual")
            if "add" in {getattr(n, "op", None) for n in s.walk()}
        )
        == 10
    )
    # t = 1 in the first row: no expansion conv (depthwise, then projection)
    first = scopes(network, "linear_bottleneck")[0]
    assert [n.op for n in first.walk() if getattr(n, "op", None) in ("conv", "dwconv")] == [
        "dwconv",
        "conv",
    ]
    assert dims(network.main_output.node.in_shapes[0]) == (1280,)


@pytest.mark.parametrize(
    "name, params, expected",
    [
        ("mobilenet_v2", {"width": 0.5}, (1_968_680, 97_131_840)),  # mobilenet_v2(width_mult=0.5)
        ("mnasnet", {"alpha": 0.5}, (2_218_512, 104_455_968)),  # mnasnet0_5
    ],
)
def test_width_multipliers_match_torchvision(name, params, expected):
    network = net(name, **params)
    assert network.total_params == expected[0]
    assert network.total_macs == expected[1]


def test_mnasnet_stacks():
    network = net("mnasnet")
    stacks = scopes(network, "stack")
    assert [out_shape(s) for s in stacks] == [
        (24, 56, 56),
        (40, 28, 28),
        (80, 14, 14),
        (96, 14, 14),
        (192, 7, 7),
        (320, 7, 7),
    ]
    assert [len(scopes_in(s, "mbconv")) for s in stacks] == [3, 3, 3, 2, 4, 1]
    kernels = [n.value("k") for n in network.nodes() if n.op == "dwconv"]
    assert kernels == [3] + [3] * 3 + [5] * 3 + [5] * 3 + [3] * 2 + [5] * 4 + [3]


def dims(shape) -> tuple[int, ...]:
    return tuple(int(d.value) for d in shape)


def scopes_in(scope, block):
    return [s for s in scope.walk() if getattr(s, "block", None) == block]


@pytest.mark.parametrize("name", sorted(V3))
def test_mobilenet_v3_follows_its_table(name):
    network, table = net(name), V3[name]
    bnecks = scopes(network, "bneck")
    assert [out_shape(s) for s in bnecks] == [(c, n, n) for c, n, _, _ in table["rows"]]
    assert [bool(scopes_in(s, "squeeze_excite")) for s in bnecks] == [
        se for _, _, se, _ in table["rows"]
    ]
    nonlinearity = [  # the bneck's own activations, not the SE's ReLU
        {
            n.op
            for n in s.walk()
            if getattr(n, "op", None) in ("relu", "hardswish") and "squeeze_excite" not in n.id
        }
        for s in bnecks
    ]
    assert nonlinearity == [{nl} for _, _, _, nl in table["rows"]]
    squeeze = [
        [n for n in s.walk() if getattr(n, "op", None) == "conv"][0].out_shape[0]
        for s in scopes(network, "squeeze_excite")
    ]
    assert squeeze == table["squeeze"]
    last_conv, hidden = table["head"]
    fcs = [n for n in network.nodes() if n.op == "fc"]
    assert [dims(fc.in_shapes[0]) for fc in fcs] == [(last_conv,), (hidden,)]


def class_names(code: str) -> list[str]:
    return [
        line[len("class ") :].split("(")[0]
        for line in code.splitlines()
        if line.startswith("class ")
    ]


# the acceptance item of issue #16: one class per distinct block definition, no ...2/...3
# clones, no "generated for" guards
@pytest.mark.parametrize(
    "name, classes",
    [
        (
            "mobilenet_v2",
            [
                "ConvBnRelu6",
                "LinearBottleneck",
                "InvertedResidual",
                "Bottlenecks",
                "InvertedResidualChoice",
                "MobilenetV2",
            ],
        ),
        ("mnasnet", ["MbconvBranch", "Mbconv", "MbconvChoice", "Stack", "Mnasnet"]),
    ],
)
def test_one_class_per_block(name, classes):
    code = get_emitter("torch").emit_model(net(name))
    assert class_names(code) == classes
    assert "this model was generated for" not in code
    # the table loop stays a loop (`build_model(settings=...)`), but the conv after it is
    # built for the table's last width (320), so the file refuses other tables and widths
    assert "for t_row in range(len(" in code


# a layer-valued block argument (`act`, chosen per row by `if hs then hardswish else relu`)
# is a constructor argument (`act_layer`) of every class that uses it or passes it on, the
# residual branch's class included: one class per block and no "generated for" guard; the
# table stays a loop whose call chooses the activation as the row says
@pytest.mark.parametrize("name", sorted(V3))
def test_mobilenet_v3_has_one_class_per_block(name):
    code = get_emitter("torch").emit_model(net(name))
    assert "generated for" not in code
    network = "MobilenetV3Large" if name.endswith("large") else "MobilenetV3Small"
    assert sorted(class_names(code)) == sorted(
        ["Cba", "SqueezeExcite", "BneckBody", "Bneck", "BneckChoice", network]
    )
    # Cba, BneckBody, BneckChoice and Bneck take it
    assert code.count("act_layer: Callable[..., nn.Module]") == 4
    assert "for k_row in range(len(settings)):" in code
    assert "act_layer=nn.Hardswish if settings[k_row][4] else nn.ReLU," in code


def test_mobilenet_v3_follows_another_table_when_built():
    """Without guards, the generated file builds the network a changed table describes: the
    rows' activations follow their h-swish column (the same file, another network)."""
    from backends import build_torch, need

    torch = need("torch")
    network = net("mobilenet_v3_small")
    rows = tuple((*row[:4], not row[4], row[5]) for row in network.params["settings"].value)
    _, model = build_torch(network, settings=rows)
    body = [m for m in model.modules() if type(m).__name__ == "BneckBody"]
    acts = [type(m.cba.act).__name__ for m in body]
    assert acts == [
        "Hardswish" if not hs else "ReLU" for (*_, hs, _) in network.params["settings"].value
    ]
    assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)


def test_long_guards_and_loop_updates_are_laid_out_as_ruff_formats_them(tmp_path):
    """A frozen table parameter's guard (`if settings != (...):`) and a table loop's channel
    update (`channels = ... if ... else channels`) are longer than a line here."""
    import subprocess

    from netdsl.emit import format as fmt

    assert fmt.condition("if ", "w != ", "1.0", ":", 2) == ["        if w != 1.0:"]
    rows = "((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1))"
    assert fmt.condition("if ", "settings != ", rows, ":", 2) == [
        "        if settings != (",
        "            (1, 16, 1, 1),",
        "            (6, 24, 2, 2),",
        "            (6, 32, 3, 2),",
        "            (6, 64, 4, 2),",
        "            (6, 96, 3, 1),",
        "        ):",
    ]
    for name in ("mobilenet_v2", "mobilenet_v3_large"):
        for target in ("torch", "keras"):
            code = get_emitter(target).emit_model(net(name))
            (tmp_path / f"{name}_{target}.py").write_text(code)
    layout = subprocess.run(
        ["ruff", "format", "--isolated", "--check", "--diff", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert layout.returncode == 0, layout.stdout[-3000:]
