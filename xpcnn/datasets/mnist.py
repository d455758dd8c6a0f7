"""MNIST and Fashion-MNIST from local files or the public mirrors, every file checksummed.

The four files of a dataset are looked for, in order, in:

1. ``data_dir`` (the argument; ``--data-dir`` in the CLI), then its ``<dataset>/`` subfolder;
2. ``$XPCNN_DATA``, then its ``<dataset>/`` subfolder;
3. the user cache, ``~/.cache/xpcnn/<dataset>`` (where downloads go);
4. system folders: ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``);
5. the dataset's public mirrors, downloaded into the cache with pooch, SHA-256 verified
   (skipped when ``download=False`` or ``$XPCNN_OFFLINE`` is set).

The first of these folders that holds any of the four files is *the* source: all four come
from it, and never one from here and another from there. In every folder both ``name.gz`` and
the gunzipped ``name`` count. A file there must match its checksum (see :mod:`.registry`);
one that does not is an error naming it, its SHA-256 and the published one, as is a file
missing beside the others. Only the user cache, which is xpcnn's own, is completed or repaired
by downloading. When no folder holds any file and nothing can be downloaded,
:class:`DataNotFoundError` lists every place tried and how to provide the files.

A user's own IDX files, which no checksum can know, are read by :func:`load_idx_folder`
(``--dataset idx``), with every field of them checked instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from .idx import IdxError, check_pair, decompress, parse_idx, read_bytes, read_idx
from .registry import DATASETS, DatasetInfo, IdxFile


class DataNotFoundError(DataError, FileNotFoundError):
    """No copy of a dataset's files was found locally, and none could be downloaded."""

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
    digest = hashlib.sha256(raw).hexdigest()
    if digest == entry.sha256:
        return parse_idx(decompress(raw, where), where)
    if entry.content_sha256 is not None:
        try:
            content = decompress(raw, where)
        except IdxError:
            content = None
        if content is not None and hashlib.sha256(content).hexdigest() == entry.content_sha256:
            return parse_idx(content, where)
    expected = f"{entry.sha256} (the published .gz)"
    if entry.content_sha256 is not None:
        expected += f" or {entry.content_sha256} (its IDX content)"
    raise IdxError(f"{where}: checksum mismatch: SHA-256 {digest}, expected {expected}")


def _candidates(folder: Path, entry: IdxFile) -> "list[Path]":
    """The copies of ``entry`` in ``folder``: ``name.gz``, then the gunzipped ``name``."""
    return [p for p in (folder / entry.name, folder / entry.stem) if p.is_file()]


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
    how = (f"put the four files ({files}; .gz or gunzipped) together in one of those folders, set XPCNN_DATA "
           f"or pass data_dir (--data-dir), or download them from {info.mirrors[0]}")
    if info.install_hint:
        how += f", or {info.install_hint}"
    message = f"{info.name}: no verified copy of {entry.name}; tried: {'; '.join(attempts)}. To provide it: {how}"
    return DataNotFoundError(message, attempts)


def find_source(info: DatasetInfo, data_dir=None, attempts: "list[str] | None" = None) -> "tuple[str, Path] | None":
    """``(label, folder)`` of the first place in the search order holding any of the dataset's files."""
    attempts = [] if attempts is None else attempts
    first = info.files()[0]
    for label, folder in search_places(info.name, data_dir):
        if folder is not None and label == "$XPCNN_DATA" and folder == Path(os.environ["XPCNN_DATA"]) \
                and not folder.is_dir():
            why = "is a file, not a folder" if folder.exists() else "does not exist"
            raise DataError(f"XPCNN_DATA={folder} {why}; set it to the folder that holds the dataset files "
                            f"(or their {info.name}/ subfolder), or unset XPCNN_DATA")
        if folder is None:
            attempts.append(f"{label} (not set)")
        elif any(_candidates(folder, entry) for entry in info.files()):
            return label, folder
        else:
            attempts.append(f"{label} {folder} (no {first.name} or {first.stem})")
    return None


