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


# -- the reader's rules, one by one (mutmut's survivors, docs/mutation.md) ------------------------------------

def saved(tmp_path, model=None, name="m.npz"):
    """A trained small model's checkpoint: ``(path, arrays, meta)``."""
    path = tmp_path / name
    save_checkpoint(path, model if model is not None else train(small_model(), 1, xc.Adam(0.01)))
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return path, arrays, json.loads(str(arrays["meta"]))


def npy(version, header: str, data: bytes = b"") -> bytes:
    """A raw ``.npy`` member: magic, format ``version``, the header dict's text, then the data."""
    text = header.encode("latin1") + b"\n"
    size = (1, 2) if version == (1, 0) else (2, 4)
    length = len(text).to_bytes(size[1], "little")
    return b"\x93NUMPY" + bytes(version) + length + text + data


def zip_members(path, members: "dict[str, bytes]", compression=zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, raw in members.items():
            archive.writestr(name, raw)


def npz_bytes(arrays, versions=None) -> "dict[str, bytes]":
    """Each array as the ``.npy`` member ``np.savez`` writes, in the given header format version."""
    import io

    members = {}
    for key, value in arrays.items():
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, np.asanyarray(value), version=(versions or {}).get(key),
                                  allow_pickle=False)
        members[key + ".npy"] = buffer.getvalue()
    return members


def test_npy_members_in_header_versions_2_and_3_load_as_version_1_does(tmp_path):
    path, arrays, _ = saved(tmp_path)
    original = load_checkpoint(path)
    zip_members(path, npz_bytes(arrays, {"param/6/weights": (2, 0), "param/6/bias": (3, 0), "meta": (2, 0)}))
    assert_same_params(load_checkpoint(path), original, rtol=0, atol=0)


def refusal_of_bias_member(tmp_path, version, shape) -> "tuple[object, str]":
    """``(path, message)``: a saved checkpoint whose ``param/6/bias`` (3 float32 values) is written with
    this header ``version`` and ``shape``, loaded."""
    path, arrays, _ = saved(tmp_path)
    members = npz_bytes(arrays)
    members["param/6/bias.npy"] = npy(version, f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}",
                                      bytes(12))
    zip_members(path, members)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    return path, str(info.value)


@pytest.mark.parametrize("version", [(2, 1), (4, 0), (0, 0)])
def test_an_npy_header_version_numpy_does_not_define_is_refused_naming_the_member(tmp_path, version):
    path, message = refusal_of_bias_member(tmp_path, version, (3,))
    assert message == f"{path}: param/6/bias.npy: unknown .npy version {version}"


def test_a_negative_dimension_in_an_npy_header_is_refused_naming_it(tmp_path):
    path, message = refusal_of_bias_member(tmp_path, (1, 0), (-3,))
    assert message == f"{path}: param/6/bias.npy: bad shape (-3,)"


def test_a_member_of_zero_values_is_a_valid_array_and_is_read(tmp_path):
    path, arrays, _ = saved(tmp_path)
    rewrite(path, {**arrays, "notes": np.zeros((0, 4), np.float32)})  # not a parameter: read, then left alone
    assert ckpt._read(path)[1]["notes"].shape == (0, 4)
    assert load_checkpoint(path).epoch == 1


def test_a_parameter_stored_in_fortran_order_loads_with_its_values(tmp_path):
    path, arrays, _ = saved(tmp_path)
    weights = arrays["param/6/weights"]
    rewrite(path, {**arrays, "param/6/weights": np.asfortranarray(weights)})
    with zipfile.ZipFile(path) as archive:  # np.savez keeps the order: the header says fortran_order True
        assert b"'fortran_order': True" in archive.read("param/6/weights.npy")[:128]
    np.testing.assert_array_equal(backend.to_numpy(load_checkpoint(path).layers[6].params["weights"]), weights)


def test_the_metadata_lists_each_layers_parameters_and_buffers_by_name(tmp_path):
    path = tmp_path / "bn.npz"
    save_checkpoint(path, bn_model())
    layers = read_metadata(path)["layers"]
    assert [(entry["class"], entry["params"], entry.get("buffers")) for entry in layers[:2]] == [
        ("Convolutional", ["kernels"], None), ("BatchNorm2D", ["gamma", "beta"], ["running_mean", "running_var"])]


