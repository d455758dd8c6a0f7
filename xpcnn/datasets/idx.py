"""The IDX file format of MNIST and Fashion-MNIST, read with every field checked.

Layout: ``0x00 0x00 <dtype code> <ndim>``, then ``ndim`` big-endian uint32 dimensions, then
the values, big-endian. Files may be gzip-compressed (``.gz``).
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

from ..errors import DataError


class IdxError(DataError):
    """An IDX file is truncated, corrupt, or does not match its partner file."""


#: The largest IDX file this reader accepts, unpacked: 2 GiB, far above MNIST's largest file
#: (47 MB), so that a header claiming 10¹² items is an error, not an allocation.
MAX_BYTES = 1 << 31

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
        size = os.path.getsize(path)
        if size > MAX_BYTES:
            raise IdxError(f"{path}: {size} bytes, more than the {MAX_BYTES} an IDX file may have here")
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise IdxError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def _declared_size(head: "bytes | bytearray") -> int:
    """The whole IDX size the header at the start of ``head`` declares (``MAX_BYTES`` until it is complete)."""
    if len(head) < 4 or len(head) < 4 + 4 * head[3] or head[2] not in _DTYPES:
        return MAX_BYTES
    dims = np.frombuffer(bytes(head[4:4 + 4 * head[3]]), dtype=">u4")
    return 4 + 4 * head[3] + int(np.prod(dims, dtype=object)) * _DTYPES[head[2]].itemsize


def _gunzip(raw: bytes, name: str) -> bytes:
    """Unpack every gzip member of ``raw``, never past what the unpacked IDX header declares."""
    out = bytearray()
    data = raw
    while data:
        stream = zlib.decompressobj(wbits=31)  # one gzip member, its CRC and length checked
        try:
            while not stream.eof:
                chunk = stream.decompress(data, 1 << 20)
                data = stream.unconsumed_tail
                out += chunk
                if len(out) > min(MAX_BYTES, _declared_size(out)):
                    raise IdxError(f"{name}: unpacks to more bytes than its IDX header declares")
                if not chunk and not data:
                    break
        except zlib.error as exc:
            raise IdxError(f"{name}: corrupt or truncated gzip data ({exc})") from exc
        if not stream.eof:
            raise IdxError(f"{name}: corrupt or truncated gzip data (the stream ends early)")
        data = stream.unused_data
        if not data.strip(b"\0"):  # gzip allows zero padding after the last member
            break
    return bytes(out)


def decompress(raw: bytes, name: str) -> bytes:
    """``raw`` gunzipped when it starts with the gzip magic ``1f 8b``, else unchanged."""
    return _gunzip(raw, name) if raw[:2] == b"\x1f\x8b" else raw


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
    expected = _declared_size(raw)
    if expected > MAX_BYTES:
        raise IdxError(f"{name}: header declares shape {shape} of {dtype.name} ({expected} bytes), more than the "
                       f"{MAX_BYTES} an IDX file may have here")
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise IdxError(f"{name}: {what}: {len(raw)} bytes for shape {shape} of {dtype.name} (expected {expected})")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: "str | os.PathLike") -> np.ndarray:
    """The array stored in an IDX file (gzip or not), as a native-endian NumPy array."""
    name = os.fspath(path)
    return parse_idx(decompress(read_bytes(name), name), name)


def check_pair(images: np.ndarray, labels: np.ndarray, images_name: str, labels_name: str,
               num_classes: "int | None" = 10) -> None:
    """Images ``(N, H, W)`` uint8 and labels ``(N,)`` uint8 in ``0..num_classes-1`` with the same
    ``N >= 1``, or an :class:`IdxError` saying which of these fails (``num_classes=None``: any label)."""
    if images.ndim != 3 or images.dtype != np.uint8:
        raise IdxError(f"{images_name}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise IdxError(f"{labels_name}: expected uint8 labels (N,), got {labels.dtype} {labels.shape}")
    if images.shape[0] == 0:
        raise IdxError(f"{images_name}: holds no images")
    if min(images.shape[1:]) == 0:
        raise IdxError(f"{images_name}: images of size {images.shape[1]}x{images.shape[2]} hold no pixels")
    if images.shape[0] != labels.shape[0]:
        raise IdxError(
            f"{images_name} holds {images.shape[0]} images but {labels_name} holds {labels.shape[0]} labels"
        )
    if num_classes is not None and int(labels.max()) >= num_classes:
        index = int(np.argmax(labels >= num_classes))
        raise IdxError(f"{labels_name}: label {int(labels[index])} at item {index} is outside the "
                       f"{num_classes} classes 0..{num_classes - 1}")


def read_idx_pair(images_path, labels_path, num_classes: "int | None" = 10) -> "tuple[np.ndarray, np.ndarray]":
    """``(images (N, H, W) uint8, labels (N,) uint8)`` with counts, shapes and label range checked."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    check_pair(images, labels, os.fspath(images_path), os.fspath(labels_path), num_classes)
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
