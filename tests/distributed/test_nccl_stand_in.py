"""The NCCL branch of ``xpcnn.distributed.world`` on every machine, against a stand-in for ``cupy.cuda.nccl``.

No GPU is needed: fake CuPy arrays (``tests/support/fake_cupy.py``) carry NumPy data whose address is
their ``data.ptr``, and the stand-in (``tests/support/fake_nccl.py``) reads and writes through it and
moves the values with MPI. What is checked is the backend's own logic: which buffers go to
NCCL, the arguments of every call as CuPy's ``NcclCommunicator`` takes them, the unique id made
once on rank 0, one communicator per GPU, the current stream, and the errors. The real library
on real GPUs is in ``tests/distributed/test_distributed_gpu.py`` (``pytest -m gpu``); two ranks of the
stand-in run under ``mpiexec`` in ``tests/distributed/test_distributed_mpi.py``.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import fake_nccl
from fake_cupy import FakeCupyArray, FakeDevice

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None, reason="pip install 'xpcnn[mpi]'")

STREAM = 0x5EED


@pytest.fixture
def world(monkeypatch):
    from xpcnn import distributed
    from xpcnn.distributed import world as comm_backend
    comm = distributed.init()
    nccl = fake_nccl.FakeNccl(comm._world.comm)
    fake_nccl.install(monkeypatch, nccl, STREAM)
    assert comm_backend._load_nccl() is nccl
    return comm, nccl


def test_a_cupy_buffer_is_summed_in_place_by_nccl_with_cupy_s_arguments(world):
    comm, nccl = world
    device = FakeDevice(0)
    buffer = FakeCupyArray(np.arange(6, dtype=np.float32), device)
    out = comm.allreduce(buffer)
    assert out is buffer and comm.backend == "mpi+nccl"
    np.testing.assert_array_equal(buffer.get(), np.arange(6, dtype=np.float32) * comm.size)
    ((name, send, recv, count, datatype, op, stream),) = nccl.calls
    assert (name, count, datatype, op, stream) == ("allReduce", 6, 7, 0, STREAM)  # ncclFloat32, ncclSum
    assert send == recv == buffer.data.ptr  # in place, on the device buffer itself
    assert device.entered == 1  # on the buffer's own GPU


def test_one_communicator_per_gpu_made_once_from_rank_zero_s_unique_id(world):
    comm, nccl = world
    for _ in range(3):
        comm.allreduce(FakeCupyArray(np.ones(4), FakeDevice(0)))
    assert len(nccl.made) == 1 and nccl.unique_ids == 1
    assert nccl.made[0]["ndev"] == comm.size and nccl.made[0]["rank"] == comm.rank
    comm.allreduce(FakeCupyArray(np.ones(4), FakeDevice(1)))  # another GPU: its own communicator
    assert len(nccl.made) == 2 and nccl.unique_ids == 2


def test_float64_buffers_and_broadcast_take_their_own_codes_and_the_root(world):
    comm, nccl = world
    buffer = FakeCupyArray(np.array([1.5, -2.0, 3.25]))
    out = comm.broadcast(buffer, root=0)
    assert out is buffer
    np.testing.assert_array_equal(buffer.get(), [1.5, -2.0, 3.25])
    ((name, send, recv, count, datatype, root, stream),) = nccl.calls
    assert (name, send, recv, count, datatype, root, stream) == (
        "broadcast", buffer.data.ptr, buffer.data.ptr, 3, 8, 0, STREAM)  # ncclFloat64


@pytest.mark.parametrize("data, what", [
    (np.arange(4, dtype=np.int64), "int64 of shape (4,)"),
    (np.zeros((2, 3), dtype=np.float32), "float32 of shape (2, 3)"),
    (np.zeros(8, dtype=np.float32)[::2], "float32 of shape (4,)"),  # not contiguous
])
def test_nccl_takes_only_one_contiguous_flat_float_buffer(world, data, what):
    from xpcnn.errors import DistributedError

    comm, nccl = world
    with pytest.raises(DistributedError, match=r"one contiguous 1-D float32/float64 buffer, got " + what.replace(
            "(", r"\(").replace(")", r"\)")):
        comm.allreduce(FakeCupyArray(data))
    assert nccl.calls == []


def test_nccl_that_cannot_start_names_the_rank_the_gpu_and_the_fix(monkeypatch):
    from xpcnn import distributed
    from xpcnn.errors import DistributedError

    comm = distributed.init()
    fake_nccl.install(monkeypatch, fake_nccl.FakeNccl(comm._world.comm, fail_with="ncclInvalidUsage"), STREAM)
    with pytest.raises(DistributedError, match=r"rank 0: NCCL could not start on cuda:3 \(ncclInvalidUsage\); "
                                               r"every rank needs a GPU of its own"):
        comm.allreduce(FakeCupyArray(np.ones(2, np.float32), FakeDevice(3)))
    assert comm.backend == "mpi"


def test_host_buffers_never_reach_nccl(world):
    comm, nccl = world
    buffer = np.ones(3, np.float32)
    assert comm.allreduce(buffer) is buffer and nccl.calls == [] and comm.backend == "mpi"


def test_the_stand_in_refuses_what_nccl_refuses():
    class OneRank:
        def allgather(self, value):
            return [value]

    nccl = fake_nccl.FakeNccl(OneRank())
    with pytest.raises(fake_nccl.NcclError, match="128 bytes"):
        nccl.NcclCommunicator(1, (0,) * 5, 0)
    with pytest.raises(fake_nccl.NcclError, match="ncclInvalidRank"):
        nccl.NcclCommunicator(2, nccl.get_unique_id(), 0)  # a world of one rank cannot be 2
    buffer = np.zeros(2, np.float32)
    with pytest.raises(fake_nccl.NcclError, match="op 2"):
        nccl.NcclCommunicator(1, nccl.get_unique_id(), 0).allReduce(
            buffer.ctypes.data, buffer.ctypes.data, 2, fake_nccl.NCCL_FLOAT32, 2, 0)
