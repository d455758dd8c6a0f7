"""The IDX reader (xpcnn/datasets/idx.py): good files, and every way a file can be wrong."""

import gzip

import numpy as np
import pytest

from xpcnn.datasets import IdxError, load_sample, read_idx, read_idx_pair, write_idx
from xpcnn.datasets.idx import parse_idx

def header(code: int, shape: tuple) -> bytes:
    return bytes([0, 0, code, len(shape)]) + np.asarray(shape, dtype=">u4").tobytes()


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_write_then_read_gives_the_same_array(tmp_path, suffix, dtype):
    array = (np.arange(2 * 3 * 4) - 7).reshape(2, 3, 4).astype(dtype)
    path = tmp_path / f"a-idx3{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype).newbyteorder("=") and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)


def test_values_are_big_endian_on_disk(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(header(0x0B, (2,)) + b"\x01\x02\xff\xfe")
    np.testing.assert_array_equal(read_idx(path), np.array([0x0102, -2], dtype=np.int16))


def test_truncated_body_names_the_file_and_the_sizes(tmp_path):
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(header(0x08, (2, 28, 28)) + bytes(28 * 28 * 2 - 1))
    with pytest.raises(IdxError, match=r"images-idx3-ubyte: truncated: 1583 bytes for shape \(2, 28, 28\)"):
        read_idx(path)


def test_trailing_bytes_are_rejected(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(header(0x08, (3,)) + bytes(4))
    with pytest.raises(IdxError, match="labels: has trailing bytes"):
        read_idx(path)


@pytest.mark.parametrize("raw, message", [
    (b"\x00\x01\x08\x01" + bytes(8), "bad magic number 0x00010801"),
    (b"PK\x03\x04" + bytes(8), "bad magic number"),
    (b"\x00\x00\x07\x01" + bytes(8), "unknown IDX dtype code 0x07"),
    (b"\x00\x00\x08\x00", "declares 0 dimensions"),
    (b"\x00\x00\x08\x03\x00\x00", "truncated header"),
    (b"\x00\x00", "too short for an IDX header"),
])
def test_corrupt_headers_are_rejected_with_what_is_wrong(tmp_path, raw, message):
    path = tmp_path / "bad-idx"
    path.write_bytes(raw)
    with pytest.raises(IdxError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_gzip_is_rejected(tmp_path):
    whole = gzip.compress(header(0x08, (100,)) + bytes(range(100)))
    path = tmp_path / "labels.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(IdxError, match=r"labels.gz: corrupt or truncated gzip data"):
        read_idx(path)


def test_missing_file_is_an_idx_error_naming_it(tmp_path):
    with pytest.raises(IdxError, match="nothere.*cannot read"):
        read_idx(tmp_path / "nothere")


def test_pair_with_different_counts_is_rejected(tmp_path):
    write_idx(tmp_path / "img", np.zeros((5, 28, 28), dtype=np.uint8))
    write_idx(tmp_path / "lab", np.zeros((4,), dtype=np.uint8))
    with pytest.raises(IdxError, match=r"img holds 5 images but .*lab holds 4 labels"):
        read_idx_pair(tmp_path / "img", tmp_path / "lab")


def test_pair_with_swapped_files_is_rejected(tmp_path):
    write_idx(tmp_path / "img", np.zeros((5, 28, 28), dtype=np.uint8))
    write_idx(tmp_path / "lab", np.zeros((5,), dtype=np.uint8))
    with pytest.raises(IdxError, match=r"lab: expected uint8 images \(N, H, W\)"):
        read_idx_pair(tmp_path / "lab", tmp_path / "img")
    write_idx(tmp_path / "float", np.zeros((5, 28, 28), dtype=np.float32))
    with pytest.raises(IdxError, match="expected uint8 images"):
        read_idx_pair(tmp_path / "float", tmp_path / "lab")


def test_parse_idx_reads_bytes_without_a_file():
    np.testing.assert_array_equal(parse_idx(header(0x08, (3,)) + b"\x01\x02\x03", "mem"), [1, 2, 3])


def test_embedded_sample_is_200_real_digits_per_class():
    images, labels = load_sample()
    assert images.shape == (2000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [200] * 10
    assert 0 < images.mean() < 255


def test_real_mnist_test_set_reads_as_10000_digits(mnist_test_dir):
    images, labels = read_idx_pair(mnist_test_dir / "t10k-images-idx3-ubyte.gz",
                                   mnist_test_dir / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
