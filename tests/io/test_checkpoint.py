"""Checkpoints (xpcnn/io/checkpoint.py): round trip, resume equivalence, atomic save, corrupt files."""

import json
import zipfile

import numpy as np
import pytest

import xpcnn as xc
from xpcnn import backend
from xpcnn.io import checkpoint as ckpt
from xpcnn.io.checkpoint import CheckpointError, load_checkpoint, read_metadata, save_checkpoint

xs = pytest.importorskip("array_api_strict")
STRICT = backend.Device.of(xs.zeros(1, device=xs.Device("device1")))  # stands in for a GPU on CPU-only CI


def small_model(seed=0, dtype="float32"):
    return xc.Sequential([
        xc.Convolutional((1, 8, 8), 3, 2, padding="same", bias="tied"), xc.ReLU(), xc.MaxPool2D(2),
        xc.Convolutional((2, 4, 4), 3, 2), xc.Tanh(),
        xc.Flatten(), xc.Dense(2 * 2 * 2, 3), xc.Softmax(),
    ], seed=seed, dtype=dtype)


def data(n=24):
    rng = np.random.default_rng(5)
    x = rng.random((n, 1, 8, 8), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]
    return x, y


def train(model, epochs, optimizer=None):
    x, y = data()
    model.fit(x, y, loss="categorical_cross_entropy", epochs=epochs, batch_size=5, optimizer=optimizer)
    return model


def params(model):
    return {f"{i}.{k}": backend.to_numpy(v) for i, layer in enumerate(model.layers) for k, v in layer.params.items()}


def assert_same_params(a, b, **tol):
    pa, pb = params(a), params(b)
    assert pa.keys() == pb.keys()
    for key in pa:
        assert pa[key].dtype == pb[key].dtype, key
        np.testing.assert_allclose(pa[key], pb[key], err_msg=key, **tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_restores_layers_parameters_optimizer_epoch_rng_and_dtype(tmp_path, dtype):
    model = train(small_model(dtype=dtype), 2, xc.Adam(0.01))
    path = tmp_path / "model.npz"
    save_checkpoint(path, model, extra={"note": "hello"})
    loaded = load_checkpoint(path)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    assert [layer.config() for layer in loaded.layers] == [layer.config() for layer in model.layers]
    assert loaded.dtype == dtype and loaded.epoch == 2 and loaded.history == model.history
    assert_same_params(loaded, model, rtol=0, atol=0)
    assert type(loaded.optimizer) is xc.Adam and loaded.optimizer.iterations == model.optimizer.iterations
    assert loaded.optimizer.config() == model.optimizer.config()
    assert loaded.optimizer.slots.keys() == model.optimizer.slots.keys()
    assert backend.rng_state(loaded.rng) == backend.rng_state(model.rng)
    x, _ = data()
    np.testing.assert_array_equal(backend.to_numpy(loaded.predict(x)), backend.to_numpy(model.predict(x)))
    assert read_metadata(path)["extra"] == {"note": "hello"}


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_checkpoints_keep_the_stride_and_the_engine(tmp_path, stride):
    model = xc.Sequential([xc.Convolutional((1, 9, 9), 3, 2, stride=stride, engine="signal"), xc.Flatten()], seed=0)
    x = np.random.default_rng(1).random((2, 1, 9, 9), dtype=np.float32)
    save_checkpoint(tmp_path / "m.npz", model)
    loaded = load_checkpoint(tmp_path / "m.npz")
    conv_layer = loaded.layers[0]
    assert conv_layer.stride == stride and conv_layer.engine_name == "signal"
    assert conv_layer.config() == model.layers[0].config()
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), atol=1e-6)


def test_npz_holds_only_plain_arrays_and_loads_without_pickle(tmp_path):
    path = tmp_path / "model.npz"
    save_checkpoint(path, train(small_model(), 1, xc.SGD(0.1, momentum=0.9)))
    with np.load(path, allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)
        assert "param/0/kernels" in npz.files and "optim/0.kernels.velocity" in npz.files
        meta = json.loads(str(npz["meta"]))
    assert meta["format"] == "xpcnn-checkpoint" and meta["layers"][2] == {
        "class": "MaxPool2D", "config": {"pool_size": 2, "input_shape": None}, "params": []}