def test_a_loss_given_as_functions_is_saved_as_none_and_a_named_one_by_name(tmp_path):
    from xpcnn.losses import mse, mse_prime

    rng = np.random.default_rng(0)
    model = xc.Sequential([xc.Dense(3, 2)], seed=0)
    model.fit(rng.random((6, 3)), rng.random((6, 2)), loss=(mse, mse_prime), epochs=1, batch_size=3)
    save_checkpoint(tmp_path / "fn.npz", model)
    assert read_metadata(tmp_path / "fn.npz")["loss"] is None and load_checkpoint(tmp_path / "fn.npz").loss is None
    model.fit(rng.random((6, 3)), rng.random((6, 2)), loss="mse", epochs=1, batch_size=3)
    save_checkpoint(tmp_path / "named.npz", model)
    assert load_checkpoint(tmp_path / "named.npz").loss == "mse"


class Odd(xc.Layer):
    """The identity, with a configuration that JSON cannot hold (registered by the test that uses it)."""

    def __init__(self, value=None):
        super().__init__()
        self.value = value

    def forward(self, x, training=True):
        return x

    def backward(self, output_gradient, learning_rate=None):
        return output_gradient

    def config(self):
        return {"value": self.value}


class Unregistered(Odd):
    pass


def test_what_cannot_be_saved_is_one_error_naming_the_layer_or_the_extra(tmp_path, monkeypatch):
    from xpcnn.layers import registry

    path = tmp_path / "m.npz"
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(path, xc.Sequential([xc.Dense(3, 2), Unregistered()], seed=0))
    assert str(info.value) == (f"save_checkpoint: layer 1 Unregistered(value=None) ({__name__}.Unregistered) is "
                               f"not registered, so a checkpoint could not rebuild it; decorate its class with "
                               f"@xpcnn.register_layer")
    monkeypatch.setitem(registry.LAYERS, "Odd", Odd)
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(path, xc.Sequential([xc.Dense(3, 2), Odd({1, 2})], seed=0))
    assert str(info.value).startswith("save_checkpoint: layer 1 Odd: config() must return JSON values (numbers, "
                                      "strings, lists, dicts): Object of type set")
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(path, xc.Sequential([xc.Dense(3, 2), Odd(1)], seed=0), extra={"when": object()})
    assert str(info.value).startswith("save_checkpoint: the metadata is not JSON (Object of type object")
    assert str(info.value).endswith("); extra= must hold JSON values")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_is_one_checkpoint_error_with_the_systems_reason(tmp_path, monkeypatch):
    import errno
    import os

    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(tmp_path / "m.npz", small_model())
    assert str(info.value) == f"checkpoint {tmp_path / 'm.npz'}: cannot write (No space left on device)"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("key, value", [("epoch", -1), ("epoch", True), ("epoch", 1.0), ("history", {"loss": 3}),
                                        ("history", []), ("layers", {}), ("rng_state", None)])
def test_metadata_of_the_wrong_kind_is_named(tmp_path, key, value):
    path, arrays, meta = saved(tmp_path)
    rewrite(path, arrays, {**meta, key: value})
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(info.value) == f"{path}: incomplete or corrupt checkpoint metadata ({key!r} is {value!r})"


def test_load_model_loads_on_the_device_it_is_given(tmp_path):
    path, _, _ = saved(tmp_path)
    assert xc.load_model(path, device=STRICT).device == STRICT
    assert xc.load_model(path).device == backend.CPU


@pytest.mark.parametrize("key", ["0.kernels", "x.kernels.m", "8.weights.m", "7.weights.m", "6.nothing.m"])
def test_an_optimizer_slot_named_for_no_parameter_is_refused_naming_it(tmp_path, key):
    path, arrays, meta = saved(tmp_path)  # 8 layers; layer 6 is Dense(8, 3), layer 7 Softmax
    meta["optimizer"]["slots"] = [*meta["optimizer"]["slots"], key]
    rewrite(path, {**arrays, f"optim/{key}": np.zeros((3, 8), np.float32)}, meta)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(info.value) == f"{path}: optimizer slot {key!r} belongs to no parameter"


def test_an_optimizer_that_never_stepped_loads_and_a_negative_step_count_is_refused(tmp_path):
    model = small_model()
    model.compile(optimizer=xc.Adam(0.01), loss="categorical_cross_entropy")
    path, arrays, meta = saved(tmp_path, model)
    assert meta["optimizer"]["iterations"] == 0 and load_checkpoint(path).optimizer.iterations == 0
    meta["optimizer"]["iterations"] = -1
    rewrite(path, arrays, meta)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(info.value) == f"{path}: optimizer step count -1 is not an integer >= 0"


def test_an_unknown_layer_class_lists_the_registered_ones(tmp_path):
    from xpcnn.layers import registry

    path, arrays, meta = saved(tmp_path)
    rewrite(path, arrays, {**meta, "layers": [{"class": "Nope", "config": {}}]})
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(info.value).endswith(f"(registered: {', '.join(sorted(registry.LAYERS))})")


