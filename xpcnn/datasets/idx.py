"""The IDX file format of MNIST and Fashion-MNIST, read with every field checked.

Layout: ``0x00 0x00 <dtype code> <ndim>``, then ``ndim`` big-endian uint32 dimensions, then
the values, big-endian. Files may be gzip-compressed (``.gz``).
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np


class IdxError(ValueError):
    """An IDX file is truncated, corrupt, or does not match its partner file."""


_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_bytes(path: "str | os.PathLike") -> bytes:
    """The file's bytes as stored (still gzip-compressed if it is)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise IdxError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def decompress(raw: bytes, name: str) -> bytes:
    """``raw`` gunzipped when it starts with the gzip magic ``1f 8b``, else unchanged."""
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise IdxError(f"{name}: corrupt or truncated gzip data ({exc})") from exc
    return raw


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """The array held by uncompressed IDX bytes; ``name`` (the file) goes into every error."""
    if len(raw) < 4:
        raise IdxError(f"{name}: too short for an IDX header ({len(raw)} bytes)")
    if raw[0] != 0 or raw[1] != 0:
        raise IdxError(f"{name}: bad magic number 0x{raw[:4].hex()} (an IDX file starts with 0x0000)")
    code, ndim = raw[2], raw[3]
    if code not in _DTYPES:
        raise IdxError(f"{name}: unknown IDX dtype code 0x{code:02x}")
    if ndim == 0:
        raise IdxError(f"{name}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxError(f"{name}: truncated header ({len(raw)} bytes, needs {header})")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _DTYPES[code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise IdxError(f"{name}: {what}: {len(raw)} bytes for shape {shape} of {dtype.name} (expected {expected})")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: "str | os.PathLike") -> np.ndarray:
    """The array stored in an IDX file (gzip or not), as a native-endian NumPy array."""
    name = os.fspath(path)
    return parse_idx(decompress(read_bytes(name), name), name)


def check_pair(images: np.ndarray, labels: np.ndarray, images_name: str, labels_name: str) -> None:
    """Images ``(N, H, W)`` uint8 and labels ``(N,)`` uint8 with the same ``N``, or an :class:`IdxError`."""
    if images.ndim != 3 or images.dtype != np.uint8:
        raise IdxError(f"{images_name}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise IdxError(f"{labels_name}: expected uint8 labels (N,), got {labels.dtype} {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise IdxError(
            f"{images_name} holds {images.shape[0]} images but {labels_name} holds {labels.shape[0]} labels"
        )


def read_idx_pair(images_path, labels_path) -> "tuple[np.ndarray, np.ndarray]":
    """``(images (N, H, W) uint8, labels (N,) uint8)`` with counts and shapes checked."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    check_pair(images, labels, os.fspath(images_path), os.fspath(labels_path))
    return images, labels


def write_idx(path: "str | os.PathLike", array: np.ndarray) -> None:
    """Write ``array`` as IDX (gzip-compressed when ``path`` ends in ``.gz``)."""
    array = np.asarray(array)
    codes = {v.newbyteorder("=") if v.itemsize > 1 else v: k for k, v in _DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise IdxError(f"IDX cannot store dtype {array.dtype}")
    code = codes[native]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    body = array.astype(_DTYPES[code], copy=False).tobytes()
    with open(path, "wb") as raw:
        if os.fspath(path).endswith(".gz"):
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:  # mtime=0: reproducible bytes
                f.write(header + body)
        else:
            raw.write(header + body)
