"""Output files: checked before any work, written whole or not at all.

:func:`check_output_path` is what a run calls for every path it will write (checkpoint,
metrics, plot) *before* training, so a typo costs seconds, not a run: the folder must exist and
take a new file, the path must not be a folder, and an existing file must not be read-only
(read-only is respected, even where the permissions would let ``rename`` replace it).

:func:`atomic_write` writes through a temporary file in the same folder, flushed to disk, then
renamed over the path: a reader sees the old file or the new one, never half of one, and no
temporary file is left behind on any failure (Ctrl-C included). Errors name the user's path,
never the temporary one.

What stands at the path decides how it is written (as ``cp`` or a shell redirection would):

* a symbolic link is followed: the file it points to is replaced atomically (the temporary file
  sits in the target's folder), and the link stays a link;
* ``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N`` and ``/proc/self/fd/N`` write to this process's
  open descriptor ``N`` (after flushing Python's own ``sys.stdout`` and ``sys.stderr``), so the
  output lands in order wherever the stream goes;
* a character device (``/dev/null``, a terminal) or a FIFO is written straight, never replaced
  (not even by root, whom the permissions would let rename over ``/dev/full``); a full device
  is one line, ``cannot write (No space left on device)``; a FIFO without a reader is refused in
  one line instead of waiting for one;
* anything else that is not a regular file (a block device, a socket) is refused in one line.

A process killed while writing (SIGKILL, a power cut) leaves its temporary file, named
``.NAME.xpcnn-PID-XXXX.tmp`` beside ``NAME``; the next write to ``NAME`` removes those whose
process is gone.
"""

from __future__ import annotations

import errno
import glob
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


#: Paths that name one of this process's open descriptors: written to that descriptor.
_DESCRIPTOR_PATHS = {"/dev/stdout": 1, "/dev/stderr": 2}


def open_descriptor(path: "str | os.PathLike") -> "int | None":
    """``N`` when ``path`` is ``/dev/stdout`` (1), ``/dev/stderr`` (2), ``/dev/fd/N`` or ``/proc/self/fd/N``."""
    text = os.path.abspath(os.fspath(path))
    text = "/" + text.lstrip("/") if text.startswith("/") else text  # POSIX keeps a leading //
    if text in _DESCRIPTOR_PATHS:
        return _DESCRIPTOR_PATHS[text]
    for prefix in ("/dev/fd/", "/proc/self/fd/", f"/proc/{os.getpid()}/fd/"):
        if text.startswith(prefix) and text[len(prefix):].isdigit():
            return int(text[len(prefix):])
    return None


def _stream_kind(path: Path) -> "str | None":
    """``"device"`` or ``"fifo"`` for a character device or FIFO at ``path`` (links followed), ``"other"`` for
    any other non-regular file that is not a folder, ``None`` for a regular file, a folder or nothing."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if stat.S_ISCHR(mode):
        return "device"
    if stat.S_ISFIFO(mode):
        return "fifo"
    return None if stat.S_ISREG(mode) or stat.S_ISDIR(mode) else "other"


def _refuse_other(path: "str | os.PathLike", what: str, error: "type[XpcnnError]") -> None:
    raise error(f"{what} {os.fspath(path)}: is neither a regular file nor a character device or FIFO; give a file "
                f"name")


def check_output_path(path: "str | os.PathLike", what: str, error: "type[XpcnnError]" = OutputError) -> Path:
    """``path`` as a :class:`Path` if a file can be written there, else ``error`` naming ``what`` and ``path``.

    Creates and removes one empty temporary file in the folder (of the link's target, for a
    symbolic link): the only sure test that the folder takes new files. A descriptor path
    (``/dev/stdout``), a character device or a FIFO needs only to be writable.
    """
    text = os.fspath(path)
    if not text:
        raise error(f"{what}: the path is empty")
    if text.endswith(("/", os.sep)):  # Path("new/") is "new": the file would be named after the folder
        raise error(f"{what} {text}: ends with a folder separator; give a file name, e.g. {text}model.npz")
    if open_descriptor(text) is not None:
        return Path(text)
    kind = _stream_kind(Path(text))
    if kind == "other":
        _refuse_other(text, what, error)
    if kind is not None:
        if not os.access(text, os.W_OK):
            raise error(f"{what} {text}: is not writable")
        return Path(text)
    path = Path(text)
    folder = Path(os.path.realpath(text)).parent
    if path.is_dir():
        raise error(f"{what} {text}: is a folder; give a file name")
    if not folder.is_dir():
        missing = "does not exist" if not folder.exists() else "is not a folder"
        raise error(f"{what} {text}: the folder {folder} {missing}")
    if path.exists() and _is_read_only(path):
        raise error(f"{what} {text}: the file is read-only; make it writable or choose another path")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.xpcnn-{os.getpid()}-", suffix=".check", dir=folder)
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
    read-only ``path`` is refused, not replaced. A symbolic link is followed (its target is
    replaced); a descriptor path, a character device or a FIFO is written straight (see the module).
    """
    fd_number = open_descriptor(path)
    if fd_number is not None:
        return _write_descriptor(fd_number, path, write, what, binary, error)
    kind = _stream_kind(Path(path))
    if kind == "other":
        _refuse_other(path, what, error)
    if kind is not None:
        return _write_stream(Path(path), kind, write, what, binary, error)
    shown, path = path, Path(os.path.realpath(path))
    if path.exists() and not path.is_dir() and _is_read_only(path):
        raise error(f"{what} {shown}: the file is read-only; make it writable or choose another path")
    folder = path.parent
    remove_stale_temporaries(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.xpcnn-{os.getpid()}-", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise error(f"{what} {shown}: cannot write ({exc.strerror or exc})") from None
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
        raise error(f"{what} {shown}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        _remove(tmp)
        raise


def _write_descriptor(number: int, shown, write, what: str, binary: bool, error) -> None:
    """``write`` to a duplicate of this process's descriptor ``number``, after Python's own buffers."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    try:
        with os.fdopen(os.dup(number), "wb" if binary else "w") as f:
            write(f)
    except OSError as exc:
        raise error(f"{what} {os.fspath(shown)}: cannot write ({exc.strerror or exc})") from None


def _write_stream(path: Path, kind: str, write, what: str, binary: bool, error) -> None:
    """``write`` straight into a character device or FIFO: opened without waiting (a FIFO with no reader is
    refused), then written blocking."""
    import fcntl

    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if kind == "fifo" and exc.errno == errno.ENXIO:
            raise error(f"{what} {path}: the FIFO has no reader; start the reader first") from None
        raise error(f"{what} {path}: cannot write ({exc.strerror or exc})") from None
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
    except OSError as exc:
        raise error(f"{what} {path}: cannot write ({exc.strerror or exc})") from None


def remove_stale_temporaries(path: "str | os.PathLike") -> "list[Path]":
    """Remove the temporary files ``.NAME.xpcnn-PID-*.tmp`` beside ``path`` whose process ``PID`` is gone
    (killed while writing ``path``); returns the ones removed. Others' files and live writers' are kept."""
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.xpcnn-*-*.tmp"):
        pid = tmp.name[len(path.name) + 8:].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            _remove(str(tmp))
            removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def _remove(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass
