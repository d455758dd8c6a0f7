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

For a subprocess (``train.py``, ``xpcnn-doctor``), :func:`cupy_package` writes a stand-in ``cupy``
package to put first on ``PYTHONPATH``: not installed, no GPU, or CUDA's libraries missing.
"""

from __future__ import annotations

import types
from pathlib import Path

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


#: The stand-in package's source: a runtime that sees ``{devices}`` GPUs (a string: the error it
#: raises instead), and a ``cupy.cuda`` that fails to load the libraries in ``{missing}`` as CuPy does.
PACKAGE = '''"""Stand-in for CuPy, written by tests/support/fake_cupy.py for a subprocess."""

DEVICES = {devices!r}
MISSING = {missing!r}  # cupy.cuda attribute -> CuPy's error when it cannot load the library


class ndarray:  # array_api_compat's is_cupy_array looks this up once cupy is imported
    pass


class _Runtime:
    @staticmethod
    def getDeviceCount():
        if isinstance(DEVICES, str):
            raise RuntimeError(DEVICES)
        return DEVICES


class _Cuda:
    runtime = _Runtime

    def __getattr__(self, name):
        if name in MISSING:
            raise ImportError(MISSING[name])
        if name in ("cublas", "cufft", "curand", "nvrtc"):
            return object()
        raise AttributeError(name)


cuda = _Cuda()
'''


def cupy_package(folder: Path, devices: "int | str | None" = 1, missing: "dict[str, str] | None" = None) -> str:
    """Write a stand-in ``cupy`` package under ``folder`` and return the ``PYTHONPATH`` entry for it.

    ``devices=None``: CuPy is not installed (importing it raises ImportError); else the GPUs its
    runtime sees, or a string, the error it raises. ``missing``: ``{"cublas": "Failure finding ..."}``,
    the CUDA libraries it cannot load, with CuPy's error for each.
    """
    package = Path(folder) / "cupy"
    package.mkdir(parents=True)
    source = ("raise ImportError(\"No module named 'cupy' (hidden by the xpcnn test)\")\n" if devices is None
              else PACKAGE.format(devices=devices, missing=missing or {}))
    (package / "__init__.py").write_text(source)
    return str(package.parent)
