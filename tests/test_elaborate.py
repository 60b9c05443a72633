"""What each construct means: the nodes, shapes, names and totals it elaborates to."""

from __future__ import annotations

import textwrap
from itertools import pairwise

import pytest

from netdsl import NetdslError, compile_file, compile_text
from netdsl.compiler import parse_param
from netdsl.ir import Scope


def net(src: str, **kwargs):
    return compile_text(textwrap.dedent(src), "e.net", **kwargs)


def layers(n) -> list[tuple]:
    """(id, op, output shape) of every non-input node, in DSL order."""
    return [(x.id, x.op, x.out_shape) for x in n.nodes() if x.op != "input"]


def ops(n) -> list[str]:
    return [x.op for x in n.nodes() if x.op != "input"]


def scopes(n) -> list[Scope]:
    return [s for s in n.root.walk() if isinstance(s, Scope)]


# ---- sequence and repeat -------------------------------------------------------------------


def test_sequence_chains_each_layer_into_the_next():
    n = net("""
        network n:
            input 3x32x32
            conv3 16 + relu + maxpool2 + conv3 32
    """)
    assert layers(n) == [
        ("conv1", "conv", (16, 32, 32)),
        ("relu", "relu", (16, 32, 32)),
        ("maxpool", "maxpool", (16, 16, 16)),
        ("conv2", "conv", (32, 16, 16)),
    ]
    nodes = n.nodes()
    assert all(b.inputs == [a] for a, b in pairwise(nodes))
    assert n.main_output.node is nodes[-1]


def test_statements_continue_from_the_current_tensor():
    n = net("""
        network n:
            input 3x8x8
            conv3 4
            relu
    """)
    assert layers(n) == [("conv", "conv", (4, 8, 8)), ("relu", "relu", (4, 8, 8))]


def test_repeat_applies_the_body_n_times_in_sequence():
    n = net("""
        network n:
            input 3x8x8
            [conv3 4 + relu]*3
    """)
    assert ops(n) == ["conv", "relu"] * 3
    assert [x.id for x in n.nodes()][1:3] == ["convs.0.conv", "convs.0.relu"]
    assert n.nodes()[-1].id == "convs.2.relu"
    (rep,) = [s for s in scopes(n) if s.kind == "repeat"]
    assert rep.count.value == 3 and len(rep.children) == 3


@pytest.mark.parametrize("count", ["0", "(2 - 2)", "n"])
def test_repeat_zero_times_is_nothing(count):
    n = net(f"""
        block maybe(n) = [conv3 99]*{count} + relu
        network n:
            input 3x8x8
            maybe(0)
    """)
    assert ops(n) == ["relu"]
    assert n.main_output.node.out_shape == (3, 8, 8)


def test_repeat_count_may_be_computed():
    n = net("""
        network n(depth=5):
            input 3x8x8
            [relu]*(depth - 1) + [bn]*(depth // 2)
    """)
    assert ops(n) == ["relu"] * 4 + ["bn"] * 2


# ---- blocks ------------------------------------------------------------------------------


def test_blocks_take_positional_keyword_and_default_arguments():
    n = net("""
        block unit(c, k=3, s=1) = conv c k=k s=s p=(k // 2)
        network n:
            input 3x16x16
            unit(8) + unit(8, 5) + unit(8, s=2) + unit(c=4, k=1)
    """)
    convs = n.nodes()[1:]
    assert [(x.value("c"), x.value("k"), x.value("s"), x.value("p")) for x in convs] == [
        (8, 3, 1, 1),
        (8, 5, 1, 2),
        (8, 3, 2, 1),
        (4, 1, 1, 0),
    ]
    assert n.main_output.node.out_shape == (4, 8, 8)


def test_defaults_may_refer_to_earlier_parameters():
    n = net("""
        block wide(c, mid=c * 4, out=mid // 2) = conv1 mid + conv1 out
        network n:
            input 3x8x8
            wide(8) + wide(8, mid=6)
    """)
    assert [x.value("c") for x in n.nodes()[1:]] == [32, 16, 6, 3]


