"""Seeded randomness: drawn on the host with NumPy, then moved, so a seed gives the same numbers
on every device."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError, ConfigTypeError
from .devices import Device, to_device

Array = Any


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
