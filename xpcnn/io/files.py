"""Output files: checked before any work, written whole or not at all.

:func:`check_output_path` is what a run calls for every path it will write (checkpoint,
metrics, plot) *before* training, so a typo costs seconds, not a run: the folder must exist and
take a new file, the path must not be a folder, and an existing file must not be read-only
(read-only is respected, even where the permissions would let ``rename`` replace it).

:func:`atomic_write` writes through a temporary file in the same folder, flushed to disk, then
renamed over the path: a reader sees the old file or the new one, never half of one, and no
temporary file is left behind on any failure (Ctrl-C included). Errors name the user's path,
never the temporary one.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Callable

from ..errors import OutputError, XpcnnError


def _is_read_only(path: Path) -> bool:
    """No write permission for us, or none for anybody (root may write anything: ask the mode bits)."""
    mode = path.stat().st_mode
    return not os.access(path, os.W_OK) or not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


def check_output_path(path: "str | os.PathLike", what: str, error: "type[XpcnnError]" = OutputError) -> Path:
    """``path`` as a :class:`Path` if a file can be written there, else ``error`` naming ``what`` and ``path``.

    Creates and removes one empty temporary file in the folder: the only sure test that the
    folder takes new files.
    """
    text = os.fspath(path)
    if not text:
        raise error(f"{what}: the path is empty")
    if text.endswith(("/", os.sep)):  # Path("new/") is "new": the file would be named after the folder
        raise error(f"{what} {text}: ends with a folder separator; give a file name, e.g. {text}model.npz")
    path = Path(text)
    folder = path.parent
    if path.is_dir():
        raise error(f"{what} {text}: is a folder; give a file name")
    if not folder.is_dir():
        missing = "does not exist" if not folder.exists() else "is not a folder"
        raise error(f"{what} {text}: the folder {folder} {missing}")
    if path.exists() and _is_read_only(path):
        raise error(f"{what} {text}: the file is read-only; make it writable or choose another path")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".check", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise error(f"{what} {text}: cannot create a file in {folder} ({exc.strerror or exc})") from None
    return path


def atomic_write(
    path: "str | os.PathLike",
    write: Callable[[IO], None],
    what: str,
    *,
    binary: bool = True,
    error: "type[XpcnnError]" = OutputError,
) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path``.

    The file gets the permissions a new file would (``0o666`` less the umask). An existing
    read-only ``path`` is refused, not replaced.
    """
    path = Path(path)
    if path.exists() and not path.is_dir() and _is_read_only(path):
        raise error(f"{what} {path}: the file is read-only; make it writable or choose another path")
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise error(f"{what} {path}: cannot write ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise error(f"{what} {path}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        _remove(tmp)
        raise


def _remove(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
