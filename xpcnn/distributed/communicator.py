"""Processes that train one model together: ``init()`` and the :class:`Communicator` it returns.

    mpiexec -n 4 python my_script.py                      # every process runs the same script
    comm = xpcnn.distributed.init()                       # rank, size, local_rank
    model.to(comm.device("cuda"))                         # GPU local_rank of its node
    model.fit(x, y, batch_size=256, communicator=comm)    # the same x, y and seed everywhere

The engine is MPI (mpi4py) for host arrays and NCCL for CuPy arrays; both live in
:mod:`xpcnn.distributed.world`, the only module that imports them. This module holds what
every engine shares: the ranks, collectives on one flat buffer, the check that every rank was
started with the same settings, and the way a failing rank takes the whole job down with it.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from typing import Any

from .. import backend
from ..errors import DistributedError
from . import world as engines


class Communicator:
    """This process's place among ``size`` ranks, and the collectives they run together.

    ``rank`` is unique in the job, ``local_rank`` unique on this node (``COMM_TYPE_SHARED``);
    rank 0 is the one that prints and writes files. ``stats`` counts the allreduces and the
    seconds spent in them (for a GPU buffer: the time to enqueue NCCL's kernels).
    """

    def __init__(self, world: Any) -> None:
        self._world = world
        self.rank, self.size = world.rank, world.size
        self.local_rank, self.local_size = world.local_rank, world.local_size
        self.stats = {"allreduce_calls": 0, "allreduce_seconds": 0.0, "allreduce_bytes": 0}

    def __repr__(self) -> str:
        return (f"Communicator(rank={self.rank}, size={self.size}, local_rank={self.local_rank}, "
                f"backend={self.backend!r})")

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    @property
    def backend(self) -> str:
        """``"mpi"``, or ``"mpi+nccl"`` once NCCL has reduced a GPU buffer."""
        return self._world.engines

    def device(self, spec: "str | backend.Device" = "cpu") -> backend.Device:
        """``spec`` for this rank: ``"cuda"`` is GPU ``local_rank`` (GPU 0 when each rank sees one GPU).

        An explicit ``"cuda:N"`` or a :class:`~xpcnn.Device` is returned unchanged.
        """
        if not (isinstance(spec, str) and spec.strip().lower() == "cuda"):
            return backend.get_device(spec)
        count = engines.cuda_device_count()
        if count == 1:
            return backend.get_device("cuda:0")
        if count and self.local_size > count:
            raise DistributedError(f"{self.local_size} ranks on this node but {count} GPUs: "
                                   f"start at most {count} processes per node")
        return backend.get_device(f"cuda:{self.local_rank}")

    # -- collectives ------------------------------------------------------------------------------
    def allreduce(self, buffer):
        """``buffer`` (flat, 1-D) summed over the ranks; use the returned array (the same one on NumPy/CuPy)."""
        start = time.perf_counter()
        out = self._world.allreduce_sum(buffer)
        self.stats["allreduce_calls"] += 1
        self.stats["allreduce_seconds"] += time.perf_counter() - start
        self.stats["allreduce_bytes"] += buffer.shape[0] * _itemsize(buffer)
        return out

    def broadcast(self, buffer, root: int = 0):
        """Rank ``root``'s flat ``buffer`` on every rank; use the returned array."""
        return self._world.broadcast(buffer, root)

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        """A small picklable Python object from rank ``root``."""
        return self._world.broadcast_object(obj, root)

    def allgather_object(self, obj: Any) -> list:
        """Every rank's ``obj``, in rank order, on every rank."""
        return self._world.allgather_object(obj)

    def barrier(self) -> None:
        self._world.barrier()

    # -- agreement and faults -----------------------------------------------------------------------
    def check_same(self, config: dict, what: str = "configuration") -> None:
        """Raise :class:`DistributedError` on every rank unless all ranks passed the same ``config``.

        Ranks compare a hash first; only when the hashes differ are the settings themselves
        gathered, so that the error can name the first one that differs and its values.
        """
        digests = self.allgather_object(digest(config))
        if len(set(digests)) == 1:
            return
        configs = self.allgather_object(config)
        other = next(r for r, d in enumerate(digests) if d != digests[0])
        raise on_every_rank(DistributedError(f"the ranks were started with different {what}s: "
                                             f"{config_difference(configs[0], configs[other], 0, other)}"))

    def abort(self, code: int = 1) -> None:
        """End every rank of the job at once (MPI_Abort); never returns."""
        self._world.abort(code)


def init(*, abort_on_error: bool = True) -> Communicator:
    """The communicator of this process: all the processes ``mpiexec`` started (one without it).

    In a job of several processes, ``abort_on_error`` makes an exception that nobody catches
    end every rank (after its traceback) instead of leaving the others waiting for this one
    forever, as ``python -m mpi4py script.py`` does.
    """
    comm = Communicator(engines.World())
    if abort_on_error and comm.size > 1:
        _abort_on_uncaught(comm)
    return comm


def _abort_on_uncaught(comm: Communicator) -> None:
    previous = sys.excepthook

    def hook(kind, value, traceback):
        previous(kind, value, traceback)
        text = "interrupted" if issubclass(kind, KeyboardInterrupt) else f"{kind.__name__}: {value}"
        if getattr(value, "on_every_rank", False):  # every rank stops here by itself: exit as usual
            say(f"error: rank {comm.rank} of {comm.size}: {' '.join(text.split())}")
            return
        say(f"error: rank {comm.rank} of {comm.size}: {' '.join(text.split())}; ending all {comm.size} processes")
        comm.abort(130 if issubclass(kind, KeyboardInterrupt) else 1)

    sys.excepthook = hook


def say(line: str) -> None:
    """``line`` on stderr in one write: the launcher merges the ranks' output, whole lines stay whole."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def on_every_rank(exc: BaseException) -> BaseException:
    """Mark ``exc`` as raised by every rank at the same point (after a collective that agreed on it).

    Such an error needs no MPI_Abort: no rank is left waiting for another, and each one's
    message reaches the terminal (an abort can cut off what the launcher has not yet forwarded).
    """
    exc.on_every_rank = True
    return exc


def shard(lo: int, hi: int, rank: int, size: int) -> "tuple[int, int]":
    """Rank ``rank``'s part ``[a, b)`` of the batch ``[lo, hi)``: contiguous, sizes differing by at most one.

    A short last batch of ``m < size`` samples leaves ranks ``m..size-1`` with none.
    """
    m = hi - lo
    return lo + rank * m // size, lo + (rank + 1) * m // size


def digest(config: dict) -> str:
    """SHA-256 of ``config`` as canonical JSON (sorted keys; non-JSON values by ``repr``)."""
    text = json.dumps(config, sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def config_difference(a: dict, b: dict, rank_a: int = 0, rank_b: int = 1) -> str:
    """``"batch_size: rank 0 has 20, rank 1 has 40"`` for the first setting (sorted) that differs."""
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, "<missing>"), b.get(key, "<missing>")
        if digest({"v": va}) != digest({"v": vb}):
            return f"{key}: rank {rank_a} has {_short(va)}, rank {rank_b} has {_short(vb)}"
    return f"rank {rank_a} and rank {rank_b} differ"  # pragma: no cover - equal dicts hash equal


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _itemsize(buffer) -> int:
    return 8 if "64" in str(buffer.dtype) else 4
