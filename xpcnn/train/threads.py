"""How many workers and BLAS threads a ``fit``, ``evaluate`` or ``predict`` uses (see docs/workers.md).

:func:`plan` chooses: ``workers`` threads, each training on its share of every batch (see
:mod:`xpcnn.train.workers`), and the BLAS threads while they run:

* ``workers=None`` (the default) takes one worker per core of this process (its CPUs, divided
  between the ranks on the node), as long as each gets at least :data:`MIN_SHARE` rows of the
  batch and, where the model's matrix work is known, at least :data:`MIN_WORK` FLOPs of it per
  step (a small network's share is over before a second thread pays for itself). It keeps one
  worker for a CUDA model, a batch too small to share, a model with batch statistics (BatchNorm,
  any layer with ``buffers``: workers would normalise each share by itself), and on a busy
  machine (below): a worker thread waiting for a core stalls every step.
* More than one worker holds BLAS to one thread each: the workers themselves fill the cores.
* One worker on a busy machine (the 1-minute load average above the number of CPUs, the
  doctor's rule) also holds BLAS to one thread: OpenBLAS's threads spin while they wait for
  each other, and with another job on the cores that made training 5-12x slower. A thread
  variable (``OPENBLAS_NUM_THREADS``, ...) the user set is left alone.

BLAS is held with threadpoolctl when it is installed (the ``bench`` and ``mpi`` extras), else
through OpenBLAS's own ``openblas_set_num_threads`` in the libraries this process has loaded
(NumPy's and SciPy's wheels bring OpenBLAS); where neither works (another BLAS, no
``/proc/self/maps``), the plan's ``note`` says so and BLAS keeps its threads.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from dataclasses import dataclass
from typing import Iterator

from .._checks import integer
from ..errors import ConfigError

#: The fewest rows of a batch the default gives a worker (docs/workers.md says why).
MIN_SHARE = 32
#: The fewest matrix FLOPs (``xpcnn.tools.roofline.matrix_flops``) the default gives a worker per step,
#: training and inference (docs/performance.md, "Workers": the measurements behind them).
MIN_WORK = {"fit": 10**9, "evaluate": 2 * 10**8, "predict": 2 * 10**8}
#: The variables through which a user sets BLAS threads; when one is set, :func:`plan` leaves BLAS alone.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


@dataclass(frozen=True)
class Plan:
    """``workers`` threads; BLAS held to ``blas_threads`` while they run (``None``: left as it is)."""

    workers: int
    blas_threads: "int | None"
    note: "str | None" = None


def plan(who: str, requested: "int | None", batch: int, device_kind: str = "cpu", ranks_on_node: int = 1,
         batch_statistics: bool = False, flops_per_sample: "int | None" = None) -> Plan:
    """The workers and BLAS threads for batches of ``batch`` rows (see the module).

    ``flops_per_sample``: the model's matrix FLOPs per sample of this work (``None``: unknown, the
    rows alone decide).

    ``batch_statistics``: the model holds a layer that normalises by its batch (BatchNorm), which
    workers would make normalise by each share; the default then keeps one worker.
    """
    cores = max(1, cpus() // max(1, ranks_on_node))
    load = load_average()
    busy = device_kind == "cpu" and load > cpus()
    if requested is not None:
        requested = integer(who, "workers", requested, minimum=1)
        if requested > 1 and device_kind != "cpu":
            raise ConfigError(f"{who}: workers={requested} splits batches between CPU threads, but the model is on "
                              f"{device_kind}; use workers=1 (several GPUs: one rank per GPU, docs/workers.md)")
        workers = requested
    elif device_kind != "cpu" or batch_statistics or busy:
        workers = 1
    else:
        workers = max(1, min(cores, batch // MIN_SHARE))
        if flops_per_sample is not None:
            workers = max(1, min(workers, batch * flops_per_sample // MIN_WORK.get(who, MIN_WORK["fit"])))
    pinned = any(os.environ.get(name) for name in THREAD_VARIABLES)
    if workers > 1:
        return Plan(workers, 1)
    if busy and not pinned:
        return Plan(1, 1, f"load average {load:.1f} on {cpus()} CPUs: other jobs share the cores, so BLAS runs "
                          f"one thread (set OPENBLAS_NUM_THREADS to choose)")
    return Plan(1, None)


# -- holding BLAS to a number of threads --------------------------------------------------------------

_CONTROLLER: list = []  # [threadpoolctl controller, or the OpenBLAS libraries, or None]


def _openblas_libraries() -> list:
    """``(set, get)`` ctypes functions of every OpenBLAS this process has loaded (from /proc/self/maps)."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line})
    except OSError:
        return []
    found = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("", ""), ("scipy_", "64_"), ("scipy_", ""), ("", "64_")):
            setter = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
            getter = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
            if setter is not None and getter is not None:
                setter.argtypes, getter.restype = [ctypes.c_int], ctypes.c_int
                found.append((setter, getter))
                break
    return found


def _controller():
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
            _CONTROLLER.append(ThreadpoolController())
        except ImportError:
            _CONTROLLER.append(_openblas_libraries() or None)
    return _CONTROLLER[0]


def can_hold_blas() -> bool:
    """Whether :func:`blas_threads` can change the thread count here."""
    return _controller() is not None


@contextlib.contextmanager
def blas_threads(limit: "int | None") -> Iterator[None]:
    """BLAS held to ``limit`` threads inside (``None``, or no way to hold it: unchanged)."""
    control = _controller() if limit is not None else None
    if control is None:
        yield
        return
    if not isinstance(control, list):  # threadpoolctl
        with control.limit(limits=limit, user_api="blas"):
            yield
        return
    before = [getter() for _, getter in control]
    for setter, _ in control:
        setter(limit)
    try:
        yield
    finally:
        for (setter, _), count in zip(control, before):
            setter(count)


def blas_note(chosen: Plan) -> "str | None":
    """The plan's note, and one more line where BLAS should be held but cannot be."""
    if chosen.blas_threads is not None and not can_hold_blas():
        return ("cannot hold BLAS to one thread per worker here (no threadpoolctl, no OpenBLAS found): "
                "pip install threadpoolctl, or set OPENBLAS_NUM_THREADS=1")
    return chosen.note
