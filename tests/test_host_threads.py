"""Host threads (xpcnn/backend/threads.py): as many as NumPy's BLAS is set to, BLAS on one inside.

The pieces are disjoint parts of the result: rows or columns of a product (never parts of its
inner sum), samples of a pass. A pass split by samples gives the same values bit for bit. A
product split by rows or columns may differ in the last bits: OpenBLAS picks its kernels (and
their order of additions at the edges) by the shape of each piece.
"""

import numpy as np
import pytest

import xpcnn as xc
from xpcnn import zoo
from xpcnn import backend
from xpcnn.backend import threads as host
from xpcnn.layers import MaxPool2D, ReLU

threadpoolctl = pytest.importorskip("threadpoolctl")


@pytest.fixture
def split_everything(monkeypatch):
    """Every operation split, whatever its size, over the threads the test sets."""
    monkeypatch.setattr(backend.libraries, "PARALLEL_VALUES", 0)

    def use(threads):
        monkeypatch.setattr(backend.NUMPY, "threads", threads)
    return use


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("shape", [(7, 5, 40), (40, 5, 7), (1, 3, 1), (9, 64, 9)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matmul_splits_the_result_and_gives_the_unsplit_values_to_rounding(split_everything, threads, shape, dtype):
    m, k, n = shape
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((n, k)).astype(dtype).T  # a transposed view, as the layers pass
    with host.single_blas():
        expected = np.matmul(a, b)
    split_everything(threads)
    calls = []
    parallel = backend.NUMPY.parallel
    backend.NUMPY.parallel = lambda work, pieces: (calls.append(pieces), parallel(work, pieces))
    try:
        got = backend.matmul(a, b)
    finally:
        del backend.NUMPY.parallel
    assert got.dtype == np.dtype(dtype) and got.shape == (m, n)
    tolerance = {"rtol": 1e-5, "atol": 1e-6} if dtype == "float32" else {"rtol": 1e-13, "atol": 1e-14}
    np.testing.assert_allclose(got, expected, **tolerance)
    assert calls == ([min(threads, max(m, n))] if max(m, n) > 1 else [])  # a 1×1 result stays whole


def test_matmul_of_other_namespaces_is_their_own():
    xs = pytest.importorskip("array_api_strict")
    a, b = xs.ones((2, 3)), xs.ones((3, 4))
    assert xs.all(backend.matmul(a, b) == 3.0)


def blas_counts():
    return [c.get_num_threads() for c in host._blas()]


@pytest.fixture
def setting(monkeypatch):
    """Host threads as a test configures them, off again after it."""
    monkeypatch.delenv(host.ENV, raising=False)
    monkeypatch.setitem(host._state, "setting", None)
    return host.configure


needs_blas = pytest.mark.skipif(not host._blas(), reason="threadpoolctl finds no BLAS library here")


@needs_blas
def test_host_threads_are_off_by_default_and_auto_is_off_for_a_pass_without_a_key(setting):
    for chosen in (None, "auto"):
        setting(chosen)
        with threadpoolctl.threadpool_limits(2, user_api="blas"):
            with backend.host_threads():
                assert host.active_threads() == 1 and set(blas_counts()) == {2}
        assert host._state["setting"] == (1 if chosen is None else "auto")


@pytest.mark.parametrize("on_s, off_s, chosen", [(1.0, 1.2, True), (1.0, 1.04, False), (1.3, 1.0, False)])
def test_chooser_times_a_block_on_then_a_block_off_and_keeps_threads_only_when_clearly_faster(on_s, off_s,
                                                                                               chosen):
    chooser = host.Chooser()
    modes = []
    step, infer = ("step", "model"), ("forward", "model")
    for _ in range(2 * chooser.ROUNDS):
        on, timed = chooser.mode(step)
        assert timed
        modes.append(on)
        # the first pass of each block pays for warm-up: the best of the block counts
        slow = 5.0 if len(modes) in (1, chooser.ROUNDS + 1) else 0.0
        chooser.record(step, on, slow + (on_s if on else off_s))
        if len(modes) == 1:
            assert chooser.mode(infer) == (True, True)  # the model's other passes measure too, meanwhile
            chooser.record(infer, True, 1.0)
    assert modes == [True] * chooser.ROUNDS + [False] * chooser.ROUNDS
    assert chooser.chosen == {"model": (step, chosen)}
    # the first key to finish decides for every pass of the model, and the others stop measuring
    assert chooser.mode(step) == chooser.mode(infer) == chooser.mode(("backward", "model")) == (chosen, False)
    assert chooser.seconds == {} and chooser.mode(("step", "other")) == (True, True)


@needs_blas
def test_auto_measures_a_model_s_passes_and_keeps_its_choice(setting):
    setting("auto")
    model, loss = zoo.build_model("seed", (1, 8, 8), 2, seed=0, dtype="float64")
    x = np.random.default_rng(0).random((4, 1, 8, 8))
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        for _ in range(2 * host.Chooser.ROUNDS):
            model.forward(x, training=False)
        key = ("forward", id(model), False, (4, 1, 8, 8), "float64")
        assert host.CHOOSER.chosen[id(model)][0] == key
        before = dict(host.CHOOSER.chosen)
        model.forward(x, training=False)
        model.forward(x[:2], training=False)  # another shape: the model's choice holds
        assert host.CHOOSER.chosen == before and not any(k[1] == id(model) for k in host.CHOOSER.seconds)
    other, _ = zoo.build_model("seed", (1, 8, 8), 2, seed=0, dtype="float64")
    with threadpoolctl.threadpool_limits(1, user_api="blas"):  # one BLAS thread: nothing to choose
        other.forward(x, training=False)
        assert not any(k[1] == id(other) for k in host.CHOOSER.seconds)


@needs_blas
def test_host_threads_follow_blas_hold_it_to_one_inside_and_restore_it(setting):
    setting("blas")
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        assert host.active_threads() == 1  # outside: one
        with backend.host_threads():
            assert host.active_threads() == 2 and set(blas_counts()) == {1}
            with backend.host_threads():  # nested: nothing changes, nothing is restored early
                assert host.active_threads() == 2
            assert host.active_threads() == 2 and set(blas_counts()) == {1}
        assert host.active_threads() == 1 and set(blas_counts()) == {2}
        with pytest.raises(RuntimeError, match="inside"):
            with backend.host_threads():
                raise RuntimeError("inside")
        assert host.active_threads() == 1 and set(blas_counts()) == {2}  # restored after an error too
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        with backend.host_threads():
            assert host.active_threads() == 1 and set(blas_counts()) == {1}


@needs_blas
def test_a_count_from_the_environment_is_capped_and_a_bad_one_is_named(setting, monkeypatch):
    monkeypatch.setenv(host.ENV, "3")
    monkeypatch.setattr(host, "MAX_THREADS", 2)
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        with backend.host_threads():
            assert host.active_threads() == 2 and set(blas_counts()) == {1}
    monkeypatch.setitem(host._state, "setting", None)
    monkeypatch.setenv(host.ENV, "many")
    with pytest.raises(xc.ConfigError, match=r"XPCNN_HOST_THREADS: expected a positive number of threads, "
                                             r"'blas' or 'auto', got 'many'"):
        with backend.host_threads():
            pass
    with pytest.raises(xc.ConfigError, match="got 0"):
        setting(0)
    setting(1)
    with backend.host_threads():
        assert host.active_threads() == 1


@pytest.mark.parametrize("threads", [2, 3])
def test_maxpool_and_relu_split_by_samples_give_the_same_values(split_everything, threads):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3, 7, 6)).astype(np.float32)
    x[:, :, 0, 0] = x[:, :, 0, 1]  # ties: the first maximum wins in every piece as in one
    dy = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    dz = rng.standard_normal(x.shape).astype(np.float32)
    results = []
    for count in (1, threads):
        split_everything(count)
        pool, relu = MaxPool2D(2), ReLU()
        results.append((pool.forward(x), pool.backward(dy), relu.forward(x), relu.backward(dz)))
    for one, many in zip(*results):
        np.testing.assert_array_equal(many, one)