def zeros_member(nbytes: int) -> bytes:
    """A ``.npy`` of ``nbytes`` bytes in all (a 1.0 header padded to 128 bytes, then zeros)."""
    header = "{'descr': '|u1', 'fortran_order': False, 'shape': (%d,), }" % (nbytes - 128)
    return npy((1, 0), header.ljust(128 - 11)) + bytes(nbytes - 128)


@pytest.mark.parametrize("mib, refused", [(1.0, False), (1.5, True)])
def test_the_unpacked_size_guard_allows_1_mib_whatever_the_ratio_and_refuses_more_beyond_100_times(tmp_path, mib,
                                                                                                  refused):
    path = tmp_path / "m.npz"
    zip_members(path, {"meta.npy": zeros_member(int(mib * (1 << 20)))}, zipfile.ZIP_DEFLATED)  # about 1000:1
    assert path.stat().st_size * 100 < mib * (1 << 20)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    claims = f"{path}: claims {int(mib * (1 << 20))} bytes unpacked from {path.stat().st_size} on disk; refused"
    assert (str(info.value) == claims) is refused
    assert refused or str(info.value) == f"{path}: not an xpcnn checkpoint (no 'meta' string)"


def test_a_checkpoint_larger_than_1_mib_loads_when_it_is_not_packed_tighter_than_100_to_1(tmp_path):
    model = xc.Sequential([xc.Dense(512, 600), xc.Softmax()], seed=0)  # 1.2 MB of random weights: stored as is
    save_checkpoint(tmp_path / "big.npz", model)
    assert (tmp_path / "big.npz").stat().st_size > 1 << 20
    assert_same_params(load_checkpoint(tmp_path / "big.npz"), model, rtol=0, atol=0)


def test_each_way_a_file_is_not_a_checkpoint_has_its_own_message(tmp_path):
    path, arrays, meta = saved(tmp_path)
    cases = {
        "a member that is not an array": (lambda: zip_members(path, {**npz_bytes(arrays), "notes.txt": b"hi"}),
                                          f"{path}: unexpected member 'notes.txt' (not an .npy array)"),
        "meta a number": (lambda: rewrite(path, {**arrays, "meta": np.array(5)}),
                          f"{path}: not an xpcnn checkpoint (no 'meta' string)"),
        "meta not JSON": (lambda: rewrite(path, {**arrays, "meta": np.array("{not json")}),
                          f"{path}: corrupt checkpoint metadata (Expecting property name enclosed in double quotes: "
                          f"line 1 column 2 (char 1))"),
        "another format": (lambda: rewrite(path, arrays, {**meta, "format": "keras"}),
                           f"{path}: not an xpcnn checkpoint (format 'keras')"),
        "meta a list": (lambda: rewrite(path, {**arrays, "meta": np.array("[1, 2]")}),
                        f"{path}: not an xpcnn checkpoint (format None)"),
        "extra not a dict": (lambda: rewrite(path, arrays, {**meta, "extra": [1]}),
                             f"{path}: corrupt checkpoint metadata ('extra' is not a dict)"),
        "an unknown loss": (lambda: rewrite(path, arrays, {**meta, "loss": "hinge"}),
                            f"{path}: unknown loss 'hinge' (known: {sorted(xc.losses.LOSSES)})"),
        "a loss that is not a name": (lambda: rewrite(path, arrays, {**meta, "loss": 5}),
                                      f"{path}: unknown loss 5 (known: {sorted(xc.losses.LOSSES)})"),
    }
    for name, (damage, message) in cases.items():
        damage()
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path)
        assert str(info.value) == message, name
    rewrite(path, arrays, {**meta, "schedule": "bogus"})
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(info.value).startswith(f"{path}: bad learning-rate schedule 'bogus' (")
    path.write_bytes(path.read_bytes()[:600])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(info.value).startswith(f"{path}: corrupt or truncated checkpoint (BadZipFile: ")


def test_a_path_that_cannot_be_read_gives_the_systems_reason(tmp_path):
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path)
    assert str(info.value) == f"{tmp_path}: cannot read the checkpoint (Is a directory)"


def test_an_optimizer_slot_of_the_wrong_shape_is_named_with_the_file(tmp_path):
    path, arrays, _ = saved(tmp_path)
    rewrite(path, {**arrays, "optim/6.weights.m": np.zeros((2, 2), np.float32)})
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(info.value) == f"{path}: 'optim/6.weights.m' has shape (2, 2), the model needs (3, 8)"
