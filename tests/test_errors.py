"""Every error class: its exact message, location, caret excerpt, hint and notes.

A user reads these messages instead of a traceback, so the full text is the
behaviour under test.
"""

from __future__ import annotations

import pytest

from netdsl import NetdslError, compile_file, compile_text


def error(src: str, path: str = "err.net", **kwargs) -> NetdslError:
    with pytest.raises(NetdslError) as info:
        compile_text(src, path, **kwargs)
    return info.value


def report(src: str, **kwargs) -> str:
    return error(src, **kwargs).format()


def lines(*text: str) -> str:
    return "\n".join(text)


NET = "network n:\n    input 3x8x8\n"  # three-line programs put the mistake on line 3


# ---- syntax -----------------------------------------------------------------------------------


def test_syntax_error_report():
    assert report(NET + "    conv3 16 + relu)\n") == lines(
        "err.net:3:20: syntax error: unexpected ')'; expected end of line",
        "        conv3 16 + relu)",
        "                       ^",
        "hint: check that brackets are balanced",
    )


def test_syntax_error_expected_one_of_in_netdsl_terms():
    assert report("network n:\n    input 3x8x8\n    conv 16 k=\n") == lines(
        "err.net:3:15: syntax error: unexpected end of line; expected one of '(', '-', '[', 'false', "
        "'id', 'in', 'true', a call such as conv_bn(, a name, a number, a shape such as "
        '3x224x224, a string in "quotes"',
        "        conv 16 k=",
        "                  ^",
    )


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x0c", "\x1c", "\x85"])
def test_the_excerpt_is_the_located_line_whatever_unicode_calls_a_line_break(separator):
    """Only "\\n" ends a line for the parser; a separator inside a comment stays on its line."""
    src = f"network n:  # a{separator}comment\n    input 3x8x8\n    conv3 16 + maxpol2\n"
    assert report(src).splitlines()[:2] == [
        "err.net:3:16: unknown layer, block or name 'maxpol2'",
        "        conv3 16 + maxpol2",
    ]


def test_windows_line_endings_keep_lines_and_columns():
    src = NET.replace("\n", "\r\n") + "    conv3 16 + maxpol2\r\n"
    assert report(src).splitlines()[:3] == [
        "err.net:3:16: unknown layer, block or name 'maxpol2'",
        "        conv3 16 + maxpol2",
        "                   ^~~~~~~",
    ]


# ---- unknown names ------------------------------------------------------------------------------


def test_unknown_layer_with_did_you_mean():
    assert report(NET + "    conv3 16 + maxpol2\n") == lines(
        "err.net:3:16: unknown layer, block or name 'maxpol2'",
        "        conv3 16 + maxpol2",
        "                   ^~~~~~~",
        "hint: did you mean 'maxpool2'?",
    )
    assert error(NET + "    rleu\n").hint == "did you mean 'relu'?"
    assert (
        error("block conv_bn(c) = conv3 c + bn\n" + NET + "    conv_nb(4)\n").hint
        == "did you mean 'conv_bn'?"
    )


def test_unknown_argument_with_did_you_mean():
    assert report(NET + "    conv3 16 strid=2\n") == lines(
        "err.net:3:14: conv3 has no argument 'strid'",
        "        conv3 16 strid=2",
        "                 ^~~~~",
        "hint: did you mean 'stride'?",
    )
    e = error(NET + "    conv3 16 zz=2\n")
    assert e.message == "conv3 has no argument 'zz'"
    assert e.hint == "conv3 takes c, k, s, p, d, g, bias, act, init, bias_init"
    e = error(NET + "    relu inplace=true\n")
    assert (e.message, e.hint) == ("relu has no argument 'inplace'", "relu takes no arguments")


def test_undefined_block():
    e = error(NET + "    tower(4)\n")
    assert e.message == "unknown layer, block or name 'tower'"
    assert (e.span.line, e.span.column, e.span.end_column) == (3, 5, 13)


def test_block_has_no_such_parameter():
    e = error("block f(width) = conv3 width\n" + NET + "    f(widht=4)\n")
    assert (e.message, e.hint) == ("block f has no parameter 'widht'", "did you mean 'width'?")
    assert (e.span.line, e.span.column) == (4, 7)


