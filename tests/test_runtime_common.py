"""netdsl/runtime/: the generated train.py's runtime, imported and called in-process.

This file: common.py (what both scripts share; framework-free) and the rules that let
the runtime modules be copied verbatim into train.py (see netdsl/runtime/__init__.py).
test_runtime_torch.py and test_runtime_keras.py test the framework modules.
"""

from __future__ import annotations

import ast
import sys
from importlib import resources

import pytest
from conftest import ARCHITECTURES, compile_text, need

from netdsl import compile_file
from netdsl.emit import get_emitter
from netdsl.emit.recipe import import_block, runtime_text
from netdsl.runtime import COPY_MARK, common

MODULES = {"common": set(), "torch_train": {"torch"}, "keras_train": {"keras", "numpy"}}
# what a function may import when one data source needs it
LAZY = {"sklearn", "torchvision", "tensorflow"}


def exits(message: str):
    """pytest.raises for sys.exit(message)."""
    return pytest.raises(SystemExit, match=f"^{message}$")


# ---- --input-size, --data ------------------------------------------------------------------


def test_input_size_replaces_the_height_and_width_of_either_layout():
    assert common.input_shape(None, [3, 32, 32], channels_first=True) == (3, 32, 32)
    assert common.input_shape("64", (3, 32, 32), channels_first=True) == (3, 64, 64)
    assert common.input_shape("48X64", (3, 32, 32), channels_first=True) == (3, 48, 64)
    assert common.input_shape("48x64", (32, 32, 1), channels_first=False) == (48, 64, 1)


@pytest.mark.parametrize(
    "size, compiled, channels_first, message",
    [
        ("64", (784,), True, r"error: --input-size needs an image input \(C x H x W\)"),
        ("64", (784,), False, r"error: --input-size needs an image input \(H x W x C\)"),
        ("0", (1, 8, 8), True, "error: --input-size expects H or HxW, got '0'"),
        ("8x8x8", (1, 8, 8), True, "error: --input-size expects H or HxW, got '8x8x8'"),
        ("big", (8, 8, 1), False, "error: --input-size expects H or HxW, got 'big'"),
    ],
)
def test_input_size_mistakes(size, compiled, channels_first, message):
    with exits(message):
        common.input_shape(size, compiled, channels_first)


def test_data_sources():
    assert common.data_source("synthetic") == ("synthetic", "")
    assert common.data_source("digits") == ("digits", "")
    assert common.data_source("imagefolder:/data/a:b") == ("imagefolder", "/data/a:b")
    assert common.data_source("text:book.txt") == ("text", "book.txt")
    message = "error: unknown --data 'mnist': synthetic, digits, imagefolder:PATH or text:PATH"
    with exits(message):
        common.data_source("mnist")


def test_data_sources_the_network_cannot_take():
    common.check_data("text", 256, language_model=True)
    common.check_data("synthetic", 256, language_model=False)  # ids to a classifier
    common.check_data("digits", None, language_model=False)
    with exits(
        r"error: --data text trains a language model: token ids in \(`input N tokens of "
        r"V`\) and next-token logits out \(N x V\)"
    ):
        common.check_data("text", None, language_model=False)
    with exits("error: --data digits gives images, but the input is token ids"):
        common.check_data("digits", 256, language_model=True)
    with exits("error: --data imagefolder gives images, but the input is token ids"):
        common.check_data("imagefolder", 50257, language_model=False)


# ---- --data text: bytes as token ids -------------------------------------------------------