def test_training_on_split_threads_gives_the_single_thread_parameters(split_everything):
    def train(threads):
        split_everything(threads)
        model, loss = zoo.build_model("convnet", (1, 12, 12), 3, seed=0, dtype="float64")
        rng = np.random.default_rng(2)
        x = rng.random((6, 1, 12, 12))
        y = np.eye(3)[rng.integers(0, 3, 6)]
        model.fit(x, y, loss=loss, epochs=2, batch_size=3, optimizer=xc.Adam(1e-2), shuffle=False)
        return [np.array(p) for layer in model.layers for p in layer.params.values()]

    for one, many in zip(train(1), train(3)):
        np.testing.assert_allclose(many, one, rtol=1e-10, atol=1e-13)  # the rank-count promise's 1e-10


def test_passes_from_parallel_values_on_are_split_and_smaller_ones_are_not(monkeypatch):
    monkeypatch.setattr(backend.NUMPY, "threads", 2)
    calls = []
    parallel = backend.NUMPY.parallel
    monkeypatch.setattr(backend.NUMPY, "parallel", lambda work, pieces: (calls.append(pieces), parallel(work, pieces)))
    limit = backend.PARALLEL_VALUES  # 2^18 values: a 256×256 image holds 2^16
    for n, pieces in ((limit // 65536, 2), (limit // 65536 // 2, 1)):
        calls.clear()
        x = np.ones((n, 1, 256, 256), dtype=np.float32)
        relu, pool = ReLU(), MaxPool2D(2)
        relu.backward(relu.forward(x))
        pool.backward(pool.forward(x))
        assert calls == [pieces] * 4, n