def test_defaults_name_a_known_layer_and_argument():
    e = error("defaults cnv act=relu\n" + NET + "    relu\n")
    assert (e.message, e.hint, e.span.line) == (
        "defaults: unknown layer 'cnv'",
        "did you mean 'conv'?",
        1,
    )
    e = error("defaults conv act=relu bais=false\n" + NET + "    conv3 4\n")
    assert (e.message, e.hint, e.span.column) == (
        "conv has no argument 'bais'",
        "did you mean 'bias'?",
        24,
    )


# ---- arity -------------------------------------------------------------------------------------


def test_layer_arity():
    assert report(NET + "    conv 16 3 1\n") == lines(
        "err.net:3:15: conv takes 2 positional arguments but 3 were given",
        "        conv 16 3 1",
        "                  ^",
        "hint: conv takes 2 positional arguments (c, k); give the others by name",
    )
    e = error(NET + "    conv3 16 relu\n")
    assert e.message == "conv3 takes 1 positional argument but 2 were given"
    assert e.hint == "separate layers with '+': `conv3 ... + ...`"
    e = error(NET + "    relu 3\n")
    assert (e.message, e.hint) == ("relu takes 0 positional arguments but 1 was given", None)


def test_missing_layer_argument():
    assert report(NET + "    conv 16\n") == lines(
        "err.net:3:5: conv needs argument 'k'",
        "        conv 16",
        "        ^~~~~~~",
        "hint: write conv 64 k=3 (or conv3 64)",
    )
    assert error(NET + "    conv3\n").hint == "usage: conv3 <c>"


def test_wrong_argument_kind():
    e = error(NET + "    conv3 (16/2)\n")
    assert e.message == "conv3: 'c' must be a positive integer, got 8.0"
    assert e.hint == "use // for integer division"
    assert (
        error(NET + "    conv3 16 bias=1\n").message == "conv3: 'bias' must be true or false, got 1"
    )
    assert (
        error(NET + "    dropout 1.5\n").message
        == "dropout: 'p' must be a probability in [0, 1), got 1.5"
    )
    assert (
        error(NET + "    conv 8 k=(1, 2, 3)\n").message
        == "conv: 'k' must be a positive integer or a pair such as (1, 7), got a tuple"
    )


def test_block_arity():
    src = "block unit(c, s=1) = conv3 c s=s\n" + NET
    assert report(src + "    unit(4, 1, 2)\n") == lines(
        "err.net:4:16: block unit takes 2 arguments but 3 were given",
        "        unit(4, 1, 2)",
        "                   ^",
        "hint: its definition: block unit(c, s=1)",
    )
    assert report(src + "    unit(s=2)\n") == lines(
        "err.net:4:5: block unit needs argument 'c'",
        "        unit(s=2)",
        "        ^~~~~~~~~",
        "hint: its definition: block unit(c, s=1)",
    )
    e = error("block head = gap\n" + NET + "    head(2)\n")
    assert e.message == "block head takes 0 arguments but 1 was given"
    e = error(src + "    unit(4, c=2)\n")
    assert e.message == "argument 'c' given twice"


# ---- recursion ---------------------------------------------------------------------------------


def test_runaway_recursion():
    assert report("block f(c) = conv3 c + f(c)\n" + NET + "    f(4)\n") == lines(
        "err.net:1:24: blocks nest more than 200 deep (f -> f -> f -> f -> ...)",
        "    block f(c) = conv3 c + f(c)",
        "                           ^~~~",
        "hint: does f have a base case that ends its recursion?",
        "err.net:1:24: note: in block f, used here (199 times)",
        "err.net:4:5: note: in block f, used here",
    )
    e = error("block f(c) = conv3 c + f(c)\n" + NET + "    f(4)\n")
    # the folded calls are counted in the note, not written into its message and read back
    assert [(n.message, n.times) for n in e.notes] == [
        ("in block f, used here", 199),
        ("in block f, used here", 1),
    ]


def test_mutual_recursion_names_the_chain():
    e = error("block a(n) = relu + b(n)\nblock b(n) = relu + a(n)\n" + NET + "    a(1)\n")
    assert e.message == "blocks nest more than 200 deep (a -> b -> a -> b -> ...)"


# ---- shapes ----------------------------------------------------------------------------------


