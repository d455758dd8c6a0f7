"""The embedded sample of real MNIST: 200 test-set digits of each class, shipped in the package.

Provenance and licence: ``sample/README.md`` beside this file.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from .idx import read_idx_pair


def load_sample() -> "tuple[np.ndarray, np.ndarray]":
    """``(images (2000, 28, 28) uint8, labels (2000,) uint8)``, in MNIST test-set order."""
    folder = resources.files("xpcnn.datasets") / "sample"
    with resources.as_file(folder / "sample-images-idx3-ubyte.gz") as images, \
            resources.as_file(folder / "sample-labels-idx1-ubyte.gz") as labels:
        return read_idx_pair(images, labels)
