"""Data parallelism with torch tensors (issue 23): ranks on ``torch:cpu`` reduce with MPI on NumPy's view
of each tensor (``xpcnn/distributed/world.py``); a tensor on a GPU is refused in one line."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import distributed_worker as worker
import xpcnn as xc
from xpcnn.distributed import world as engines
from xpcnn.errors import DistributedError

torch = pytest.importorskip("torch")

WORKER = Path(__file__).resolve().parents[1] / "support" / "distributed_worker.py"
ROOT = Path(__file__).resolve().parents[2]
BESIDE = Path(sys.executable).parent / "mpiexec"
MPIEXEC = str(BESIDE) if BESIDE.exists() else shutil.which("mpiexec")


@pytest.mark.skipif(MPIEXEC is None or importlib.util.find_spec("mpi4py") is None,
                    reason="needs mpi4py and mpiexec: pip install 'xpcnn[mpi]'")
def test_two_ranks_on_torch_cpu_train_the_float64_parameters_of_one_numpy_process(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    env.update(XPCNN_OFFLINE="1", PYTHONPATH=str(ROOT))
    out = tmp_path / "ranks.npz"
    run = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(WORKER), "fit", str(out), "41", "10", "3",
                          "torch:cpu"], capture_output=True, text=True, env=env, timeout=240)
    assert run.returncode == 0, run.stderr
    reference = worker.train(None, 41, 10, 3)  # NumPy, one process
    with np.load(out) as got:
        assert sorted(got.files) == sorted(reference)
        for key, expected in reference.items():
            difference = np.max(np.abs(got[key] - expected)) / max(np.max(np.abs(expected)), 1e-300)
            assert difference <= 1e-10, key


class OneRank:
    """MPI's ``COMM_WORLD`` of one process, enough for :class:`~xpcnn.distributed.world.World`'s collectives."""

    def __init__(self):
        self.calls = []

    def Allreduce(self, inplace, buf, op):
        self.calls.append(("Allreduce", buf))
        buf *= 2  # as if a second rank held the same values

    def Bcast(self, buf, root):
        self.calls.append(("Bcast", buf))
        buf[...] = 7


def one_rank_world():
    world = engines.World.__new__(engines.World)
    world.comm = OneRank()

    class MPI:
        IN_PLACE, SUM = object(), object()

    world.MPI = MPI
    return world


def test_a_torch_cpu_buffer_is_reduced_and_broadcast_in_place_through_numpys_view():
    world = one_rank_world()
    buf = torch.arange(4, dtype=torch.float64)
    out = world.allreduce_sum(buf)
    assert out is buf and buf.tolist() == [0.0, 2.0, 4.0, 6.0]
    assert isinstance(world.comm.calls[0][1], np.ndarray)  # MPI sees host memory, not a tensor
    assert world.broadcast(buf) is buf and buf.tolist() == [7.0] * 4


def test_a_torch_tensor_on_a_gpu_is_refused_in_one_line_naming_what_works():
    class OnGpu:  # a tensor's device, as torch reports one on a GPU (no GPU needed to check the message)
        device = torch.device("cuda", 0)

    with pytest.raises(DistributedError) as info:
        engines._torch_host_view(OnGpu())
    message = str(info.value)
    assert "torch:cuda:0" in message and "--device cuda" in message and "\n" not in message
