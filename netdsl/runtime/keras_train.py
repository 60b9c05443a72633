"""The generated Keras train.py's runtime (see __init__.py for why it is a module).

Copied verbatim into every Keras train.py, below the header that netdsl writes for the
network (templates/keras/train.py.j2) and common.py's text. Above the copy mark stand
the header's names, as stand-ins: tests set them (the network's recipe, its model
module) before calling what they test.
"""

import argparse
import contextlib
import gc
import json
import math
import os
import sys

import keras
import numpy as np

from .common import (
    batch_augmentations,
    check_data,
    data_source,
    decode,
    describe_augmentations,
    digits_split,
    image_folders,
    input_shape,
    model_arguments,
    note_not_causal,
    note_not_implemented,
    schedule_and_sample_arguments,
    text_bytes,
    windows,
)

# ---- stand-ins for the names train.py's header defines -------------------------------

model_module = sys.modules[__name__]  # the model file (build sets its INPUT_SHAPE)
INPUT_SHAPE: tuple[int, ...] = ()  # the model file's: the compiled input shape
NETWORK = "network"  # the network's name
RECIPE: dict = {}  # the .net file's `train:` section, with netdsl's defaults
NOT_IMPLEMENTED: list[str] = []  # parts of the recipe the script does not do
CLASSES_PARAM: str | None = None  # build_model's keyword for the class count
SEED_PARAM = "seed"  # build_model's keyword for the seed of the initial weights
OUTPUT_FEATURES = 0  # width of the main output
SOFTMAX_OUTPUT = False  # the network ends in softmax: its outputs are not logits
AUX_OUTPUTS = 0  # train-time outputs (auxiliary classifiers)
VOCAB: int | None = None  # the input is token ids below this (None: it is not)
LANGUAGE_MODEL = False  # ids in, next-token logits out (N x VOCAB)
CAUSAL = True  # no position sees a later one


def build_model(**kwargs) -> keras.Model:  # the model file's
    raise NotImplementedError("train.py imports build_model from the model file")


# ==== train.py: the rest of this module is copied into it verbatim ====


# ---- arguments -----------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    p.add_argument("--steps", type=int, help="stop after this many optimizer steps")
    p.add_argument("--batch-size", type=int, default=RECIPE["batch_size"])
    p.add_argument("--lr", type=float, default=RECIPE["lr"])
    p.add_argument("--momentum", type=float, default=RECIPE.get("momentum", 0.0))
    p.add_argument("--weight-decay", type=float, default=RECIPE["weight_decay"])
    p.add_argument(
        "--data",
        default="synthetic",
        help="synthetic | digits | imagefolder:PATH (PATH/train, PATH/val) | "
        "text:PATH (a language model's text: its bytes are the token ids)",
    )
    p.add_argument("--samples", type=int, default=1024, help="synthetic examples")
    p.add_argument("--checkpoint", default=f"{NETWORK}.keras", metavar="PATH")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--input-size", metavar="HxW", help="train at another size")
    p.add_argument("--amp", action="store_true", help="mixed precision (mixed_float16)")
    p.add_argument("--verbose", type=int, help="Keras' verbosity: 0, 1 (bar) or 2")
    schedule_and_sample_arguments(p)
    return p.parse_args(argv)


# ---- data ----------------------------------------------------------------------------


def synthetic(args, shape, classes):
    """Random inputs (token ids below VOCAB, when they are) with random labels (a
    fixed seed)."""
    rng = np.random.default_rng(args.seed)
    if VOCAB is None:
        x = rng.standard_normal((args.samples, *shape), dtype=np.float32)
    else:
        x = rng.integers(0, VOCAB, (args.samples, *shape)).astype("int32")
    y = rng.integers(0, classes, args.samples)
    return (x, y), None, classes


def token_windows(ids, context):
    """A text's windows of context + 1 ids, each starting where the previous one's
    inputs end: (inputs, targets), the targets each position's next id."""
    count = windows(len(ids), context)
    starts = np.arange(count)[:, None] * context
    x = ids[starts + np.arange(context)].astype("int32")
    return x, ids[starts + np.arange(1, context + 1)].astype("int32")


