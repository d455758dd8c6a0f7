"""Batches on their way into the model: moved to its device and cast to its dtype, one at a time.

Inputs from any namespace (NumPy arrays for a CUDA model, say) are moved once per batch, so a
data set larger than the GPU's memory trains from the host. With shuffling, NumPy inputs are
sliced on the host first (``x[order[lo:hi]]``); other namespaces take their rows where they live.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace, is_numpy_array

from .. import backend


def to_model(model: Any, x: Any) -> Any:
    """``x`` on ``model.device``, floating or integer data cast to ``model.dtype``."""
    x = backend.to_device(x, model.device)
    xp = model.xp
    dtype = backend.as_dtype(xp, model.dtype)
    if x.dtype != dtype:
        x = xp.astype(x, dtype)
    return x


def take(model: Any, x: Any, idx: Any) -> Any:
    """Rows ``idx`` (host indices) of ``x``, moved to the model."""
    if is_numpy_array(x):
        return to_model(model, x[idx])
    xp = array_namespace(x)
    return to_model(model, xp.take(x, backend.to_device(idx, backend.Device.of(x)), axis=0))


def batch(model: Any, x: Any, y: Any, order: Any, lo: int, hi: int) -> "tuple[Any, Any]":
    """Batch ``[lo, hi)`` of ``(x, y)``, in ``order`` (host indices) when shuffling, moved to the model."""
    if order is None:
        return to_model(model, x[lo:hi, ...]), to_model(model, y[lo:hi, ...])
    return take(model, x, order[lo:hi]), take(model, y, order[lo:hi])
