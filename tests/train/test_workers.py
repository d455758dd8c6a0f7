"""Workers (xpcnn/train/workers.py, threads.py): T threads train the parameters one pass trains."""

import os

import numpy as np
import pytest

import xpcnn as xc
from xpcnn.errors import ConfigError
from xpcnn.train import threads, workers as workers_module

# the ranks' tests' optimizers, data and buffer layer (tests/support, on the path through conftest.py)
from distributed_worker import OPTIMIZERS, RunningMean, data


def network(dropout: float = 0.25) -> xc.Sequential:
    return xc.Sequential([
        xc.Convolutional((1, 8, 8), 3, 2, padding=1, bias="tied"), xc.ReLU(), xc.MaxPool2D(2),
        xc.Flatten(), xc.Dense(32, 8), xc.Tanh(), xc.Dropout(dropout), xc.Dense(8, 3), xc.Softmax(),
    ], seed=0, dtype="float64")


def flat(model) -> np.ndarray:
    return np.concatenate([np.ravel(p) for layer in model.layers for p in layer.params.values()])


def relative_difference(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(np.max(np.abs(b)), 1e-300))


def train(count: int, optimizer: str, n: int = 41, batch: int = 10, dropout: float = 0.25):
    x, y = data(n)
    model = network(dropout)
    history = model.fit(x, y, loss="categorical_cross_entropy", epochs=3, batch_size=batch,
                        optimizer=OPTIMIZERS[optimizer](), seed=1, validation_data=(x[:7], y[:7]), workers=count)
    return model, history


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("count", [2, 3])
def test_workers_train_the_float64_parameters_of_one_pass_with_a_short_last_batch_and_dropout(optimizer, count):
    # 41 = 4 x 10 + 1: the last batch leaves one (two) of the workers without a row
    one, one_history = train(1, optimizer)
    many, many_history = train(count, optimizer)
    assert one.parallelism.workers == 1 and many.parallelism.workers == count
    start = flat(network())
    assert relative_difference(flat(one), start) > 1e-3  # it did train
    assert relative_difference(flat(many), flat(one)) <= 1e-10
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert relative_difference(many_history[key], one_history[key]) <= 1e-10, key
    assert backend_state(many) == backend_state(one)  # the generator moved on as one pass moved it


def backend_state(model):
    return xc.backend.rng_state(model.rng)["state"]


def test_dropout_masks_come_from_the_global_batch_not_from_each_share():
    # the masks matter here: without dropout the parameters differ
    with_dropout, _ = train(2, "sgd", dropout=0.5)
    reference, _ = train(1, "sgd", dropout=0.5)
    without, _ = train(1, "sgd", dropout=0.0)
    assert relative_difference(flat(without), flat(reference)) > 1e-3
    assert relative_difference(flat(with_dropout), flat(reference)) <= 1e-10


@pytest.mark.parametrize("count", [2, 3])
def test_buffers_are_the_weighted_mean_of_the_workers_updates(count):
    rng = np.random.default_rng(0)
    x, y = rng.random((23, 4)), np.eye(2)[rng.integers(0, 2, 23)]

    def run(t):
        model = xc.Sequential([xc.Dense(4, 4), RunningMean(4), xc.Dense(4, 2), xc.Sigmoid()], seed=0,
                              dtype="float64")
        model.fit(x, y, epochs=2, batch_size=10, workers=t)
        return model.layers[1].buffers["mean"]

    reference = run(1)
    assert np.max(np.abs(reference)) > 0.1
    np.testing.assert_allclose(run(count), reference, rtol=1e-12)


def test_batchnorm_normalises_each_workers_share():
    # documented (docs/workers.md): per share, as per rank; so 2 workers differ from one pass, and
    # equal one pass over two half batches' statistics in the first forward
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 3)), np.eye(2)[rng.integers(0, 2, 8)]

    def run(t):
        model = xc.Sequential([xc.Dense(3, 4), xc.BatchNorm1D(4), xc.Dense(4, 2), xc.Softmax()], seed=0,
                              dtype="float64")
        model.fit(x, y, epochs=1, batch_size=8, workers=t, shuffle=False)
        return flat(model)

    assert relative_difference(run(2), run(1)) > 1e-8


@pytest.mark.parametrize("count", [2, 3])
def test_predict_and_evaluate_split_too_and_agree_with_one_pass(count):
    x, y = data(29)
    model = network()
    model.fit(x, y, loss="categorical_cross_entropy", epochs=1, batch_size=10, workers=1)
    np.testing.assert_allclose(model.predict(x, batch_size=8, workers=count), model.predict(x, batch_size=8,
                                                                                           workers=1), rtol=1e-13)
    assert model.parallelism.workers == 1
    np.testing.assert_allclose(model.predict(x[:2], workers=count), model.predict(x[:2], workers=1), rtol=1e-13)
    one = model.evaluate(x, y, batch_size=8, workers=1)
    many = model.evaluate(x, y, batch_size=8, workers=count)
    assert model.parallelism.workers == count
    assert many == pytest.approx(one, rel=1e-12)