def test_blocks_are_called_in_either_form_and_without_arguments():
    n = net("""
        block head = gap + flatten
        block unit(c) = conv3 c + relu
        network n:
            input 3x8x8
            unit 4 + unit(4) + unit (2 * 2) + head
    """)
    assert ops(n) == ["conv", "relu"] * 3 + ["gap", "flatten"]
    assert n.main_output.node.out_shape == (4,)


def test_blocks_call_other_blocks():
    n = net("""
        block conv_bn(c, s=1) = conv3 c s=s bias=false + bn
        block unit(c) = conv_bn(c) + relu + conv_bn(c, s=2)
        network n:
            input 3x8x8
            unit(4)
    """)
    assert layers(n) == [
        ("unit.conv_bn1.conv", "conv", (4, 8, 8)),
        ("unit.conv_bn1.bn", "bn", (4, 8, 8)),
        ("unit.relu", "relu", (4, 8, 8)),
        ("unit.conv_bn2.conv", "conv", (4, 4, 4)),
        ("unit.conv_bn2.bn", "bn", (4, 4, 4)),
    ]
    (unit,) = [s for s in scopes(n) if s.block == "unit"]
    assert unit.kind == "block" and unit.args["c"].value == 4
    assert sorted(n.blocks) == ["conv_bn", "unit"]
    assert n.blocks["conv_bn"].params[0][0] == "c"


def test_a_block_in_statement_form_ends_with_its_last_value():
    n = net("""
        block unit(c, s=1):
            x = conv3 c s=s
            if s > 1: maxpool2
            relu
        network n:
            input 3x8x8
            unit(4) + unit(4, s=2)
    """)
    assert ops(n) == ["conv", "relu", "conv", "maxpool", "relu"]
    assert n.main_output.node.out_shape == (4, 2, 2)


def test_recursion_with_a_base_case():
    n = net("""
        block tower(n, c) = if n == 0 then id else conv3 c + tower(n - 1, c * 2)
        network n:
            input 3x8x8
            tower(3, 4)
    """)
    assert [x.out_shape[0] for x in n.nodes()[1:]] == [4, 8, 16]
    assert ops(n) == ["conv"] * 3


# ---- merges --------------------------------------------------------------------------------


def test_concat_sums_channels_in_branch_order():
    n = net("""
        network n:
            input 3x8x8
            concat(conv1 4, id, conv3 5)
    """)
    cat = n.main_output.node
    assert cat.op == "concat" and cat.out_shape == (12, 8, 8)
    assert [x.op for x in cat.inputs] == ["conv", "input", "conv"]
    assert [x.out_shape[0] for x in cat.inputs] == [4, 3, 5]
    g = n.graph
    assert g.edges["input", "concat"]["indices"] == [1]
    assert g.edges["conv2", "concat"]["indices"] == [2]


def test_concat_of_flat_tensors_joins_features():
    n = net("""
        network n:
            input 10
            concat(fc 4, fc 6, id)
    """)
    assert n.main_output.node.out_shape == (20,)


def test_add_and_mean_keep_the_shape():
    n = net("""
        network n:
            input 4x8x8
            add(conv3 4, id) + mean(id, relu, bn)
    """)
    assert ops(n) == ["conv", "add", "relu", "bn", "mean"]
    assert n.main_output.node.out_shape == (4, 8, 8)


def test_mul_broadcasts_a_channel_gate_over_the_image():
    n = net("""
        block se(r=4) = mul(id, gap + conv1 (in.c // r) + relu + conv1 in.c + sigmoid)
        network n:
            input 16x8x8
            se
    """)
    assert layers(n)[-1] == ("se.mul", "mul", (16, 8, 8))
    assert [x.out_shape for x in n.nodes() if x.op == "conv"] == [(4, 1, 1), (16, 1, 1)]
    assert n.total_params == (16 * 4 + 4) + (4 * 16 + 16)


def test_id_passes_the_input_through():
    n = net("""
        network n:
            input 3x8x8
            id + add(id, id)
    """)
    assert ops(n) == ["add"]
    assert n.main_output.node.inputs == [n.inputs["input"]] * 2


# ---- conditionals --------------------------------------------------------------------------


