"""Exceptions with messages that name the layer, what it expected and what it got."""

from __future__ import annotations


class ShapeError(ValueError):
    """An array's shape does not fit the layer, loss or model it was given to."""


class XpcnnDtypeError(TypeError):
    """An array's dtype does not match the model's (a float32 model never computes in float64)."""


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, say)."""


def format_shape(shape: tuple, batch: bool = True) -> str:
    """``(N, 1, 28, 28)`` for a per-sample shape ``(1, 28, 28)``."""
    dims = ("N",) + tuple(shape) if batch else tuple(shape)
    return "(" + ", ".join(str(d) for d in dims) + ")"