@pytest.mark.parametrize("optimizer", [lambda: xc.SGD(0.05), lambda: xc.SGD(0.05, momentum=0.9), lambda: xc.Adam(0.01)])
def test_n_epochs_then_m_more_after_resume_equal_n_plus_m_epochs(tmp_path, optimizer):
    straight = train(small_model(seed=3), 4, optimizer())
    first = train(small_model(seed=3), 2, optimizer())
    save_checkpoint(tmp_path / "half.npz", first)
    resumed = train(load_checkpoint(tmp_path / "half.npz"), 2)
    assert resumed.epoch == 4 and resumed.optimizer.iterations == straight.optimizer.iterations
    assert_same_params(resumed, straight, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(resumed.history["loss"], straight.history["loss"], rtol=1e-6)


def test_checkpoint_from_another_device_loads_on_cpu_and_back(tmp_path):
    model = train(small_model().to(STRICT), 1, xc.Adam(0.01))
    save_checkpoint(tmp_path / "strict.npz", model)
    on_cpu = load_checkpoint(tmp_path / "strict.npz")
    assert on_cpu.device == backend.CPU and isinstance(on_cpu.layers[0].params["kernels"], np.ndarray)
    assert read_metadata(tmp_path / "strict.npz")["saved_on"] == STRICT.name
    assert_same_params(on_cpu, model, rtol=0, atol=0)
    save_checkpoint(tmp_path / "cpu.npz", on_cpu)
    back = load_checkpoint(tmp_path / "cpu.npz", device=STRICT)
    assert back.device == STRICT and all(backend.Device.of(v) == STRICT for v in back.optimizer.slots.values())
    train(back, 1)  # training goes on, on that device
    assert back.epoch == 2


@pytest.mark.gpu
def test_checkpoint_saved_on_cuda_loads_on_cpu(tmp_path):
    pytest.importorskip("cupy")
    try:
        cuda = backend.get_device("cuda")
    except backend.DeviceError as exc:
        pytest.skip(str(exc))
    model = train(small_model().to(cuda), 1, xc.Adam(0.01))
    save_checkpoint(tmp_path / "gpu.npz", model)
    assert_same_params(load_checkpoint(tmp_path / "gpu.npz", "cpu"), model, rtol=0, atol=0)
    assert load_checkpoint(tmp_path / "gpu.npz", "cuda").device == cuda


def test_interrupted_save_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    model = train(small_model(), 1)
    save_checkpoint(path, model)
    before = path.read_bytes()

    def dying_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt.np, "savez", dying_savez)
    train(model, 1)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model)
    assert path.read_bytes() == before and load_checkpoint(path).epoch == 1
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary file left behind


def corrupt(tmp_path, how):
    path = tmp_path / "bad.npz"
    save_checkpoint(path, train(small_model(), 1, xc.Adam(0.01)))
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["meta"]))
    how(path, arrays, meta)
    return path


def rewrite(path, arrays, meta=None):
    if meta is not None:
        arrays["meta"] = np.array(json.dumps(meta))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


CORRUPTIONS = {
    "truncated": (lambda p, a, m: p.write_bytes(p.read_bytes()[:500]), "corrupt or truncated checkpoint"),
    "not a zip": (lambda p, a, m: p.write_bytes(b"hello world"), "not an .npz checkpoint"),
    "pickled object": (lambda p, a, m: rewrite(p, {**a, "evil": np.array([{"x": 1}], dtype=object)}),
                       "pickled Python objects; refused"),
    "missing parameter": (lambda p, a, m: rewrite(p, {k: v for k, v in a.items() if k != "param/6/weights"}),
                          "missing array 'param/6/weights'"),
    "wrong shape": (lambda p, a, m: rewrite(p, {**a, "param/6/bias": np.zeros(4, np.float32)}),
                    r"'param/6/bias' has shape \(4,\), the model needs \(3,\)"),
    "wrong dtype": (lambda p, a, m: rewrite(p, {**a, "param/6/bias": np.zeros(3, np.float64)}),
                    "'param/6/bias' has dtype float64"),
    "unknown layer": (lambda p, a, m: rewrite(p, a, {**m, "layers": [{"class": "os.system", "config": {}}]}),
                      "unknown layer class 'os.system'"),
    "bad config": (lambda p, a, m: rewrite(p, a, {**m, "layers": [{"class": "Dense", "config": {"size": 3}}]}),
                   "cannot rebuild Dense"),
    "no meta": (lambda p, a, m: rewrite(p, {k: v for k, v in a.items() if k != "meta"}), "no 'meta' string"),
    "other format": (lambda p, a, m: rewrite(p, a, {**m, "format": "keras"}), "not an xpcnn checkpoint"),
    "newer version": (lambda p, a, m: rewrite(p, a, {**m, "version": 99}), "checkpoint version 99"),
    "missing slot": (lambda p, a, m: rewrite(p, {k: v for k, v in a.items() if k != "optim/0.kernels.m"}),
                     "missing optimizer slot 'optim/0.kernels.m'"),
    "stray parameter": (lambda p, a, m: rewrite(p, {**a, "param/1/extra": np.zeros(2, np.float32)}),
                        r"parameters \['param/1/extra'\] belong to no layer"),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corrupt_checkpoint_is_a_checkpoint_error_naming_the_file(tmp_path, name):
    how, message = CORRUPTIONS[name]
    path = corrupt(tmp_path, how)
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_missing_file_and_unwritable_folder_are_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "none.npz")
    with pytest.raises(CheckpointError, match="cannot write"):
        save_checkpoint(tmp_path / "no" / "such" / "dir.npz", small_model())