def test_workers_are_checked_and_refused_off_the_cpu_in_one_line(device1):
    x, y = data(12)
    with pytest.raises(ConfigError, match=r"fit: workers must be an integer >= 1, got 0"):
        network().fit(x, y, loss="categorical_cross_entropy", workers=0)
    model = network().to(device1)
    with pytest.raises(ConfigError, match=r"^fit: workers=2 splits batches between CPU threads, but the model is on "):
        model.fit(x, y, loss="categorical_cross_entropy", workers=2)
    model.fit(x, y, loss="categorical_cross_entropy", batch_size=12)  # the default: one worker there
    assert model.parallelism.workers == 1


def test_an_error_in_a_worker_reaches_the_caller_after_every_worker_finished():
    x, y = data(12)
    model = network()
    model.fit(x, y, loss="categorical_cross_entropy", batch_size=6, workers=2)  # the shapes are known: threads

    class Boom(xc.Layer):
        def forward(self, x, training=True):
            if x.shape[0] == 3 and training:
                raise RuntimeError("boom in a share")
            return x

        def backward(self, g, learning_rate=None):
            return g

    model.layers.insert(3, Boom())
    with pytest.raises(RuntimeError, match="boom in a share"):
        model.fit(x, y, epochs=1, batch_size=6, workers=2)


# -- the plan: how many workers, how many BLAS threads ----------------------------------------------------

@pytest.fixture
def machine(monkeypatch):
    """Two CPUs, an idle machine, no thread variables."""
    for name in threads.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "cpus", lambda: 2)
    monkeypatch.setattr(threads, "load_average", lambda: 0.5)
    return monkeypatch


def test_the_default_takes_a_worker_per_core_when_each_gets_min_share_rows(machine):
    assert threads.plan("fit", None, 128) == threads.Plan(2, 1)
    assert threads.plan("fit", None, 2 * threads.MIN_SHARE) == threads.Plan(2, 1)
    assert threads.plan("fit", None, 2 * threads.MIN_SHARE - 1) == threads.Plan(1, None)
    assert threads.plan("fit", None, 1) == threads.Plan(1, None)
    assert threads.plan("fit", None, 128, "cuda:0") == threads.Plan(1, None)
    assert threads.plan("fit", None, 128, ranks_on_node=2) == threads.Plan(1, None)  # each rank has one core
    assert threads.plan("fit", 3, 1) == threads.Plan(3, 1)  # asked for: given
    assert threads.plan("fit", None, 128, batch_statistics=True) == threads.Plan(1, None)
    assert threads.plan("fit", 2, 128, batch_statistics=True) == threads.Plan(2, 1)


