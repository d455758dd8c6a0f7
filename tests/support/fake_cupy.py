"""A CPU stand-in for CuPy, so the CuPy branch of the backend's dispatch runs on every machine.

``FakeCupyArray`` holds a NumPy array but, like a CuPy array, refuses implicit conversion to
NumPy (``np.asarray(a)`` raises ``TypeError``); only ``.get()`` copies it to the host.
``fake_cupy()`` is a module-like object with the part of CuPy's surface the backend uses
(``ndarray``, ``asarray``, ``ascontiguousarray``, ``fft.rfft2`` / ``fft.irfft2``), and
``RecordingSignal`` stands in for ``cupyx.scipy.signal``: it refuses ``method='auto'`` on N-d
input as cupyx does, refuses anything but fake CuPy arrays, and records the method and the
contiguity of every call. The values come from SciPy, so results can be checked too.

Build the real :class:`xpcnn.backend.CupyBackend` from them::

    CupyBackend(cupy=fake_cupy(), signal=RecordingSignal())
"""

from __future__ import annotations

import types

import numpy as np
import scipy.fft
import scipy.signal


class FakeDevice:
    """``cupy.cuda.Device`` stand-in: an id, ``synchronize()``, and ``with device:`` (counted in ``entered``)."""

    def __init__(self, device_id: int = 0) -> None:
        self.id, self.entered = device_id, 0

    def synchronize(self) -> None:
        pass

    def __enter__(self) -> "FakeDevice":
        self.entered += 1
        return self

    def __exit__(self, *exc) -> None:
        pass


class FakeCupyArray:
    """A device array in disguise: NumPy data that must be fetched with ``.get()``.

    ``data.ptr`` is the address of the NumPy data, as a CuPy array's is its device pointer, so a
    stand-in library (``tests/support/fake_nccl.py``) can read and write the array through it.
    """

    def __init__(self, data: np.ndarray, device: "FakeDevice | None" = None) -> None:
        self._data = data
        self.device = device or FakeDevice()

    shape = property(lambda self: self._data.shape)
    dtype = property(lambda self: self._data.dtype)
    ndim = property(lambda self: self._data.ndim)
    size = property(lambda self: self._data.size)
    flags = property(lambda self: self._data.flags)
    data = property(lambda self: types.SimpleNamespace(ptr=self._data.ctypes.data))

    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def get(self) -> np.ndarray:
        return self._data.copy()

    def __getitem__(self, index) -> "FakeCupyArray":
        return FakeCupyArray(self._data[index])  # a view, as CuPy's slicing gives

    def astype(self, dtype, copy: bool = True) -> "FakeCupyArray":
        return FakeCupyArray(self._data.astype(dtype, copy=copy))


def _unwrap(a, who: str) -> np.ndarray:
    if not isinstance(a, FakeCupyArray):
        raise TypeError(f"{who}: expected a (fake) CuPy array, got {type(a).__name__}")
    return a._data


def fake_cupy() -> types.SimpleNamespace:
    """The part of the ``cupy`` module the backend uses, computing with NumPy underneath."""

    def asarray(a):
        return a if isinstance(a, FakeCupyArray) else FakeCupyArray(np.array(a))

    def ascontiguousarray(a):
        return FakeCupyArray(np.ascontiguousarray(_unwrap(a, "cupy.ascontiguousarray")))

    def rfft2(a, s=None, axes=(-2, -1)):
        return FakeCupyArray(scipy.fft.rfft2(_unwrap(a, "cupy.fft.rfft2"), s=s, axes=axes))

    def irfft2(a, s=None, axes=(-2, -1)):
        return FakeCupyArray(scipy.fft.irfft2(_unwrap(a, "cupy.fft.irfft2"), s=s, axes=axes))

    fft = types.SimpleNamespace(rfft2=rfft2, irfft2=irfft2)
    return types.SimpleNamespace(ndarray=FakeCupyArray, asarray=asarray, ascontiguousarray=ascontiguousarray, fft=fft)


class RecordingSignal:
    """``cupyx.scipy.signal`` stand-in: records ``(name, method, x contiguous, kernel contiguous)``."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def _call(self, name, in1, in2, mode, method):
        x, k = _unwrap(in1, f"cupyx.scipy.signal.{name}"), _unwrap(in2, f"cupyx.scipy.signal.{name}")
        self.calls.append((name, method, x.flags.c_contiguous, k.flags.c_contiguous))
        if method == "auto" and x.ndim > 1:
            raise ValueError("cupyx (stand-in): method='auto' does not support N-d input")
        return FakeCupyArray(getattr(scipy.signal, name)(x, k, mode=mode, method=method))

    def correlate(self, in1, in2, mode="full", method="auto"):
        return self._call("correlate", in1, in2, mode, method)

    def convolve(self, in1, in2, mode="full", method="auto"):
        return self._call("convolve", in1, in2, mode, method)