def _from_source(info: DatasetInfo, source: "tuple[str, Path]", entry: IdxFile, download: bool,
                 progress: bool, dead: set) -> "tuple[np.ndarray, str]":
    """``entry`` from the chosen folder: verified, or an error; the user cache may download it."""
    label, folder = source
    problems = []
    for candidate in _candidates(folder, entry):
        try:
            return verify(read_bytes(candidate), entry, str(candidate)), str(candidate)
        except IdxError as exc:
            problems.append(str(exc))
    if label == "user cache":  # xpcnn's own folder: download what is missing or damaged
        attempts = [f"{label} {p}" for p in problems] or [f"{label} {folder} (no {entry.name} or {entry.stem})"]
        if download:
            hit = _fetch(info, entry, attempts, dead, progress)
            if hit is not None:
                return hit
        else:
            attempts.append("download (disabled" + (": $XPCNN_OFFLINE is set)" if offline() else ")"))
        raise _not_found(info, entry, attempts)
    if problems:
        raise DataError(f"{info.name}: {'; '.join(problems)}. A file that fails its checksum is never used, nor "
                        f"replaced by a copy from elsewhere: put the published file there, or train on your own "
                        f"files with --dataset idx")
    held = sorted(p.name for e in info.files() for p in _candidates(folder, e))
    raise DataError(f"{info.name}: {label} {folder} holds {', '.join(held)} but not {entry.name} (or {entry.stem}); "
                    f"put all four files in one folder (xpcnn never mixes files from different places)")


def locate(info: DatasetInfo, entry: IdxFile, data_dir=None, download=None, progress: bool = True,
           _dead: "set | None" = None) -> "tuple[np.ndarray, str]":
    """``(array, path)`` of ``entry`` from the dataset's one source (see the module's docstring)."""
    download = not offline() if download is None else download
    dead = set() if _dead is None else _dead
    attempts: "list[str]" = []
    source = find_source(info, data_dir, attempts)
    if source is not None:
        return _from_source(info, source, entry, download, progress, dead)
    if not download:
        attempts.append("download (disabled" + (": $XPCNN_OFFLINE is set)" if offline() else ")"))
    else:
        hit = _fetch(info, entry, attempts, dead, progress)
        if hit is not None:
            return hit
    raise _not_found(info, entry, attempts)


def _check_data_dir(data_dir) -> None:
    if data_dir is not None and not Path(data_dir).is_dir():
        raise DataError(f"data_dir {os.fspath(data_dir)}: no such folder")


def load_split(name: str, split: str, *, data_dir=None, download=None, progress: bool = True,
               _dead: "set | None" = None) -> Split:
    """``Split(images (N, 28, 28) uint8, labels (N,) uint8)`` of ``"train"`` or ``"test"``."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}: expected one of {sorted(DATASETS)}")
    info = DATASETS[name]
    if split not in info.splits:
        raise ConfigError(f"{name}: unknown split {split!r}: expected one of {sorted(info.splits)}")
    _check_data_dir(data_dir)
    dead = set() if _dead is None else _dead
    image_entry, label_entry = info.splits[split]
    images, images_path = locate(info, image_entry, data_dir, download, progress, dead)
    labels, labels_path = locate(info, label_entry, data_dir, download, progress, dead)
    check_pair(images, labels, images_path, labels_path, len(info.class_names))
    return Split(images, labels, [images_path, labels_path])


def load_mnist(name: str = "mnist", *, data_dir=None, download=None, progress: bool = True) -> "dict[str, Split]":
    """``{"train": Split, "test": Split}`` of ``"mnist"`` or ``"fashion-mnist"``, from one source.

    A mirror that fails once is not tried again for the other files of this call, so an
    offline machine fails fast.
    """
    dead: set = set()
    return {split: load_split(name, split, data_dir=data_dir, download=download, progress=progress, _dead=dead)
            for split in ("train", "test")}


def load_idx_folder(folder, num_classes: int = 10) -> "dict[str, Split]":
    """Your own IDX files: ``{"train", "test"}`` splits from the four MNIST file names in ``folder``.

    No checksum can vouch for them, so every field is checked instead, each failure with its own
    message: the magic number and dtype code, the dimensions (images ``(N, H, W)`` uint8, labels
    ``(N,)`` uint8), the size on disk against the header, the item counts of images and labels,
    labels in ``0..num_classes-1``, and the same image size in both splits.
    """
    if folder is None:
        raise ConfigError("the idx dataset needs a folder: pass data_dir (--data-dir DIR)")
    _check_data_dir(folder)
    folder = Path(folder)
    splits = {}
    for split, (image_entry, label_entry) in DATASETS["mnist"].splits.items():
        paths = []
        for entry in (image_entry, label_entry):
            found = _candidates(folder, entry)
            if not found:
                raise DataError(f"idx: {folder} has no {entry.name} or {entry.stem} (the four MNIST file names)")
            paths.append(found[0])
        images, labels = read_idx(paths[0]), read_idx(paths[1])
        check_pair(images, labels, str(paths[0]), str(paths[1]), num_classes)
        splits[split] = Split(images, labels, [str(p) for p in paths])
    train, test = splits["train"].images, splits["test"].images
    if train.shape[1:] != test.shape[1:]:
        raise DataError(f"idx: {splits['train'].sources[0]} holds {train.shape[1]}x{train.shape[2]} images but "
                        f"{splits['test'].sources[0]} holds {test.shape[1]}x{test.shape[2]}")
    return splits
