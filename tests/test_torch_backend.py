"""The PyTorch backend (issue #3): generated modules for every zoo file.

Each generated module must import, hold exactly the inferred parameters, and,
on a real forward pass, give every layer the output shape the compiler
inferred (forward hooks, compared in execution order: tests/backends.py). The files are ruff
clean, byte-for-byte deterministic, place parts on their annotated devices,
and keep torchvision's state_dict order so reference weights load by order.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import warnings
from functools import cache

import pytest
from backends import check_torch as check_network
from backends import load_source as load
from conftest import ARCHITECTURES, compile_text, need
from hypothesis import HealthCheck, given, settings
from strategies import programs

from netdsl import compile_file
from netdsl.emit.torch import TorchEmitter
from netdsl.errors import NetdslError

torch = need("torch")
nn = torch.nn

ZOO = sorted(p.stem for p in ARCHITECTURES.glob("*.net"))
# spatial sizes tried, smallest first, to keep the forward passes cheap
SIZES = (32, 64, 96, 128, 160, 224, 299)
# zoo files also trained for one step (backward through every in-place op)
BACKWARD = {
    "resnet18",
    "densenet121",
    "googlenet",
    "inception_resnet_v2",
    "mobilenet",
    "squeezenet1_1",
    "se_resnet50",
    "xception",
    "resnet_cifar",
    "highway",
    "alexnet",
}


def emit(net) -> str:
    return TorchEmitter().emit_model(net)


@cache
def small_network(name: str):
    """The zoo file at the smallest input size it allows (its own when it is small)."""
    path = ARCHITECTURES / f"{name}.net"
    net = compile_file(path)
    shape = next(iter(net.inputs.values())).out_shape
    if len(shape) != 3:
        return net
    for size in SIZES:
        if size >= min(shape[1:]):
            break
        try:
            return compile_file(path, input_shape=(shape[0], size, size))
        except NetdslError:
            continue
    return net


@pytest.mark.filterwarnings("ignore:this machine has")  # alexnet's GPUs, on a CPU
@pytest.mark.parametrize("name", ZOO)
def test_zoo_module_matches_the_inferred_network(name):
    check_network(small_network(name), backward=name in BACKWARD)


@pytest.mark.slow
def test_eval_mode_drops_train_outputs_and_training_returns_them():
    net = compile_file(ARCHITECTURES / "googlenet.net", input_shape=(3, 64, 64))
    source = emit(net)
    forward = source[source.index("class Googlenet(") :]
    # the aux heads are computed where they tap the flow, only while training
    assert "        if self.training:\n            aux1 = self.aux_head1(x)" in forward
    assert "            return x, aux1, aux2\n        return x\n" in forward
    model = load(source).build_model(classes=7)
    x = torch.randn(2, 3, 64, 64)
    assert model.eval()(x).shape == (2, 7)
    main, aux1, aux2 = model.train()(x)
    assert main.shape == aux1.shape == aux2.shape == (2, 7)


# ---- files: formatting, determinism ---------------------------------------------------


def generated_files(tmp_root: str) -> list[str]:
    """Every zoo file's model and train.py, written by the CLI."""
    from netdsl.cli import main

    paths = []
    for name in ZOO:
        folder = os.path.join(tmp_root, name)
        os.makedirs(folder, exist_ok=True)
        model = os.path.join(folder, f"{name}.py")
        assert (
            main(
                [
                    "compile",
                    str(ARCHITECTURES / f"{name}.net"),
                    "--target",
                    "torch",
                    "-o",
                    model,
                    "--train",
                    "-q",
                ]
            )
            == 0
        )
        paths += [model, os.path.join(folder, "train.py")]
    return paths


def ruff() -> str | None:
    found = shutil.which("ruff")
    if found is None and not os.environ.get("CI"):
        pytest.skip("ruff is not installed")
    assert found, "CI must have ruff"
    return found