def test_add_shape_mismatch_names_both_shapes_and_the_fix():
    src = "network n:\n    input 64x56x56\n    conv1 64 + relu + add(conv1 256, id)\n"
    assert report(src) == lines(
        "err.net:3:23: add: branch shapes differ: 256x56x56 (branch 1) vs 64x56x56 (branch 2)",
        "        conv1 64 + relu + add(conv1 256, id)",
        "                          ^~~~~~~~~~~~~~~~~~",
        "hint: the channels differ (256 vs 64); project the narrower branch with a 1x1 conv, "
        "e.g. `conv1 256`",
        "err.net:3:27: note: branch 1 gives 256x56x56",
        "err.net:3:38: note: branch 2 gives 64x56x56",
    )


def test_add_spatial_mismatch_suggests_a_stride():
    e = error("network n:\n    input 64x56x56\n    add(conv3 64 s=2, id)\n")
    assert e.message == "add: branch shapes differ: 64x28x28 (branch 1) vs 64x56x56 (branch 2)"
    assert e.hint == (
        "the spatial sizes differ (28x28 vs 56x56); downsample the larger branch "
        "to match (stride 2), e.g. a strided 1x1 conv"
    )


def test_add_mismatch_inside_a_block_points_at_the_block_and_its_use():
    e = error("block unit(c) = add(conv1 c, id)\n" + NET + "    unit(4)\n")
    assert (e.span.line, e.span.column) == (1, 17)
    assert [(n.message, str(n.span)) for n in e.notes] == [
        ("branch 1 gives 4x8x8", "err.net:1:21"),
        ("branch 2 gives 3x8x8", "err.net:1:30"),
        ("in block unit, used here", "err.net:4:5"),
    ]


def test_concat_spatial_mismatch():
    assert report(NET + "    concat(conv3 4, conv3 4 s=2)\n") == lines(
        "err.net:3:5: concat: spatial sizes differ: 4x8x8 vs 4x4x4",
        "        concat(conv3 4, conv3 4 s=2)",
        "        ^~~~~~~~~~~~~~~~~~~~~~~~~~~~",
        "hint: concat joins along channels, so every branch must keep the same H x W; check the "
        "strides and padding of each branch",
        "err.net:3:12: note: branch 1 gives 4x8x8",
        "err.net:3:21: note: branch 2 gives 4x4x4",
    )


def test_mul_that_does_not_broadcast_and_flat_image_merges():
    e = error(NET + "    mul(conv1 2 + gap, id)\n")
    assert e.message == "mul: shapes do not broadcast: 2x1x1 vs 3x8x8"
    assert e.hint == "each dimension must match or be 1, as in C x 1 x 1 times C x H x W"
    e = error(NET + "    add(flatten, id)\n")
    assert e.message == "add: cannot merge flat and image tensors: 192 vs 3x8x8"


def test_spatial_size_falls_to_zero():
    assert report(NET + "    maxpool2 + maxpool2 + maxpool2 + maxpool2\n") == lines(
        "err.net:3:38: maxpool: the H size falls to zero: input 1, padding 0, kernel 2",
        "        maxpool2 + maxpool2 + maxpool2 + maxpool2",
        "                                         ^~~~~~~~",
        "hint: the input is too small here; use a larger input, more padding or fewer "
        "downsampling layers before this one",
    )
    e = error("network n:\n    input 3x32x8\n    conv 4 k=(3, 9)\n")
    assert e.message == "conv: the W size falls to zero: input 8, padding 0, kernel 9"


def test_fc_meets_an_unflattened_tensor():
    assert report(NET + "    conv3 16 + fc 10\n") == lines(
        "err.net:3:16: fc needs a flat input but got 16x8x8",
        "        conv3 16 + fc 10",
        "                   ^~~~~",
        "hint: insert `flatten` (to 1024 features) or `gap` (to 16) before fc; "
        "`pointwise_fc 10` applies it at each position",
    )


def test_image_layer_meets_a_flat_tensor():
    e = error(NET + "    flatten + conv3 4\n")
    assert e.message == (
        "conv needs an image tensor (C x H x W) but got a flat tensor of 192 features"
    )


# ---- arithmetic and numbers -------------------------------------------------------------------


def test_division_by_zero():
    assert report("network n(c=0):\n    input 3x8x8\n    conv3 (16 // c)\n") == lines(
        "err.net:3:15: division by zero",
        "        conv3 (16 // c)",
        "                  ^~",
        "hint: the right operand evaluates to 0 (err.net:3:18)",
    )
    assert error(NET + "    x = 4 % 0\n").message == "division by zero"
    assert error(NET + "    x = 4 / 0\n").message == "division by zero"


