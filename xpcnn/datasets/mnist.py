"""MNIST and Fashion-MNIST from local files or the public mirrors, every file checksummed.

Each of the four files is looked for, in order, in:

1. ``data_dir`` (the argument; ``--data-dir`` in the CLI), and its ``<dataset>/`` subfolder;
2. ``$XPCNN_DATA``, and its ``<dataset>/`` subfolder;
3. the user cache, ``~/.cache/xpcnn/<dataset>`` (where downloads go);
4. system folders: ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``);
5. the dataset's public mirrors, downloaded into the cache with pooch, SHA-256 verified
   (skipped when ``download=False`` or ``$XPCNN_OFFLINE`` is set).

In every folder both ``name.gz`` and the gunzipped ``name`` count. A file is used only if
its checksum matches (see :mod:`.registry`); otherwise the search goes on. When nothing is
found, :class:`DataNotFoundError` lists every place tried and how to provide the files.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .idx import IdxError, check_pair, decompress, parse_idx, read_bytes
from .registry import DATASETS, DatasetInfo, IdxFile


class DataNotFoundError(FileNotFoundError):
    """No verified copy of a dataset file was found locally or could be downloaded."""

    def __init__(self, message: str, attempts: "list[str]") -> None:
        super().__init__(message)
        self.attempts = attempts

    def __str__(self) -> str:
        return self.args[0]


@dataclass
class Split:
    """Raw images ``(N, H, W)`` uint8, labels ``(N,)`` uint8 and the files they came from."""

    images: np.ndarray
    labels: np.ndarray
    sources: "list[str]" = field(default_factory=list)


def cache_dir(name: str) -> Path:
    """The user cache folder of dataset ``name`` (``~/.cache/xpcnn/<name>`` on Linux)."""
    import pooch

    return Path(pooch.os_cache("xpcnn")) / name


def offline() -> bool:
    """True when ``$XPCNN_OFFLINE`` is set to anything but ``""`` or ``"0"``."""
    return os.environ.get("XPCNN_OFFLINE", "") not in ("", "0")


def search_places(name: str, data_dir=None) -> "list[tuple[str, Path | None]]":
    """``(label, folder)`` pairs in search order; ``folder`` is ``None`` for an unset variable."""
    info = DATASETS[name]
    places: "list[tuple[str, Path | None]]" = []
    if data_dir is not None:
        places += [("data_dir", Path(data_dir)), ("data_dir", Path(data_dir) / name)]
    env = os.environ.get("XPCNN_DATA")
    if env:
        places += [("$XPCNN_DATA", Path(env)), ("$XPCNN_DATA", Path(env) / name)]
    else:
        places.append(("$XPCNN_DATA", None))
    places.append(("user cache", cache_dir(name)))
    places += [("system folder", Path(d)) for d in info.system_dirs]
    return places


def _short(exc: BaseException) -> str:
    """An exception as one short line (a failed connection as just that)."""
    text = " ".join(str(exc).split())
    if "ConnectionError" in type(exc).__name__ or "NameResolution" in text or "Failed to resolve" in text:
        return f"cannot connect, offline? ({type(exc).__name__})"
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__


def verify(raw: bytes, entry: IdxFile, where: str) -> np.ndarray:
    """The array in ``raw`` if it hashes to ``entry``'s ``.gz`` or content digest, else :class:`IdxError`."""
    if hashlib.sha256(raw).hexdigest() == entry.sha256:
        return parse_idx(decompress(raw, where), where)
    content = decompress(raw, where)
    if entry.content_sha256 is not None and hashlib.sha256(content).hexdigest() == entry.content_sha256:
        return parse_idx(content, where)
    known = "its published .gz" if entry.content_sha256 is None else "its published .gz or IDX content"
    raise IdxError(f"{where}: checksum mismatch (SHA-256 does not match {known}); not used")


def _look_in(folder: Path, entry: IdxFile, attempts: "list[str]", label: str) -> "tuple[np.ndarray, str] | None":
    found_any = False
    for candidate in (folder / entry.name, folder / entry.stem):
        if not candidate.is_file():
            continue
        found_any = True
        try:
            return verify(read_bytes(candidate), entry, str(candidate)), str(candidate)
        except IdxError as exc:
            attempts.append(f"{label} {candidate} ({str(exc).split(': ', 1)[-1]})")
    if not found_any:
        attempts.append(f"{label} {folder} (no {entry.name} or {entry.stem})")
    return None


