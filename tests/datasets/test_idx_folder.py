"""Your own IDX files (``--dataset idx``, xpcnn/datasets/mnist.py ``load_idx_folder``): no checksum,
so every field is checked, each failure with its own message."""

import numpy as np
import pytest

from xpcnn.datasets import load_dataset, load_idx_folder, write_idx
from xpcnn.errors import ConfigError, DataError

NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def folder_with(tmp_path, **override):
    arrays = {
        NAMES[0]: np.zeros((6, 8, 8), np.uint8), NAMES[1]: np.array([0, 1, 2, 0, 1, 2], np.uint8),
        NAMES[2]: np.zeros((3, 8, 8), np.uint8), NAMES[3]: np.array([2, 1, 0], np.uint8),
    }
    for name, array in arrays.items():
        value = override.get(name.split("-idx")[0].replace("-", "_"), array)
        if isinstance(value, bytes):
            (tmp_path / name).write_bytes(value)
        elif value is not None:
            write_idx(tmp_path / name, value)
    return tmp_path


def test_good_files_load_as_the_idx_dataset(tmp_path):
    data = load_dataset("idx", data_dir=folder_with(tmp_path))
    assert data.name == "idx" and "not checksummed" in data.source and data.train.images.shape == (6, 8, 8)
    assert data.class_names == tuple("0123456789")


@pytest.mark.parametrize("override, fragment", [
    ({"train_images": b"\x00\x01\x08\x03"}, "bad magic number"),
    ({"train_images": b"\x00\x00\x07\x03"}, "unknown IDX dtype code 0x07"),
    ({"train_images": np.zeros((6, 64), np.uint8)}, r"expected uint8 images \(N, H, W\), got uint8 \(6, 64\)"),
    ({"train_labels": np.zeros((6, 1), np.uint8)}, r"expected uint8 labels \(N,\)"),
    ({"train_labels": np.array([0, 1, 2], np.uint8)}, "holds 6 images but .*train-labels-idx1-ubyte holds 3 labels"),
    ({"t10k_labels": np.array([2, 10, 0], np.uint8)}, "label 10 at item 1 is outside the 10 classes 0..9"),
    ({"train_images": bytes([0, 0, 8, 3, 0, 0, 0, 6, 0, 0, 0, 8, 0, 0, 0, 8]) + bytes(383)},
     r"truncated: 399 bytes for shape \(6, 8, 8\)"),
    ({"train_images": np.zeros((0, 8, 8), np.uint8), "train_labels": np.zeros(0, np.uint8)}, "holds no images"),
    ({"t10k_images": np.zeros((3, 9, 8), np.uint8)}, "holds 8x8 images but .*t10k-images-idx3-ubyte holds 9x8"),
    ({"t10k_images": np.zeros((3, 8, 8), np.float32)}, "expected uint8 images"),
    ({"t10k_labels": None}, "has no t10k-labels-idx1-ubyte.gz or t10k-labels-idx1-ubyte"),
])
def test_each_way_a_file_can_be_wrong_has_its_own_message(tmp_path, override, fragment):
    with pytest.raises(DataError, match=fragment):
        load_idx_folder(folder_with(tmp_path, **override))


def test_the_idx_dataset_needs_an_existing_folder(tmp_path):
    with pytest.raises(ConfigError, match="needs a folder"):
        load_idx_folder(None)
    with pytest.raises(DataError, match="no such folder"):
        load_idx_folder(tmp_path / "nope")
