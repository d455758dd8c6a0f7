"""The one module that knows NumPy, SciPy and CuPy.

Everything above this module sees only ``xp = array_namespace(...)``. Here live:

* devices: ``"cpu"`` is NumPy, ``"cuda"`` / ``"cuda:N"`` is CuPy on GPU N (imported lazily),
  and any other array-API namespace (``array_api_strict`` in the tests) is reachable
  through :meth:`Device.of`;
* explicit moves between devices (:func:`to_device`, :func:`to_numpy`) -- never implicit ones;
* the correlation dispatch (:func:`correlate`, :func:`convolve`): a table that sends NumPy
  arrays to ``scipy.signal`` and CuPy arrays to ``cupyx.scipy.signal``;
* seeded initial weights, drawn by NumPy on the host so a seed gives the same weights on
  every device.
"""

from __future__ import annotations

import importlib
import math
import re
from dataclasses import dataclass
from typing import Any, Callable

import array_api_compat
import numpy as np
import scipy.signal
from array_api_compat import array_namespace, is_cupy_array, is_numpy_array

from .errors import ConfigError, ConfigTypeError, DeviceError, DeviceMismatchError

Array = Any

__all__ = [
    "Array",
    "Device",
    "DeviceError",
    "get_device",
    "device_of",
    "namespace_of",
    "to_device",
    "to_numpy",
    "correlate",
    "convolve",
    "new_rng",
    "rng_state",
    "set_rng_state",
    "uniform",
    "permutation",
    "as_dtype",
    "float_errors_ignored",
]


def _import_cupy():
    """Import CuPy lazily; a missing CuPy names the extra that installs it."""
    try:
        return importlib.import_module("cupy")
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise DeviceError(
            "device 'cuda' needs CuPy, which is not installed: "
            "pip install 'xpcnn[cuda12]' (or 'xpcnn[cuda13]' for CUDA 13)"
        ) from exc


@dataclass(frozen=True)
class Device:
    """Where arrays live: an array namespace plus that namespace's device object.

    ``name`` is the xpcnn spelling (``"cpu"``, ``"cuda:0"``) or, for other namespaces,
    ``"<namespace>:<device>"``.
    """

    xp: Any
    native: Any
    name: str

    @staticmethod
    def of(x: Array) -> "Device":
        """The device an array lives on."""
        xp = array_namespace(x)
        native = array_api_compat.device(x)
        if is_numpy_array(x):
            return CPU
        if is_cupy_array(x):
            return Device(xp, native, f"cuda:{native.id}")
        return Device(xp, native, f"{xp.__name__}:{native}")

    def __str__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Device) and self.name == other.name

    def __hash__(self) -> int:
        return hash(self.name)


CPU = Device(array_namespace(np.empty(0)), "cpu", "cpu")

_CUDA_RE = re.compile(r"^cuda(?::(\d+))?$")


def get_device(spec: "str | Device | None" = None) -> Device:
    """Resolve ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a :class:`Device` to a :class:`Device`."""
    if spec is None:
        return CPU
    if isinstance(spec, Device):
        return spec
    if not isinstance(spec, str):
        raise ConfigTypeError(f"device must be 'cpu', 'cuda', 'cuda:N' or a Device, got {spec!r}")
    text = spec.strip().lower()
    if text == "cpu":
        return CPU
    match = _CUDA_RE.match(text)
    if match is None:
        raise ConfigError(f"unknown device {spec!r}: expected 'cpu', 'cuda' or 'cuda:N'")
    index = int(match.group(1) or 0)
    cp = _import_cupy()
    try:
        count = cp.cuda.runtime.getDeviceCount()
    except Exception as exc:  # pragma: no cover - depends on the machine
        raise DeviceError(f"device {spec!r}: CuPy is installed but no CUDA GPU is visible ({exc})") from exc
    if count == 0:  # pragma: no cover - depends on the machine
        raise DeviceError(f"device {spec!r}: CuPy is installed but no CUDA GPU is visible")
    if index >= count:  # pragma: no cover - depends on the machine
        raise DeviceError(f"device {spec!r}: only {count} CUDA GPU(s) visible (cuda:0..cuda:{count - 1})")
    native = cp.cuda.Device(index)
    return Device(array_namespace(cp.empty(0)), native, f"cuda:{index}")


