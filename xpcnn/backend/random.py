"""Seeded randomness.

Initial weights are drawn on the host with NumPy, then moved, so a seed gives the same weights
on every device. Dropout masks are drawn where the data is, every training step, without a
host round trip: the model's host generator gives one 63-bit key per mask (:func:`random_key`,
host work only), and the data's library draws ``U[0, 1)`` from a generator seeded with that key
(:func:`uniform_from_key`: NumPy's PCG64 on the host, cuRAND's Philox on a GPU). The model's
generator, whose state checkpoints keep, thus decides every mask, and the same seed gives the
same masks on a given device."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError, ConfigTypeError
from .devices import Device, get_device, to_device

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


def random_key(rng: np.random.Generator) -> int:
    """The generator's next key in ``[0, 2⁶³ - 1)``, a Python int (host work only)."""
    return int(rng.integers(0, 2**63 - 1, dtype=np.int64))


def uniform_from_key(key: int, shape: tuple, dtype: str, device: "str | Device") -> Array:
    """``U[0, 1)`` of ``shape`` in ``dtype`` (``"float32"``, ``"float64"``), drawn on ``device`` by its
    library's generator seeded with ``key``: the same key gives the same numbers on that device."""
    dev = get_device(device)
    return dev.backend.random_uniform(int(key), tuple(shape), dtype, dev)