def test_a_text_is_its_bytes_the_last_tenth_held_out(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(bytes(range(256)) * 4)  # 1,024 bytes
    train, held = common.text_bytes(str(path), 8, 256)
    assert (len(train), len(held)) == (922, 102)
    assert train + held == path.read_bytes()
    path.write_bytes("naïve ".encode() * 3)  # 21 bytes: a tenth is no window of 9
    assert common.text_bytes(str(path), 8, 50257) == (path.read_bytes(), b"")


def test_text_mistakes(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"12345678")
    with exits(
        "error: --data text reads bytes, token ids 0..255, but the input's vocabulary "
        "is 100: recompile with a vocabulary of at least 256"
    ):
        common.text_bytes(str(path), 4, 100)
    with exits(f"error: --data text: {path} has 8 bytes, fewer than one window of 9"):
        common.text_bytes(str(path), 8, 256)
    missing = tmp_path / "none.txt"
    with exits(f"error: --data text: cannot read {missing}: No such file or directory"):
        common.text_bytes(str(missing), 8, 256)


def test_windows_overlap_by_one_id():
    # ids 0..16 in windows of 4 + 1: 0-4, 4-8, 8-12, 12-16
    assert common.windows(17, 4) == 4
    assert common.windows(16, 4) == 3 and common.windows(5, 4) == 1
    assert common.windows(4, 4) == 0 and common.windows(0, 4) == 0


def test_decode_bytes_a_model_wrote():
    assert common.decode(list("naïve".encode())) == "naïve"
    assert common.decode([104, 105, 0xC3]) == "hi\ufffd"  # half a character


def test_a_model_that_sees_ahead_is_noted(capsys):
    common.note_not_causal(True)
    assert capsys.readouterr().err == ""
    common.note_not_causal(False)
    assert capsys.readouterr().err == (
        "note: some layer lets a position see later ones (an attention without "
        "causal=true): the model can read the next token it is asked to predict\n"
    )


def test_image_folders_train_and_val_or_the_folder_alone(tmp_path):
    assert common.image_folders(str(tmp_path)) == (str(tmp_path), None)
    (tmp_path / "train").mkdir()
    assert common.image_folders(str(tmp_path)) == (str(tmp_path / "train"), None)
    (tmp_path / "val").mkdir()
    folders = (str(tmp_path / "train"), str(tmp_path / "val"))
    assert common.image_folders(str(tmp_path)) == folders


def test_digits_split_is_stratified_and_fixed():
    need("sklearn")
    images, labels, train, test = common.digits_split()
    assert images.shape == (1797, 8, 8) and images.max() == 16
    assert (len(train), len(test)) == (1437, 360)
    assert sorted(train + test) == list(range(1797))
    assert sorted(set(labels[test])) == list(range(10))
    assert common.digits_split()[2:] == (train, test)


def test_model_arguments():
    assert common.model_arguments(7, "classes", 1000) == {"classes": 7}
    assert common.model_arguments(7, None, 10) == {}
    with exits("error: 11 classes but the network has 10 outputs"):
        common.model_arguments(11, None, 10)


def test_not_implemented_parts_of_the_recipe_are_noted(capsys):
    common.note_not_implemented(["augment autoaugment", "dropout 0.5"])
    assert capsys.readouterr().err == (
        "note: the recipe's augment autoaugment is not done by train.py\n"
        "note: the recipe's dropout 0.5 is not done by train.py\n"
    )


# ---- cutout and mixup's arguments ------------------------------------------------------------


def test_augment_arguments_positional_keyword_default_or_absent():
    augment = [("hflip",), ("cutout", 16), ("mixup", {"alpha": 0.4})]
    assert common.augment_argument(augment, "cutout", "size", 8) == 16
    assert common.augment_argument(augment, "mixup", "alpha", 0.2) == 0.4
    assert common.augment_argument([("cutout",)], "cutout", "size", 8) == 8
    assert common.augment_argument(augment, "random_crop", "padding", 4) is None


def test_batch_augmentations_from_the_recipe():
    augment = [("cutout",), ("mixup",)]
    assert common.batch_augmentations(augment, (32, 24)) == (12, 0.2, None)
    assert common.batch_augmentations([("cutout", 4)], (32, 32)) == (4, None, None)
    assert common.batch_augmentations([("hflip",)], (32, 32)) == (None, None, None)
    note = "note: the recipe's cutout needs image inputs: not done"
    assert common.batch_augmentations(augment, None) == (None, 0.2, note)
    assert common.batch_augmentations([("cutout",)], (1, 1)) == (1, None, None)


def test_batch_augmentations_cannot_apply_to_token_ids():
    note = "note: the recipe's cutout and mixup cannot apply to token ids: not done"
    assert common.batch_augmentations([("cutout",), ("mixup",)], None, True) == (
        None,
        None,
        note,
    )
    note = "note: the recipe's mixup cannot apply to token ids: not done"
    assert common.batch_augmentations([("mixup", 0.4)], None, True) == (None, None, note)
    assert common.batch_augmentations([("hflip",)], None, True) == (None, None, None)


def test_describe_augmentations():
    assert common.describe_augmentations(4, 0.2) == "augment: cutout 4 px, mixup alpha 0.2"
    assert common.describe_augmentations(None, 1.0) == "augment: mixup alpha 1"


# ---- the rules that let train.py copy the runtime verbatim ----------------------------------


def source(name: str) -> str:
    return resources.files("netdsl.runtime").joinpath(f"{name}.py").read_text("utf-8")


def split(name: str) -> tuple[ast.Module, ast.Module]:
    """A runtime module's part above COPY_MARK and its copied part, parsed."""
    head, body = source(name).split(f"\n{COPY_MARK}\n")
    return ast.parse(head), ast.parse(body)


def top(module: str) -> str:
    return module.split(".")[0]


@pytest.mark.parametrize("name", MODULES)
def test_runtime_imports_only_the_standard_library_and_its_framework(name):
    head, body = split(name)
    allowed = MODULES[name] | set(sys.stdlib_module_names)
    for node in head.body:
        if isinstance(node, ast.Import):
            assert {top(a.name) for a in node.names} <= allowed, ast.unparse(node)
        elif isinstance(node, ast.ImportFrom):
            # a framework module's `from .common import ...`: common's text, copied above
            assert (node.level, node.module) == (1, "common") or (
                node.level == 0 and top(node.module) in allowed
            ), ast.unparse(node)
    for node in body.body:  # the copied text: no module-level imports (train.py's are above)
        assert not isinstance(node, (ast.Import, ast.ImportFrom)), ast.unparse(node)
    for node in ast.walk(body):  # and lazily, only what one data source needs
        if isinstance(node, ast.Import):
            assert {top(a.name) for a in node.names} <= allowed | LAZY, ast.unparse(node)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and top(node.module) in allowed | LAZY, ast.unparse(node)
    assert "netdsl" not in imported_modules(body)


def imported_modules(tree: ast.Module) -> set[str]:
    """The top-level names of the absolute imports anywhere in `tree`."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {top(a.name) for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.add(top(node.module))
    return found


def defined(tree: ast.Module) -> list[str]:
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


@pytest.mark.parametrize("framework", ["torch_train", "keras_train"])
def test_copied_modules_define_each_name_once_and_common_reads_no_header_name(framework):
    """In train.py common.py's text and the framework's share one namespace."""
    names = defined(split("common")[1]) + defined(split(framework)[1])
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    stand_ins = set(defined(split(framework)[0]))
    read = {n.id for n in ast.walk(split("common")[1]) if isinstance(n, ast.Name)}
    assert not read & stand_ins
    imported = {
        a.asname or a.name
        for node in split(framework)[0].body
        if isinstance(node, ast.ImportFrom) and node.level == 1
        for a in node.names
    }
    assert imported <= set(defined(split("common")[1]))


PLACED = """\
network twin(classes=4):
    input 3x16x16
    conv3 8 @gpu(0) + relu + gap + fc classes
"""


@pytest.mark.parametrize(
    "target, runtime, source",
    [
        ("torch", "torch_train", None),
        ("torch", "torch_train", PLACED),
        ("keras", "keras_train", None),
    ],
)
def test_the_header_defines_every_stand_in_and_the_runtime_follows_verbatim(
    target, runtime, source
):
    net = compile_file(ARCHITECTURES / "lenet5.net") if source is None else compile_text(source)
    script = get_emitter(target).emit_train(net, "model")
    header, copied = script.split("\n# ==== netdsl's runtime: netdsl/runtime/common.py", 1)
    tree = ast.parse(header)
    names = set(defined(tree))
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    assert set(defined(split(runtime)[0])) <= names
    for name in ("common", runtime):
        assert source_body(name) in copied
    assert copied.endswith('\n\n\nif __name__ == "__main__":\n    main()\n')
    assert "netdsl" not in imported_modules(ast.parse(script))


def source_body(name: str) -> str:
    return source(name).split(f"\n{COPY_MARK}\n")[1].strip("\n")


def test_import_block_is_sorted_like_isort_with_the_model_where_it_sorts():
    block = import_block(["common", "torch_train"], ["from alexnet import INPUT_SHAPE"])
    assert block[:2] == ["from __future__ import annotations", ""]
    assert block.index("import torch.distributed as dist") + 1 == block.index(
        "from alexnet import INPUT_SHAPE"
    )
    assert block.count("import os") == 1  # imported by both modules
    later = import_block(["common", "torch_train"], ["from zoo import INPUT_SHAPE"])
    assert later[-1] == "from zoo import INPUT_SHAPE"
    keras = import_block(["common", "keras_train"], ["import importlib"])
    assert keras[keras.index("import gc") + 1] == "import importlib"
    assert "from __future__ import annotations" not in keras


def test_runtime_text_names_where_each_module_lives():
    text = runtime_text(["common", "keras_train"])
    marks = [line for line in text.splitlines() if line.startswith("# ==== netdsl's runtime")]
    assert marks == [
        f"# ==== netdsl's runtime: netdsl/runtime/{name}.py, copied verbatim ".ljust(88, "=")
        for name in ("common", "keras_train")
    ]
    assert COPY_MARK not in text


# ---- for the framework modules' tests -------------------------------------------------------

# what the runtime must handle, small: an aux head, L2, a warm-up, cutout and mixup
TINY = """
network tiny(classes=3):
    input 3x8x8
    conv3 4 + relu + maxpool2
    output aux @train = gap + fc classes
    gap + fc classes

train:
    optimizer sgd lr=0.1 momentum=0.9 weight_decay=1e-4
    schedule step step=1 gamma=0.5 warmup=1
    batch_size 8
    epochs 2
    label_smoothing 0.1
    augment hflip color_jitter cutout(2) mixup(0.2)
"""


def load_header(target: str, net, folder, module: str) -> dict:
    """The names train.py's header defines for `net` (its model file written to `folder`
    as `module`.py and imported): what the runtime reads, for in-process tests."""
    emitter = get_emitter(target)
    (folder / f"{module}.py").write_text(emitter.emit_model(net))
    header = emitter.emit_train(net, module).split("\n# ==== netdsl's runtime: ")[0]
    names: dict = {"__name__": f"train_{module}"}
    sys.path.insert(0, str(folder))
    sys.modules.pop(module, None)  # the model file of this folder
    try:
        exec(compile(header, str(folder / "train.py"), "exec"), names)
    finally:
        sys.path.remove(str(folder))
    return names


def stand_ins(runtime: str) -> list[str]:
    """The header's names that a framework runtime module stands in for."""
    return defined(split(runtime)[0])
