"""Property tests of the IDX reader (xpcnn/datasets/idx.py): random, mutated and lying bytes raise
IdxError (a DataError) and nothing else: no IndexError, struct.error, ZeroDivisionError, or a
MemoryError from a header that claims 10^12 items."""

import gzip

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xpcnn.datasets import IdxError
from xpcnn.datasets.idx import check_pair, decompress, parse_idx, read_idx, write_idx

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
CODES = [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]


def valid_file(shape=(3, 4, 5), code=0x08) -> bytes:
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    body = np.arange(int(np.prod(shape)), dtype=dtype).tobytes()
    return bytes([0, 0, code, len(shape)]) + np.asarray(shape, ">u4").tobytes() + body


def parse_or_idx_error(raw: bytes):
    try:
        return parse_idx(decompress(raw, "f"), "f")
    except IdxError:
        return None


@FAST
@given(st.binary(max_size=600))
def test_random_bytes_raise_idx_error_or_parse(raw):
    parse_or_idx_error(raw)
    parse_or_idx_error(b"\x1f\x8b" + raw)


@FAST
@given(st.data(), st.booleans())
def test_mutated_files_raise_idx_error_or_parse_to_what_the_header_says(data, packed):
    raw = bytearray(valid_file(code=data.draw(st.sampled_from(CODES))))
    if packed:
        raw = bytearray(gzip.compress(bytes(raw), mtime=0))
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        at = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        if kind == "flip" and raw:
            raw[at] ^= data.draw(st.integers(1, 255))
        elif kind == "cut":
            del raw[at:at + data.draw(st.integers(1, 8))]
        else:
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=8))
    array = parse_or_idx_error(bytes(raw))
    if array is not None:  # what parsed is exactly what its header declares
        content = decompress(bytes(raw), "f")
        assert tuple(array.shape) == tuple(int(d) for d in np.frombuffer(content[4:4 + 4 * content[3]], ">u4"))


@FAST
@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4), st.sampled_from(CODES), st.booleans())
def test_a_header_claiming_any_size_never_allocates_it(dims, code, packed):
    raw = bytes([0, 0, code, len(dims)]) + np.asarray(dims, ">u4").tobytes() + bytes(64)
    if packed:
        raw = gzip.compress(raw, mtime=0)
    array = parse_or_idx_error(raw)
    assert array is None or array.nbytes <= 64


def test_a_gzip_bomb_stops_at_what_the_header_declares():
    bomb = gzip.compress(valid_file((2, 2)) + bytes(50_000_000), compresslevel=9, mtime=0)
    assert len(bomb) < 100_000
    with pytest.raises(IdxError, match="unpacks to more bytes than its IDX header declares"):
        decompress(bomb, "bomb.gz")


def test_a_header_claiming_10_to_the_12_items_is_refused_in_one_message():
    raw = bytes([0, 0, 8, 3]) + np.asarray([10**6, 10**3, 10**3], ">u4").tobytes()
    with pytest.raises(IdxError, match=r"header declares shape \(1000000, 1000, 1000\) of uint8 \(1000000000016 "
                                       r"bytes\), more than"):
        parse_idx(raw, "f")


@FAST
@given(st.lists(st.integers(0, 255), min_size=1, max_size=30), st.integers(1, 256))
def test_labels_outside_the_classes_are_refused_and_the_others_accepted(labels, num_classes):
    labels = np.asarray(labels, np.uint8)
    images = np.zeros((labels.size, 2, 2), np.uint8)
    bad = labels >= num_classes
    if bad.any():
        first = int(np.argmax(bad))
        with pytest.raises(IdxError, match=f"lab: label {labels[first]} at item {first} is outside the {num_classes}"):
            check_pair(images, labels, "img", "lab", num_classes)
    else:
        check_pair(images, labels, "img", "lab", num_classes)


def test_multi_member_gzip_and_zero_padding_read_like_gzip_does(tmp_path):
    raw = valid_file((2, 3))
    path = tmp_path / "a.gz"
    path.write_bytes(gzip.compress(raw[:10], mtime=0) + gzip.compress(raw[10:], mtime=0) + bytes(8))
    np.testing.assert_array_equal(read_idx(path), np.arange(6, dtype=np.uint8).reshape(2, 3))
    write_idx(tmp_path / "b.gz", np.arange(6, dtype=np.uint8).reshape(2, 3))
    assert gzip.decompress((tmp_path / "b.gz").read_bytes()) == raw
