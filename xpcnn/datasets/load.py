"""One entry point for the four sources: ``mnist``, ``fashion-mnist``, the embedded ``sample``,
and ``idx``, your own IDX files (no checksum, every field checked)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .mnist import Split, load_idx_folder, load_mnist
from .preprocess import split_per_class
from .registry import DATASETS
from .sample import load_sample

NAMES = ("mnist", "fashion-mnist", "sample", "idx")


@dataclass
class Dataset:
    """Raw train and test splits, where they came from, and the class names."""

    name: str
    train: Split
    test: Split
    source: str
    class_names: "tuple[str, ...]"


def load_dataset(name: str, *, data_dir=None, download=None, progress: bool = True) -> Dataset:
    """The raw splits of ``name``.

    ``"sample"`` is the embedded real-MNIST sample (200 MNIST *test-set* digits per class):
    the first 100 of each class are its training split, the other 100 its test split.
    ``"idx"`` reads the four MNIST file names from ``data_dir``, without checksums (see
    :func:`~xpcnn.datasets.mnist.load_idx_folder`); labels must be digits 0..9.
    """
    if name == "sample":
        images, labels = load_sample()
        first, second = split_per_class(labels)
        where = "embedded sample (xpcnn/datasets/sample)"
        return Dataset(
            name, Split(images[first], labels[first], [where + ", first half of each class"]),
            Split(images[second], labels[second], [where + ", second half of each class"]),
            "embedded real-MNIST sample: 100 digits per class to train, 100 others per class to test",
            DATASETS["mnist"].class_names,
        )
    if name == "idx":
        splits = load_idx_folder(data_dir)
        files = splits["train"].sources + splits["test"].sources
        return Dataset(name, splits["train"], splits["test"], "your IDX files (not checksummed): " + ", ".join(files),
                       tuple(str(d) for d in range(10)))
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}: expected one of {list(NAMES)}")
    splits = load_mnist(name, data_dir=data_dir, download=download, progress=progress)
    files = splits["train"].sources + splits["test"].sources
    return Dataset(name, splits["train"], splits["test"], f"{name} files: " + ", ".join(files),
                   DATASETS[name].class_names)
