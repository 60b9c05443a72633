"""The generated PyTorch train.py's runtime (see __init__.py for why it is a module).

Copied verbatim into every PyTorch train.py, below the header that netdsl writes for
the network (templates/torch/train.py.j2) and common.py's text. Above the copy mark
stand the header's names, as stand-ins: tests set them (the network's recipe, its
model builder) before calling what they test.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
import warnings

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import (
    DataLoader,
    Dataset,
    DistributedSampler,
    Subset,
    TensorDataset,
)

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

NETWORK = "network"  # the network's name
RECIPE: dict = {}  # the .net file's `train:` section, with netdsl's defaults
NOT_IMPLEMENTED: list[str] = []  # parts of the recipe the script does not do
CLASSES_PARAM: str | None = None  # build_model's keyword for the class count
OUTPUT_FEATURES = 0  # width of the main output
SOFTMAX_OUTPUT = False  # the network ends in softmax: train on its log
AUX_OUTPUTS = 0  # train-time outputs (auxiliary classifiers) in training mode
VOCAB: int | None = None  # the input is token ids below this (None: it is not)
LANGUAGE_MODEL = False  # ids in, next-token logits out (N x VOCAB)
CAUSAL = True  # no position sees a later one
PLACED = False  # parts of the model are pinned to devices (@gpu/@cpu)
DEVICES: dict[str, str] = {}  # the model file's: the devices of its placed parts
DEVICES_PARAM: str | None = None  # build_model's keyword for the device map
SEED_PARAM = "seed"  # build_model's keyword for the seed of the initial weights
INPUT_SHAPE: tuple[int, ...] = ()  # the model file's: the compiled input shape


def build_model(**kwargs) -> nn.Module:  # the model file's
    raise NotImplementedError("train.py imports build_model from the model file")


# ==== train.py: the rest of this module is copied into it verbatim ====


# ---- arguments -----------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    p.add_argument("--steps", type=int, help="stop after this many optimizer steps")
    p.add_argument(
        "--batch-size",
        type=int,
        default=RECIPE["batch_size"],
        help="global batch size (split across processes)",
    )
    p.add_argument(
        "--lr",
        type=float,
        help="learning rate (default: the recipe's, scaled to the batch size for sgd)",
    )
    p.add_argument("--momentum", type=float, default=RECIPE.get("momentum", 0.0))
    p.add_argument(
        "--weight-decay", type=float, default=RECIPE.get("weight_decay", 0.0)
    )
    p.add_argument(
        "--data",
        default="synthetic",
        help="synthetic | digits | imagefolder:PATH (PATH/train, PATH/val) | "
        "text:PATH (a language model's text: its bytes are the token ids)",
    )
    p.add_argument(
        "--samples", type=int, default=1024, help="size of the synthetic set"
    )
    p.add_argument(
        "--device", help="cuda, cuda:1, cpu, ... (default: cuda when present)"
    )
    p.add_argument(
        "--amp", action="store_true", help="mixed precision (fp16 CUDA, bf16 CPU)"
    )
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument(
        "--fsdp",
        action="store_true",
        help="under torchrun: shard parameters, gradients and optimizer state across "
        "the processes (FSDP2) instead of replicating the model (DDP)",
    )
    schedule_and_sample_arguments(p)
    p.add_argument("--checkpoint", default=f"{NETWORK}.pt", metavar="PATH")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--input-size",
        metavar="HxW",
        help="train at another spatial size, e.g. 64 (if the model allows)",
    )
    p.add_argument(
        "--workers", type=int, help="data loading processes per training process"
    )
    p.add_argument("--log-every", type=int, default=0, help="steps between log lines")
    return p.parse_args(argv)


# ---- processes and devices ---------------------------------------------------------


class Runtime:
    """This process's place in the job: rank, world size and device."""

    def __init__(self, requested: str | None) -> None:
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        name = requested or ("cuda" if torch.cuda.is_available() else "cpu")
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            sys.exit("error: --device cuda but CUDA is not available here")
        if device.type == "cuda" and self.distributed and device.index is None:
            device = torch.device("cuda", self.local_rank % torch.cuda.device_count())
        if device.type == "cuda":
            torch.cuda.set_device(device)
        self.device = device
        if self.distributed:
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend)
            self.backend = backend

    @property
    def main(self) -> bool:
        return self.rank == 0

    def log(self, message: str) -> None:
        if self.main:
            print(message, flush=True)

    def sum(self, *values: float) -> list[float]:
        """Sum numbers over all processes."""
        if not self.distributed:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def most(self, value: int) -> int:
        """The largest of the processes' values."""
        if not self.distributed:
            return value
        t = torch.tensor([value], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def close(self) -> None:
        """Leave the job together: a process that destroys its group while another still
        works (rank 0 saving the last checkpoint) can abort the other's gloo threads."""
        if self.distributed:
            dist.barrier()
            dist.destroy_process_group()


def device_map(runtime: Runtime) -> dict[str, str] | None:
    """Where the model's @gpu(i)/@cpu parts go in this process (see DEVICES); None
    when it pins none to a device."""
    if not PLACED:
        return None
    if runtime.device.type != "cuda":
        return {name: str(runtime.device) for name in DEVICES}
    gpus = [name for name in DEVICES if name.startswith("cuda")]
    count = torch.cuda.device_count()
    # process r takes the r-th run of len(gpus) GPUs (wrapping around when they run out)
    first = runtime.local_rank * len(gpus) if runtime.distributed else 0
    if runtime.device.index is not None and not runtime.distributed:
        first = runtime.device.index
    return {
        name: f"cuda:{(first + gpus.index(name)) % count}" if name in gpus else name
        for name in DEVICES
    }


# ---- data --------------------------------------------------------------------------


class SyntheticImages(Dataset):
    """Random inputs (token ids below `vocab`, when given) with random labels, the same
    for every epoch and process."""

    def __init__(
        self,
        samples: int,
        shape: tuple[int, ...],
        classes: int,
        seed: int,
        vocab: int | None = None,
    ) -> None:
        g = torch.Generator().manual_seed(seed)
        size = (min(samples, 64), *shape)
        if vocab is None:
            self.bank = torch.randn(size, generator=g)
        else:
            self.bank = torch.randint(0, vocab, size, generator=g)
        self.labels = torch.randint(0, classes, (samples,), generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.bank[index % len(self.bank)], self.labels[index]


class TokenWindows(Dataset):
    """A text's windows of context + 1 ids, each starting where the previous one's
    inputs end: its first context ids are the input, its last context ids the targets
    (each position's next id)."""

    def __init__(self, ids: Tensor, context: int) -> None:
        self.ids = ids
        self.context = context

    def __len__(self) -> int:
        return windows(len(self.ids), self.context)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        start = index * self.context
        window = self.ids[start : start + self.context + 1].long()
        return window[:-1], window[1:]


def text_windows(
    args: argparse.Namespace, kind: str, path: str, context: int
) -> tuple[TokenWindows, TokenWindows | None, int]:
    """A language model's data: --data text:PATH's bytes (the last tenth held out for
    testing), or random ids (synthetic)."""
    assert VOCAB is not None
    if kind == "synthetic":
        g = torch.Generator().manual_seed(args.seed)
        ids = torch.randint(0, VOCAB, (args.samples * context + 1,), generator=g)
        return TokenWindows(ids, context), None, VOCAB
    train, held = text_bytes(path, context, VOCAB)
    test = TokenWindows(byte_ids(held), context) if held else None
    return TokenWindows(byte_ids(train), context), test, VOCAB


def byte_ids(data: bytes) -> Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def digits(shape: tuple[int, ...]) -> tuple[Dataset, Dataset, int]:
    """scikit-learn's bundled 8x8 digits, resized to the model's input; a 20% test split."""
    images, labels, train, test = digits_split()
    x = torch.tensor(images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(labels, dtype=torch.long)
    if len(shape) == 3:
        x = nn.functional.interpolate(
            x, size=shape[1:], mode="bilinear", align_corners=False
        )
        x = x.expand(-1, shape[0], -1, -1).contiguous()
    else:  # a flat input: the largest square image that fits, then zeros
        side = math.isqrt(shape[0])
        x = nn.functional.interpolate(
            x, size=(side, side), mode="bilinear", align_corners=False
        )
        x = nn.functional.pad(x.flatten(1), (0, shape[0] - side * side))
    x = (x - x.mean()) / x.std()
    dataset = TensorDataset(x, y)
    return Subset(dataset, train), Subset(dataset, test), 10


def image_folder(
    path: str, shape: tuple[int, ...]
) -> tuple[Dataset, Dataset | None, int]:
    """torchvision's ImageFolder on PATH/train and PATH/val (or PATH alone)."""
    try:
        from torchvision import datasets, transforms
    except ImportError:
        sys.exit(
            "error: --data imagefolder needs torchvision (pip install torchvision)"
        )
    if len(shape) != 3:
        sys.exit("error: --data imagefolder needs an image input (C x H x W)")
    size = tuple(shape[1:])
    augment = {name: rest for name, *rest in RECIPE["augment"]}
    train_ops: list = []
    if "random_resized_crop" in augment:
        train_ops.append(transforms.RandomResizedCrop(size))
    elif "random_crop" in augment:
        options = next((o for o in augment["random_crop"] if isinstance(o, dict)), {})
        train_ops += [transforms.Resize(size), transforms.RandomCrop(size, **options)]
    else:
        train_ops.append(transforms.Resize(size))
    if "hflip" in augment:
        train_ops.append(transforms.RandomHorizontalFlip())
    if "color_jitter" in augment:
        train_ops.append(transforms.ColorJitter(0.4, 0.4, 0.4))
    resize = [int(s * 256 / 224) for s in size]
    eval_ops: list = [transforms.Resize(resize), transforms.CenterCrop(size)]
    common: list = [transforms.ToTensor()]
    if shape[0] == 3:  # ImageNet statistics
        common.append(
            transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
        )
    if shape[0] == 1:
        common.insert(0, transforms.Grayscale(1))
    note_not_implemented(NOT_IMPLEMENTED)
    train_dir, val_dir = image_folders(path)
    train = datasets.ImageFolder(train_dir, transforms.Compose(train_ops + common))
    test = None
    if val_dir is not None:
        test = datasets.ImageFolder(val_dir, transforms.Compose(eval_ops + common))
    return train, test, len(train.classes)


def datasets_for(args: argparse.Namespace, shape: tuple[int, ...]):
    """(train set, test set or None, number of classes)."""
    kind, path = data_source(args.data)
    check_data(kind, VOCAB, LANGUAGE_MODEL)
    if LANGUAGE_MODEL:
        return text_windows(args, kind, path, shape[0])
    if kind == "synthetic":
        classes = OUTPUT_FEATURES or 10
        train = SyntheticImages(args.samples, shape, classes, args.seed, VOCAB)
        return train, None, classes
    if kind == "digits":
        return digits(shape)
    return image_folder(path, shape)


class ResumableSampler(DistributedSampler):
    """Each process's shuffled share of an epoch, able to start part-way (resuming)."""

    skip = 0  # samples of this process's share to leave out, at the start

    def __iter__(self):
        return iter(list(super().__iter__())[self.skip :])

    def __len__(self) -> int:
        return super().__len__() - self.skip


def data_loaders(
    args: argparse.Namespace,
    runtime: Runtime,
    train_set: Dataset,
    test_set: Dataset | None,
    batch: int,
) -> tuple[ResumableSampler, DataLoader, DataLoader | None]:
    """This process's training batches (of `batch` examples, through the sampler that
    is returned too) and its share of the test set's (None without a test set)."""
    sampler = ResumableSampler(
        train_set,
        runtime.world,
        runtime.rank,
        shuffle=True,
        seed=args.seed,
        drop_last=True,
    )
    workers = args.workers
    if workers is None:  # decoding images wants helper processes; tensors do not
        workers = 0
        if args.data.startswith("imagefolder:"):
            workers = min(8, os.cpu_count() or 1)
    loader_options = {
        "batch_size": batch,
        "num_workers": workers,
        "pin_memory": runtime.device.type == "cuda",
        "persistent_workers": workers > 0,
        # each new pass over a loader draws a seed (its workers') from this generator,
        # not from the one that dropout draws from: a resumed run's dropout then draws
        # what the uninterrupted run's would have
        "generator": torch.Generator().manual_seed(args.seed),
    }
    loader = DataLoader(train_set, sampler=sampler, drop_last=True, **loader_options)
    test_loader = None
    if test_set is not None:
        share = Subset(test_set, range(runtime.rank, len(test_set), runtime.world))
        test_loader = DataLoader(share, **loader_options)
    return sampler, loader, test_loader


# ---- batch augmentations: cutout and mixup, on every data source -------------------


def batch_random(seed: int, rank: int, step: int) -> random.Random:
    """The random source of one step's cutout and mixup. A function of the seed, the
    process and the step alone: every process draws its own, and a resumed run draws
    what the uninterrupted one would have (nothing to checkpoint)."""
    return random.Random(f"batch augmentations {seed} {rank} {step}")


def cutout(x: Tensor, size: int, rng: random.Random) -> Tensor:
    """Cutout (DeVries & Taylor 2017): zero one size x size square of each image, its
    centre anywhere in the image, the square clipped at the borders."""
    n, _, h, w = x.shape
    centres = [(rng.randrange(h), rng.randrange(w)) for _ in range(n)]
    corners = torch.tensor(centres, device=x.device).view(n, 2, 1, 1) - size // 2
    top, left = corners[:, 0], corners[:, 1]
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return torch.where(inside.unsqueeze(1), 0.0, x)  # keeps x's memory format


def mixup(
    x: Tensor, y: Tensor, alpha: float, rng: random.Random
) -> tuple[Tensor, Tensor, float]:
    """mixup (Zhang et al. 2018): blend the batch with a shuffled copy of itself by
    lam ~ Beta(alpha, alpha). Returns the blend, the shuffled copy's labels and lam;
    the loss blends the two labels' losses by the same lam (Loss.mixed)."""
    lam = rng.betavariate(alpha, alpha)
    order = torch.tensor(rng.sample(range(len(x)), len(x)), device=x.device)
    return lam * x + (1 - lam) * x[order], y[order.to(y.device)], lam


# ---- the model and its training -------------------------------------------------------


def build(args, runtime: Runtime, shape: tuple[int, ...], classes: int) -> nn.Module:
    kwargs = {}
    if not LANGUAGE_MODEL:  # a language model's classes are its vocabulary
        kwargs = model_arguments(classes, CLASSES_PARAM, OUTPUT_FEATURES)
    devices = device_map(runtime)
    if devices is not None:
        kwargs[DEVICES_PARAM] = devices
    kwargs[SEED_PARAM] = args.seed  # the same initial weights in every process and run
    model = build_model(**kwargs)
    if devices is None:
        model.to(runtime.device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    model.eval()
    dtype = torch.long if VOCAB is not None else torch.float32
    probe = torch.zeros((1, *shape), dtype=dtype, device=runtime.device)
    try:
        with torch.no_grad():
            model(probe)
    except RuntimeError as e:
        size = "x".join(str(s) for s in shape)
        sys.exit(
            f"error: {NETWORK} cannot run on {size} inputs ({e}); its layers were sized for "
            f"{'x'.join(str(s) for s in INPUT_SHAPE)}: recompile with netdsl's --input {size}"
        )
    return model


def shard(model: nn.Module, runtime: Runtime) -> int:
    """FSDP2: shard each of the model's outermost blocks (see fsdp_blocks), then the
    model itself, across the processes. Each process keeps 1/world of every parameter,
    gradient and optimizer state, and gathers a block's parameters only while it runs.
    The number of blocks sharded."""
    if not runtime.distributed:
        sys.exit(
            "error: --fsdp shards the model across processes: run train.py under "
            "torchrun --nproc_per_node=N (N of 2 or more)"
        )
    if PLACED:
        sys.exit(
            "error: --fsdp cannot shard a model whose parts are pinned (@gpu/@cpu)"
        )
    try:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard
    except ImportError:
        sys.exit("error: --fsdp needs PyTorch's FSDP2 (torch 2.6 or later)")
    mesh = init_device_mesh(runtime.device.type, (runtime.world,))
    blocks = fsdp_blocks(model)
    for block in blocks:
        fully_shard(block, mesh=mesh)
        block.register_forward_hook(copy_view)
    fully_shard(model, mesh=mesh)
    # what FSDP warns of, copy_view prevents
    warnings.filterwarnings("ignore", "FSDP2-wrapped module .* returned a view tensor")
    return len(blocks)


def copy_view(module: nn.Module, inputs, output):
    """A sharded block's output, copied when it is a view (a linear layer's on tokens):
    an in-place op on the view (the model's `out += x`) would drop the hook by which
    FSDP gathers the block's parameters again for the backward pass."""
    if isinstance(output, Tensor) and output._is_view():
        return output.clone()
    return None


def fsdp_blocks(model: nn.Module) -> list[nn.Module]:
    """The model's outermost blocks with parameters: the instances, not inside another
    one, of the classes its file defines that hold modules of their own (a GPT's
    decoder blocks, a ResNet's stages), leaving out its layers (a position embedding
    holds a parameter, SelfAttention is an nn.MultiheadAttention)."""
    home = type(model).__module__

    def is_block(module: nn.Module) -> bool:
        bases = type(module).__mro__[1:]
        layer = any(
            b.__module__.startswith("torch.") for b in bases if b is not nn.Module
        )
        has_modules = next(module.children(), None) is not None
        return type(module).__module__ == home and not layer and has_modules

    blocks: list[nn.Module] = []

    def visit(module: nn.Module) -> None:
        for child in module.children():
            if is_block(child):
                blocks.append(child)
            else:  # nn.Sequential, nn.ModuleList, a layer: look inside
                visit(child)

    visit(model)
    return [b for b in blocks if next(b.parameters(), None) is not None]


def default_lr(batch_size: int) -> float:
    """The recipe's learning rate, scaled to the batch size for sgd (the linear scaling
    rule, Goyal et al. 2017)."""
    if RECIPE["optimizer"] == "sgd":
        return RECIPE["lr"] * batch_size / RECIPE["batch_size"]
    return RECIPE["lr"]


def make_optimizer(args, model: nn.Module) -> torch.optim.Optimizer:
    name = RECIPE["optimizer"]
    params = model.parameters()
    decay = args.weight_decay
    if name == "sgd":
        nesterov = RECIPE.get("nesterov", False) and args.momentum > 0
        return torch.optim.SGD(
            params,
            args.lr,
            momentum=args.momentum,
            weight_decay=decay,
            nesterov=nesterov,
        )
    if name in ("adam", "adamw"):
        kind = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        betas = tuple(RECIPE.get("betas", (0.9, 0.999)))
        return kind(
            params,
            args.lr,
            betas=betas,
            eps=RECIPE.get("eps", 1e-8),
            weight_decay=decay,
        )
    return torch.optim.RMSprop(
        params,
        args.lr,
        alpha=RECIPE.get("alpha", 0.99),
        eps=RECIPE.get("eps", 1e-8),
        momentum=args.momentum,
        weight_decay=decay,
    )


def make_scheduler(args, optimizer: torch.optim.Optimizer, length: int):
    """The recipe's schedule over `length` epochs, stepped once per epoch (None: a
    constant rate); a language model's counts optimizer steps, `length` of them (the
    warm-up too, as GPT's recipes count it), and is stepped after every one."""
    s = dict(RECIPE["schedule"])
    if args.warmup is not None:
        s["warmup"] = args.warmup
    sched = torch.optim.lr_scheduler
    name = s.pop("name")
    if name == "step":
        main = sched.StepLR(optimizer, s.get("step", 30), gamma=s.get("gamma", 0.1))
    elif name == "multistep":
        milestones = list(s.get("milestones", ()))
        main = sched.MultiStepLR(optimizer, milestones, gamma=s.get("gamma", 0.1))
    elif name == "cosine":
        main = sched.CosineAnnealingLR(optimizer, length, eta_min=s.get("min_lr", 0.0))
    elif name == "exponential":
        main = sched.ExponentialLR(optimizer, s.get("gamma", 0.97))
    elif name == "plateau":
        return sched.ReduceLROnPlateau(
            optimizer,
            factor=s.get("factor", 0.1),
            patience=s.get("patience", 10),
            min_lr=s.get("min_lr", 0.0),
        )
    else:
        return None
    if s.get("warmup"):
        warm = sched.LinearLR(optimizer, start_factor=0.1, total_iters=s["warmup"])
        return sched.SequentialLR(optimizer, [warm, main], milestones=[s["warmup"]])
    return main


class Loss(nn.Module):
    """Cross-entropy on the main output plus aux_weight times that of each aux output."""

    def __init__(self, aux_weight: float, smoothing: float) -> None:
        super().__init__()
        self.aux_weight = aux_weight
        self.ce = nn.CrossEntropyLoss(label_smoothing=smoothing)

    def one(self, output: Tensor, target: Tensor) -> Tensor:
        if output.dim() == 3:  # a language model's: every position predicts its next id
            output, target = output.flatten(0, 1), target.flatten()
        if SOFTMAX_OUTPUT:  # probabilities: their log is its own log-softmax
            return self.ce(output.float().clamp_min(1e-12).log(), target)
        return self.ce(output.float(), target)

    def forward(self, outputs: Tensor | tuple[Tensor, ...], target: Tensor) -> Tensor:
        if not isinstance(outputs, tuple):
            return self.one(outputs, target.to(outputs.device))
        main, *aux = outputs
        target = target.to(main.device)
        loss = self.one(main, target)
        for extra in aux:
            loss = loss + self.aux_weight * self.one(extra, target.to(extra.device))
        return loss

    def mixed(
        self,
        outputs: Tensor | tuple[Tensor, ...],
        target: Tensor,
        other: Tensor,
        lam: float,
    ) -> Tensor:
        """The loss of a mixup batch: lam times that against the labels plus 1 - lam
        times that against the shuffled copy's (every output, the aux ones weighted)."""
        return lam * self(outputs, target) + (1 - lam) * self(outputs, other)


class Progress:
    """One status line on stderr: redrawn in place on a terminal, else every few steps."""

    def __init__(self, runtime: Runtime, every: int) -> None:
        self.active = runtime.main
        self.tty = sys.stderr.isatty()
        self.every = every
        self.width = 0

    def update(self, text: str, step: int, last: bool = False) -> None:
        if not self.active:
            return
        if self.tty:
            sys.stderr.write("\r" + text.ljust(self.width))
            self.width = len(text)
            if last:
                sys.stderr.write("\n")
        elif last or step % self.every == 0:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()


def save_checkpoint(path: str, state: dict) -> None:
    """Write to a temporary file beside `path`, then rename: never half a checkpoint."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".checkpoint.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def training_state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    scaler: torch.amp.GradScaler,
    position: tuple[int, int, int],
    args: argparse.Namespace,
) -> dict:
    """What a checkpoint holds; `position` is (optimizer steps, the epoch in progress,
    its batches done). Under --fsdp every process must call it: the full model and
    optimizer state are gathered from their shards (onto rank 0's CPU)."""
    step, epoch, done = position
    if args.fsdp:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_state_dict,
        )

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        model_state, optimizer_state = get_state_dict(model, optimizer, options=options)
    else:
        model_state, optimizer_state = model.state_dict(), optimizer.state_dict()
    return {
        "network": NETWORK,
        "model": model_state,
        "optimizer": optimizer_state,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict(),
        "step": step,
        "epoch": epoch,
        "batch": done,
        "rng": rng_state(),
        "args": vars(args),
    }


def resume(
    path: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    fsdp: bool = False,
) -> tuple[int, int, int]:
    """Load a checkpoint into the model, optimizer, scheduler and scaler and restore
    the RNG states: the (step, epoch, batch) position to continue from. A checkpoint
    written under --fsdp (its optimizer state keyed by parameter name) resumes with or
    without it, and one written without it under it."""
    if not os.path.exists(path):
        sys.exit(f"error: --resume: no checkpoint at {path}")
    state = torch.load(path, map_location=device, weights_only=False)
    if fsdp or state["args"].get("fsdp"):
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_state_dict,
        )

        optimizer_state = state["optimizer"]
        if not state["args"].get("fsdp"):  # keyed by position: by name, as FSDP's
            names = [name for name, _ in model.named_parameters()]
            optimizer_state = by_name(optimizer_state, names)
        set_state_dict(
            model,
            optimizer,
            model_state_dict=state["model"],
            optim_state_dict=optimizer_state,
            options=StateDictOptions(full_state_dict=True),
        )
    else:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    return state["step"], state["epoch"], state["batch"]


def by_name(state: dict, names: list[str]) -> dict:
    """An optimizer's state keyed by its parameters' positions (optimizer.state_dict())
    keyed by their names instead, as FSDP's full state is."""
    return {
        "state": {names[i]: value for i, value in state["state"].items()},
        "param_groups": [
            {**group, "params": [names[i] for i in group["params"]]}
            for group in state["param_groups"]
        ],
    }


def evaluate(model: nn.Module, loader, runtime: Runtime, args) -> tuple[float, float]:
    """(mean loss, accuracy) over the whole test set, summed over all processes (a
    language model's: per token)."""
    model.eval()
    loss_sum = correct = total = 0.0
    criterion = Loss(0.0, 0.0)
    # under FSDP every process runs as many batches (each gathers parameters): those
    # with fewer run the test set's first input until they have run as many
    missing = runtime.most(len(loader)) - len(loader) if args.fsdp else 0
    with torch.no_grad():
        for x, y in loader:
            x, y = to_device(x, y, runtime, args)
            with autocast(runtime, args):
                out = model(x)
            loss_sum += criterion(out, y).item() * y.numel()
            correct += (out.argmax(-1) == y.to(out.device)).sum().item()
            total += y.numel()
        for _ in range(missing):
            probe = loader.dataset.dataset[0][0].unsqueeze(0)
            with autocast(runtime, args):
                model(probe.to(runtime.device))
    loss_sum, correct, total = runtime.sum(loss_sum, correct, total)
    return loss_sum / max(total, 1), correct / max(total, 1)


def generate(model: nn.Module, prompt: Tensor, count: int, runtime: Runtime, args):
    """`count` ids after `prompt` (a context's worth), each the language model's most
    likely next one after the context ids before it (greedy decoding)."""
    model.eval()
    ids = prompt.long().tolist()
    context = len(ids)
    with torch.no_grad():
        for _ in range(count):
            x = torch.tensor([ids[-context:]], device=runtime.device)
            with autocast(runtime, args):
                out = model(x)
            out = out[0] if isinstance(out, tuple) else out
            ids.append(int(out[0, -1].argmax()))
    return ids[context:]


def to_device(x: Tensor, y: Tensor, runtime: Runtime, args) -> tuple[Tensor, Tensor]:
    x = x.to(runtime.device, non_blocking=True)
    if args.channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(runtime.device, non_blocking=True)


def autocast(runtime: Runtime, args):
    """fp16 on CUDA (with a GradScaler), bf16 on the CPU and under --fsdp (whose
    sharded gradients the scaler does not handle)."""
    fp16 = runtime.device.type == "cuda" and not args.fsdp
    dtype = torch.float16 if fp16 else torch.bfloat16
    return torch.autocast(runtime.device.type, dtype=dtype, enabled=args.amp)


def describe_data(args, train_set: Dataset, shape: tuple[int, ...]) -> str:
    if LANGUAGE_MODEL:
        return f"{args.data} data, {len(train_set)} windows of {shape[0]} + 1 ids"
    size = "x".join(str(s) for s in shape)
    return f"{args.data} data, {len(train_set)} examples of {size}"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.lr is None:
        args.lr = default_lr(args.batch_size)
    runtime = Runtime(args.device)
    random.seed(args.seed)
    shape = input_shape(args.input_size, INPUT_SHAPE, channels_first=True)
    train_set, test_set, classes = datasets_for(args, shape)
    model = build(args, runtime, shape, classes)
    params = sum(p.numel() for p in model.parameters())
    if args.batch_size % runtime.world:
        sys.exit(
            f"error: --batch-size {args.batch_size} is not divisible by {runtime.world}"
        )
    batch = args.batch_size // runtime.world
    sampler, loader, test_loader = data_loaders(
        args, runtime, train_set, test_set, batch
    )
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        sys.exit(f"error: {len(train_set)} examples make no batch of {args.batch_size}")
    total_steps = args.epochs * steps_per_epoch
    if args.steps is not None:
        total_steps = args.steps
    blocks = shard(model, runtime) if args.fsdp else 0

    optimizer = make_optimizer(args, model)
    # a language model's schedule counts optimizer steps (--steps stops it early)
    length = args.epochs * steps_per_epoch if LANGUAGE_MODEL else args.epochs
    scheduler = make_scheduler(args, optimizer, length)
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    per_step = LANGUAGE_MODEL and scheduler is not None and not plateau
    scaler = torch.amp.GradScaler(
        runtime.device.type,
        enabled=args.amp and runtime.device.type == "cuda" and not args.fsdp,
    )
    step = epoch = done = 0  # optimizer steps; the epoch in progress; its batches done
    if args.resume:
        step, epoch, done = resume(
            args.checkpoint,
            model,
            optimizer,
            scheduler,
            scaler,
            runtime.device,
            args.fsdp,
        )
        runtime.log(
            f"resumed from {args.checkpoint} at step {step} (epoch {epoch + 1})"
        )
    net: nn.Module = model
    if runtime.distributed and not args.fsdp:
        ids = [runtime.device.index] if runtime.device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=None if PLACED else ids)
    if args.compile:
        net = torch.compile(net)
    criterion = Loss(RECIPE["aux_weight"], RECIPE["label_smoothing"])

    saved = -1  # the step of the last checkpoint

    def checkpoint() -> None:
        nonlocal saved
        if saved == step or not (runtime.main or args.fsdp):
            return
        saved = step
        position = (step, epoch, done)
        state = training_state(model, optimizer, scheduler, scaler, position, args)
        if runtime.main:
            save_checkpoint(args.checkpoint, state)

    where = f"{runtime.device}"
    if runtime.distributed:
        how = f"FSDP over {blocks} blocks and the root, " if args.fsdp else ""
        where = f"{runtime.world} processes ({how}{runtime.backend}), rank 0 on {where}"
    runtime.log(
        f"{NETWORK}: {params:,} parameters; {describe_data(args, train_set, shape)}; "
        f"batch {args.batch_size}, {RECIPE['optimizer']} lr {args.lr:g}; {where}"
    )
    if LANGUAGE_MODEL:
        note_not_causal(CAUSAL)
    image_size = shape[-2:] if len(shape) == 3 else None
    cutout_size, mixup_alpha, note = batch_augmentations(
        RECIPE["augment"], image_size, token_ids=VOCAB is not None
    )
    if note:
        runtime.log(note)
    if cutout_size or mixup_alpha:
        runtime.log(describe_augmentations(cutout_size, mixup_alpha))
    every = args.log_every or max(1, steps_per_epoch // 10)
    progress = Progress(runtime, every)
    accuracy = None
    tested = -1  # the step of the last test
    while epoch < args.epochs and step < total_steps:
        net.train()
        sampler.set_epoch(epoch)
        sampler.skip = done * batch  # resuming part-way through an epoch
        seen = correct = loss_sum = 0.0  # examples (a language model's: tokens)
        started = time.perf_counter()
        for x, y in loader:
            x, y = to_device(x, y, runtime, args)
            rng = batch_random(args.seed, runtime.rank, step)
            if cutout_size:
                x = cutout(x, cutout_size, rng)
            lam, other = 1.0, y
            if mixup_alpha:
                x, other, lam = mixup(x, y, mixup_alpha, rng)
            with autocast(runtime, args):
                outputs = net(x)
                if mixup_alpha:
                    loss = criterion.mixed(outputs, y, other, lam)
                else:
                    loss = criterion(outputs, y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if per_step:
                scheduler.step()
            step += 1
            done += 1
            main_out = outputs[0] if isinstance(outputs, tuple) else outputs
            seen += y.numel()
            loss_sum += loss.item() * y.numel()
            # under mixup a prediction is right when it is the label that makes up the
            # larger part of the blend (as Keras' accuracy counts it on blended labels)
            counted = y if lam >= 0.5 else other
            correct += (main_out.argmax(-1) == counted.to(main_out.device)).sum().item()
            rate = seen * runtime.world / (time.perf_counter() - started)
            bar = "=" * (20 * done // steps_per_epoch)
            mean = loss_sum / seen
            if LANGUAGE_MODEL:
                figures = f"loss {mean:.4f} ppl {math.exp(min(mean, 50)):.2f} "
                figures += f"acc {100 * correct / seen:.1f}% {rate:.0f} tok/s"
            else:
                figures = f"loss {mean:.4f} acc {100 * correct / seen:.1f}% "
                figures += f"{rate:.0f} img/s"
            progress.update(
                f"epoch {epoch + 1}/{args.epochs} [{bar:<20}] {done}/{steps_per_epoch} "
                f"step {step} {figures}",
                step,
                last=done == steps_per_epoch or step == total_steps,
            )
            if step == total_steps:
                break
        if done < steps_per_epoch:  # stopped part-way by --steps
            break
        epoch, done = epoch + 1, 0
        loss_sum, seen = runtime.sum(loss_sum, seen)
        metric = loss_sum / max(seen, 1)
        if test_loader is not None:
            metric, accuracy = evaluate(model, test_loader, runtime, args)
            tested = step
            runtime.log(f"epoch {epoch}: {held_out_figures(metric, accuracy)}")
        if plateau:
            scheduler.step(metric)
        elif scheduler is not None and not per_step:
            scheduler.step()
        checkpoint()
    checkpoint()
    position = f"epoch {epoch + 1}, batch {done}" if done else f"end of epoch {epoch}"
    runtime.log(f"saved {args.checkpoint} at step {step} ({position})")
    if LANGUAGE_MODEL and test_loader is not None and tested != step:
        metric, accuracy = evaluate(model, test_loader, runtime, args)
        runtime.log(held_out_figures(metric, accuracy))
    elif accuracy is not None:
        runtime.log(f"test accuracy {accuracy:.2%}")
    write = LANGUAGE_MODEL and args.data.startswith("text:") and args.sample > 0
    if write and (runtime.main or args.fsdp):  # under FSDP every process runs it
        text = test_set if test_set is not None else train_set
        prompt = text[0][0]  # the test text's first window
        sample = generate(model, prompt, args.sample, runtime, args)
        runtime.log(f"sample after {decode(prompt[-24:].tolist())!r}:")
        runtime.log(f"  {decode(sample)!r}")
    runtime.close()


def held_out_figures(loss: float, accuracy: float) -> str:
    if LANGUAGE_MODEL:  # per token: the loss in nats, its exponential the perplexity
        perplexity = math.exp(min(loss, 50))
        return (
            f"test loss {loss:.4f} (perplexity {perplexity:.2f}), "
            f"test accuracy {accuracy:.2%}"
        )
    return f"test loss {loss:.4f}, test accuracy {accuracy:.2%}"