def device_of(*arrays: Array) -> Device:
    """The one device all ``arrays`` share; a clear error for two namespaces or two devices."""
    devices = {Device.of(a) for a in arrays if a is not None}
    if len(devices) != 1:
        names = sorted(str(d) for d in devices)
        raise DeviceMismatchError(f"arrays live on different devices {names}; move them with xpcnn.to_device first")
    return devices.pop()


def namespace_of(*arrays: Array):
    """``array_namespace`` that also rejects arrays from two devices."""
    return device_of(*arrays).xp


def _host_device(xp) -> Any:
    return xp.__array_namespace_info__().default_device()


def to_numpy(x: Array) -> np.ndarray:
    """An explicit copy to host memory as a NumPy array (``.get()`` for CuPy)."""
    if is_numpy_array(x):
        return x
    if is_cupy_array(x):
        return x.get()
    if isinstance(x, (int, float, list, tuple)):
        return np.asarray(x)
    xp = array_namespace(x)
    host = array_api_compat.to_device(x, _host_device(xp))
    return np.asarray(host)


def to_device(x: Array, device: "str | Device") -> Array:
    """Move ``x`` (any namespace, or a NumPy array) to ``device``; a no-op when it is already there."""
    dev = get_device(device)
    if not isinstance(x, (int, float, list, tuple)) and not is_numpy_array(x) and Device.of(x) == dev:
        return x
    if dev == CPU:
        return to_numpy(x)
    if dev.name.startswith("cuda:"):
        cp = _import_cupy()
        if is_cupy_array(x):
            with dev.native:
                return cp.asarray(x)  # device-to-device copy
        with dev.native:
            return cp.asarray(to_numpy(x))
    if is_numpy_array(x) or isinstance(x, (int, float, list, tuple)):
        host = dev.xp.asarray(np.ascontiguousarray(x))
    else:
        host = dev.xp.asarray(to_numpy(x))
    return array_api_compat.to_device(host, dev.native)


def as_dtype(xp, name: "str | Any"):
    """``"float32"`` / ``"float64"`` (or a dtype object) as the namespace's dtype."""
    if not isinstance(name, str):
        return name
    if name not in ("float32", "float64"):
        raise ConfigError(f"dtype must be 'float32' or 'float64', got {name!r}")
    return getattr(xp, name)


def float_errors_ignored():
    """A context in which NumPy prints no RuntimeWarning for overflow, 0/0 and the like.

    ``fit`` trains inside it and checks every step's loss itself (a non-finite one stops training
    with a :class:`~xpcnn.errors.TrainingError`), so NumPy's warnings would only repeat that, late
    and four lines long. Other namespaces never warn: for them this does nothing.
    """
    return np.errstate(all="ignore")


# --------------------------------------------------------------------------------------------
# Correlation dispatch: namespace -> signal module. NumPy and CuPy compute where the data is;
# any other namespace goes through the host (the slow reference path, used by the tests).
# --------------------------------------------------------------------------------------------

def _scipy_signal():
    return scipy.signal


def _cupyx_signal():
    return importlib.import_module("cupyx.scipy.signal")


_SIGNAL_MODULES: dict[str, Callable[[], Any]] = {
    "numpy": _scipy_signal,
    "cupy": _cupyx_signal,
}


def _backend_name(x: Array) -> str:
    if is_numpy_array(x):
        return "numpy"
    if is_cupy_array(x):
        return "cupy"
    return "host"


