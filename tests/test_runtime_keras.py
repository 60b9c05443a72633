"""netdsl/runtime/keras_train.py, the Keras train.py's runtime, called in-process.

Its header names (RECIPE, model_module, ...) are set to those train.py would define
for a tiny network (test_runtime_common.load_header). tests/test_keras_train.py runs
generated scripts end to end (the imagefolder data source there too).
"""

from __future__ import annotations

import json

import pytest
from conftest import compile_text, need
from test_keras_train import images
from test_runtime_common import TINY, load_header, stand_ins
from test_runtime_torch import LM

keras = need("keras")
np = need("numpy")
rk = pytest.importorskip("netdsl.runtime.keras_train")


@pytest.fixture
def header(tmp_path, monkeypatch):
    """Set the runtime's header names to train.py's for TINY."""
    names = load_header("keras", compile_text(TINY), tmp_path, "tiny_keras")
    for name in stand_ins("keras_train"):
        monkeypatch.setattr(rk, name, names[name])
    return names


def test_flags_default_to_the_recipe(header):
    a = rk.parse_args([])
    assert (a.epochs, a.batch_size, a.lr, a.momentum, a.weight_decay) == (2, 8, 0.1, 0.9, 1e-4)
    assert (a.data, a.checkpoint, a.verbose) == ("synthetic", "tiny.keras", None)


def test_synthetic_data_is_seeded(header):
    a = rk.parse_args(["--samples", "10"])
    (x, y), test, classes = rk.synthetic(a, (8, 8, 3), 3)
    assert x.shape == (10, 8, 8, 3) and x.dtype == np.float32 and test is None
    assert classes == 3 and set(y) <= {0, 1, 2}
    assert np.array_equal(x, rk.synthetic(a, (8, 8, 3), 3)[0][0])


def test_digits_resized_to_the_input_or_flattened(header):
    need("sklearn")
    (x, y), (tx, ty), classes = rk.digits((16, 16, 3))
    assert (x.shape, tx.shape, classes) == ((1437, 16, 16, 3), (360, 16, 16, 3), 10)
    assert abs(float(x.mean())) < 0.1 and len(y) == 1437 and len(ty) == 360
    (flat, _), _, _ = rk.digits((70,))
    assert flat.shape == (1437, 70)


def test_image_folder_in_process(header, tmp_path):
    need("tensorflow")
    folder = images(tmp_path / "images")
    train, test, classes = rk.image_folder(str(folder), (8, 8, 3), 4, 0)
    assert classes == 2
    x, y = next(iter(train))
    assert tuple(x.shape) == (4, 8, 8, 3) and sorted(set(y.numpy())) <= [0, 1]
    # normalized with ImageNet's statistics: pixels 0..255 land within about -2.2..2.7
    assert -2.2 <= float(x.numpy().min()) and float(x.numpy().max()) <= 2.7
    assert sum(len(b[1]) for b in test) == 6
    only_train, none, _ = rk.image_folder(str(folder / "train"), (8, 8, 3), 4, 0)
    assert none is None and sum(len(b[1]) for b in only_train) == 6
    with pytest.raises(SystemExit, match="cannot give images of 2 channels"):
        rk.image_folder(str(folder), (8, 8, 2), 4, 0)
    with pytest.raises(SystemExit, match=r"needs an image input \(H x W x C\)"):
        rk.image_folder(str(folder), (64,), 4, 0)


def test_targets_are_one_hot_for_every_output():
    one = rk.targets(np.array([0, 2]), 3, 1)
    assert np.array_equal(one, [[1, 0, 0], [0, 0, 1]])
    main, aux = rk.targets(np.array([0, 2]), 3, 2)
    assert np.array_equal(main, aux) and np.array_equal(main, one)


def test_the_recipes_schedule_with_warmup(header):
    a = rk.parse_args([])
    callback = rk.schedule_callback(a, "loss", a.epochs)
    rates = [callback.schedule(epoch, 0.0) for epoch in range(3)]
    assert rates == pytest.approx([0.01, 0.1, 0.05])  # as the PyTorch script's


def test_the_recipes_optimizer_and_its_l2(header, monkeypatch):
    a = rk.parse_args([])
    sgd = rk.make_optimizer(a)
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.nesterov is False
    model = rk.build((8, 8, 3), 3)
    assert len(model.outputs) == 2  # the aux head, for training
    rk.add_weight_decay(model, a)
    assert all(v.regularizer is not None for v in model.trainable_weights)
    monkeypatch.setitem(rk.RECIPE, "optimizer", "adamw")
    assert isinstance(rk.make_optimizer(a), keras.optimizers.AdamW)