def test_huge_numbers():
    assert report(NET + "    conv3 99999999999999999999999\n") == lines(
        "err.net:3:11: number too large (limit 4611686018427387904)",
        "        conv3 99999999999999999999999",
        "              ^~~~~~~~~~~~~~~~~~~~~~~",
    )
    e = error(NET + "    x = 3000000000 * 3000000000 * 3000000000\n")
    assert e.message == "number too large (limit 4611686018427387904)"
    assert error(NET + "    x = 1e999\n").message == "number is not finite"
    assert error(NET + "    x = 1e300\n").message == "number too large"


def test_absurd_tensor_sizes():
    assert report("network n:\n    input 100000x100000x100000\n") == lines(
        "err.net:2:11: tensor of 100000x100000x100000 has 1000000000000000 elements, more than "
        "the limit of 1099511627776",
        "        input 100000x100000x100000",
        "              ^~~~~~~~~~~~~~~~~~~~",
    )
    e = error(NET + "    conv3 100000000000\n")
    assert e.message == (
        "tensor of 100000000000x8x8 has 6400000000000 elements, more than the "
        "limit of 1099511627776"
    )
    assert (e.span.line, e.span.column) == (3, 5)


def test_repeat_counts():
    e = error(NET + "    [relu]*(-1)\n")
    assert e.message == "a repeat count must be a non-negative integer, got -1"
    assert (
        error(NET + "    [relu]*2.0\n").message
        == "a repeat count must be a non-negative integer, got 2.0"
    )
    assert (
        error(NET + "    [relu]*200001\n").message
        == "repeat count 200001 exceeds the limit of 100000"
    )


def test_repeat_without_brackets_explains_both_readings():
    assert report("block f(c) = conv3 c*2\n" + NET + "    f(4)\n") == lines(
        "err.net:1:21: to repeat a layer, put it in brackets",
        "    block f(c) = conv3 c*2",
        "                        ^",
        "hint: write [conv3 c]*2; to multiply a layer's argument, parenthesise it: conv3 (c*2)",
        "err.net:4:5: note: in block f, used here",
    )


def test_mixing_numbers_and_layers():
    e = error(NET + "    relu + 3\n")
    assert e.message == "cannot apply '+' to a layer and an integer"
    assert e.hint == (
        "arithmetic inside a layer's space-separated arguments needs parentheses, "
        "e.g. conv3 (c+1) or p=(k//2)"
    )
    e = error(NET + "    x = relu\n    relu + x\n")
    assert e.message == (
        "a named value can only start a sequence; what comes before 'x' would be lost"
    )
    e = error(NET + "    3 + 4\n")
    assert (e.message, e.hint) == (
        "this line computes an integer and does nothing with it",
        "bind it to a name: `n = ...`",
    )


# ---- files ------------------------------------------------------------------------------------


def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin1.net"
    path.write_bytes(b"network n:\n    input 3x8x8\n    relu # caf\xe9\n")
    with pytest.raises(NetdslError) as info:
        compile_file(path)
    e = info.value
    assert e.message == "file is not UTF-8 text (byte 0xe9)"
    assert (e.span.file, e.span.line, e.span.column) == (str(path), 3, 15)


def test_nul_byte(tmp_path):
    path = tmp_path / "nul.net"
    path.write_bytes(b"network n:\n    input 3x8x8\n    relu\x00\n")
    with pytest.raises(NetdslError) as info:
        compile_file(path)
    assert info.value.message == "syntax error: unexpected character NUL"
    assert (info.value.span.line, info.value.span.column) == (3, 9)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(NetdslError) as info:
        compile_file(tmp_path / "absent.net")
    assert info.value.message == f"no such file: {tmp_path / 'absent.net'}"
    with pytest.raises(NetdslError) as info:
        compile_file(tmp_path)
    assert info.value.message == f"{tmp_path} is a directory, not a .net file"


def test_file_without_network_or_input():
    e = error("block f = relu\n")
    assert (e.message, e.hint) == (
        "this file defines no network",
        "add one: `network name:` followed by `input 3x224x224` and layers",
    )
    e = error("network n:\n    c = 3\n")
    assert (e.message, e.hint) == ("network n has no input", "add a line such as `input 3x224x224`")
    e = error("network n:\n    relu\n")
    assert (e.message, e.span.line) == ("there is no tensor to apply this to yet", 2)