def text_windows(args, kind, path, context):
    """A language model's data: --data text:PATH's bytes (the last tenth held out for
    testing), or random ids (synthetic)."""
    if kind == "synthetic":
        rng = np.random.default_rng(args.seed)
        ids = rng.integers(0, VOCAB, args.samples * context + 1)
        return token_windows(ids, context), None, VOCAB
    train, held = text_bytes(path, context, VOCAB)
    test = token_windows(np.frombuffer(held, np.uint8), context) if held else None
    return token_windows(np.frombuffer(train, np.uint8), context), test, VOCAB


def digits(shape):
    """scikit-learn's bundled 8x8 digits, resized to the model's input; a 20% test split."""
    images, y, train, test = digits_split()
    x = images.astype(np.float32)[..., None] / 16.0  # (n, 8, 8, 1)
    if len(shape) == 3:
        x = keras.ops.convert_to_numpy(keras.ops.image.resize(x, shape[:2]))
        x = np.repeat(x, shape[2], axis=-1)
    else:  # a flat input: the largest square image that fits, then zeros
        side = math.isqrt(shape[0])
        x = keras.ops.convert_to_numpy(keras.ops.image.resize(x, (side, side)))
        x = x.reshape(len(x), -1)
        x = np.pad(x, ((0, 0), (0, shape[0] - side * side)))
    x = (x - x.mean()) / x.std()
    return (x[train], y[train]), (x[test], y[test]), 10