def test_build_at_another_size_sets_the_model_files_input_shape(header, monkeypatch):
    model_module = header["model_module"]
    monkeypatch.setattr(model_module, "INPUT_SHAPE", model_module.INPUT_SHAPE)
    model = rk.build((12, 12, 3), 3)
    assert model.input_shape == (None, 12, 12, 3) and model_module.INPUT_SHAPE == (12, 12, 3)
    monkeypatch.setattr(rk, "CLASSES_PARAM", None)
    with pytest.raises(SystemExit, match="error: 4 classes but the network has 3 outputs"):
        rk.build((8, 8, 3), 4)


def test_epoch_record_and_stop_after(tmp_path, header):
    record = rk.EpochRecord(str(tmp_path / "a.keras.json"))
    record.on_epoch_end(1)
    assert json.loads((tmp_path / "a.keras.json").read_text()) == {"network": "tiny", "epoch": 2}
    assert not (tmp_path / "a.keras.json.tmp").exists()
    stop = rk.StopAfter(2)
    stop.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    stop.model.stop_training = False  # as fit() sets it
    stop.on_train_batch_end(0)
    assert not stop.model.stop_training
    stop.on_train_batch_end(1)
    assert stop.model.stop_training


# ---- token ids: language models -----------------------------------------------------------


@pytest.fixture
def lm(tmp_path, monkeypatch):
    """The runtime's header names set to train.py's for test_runtime_torch.LM."""
    names = load_header("keras", compile_text(LM), tmp_path, "lm_keras")
    for name in stand_ins("keras_train"):
        monkeypatch.setattr(rk, name, names[name])
    return names


def test_a_text_in_windows_each_target_the_next_byte(lm, tmp_path):
    assert (rk.VOCAB, rk.LANGUAGE_MODEL, rk.CAUSAL) == (256, True, True)
    path = tmp_path / "t.txt"
    path.write_bytes(bytes(range(200)))  # 180 to train on, 20 held out
    a = rk.parse_args(["--data", f"text:{path}"])
    (x, y), (tx, ty), classes = rk.text_windows(a, "text", str(path), 8)
    assert (x.shape, y.shape, tx.shape, classes) == ((22, 8), (22, 8), (2, 8), 256)
    assert x.dtype == y.dtype == np.int32
    assert x[1].tolist() == list(range(8, 16)) and y[1].tolist() == list(range(9, 17))
    assert ty[1].tolist() == list(range(189, 197))
    assert rk.targets(y, classes, 1) is y  # ids, not one-hot
    (x, y), test, _ = rk.text_windows(rk.parse_args(["--samples", "5"]), "synthetic", "", 8)
    assert x.shape == (5, 8) and test is None and np.array_equal(x[:, 1:], y[:, :-1])


def test_a_language_model_compiles_with_a_loss_per_position(lm):
    a = rk.parse_args([])
    model = rk.build((8,), 256)
    rk.compile_model(model, a, 256)
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (2, 8)), rng.integers(0, 256, (2, 8))
    logits = keras.ops.convert_to_numpy(model(x))
    shifted = logits - logits.max(-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    expected = -np.take_along_axis(log_p, y[..., None], -1).mean()
    assert float(model.evaluate(x, y, verbose=0, return_dict=True)["loss"]) == (
        pytest.approx(expected, rel=1e-4)
    )


def test_a_language_models_schedule_counts_steps(lm):
    """cosine over the steps of all epochs, after a warm-up of --warmup steps."""
    a = rk.parse_args(["--warmup", "2", "--lr", "1.0"])
    callback = rk.schedule_callback(a, "loss", 4, first_step=0)
    callback.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    callback.model.optimizer = keras.optimizers.SGD(1.0)
    seen = []
    for batch in range(4):
        callback.on_train_batch_begin(batch)
        seen.append(float(callback.model.optimizer.learning_rate))
    assert seen == pytest.approx([0.1, 0.55, 1.0, 0.8535534])  # as PyTorch's
    assert rk.schedule_callback(a, "loss", 4, first_step=3).step == 3  # resumed


def test_greedy_generation_takes_the_most_likely_next_id(lm):
    def echo(x, training=False):  # predicts the id after its last input, plus one
        return np.eye(256)[(np.asarray(x) + 1) % 256]

    assert rk.generate(echo, np.arange(8, dtype=np.uint8), 5) == [8, 9, 10, 11, 12]
