"""Devices and the explicit moves between them.

``"cpu"`` is NumPy, ``"cuda"`` / ``"cuda:N"`` is CuPy on GPU N, ``"torch:cpu"``, ``"torch:cuda"``,
``"torch:cuda:N"`` and ``"torch:mps"`` (or a ``torch.device``) are PyTorch tensors there (CuPy and
PyTorch imported lazily), and any other array-API namespace (``array_api_strict`` in the tests) is
reachable through :meth:`Device.of`.
A device carries its namespace and its :class:`~xpcnn.backend.libraries.ArrayBackend`, which
knows how to send an array to it: no code branches on a device's name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import array_api_compat
import numpy as np
from array_api_compat import array_namespace

from ..errors import ConfigError, ConfigTypeError, DeviceError, DeviceMismatchError
from .libraries import (CUPY, CUPY_EXTRA, HOST, NUMPY, TORCH, ArrayBackend, backend_for, import_cupy, import_torch,
                        missing_cuda_libraries)

Array = Any


@dataclass(frozen=True)
class Device:
    """Where arrays live: an array namespace, that namespace's device object, and its backend.

    ``name`` is the xpcnn spelling (``"cpu"``, ``"cuda:0"``) or, for other namespaces,
    ``"<namespace>:<device>"``; two devices are equal when their names are.
    """

    xp: Any
    native: Any
    name: str
    backend: ArrayBackend = field(default=HOST, compare=False, repr=False)

    @staticmethod
    def of(x: Array) -> "Device":
        """The device an array lives on."""
        library = backend_for(x)
        if library is NUMPY:
            return CPU
        native = array_api_compat.device(x)
        xp = array_namespace(x)
        if library is CUPY:
            return Device(xp, native, f"cuda:{native.id}", CUPY)
        if library is TORCH:
            return Device(xp, native, _torch_name(native), TORCH)
        return Device(xp, native, f"{xp.__name__}:{native}", library)

    def __str__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Device) and self.name == other.name

    def __hash__(self) -> int:
        return hash(self.name)


CPU = Device(array_namespace(np.empty(0)), "cpu", "cpu", NUMPY)

_CUDA_RE = re.compile(r"^cuda(?::(\d+))?$")
_TORCH_RE = re.compile(r"^torch:(cpu|cuda|mps)(?::(\d+))?$")

#: What a device may be, for the one-line errors.
DEVICES_ACCEPTED = "'cpu', 'cuda', 'cuda:N', 'torch:cpu', 'torch:cuda', 'torch:cuda:N', 'torch:mps' or a torch.device"


def _torch_name(native) -> str:
    """xpcnn's name for a ``torch.device``: ``torch:cpu``, ``torch:cuda:N``, ``torch:mps``."""
    if native.type == "cuda":
        return f"torch:cuda:{native.index or 0}"
    return f"torch:{native.type}"


def _torch_device(spec: str, kind: str, index: "int | None") -> Device:
    """A torch device that this machine has, or a one-line :class:`DeviceError` saying why not."""
    torch = import_torch()
    if kind == "cpu":
        if index not in (None, 0):
            raise ConfigError(f"unknown device {spec!r}: expected {DEVICES_ACCEPTED}")
        native = torch.device("cpu")
    elif kind == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {spec!r}: PyTorch {torch.__version__} sees no CUDA GPU "
                              f"(a CPU-only build, or no driver)")
        count = torch.cuda.device_count()  # pragma: no cover - needs a GPU
        index = torch.cuda.current_device() if index is None else index  # pragma: no cover
        if index >= count:  # pragma: no cover - needs a GPU
            raise DeviceError(f"device {spec!r}: only {count} CUDA GPU(s) visible "
                              f"(torch:cuda:0..torch:cuda:{count - 1})")
        native = torch.device("cuda", index)  # pragma: no cover - needs a GPU
    else:
        if index not in (None, 0):
            raise ConfigError(f"unknown device {spec!r}: expected {DEVICES_ACCEPTED}")
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceError(f"device {spec!r}: PyTorch {torch.__version__} sees no Apple GPU (MPS)")
        native = torch.device("mps")  # pragma: no cover - needs an Apple GPU
    xp = array_namespace(torch.empty(0, device=native))
    return Device(xp, native, _torch_name(native), TORCH)