def image_folder(path, shape, batch_size, seed):
    """PATH/train and PATH/val (or PATH alone) through keras.utils (needs tensorflow)."""
    if len(shape) != 3:
        sys.exit("error: --data imagefolder needs an image input (H x W x C)")
    train_dir, val_dir = image_folders(path)
    color = {1: "grayscale", 3: "rgb", 4: "rgba"}.get(shape[2])
    if color is None:
        sys.exit(f"error: --data imagefolder cannot give images of {shape[2]} channels")
    options = {"image_size": shape[:2], "color_mode": color, "batch_size": batch_size}
    train = keras.utils.image_dataset_from_directory(
        train_dir, shuffle=True, seed=seed, **options
    )
    classes = len(train.class_names)
    augment = {name: rest for name, *rest in RECIPE["augment"]}
    steps = []
    if "random_resized_crop" in augment or "random_crop" in augment:
        steps.append(keras.layers.RandomZoom((-0.25, 0.0), fill_mode="reflect"))
        steps.append(keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect"))
    if "hflip" in augment:
        steps.append(keras.layers.RandomFlip("horizontal"))
    if "color_jitter" in augment:
        steps.append(keras.layers.RandomContrast(0.4))
    note_not_implemented(NOT_IMPLEMENTED)
    normalize = keras.layers.Rescaling(1 / 255.0)
    if shape[2] == 3:  # ImageNet statistics: (x / 255 - mean) / std
        mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
        normalize = keras.layers.Rescaling(1 / (255.0 * std), offset=-mean / std)
    augmenter = keras.Sequential(steps) if steps else None

    def train_map(x, y):
        if augmenter is not None:
            x = augmenter(x, training=True)
        return normalize(x), y

    train = train.map(train_map)
    test = None
    if val_dir is not None:
        test = keras.utils.image_dataset_from_directory(
            val_dir, shuffle=False, **options
        ).map(lambda x, y: (normalize(x), y))
    return train, test, classes


# ---- batch augmentations: cutout and mixup, on every data source -------------------


def cutout(x, size, rng):
    """Cutout (DeVries & Taylor 2017): zero one size x size square of each image (NHWC),
    its centre anywhere in the image, the square clipped at the borders."""
    n, h, w, _ = x.shape
    top = rng.integers(h, size=(n, 1, 1)) - size // 2
    left = rng.integers(w, size=(n, 1, 1)) - size // 2
    rows, cols = np.arange(h).reshape(1, h, 1), np.arange(w).reshape(1, 1, w)
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return np.where(inside[..., None], 0, x)


def mixup(x, y, alpha, rng):
    """mixup (Zhang et al. 2018): blend the batch with a shuffled copy of itself by
    lam ~ Beta(alpha, alpha), and every output's one-hot labels by the same lam.

    Cross-entropy is linear in the labels (smoothed or not), so the loss is lam times
    that against the labels plus 1 - lam times that against the copy's, as in the
    paper. Keras' accuracy counts a prediction right when it is the label that makes
    up the larger part of the blend (the PyTorch script counts the same way).
    """
    lam = rng.beta(alpha, alpha)
    order = rng.permutation(len(x))

    def blend(a):
        return (lam * a + (1 - lam) * a[order]).astype("float32")

    return blend(x), tuple(blend(t) for t in y) if isinstance(y, tuple) else blend(y)


class Augmented(keras.utils.PyDataset):
    """The training batches with cutout and mixup applied.

    From arrays: shuffled each epoch, and batch i of epoch e augmented by a generator
    of its own, seeded by (seed, e, i), so a resumed run draws what the uninterrupted
    one would have. From a tf.data pipeline (imagefolder): its batches in its own
    order, read endlessly, since Keras may read a batch or two ahead to learn shapes.
    """

    def __init__(
        self, source, batches, batch_size, cutout_size, mixup_alpha, seed, epoch
    ):
        super().__init__()
        self.source, self.batches, self.batch_size = source, batches, batch_size
        self.cutout_size, self.mixup_alpha = cutout_size, mixup_alpha
        self.seed = seed
        self.epoch = epoch  # the epoch in progress, or the first before it begins
        self.begun = False  # Keras reads a batch or two first, to learn their shapes
        self.stream = None
        self.shuffle()

    def __len__(self):
        return self.batches

    def on_epoch_begin(self):
        if self.begun:
            self.epoch += 1
            self.shuffle()
        self.begun = True

    def shuffle(self):
        if isinstance(self.source, tuple):
            rng = np.random.default_rng([self.seed, self.epoch])
            self.order = rng.permutation(len(self.source[0]))

    def __getitem__(self, index):
        if isinstance(self.source, tuple):
            x, y = self.source
            chosen = self.order[index * self.batch_size : (index + 1) * self.batch_size]
            x = x[chosen]
            y = tuple(t[chosen] for t in y) if isinstance(y, tuple) else y[chosen]
        else:
            if self.stream is None:
                self.stream = self.source.repeat().as_numpy_iterator()
            x, y = next(self.stream)
        # numpy's child streams: a different generator for every batch of the epoch
        key = np.random.SeedSequence([self.seed, self.epoch], spawn_key=(index,))
        rng = np.random.default_rng(key)
        x = np.asarray(x, dtype="float32")
        if self.cutout_size:
            x = cutout(x, self.cutout_size, rng)
        if self.mixup_alpha:
            x, y = mixup(x, y, self.mixup_alpha, rng)
        return x, y


# ---- the model and its training --------------------------------------------------


def distribution():
    """A scope that replicates the model on every GPU, and the number of replicas."""
    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if len(tf.config.list_physical_devices("GPU")) > 1:
            strategy = tf.distribute.MirroredStrategy()
            return strategy.scope(), strategy.num_replicas_in_sync
    elif backend == "jax":
        gpus = keras.distribution.list_devices("gpu")
        if len(gpus) > 1:
            keras.distribution.set_distribution(keras.distribution.DataParallel(gpus))
            return contextlib.nullcontext(), len(gpus)
    return contextlib.nullcontext(), 1


def build(shape, classes, seed=None):
    kwargs = {}
    if not LANGUAGE_MODEL:  # a language model's classes are its vocabulary
        kwargs = model_arguments(classes, CLASSES_PARAM, OUTPUT_FEATURES)
    if AUX_OUTPUTS:
        kwargs["training_outputs"] = True
    if seed is not None:  # build_model seeds Keras: the same weights on every run
        kwargs[SEED_PARAM] = seed
    if shape != tuple(INPUT_SHAPE):
        # the builder reads INPUT_SHAPE; paddings were chosen for the compiled size
        model_module.INPUT_SHAPE = shape
    try:
        return build_model(**kwargs)
    except ValueError as e:
        size = "x".join(str(s) for s in shape)
        sys.exit(f"error: {NETWORK} cannot be built for {size} inputs ({e})")


def make_optimizer(args):
    """The recipe's optimizer.

    Weight decay is PyTorch's (and the papers') coupled L2: added to the gradient,
    then momentum and adaptive scaling apply (see add_weight_decay). Keras' own
    `weight_decay` is decoupled (AdamW's rule), which differs from L2 as soon as
    momentum or adaptive steps are involved, so it is used only for adamw, whose
    recipe means exactly that.
    """
    name = RECIPE["optimizer"]
    lr = args.lr
    if name == "sgd":
        nesterov = RECIPE.get("nesterov", False) and args.momentum > 0
        return keras.optimizers.SGD(lr, momentum=args.momentum, nesterov=nesterov)
    if name in ("adam", "adamw"):
        beta_1, beta_2 = RECIPE.get("betas", (0.9, 0.999))
        eps = RECIPE.get("eps", 1e-8)
        options = {"beta_1": beta_1, "beta_2": beta_2, "epsilon": eps}
        if name == "adamw":
            return keras.optimizers.AdamW(lr, weight_decay=args.weight_decay, **options)
        return keras.optimizers.Adam(lr, **options)
    return keras.optimizers.RMSprop(
        lr,
        rho=RECIPE.get("alpha", 0.99),
        momentum=RECIPE.get("momentum", 0.0),
        epsilon=RECIPE.get("eps", 1e-8),
    )


def add_weight_decay(model, args):
    """L2 on every trainable weight: the gradient gains weight_decay * w, as in PyTorch."""
    if RECIPE["optimizer"] == "adamw" or not args.weight_decay:
        return
    for variable in model.trainable_weights:
        variable.regularizer = keras.regularizers.L2(args.weight_decay / 2)


def schedule_callback(args, monitor, length, first_step=None):
    """The recipe's schedule over `length` epochs, applied once per epoch (None: a
    constant rate); with `first_step` (a language model's, whose schedule counts
    optimizer steps, the warm-up too) over `length` steps, applied before every one."""
    s = dict(RECIPE["schedule"])
    if args.warmup is not None:
        s["warmup"] = args.warmup
    name = s.pop("name")
    base = args.lr
    if name == "plateau":
        return keras.callbacks.ReduceLROnPlateau(
            monitor=monitor,
            factor=s.get("factor", 0.1),
            patience=s.get("patience", 10),
            min_lr=s.get("min_lr", 0.0),
        )
    if name == "step":

        def rate(epoch):
            return base * s.get("gamma", 0.1) ** (epoch // s.get("step", 30))

    elif name == "multistep":

        def rate(epoch):
            passed = sum(epoch >= m for m in s.get("milestones", ()))
            return base * s.get("gamma", 0.1) ** passed

    elif name == "cosine":

        def rate(epoch):
            low = s.get("min_lr", 0.0)
            cosine = (1 + math.cos(math.pi * epoch / length)) / 2
            return low + (base - low) * cosine

    elif name == "exponential":

        def rate(epoch):
            return base * s.get("gamma", 0.97) ** epoch

    else:
        return None
    warmup = s.get("warmup", 0)

    def scheduled(epoch, lr):
        # as the PyTorch script's: linear from a tenth of the rate, then the schedule
        # from its start (torch's LinearLR, then its own, in a SequentialLR)
        if epoch < warmup:
            return rate(0) * (0.1 + 0.9 * epoch / warmup)
        return rate(epoch - warmup)

    if first_step is not None:
        return StepSchedule(scheduled, first_step)
    return keras.callbacks.LearningRateScheduler(scheduled)


class StepSchedule(keras.callbacks.Callback):
    """Sets the learning rate before every optimizer step, to `rate(step, None)`."""

    def __init__(self, rate, step):
        super().__init__()
        self.rate = rate
        self.step = step  # the next optimizer step

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate = self.rate(self.step, None)
        self.step += 1


def compile_model(model, args, classes):
    if LANGUAGE_MODEL:  # each position's next id: an integer target, not one-hot
        loss = keras.losses.SparseCategoricalCrossentropy(
            from_logits=not SOFTMAX_OUTPUT
        )
        model.compile(optimizer=make_optimizer(args), loss=loss, metrics=["accuracy"])
        return
    loss = keras.losses.CategoricalCrossentropy(
        from_logits=not SOFTMAX_OUTPUT, label_smoothing=RECIPE["label_smoothing"]
    )
    outputs = len(model.outputs)
    if outputs == 1:
        model.compile(optimizer=make_optimizer(args), loss=loss, metrics=["accuracy"])
        return
    # the main output, then the auxiliary classifiers with the recipe's weight
    model.compile(
        optimizer=make_optimizer(args),
        loss=[loss] * outputs,
        loss_weights=[1.0] + [RECIPE["aux_weight"]] * (outputs - 1),
        metrics=[["accuracy"]] + [[]] * (outputs - 1),
    )


def targets(y, classes, outputs):
    """One-hot labels, repeated for every output of the model (a language model's
    targets stay ids)."""
    if LANGUAGE_MODEL:
        return y
    y = keras.utils.to_categorical(y, classes)
    return tuple([y] * outputs) if outputs > 1 else y


class EpochRecord(keras.callbacks.Callback):
    """Writes, beside the checkpoint, how many epochs it holds (for --resume)."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"network": NETWORK, "epoch": epoch + 1}, f)
        os.replace(tmp, self.path)


class StopAfter(keras.callbacks.Callback):
    """Stops training after a number of optimizer steps (--steps)."""

    def __init__(self, steps):
        super().__init__()
        self.steps = steps
        self.done = 0

    def on_train_batch_end(self, batch, logs=None):
        self.done += 1
        if self.done >= self.steps:
            self.model.stop_training = True


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    if args.amp:
        keras.mixed_precision.set_global_policy("mixed_float16")
    shape = input_shape(args.input_size, INPUT_SHAPE, channels_first=False)
    scope, replicas = distribution()
    if args.batch_size % replicas:
        sys.exit(f"error: --batch-size {args.batch_size} cannot split {replicas} ways")
    kind, path = data_source(args.data)
    check_data(kind, VOCAB, LANGUAGE_MODEL)
    if LANGUAGE_MODEL:
        train, test, classes = text_windows(args, kind, path, shape[0])
    elif kind == "synthetic":
        train, test, classes = synthetic(args, shape, OUTPUT_FEATURES or 10)
    elif kind == "digits":
        train, test, classes = digits(shape)
    else:
        train, test, classes = image_folder(path, shape, args.batch_size, args.seed)
    record = args.checkpoint + ".json"
    initial_epoch = 0
    with scope:
        if args.resume:
            if not os.path.exists(args.checkpoint) or not os.path.exists(record):
                sys.exit(f"error: --resume: no checkpoint at {args.checkpoint}")
            model = keras.models.load_model(args.checkpoint)
            with open(record) as f:
                initial_epoch = json.load(f)["epoch"]
            print(f"resumed from {args.checkpoint} after epoch {initial_epoch}")
        else:
            model = build(shape, classes, args.seed)
            compile_model(model, args, classes)
        add_weight_decay(model, args)
    outputs = len(model.outputs)
    if isinstance(train, tuple):  # arrays
        x, y = train
        y = targets(y, classes, outputs)
        data = {"x": x, "y": y, "batch_size": args.batch_size}
        per_epoch = math.ceil(len(x) / args.batch_size)
        validation = (test[0], targets(test[1], classes, outputs)) if test else None
    else:  # a tf.data pipeline of batches

        def one_hot(x, y):
            return x, targets_tf(y, classes, outputs)

        data = {"x": train.map(one_hot)}
        per_epoch = int(train.cardinality())
        validation = test.map(one_hot) if test is not None else None
    if per_epoch < 1:
        sys.exit("error: the training set is empty")
    image_size = shape[:2] if len(shape) == 3 else None
    cutout_size, mixup_alpha, note = batch_augmentations(
        RECIPE["augment"], image_size, token_ids=VOCAB is not None
    )
    if note:
        print(note, file=sys.stderr)
    if cutout_size or mixup_alpha:
        source = (data["x"], data["y"]) if "y" in data else data["x"]
        augmented = Augmented(
            source,
            per_epoch,
            args.batch_size,
            cutout_size,
            mixup_alpha,
            args.seed,
            initial_epoch,
        )
        data = {"x": augmented, "shuffle": False}  # it shuffles the examples itself
    epochs = args.epochs
    callbacks = [
        keras.callbacks.ModelCheckpoint(args.checkpoint),
        EpochRecord(record),
    ]
    steps_per_epoch = None
    if args.steps is not None:
        if args.steps < per_epoch:  # a part of one epoch
            steps_per_epoch = args.steps
        epochs = min(epochs, initial_epoch + math.ceil(args.steps / per_epoch))
        callbacks.append(StopAfter(args.steps))
    monitor = "val_loss" if validation is not None else "loss"
    if LANGUAGE_MODEL:  # its schedule counts optimizer steps (--steps stops it early)
        first = initial_epoch * per_epoch
        schedule = schedule_callback(args, monitor, args.epochs * per_epoch, first)
    else:
        schedule = schedule_callback(args, monitor, args.epochs)
    if schedule is not None:
        callbacks.append(schedule)
    params = model.count_params()
    size = "x".join(str(s) for s in shape)
    where = f"{replicas} replicas" if replicas > 1 else keras.config.backend()
    if LANGUAGE_MODEL:
        size = f"{len(train[0])} windows of {shape[0]} + 1 ids"
    print(f"{NETWORK}: {params:,} parameters; {args.data} data of {size}; {where}")
    if LANGUAGE_MODEL:
        note_not_causal(CAUSAL)
        if RECIPE["label_smoothing"]:  # Keras' sparse cross-entropy has none
            smoothing = RECIPE["label_smoothing"]
            note_not_implemented([f"label_smoothing {smoothing} (on token ids)"])
    if cutout_size or mixup_alpha:
        print(describe_augmentations(cutout_size, mixup_alpha))
    verbose = args.verbose
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    model.fit(
        **data,
        epochs=epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=steps_per_epoch,
        validation_data=validation,
        callbacks=callbacks,
        verbose=verbose,
    )
    # a batch reader stopped part-way (--steps) must close now: at interpreter exit,
    # TensorFlow's generator dataset fails to finalize and says so
    del data
    gc.collect()
    print(f"saved {args.checkpoint}")
    if validation is not None:
        if isinstance(validation, tuple):
            results = model.evaluate(*validation, verbose=0, return_dict=True)
        else:
            results = model.evaluate(validation, verbose=0, return_dict=True)
        accuracy = next(v for k, v in results.items() if k.endswith("accuracy"))
        if (
            LANGUAGE_MODEL
        ):  # per token: the loss in nats, its exponential the perplexity
            loss = results["loss"]
            perplexity = math.exp(min(loss, 50))
            print(f"test loss {loss:.4f} (perplexity {perplexity:.2f})")
        print(f"test accuracy {accuracy:.2%}")
    if LANGUAGE_MODEL and kind == "text" and args.sample > 0:
        text = test if test is not None else train
        prompt = text[0][0]  # the test text's first window
        sample = generate(model, prompt, args.sample)
        print(f"sample after {decode(prompt[-24:].tolist())!r}:")
        print(f"  {decode(sample)!r}")


def generate(model, prompt, count):
    """`count` ids after `prompt` (a context's worth), each the language model's most
    likely next one after the context ids before it (greedy decoding)."""
    ids = [int(i) for i in prompt]
    context = len(ids)
    for _ in range(count):
        x = np.array([ids[-context:]], dtype="int32")
        out = model(x, training=False)
        out = out[0] if isinstance(out, (list, tuple)) else out
        ids.append(int(np.argmax(keras.ops.convert_to_numpy(out)[0, -1])))
    return ids[context:]


def targets_tf(y, classes, outputs):
    import tensorflow as tf

    y = tf.one_hot(y, classes)
    return tuple([y] * outputs) if outputs > 1 else y