def test_conditional_on_the_block_input_shape():
    n = net("""
        block shortcut(c, s=1) = if s == 1 and in.c == c then id else conv1 c s=s
        block unit(c, s=1) = add(conv3 c s=s, shortcut(c, s))
        network n:
            input 8x8x8
            unit(8) + unit(16) + unit(16, s=2)
    """)
    assert [x.id for x in n.nodes() if x.op == "conv"] == [
        "unit1.conv",
        "unit2.conv",
        "unit2.shortcut.choice.conv",
        "unit3.conv",
        "unit3.shortcut.choice.conv",
    ]
    assert n.main_output.node.out_shape == (16, 4, 4)
    conds = [s for s in scopes(n) if s.kind == "cond"]
    assert [s.taken for s in conds] == [True, False, False]
    assert conds[0].cond.expr.render() == "s == 1 and in_channels == c"


def test_if_statement_in_a_network_and_numeric_conditionals():
    n = net("""
        network n(bn=true, wide=false):
            input 3x8x8
            conv3 (if wide then 64 else 16)
            if bn: batchnorm
            if not bn: relu
    """)
    assert layers(n) == [("conv", "conv", (16, 8, 8)), ("bn", "bn", (16, 8, 8))]


def test_in_is_the_first_input_at_network_level():
    n = net("""
        network n:
            input 3x8x8
            conv3 8
            conv1 in.c + conv1 (in.h + in.w)
    """)
    assert [x.out_shape[0] for x in n.nodes()[1:]] == [8, 3, 16]


# ---- named values and outputs ----------------------------------------------------------------


def test_named_values_are_tensors_that_later_lines_can_use():
    n = net("""
        network n:
            input 3x16x16
            x = conv3 8
            y = conv3 8 s=2
            add(x, x) + maxpool2 + add(y, id) + conv1 (x.c * 2)
    """)
    x = n.nodes()[1]
    add1 = next(a for a in n.nodes() if a.op == "add")
    assert add1.inputs == [x, x]
    assert n.main_output.node.out_shape == (16, 8, 8)


def test_named_numbers_are_constants():
    n = net("""
        network n(c=4):
            input 3x8x8
            width = c * 2 + 1
            conv3 width
    """)
    assert n.main_output.node.out_shape == (9, 8, 8)


def test_several_outputs_and_train_only_heads():
    n = net("""
        network n:
            input 3x16x16
            conv3 8
            output aux @train = gap + fc 10
            conv3 8 s=2
            output logits = gap + fc 5
    """)
    assert [(o.name, o.train_only, o.node.out_shape) for o in n.outputs] == [
        ("aux", True, (10,)),
        ("logits", False, (5,)),
    ]
    assert n.main_output.name == "logits"
    aux_fc = n.outputs[0].node
    assert aux_fc.train_only and aux_fc.inputs[0].train_only
    main_fc = n.outputs[1].node
    assert not main_fc.train_only
    # the aux head's parameters count, its MACs do not (eval path only)
    assert n.total_params == sum(x.params for x in n.nodes())
    assert aux_fc.params == 90 and aux_fc.macs == 80
    assert n.total_macs == sum(x.macs for x in n.nodes()) - 80
    # an output line taps the current tensor without changing it
    (conv2,) = [x for x in n.nodes() if x.op == "conv" and x.value("s") == 2]
    assert conv2.inputs[0].op == "conv"


def test_output_without_expression_names_the_current_tensor():
    n = net("""
        network n:
            input 3x8x8
            conv3 8
            output features
    """)
    assert [(o.name, o.node.op) for o in n.outputs] == [("features", "conv")]
    assert n.main_output.name == "features"


def test_layers_after_the_last_output_are_an_error_not_silently_dropped():
    with pytest.raises(NetdslError) as err:
        net("""
            network n:
                input 3x8x8
                conv3 8
                output features
                gap + fc 2
        """)
    assert "'gap' computes a value that no output uses" in str(err.value)
    assert "output name = ..." in str(err.value)


def test_without_output_lines_the_last_tensor_is_the_output():
    n = net("""
        network n:
            input 3x8x8
            gap + fc 2
    """)
    assert [(o.name, o.node.op, o.train_only) for o in n.outputs] == [("output", "fc", False)]


# ---- inputs --------------------------------------------------------------------------------