# ---- hostile identifiers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "src, message, hint",
    [
        (
            "block class(c) = conv3 c\n" + NET + "    class(4)\n",
            "block name 'class' is a Python keyword",
            "choose another name, e.g. 'class_'",
        ),
        (
            "block f(lambda) = conv3 lambda\n" + NET + "    f(4)\n",
            "parameter name 'lambda' is a Python keyword",
            "choose another name, e.g. 'lambda_'",
        ),
        (
            "block f(print) = conv3 print\n" + NET + "    f(4)\n",
            "parameter name 'print' is a Python built-in name",
            "choose another name, e.g. 'print_'",
        ),
        (
            "block __init__(c) = conv3 c\n" + NET + "    __init__(4)\n",
            "block name '__init__' may not start or end with a double underscore",
            "choose another name, e.g. 'init2'",
        ),
        (
            "block f(self) = conv3 self\n" + NET + "    f(4)\n",
            "parameter name 'self' is reserved for the generated code",
            "choose another name, e.g. 'self_'",
        ),
        (
            "network import:\n    input 3x8x8\n",
            "network name 'import' is a Python keyword",
            "choose another name, e.g. 'import_'",
        ),
        (
            "network n(str=3):\n    input 3x8x8\n",
            "parameter name 'str' is a Python built-in name",
            "choose another name, e.g. 'str_'",
        ),
        (
            NET + "    relu as class\n",
            "label name 'class' is a Python keyword",
            "choose another name, e.g. 'class_'",
        ),
        (
            NET + "    len = conv3 4\n",
            "value name 'len' is a Python built-in name",
            "choose another name, e.g. 'len_'",
        ),
        (
            "network n:\n    input print 3x8x8\n",
            "input name 'print' is a Python built-in name",
            "choose another name, e.g. 'print_'",
        ),
        (
            NET + "    output __class__\n",
            "output name '__class__' may not start or end with a double underscore",
            "choose another name, e.g. 'class_'",
        ),
        (
            "block conv(c) = relu\n" + NET + "    conv(2)\n",
            "block 'conv' would hide the built-in layer of that name",
            "choose another name",
        ),
    ],
)
def test_hostile_identifiers_are_refused(src, message, hint):
    e = error(src)
    assert (e.message, e.hint) == (message, hint)


def test_overlong_identifier():
    name = "a" * 65
    e = error(NET + f"    {name} = relu\n")
    assert e.message == f"value name '{name}' is longer than 64 characters"


# ---- names and values ----------------------------------------------------------------------------


def test_names_are_bound_once():
    e = error(NET + "    x = relu\n    x = relu\n")
    assert (e.message, e.hint, e.span.line) == (
        "'x' is already defined",
        "names are bound once; choose another name",
        4,
    )
    e = error(NET + "    relu as a + relu as a\n")
    assert e.message == "label 'a' is used twice in the same block"


def test_attributes():
    e = error(NET + "    x = in.q\n")
    assert (e.message, e.hint) == ("a 3x8x8 tensor has no attribute 'q'", "available: c, h, w")
    e = error(NET + "    x = (3).c\n")
    assert e.message == "only tensors have attributes; this is an integer"


def test_conditions_must_be_booleans():
    e = error(NET + "    x = if 1 then 2 else 3\n")
    assert (e.message, e.hint) == (
        "expected true or false, got an integer",
        "write a comparison such as n > 0",
    )


def test_statements_in_the_wrong_place():
    e = error("block f:\n    output\n" + NET + "    f\n")
    assert e.message == "`output` belongs in a network; a block's output is its last value"
    assert [n.message for n in e.notes] == ["in block f, used here"]


def test_annotations():
    assert error(NET + "    relu @gpu\n").message == "write @gpu(i) with the GPU's index"
    e = error(NET + "    relu @tpu\n")
    assert (e.message, e.hint) == ("unknown annotation '@tpu'", "did you mean 'gpu'?")
    e = error(NET + "    output x @cpu\n")
    assert (e.message, e.hint) == (
        "unknown output annotation '@cpu'",
        "outputs take @train (a train-time-only output)",
    )
    assert (
        error(NET + "    relu @train\n").message
        == "@train marks outputs: `output aux @train = ...`"
    )


