"""Property tests of the checkpoint loader (xpcnn/io/checkpoint.py): mutated bytes, mutated metadata and
lying array headers raise CheckpointError and nothing else, before any large allocation."""

import io
import json
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpcnn as xc
from xpcnn.io.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def model():
    m = xc.Sequential([xc.Convolutional((1, 6, 6), 3, 2, bias="tied"), xc.ReLU(), xc.MaxPool2D(2), xc.Flatten(),
                       xc.Dense(8, 3), xc.Softmax()], seed=0)
    rng = np.random.default_rng(0)
    m.fit(rng.random((6, 1, 6, 6)), np.eye(3)[[0, 1, 2, 0, 1, 2]], loss="categorical_cross_entropy", batch_size=3,
          optimizer=xc.Adam(0.01))
    return m


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "good.npz"
    save_checkpoint(path, model())
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return path.read_bytes(), arrays


def loads_or_checkpoint_error(path):
    try:
        return load_checkpoint(path)
    except CheckpointError as exc:
        assert str(path) in str(exc)
        return None


@FAST
@given(st.data())
def test_mutated_bytes_raise_checkpoint_error_or_load(good, tmp_path, data):
    raw = bytearray(good[0])
    for _ in range(data.draw(st.integers(1, 3))):
        if not raw:
            break
        kind = data.draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        at = data.draw(st.integers(0, len(raw) - 1))
        if kind == "flip":
            raw[at] ^= data.draw(st.integers(1, 255))
        elif kind == "cut":
            del raw[at:at + data.draw(st.integers(1, 64))]
        elif kind == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=16))
        else:
            del raw[at:]
    path = tmp_path / "m.npz"
    path.write_bytes(bytes(raw))
    loads_or_checkpoint_error(path)


JSONISH = st.recursive(st.none() | st.booleans() | st.integers(-2, 10**12) | st.floats() | st.text(max_size=5),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                     max_size=3), max_leaves=6)


def paths_in(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths_in(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths_in(v, prefix + (i,))


def replaced(value, path, new):
    if not path:
        return new
    value = list(value) if isinstance(value, list) else dict(value)
    value[path[0]] = replaced(value[path[0]], path[1:], new)
    return value


@FAST
@given(st.data())
def test_mutated_metadata_raises_checkpoint_error_or_loads(good, tmp_path, data):
    arrays = dict(good[1])
    meta = json.loads(str(arrays["meta"]))
    where = data.draw(st.sampled_from([p for p in paths_in(meta) if p]))
    meta = replaced(meta, where, data.draw(JSONISH))
    arrays["meta"] = np.array(json.dumps(meta))
    path = tmp_path / "m.npz"
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    loaded = loads_or_checkpoint_error(path)
    if loaded is not None:  # what loads is a model that predicts
        loaded.predict(np.zeros((1, 1, 6, 6)))


def npz_with(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, raw in members.items():
            archive.writestr(name, raw)


def npy_header(shape, dtype="<f4"):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_an_array_header_claiming_10_to_the_12_values_is_refused_before_allocating(good, tmp_path):
    members = {}
    for key, value in good[1].items():
        buf = io.BytesIO()
        np.save(buf, value)
        members[key + ".npy"] = buf.getvalue()
    members["param/4/weights.npy"] = npy_header((10**6, 10**6)) + bytes(96)
    npz_with(tmp_path / "m.npz", members)
    with pytest.raises(CheckpointError, match=r"param/4/weights.npy declares \(1000000, 1000000\) of float32 "
                                              r"\(4000000000000 bytes\) but holds 96 bytes"):
        load_checkpoint(tmp_path / "m.npz")


def test_a_layer_description_claiming_a_huge_layer_is_refused_before_allocating(good, tmp_path):
    arrays = dict(good[1])
    meta = json.loads(str(arrays["meta"]))
    for size, message in ((10**4, r"\(100000000 values\) is more than the \d+ values left"),  # the file's budget
                          (10**6, r"1e\+12 values, .* more than this machine's")):  # the machine's memory
        meta["layers"][4]["config"] = {"input_size": size, "output_size": size}
        arrays["meta"] = np.array(json.dumps(meta))
        with open(tmp_path / "m.npz", "wb") as f:
            np.savez(f, **arrays)
        with pytest.raises(CheckpointError, match=f"layer 4: cannot rebuild Dense.*{message}"):
            load_checkpoint(tmp_path / "m.npz")


def test_a_zip_bomb_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "m.npz", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("meta.npy", npy_header((20_000_000,), "<u1") + bytes(20_000_000))
    with pytest.raises(CheckpointError, match="claims .* bytes unpacked from .* on disk; refused"):
        load_checkpoint(tmp_path / "m.npz")


def test_a_slot_that_fits_no_parameter_is_refused(good, tmp_path):
    arrays = dict(good[1])
    arrays["optim/4.weights.m"] = np.zeros((2, 2), np.float32)
    with open(tmp_path / "m.npz", "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(CheckpointError, match=r"'optim/4.weights.m' has shape \(2, 2\), the model needs \(3, 8\)"):
        load_checkpoint(tmp_path / "m.npz")