def test_input_shapes():
    assert net("network n:\n    input 784\n    fc 10\n").main_output.node.out_shape == (10,)
    n = net(
        """
        network n(size=32):
            input img (3, size, size)
            conv3 8
    """,
        params={"size": 20},
    )
    assert list(n.inputs) == ["img"] and n.inputs["img"].out_shape == (3, 20, 20)


def test_several_named_inputs():
    n = net("""
        network n:
            input left 3x8x8
            input right 3x8x8
            add(left, right + conv1 3)
    """)
    assert list(n.inputs) == ["left", "right"]
    add = n.main_output.node
    assert add.inputs[0] is n.inputs["left"] and add.inputs[1].op == "conv"


# ---- use, stdlib and defaults ----------------------------------------------------------------


def test_use_of_the_standard_library():
    n = net("""
        use resnet
        network n:
            input 64x56x56
            bottleneck(64)
    """)
    assert n.main_output.node.out_shape == (256, 56, 56)
    # torchvision's first bottleneck of layer1, with its downsample projection
    assert n.total_params == 75008


def test_use_of_a_relative_file(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "blocks.net").write_text("block unit(c) = conv3 c + relu\n")
    (tmp_path / "model.net").write_text(
        'use "lib/blocks.net"\nnetwork m:\n    input 3x8x8\n    unit(4) + unit(8)\n'
    )
    n = compile_file(tmp_path / "model.net")
    assert ops(n) == ["conv", "relu"] * 2 and n.main_output.node.out_shape == (8, 8, 8)
    # the .net suffix may be left out
    (tmp_path / "model2.net").write_text(
        'use "lib/blocks"\nnetwork m:\n    input 3x8x8\n    unit(4)\n'
    )
    assert ops(compile_file(tmp_path / "model2.net")) == ["conv", "relu"]


def test_own_blocks_take_precedence_over_used_ones(tmp_path):
    (tmp_path / "lib.net").write_text("block unit(c) = conv3 c\n")
    (tmp_path / "m.net").write_text(
        'use "lib.net"\nblock unit(c) = conv1 c\nnetwork m:\n    input 3x8x8\n    unit(4)\n'
    )
    assert compile_file(tmp_path / "m.net").nodes()[1].value("k") == 1


def test_defaults_statement_sets_layer_arguments_for_the_file():
    n = net("""
        defaults conv act=relu bias=false
        defaults maxpool s=1
        network n:
            input 3x8x8
            conv3 4 + conv3 4 bias=true act=none + maxpool2
    """)
    assert ops(n) == ["conv", "relu", "conv", "maxpool"]
    assert [x.value("bias") for x in n.nodes() if x.op == "conv"] == [False, True]
    assert n.main_output.node.out_shape == (4, 7, 7)


def test_defaults_are_lexically_scoped_to_their_file(tmp_path):
    (tmp_path / "lib.net").write_text("defaults conv act=relu\nblock unit(c) = conv3 c\n")
    (tmp_path / "m.net").write_text(
        'use "lib.net"\nnetwork m:\n    input 3x8x8\n    unit(4) + conv3 4\n'
    )
    assert ops(compile_file(tmp_path / "m.net")) == ["conv", "relu", "conv"]


# ---- placement, labels and naming ---------------------------------------------------------------


def test_placement_annotations_set_the_device():
    n = net("""
        block tower(c) = conv3 c + relu
        network n:
            input 3x8x8
            concat(tower(4) @gpu(0), tower(4) @gpu(1)) @cpu + (conv1 4 + relu) @gpu(1) + relu
    """)
    assert [(x.id, x.device) for x in n.nodes()[1:]] == [
        ("tower1.conv", "cuda:0"),
        ("tower1.relu", "cuda:0"),
        ("tower2.conv", "cuda:1"),
        ("tower2.relu", "cuda:1"),
        ("concat", "cpu"),
        ("conv", "cuda:1"),
        ("relu1", "cuda:1"),
        ("relu2", None),
    ]


def test_labels_name_modules_and_groups():
    n = net("""
        block unit(c) = conv3 c + relu
        network n:
            input 3x8x8
            conv3 4 as stem + unit(4) as layer1 + (bn + relu) as post
            pooled = gap as pool
    """)
    assert [x.id for x in n.nodes()[1:]] == [
        "stem",
        "layer1.conv",
        "layer1.relu",
        "post.bn",
        "post.relu",
        "pool",
    ]