@pytest.mark.slow
def test_generated_files_pass_ruff(tmp_path):
    exe = ruff()
    paths = generated_files(str(tmp_path))
    for path in paths:
        ast.parse(open(path).read())
    check = subprocess.run(
        [exe, "check", "--isolated", str(tmp_path)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = subprocess.run(
        [exe, "format", "--isolated", "--check", "--diff", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_compiling_twice_gives_identical_bytes():
    for name in (
        "alexnet",
        "googlenet",
        "inception_v3",
        "densenet121",
        "fractalnet",
        "resnet_cifar",
        "mobilenet",
        "xception",
        "highway",
    ):
        first = emit(compile_file(ARCHITECTURES / f"{name}.net"))
        second = emit(compile_file(ARCHITECTURES / f"{name}.net"))
        assert first == second, name


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_random_programs(text):
    """Random valid programs: ruff-clean modules whose layers have the inferred shapes."""
    net = compile_text(text)
    check_network(net, backward=True)
    exe = shutil.which("ruff")
    if exe:
        done = subprocess.run(
            [exe, "format", "--isolated", "--check", "--stdin-filename", "model.py", "-"],
            input=emit(net),
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr


# ---- placement -------------------------------------------------------------------------


ALEXNET_FORWARD = """\
    def forward(self, x: Tensor) -> Tensor:
        out = self.lower1(x.to(self.gpu0))  # 128x13x13
        x = self.lower2(x.to(self.gpu1))  # 128x13x13
        out = torch.cat([out, x.to(self.gpu0)], 1)  # 256x13x13
        out2 = self.upper1(out)  # 128x6x6
        out = self.upper2(out.to(self.gpu1))  # 128x6x6
        out2 = torch.cat([out2, out.to(self.gpu0)], 1)  # 256x6x6
        out2 = self.flatten(out2)  # 9216
        out2 = self.fc6(out2)  # 4096
        out2 = self.fc7(out2)  # 4096
        out2 = self.fc8(out2)  # 1000
        return out2
"""


def test_alexnet_two_gpu_split():
    net = compile_file(ARCHITECTURES / "alexnet.net")
    source = emit(net)
    assert 'DEVICES = ("cuda:0", "cuda:1")' in source
    assert ALEXNET_FORWARD in source
    # one class per block: the towers share theirs, created on their GPU
    assert source.count("class Lower(") == 1 and "class Lower2" not in source
    assert "self.lower2 = Lower(3).to(self.gpu1)" in source
    # the blocks themselves know nothing of devices
    lower = source[source.index("class Lower(") : source.index("class Upper(")]
    assert ".to(" not in lower and "placement" not in lower
    module = load(source, "alexnet")
    # "meta" stands in for a second device: parts are created where they belong
    model = module.build_model(devices={"cuda:0": "cpu", "cuda:1": "meta"})
    assert model.lower1.conv1.weight.device.type == "cpu"
    assert model.lower2.conv1.weight.device.type == "meta"
    assert model.fc6.hidden1.fc.weight.device.type == "cpu"
    assert model.fc6.hidden2.fc.weight.device.type == "meta"
    assert model.fc8.weight.device.type == "cpu"


@pytest.mark.slow
def test_placement_falls_back_and_says_so_once():
    source = emit(compile_file(ARCHITECTURES / "alexnet.net", params={"classes": 10}))
    module = load(source, "alexnet_fallback")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        module.build_model()
        module.build_model()
    gpus = torch.cuda.device_count()
    if gpus >= 2:
        assert not caught
        return
    assert len(caught) == 1, [str(w.message) for w in caught]
    assert "cuda:1 on" in str(caught[0].message)
    model = module.build_model(devices={"cuda:0": "cpu", "cuda:1": "cpu"}).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 227, 227)).shape == (1, 10)


PLACED_BLOCKS = """\
block tower(c) = conv3 c + bn + relu + conv3 c @gpu(1) + relu
block pair(c) = concat(conv1 c, tower(c) @cpu)
network placed(classes=3):
    input 3x16x16
    conv3 8 + pair(8) + ([tower(16)]*2) @gpu(1)
    output aux @train = gap + fc classes @gpu(0)
    [conv3 8 @gpu(2) + relu]*2 + gap + fc classes
"""


def test_placement_inside_blocks_and_repeats():
    """Classes with parts on several devices get the placement (and their own default
    device); parts land where the annotations say, the rest on the default GPU."""
    net = compile_text(PLACED_BLOCKS)
    source = emit(net)
    assert 'DEVICES = ("cuda:0", "cuda:1", "cuda:2", "cpu")' in source
    assert "self.tower = Tower(in_channels, c, placement=placement, device=self.host)" in source
    module = load(source, "placed")
    model = module.build_model(devices={name: "cpu" for name in module.DEVICES})
    assert sum(p.numel() for p in model.parameters()) == net.total_params
    x = torch.randn(2, 3, 16, 16)
    assert model.eval()(x).shape == (2, 3)
    main, aux = model.train()(x)
    assert main.shape == aux.shape == (2, 3)

    stand_in = {"cuda:0": "cpu", "cuda:1": "meta", "cuda:2": "meta", "cpu": "cpu"}
    spread = module.build_model(devices=stand_in)
    params = iter(spread.parameters())  # registration order is DSL order
    for node in (n for n in net.nodes() if n.params):
        expected = stand_in[node.device or "cuda:0"]
        total = 0
        while total < node.params:
            p = next(params)
            total += p.numel()
            assert p.device.type == expected, (node.id, node.device)
    assert next(params, None) is None


def test_unplaced_networks_have_no_device_code():
    source = emit(compile_file(ARCHITECTURES / "resnet50.net"))
    assert ".to(" not in source and "DEVICES" not in source and "warnings" not in source


# ---- state_dict order and load_by_order ------------------------------------------------


def torchvision_resnet50_entries() -> list[tuple[str, tuple]]:
    """(name, shape) of torchvision's resnet50 state_dict, written out by hand."""
    entries: list[tuple[str, tuple]] = []

    def bn(prefix: str, c: int) -> None:
        entries.extend(
            [
                (f"{prefix}.weight", (c,)),
                (f"{prefix}.bias", (c,)),
                (f"{prefix}.running_mean", (c,)),
                (f"{prefix}.running_var", (c,)),
                (f"{prefix}.num_batches_tracked", ()),
            ]
        )

    entries.append(("conv1.weight", (64, 3, 7, 7)))
    bn("bn1", 64)
    inplanes = 64
    for stage, (planes, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], 1):
        for b in range(blocks):
            p = f"layer{stage}.{b}"
            entries.append((f"{p}.conv1.weight", (planes, inplanes, 1, 1)))
            bn(f"{p}.bn1", planes)
            entries.append((f"{p}.conv2.weight", (planes, planes, 3, 3)))
            bn(f"{p}.bn2", planes)
            entries.append((f"{p}.conv3.weight", (planes * 4, planes, 1, 1)))
            bn(f"{p}.bn3", planes * 4)
            if b == 0:
                entries.append((f"{p}.downsample.0.weight", (planes * 4, inplanes, 1, 1)))
                bn(f"{p}.downsample.1", planes * 4)
            inplanes = planes * 4
    entries += [("fc.weight", (1000, 2048)), ("fc.bias", (1000,))]
    return entries


@cache
def resnet50_module():
    return load(emit(compile_file(ARCHITECTURES / "resnet50.net")), "resnet50")


def test_resnet50_state_dict_follows_torchvision_order():
    model = resnet50_module().build_model()
    ours = [(name, tuple(t.shape)) for name, t in model.state_dict().items()]
    reference = torchvision_resnet50_entries()
    assert len(ours) == len(reference) == 320
    for index, ((name, shape), (ref_name, ref_shape)) in enumerate(zip(ours, reference)):
        assert shape == ref_shape, (index, name, ref_name)
        assert name.rsplit(".", 1)[1] == ref_name.rsplit(".", 1)[1], (index, name, ref_name)


def test_load_by_order_loads_and_names_the_first_mismatch():
    from netdsl.weights import load_by_order

    model = resnet50_module().build_model()
    torch.manual_seed(1)
    reference = {
        name: (torch.randn(shape) if shape else torch.tensor(7))
        for name, shape in torchvision_resnet50_entries()
    }
    mapping = load_by_order(model, reference)
    assert mapping["stem.conv_bn.conv.weight"] == "conv1.weight"
    assert torch.equal(model.stem.conv_bn.conv.weight, reference["conv1.weight"])
    assert torch.equal(model.fc.bias, reference["fc.bias"])
    assert model.stem.conv_bn.bn.num_batches_tracked.item() == 7

    bad = dict(reference)
    bad["layer1.0.conv2.weight"] = torch.zeros(64, 64, 1, 1)
    with pytest.raises(ValueError) as e:
        load_by_order(model, bad)
    message = str(e.value)
    assert message.startswith("entry 12: ")
    assert "'stage1.bottleneck.conv_bn2.conv.weight' is 64x64x3x3" in message
    assert "'layer1.0.conv2.weight' is 64x64x1x1" in message

    short = dict(list(reference.items())[:-1])
    with pytest.raises(
        ValueError,
        match=r"entry 319: the model has 'fc.bias' 1000 but the "
        r"reference has only 319 entries",
    ):
        load_by_order(model, short)


@pytest.mark.slow
def test_model_file_runs_as_a_script(tmp_path):
    path = tmp_path / "lenet.py"
    path.write_text(emit(compile_file(ARCHITECTURES / "lenet5.net")))
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Lenet5: 61,706 parameters, output (1, 10)"


def test_a_repeat_with_an_index_becomes_a_loop_that_follows_the_parameters():
    """`[unit(c, ...) for i in range(n)]` is a loop over `i` in the generated class, so
    build_model(n=...) builds another depth, as the .net file would."""
    net = compile_text("""
        block units(c, n, s=1) = [conv (c + i) k=3 s=(if i == 0 then s else 1) p=1 for i in range(n)]
        network n(n=3):
            input 3x16x16
            units(4, n, s=2) + gap + fc 10
    """)
    source = emit(net)
    assert "for i in range(n):" in source
    module = load(source, "indexed")
    check_network(net)
    for depth in (1, 5):
        deeper = compile_text(
            """
            block units(c, n, s=1) = [conv (c + i) k=3 s=(if i == 0 then s else 1) p=1 for i in range(n)]
            network n(n=3):
                input 3x16x16
                units(4, n, s=2) + gap + fc 10
        """,
            params={"n": depth},
        )
        model = module.build_model(n=depth)
        assert sum(p.numel() for p in model.parameters()) == deeper.total_params


def test_instances_that_differ_only_in_their_activation_compute_their_own():
    """A block given relu in some places and hardswish in others, on both sides of a
    conditional, against a module written by hand. Shape and cross-target checks cannot see
    an activation taken from another instance (both targets share the class model); the
    weight tests against torchvision can, and this one can in the main environment."""
    net = compile_text("""
        block body(c, act) = conv1 c + bn + act
        block unit(c, s, act) =
            if s == 1 and in.c == c then add(body(c, act), id) else body(c, act)
        network n:
            input 8x6x6
            unit(8, 1, relu) + unit(16, 1, relu) + unit(16, 1, hardswish)
            + unit(32, 1, hardswish) + gap + fc 3
    """)

    class Body(nn.Sequential):
        def __init__(self, cin, c, act):
            super().__init__(nn.Conv2d(cin, c, 1), nn.BatchNorm2d(c), act())

    class Unit(nn.Module):
        def __init__(self, cin, c, act):
            super().__init__()
            self.residual = cin == c
            self.body = Body(cin, c, act)

        def forward(self, x):
            return self.body(x) + x if self.residual else self.body(x)

    units = [(8, 8, nn.ReLU), (8, 16, nn.ReLU), (16, 16, nn.Hardswish), (16, 32, nn.Hardswish)]
    reference = nn.Sequential(
        *(Unit(*u) for u in units), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 3)
    ).eval()
    from netdsl.weights import load_by_order

    model = load(emit(net), "activations").build_model().eval()
    load_by_order(model, reference)
    x = torch.randn(2, 8, 6, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(model(x), reference(x), atol=1e-6)
