"""Host threads for NumPy (opt-in): xpcnn's own threads, with NumPy's BLAS held to one meanwhile.

NumPy runs its copies and element-wise passes on one thread; only its BLAS (OpenBLAS) runs
matrix products on several. With host threads on (``XPCNN_HOST_THREADS=N``, or ``blas`` for as
many as NumPy's BLAS is set to use; :func:`configure` from Python), each forward and backward
pass of a ``Sequential`` runs inside :func:`host_threads`: xpcnn splits its large copies,
passes and products into pieces, one per thread (:func:`xpcnn.backend.ranges`), and BLAS runs
each product piece on one thread. Holding BLAS to one thread for the whole pass matters: after
a multi-threaded product of its own, OpenBLAS's workers spin on the other cores for a while, and
a copy on a second thread then gained nothing; setting BLAS back and forth around each product
lost the gain too.

Off by default, because it depends on the network (2-core AMD EPYC, float32, batch 128, one
process with both settings stepping in turns): the convnet trained 15% faster (48.6 against
57.4 ms, 46.0 against 53.7) and inferred 5% faster, but the seed network trained 10-25% slower
(5.24 against 4.05 ms, 4.45 against 3.90). Its mid-sized products (128×3380 by 3380×100) ran
10-20% slower as two one-thread pieces than on OpenBLAS's own two threads, and its element-wise
passes were too small to gain.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

#: At most this many host threads, whatever BLAS is set to: a piece must stay large enough to
#: pay for its hand-off (~50 µs) on a machine with many cores.
MAX_THREADS = 8

#: The environment variable that turns host threads on: a thread count, or ``blas``.
ENV = "XPCNN_HOST_THREADS"

_controllers: "list[Any] | None" = None
_lock = threading.Lock()
_state: "dict[str, Any]" = {"depth": 0, "threads": 1, "saved": [], "setting": None}


def configure(setting: "int | str | None") -> None:
    """Host threads for the passes that start from now on: a count (1: off), ``"blas"`` (as many
    as NumPy's BLAS is set to use when a pass starts), or ``None`` (off, the default)."""
    _state["setting"] = _parse(setting, "host threads")


def _parse(setting, what: str) -> "int | str | None":
    from ..errors import ConfigError

    if setting is None or setting == "blas":
        return setting
    text = str(setting).strip()
    if text == "blas":
        return text
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{what}: expected a positive number of threads or 'blas', got {setting!r}")
    return int(text)


def _configured() -> int:
    """Threads the next pass would use: from :func:`configure`, else :data:`ENV`, else 1."""
    import os

    setting = _state["setting"]
    if setting is None and os.environ.get(ENV):
        setting = _state["setting"] = _parse(os.environ[ENV], ENV)
    if setting is None:
        return 1
    return blas_threads() if setting == "blas" else min(setting, MAX_THREADS)


def _blas() -> "list[Any]":
    """threadpoolctl's controllers of the BLAS libraries loaded now (NumPy's among them)."""
    global _controllers
    if _controllers is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - threadpoolctl is a dependency
            _controllers = []
        else:
            _controllers = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
    return _controllers


def blas_threads() -> int:
    """The threads NumPy's BLAS may use now (the smallest limit of the loaded BLAS libraries),
    at most :data:`MAX_THREADS`; 1 when none can be asked."""
    counts = [c.get_num_threads() for c in _blas()]
    return max(1, min([*counts, MAX_THREADS])) if counts else 1


def active_threads() -> int:
    """Host threads for the pass under way (set when the outermost :func:`host_threads` began);
    1 outside one, or with host threads off."""
    return _state["threads"]


@contextlib.contextmanager
def host_threads():
    """With host threads on (:func:`configure`), xpcnn's NumPy work inside is split over that
    many threads and BLAS is held to one thread; both are restored when the outermost one ends
    (nested ones change nothing). Off, it changes nothing."""
    with _lock:
        if _state["depth"] == 0:
            threads = _configured()
            saved = [c.get_num_threads() for c in _blas()] if threads > 1 else []
            for c in _blas() if saved else ():
                c.set_num_threads(1)
            _state.update(threads=threads, saved=saved)
        _state["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0:
                for c, count in zip(_blas(), _state["saved"]):
                    c.set_num_threads(count)
                _state.update(threads=1, saved=[])


@contextlib.contextmanager
def single_blas():
    """BLAS on one thread inside, restored after (a no-op when it is on one already)."""
    controllers = [c for c in _blas() if c.get_num_threads() > 1]
    before = [c.get_num_threads() for c in controllers]
    for c in controllers:
        c.set_num_threads(1)
    try:
        yield
    finally:
        for c, count in zip(controllers, before):
            c.set_num_threads(count)