def test_ids_follow_torchvision_conventions():
    n = net("""
        block conv_bn(c, k=3, s=1) = conv c k=k s=s p=(k // 2) bias=false + bn
        block bottleneck(c, s=1) =
            add(conv_bn(c, k=1) + relu + conv_bn(c, s=s) + relu + conv_bn(c * 4, k=1),
                if s == 1 and in.c == c * 4 then id else conv_bn(c * 4, k=1, s=s)) + relu
        block stage(c, n, s=1) = bottleneck(c, s) + [bottleneck(c)]*(n - 1)
        network n:
            input 64x16x16
            stage(16, 2) + stage(32, 3, s=2)
    """)
    ids = {x.id for x in n.nodes()}
    assert {
        "stage1.bottleneck.conv_bn1.conv",
        "stage1.bottleneck.conv_bn3.bn",
        "stage1.bottleneck.relu1",
        "stage1.bottleneck.add",
        "stage1.bottleneck.relu3",
        "stage1.bottlenecks.0.conv_bn1.conv",
        "stage2.bottlenecks.1.conv_bn2.conv",
        "stage2.bottleneck.choice.conv_bn.conv",
    } <= ids
    assert len(ids) == len(n.nodes())  # unique


def test_graph_is_a_networkx_dag_in_topological_dsl_order():
    import networkx as nx

    n = net("""
        network n:
            input 3x8x8
            concat(conv1 2, conv3 2) + add(id, relu)
    """)
    g = n.graph
    assert nx.is_directed_acyclic_graph(g)
    assert list(g.nodes) == [x.id for x in n.nodes()]
    assert g.nodes["add"]["node"] is n.main_output.node
    assert g.graph["outputs"] == [("output", "add", False)]


# ---- traced expressions --------------------------------------------------------------------------


def test_attributes_remember_the_expression_that_computed_them():
    n = net("""
        block f(c) = conv3 (c*2)
        block half = conv1 (in.c // 2)
        block wide(c, mid=c * 4) = conv1 mid
        network n:
            input 3x8x8
            f(8) + half + wide(2)
    """)
    f, half, wide = n.nodes()[1:]
    assert f.attrs["c"].expr.render() == "c * 2" and f.value("c") == 16
    assert f.attrs["in_channels"].expr.render() == "in_channels"
    assert half.attrs["c"].expr.render() == "in_channels // 2" and half.value("c") == 8
    assert wide.attrs["c"].expr.render() == "mid" and wide.value("c") == 8


def test_block_output_channels_in_closed_form():
    n = net("""
        block dense_layer(k) = concat(id, conv3 k)
        block dense_block(n, k) = [dense_layer(k)]*n
        network n:
            input 16x8x8
            dense_block(3, 4)
    """)
    (block,) = [s for s in scopes(n) if s.block == "dense_block"]
    assert block.out_shape[0].expr.render() == "in_channels + n * k"
    assert block.out_shape[0].value == 28


# ---- the product card's line ----------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 1, 2, 3])
def test_vgg_block_is_n_same_3x3_convs_then_a_2x2_stride_2_max_pool(count):
    n = net(f"""
        block vgg(n, c) = [conv3 c]*n + maxpool2
        network v:
            input 3x32x32
            vgg({count}, 64)
    """)
    convs = [x for x in n.nodes() if x.op == "conv"]
    assert ops(n) == ["conv"] * count + ["maxpool"]
    for conv in convs:
        assert (conv.value("c"), conv.value("k"), conv.value("s"), conv.value("p")) == (64, 3, 1, 1)
        assert conv.out_shape[1:] == (32, 32)
    pool = n.nodes()[-1]
    assert (pool.value("k"), pool.value("s"), pool.value("p")) == (2, 2, 0)
    assert pool.out_shape == ((64 if count else 3), 16, 16)


# ---- train section and parameters ------------------------------------------------------------------


