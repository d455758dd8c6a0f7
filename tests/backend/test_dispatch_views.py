"""The correlation dispatch (``backend.correlate`` / ``convolve``) on views, on every backend.

Flipped, strided and transposed views must give what contiguous copies give: cupyx's direct
path has returned wrong results on negative strides, so the dispatch hands every signal
module contiguous arrays and an explicit ``method`` (cupyx rejects ``"auto"`` on N-d input).
The oracle is ``scipy.signal`` on contiguous NumPy copies.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from array_api_compat import array_namespace

import xpcnn as xc
from xpcnn import backend
VIEWS = {
    "flipped": lambda xp, a: xp.flip(a, axis=(-2, -1)),
    "strided": lambda xp, a: a[:, ::2, ::-3],
    "transposed": lambda xp, a: xp.permute_dims(a, (0, 2, 1)),
}
TOLERANCE = {"float64": (1e-10, 1e-12), "float32": (1e-4, 1e-5)}  # (rtol, atol per unit of the largest value)


def assert_close(got, expected, dtype: str) -> None:
    rtol, atol = TOLERANCE[dtype]
    scale = max(1.0, float(np.max(np.abs(expected))))  # sums of many products round in absolute terms
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol * scale)


def _operands(dtype: str):
    """A (3, 12, 13) input and a (2, 6, 7) kernel: every view of them is still (N-d) non-empty."""
    rng = np.random.default_rng(7)
    return rng.standard_normal((3, 12, 13)).astype(dtype), rng.standard_normal((2, 6, 7)).astype(dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("method", ["direct", "fft"])
@pytest.mark.parametrize("name", ["correlate", "convolve"])
@pytest.mark.parametrize("view", VIEWS)
def test_views_give_the_same_result_as_contiguous_copies(device, view, name, method, dtype):
    x_host, k_host = _operands(dtype)
    x, k = xc.to_device(x_host, device), xc.to_device(k_host, device)
    xp = array_namespace(x)
    x_view, k_view = VIEWS[view](xp, x), VIEWS[view](xp, k)
    # the same values, laid out contiguously on the host: the oracle's operands
    x_copy = np.ascontiguousarray(xc.to_numpy(x_view))
    k_copy = np.ascontiguousarray(xc.to_numpy(k_view))
    for mode in ("valid", "full", "same"):
        out = getattr(backend, name)(x_view, k_view, mode, method)
        assert backend.Device.of(out) == device
        assert out.dtype == x.dtype
        from_copies = getattr(backend, name)(xc.to_device(x_copy, device), xc.to_device(k_copy, device), mode, method)
        expected = getattr(scipy.signal, name)(x_copy, k_copy, mode=mode, method=method)
        assert_close(xc.to_numpy(out), xc.to_numpy(from_copies), dtype)
        assert_close(xc.to_numpy(out), expected, dtype)


class _Recorder:
    """Wraps a signal module and records what the dispatch hands it."""

    def __init__(self, module):
        self.module, self.calls = module, []

    def __getattr__(self, name):
        def call(x, kernel, mode, method):
            self.calls.append((name, x.flags.c_contiguous, kernel.flags.c_contiguous, method))
            return getattr(self.module, name)(x, kernel, mode=mode, method=method)

        return call


@pytest.mark.parametrize("method", ["auto", "direct", "fft"])
def test_signal_modules_only_ever_see_contiguous_arrays_and_an_explicit_method(device, monkeypatch, method):
    # NumPy arrays, and other namespaces through the host, reach SciPy; CuPy arrays reach cupyx
    on_cuda = device.backend is backend.CUPY
    library = backend.CUPY if on_cuda else backend.NUMPY
    recorder = _Recorder(library.signal)
    monkeypatch.setattr(library, "_signal" if on_cuda else "signal", recorder)
    x_host, k_host = _operands("float64")
    x, k = xc.to_device(x_host, device), xc.to_device(k_host, device)
    xp = array_namespace(x)
    for view in VIEWS.values():
        backend.correlate(view(xp, x), view(xp, k), "valid", method)
        backend.convolve(view(xp, x), view(xp, k), "full", method)
    assert [c[0] for c in recorder.calls] == ["correlate", "convolve"] * len(VIEWS)
    for _, x_contiguous, k_contiguous, used in recorder.calls:
        assert x_contiguous and k_contiguous
        assert used in ("direct", "fft") and (method == "auto" or used == method)


# -- the CuPy branch, on every machine: a stand-in that behaves like CuPy ---------------------------

@pytest.fixture
def fake_cuda(monkeypatch):
    """The real ``CupyBackend`` built on a CuPy stand-in, first in the dispatch table."""
    from fake_cupy import RecordingSignal, fake_cupy

    library = backend.CupyBackend(cupy=fake_cupy(), signal=RecordingSignal())
    monkeypatch.setattr(backend.libraries, "BACKENDS", [library, *backend.libraries.BACKENDS])
    return library


def test_the_cupy_stand_in_refuses_implicit_numpy_conversion(fake_cuda):
    a = fake_cuda.cupy.asarray(np.ones(3))
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    np.testing.assert_array_equal(xc.to_numpy(a), np.ones(3))  # the explicit way: .get()


@pytest.mark.parametrize("method", ["auto", "direct", "fft"])
@pytest.mark.parametrize("name", ["correlate", "convolve"])
def test_cupy_branch_sends_contiguous_copies_and_an_explicit_method_to_cupyx(fake_cuda, name, method):
    x_host, k_host = _operands("float32")
    x, k = fake_cuda.cupy.asarray(x_host), fake_cuda.cupy.asarray(k_host)
    views = {"flipped": (slice(None), slice(None, None, -1), slice(None, None, -1)),
             "strided": (slice(None), slice(None, None, 2), slice(None, None, -3))}
    for index in views.values():
        out = getattr(backend, name)(x[index], k[index], "valid", method)
        assert backend.backend_for(out) is fake_cuda  # the result stays on the (fake) GPU
        assert out.dtype == np.float32
        x_copy, k_copy = np.ascontiguousarray(x_host[index]), np.ascontiguousarray(k_host[index])
        used = fake_cuda.signal.calls[-1][1]
        expected = getattr(scipy.signal, name)(x_copy, k_copy, mode="valid", method=used)
        assert_close(xc.to_numpy(out), expected, "float32")
    calls = fake_cuda.signal.calls
    assert len(calls) == len(views)  # every call reached the CuPy module, none went to SciPy
    for _, used, x_contiguous, k_contiguous in calls:
        assert x_contiguous and k_contiguous
        assert used in ("direct", "fft") and (method == "auto" or used == method)


def test_cupy_branch_ffts_run_on_the_device(fake_cuda):
    x = fake_cuda.cupy.asarray(np.random.default_rng(0).standard_normal((2, 3, 5, 6)).astype(np.float32))
    spectrum = backend.rfft2(x, (8, 9))
    assert backend.backend_for(spectrum) is fake_cuda and spectrum.shape == (2, 3, 8, 5)
    back = backend.irfft2(spectrum, (8, 9))
    assert backend.backend_for(back) is fake_cuda
    np.testing.assert_allclose(xc.to_numpy(back)[..., :5, :6], xc.to_numpy(x), atol=1e-5)


def test_cupy_and_numpy_operands_are_refused_by_name(fake_cuda):
    x, k = _operands("float64")
    with pytest.raises(ValueError, match="different array namespaces"):
        backend.correlate(fake_cuda.cupy.asarray(x), k, "valid", "direct")


def test_choose_method_never_answers_auto():
    for shapes in [((3, 12, 13), (2, 6, 7)), ((64, 1, 28, 28), (1, 1, 3, 3)), ((64, 8, 28, 28), (64, 1, 26, 26))]:
        for mode in ("valid", "full", "same"):
            assert backend.choose_method(*shapes, mode) in ("direct", "fft")


def test_unknown_mode_and_method_are_rejected_by_name():
    x, k = _operands("float64")
    with pytest.raises(ValueError, match="mode must be"):
        backend.correlate(x, k, "circular")
    with pytest.raises(ValueError, match="method must be"):
        backend.correlate(x, k, "valid", "winograd")
