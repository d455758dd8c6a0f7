"""xpcnn.distributed and xpcnn.distributed.data_parallel in this process: the split, the fused buffer, the checks.

A communicator of one process (MPI's singleton) runs every line of the data-parallel path but
the sums between ranks; tests/distributed/test_distributed_mpi.py starts real jobs of 2 and 4 ranks.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import xpcnn as xc
from xpcnn import distributed
from xpcnn.distributed import data_parallel as parallel
from xpcnn.errors import ConfigError, DistributedError, MissingDependencyError

pytest.importorskip("mpi4py", reason="pip install 'xpcnn[mpi]'")


@pytest.fixture(scope="module")
def comm():
    return distributed.init()


def small_network(seed=0, dtype="float64"):
    return xc.Sequential([
        xc.Convolutional((1, 6, 6), 3, 2), xc.Sigmoid(), xc.Reshape((2, 4, 4), (32,)), xc.Dense(32, 2), xc.Sigmoid(),
    ], seed=seed, dtype=dtype)


def small_data(n=23):
    rng = np.random.default_rng(0)
    return rng.random((n, 1, 6, 6)), np.eye(2)[rng.integers(0, 2, n)]


# -- the split of a batch ------------------------------------------------------------------------

@pytest.mark.parametrize("size", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("lo,hi", [(0, 12), (12, 24), (36, 41), (40, 41), (10, 10)])
def test_shards_are_contiguous_cover_the_batch_and_differ_by_at_most_one(size, lo, hi):
    parts = [distributed.shard(lo, hi, r, size) for r in range(size)]
    assert parts[0][0] == lo and parts[-1][1] == hi
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
    sizes = [b - a for a, b in parts]
    assert min(sizes) >= 0 and max(sizes) - min(sizes) <= 1 and sum(sizes) == hi - lo


def test_a_last_batch_shorter_than_the_ranks_leaves_the_last_ranks_empty():
    assert [distributed.shard(40, 42, r, 4) for r in range(4)] == [(40, 40), (40, 41), (41, 41), (41, 42)]


# -- settings ------------------------------------------------------------------------------------

def test_digest_ignores_key_order_and_sees_every_value():
    assert distributed.digest({"a": 1, "b": [1, 2]}) == distributed.digest({"b": [1, 2], "a": 1})
    assert distributed.digest({"a": 1}) != distributed.digest({"a": 1.5})


def test_config_difference_names_the_first_differing_setting_and_both_values():
    a = {"seed": 0, "batch_size": 20, "dtype": "float64"}
    b = {"seed": 0, "batch_size": 40, "dtype": "float32"}
    assert distributed.config_difference(a, b, 0, 3) == "batch_size: rank 0 has 20, rank 3 has 40"
    assert distributed.config_difference({"x": 1}, {}, 0, 1) == "x: rank 0 has 1, rank 1 has '<missing>'"


def test_fingerprint_tells_different_data_apart_from_a_sample_of_rows():
    from xpcnn.distributed.world import fingerprint

    x = np.arange(1000.0).reshape(100, 10)
    y = x.copy()
    y[99, 0] += 1  # the last row is always sampled
    assert fingerprint(x) == fingerprint(x.copy())
    assert fingerprint(x) != fingerprint(y)
    assert fingerprint(x)["shape"] == [100, 10] and fingerprint(x[:3])["dtype"] == "float64"


def test_one_process_agrees_with_itself(comm):
    comm.check_same({"batch_size": 20})


# -- the fused buffer ----------------------------------------------------------------------------

def test_fusion_packs_scales_and_unpacks_every_array_through_one_buffer_per_dtype(device):
    rng = np.random.default_rng(0)
    host = {"a": rng.random((2, 3)), "b": rng.random((4,)), "c": rng.random((1, 1, 2))}
    arrays = {k: xc.to_device(v, device) for k, v in host.items()}
    fusion = parallel.Fusion(arrays, extra=2)
    assert list(fusion.groups) == ["float64"] and fusion.groups["float64"]["buffer"].shape == (6 + 4 + 2 + 2,)
    buffer = fusion.groups["float64"]["buffer"]
    fusion.pack({"a": arrays["a"], "b": None, "c": arrays["c"]}, scale=0.25, extras=(3.0, 4.0))
    assert fusion.groups["float64"]["buffer"] is buffer  # allocated once, reused
    out = {k: xc.to_numpy(v) for k, v in fusion.unpack().items()}
    np.testing.assert_array_equal(out["a"], host["a"] * 0.25)
    np.testing.assert_array_equal(out["b"], np.zeros(4))
    np.testing.assert_array_equal(out["c"], host["c"] * 0.25)
    assert [float(xc.to_numpy(e)) for e in fusion.extras()] == [3.0, 4.0]


def test_fusion_keeps_float32_and_float64_arrays_in_separate_buffers():
    fusion = parallel.Fusion({"w": np.ones((3,), np.float32), "v": np.ones((2,), np.float64)}, extra=1)
    assert {k: g["buffer"].shape for k, g in fusion.groups.items()} == {"float32": (4,), "float64": (2,)}
    fusion.pack({"w": np.full(3, 2, np.float32), "v": np.full(2, 3.0)})
    calls = []
    fusion.run(lambda b: calls.append(b.dtype) or b)
    assert calls == [np.float32, np.float64]  # one collective per dtype
    assert fusion.unpack()["w"].dtype == np.float32


# -- fit with a communicator of one --------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda: xc.SGD(0.5), lambda: xc.SGD(0.1, momentum=0.9), lambda: xc.Adam(0.01)])
def test_fit_with_a_one_process_communicator_is_plain_fit(comm, make):
    x, y = small_data()
    plain, shared = small_network(), small_network()
    h1 = plain.fit(x, y, epochs=3, batch_size=5, optimizer=make(), seed=1, validation_data=(x[:4], y[:4]))
    calls = comm.stats["allreduce_calls"]
    h2 = shared.fit(x, y, epochs=3, batch_size=5, optimizer=make(), seed=1, validation_data=(x[:4], y[:4]),
                    communicator=comm)
    assert comm.stats["allreduce_calls"] - calls == 3 * 5  # one allreduce per step
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(h2[key], h1[key], rtol=1e-15)
    for la, lb in zip(plain.layers, shared.layers):
        for k in la.params:
            np.testing.assert_array_equal(lb.params[k], la.params[k])


def test_fit_with_a_communicator_on_device1_reduces_through_the_host(comm, device1):
    x, y = small_data(12)
    ref = small_network()
    ref.fit(x, y, epochs=2, batch_size=4, optimizer=xc.Adam(0.01), seed=1)
    model = small_network().to(device1)
    model.fit(x, y, epochs=2, batch_size=4, optimizer=xc.Adam(0.01), seed=1, communicator=comm)
    for la, lb in zip(ref.layers, model.layers):
        for k in la.params:
            assert xc.Device.of(lb.params[k]) == device1
            np.testing.assert_allclose(xc.to_numpy(lb.params[k]), la.params[k], rtol=1e-12)


def bn_network(seed=0):
    return xc.Sequential([
        xc.Convolutional((1, 6, 6), 3, 2, bias="none"), xc.BatchNorm2D(2), xc.ReLU(), xc.Dropout(0.3),
        xc.Reshape((2, 4, 4), (32,)), xc.Dense(32, 2), xc.Sigmoid(),
    ], seed=seed, dtype="float64")


def test_batchnorm_statistics_and_dropout_masks_follow_plain_fit_with_a_communicator_of_one(comm):
    x, y = small_data()
    plain, shared = bn_network(), bn_network()
    plain.fit(x, y, epochs=2, batch_size=5, optimizer=xc.Adam(0.01), seed=1)
    shared.fit(x, y, epochs=2, batch_size=5, optimizer=xc.Adam(0.01), seed=1, communicator=comm)
    for la, lb in zip(plain.layers, shared.layers):
        for held in ("params", "buffers"):
            for k, v in getattr(la, held).items():
                np.testing.assert_allclose(getattr(lb, held)[k], v, rtol=1e-12, err_msg=f"{held} {k}")
    assert np.abs(plain.layers[1].buffers["running_mean"]).max() > 0


def test_a_rank_without_samples_draws_the_dropout_keys_the_others_drew(comm):
    x, y = small_data(4)
    model = bn_network()
    model.compile("binary_cross_entropy", xc.SGD(0.1))
    step = parallel.DataParallel(comm, model, *xc.get_loss("binary_cross_entropy"), lambda xp, a, b: 0.0, None)
    step.start(4, {})
    twin = xc.backend.new_rng(0)
    xc.backend.set_rng_state(twin, xc.backend.rng_state(model.rng))
    step.step(x[:0], y[:0], 4)  # no samples here: no forward, but the same draws
    assert xc.backend.rng_state(model.rng) != xc.backend.rng_state(twin)
    xc.backend.random_key(twin)  # one Dropout layer: one key
    assert xc.backend.rng_state(model.rng) == xc.backend.rng_state(twin)


class _TwoRanks:
    """Just enough of a communicator of two to reach the batch size check (the ranks agree)."""

    rank, size, local_rank, local_size = 0, 2, 0, 1

    def check_same(self, config, what):
        pass


def test_a_batch_size_that_does_not_divide_by_the_ranks_is_a_clear_error():
    x, y = small_data()
    with pytest.raises(ConfigError, match=r"batch_size 5 does not divide by the 2 processes") as caught:
        small_network().fit(x, y, batch_size=5, communicator=_TwoRanks())
    assert caught.value.on_every_rank  # every rank raises it: no MPI_Abort needed


def test_more_ranks_on_a_node_than_gpus_is_a_clear_error(monkeypatch):
    from xpcnn.distributed import world as comm_backend
    monkeypatch.setattr(comm_backend, "cuda_device_count", lambda: 2)
    comm = distributed.Communicator(type("W", (), {"rank": 3, "size": 4, "local_rank": 3, "local_size": 4})())
    with pytest.raises(DistributedError, match="4 ranks on this node but 2 GPUs"):
        comm.device("cuda")
    assert comm.device("cpu") == xc.CPU


def test_missing_mpi4py_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setitem(sys.modules, "mpi4py.MPI", None)
    with pytest.raises(MissingDependencyError, match=r"needs mpi4py.*pip install 'xpcnn\[mpi\]'"):
        distributed.init()


def test_cli_distributed_without_mpi4py_is_one_line_naming_the_extra(monkeypatch, capsys):
    from xpcnn.app import cli
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setitem(sys.modules, "mpi4py.MPI", None)
    assert cli.main(["--distributed", "--dataset", "sample", "--epochs", "0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "pip install 'xpcnn[mpi]'" in err[0]


def test_cli_started_by_mpiexec_without_distributed_is_a_usage_error(monkeypatch, capsys):
    from xpcnn.app import cli
    monkeypatch.setenv("PMI_SIZE", "2")
    assert cli.main(["--dataset", "sample", "--epochs", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "without --distributed" in err[0]


def test_cli_distributed_without_mpiexec_trains_as_one_process(tmp_path, monkeypatch, capsys):
    import json

    from xpcnn.app import cli
    monkeypatch.setenv("XPCNN_OFFLINE", "1")
    metrics = tmp_path / "m.json"
    assert cli.main(["--distributed", "--dataset", "sample", "--epochs", "1", "--batch-size", "20", "--quiet",
                     "--metrics-json", str(metrics)]) == 0
    m = json.loads(metrics.read_text())
    assert m["world_size"] == 1 and m["comm_backend"] == "mpi" and m["config"]["batch_size"] == 20
    assert capsys.readouterr().out.count("test accuracy") == 1


def test_ranks_on_one_node_share_its_cpus_unless_a_thread_count_is_set(monkeypatch):
    import threadpoolctl

    from xpcnn.distributed import world as comm_backend
    limits = []
    monkeypatch.setattr(threadpoolctl, "threadpool_limits", limits.append)
    monkeypatch.setattr(comm_backend.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    for name in comm_backend.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert comm_backend.share_cpus(1) is None and limits == []
    assert comm_backend.share_cpus(2) == 4 and comm_backend.share_cpus(16) == 1 and limits == [4, 1]
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    assert comm_backend.share_cpus(2) is None and limits == [4, 1]


def test_ranks_whose_auto_engine_chose_differently_still_agree_on_the_settings():
    # engine="auto" measures on each rank, so after a warm-up fit two ranks may have chosen different engines
    # (seen in bench_dist.py: "the ranks were started with different training settings: layers").
    x, y = small_data()
    a, b = small_network(), small_network()
    for model in (a, b):
        model.compile("binary_cross_entropy", xc.SGD(0.1))
    a.layers[0].chosen_engine, b.layers[0].chosen_engine = "gemm", "signal"
    assert repr(a.layers[0]) != repr(b.layers[0])  # the repr shows the choice...
    settings = [parallel.fit_settings(m, x, y, "binary_cross_entropy", 5, 1, True, 0, None) for m in (a, b)]
    assert settings[0] == settings[1]  # ...the settings the ranks compare do not
    b.layers[0].engine_name = "gemm"  # the engine asked for is a setting
    assert parallel.fit_settings(b, x, y, "binary_cross_entropy", 5, 1, True, 0, None) != settings[0]
