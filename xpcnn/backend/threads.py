"""Host threads for NumPy: xpcnn's own threads, with NumPy's BLAS held to one meanwhile.

NumPy runs its copies and element-wise passes on one thread; only its BLAS (OpenBLAS) runs
matrix products on several. With host threads on, each forward and backward pass of a
``Sequential`` runs inside :func:`host_threads`: xpcnn splits its large copies, passes and
products into pieces, one per thread (:func:`xpcnn.backend.ranges`), and BLAS runs each product
piece on one thread. Holding BLAS to one thread for the whole pass matters: after a
multi-threaded product of its own, OpenBLAS's workers spin on the other cores for a while, and a
copy on a second thread then gained nothing; setting BLAS back and forth around each product
lost the gain too.

Whether it pays depends on the network (2-core AMD EPYC, float32, batch 128, one process with
both settings stepping in turns): the convnet trained 15% faster (48.6 against 57.4 ms, 46.0
against 53.7) and inferred 5% faster, but the seed network trained 10-25% slower (5.24 against
4.05 ms, 4.45 against 3.90): its mid-sized products (128×3380 by 3380×100) ran 10-20% slower as
two one-thread pieces than on OpenBLAS's own two threads, and its element-wise passes were too
small to gain. So they are off by default (:data:`DEFAULT`). ``XPCNN_HOST_THREADS`` (or
:func:`configure`) turns them on: a thread count (``1``: off, the deterministic choice),
``blas`` (as many as NumPy's BLAS is set to use, which ``OPENBLAS_NUM_THREADS``,
``threadpoolctl`` and ``bench.py --threads`` control; one per rank under ``mpiexec``), or
``auto``, which measures per model (:class:`Chooser`), as ``engine="auto"`` does per layer.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any

#: At most this many host threads, whatever BLAS is set to: a piece must stay large enough to
#: pay for its hand-off (~50 µs) on a machine with many cores.
MAX_THREADS = 8

#: The environment variable that turns host threads on: a thread count, or ``blas``.
ENV = "XPCNN_HOST_THREADS"

_controllers: "list[Any] | None" = None
_lock = threading.Lock()
_state: "dict[str, Any]" = {"depth": 0, "threads": 1, "saved": [], "setting": None}


#: The setting when neither :func:`configure` nor :data:`ENV` gives one: off. ``auto``'s choice
#: went either way on this project's shared 2-core machine (for the convnet's training step and
#: for the seed's, in two fresh runs each), where each setting's epochs drifted by 20%.
DEFAULT = "1"


def configure(setting: "int | str | None") -> None:
    """Host threads for the passes that start from now on: a count (1: off), ``"blas"`` (as many
    as NumPy's BLAS is set to use when a pass starts), ``"auto"`` (``"blas"`` or off, measured per
    kind of pass: :class:`Chooser`), or ``None`` (:data:`ENV`, else :data:`DEFAULT`)."""
    _state["setting"] = None if setting is None else _parse(setting, "host threads")


def _parse(setting, what: str) -> "int | str | None":
    from ..errors import ConfigError

    if setting in ("blas", "auto"):
        return setting
    text = str(setting).strip()
    if text in ("blas", "auto"):
        return text
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{what}: expected a positive number of threads, 'blas' or 'auto', got {setting!r}")
    return int(text)


def _configured(key) -> "tuple[int, bool]":
    """``(threads, timed)`` for the next pass: from :func:`configure`, else :data:`ENV`, else 1;
    ``auto`` gives :func:`blas_threads` or 1 as :class:`Chooser` says for ``key`` (``timed``: the
    pass is one of its measurements)."""
    setting = _state["setting"]
    if setting is None:
        setting = _state["setting"] = _parse(os.environ.get(ENV) or DEFAULT, ENV)
    if setting == "auto":
        threads = blas_threads()
        if key is None or threads == 1:
            return 1, False
        on, timed = CHOOSER.mode(key)
        return (threads if on else 1), timed
    return (blas_threads() if setting == "blas" else min(setting, MAX_THREADS)), False


class Chooser:
    """``auto``: host threads on or off per kind of pass, by measuring, as ``engine="auto"`` does.

    A key is ``(kind, model, ...)``: a model's training step, or its forward or backward pass,
    on one shape. The first :attr:`ROUNDS` passes of a key run with threads on, the next
    :attr:`ROUNDS` with them off, all timed; the best of each counts, and threads stay on only
    when they were over :attr:`MARGIN` times faster. The measured passes are the real ones, so
    nothing is computed twice.

    - In blocks, not in turns: after an "off" pass OpenBLAS's workers spin for a while, which
      would slow the "on" pass after it, and never happens once threads stay on (taking turns,
      the convnet's forward pass measured "off" faster in 2 runs of 2).
    - One choice per model: the first key of a model to finish decides for all of its passes
      (a training step comes first in ``fit``). Passes of one model that chose differently
      (training on, inference off) alternated badly: the convnet's training step, taking turns
      with inference, took 75-85 ms against 62-65 ms with threads always on or always off.
    """

    ROUNDS = 3
    MARGIN = 1.05

    def __init__(self) -> None:
        self.seconds: "dict[Any, dict[bool, list[float]]]" = {}
        #: model -> (the key that decided, threads on?)
        self.chosen: "dict[Any, tuple[Any, bool]]" = {}

    def mode(self, key) -> "tuple[bool, bool]":
        """``(on, timed)`` for the next pass of ``key``."""
        if key[1] in self.chosen:
            return self.chosen[key[1]][1], False
        seen = self.seconds.setdefault(key, {True: [], False: []})
        return len(seen[True]) < self.ROUNDS, True

    def record(self, key, on: bool, seconds: float) -> None:
        seen = self.seconds.get(key)
        if seen is None or key[1] in self.chosen:  # another key of the model decided meanwhile
            return
        seen[on].append(seconds)
        if min(len(seen[True]), len(seen[False])) >= self.ROUNDS:
            self.chosen[key[1]] = (key, min(seen[True]) * self.MARGIN < min(seen[False]))
            for other in [k for k in self.seconds if k[1] == key[1]]:
                del self.seconds[other]


#: The choices of ``auto`` in this process.
CHOOSER = Chooser()


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


def _hold_to_one() -> "list[tuple[Any, int]]":
    """Every loaded BLAS library above one thread set to one: ``[(controller, its count)]``."""
    saved = [(c, c.get_num_threads()) for c in _blas()]
    saved = [(c, count) for c, count in saved if count > 1]
    for c, _ in saved:
        c.set_num_threads(1)
    return saved


def _restore(saved: "list[tuple[Any, int]]") -> None:
    for c, count in saved:
        c.set_num_threads(count)


def active_threads() -> int:
    """Host threads for the pass under way (set when the outermost :func:`host_threads` began);
    1 outside one, or with host threads off."""
    return _state["threads"]


@contextlib.contextmanager
def host_threads(key=None):
    """With host threads on (:func:`configure`), xpcnn's NumPy work inside is split over that
    many threads and BLAS is held to one thread; both are restored when the outermost one ends
    (nested ones change nothing). Off, it changes nothing. ``key`` names the kind of pass for
    ``auto`` (without one, ``auto`` is off)."""
    timed = None
    with _lock:
        if _state["depth"] == 0:
            threads, measure = _configured(key)
            _state.update(threads=threads, saved=_hold_to_one() if threads > 1 else [])
            timed = (threads > 1, time.perf_counter()) if measure else None
        _state["depth"] += 1
    try:
        yield
        if timed is not None:
            CHOOSER.record(key, timed[0], time.perf_counter() - timed[1])
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0:
                _restore(_state["saved"])
                _state.update(threads=1, saved=[])


@contextlib.contextmanager
def single_blas():
    """BLAS on one thread inside, restored after (a no-op when it is on one already)."""
    saved = _hold_to_one()
    try:
        yield
    finally:
        _restore(saved)
