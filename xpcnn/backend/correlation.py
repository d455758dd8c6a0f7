"""The correlation dispatch: each array goes to its own library's signal and FFT modules.

``correlate`` / ``convolve`` send NumPy arrays to ``scipy.signal`` and CuPy arrays to
``cupyx.scipy.signal`` (any other namespace through the host), always with contiguous inputs
and an explicit method. ``rfft2`` / ``irfft2`` send them to ``scipy.fft`` (multi-threaded),
``cupy.fft``, or the namespace's own ``fft`` extension. The table lives in
:mod:`xpcnn.backend.libraries`; here are the checks every call shares.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import ConfigError, DeviceMismatchError
from .libraries import backend_for

Array = Any

MODES = ("valid", "full", "same")
METHODS = ("direct", "fft", "auto")


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
    if mode not in MODES:
        raise ConfigError(f"mode must be 'valid', 'full' or 'same', got {mode!r}")
    if method not in METHODS:
        raise ConfigError(f"method must be 'direct', 'fft' or 'auto', got {method!r}")
    if method == "auto":
        method = choose_method(tuple(x.shape), tuple(kernel.shape), mode)
    library = backend_for(x)
    if backend_for(kernel) is not library:
        raise DeviceMismatchError(f"{name}: input and kernel come from different array namespaces "
                         f"({library.name} and {backend_for(kernel).name})")
    return library.signal_call(name, x, kernel, mode, method)


def correlate(x: Array, kernel: Array, mode: str = "valid", method: str = "auto") -> Array:
    """N-d cross-correlation ``x ⋆ kernel`` on the array's own device (all axes correlated)."""
    return _signal_call("correlate", x, kernel, mode, method)


def convolve(x: Array, kernel: Array, mode: str = "full", method: str = "auto") -> Array:
    """N-d convolution ``x ∗ kernel`` on the array's own device (all axes convolved)."""
    return _signal_call("convolve", x, kernel, mode, method)


def rfft2(x: Array, shape: tuple) -> Array:
    """``(..., H, W)`` real -> ``(..., Hf, Wf // 2 + 1)`` complex, zero-padded to ``shape = (Hf, Wf)``."""
    return backend_for(x).rfft2(x, tuple(shape))


def irfft2(x: Array, shape: tuple) -> Array:
    """The inverse of :func:`rfft2`: ``(..., Hf, Wf // 2 + 1)`` complex -> ``(..., Hf, Wf)`` real."""
    return backend_for(x).irfft2(x, tuple(shape))


def contiguous(x: Array) -> Array:
    """``x`` laid out contiguously (row-major) where its library has layouts; a no-op elsewhere."""
    return backend_for(x).contiguous(x)


def synchronize(x: Array) -> None:
    """Wait for the work queued on ``x``'s device (a no-op on the host)."""
    backend_for(x).synchronize(x)
