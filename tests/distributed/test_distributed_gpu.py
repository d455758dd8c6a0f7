"""NCCL for CuPy arrays: one rank on one GPU here; two ranks need two GPUs (``multi_gpu``).

Without CuPy or a GPU every test is skipped with the reason (``pytest -m gpu`` selects them).
"""

from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np
import pytest

import distributed_worker as worker
from xpcnn import distributed
pytestmark = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None, reason="pip install 'xpcnn[mpi]'")


@pytest.fixture(scope="module")
def comm():
    return distributed.init()


def test_nccl_sums_a_cupy_buffer_in_place_on_its_gpu_without_a_host_copy(cuda, comm):
    import cupy as cp

    with cuda.native:
        buffer = cp.arange(10, dtype=cp.float64)
    out = comm.allreduce(buffer)
    assert out is buffer and comm.backend == "mpi+nccl"  # the same device array came back
    np.testing.assert_array_equal(out.get(), np.arange(10.0) * comm.size)
    again = comm.broadcast(cp.ones(3, dtype=cp.float32))
    np.testing.assert_array_equal(again.get(), np.ones(3, np.float32))


def test_nccl_runs_on_the_current_stream_so_kernels_before_and_after_it_stay_in_order(cuda, comm):
    import cupy as cp

    with cuda.native, cp.cuda.Stream(non_blocking=True) as stream:
        buffer = cp.zeros(1 << 20, dtype=cp.float32)
        buffer += 1.0  # queued on `stream`, not yet run perhaps
        comm.allreduce(buffer)
        total = float(buffer.sum())  # queued after the allreduce on the same stream
        stream.synchronize()
    assert total == float(1 << 20) * comm.size


def test_fit_on_cuda_with_a_communicator_matches_numpy(cuda, comm):
    reference = worker.train(None, 41, 10, 2)
    got = worker.train(comm, 41, 10, 2, device=cuda.name)
    for key, expected in reference.items():
        np.testing.assert_allclose(got[key], expected, rtol=1e-10, atol=1e-12, err_msg=key)


@pytest.mark.multi_gpu
def test_two_ranks_on_two_gpus_train_the_same_parameters_as_one_process(cuda, tmp_path):
    import cupy as cp

    from test_distributed_mpi import MPIEXEC, launch

    if cp.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("needs two CUDA GPUs (NCCL refuses two ranks on one GPU)")
    if MPIEXEC is None:
        pytest.skip("needs mpiexec: pip install 'xpcnn[mpi]'")
    out = tmp_path / "gpus.npz"
    run = launch([MPIEXEC, "-n", 2, sys.executable, worker.__file__, "fit", out, 41, 10, 2, "cuda"],
                 dict(os.environ), timeout=300)
    assert run.returncode == 0, run.stderr
    reference = worker.train(None, 41, 10, 2)
    with np.load(out) as got:
        for key, expected in reference.items():
            np.testing.assert_allclose(got[key], expected, rtol=1e-10, atol=1e-12, err_msg=key)