def get_device(spec: "str | Device | None" = None) -> Device:
    """Resolve ``"cpu"``, ``"cuda"``, ``"cuda:N"`` (NumPy, CuPy), ``"torch:cpu"``, ``"torch:cuda"``,
    ``"torch:cuda:N"``, ``"torch:mps"``, a ``torch.device``, or a :class:`Device` to a :class:`Device`."""
    if spec is None:
        return CPU
    if isinstance(spec, Device):
        return spec
    if type(spec).__module__ == "torch" and type(spec).__name__ == "device":  # a torch.device (no import to ask)
        if spec.type not in ("cpu", "cuda", "mps"):
            raise ConfigError(f"unknown device {spec!r}: expected {DEVICES_ACCEPTED}")
        index = None if spec.type == "cpu" else spec.index
        return _torch_device(f"torch.device({str(spec)!r})", spec.type, index)
    if not isinstance(spec, str):
        raise ConfigTypeError(f"device must be {DEVICES_ACCEPTED}, or a Device, got {spec!r}")
    text = spec.strip().lower()
    if text == "cpu":
        return CPU
    torch_match = _TORCH_RE.match(text)
    if torch_match is not None:
        index = torch_match.group(2)
        return _torch_device(spec, torch_match.group(1), None if index is None else int(index))
    match = _CUDA_RE.match(text)
    if match is None:
        raise ConfigError(f"unknown device {spec!r}: expected {DEVICES_ACCEPTED}")
    index = int(match.group(1) or 0)
    cp = import_cupy()
    try:
        count = cp.cuda.runtime.getDeviceCount()
    except Exception as exc:  # pragma: no cover - depends on the machine
        raise DeviceError(f"device {spec!r}: CuPy is installed but no CUDA GPU is visible ({exc})") from exc
    if count == 0:  # pragma: no cover - depends on the machine
        raise DeviceError(f"device {spec!r}: CuPy is installed but no CUDA GPU is visible")
    if index >= count:  # pragma: no cover - depends on the machine
        raise DeviceError(f"device {spec!r}: only {count} CUDA GPU(s) visible (cuda:0..cuda:{count - 1})")
    missing = missing_cuda_libraries(cp)
    if missing:
        first = next(iter(missing.values()))
        raise DeviceError(f"device {spec!r}: CuPy cannot load CUDA's {', '.join(missing)} ({first}); "
                          f"CuPy with CUDA's libraries as wheels: {CUPY_EXTRA}")
    return Device(array_namespace(cp.empty(0)), cp.cuda.Device(index), f"cuda:{index}", CUPY)


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


def _is_host_value(x: Any) -> bool:
    return isinstance(x, (int, float, list, tuple, np.ndarray, np.generic))


def to_numpy(x: Array) -> np.ndarray:
    """An explicit copy to host memory as a NumPy array (``.get()`` for CuPy)."""
    if _is_host_value(x):
        return np.asarray(x)
    return backend_for(x).to_host(x)


def host_buffer(x: Any, dtype: "str | None" = None) -> np.ndarray:
    """A fresh, writable, row-major NumPy copy of ``x`` (an array of any namespace and device, or a
    Python sequence), cast to ``dtype`` if given: what code that reads or writes raw host memory
    needs (MPI buffers, ONNX and safetensors files, hashes), without knowing NumPy itself."""
    return np.array(to_numpy(x), dtype=dtype, copy=True, order="C")


def to_device(x: Array, device: "str | Device") -> Array:
    """Move ``x`` (any namespace, or a NumPy array) to ``device``; a no-op when it is already there."""
    dev = get_device(device)
    if _is_host_value(x):
        return dev.backend.send(np.asarray(x), dev)
    source = backend_for(x)
    if Device.of(x) == dev:
        return x
    if source is dev.backend and source is not HOST:
        return dev.backend.send(x, dev)  # within one library (CuPy: device to device)
    return dev.backend.send(source.to_host(x), dev)


def dtype_name(x: Array) -> str:
    """``x``'s dtype as a plain name, ``"float32"``, whatever the namespace calls it (``array_api_strict.float32``)."""
    return str(x.dtype).rsplit(".", 1)[-1]


def as_dtype(xp, name: "str | Any"):
    """``"float32"`` / ``"float64"`` (or a dtype object) as the namespace's dtype."""
    if not isinstance(name, str):
        return name
    if name not in ("float32", "float64"):
        raise ConfigError(f"dtype must be 'float32' or 'float64', got {name!r}")
    return getattr(xp, name)
