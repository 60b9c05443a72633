"""What both generated training scripts share, framework-free (see __init__.py).

Copied verbatim into every train.py, PyTorch's and Keras', above the framework's own
runtime. It reads none of the header's names: the caller passes the recipe's parts.
"""

import os
import sys

# ==== train.py: the rest of this module is copied into it verbatim ====


# ---- shared by the PyTorch and Keras scripts -----------------------------------------


def input_shape(
    input_size: str | None, compiled: tuple[int, ...], channels_first: bool
) -> tuple[int, ...]:
    """The shape to train at: the compiled one, or --input-size's H or HxW in place of
    an image input's height and width (C x H x W, or H x W x C)."""
    if not input_size:
        return tuple(compiled)
    layout = "C x H x W" if channels_first else "H x W x C"
    if len(compiled) != 3:
        sys.exit(f"error: --input-size needs an image input ({layout})")
    size = input_size.lower().split("x")
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or not all(s.isdigit() and int(s) > 0 for s in size):
        sys.exit(f"error: --input-size expects H or HxW, got {input_size!r}")
    height, width = int(size[0]), int(size[1])
    if channels_first:
        return (compiled[0], height, width)
    return (height, width, compiled[2])


def data_source(data: str) -> tuple[str, str]:
    """--data's kind (synthetic, digits, imagefolder or text) and the PATH of the last
    two."""
    if data in ("synthetic", "digits"):
        return data, ""
    for kind in ("imagefolder", "text"):
        if data.startswith(f"{kind}:"):
            return kind, data.split(":", 1)[1]
    sys.exit(
        f"error: unknown --data {data!r}: synthetic, digits, imagefolder:PATH or "
        "text:PATH"
    )


def check_data(kind: str, vocab: int | None, language_model: bool) -> None:
    """Refuse a data source the network's input or output cannot take."""
    if kind == "text" and not language_model:
        sys.exit(
            "error: --data text trains a language model: token ids in (`input N tokens "
            "of V`) and next-token logits out (N x V)"
        )
    if kind in ("digits", "imagefolder") and vocab is not None:
        sys.exit(f"error: --data {kind} gives images, but the input is token ids")


def digits_split():
    """scikit-learn's bundled 8x8 digits: the images (n x 8 x 8, 0..16), the labels, and
    the indices of a stratified 80/20 train/test split."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        sys.exit("error: --data digits needs scikit-learn (pip install scikit-learn)")
    data = load_digits()
    train, test = train_test_split(
        range(len(data.target)), test_size=0.2, random_state=0, stratify=data.target
    )
    return data.images, data.target, train, test


def image_folders(path: str) -> tuple[str, str | None]:
    """imagefolder's training folder (PATH/train, else PATH) and test folder (PATH/val,
    None when there is none)."""
    train_dir = os.path.join(path, "train")
    val_dir = os.path.join(path, "val")
    if not os.path.isdir(train_dir):
        train_dir, val_dir = path, ""
    return train_dir, val_dir if os.path.isdir(val_dir) else None


# ---- text: bytes as token ids, for language models ------------------------------------


def text_bytes(path: str, context: int, vocab: int) -> tuple[bytes, bytes]:
    """--data text:PATH's bytes, each a token id (0..255; no tokenizer, no download): the
    training part, and the last tenth held out for testing (empty when that tenth is
    shorter than one window of context + 1 bytes)."""
    if vocab < 256:
        sys.exit(
            f"error: --data text reads bytes, token ids 0..255, but the input's "
            f"vocabulary is {vocab}: recompile with a vocabulary of at least 256"
        )
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        sys.exit(f"error: --data text: cannot read {path}: {e.strerror}")
    held = len(data) // 10
    if held < context + 1:
        held = 0
    if len(data) - held < context + 1:
        sys.exit(
            f"error: --data text: {path} has {len(data)} bytes, fewer than one window "
            f"of {context + 1}"
        )
    return data[: len(data) - held], data[len(data) - held :]


def windows(length: int, context: int) -> int:
    """How many windows of context + 1 ids, each starting where the previous one's
    inputs end (its last id is the next one's first), a text of `length` ids gives."""
    return max(0, (length - 1) // context)


def decode(ids: list[int]) -> str:
    """Bytes back to text (invalid UTF-8, as a model may write it, shown as U+FFFD)."""
    return bytes(ids).decode("utf-8", errors="replace")


def note_not_causal(causal: bool) -> None:
    if not causal:
        print(
            "note: some layer lets a position see later ones (an attention without "
            "causal=true): the model can read the next token it is asked to predict",
            file=sys.stderr,
        )


def note_not_implemented(items: list[str]) -> None:
    """Say which parts of the recipe this script does not do (when they matter)."""
    for item in items:
        print(f"note: the recipe's {item} is not done by train.py", file=sys.stderr)


def schedule_and_sample_arguments(p) -> None:
    """--warmup and --sample, the same in both scripts' command lines."""
    p.add_argument(
        "--warmup",
        type=int,
        help="warm-up length: epochs, or optimizer steps for a language model "
        "(default: the recipe's)",
    )
    p.add_argument(
        "--sample",
        type=int,
        default=48,
        metavar="BYTES",
        help="--data text: bytes to write after training, greedily (0: none)",
    )


def model_arguments(
    classes: int, classes_param: str | None, output_features: int
) -> dict:
    """build_model's keyword arguments for `classes` classes: its class count, when the
    network has that parameter; else the network's own outputs must be enough."""
    if classes_param is not None:
        return {classes_param: classes}
    if classes > output_features:
        sys.exit(
            f"error: {classes} classes but the network has {output_features} outputs"
        )
    return {}


# ---- batch augmentations: cutout and mixup, on every data source ---------------------


def augment_argument(augment: list, name: str, key: str, default):
    """An augmentation's argument in the recipe's augment list (`cutout(16)` or
    `cutout(size=16)`), its default when not given, None when the recipe does not use
    the augmentation."""
    for entry in augment:
        if entry[0] == name:
            given = [a for a in entry[1:] if not isinstance(a, dict)]
            options = next((a for a in entry[1:] if isinstance(a, dict)), {})
            return options.get(key, given[0] if given else default)
    return None


def batch_augmentations(
    augment: list, image_size: tuple[int, ...] | None, token_ids: bool = False
):
    """(cutout's size, mixup's alpha, a note or None) from the recipe's augment list: a
    size or alpha is None when the recipe does not use that augmentation. Cutout needs
    images (`image_size` is their height and width; None for other inputs), mixup
    inputs that can be blended (not `token_ids`): without them they are not done, and
    the note says so."""
    side = max(1, min(image_size) // 2) if image_size else 1  # cutout's default
    cutout_size = augment_argument(augment, "cutout", "size", side)
    mixup_alpha = augment_argument(augment, "mixup", "alpha", 0.2)
    note = None
    if token_ids and (cutout_size or mixup_alpha):
        names = " and ".join(
            n for n, v in [("cutout", cutout_size), ("mixup", mixup_alpha)] if v
        )
        note = f"note: the recipe's {names} cannot apply to token ids: not done"
        cutout_size = mixup_alpha = None
    elif cutout_size and not image_size:
        note = "note: the recipe's cutout needs image inputs: not done"
        cutout_size = None
    return cutout_size, mixup_alpha, note


def describe_augmentations(cutout_size, mixup_alpha) -> str:
    parts = []
    if cutout_size:
        parts.append(f"cutout {cutout_size} px")
    if mixup_alpha:
        parts.append(f"mixup alpha {mixup_alpha:g}")
    return "augment: " + ", ".join(parts)