def test_merges_need_parentheses_and_two_branches():
    e = error(NET + "    concat(relu)\n")
    assert (e.message, e.hint) == (
        "concat needs at least two branches",
        "e.g. concat(id, conv3 64)",
    )
    assert (
        error(NET + "    concat relu\n").message
        == "concat needs its branches in parentheses: concat(a, b)"
    )


# ---- network parameters ----------------------------------------------------------------------------


def test_network_parameters_need_defaults_and_overrides_must_exist():
    e = error("network n(c):\n    input 3x8x8\n")
    assert (e.message, e.hint) == (
        "network parameter 'c' needs a default value",
        "write c=<value>, or pass --param c=...",
    )
    e = error("network n(classes=10):\n    input 3\n", params={"clases": 3})
    assert (e.message, e.hint) == ("network n has no parameter 'clases'", "did you mean 'classes'?")


# ---- train settings ---------------------------------------------------------------------------------


TRAIN = NET + "    relu\ntrain:\n"


@pytest.mark.parametrize(
    "entry, message, hint, column",
    [
        ("optimizer sgdd", "train: unknown optimizer 'sgdd'", "did you mean 'sgd'?", 15),
        ("optimiser sgd", "train: unknown setting 'optimiser'", "did you mean 'optimizer'?", 5),
        ("batch_size 0", "train: batch_size must be a positive integer, got 0", None, 16),
        ("batch_size 2.5", "train: batch_size must be a positive integer, got 2.5", None, 16),
        ("optimizer sgd lrr=0.1", "train: optimizer has no option 'lrr'", "did you mean 'lr'?", 19),
        ("augment flip", "train: unknown augmentation 'flip'", "did you mean 'hflip'?", 13),
        ("epochs 10 20", "train: 'epochs' takes one value", None, 5),
        ("lr (1+2)", "train settings are literal values (numbers, names, tuples)", None, 9),
        (
            "optimizer sgd nesterov=1",
            "train: optimizer nesterov must be true or false, got 1",
            None,
            19,
        ),
        ("epochs 3 x=1", "train: 'epochs' takes no options", None, 14),
    ],
)
def test_bad_train_settings(entry, message, hint, column):
    e = error(TRAIN + f"    {entry}\n")
    assert (e.message, e.hint, e.span.line, e.span.column) == (message, hint, 5, column)


def test_train_settings_are_set_once():
    e = error(TRAIN + "    epochs 10\n    epochs 20\n")
    assert (e.message, e.span.line) == ("train: 'epochs' is set twice", 6)
    e = error(TRAIN + "    optimizer sgd lr=0.1\n    lr 0.2\n")
    assert e.message == "train: 'lr' is set twice"


# ---- use ------------------------------------------------------------------------------------------


def test_missing_standard_library_module():
    assert report("use resnt\n" + NET) == lines(
        "err.net:1:1: no standard library module 'resnt'",
        "    use resnt",
        "    ^",
        "hint: did you mean 'resnet'?",
    )


def test_missing_relative_file(tmp_path):
    path = tmp_path / "m.net"
    path.write_text('use "nofile.net"\n' + NET)
    with pytest.raises(NetdslError) as info:
        compile_file(path)
    assert info.value.message == f"cannot find 'nofile.net' (looked in {tmp_path})"
    assert (info.value.span.line, info.value.span.column) == (1, 1)


def test_use_cycle(tmp_path):
    (tmp_path / "a.net").write_text('use "b.net"\nblock fa = relu\n' + NET + "    fb\n")
    (tmp_path / "b.net").write_text('use "a.net"\nblock fb = relu\n')
    with pytest.raises(NetdslError) as info:
        compile_file(tmp_path / "a.net")
    e = info.value
    assert e.message == "'use' cycle: a.net is already being loaded"
    assert (e.span.file, e.span.line) == (str(tmp_path / "b.net"), 1)


def test_a_block_defined_in_two_used_files(tmp_path):
    (tmp_path / "x.net").write_text("block unit = relu\n")
    (tmp_path / "y.net").write_text("block unit = bn\n")
    (tmp_path / "m.net").write_text('use "x.net"\nuse "y.net"\n' + NET + "    unit\n")
    with pytest.raises(NetdslError) as info:
        compile_file(tmp_path / "m.net")
    e = info.value
    assert e.message == (
        f"block 'unit' is defined both in {tmp_path / 'x.net'} and in {tmp_path / 'y.net'}"
    )
    assert (e.span.line, e.hint) == (2, "define it in this file to choose one")