def test_the_default_gives_a_worker_only_a_share_worth_a_thread(machine):
    """Measured (docs/performance.md, "Workers"): two workers slowed the seed network's training at
    every batch and sped up the convnet's at 64 rows each; the matrix work per share decides."""
    from xpcnn import zoo
    from xpcnn.tools.roofline import matrix_flops

    seed, convnet = (zoo.build_model(name, (1, 28, 28), 10)[0] for name in ("seed", "convnet"))
    for who in ("fit", "predict"):
        assert threads.plan(who, None, 128, flops_per_sample=matrix_flops(seed.layers, who == "fit")).workers == 1
    assert threads.plan("fit", None, 128, flops_per_sample=matrix_flops(convnet.layers, True)).workers == 2
    assert threads.plan("predict", None, 64, flops_per_sample=matrix_flops(convnet.layers, False)).workers == 2
    assert threads.plan("fit", None, 32, flops_per_sample=matrix_flops(convnet.layers, True)).workers == 1
    work = threads.MIN_WORK["fit"]
    assert threads.plan("fit", None, 128, flops_per_sample=2 * work // 128) == threads.Plan(2, 1)
    assert threads.plan("fit", None, 128, flops_per_sample=2 * work // 128 - 1) == threads.Plan(1, None)
    assert threads.plan("fit", None, 128, flops_per_sample=0) == threads.Plan(1, None)
    model = xc.Sequential(seed.layers, seed=0)
    model.fit(np.zeros((128, 1, 28, 28), np.float32), np.eye(10, dtype=np.float32)[np.arange(128) % 10],
              epochs=1, batch_size=128, loss="binary_cross_entropy")
    assert model.parallelism.workers == 1


def test_the_default_keeps_batchnorm_models_on_one_worker_in_fit_but_not_in_inference(machine):
    machine.setattr(threads, "MIN_WORK", {"fit": 1, "evaluate": 1, "predict": 1})  # this rule alone
    x, y = np.random.default_rng(0).random((64, 3)), np.eye(2)[np.arange(64) % 2]
    model = xc.Sequential([xc.Dense(3, 4), xc.BatchNorm1D(4), xc.Dense(4, 2), xc.Softmax()], seed=0)
    model.fit(x, y, batch_size=64)
    assert model.parallelism.workers == 1
    model.predict(x, batch_size=64)
    assert model.parallelism.workers == 2
    plain = xc.Sequential([xc.Dense(3, 2), xc.Softmax()], seed=0)
    plain.fit(x, y, batch_size=64)
    assert plain.parallelism.workers == 2


def test_a_busy_machine_holds_blas_to_one_thread_and_says_how_to_choose(machine):
    machine.setattr(threads, "load_average", lambda: 3.2)
    busy = threads.plan("fit", None, 1)
    assert (busy.workers, busy.blas_threads) == (1, 1)
    assert busy.note == ("load average 3.2 on 2 CPUs: other jobs share the cores, so BLAS runs one thread "
                         "(set OPENBLAS_NUM_THREADS to choose)")
    assert threads.plan("fit", None, 128) == busy  # one worker too: a worker waiting for a core stalls each step
    assert threads.plan("fit", 2, 128) == threads.Plan(2, 1)  # asked for: given
    machine.setenv("OPENBLAS_NUM_THREADS", "2")
    assert threads.plan("fit", None, 1) == threads.Plan(1, None)  # the user's choice stands


def blas_counts():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    return [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]


@pytest.mark.parametrize("control", ["threadpoolctl", "openblas"])
def test_blas_is_held_to_one_thread_while_workers_run_and_given_back_after(monkeypatch, control):
    if not any(os.path.exists(p) for p in ("/proc/self/maps",)):
        pytest.skip("no /proc/self/maps")
    if control == "openblas":
        libraries = threads._openblas_libraries()
        assert libraries, "NumPy's wheel brings OpenBLAS"
        monkeypatch.setattr(threads, "_CONTROLLER", [libraries])
    before = blas_counts()
    if max(before) < 2:
        threadpoolctl = pytest.importorskip("threadpoolctl")
        monkeypatch.setattr(threads, "_CONTROLLER", threads._CONTROLLER)
        limiter = threadpoolctl.threadpool_limits(2, user_api="blas")
        before = blas_counts()
    else:
        limiter = None
    try:
        seen = []
        x, y = data(12)
        network().fit(x, y, loss="categorical_cross_entropy", batch_size=6, workers=2,
                      on_batch=lambda logs: seen.append(blas_counts()))
        assert seen and all(counts == [1] * len(counts) for counts in seen)
        assert blas_counts() == before
    finally:
        if limiter is not None:
            limiter.restore_original_limits()


def test_without_a_way_to_hold_blas_the_note_says_what_to_install(monkeypatch):
    monkeypatch.setattr(threads, "_CONTROLLER", [None])
    assert not threads.can_hold_blas()
    assert "pip install threadpoolctl" in threads.blas_note(threads.Plan(2, 1))
    with threads.blas_threads(1):  # degrades to nothing
        pass


def test_the_pool_grows_to_the_threads_asked_for():
    assert workers_module.pool(3)._max_workers >= 3


# -- train.py --workers ------------------------------------------------------------------------------------

def cli_parameters(tmp_path, capsys, name, *flags):
    from xpcnn.app import cli
    from xpcnn.io.checkpoint import load_checkpoint

    path = tmp_path / f"{name}.npz"
    assert cli.main(["--dataset", "sample", "--limit", "30", "--dtype", "float64", "--batch-size", "16",
                     "--epochs", "2", "--quiet", "--save", str(path), *flags]) == 0
    out = capsys.readouterr()
    return flat(load_checkpoint(path)), out


def test_train_py_workers_train_the_parameters_of_one_worker(tmp_path, capsys, machine):
    one, _ = cli_parameters(tmp_path, capsys, "one", "--workers", "1")
    two, out = cli_parameters(tmp_path, capsys, "two", "--workers", "2")
    assert relative_difference(two, one) <= 1e-10 and out.err == ""
    from xpcnn.app import cli
    with pytest.raises(SystemExit) as info:
        cli.main(["--dataset", "sample", "--workers", "0"])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: argument --workers: expected an integer >= 1, got '0' (see --help)"]


def test_train_py_on_a_busy_machine_runs_blas_on_one_thread_and_says_so_in_one_line(tmp_path, capsys, machine):
    from xpcnn.app import cli

    machine.setattr(threads, "load_average", lambda: 5.0)
    seen = []
    real = threads.blas_threads

    def spy(limit):
        seen.append(limit)
        return real(limit)

    machine.setattr(threads, "blas_threads", spy)
    assert cli.main(["--dataset", "sample", "--limit", "10", "--epochs", "1"]) == 0  # batch 1: one worker
    out = capsys.readouterr()
    notes = [line for line in out.out.splitlines() if line.startswith("note: ")]
    assert notes == ["note: load average 5.0 on 2 CPUs: other jobs share the cores, so BLAS runs one thread "
                     "(set OPENBLAS_NUM_THREADS to choose)"] and out.err == ""
    assert seen[0] == 1  # fit held BLAS to one thread