def test_saved_zip_is_a_valid_npz(tmp_path):
    save_checkpoint(tmp_path / "m.npz", small_model())
    assert zipfile.is_zipfile(tmp_path / "m.npz")
    assert load_checkpoint(tmp_path / "m.npz").optimizer is None


# -- BatchNorm's running statistics and Dropout's masks ------------------------------------------

def bn_model(seed=0, dtype="float32"):
    return xc.Sequential([
        xc.Convolutional((1, 8, 8), 3, 3, padding="same", bias="none"), xc.BatchNorm2D(3), xc.ReLU(), xc.AvgPool2D(2),
        xc.Dropout(0.3), xc.Flatten(), xc.Dense(48, 6), xc.BatchNorm1D(6), xc.ReLU(), xc.Dropout(0.5),
        xc.Dense(6, 3), xc.Softmax(),
    ], seed=seed, dtype=dtype)


def buffers(model):
    return {f"{i}.{k}": backend.to_numpy(v) for i, layer in enumerate(model.layers) for k, v in layer.buffers.items()}


def test_round_trip_keeps_batchnorm_running_statistics_and_the_dropout_layers(tmp_path):
    model = train(bn_model(), 2, xc.Adam(0.01))
    save_checkpoint(tmp_path / "bn.npz", model)
    with np.load(tmp_path / "bn.npz", allow_pickle=False) as npz:
        assert {"buffer/1/running_mean", "buffer/1/running_var", "buffer/7/running_var"} <= set(npz.files)
    loaded = load_checkpoint(tmp_path / "bn.npz")
    assert [layer.config() for layer in loaded.layers] == [layer.config() for layer in model.layers]
    saved, got = buffers(model), buffers(loaded)
    assert saved.keys() == got.keys() and len(saved) == 4
    for key in saved:
        np.testing.assert_array_equal(got[key], saved[key], err_msg=key)
    assert np.abs(saved["1.running_mean"]).max() > 0  # they moved: the check could fail
    x, _ = data()
    np.testing.assert_array_equal(backend.to_numpy(loaded.predict(x)), backend.to_numpy(model.predict(x)))
    on_strict = load_checkpoint(tmp_path / "bn.npz", device=STRICT)
    assert all(backend.Device.of(v) == STRICT for layer in on_strict.layers for v in layer.buffers.values())


@pytest.mark.parametrize("optimizer", [lambda: xc.SGD(0.05, momentum=0.9), lambda: xc.Adam(0.01)])
def test_resume_with_batchnorm_and_dropout_is_exact_same_masks_same_statistics(tmp_path, optimizer):
    straight = train(bn_model(seed=3), 4, optimizer())
    first = train(bn_model(seed=3), 2, optimizer())
    save_checkpoint(tmp_path / "half.npz", first)
    resumed = train(load_checkpoint(tmp_path / "half.npz"), 2)
    assert_same_params(resumed, straight, rtol=0, atol=0)
    for key, value in buffers(straight).items():
        np.testing.assert_array_equal(buffers(resumed)[key], value, err_msg=key)
    assert resumed.history["loss"] == straight.history["loss"]
    # the generator's state is what carries the masks: another state gives other parameters
    other = load_checkpoint(tmp_path / "half.npz")
    other.rng = backend.new_rng(12345)
    train(other, 2)
    assert not np.array_equal(params(other)["6.weights"], params(straight)["6.weights"])


def test_a_missing_or_stray_buffer_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "bn.npz"
    save_checkpoint(path, train(bn_model(), 1))
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    rewrite(path, {k: v for k, v in arrays.items() if k != "buffer/1/running_var"})
    with pytest.raises(CheckpointError, match="missing array 'buffer/1/running_var'"):
        load_checkpoint(path)
    rewrite(path, {**arrays, "buffer/0/running_mean": np.zeros(3, np.float32)})
    with pytest.raises(CheckpointError, match=r"\['buffer/0/running_mean'\] belong to no layer"):
        load_checkpoint(path)