def choose_method(in_shape: tuple, kernel_shape: tuple, mode: str) -> str:
    """``'direct'`` or ``'fft'`` from an operation count; never ``'auto'`` (cupyx rejects it on N-d)."""
    if mode == "valid":
        out = [i - k + 1 for i, k in zip(in_shape, kernel_shape)]
    else:
        out = [i + k - 1 for i, k in zip(in_shape, kernel_shape)]
    direct = math.prod(out) * math.prod(kernel_shape)
    full = math.prod(i + k - 1 for i, k in zip(in_shape, kernel_shape))
    fft = 3 * full * max(math.log2(max(full, 2)), 1.0) * 4
    return "direct" if direct <= fft else "fft"


def _signal_call(name: str, x: Array, kernel: Array, mode: str, method: str) -> Array:
    if mode not in ("valid", "full", "same"):
        raise ConfigError(f"mode must be 'valid', 'full' or 'same', got {mode!r}")
    if method == "auto":
        method = choose_method(tuple(x.shape), tuple(kernel.shape), mode)
    if method not in ("direct", "fft"):
        raise ConfigError(f"method must be 'direct', 'fft' or 'auto', got {method!r}")
    backend = _backend_name(x)
    if backend != _backend_name(kernel):
        raise DeviceMismatchError("correlate: input and kernel come from different array namespaces")
    if backend == "host":
        # Reference path for namespaces without a signal module: explicit host round trip.
        dev = device_of(x, kernel)
        out = _signal_call(name, to_numpy(x), to_numpy(kernel), mode, method)
        return to_device(out, dev)
    module = _SIGNAL_MODULES[backend]()
    xpm = np if backend == "numpy" else _import_cupy()
    # Contiguous copies: cupyx's direct path has returned wrong results on negative strides.
    x = xpm.ascontiguousarray(x)
    kernel = xpm.ascontiguousarray(kernel)
    out = getattr(module, name)(x, kernel, mode=mode, method=method)
    return out.astype(x.dtype, copy=False)


def correlate(x: Array, kernel: Array, mode: str = "valid", method: str = "auto") -> Array:
    """N-d cross-correlation ``x ⋆ kernel`` on the array's own device (all axes correlated)."""
    return _signal_call("correlate", x, kernel, mode, method)


def convolve(x: Array, kernel: Array, mode: str = "full", method: str = "auto") -> Array:
    """N-d convolution ``x ∗ kernel`` on the array's own device (all axes convolved)."""
    return _signal_call("convolve", x, kernel, mode, method)


# --------------------------------------------------------------------------------------------
# Seeded randomness: drawn on the host with NumPy, then moved, so seeds agree across devices.
# --------------------------------------------------------------------------------------------

def new_rng(seed: "int | None | np.random.Generator" = None) -> np.random.Generator:
    """A NumPy generator (opaque to the layers)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool):  # NumPy would take True as 1
        raise ConfigTypeError(f"seed must be None or an integer >= 0, got {seed!r}")
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"seed must be None or an integer >= 0, got {seed!r}") from exc


def rng_state(rng: np.random.Generator) -> dict:
    """The generator's state, JSON-serialisable."""
    return rng.bit_generator.state


def set_rng_state(rng: np.random.Generator, state: dict) -> None:
    rng.bit_generator.state = state


def uniform(rng: np.random.Generator, shape: tuple, bound: float, dtype: str, device: "str | Device") -> Array:
    """``U(-bound, bound)`` of ``shape``, drawn in float64 on the host, cast, then moved."""
    values = rng.uniform(-bound, bound, size=shape).astype(dtype)
    return to_device(values, device)


def zeros(shape: tuple, dtype: str) -> np.ndarray:
    """Host zeros of ``shape`` (moved by the caller)."""
    return np.zeros(shape, dtype=dtype)


def permutation(rng: np.random.Generator, n: int) -> np.ndarray:
    """A host permutation of ``range(n)`` (index arrays are moved by the caller)."""
    return rng.permutation(n)