def _download(url: str, sha256: str, folder: Path, fname: str, progress: bool) -> str:
    """Fetch ``url`` into ``folder/fname`` with pooch; pooch deletes a file whose hash differs."""
    import pooch

    pooch.get_logger().setLevel(logging.WARNING)  # the progress bar says enough
    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=30)
    return pooch.retrieve(url, known_hash=f"sha256:{sha256}", fname=fname, path=folder,
                          downloader=downloader)


def _fetch(info: DatasetInfo, entry: IdxFile, attempts: "list[str]", dead: set, progress: bool):
    folder = cache_dir(info.name)
    for mirror in info.mirrors:
        url = mirror + entry.name
        if mirror in dead:
            attempts.append(f"download {url} (skipped: the mirror failed before)")
            continue
        try:
            path = _download(url, entry.sha256, folder, entry.name, progress)
            return verify(read_bytes(path), entry, path), path
        except Exception as exc:  # network errors, pooch's checksum ValueError, IdxError
            dead.add(mirror)
            attempts.append(f"download {url} (failed: {_short(exc)})")
    return None


def _not_found(info: DatasetInfo, entry: IdxFile, attempts: "list[str]") -> DataNotFoundError:
    files = ", ".join(f.name for f in info.files())
    how = (f"put the files ({files}; .gz or gunzipped) in one of those folders, set XPCNN_DATA "
           f"or pass data_dir (--data-dir), or download them from {info.mirrors[0]}")
    if info.install_hint:
        how += f", or {info.install_hint}"
    message = f"{info.name}: no verified copy of {entry.name}; tried: {'; '.join(attempts)}. To provide it: {how}"
    return DataNotFoundError(message, attempts)


def locate(info: DatasetInfo, entry: IdxFile, data_dir=None, download=None, progress: bool = True,
           _dead: "set | None" = None) -> "tuple[np.ndarray, str]":
    """``(array, path)`` of the first verified copy of ``entry``, searching in the documented order."""
    attempts: "list[str]" = []
    for label, folder in search_places(info.name, data_dir):
        if folder is None:
            attempts.append(f"{label} (not set)")
            continue
        hit = _look_in(folder, entry, attempts, label)
        if hit is not None:
            return hit
    download = not offline() if download is None else download
    if not download:
        attempts.append("download (disabled" + (": $XPCNN_OFFLINE is set)" if offline() else ")"))
    else:
        hit = _fetch(info, entry, attempts, set() if _dead is None else _dead, progress)
        if hit is not None:
            return hit
    raise _not_found(info, entry, attempts)


def load_split(name: str, split: str, *, data_dir=None, download=None, progress: bool = True,
               _dead: "set | None" = None) -> Split:
    """``Split(images (N, 28, 28) uint8, labels (N,) uint8)`` of ``"train"`` or ``"test"``."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: expected one of {sorted(DATASETS)}")
    info = DATASETS[name]
    if split not in info.splits:
        raise ValueError(f"{name}: unknown split {split!r}: expected one of {sorted(info.splits)}")
    dead = set() if _dead is None else _dead
    image_entry, label_entry = info.splits[split]
    images, images_path = locate(info, image_entry, data_dir, download, progress, dead)
    labels, labels_path = locate(info, label_entry, data_dir, download, progress, dead)
    check_pair(images, labels, images_path, labels_path)
    return Split(images, labels, [images_path, labels_path])


def load_mnist(name: str = "mnist", *, data_dir=None, download=None, progress: bool = True) -> "dict[str, Split]":
    """``{"train": Split, "test": Split}`` of ``"mnist"`` or ``"fashion-mnist"``.

    A mirror that fails once is not tried again for the other files of this call, so an
    offline machine fails fast.
    """
    dead: set = set()
    return {split: load_split(name, split, data_dir=data_dir, download=download, progress=progress, _dead=dead)
            for split in ("train", "test")}
