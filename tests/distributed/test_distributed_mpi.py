"""Jobs of 2 and 4 ranks under ``mpiexec``, started here (every one bounded by a timeout).

Each test compares a job against one process: the same seed and global batch must give the
same float64 parameters (relative difference <= 1e-10), whatever the number of ranks, with a
last batch that leaves some ranks without a sample.
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import distributed_worker as worker

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().parents[1] / "support" / "distributed_worker.py"
TRAIN = ROOT / "scripts" / "train.py"
TIMEOUT = 240


def find_mpiexec() -> "str | None":
    """The launcher next to this Python first (the mpich wheel's, in a virtual environment), then $PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


MPIEXEC = find_mpiexec()
pytestmark = pytest.mark.skipif(MPIEXEC is None or importlib.util.find_spec("mpi4py") is None,
                                reason="needs mpi4py and mpiexec: pip install 'xpcnn[mpi]'")


@pytest.fixture
def env(tmp_path):
    """Offline, an empty cache, the checkout importable, no thread settings (each rank gets its share)."""
    keep = {k: v for k, v in os.environ.items()
            if k not in ("XPCNN_DATA", "XPCNN_DEBUG", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    keep.update(XPCNN_OFFLINE="1", XDG_CACHE_HOME=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    return keep


def launch(command: "list[str]", env: dict, cwd=None, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """Run ``command`` in a session of its own; on timeout kill the whole session and fail."""
    proc = subprocess.Popen([str(c) for c in command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=cwd, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(map(str, command))} did not end within {timeout}s\n{out}\n{err}")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def mpirun(ranks: int, *args, env: dict, cwd=None, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return launch([MPIEXEC, "-n", ranks, sys.executable, *args], env, cwd, timeout)


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def parameters(path) -> "dict[str, np.ndarray]":
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files if k.startswith(("param/", "optim/"))}


# -- the same training on 1, 2 and 4 processes ---------------------------------------------------------

@pytest.mark.parametrize("ranks,n,batch", [(2, 41, 10), (4, 38, 12)], ids=["2-ranks", "4-ranks"])
def test_ranks_train_the_same_float64_parameters_as_one_process_with_sgd_momentum_and_adam(tmp_path, env, ranks, n,
                                                                                         batch):
    # 41 = 4 x 10 + 1 and 38 = 3 x 12 + 2: the last batch leaves one (two) of the ranks without a sample
    out = tmp_path / "ranks.npz"
    run = mpirun(ranks, WORKER, "fit", out, n, batch, 3, env=env)
    assert run.returncode == 0, run.stderr
    reference = worker.train(None, n, batch, 3)
    with np.load(out) as got:
        assert sorted(got.files) == sorted(reference)
        for key, expected in reference.items():
            assert relative_difference(got[key], expected) <= 1e-10, key


def test_two_ranks_of_two_workers_train_the_float64_parameters_of_one_process(tmp_path, env):
    # 41 = 4 x 10 + 1: four shares of each batch of 10; the last batch leaves three of them without a row
    out = tmp_path / "ranks.npz"
    run = mpirun(2, WORKER, "fit", out, 41, 10, 3, "cpu", 2, env=env)
    assert run.returncode == 0, run.stderr
    reference = worker.train(None, 41, 10, 3)
    with np.load(out) as got:
        assert sorted(got.files) == sorted(reference)
        for key, expected in reference.items():
            assert relative_difference(got[key], expected) <= 1e-10, key


def test_a_distributed_start_gives_every_rank_rank_zeros_state_even_from_different_weights(tmp_path, env):
    run = mpirun(2, WORKER, "unseeded", tmp_path / "u", env=env)
    assert run.returncode == 0, run.stderr
    ranks = [dict(np.load(tmp_path / f"u.{r}.npz")) for r in range(2)]
    assert relative_difference(ranks[1]["before"], ranks[0]["before"]) > 1e-3  # unseeded: each drew its own
    np.testing.assert_array_equal(ranks[1]["start"], ranks[0]["before"])  # rank 0's weights, to the bit
    np.testing.assert_array_equal(ranks[0]["start"], ranks[0]["before"])
    np.testing.assert_array_equal(ranks[1]["start_rng"], ranks[0]["start_rng"])  # and rank 0's generator
    np.testing.assert_array_equal(ranks[1]["after"], ranks[0]["after"])
    assert relative_difference(ranks[0]["after"], ranks[0]["start"]) > 1e-6


def test_running_statistics_are_the_weighted_mean_of_the_ranks_and_the_same_on_all(tmp_path, env):
    # the running mean of the inputs is linear in the batch means, so the weighted mean of the
    # ranks' updates is exactly one process's running mean
    run = mpirun(2, WORKER, "buffers", tmp_path / "mean", env=env)
    assert run.returncode == 0, run.stderr
    ranks = [np.load(tmp_path / f"mean.{r}.npy") for r in range(2)]
    np.testing.assert_array_equal(ranks[0], ranks[1])
    np.testing.assert_allclose(ranks[0], worker.running_mean(None), rtol=1e-12)


def test_nccl_branch_on_two_ranks_sums_and_broadcasts_with_one_unique_id_from_rank_zero(tmp_path, env):
    run = mpirun(2, WORKER, "nccl", tmp_path / "nccl", env=env)  # tests/support/fake_nccl.py stands in for NCCL
    assert run.returncode == 0, run.stderr
    ranks = [dict(np.load(tmp_path / f"nccl.{r}.npz")) for r in range(2)]
    for rank in ranks:
        np.testing.assert_array_equal(rank["summed"], np.full(5, 1.0 + 2.0, np.float32))
        np.testing.assert_array_equal(rank["sent"], np.arange(3.0) + 10)  # rank 1's
        assert rank["communicators"] == 1 and str(rank["backend"]) == "mpi+nccl"
    assert [int(r["unique_ids"]) for r in ranks] == [1, 0]  # made on rank 0 only, then sent over MPI
    np.testing.assert_array_equal(ranks[0]["comm_id"], ranks[1]["comm_id"])


def test_every_rank_takes_the_same_scheduled_rates_and_stops_at_the_same_epoch_as_one_process(tmp_path, env):
    run = mpirun(2, WORKER, "schedule", tmp_path / "lr", env=env)
    assert run.returncode == 0, run.stderr
    reference = worker.scheduled(None)
    ranks = [dict(np.load(tmp_path / f"lr.{r}.npz")) for r in range(2)]
    assert sorted(ranks[0]) == sorted(ranks[1]) == sorted(reference)
    assert list(reference["stopped"]) == [2, 1] and len(reference["rates"]) == 2 * 5  # 37 samples, batch 8
    assert len(set(reference["rates"].tolist())) > 4  # the warm-up and the cosine did change the rate
    for rank in ranks:
        for key in ("rates", "learning_rate", "stopped"):  # the rate is computed, not reduced: equal to the bit
            np.testing.assert_array_equal(rank[key], reference[key], err_msg=key)
        for key, expected in reference.items():
            assert relative_difference(rank[key], expected) <= 1e-10, key
    for key in ranks[0]:
        np.testing.assert_array_equal(ranks[0][key], ranks[1][key], err_msg=key)


# -- the command line ----------------------------------------------------------------------------------

def cli(*args, batch: int = 20):
    return [TRAIN, "--dataset", "sample", "--dtype", "float64", "--batch-size", batch, *map(str, args)]


def test_train_py_on_two_ranks_prints_once_saves_once_and_matches_one_process(tmp_path, env):
    two = mpirun(2, *cli("--distributed", "--epochs", 2, "--save", "a.npz", "--metrics-json", "a.json"),
                 env=env, cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    one = launch([sys.executable, *cli("--epochs", 2, "--save", "b.npz")], env, cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    lines = two.stdout.splitlines()
    assert sum(line.startswith("xpcnn: ") for line in lines) == 1 and "2 processes (mpi)" in lines[0]
    assert sum(line.startswith("epoch ") for line in lines) == 2
    assert sum(line.startswith("test accuracy") for line in lines) == 1
    assert two.stdout.count("Layer (type)") == 1 and two.stdout.count("Total params") == 1  # rank 0's summary
    assert two.stderr == ""
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["a.json", "a.npz", "b.npz"]
    a, b = parameters(tmp_path / "a.npz"), parameters(tmp_path / "b.npz")
    assert sorted(a) == sorted(b)
    assert max(relative_difference(a[k], b[k]) for k in a) <= 1e-10
    metrics = json.loads((tmp_path / "a.json").read_text())
    assert metrics["world_size"] == 2 and metrics["comm_backend"] == "mpi"
    # the same losses as one process: they are reduced over the ranks, weighted by sample counts
    ours = [line.split("  ")[1] for line in lines if line.startswith("epoch ")]
    theirs = [line.split("  ")[1] for line in one.stdout.splitlines() if line.startswith("epoch ")]
    assert ours == theirs


@pytest.fixture(scope="module")
def two_epochs_on_one_process(tmp_path_factory):
    """The reference for the resume tests: 2 epochs of Adam on one process, saved."""
    folder = tmp_path_factory.mktemp("whole")
    env = {**os.environ, "XPCNN_OFFLINE": "1", "XDG_CACHE_HOME": str(folder / "cache"), "PYTHONPATH": str(ROOT)}
    run = launch([sys.executable, *cli("--optimizer", "adam", "--lr", "0.001", "--epochs", 2, "--save", "whole.npz")],
                 env, cwd=folder)
    assert run.returncode == 0, run.stderr
    return parameters(folder / "whole.npz")


@pytest.mark.parametrize("first,second", [(2, 1), (1, 2)], ids=["saved-on-2-resumed-on-1", "saved-on-1-resumed-on-2"])
def test_a_checkpoint_saved_on_n_ranks_resumes_on_m(tmp_path, env, first, second, two_epochs_on_one_process):
    def train(ranks, *args):
        if ranks == 1:
            return launch([sys.executable, *cli(*args)], env, cwd=tmp_path)
        return mpirun(ranks, *cli("--distributed", *args), env=env, cwd=tmp_path)

    for run in (train(first, "--optimizer", "adam", "--lr", "0.001", "--epochs", 1, "--save", "half.npz"),
                train(second, "--resume", "half.npz", "--epochs", 1, "--save", "half.npz")):
        assert run.returncode == 0, run.stderr
    resumed, whole = parameters(tmp_path / "half.npz"), two_epochs_on_one_process
    assert sorted(resumed) == sorted(whole) and any(k.startswith("optim/") for k in whole)
    assert max(relative_difference(resumed[k], whole[k]) for k in whole) <= 1e-10


# -- faults ------------------------------------------------------------------------------------------

def test_one_rank_raising_ends_the_whole_job_with_its_message(env):
    start = time.monotonic()
    run = mpirun(2, WORKER, "raise", env=env, timeout=60)
    assert run.returncode != 0
    assert time.monotonic() - start < 30
    assert "error: rank 1 of 2: RuntimeError: rank one fails on purpose; ending all 2 processes" in run.stderr
    assert "finished" not in run.stdout


def test_ranks_started_with_different_settings_stop_naming_the_difference(env):
    run = mpirun(2, WORKER, "mismatch", env=env, timeout=60)
    assert run.returncode == 1
    for rank in (0, 1):  # every rank stops by itself (no abort cuts a message off)
        assert (f"error: rank {rank} of 2: DistributedError: the ranks were started with different training "
                f"settings: batch_size: rank 0 has 10, rank 1 has 20\n") in run.stderr
    assert "MPI_Abort" not in run.stderr


def test_cli_ranks_with_different_settings_stop_with_one_line_each(tmp_path, env):
    # rank 1 is told another seed through the environment of its own part of the command line
    run = launch([MPIEXEC, "-n", 1, sys.executable, *cli("--distributed", "--epochs", 1), ":",
                  "-n", 1, sys.executable, *cli("--distributed", "--epochs", 1, "--seed", 7)], env, cwd=tmp_path,
                 timeout=60)
    assert run.returncode == 1, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and all("seed: rank 0 has 0, rank 1 has 7" in line for line in errors)
    assert run.stderr.strip().splitlines() == errors  # one line per rank, nothing else
    assert "Traceback" not in run.stderr


def test_cli_default_batch_of_one_grows_to_a_multiple_of_the_ranks_and_says_so(tmp_path, env):
    run = mpirun(2, TRAIN, "--distributed", "--dataset", "sample", "--epochs", 0, "--metrics-json", "m.json",
                 env=env, cwd=tmp_path, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("note: the global batch 1 does not divide by 2 processes; training with batch 2") == 1
    assert json.loads((tmp_path / "m.json").read_text())["config"]["batch_size"] == 2


def test_cli_batch_size_that_does_not_divide_by_the_ranks_is_one_line(tmp_path, env):
    run = mpirun(2, *cli("--distributed", "--epochs", 1, batch=5), env=env, cwd=tmp_path, timeout=60)
    assert run.returncode == 1, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 2 and all("batch_size 5 does not divide by the 2 processes" in line for line in lines)


def test_ctrl_c_stops_every_rank(env):
    proc = subprocess.Popen([MPIEXEC, "-n", "2", sys.executable, str(WORKER), "forever"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready and proc.stdout.readline().strip() == "ready"
        time.sleep(1.0)  # in the middle of training
        proc.send_signal(signal.SIGINT)  # what Ctrl-C in a terminal sends mpiexec
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("mpiexec and its ranks were still running 30 s after Ctrl-C")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode != 0
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):  # no rank is left behind in the job's session
        os.killpg(proc.pid, 0)
