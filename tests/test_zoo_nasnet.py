"""NASNet-A (architectures/nasnet_mobile.net and nasnet_large.net) against the paper's stack.

Zoph et al., "Learning Transferable Architectures for Scalable Image Recognition" (CVPR 2018),
Fig. 2: the ImageNet network is a 3x3/2 conv, two reduction cells (the stem), then three stages
of N normal cells with a reduction cell before the second and the third. "N @ P" names N and
the P filters of the penultimate layer: the last normal cell concatenates 6 branches of width
P/24 x 4. The width doubles with every reduction: a normal cell of stage s outputs
6 x (P/24) x 2^(s-1) channels, a reduction cell 4 x its width, the stem cells 4 x P/96 and
4 x P/48. NASNet-A Mobile is 4 @ 1056 at 224x224, NASNet-A Large 6 @ 4032 at 331x331
(keras.applications.NASNetMobile and NASNetLarge; pytorchcv nasnet_4a1056 and nasnet_6a4032).
"""

from __future__ import annotations

import pytest
from conftest import need
from test_zoo import net

# name -> (N, P, stem filters, the map sizes: stem conv, stem cells 1 and 2, stages 2 and 3)
ROWS = {
    "nasnet_mobile": (4, 1056, 32, (111, 56, 28, 14, 7)),
    "nasnet_large": (6, 4032, 96, (165, 83, 42, 21, 11)),
}
# keras.applications' count_params() with weights=None: parameters and BatchNorm's moving
# mean and variance (tests/reference_figures.json, "keras_applications")
KERAS_COUNT_PARAMS = {"nasnet_mobile": 5_326_716, "nasnet_large": 88_949_818}
KERAS_MODELS = {"nasnet_mobile": "NASNetMobile", "nasnet_large": "NASNetLarge"}


def cells(network) -> dict:
    """The network's named values cK (cell K's output; c0 is the stem conv) -> shape (C, H, W)."""
    names = network.root.value_names
    found = {}
    for node in network.nodes():
        name = names.get(id(node), "")
        if name.startswith("c") and name[1:].isdigit():
            found[int(name[1:])] = tuple(int(d) for d in node.out_shape)
    return dict(sorted(found.items()))


def expected_cells(n: int, p: int, stem: int, sizes: tuple) -> list:
    w = p // 24
    shapes = [(stem, sizes[0], sizes[0]), (w, sizes[1], sizes[1]), (2 * w, sizes[2], sizes[2])]
    for stage in range(3):
        width, size = w * 2**stage, sizes[2 + stage]
        if stage:
            shapes.append((4 * width, size, size))  # the reduction cell
        shapes += [(6 * width, size, size)] * n
    return shapes


@pytest.mark.parametrize("name", list(ROWS))
def test_cells_follow_n_at_p(name):
    n, p, stem, sizes = ROWS[name]
    shapes = list(cells(net(name)).values())
    assert len(shapes) == 1 + 2 + 3 * n + 2
    assert shapes == expected_cells(n, p, stem, sizes)
    assert shapes[-1][0] == p  # the penultimate layer


@pytest.mark.parametrize("name", list(ROWS))
def test_normal_and_reduction_cells(name):
    """A normal cell concatenates 6 branches (Fig. 4, left), a reduction cell 4 (right)."""
    n = ROWS[name][0]
    network = net(name)
    joins = [len(node.inputs) for node in network.nodes() if node.op == "concat"]
    cell_joins = [k for k in joins if k in (4, 6)]
    assert cell_joins == [4, 4] + [6] * n + [4] + [6] * n + [4] + [6] * n


@pytest.mark.parametrize("name", list(ROWS))
def test_width_follows_the_penultimate_filters(name):
    n, p, stem, sizes = ROWS[name]
    shapes = list(cells(net(name, penultimate=2 * p)).values())
    assert shapes == expected_cells(n, 2 * p, stem, sizes)


@pytest.mark.parametrize("name", list(ROWS))
def test_params_and_buffers_are_keras_count_params(name):
    network = net(name)
    assert network.total_params + network.total_buffers == KERAS_COUNT_PARAMS[name]


def test_the_large_file_finds_the_mobile_files_blocks_from_any_directory(tmp_path, monkeypatch):
    """`use "nasnet_mobile.net"` is relative to nasnet_large.net, wherever netdsl runs: a zoo
    file is named architectures/NAME.net in messages, which is not where it is from tmp_path."""
    from conftest import ARCHITECTURES

    from netdsl import compile_file

    monkeypatch.chdir(tmp_path)
    network = compile_file(ARCHITECTURES / "nasnet_large.net")
    assert network.path == "architectures/nasnet_large.net"
    assert network.total_params == net("nasnet_large").total_params


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ROWS))
def test_keras_applications_count_params(name):
    """keras.applications builds NASNet without downloading (weights=None) and counts the same."""
    keras = need("keras")
    model = getattr(keras.applications, KERAS_MODELS[name])(weights=None)
    try:
        network = net(name)
        assert model.count_params() == network.total_params + network.total_buffers
        trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
        assert trainable == network.total_params
    finally:
        del model
        keras.backend.clear_session()
