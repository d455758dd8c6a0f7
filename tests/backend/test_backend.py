"""The backend: device strings, explicit moves, the correlation dispatch table, seeded weights."""

import numpy as np
import pytest
from scipy import signal

import xpcnn as xc
from xpcnn import backend
xs = pytest.importorskip("array_api_strict")


@pytest.mark.parametrize("spec", ["cpu", "CPU", " cpu "])
def test_cpu_spellings_resolve_to_numpy(spec):
    assert backend.get_device(spec) is backend.CPU


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "cuda:-1", "tpu:0"])
def test_unknown_device_strings_are_rejected(spec):
    with pytest.raises(ValueError, match="unknown device"):
        backend.get_device(spec)


@pytest.mark.parametrize("device_name", ["CPU_DEVICE", "device1"])
def test_to_device_and_to_numpy_round_trip_on_strict_devices(device_name):
    dev = xc.Device.of(xs.asarray([0.0], device=xs.Device(device_name)))
    a = np.arange(6.0).reshape(2, 3)
    moved = xc.to_device(a, dev)
    assert xc.Device.of(moved) == dev
    np.testing.assert_array_equal(xc.to_numpy(moved), a)
    assert xc.to_device(moved, dev) is moved


@pytest.mark.parametrize("mode", ["valid", "full"])
@pytest.mark.parametrize("method", ["direct", "fft", "auto"])
def test_correlate_and_convolve_match_scipy_2d(mode, method):
    rng = np.random.default_rng(0)
    x, k = rng.standard_normal((7, 5)), rng.standard_normal((3, 2))
    np.testing.assert_allclose(backend.correlate(x, k, mode, method), signal.correlate2d(x, k, mode), atol=1e-12)
    np.testing.assert_allclose(backend.convolve(x, k, mode, method), signal.convolve2d(x, k, mode), atol=1e-12)


def test_host_reference_path_returns_on_the_inputs_device():
    dev = xc.Device.of(xs.asarray([0.0], device=xs.Device("device1")))
    rng = np.random.default_rng(1)
    x, k = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((1, 3, 3, 3))
    out = backend.correlate(xc.to_device(x, dev), xc.to_device(k, dev), "valid", "direct")
    assert xc.Device.of(out) == dev
    np.testing.assert_allclose(xc.to_numpy(out), signal.correlate(x, k, "valid"), atol=1e-12)


def test_correlate_keeps_float32():
    x = np.ones((4, 4), np.float32)
    assert backend.correlate(x, np.ones((2, 2), np.float32), "valid", "fft").dtype == np.float32


def test_choose_method_never_answers_auto():
    assert backend.choose_method((128, 1, 28, 28), (1, 1, 3, 3), "valid") in ("direct", "fft")
    assert backend.choose_method((3, 3), (2, 2), "valid") == "direct"


def test_bad_mode_or_method_is_rejected():
    with pytest.raises(ValueError, match="mode must be"):
        backend.correlate(np.ones(3), np.ones(2), "circular")
    with pytest.raises(ValueError, match="method must be"):
        backend.correlate(np.ones(3), np.ones(2), "valid", "winograd")


def test_same_seed_gives_same_weights_on_every_device():
    dev = xc.Device.of(xs.asarray([0.0], device=xs.Device("device1")))
    a = xc.Dense(5, 3, seed=42)
    b = xc.Dense(5, 3, seed=42, device=dev)
    np.testing.assert_array_equal(a.weights, xc.to_numpy(b.weights))


def test_dtype_name_is_the_plain_name_in_every_namespace():
    xs = pytest.importorskip("array_api_strict")
    assert backend.dtype_name(np.zeros(1, np.float32)) == "float32"
    assert str(xs.zeros(1, dtype=xs.float64).dtype) != "float64"  # the namespace spells it its own way
    assert backend.dtype_name(xs.zeros(1, dtype=xs.float64)) == "float64"


def test_host_buffer_is_a_fresh_writable_row_major_numpy_copy_from_any_namespace():
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    view = base[:, ::2]
    out = backend.host_buffer(view)
    assert type(out) is np.ndarray and out.flags["C_CONTIGUOUS"] and out.flags["WRITEABLE"]
    out[0, 0] = -1
    assert base[0, 0] == 0 and np.array_equal(out[1:], view[1:])  # a copy: the source is untouched
    strict = backend.host_buffer(xs.asarray([[1.5, 2.5]], dtype=xs.float64))
    assert type(strict) is np.ndarray and strict.dtype == np.float64 and strict.tolist() == [[1.5, 2.5]]
    assert backend.host_buffer((0, 3, 4), "int64").dtype == np.int64
