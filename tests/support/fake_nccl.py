"""A CPU stand-in for ``cupy.cuda.nccl``, so the NCCL branch of ``xpcnn.distributed.world`` runs everywhere.

``FakeNccl(mpi_comm)`` has the surface of CuPy's module that the backend uses, with NCCL's own
values for the constants (``ncclFloat32 = 7``, ``ncclFloat64 = 8``, ``ncclSum = 0``):
``available``, ``get_unique_id()`` (a tuple of 128 bytes, as CuPy returns) and
``NcclCommunicator(ndev, commId, rank)`` with ``allReduce(sendbuf, recvbuf, count, datatype,
op, stream)``, ``broadcast(sendbuff, recvbuff, count, datatype, root, stream)`` and ``abort()``.

Buffers are passed as CuPy passes them, by address: a collective reads and writes ``count``
elements at the address it is given (a :class:`fake_cupy.FakeCupyArray`'s ``data.ptr`` is its
NumPy data's), and moves them with MPI on ``mpi_comm``, so under ``mpiexec`` the ranks really
sum. A communicator checks what NCCL needs of its callers: ``ndev`` ranks in all, each rank
once, and the same unique id on every rank (gathered over MPI); a wrong one raises as
``NcclError`` would. Every call is recorded in ``calls``, every communicator in ``made``.
"""

from __future__ import annotations

import ctypes
import secrets

import numpy as np

NCCL_FLOAT32, NCCL_FLOAT64, NCCL_SUM = 7, 8, 0
DTYPES = {NCCL_FLOAT32: np.float32, NCCL_FLOAT64: np.float64}
UNIQUE_ID_BYTES = 128


class NcclError(RuntimeError):
    """What ``cupy.cuda.nccl.NcclError`` is to the caller: a failed NCCL call."""


def at_address(ptr: int, count: int, datatype: int) -> np.ndarray:
    """The ``count`` elements of type ``datatype`` at ``ptr``, as a NumPy array sharing that memory."""
    dtype = np.dtype(DTYPES[datatype])
    raw = (ctypes.c_char * (count * dtype.itemsize)).from_address(ptr)
    return np.frombuffer(raw, dtype=dtype)


class FakeNccl:
    """The module: constants, ``get_unique_id``, and the communicator class bound to ``mpi_comm``."""

    available = True
    NCCL_FLOAT32, NCCL_FLOAT64, NCCL_SUM = NCCL_FLOAT32, NCCL_FLOAT64, NCCL_SUM
    NcclError = NcclError

    def __init__(self, mpi_comm, fail_with: "str | None" = None) -> None:
        self.mpi_comm, self.fail_with = mpi_comm, fail_with
        self.calls: "list[tuple]" = []
        self.made: "list[dict]" = []
        self.unique_ids = 0
        fake = self

        class NcclCommunicator(_Communicator):
            def __init__(self, ndev: int, commId: tuple, rank: int) -> None:  # noqa: N803 - CuPy's name
                super().__init__(fake, ndev, commId, rank)

        self.NcclCommunicator = NcclCommunicator

    def get_unique_id(self) -> tuple:
        self.unique_ids += 1
        return tuple(secrets.token_bytes(UNIQUE_ID_BYTES))


class _Communicator:
    def __init__(self, module: FakeNccl, ndev: int, comm_id: tuple, rank: int) -> None:
        if module.fail_with:
            raise NcclError(module.fail_with)
        if not (isinstance(comm_id, tuple) and len(comm_id) == UNIQUE_ID_BYTES):
            raise NcclError(f"ncclInvalidArgument: the unique id must be {UNIQUE_ID_BYTES} bytes")
        mpi = module.mpi_comm
        seen = mpi.allgather((comm_id, rank, ndev))
        if any(other != comm_id for other, _, _ in seen):
            raise NcclError("ncclInvalidUsage: the ranks passed different unique ids")
        if sorted(r for _, r, _ in seen) != list(range(ndev)) or any(n != ndev for _, _, n in seen):
            raise NcclError(f"ncclInvalidRank: ranks {[r for _, r, _ in seen]} of {ndev}")
        self.module, self.aborted = module, False
        module.made.append({"ndev": ndev, "rank": rank, "comm_id": comm_id})

    def allReduce(self, sendbuf: int, recvbuf: int, count: int, datatype: int, op: int,  # noqa: N802 - CuPy's
                  stream: int) -> None:
        self.module.calls.append(("allReduce", sendbuf, recvbuf, count, datatype, op, stream))
        if op != NCCL_SUM:
            raise NcclError(f"ncclInvalidArgument: op {op}")
        src, dst = at_address(sendbuf, count, datatype), at_address(recvbuf, count, datatype)
        total = np.empty_like(src)
        self.module.mpi_comm.Allreduce(src, total)
        dst[...] = total

    def broadcast(self, sendbuff: int, recvbuff: int, count: int, datatype: int, root: int, stream: int) -> None:
        self.module.calls.append(("broadcast", sendbuff, recvbuff, count, datatype, root, stream))
        data = np.array(at_address(sendbuff, count, datatype), copy=True)
        self.module.mpi_comm.Bcast(data, root=root)
        at_address(recvbuff, count, datatype)[...] = data

    def abort(self) -> None:
        self.aborted = True


def install(monkeypatch, nccl: FakeNccl, stream: int) -> None:
    """Point ``xpcnn.distributed.world`` at the stand-ins: fake CuPy arrays count as CuPy's, ``nccl`` is
    the NCCL module, ``stream`` the current stream's handle. ``monkeypatch`` is pytest's fixture, or
    a ``pytest.MonkeyPatch()`` of its own in a worker under ``mpiexec``."""
    from fake_cupy import FakeCupyArray
    from xpcnn.distributed import world as comm_backend
    monkeypatch.setattr(comm_backend, "is_cupy_array", lambda x: isinstance(x, FakeCupyArray))
    monkeypatch.setattr(comm_backend, "_load_nccl", lambda: nccl)
    monkeypatch.setattr(comm_backend, "_current_stream", lambda: stream)
