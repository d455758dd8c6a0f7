"""From raw digits to network inputs, as in the derivation's experiment.

    select   the first ``limit`` samples of each chosen class, in file order
    shuffle  one seeded permutation of what was selected
    scale    uint8 ``(N, H, W)`` -> float32 ``(N, 1, H, W)`` in ``[0, 1]``
    one-hot  label ``classes[k]`` -> row ``e_k`` of ``(N, K)``, ``K = len(classes)``
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ConfigError, DataError


def select_classes(labels: np.ndarray, classes: Sequence[int], limit: "int | None" = None) -> np.ndarray:
    """Indices of the first ``limit`` samples (all when ``None``) of each class in ``classes``."""
    classes = [int(c) for c in classes]
    if len(set(classes)) != len(classes):
        raise ConfigError(f"classes must be distinct, got {classes}")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be >= 1 per class (or None for all), got {limit}")
    picked = []
    for c in classes:
        where = np.flatnonzero(labels == c)
        if where.size == 0:
            raise DataError(f"class {c} has no samples (labels present: {sorted(set(labels.tolist()))})")
        picked.append(where[:limit])
    return np.concatenate(picked)


def to_inputs(images: np.ndarray) -> np.ndarray:
    """uint8 ``(N, H, W)`` -> float32 ``(N, 1, H, W)`` scaled to ``[0, 1]``."""
    return (images.astype(np.float32) / np.float32(255.0))[:, None, :, :]


def one_hot(index: np.ndarray, num_classes: int) -> np.ndarray:
    """Class indices ``(N,)`` -> float32 one-hot rows ``(N, num_classes)``."""
    return np.eye(num_classes, dtype=np.float32)[index]


def prepare(
    images: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[int] = (0, 1),
    limit: "int | None" = None,
    seed: "int | None" = 0,
) -> "tuple[np.ndarray, np.ndarray, np.ndarray]":
    """``(x (N, 1, H, W) float32, y (N, K) float32 one-hot, index (N,) int64)``.

    ``index[n]`` is the position of sample ``n``'s label in ``classes`` (the one-hot column).
    """
    chosen = select_classes(labels, classes, limit)
    chosen = chosen[np.random.default_rng(seed).permutation(chosen.size)]
    lookup = np.full(256, -1, dtype=np.int64)
    lookup[np.asarray(classes, dtype=np.int64)] = np.arange(len(classes))
    index = lookup[labels[chosen]]
    return to_inputs(images[chosen]), one_hot(index, len(classes)), index


def hold_out(x: np.ndarray, y: np.ndarray, fraction: float) -> "tuple[tuple, tuple]":
    """``((x_train, y_train), (x_val, y_val))``: the last ``round(fraction · N)`` samples (at least one) held out.

    :func:`prepare` has already shuffled the samples with the run's seed, so the held-out part is
    a seeded random subset, the same on every run with that seed.
    """
    n = x.shape[0]
    n_val = max(1, int(round(fraction * n)))
    if n_val >= n:
        raise DataError(f"a validation split of {fraction:g} leaves no training sample out of {n}; "
                        f"use a smaller --val-split or more samples (--limit)")
    return (x[:n - n_val], y[:n - n_val]), (x[n - n_val:], y[n - n_val:])


def split_per_class(labels: np.ndarray) -> "tuple[np.ndarray, np.ndarray]":
    """Indices of the first and second half of every class (file order): disjoint train/test parts."""
    first, second = [], []
    for c in np.unique(labels):
        where = np.flatnonzero(labels == c)
        half = where.size // 2
        first.append(where[:half])
        second.append(where[half:])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))


def class_counts(labels: np.ndarray, classes: Sequence[int]) -> "list[int]":
    """How many samples each class in ``classes`` has (to tell a user when ``limit`` asks for more)."""
    return [int(np.count_nonzero(labels == c)) for c in classes]
