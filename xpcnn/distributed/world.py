"""The communication backend: the one module that imports mpi4py and NCCL, both lazily.

Collectives act on one flat buffer (1-D, float32 or float64); which engine moves it depends on
where it lives, through a table as in :mod:`xpcnn.backend`:

    numpy   MPI     ``Allreduce(IN_PLACE, buf, SUM)``, ``Bcast(buf, root)``, on the host
    cupy    NCCL    ``ncclAllReduce(buf, buf, SUM)``, ``ncclBroadcast``, on the buffer's GPU and
                    its current stream: the kernels that packed the buffer and those that read it
                    back run on the same stream, so nothing waits on the host and no byte of the
                    gradients crosses to host memory
    torch   MPI     a tensor on torch's CPU: MPI on NumPy's view of its memory, in place (no copy);
                    a tensor on a GPU (``torch:cuda``, ``torch:mps``): refused in one line (NCCL
                    through CuPy's DLPack interop is not built: no GPU here to verify it on; use
                    ``--device cuda``, CuPy, for NCCL)
    other   MPI     an explicit host round trip (``to_numpy``, reduce, ``to_device``): the
                    reference path, for ``array_api_strict`` in the tests

The NCCL communicator follows ChainerMN's ``PureNcclCommunicator``: it is created at the first
collective on a CuPy buffer (every rank reaches that point together, after each has selected
its GPU), rank 0 makes the unique id and broadcasts it over MPI.

Ranks run on ``MPI.COMM_WORLD`` duplicated, so xpcnn's messages never mix with a user's own.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import time
from typing import Any

from array_api_compat import array_namespace, device, is_cupy_array, is_numpy_array, is_torch_array

from .. import backend
from ..errors import DistributedError, MissingDependencyError

MPI_EXTRA = "pip install 'xpcnn[mpi]' (mpi4py and an MPICH with mpiexec)"


def load_mpi():
    """``mpi4py.MPI`` (importing it initialises MPI); a missing mpi4py names the extra."""
    try:
        return importlib.import_module("mpi4py.MPI")
    except ImportError as exc:
        raise MissingDependencyError(f"distributed training needs mpi4py and an MPI library; importing "
                                     f"mpi4py.MPI failed ({exc}): {MPI_EXTRA}") from exc


def launched_size() -> int:
    """How many processes the launcher says it started (1 when not under mpiexec/srun); no MPI import."""
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def cuda_device_count() -> int:
    """GPUs CuPy can see on this node (0 without CuPy)."""
    try:
        cp = importlib.import_module("cupy")
        return int(cp.cuda.runtime.getDeviceCount())
    except Exception:  # noqa: BLE001 - no CuPy, no driver, no GPU: all mean none
        return 0


def availability() -> "dict[str, Any]":
    """Whether this node could train on several processes (``xpcnn-doctor``): mpi4py's version
    (``mpi4py``, not ``mpi4py.MPI``, is imported: that would initialise MPI), ``mpiexec`` on the
    PATH, and NCCL as CuPy sees it (its version, or why it is missing). Never raises."""
    import shutil

    out: "dict[str, Any]" = {"mpiexec": shutil.which("mpiexec")}
    try:
        out["mpi4py"] = importlib.import_module("mpi4py").__version__
    except ImportError as exc:
        out["mpi4py"] = None
        out["mpi4py_missing"] = f"{exc}; {MPI_EXTRA}"
    if "cupy" not in sys.modules and importlib.util.find_spec("cupy") is None:
        out["nccl"], out["nccl_missing"] = None, "CuPy is not installed"
        return out
    try:
        nccl = _load_nccl()
        version = nccl.get_version()
        out["nccl"] = f"{version // 10000}.{version % 10000 // 100}.{version % 100}" if version >= 10000 else \
            f"{version // 1000}.{version % 1000 // 100}.{version % 100}"
    except Exception as exc:  # noqa: BLE001 - any failure means: not available, and this is why
        out["nccl"], out["nccl_missing"] = None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return out


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def share_cpus(local_size: int) -> "int | None":
    """Give each of ``local_size`` ranks on a node its share of the CPUs for BLAS threads.

    Unless one of :data:`THREAD_VARIABLES` is set, a rank's BLAS would start a thread per CPU
    and ``local_size`` ranks would fight over every core (torchrun sets ``OMP_NUM_THREADS=1``
    for the same reason). Returns the limit applied, or ``None`` (one rank, a variable set, or
    no threadpoolctl).
    """
    if local_size < 2 or any(os.environ.get(name) for name in THREAD_VARIABLES):
        return None
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with the mpi extra
        return None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cpus // local_size)
    threadpool_limits(threads)
    return threads


def _torch_host_view(buf):
    """NumPy's view of a contiguous tensor on torch's CPU (MPI reads and writes its memory in place);
    a tensor on a GPU is refused in one line: xpcnn has no NCCL path for torch tensors."""
    if buf.device.type != "cpu":
        raise DistributedError(f"distributed training on torch:{buf.device} tensors is not supported: xpcnn "
                               f"reduces torch tensors with MPI on torch:cpu only; use --device cuda (CuPy, "
                               f"NCCL) for GPUs or --device torch:cpu")
    if not buf.is_contiguous():  # pragma: no cover - the data-parallel step packs one contiguous buffer
        raise DistributedError(f"collectives take one contiguous 1-D buffer, got a strided tensor of shape "
                               f"{tuple(buf.shape)}")
    return buf.numpy()


class World:
    """``MPI.COMM_WORLD`` (duplicated) with its node-local rank and the collectives xpcnn needs."""

    def __init__(self) -> None:
        self.MPI = load_mpi()
        self.comm = self.MPI.COMM_WORLD.Dup()
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        node = self.comm.Split_type(self.MPI.COMM_TYPE_SHARED)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        self._nccl: "dict[int, Any]" = {}
        self.threads = share_cpus(self.local_size)

    @property
    def engines(self) -> str:
        """``"mpi"``, or ``"mpi+nccl"`` once NCCL has carried a collective."""
        return "mpi+nccl" if self._nccl else "mpi"

    # -- flat buffers: the table ----------------------------------------------------------------
    def allreduce_sum(self, buf):
        """``buf`` summed over all ranks; in place for NumPy and CuPy (the same array comes back)."""
        if is_numpy_array(buf):
            self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
            return buf
        if is_cupy_array(buf):
            return self._nccl_call("allReduce", buf)
        if is_torch_array(buf):
            self.comm.Allreduce(self.MPI.IN_PLACE, _torch_host_view(buf), op=self.MPI.SUM)
            return buf
        host = backend.host_buffer(buf)  # explicit host round trip
        self.comm.Allreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM)
        return backend.to_device(host, backend.Device.of(buf))

    def broadcast(self, buf, root: int = 0):
        """Rank ``root``'s ``buf`` on every rank (in place for NumPy and CuPy)."""
        if is_numpy_array(buf):
            self.comm.Bcast(buf, root=root)
            return buf
        if is_cupy_array(buf):
            return self._nccl_call("broadcast", buf, root)
        if is_torch_array(buf):
            self.comm.Bcast(_torch_host_view(buf), root=root)
            return buf
        host = backend.host_buffer(buf)
        self.comm.Bcast(host, root=root)
        return backend.to_device(host, backend.Device.of(buf))

    # -- Python objects (small: settings, RNG states, slot names) -------------------------------
    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        return self.comm.bcast(obj, root=root)

    def allgather_object(self, obj: Any) -> list:
        return self.comm.allgather(obj)

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        """End every rank of the job now (``MPI_Abort``): the way out of a collective that can never complete."""
        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(0.5)  # let the launcher forward this rank's last words before it kills the job
        for nccl_comm in self._nccl.values():
            try:
                nccl_comm.abort()
            except Exception:  # noqa: BLE001 - MPI_Abort follows whatever happens here
                pass
        self.MPI.COMM_WORLD.Abort(code)

    # -- NCCL -----------------------------------------------------------------------------------
    def _nccl_call(self, what: str, buf, root: int = 0):
        nccl = _load_nccl()
        types = {"float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64}
        if str(buf.dtype) not in types or buf.ndim != 1 or not buf.flags.c_contiguous:
            raise DistributedError(f"NCCL collectives take one contiguous 1-D float32/float64 buffer, "
                                   f"got {buf.dtype} of shape {buf.shape}")
        with buf.device:
            comm = self._nccl_comm(buf.device.id)
            stream = _current_stream()
            ptr, count, dtype = buf.data.ptr, buf.size, types[str(buf.dtype)]
            if what == "allReduce":
                comm.allReduce(ptr, ptr, count, dtype, nccl.NCCL_SUM, stream)
            else:
                comm.broadcast(ptr, ptr, count, dtype, root, stream)
        return buf

    def _nccl_comm(self, device_id: int):
        """The NCCL communicator for this rank's GPU ``device_id`` (made on first use, collectively)."""
        if device_id not in self._nccl:
            nccl = _load_nccl()
            uid = nccl.get_unique_id() if self.rank == 0 else None
            uid = self.comm.bcast(uid, root=0)
            try:
                self._nccl[device_id] = nccl.NcclCommunicator(self.size, uid, self.rank)
            except Exception as exc:  # NcclError: duplicate GPU, version mismatch, network
                raise DistributedError(f"rank {self.rank}: NCCL could not start on cuda:{device_id} ({exc}); "
                                       f"every rank needs a GPU of its own") from exc
        return self._nccl[device_id]


def _current_stream() -> int:
    """The handle of CuPy's current stream on the current device: the kernels before and after queue there."""
    return importlib.import_module("cupy").cuda.get_current_stream().ptr


def _load_nccl():
    """``cupy.cuda.nccl`` with its library loaded; where to get it when it is missing."""
    try:
        nccl = importlib.import_module("cupy.cuda.nccl")
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise DistributedError(f"CuPy arrays are reduced with NCCL, which CuPy cannot import ({exc})") from exc
    if not getattr(nccl, "available", False):  # pragma: no cover - depends on the machine
        raise DistributedError("CuPy arrays are reduced with NCCL, and CuPy found no NCCL library: "
                               "pip install 'nvidia-nccl-cu12>=2.18,<3' (or nvidia-nccl-cu13 for CUDA 13)")
    return nccl


def fingerprint(x, rows: int = 64) -> dict:
    """Shape, dtype and a SHA-256 of up to ``rows`` evenly spaced rows of ``x`` (copied to the host).

    Enough to tell two ranks that loaded different data apart without hashing all of it.
    """
    n = x.shape[0]
    count = min(rows, n)
    index = sorted({i * (n - 1) // (count - 1) for i in range(count)} if count > 1 else set(range(count)))
    xp = array_namespace(x)
    sample = backend.host_buffer(xp.take(x, xp.asarray(index, dtype=xp.int64, device=device(x)), axis=0))
    return {"shape": list(x.shape), "dtype": str(x.dtype), "sha256": hashlib.sha256(sample.tobytes()).hexdigest()}