def test_train_section_becomes_plain_data():
    n = net("""
        network n:
            input 3x8x8
            relu
        train:
            optimizer sgd lr=0.1 momentum=0.9 weight_decay=1e-4 nesterov=true
            schedule multistep milestones=(30, 60) gamma=0.1
            batch_size 256
            epochs 90
            aux_weight 0.3
            label_smoothing 0.1
            augment random_resized_crop(224) hflip
            augment normalize
    """)
    assert n.train == {
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 0.0001,
        "nesterov": True,
        "schedule": {"name": "multistep", "milestones": [30, 60], "gamma": 0.1},
        "batch_size": 256,
        "epochs": 90,
        "aux_weight": 0.3,
        "label_smoothing": 0.1,
        "augment": [
            {"name": "random_resized_crop", "args": [224]},
            {"name": "hflip", "args": []},
            {"name": "normalize", "args": []},
        ],
    }


def test_train_aliases():
    n = net("""
        network n:
            input 3x8x8
            relu
        train:
            wd 5e-4
            batch 32
            schedule step every=30
    """)
    assert n.train == {
        "weight_decay": 0.0005,
        "batch_size": 32,
        "schedule": {"name": "step", "step": 30},
    }


def test_no_train_section_is_an_empty_dict():
    assert net("network n:\n    input 3\n    relu\n").train == {}


def test_param_overrides_change_the_network_everywhere():
    src = """
        network n(classes=1000, width=8, k=(3, 3)):
            input 3x8x8
            conv width k=k + gap + fc classes
    """
    n = net(src, params=dict([parse_param("classes=10"), parse_param("k=1x5")]))
    assert n.main_output.node.out_shape == (10,)
    assert n.nodes()[1].value("k") == (1, 5) and n.nodes()[1].out_shape == (8, 8, 4)
    assert n.params["classes"].value == 10
    # plain Python values work as well
    assert net(src, params={"classes": 7, "width": 2}).main_output.node.in_shapes[0][0].value == 2


def test_parse_param_reads_command_line_values():
    assert [
        (k, v.value)
        for k, v in (parse_param(t) for t in ("a=10", "b=0.5", "c=true", "d=False", "e=3x224x224"))
    ] == [("a", 10), ("b", 0.5), ("c", True), ("d", False), ("e", (3, 224, 224))]
    assert parse_param("act=relu") == ("act", "relu")


def test_choosing_a_network_by_name():
    src = """
        network first:
            input 3x8x8
            relu
        network second(c=4):
            input 3x8x8
            conv3 c
    """
    assert net(src).name == "first"
    n = net(src, network="second")
    assert n.name == "second" and ops(n) == ["conv"]
    with pytest.raises(NetdslError) as info:
        net(src, network="secnd")
    assert info.value.message == "no network 'secnd' in e.net"
    assert info.value.hint == "did you mean 'second'?"


def test_totals_are_sums_over_nodes():
    n = net("""
        network n:
            input 3x32x32
            conv3 16 + bn + relu + maxpool2 + flatten + fc 10
    """)
    assert n.total_params == (3 * 9 * 16 + 16) + 32 + (16 * 16 * 16 * 10 + 10)
    assert n.total_buffers == 32
    assert n.total_macs == 16 * 32 * 32 * 27 + 4096 * 10


def test_a_repeat_with_its_index_in_scope():
    """`[body for i in range(a, b)]` evaluates the body once per index."""
    n = net("""
        block units(c, n, s=1) = [conv (c + i) k=3 s=(if i == 0 then s else 1) p=1 for i in range(n)]
        network n:
            input 3x16x16
            units(4, 3, s=2)
            [relu for j in range(2, 4)]
    """)
    convs = [x for x in n.nodes() if x.op == "conv"]
    assert [c.out_shape for c in convs] == [(4, 8, 8), (5, 8, 8), (6, 8, 8)]
    assert [x.id for x in n.nodes() if x.op == "relu"] == ["relus.0", "relus.1"]
    # the index is traced, so every iteration has the same structure in terms of `i`
    assert convs[1].attrs["c"].expr.render() == "c + #i"


def test_a_repeat_index_must_come_from_range():
    with pytest.raises(NetdslError, match=r"reads \[body for i in range\(n\)\]"):
        net("""
            network n:
                input 3x8x8
                [conv3 i for i in 3]
        """)
