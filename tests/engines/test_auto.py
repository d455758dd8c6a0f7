"""``engine="auto"`` (xpcnn/engines/auto.py): choose by measuring, once per layer shape, and keep the winner.

The measurement, step by step, on a fake clock: stand-in engines advance a fake
``time.perf_counter`` by a set number of seconds per forward and backward pass and record every
call, so the warm-up, the hopeless rule, the turns, the ``MARGIN`` rule and the round counts of the
module docstring are checked exactly, without real sleeps. The module's rules are what is
measured how often, so counting the rounds is checking the rule.

Then inside a layer, on real (slowed) engines: it measures once per layer shape and keeps the
winner; ``XPCNN_ENGINE`` and ``engine=`` override it; the choice can be seen (``chosen_engine``,
``repr``, :func:`~xpcnn.engines.auto.choices`).
"""

import time
import types

import numpy as np
import pytest

import xpcnn as xc
from fake_cupy import FakeCupyArray, fake_cupy
from xpcnn import backend, engines
from xpcnn.engines import ENGINES, auto
from xpcnn.engines.gemm import GemmEngine
from xpcnn.errors import ConfigError


class Clock:
    def __init__(self):
        self.now = 64.0  # not 0: a round timed from 0 would hide a missing ``- start``; 64 + k/1024 is exact

    def perf_counter(self):
        return self.now


class TimedEngine:
    """An engine whose forward takes ``fwd`` and backward ``bwd`` fake seconds; records its calls.

    ``fwd`` may be a list: the forward passes take its times in turn, then its last one.
    """

    def __init__(self, name, clock, calls, fwd, bwd=0.0, strides=(1, 2, 3)):
        self.name, self.clock, self.calls, self.bwd, self.strides = name, clock, calls, bwd, strides
        self.fwds = list(fwd) if isinstance(fwd, list) else [fwd]

    def supports(self, stride):
        return stride in self.strides

    def forward(self, x, kernels, stride=1, keep=False):
        self.calls.append((self.name, "forward", stride, bool(keep)))  # any false flag keeps nothing
        self.clock.now += self.fwds.pop(0) if len(self.fwds) > 1 else self.fwds[0]
        return np.zeros(3), (f"kept by {self.name}" if keep else None)

    def backward(self, x, kernels, dy, stride=1, kept=None, input_gradient=True):
        self.calls.append((self.name, "backward", stride, kept, input_gradient))
        self.clock.now += self.bwd
        return None, None


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(auto, "time", types.SimpleNamespace(perf_counter=fake.perf_counter))
    synced = []
    monkeypatch.setattr(auto.backend, "synchronize", lambda y: synced.append(y))
    fake.synced = synced
    auto.forget()
    yield fake
    auto.forget()


def engines_(clock, calls, **times):
    return [TimedEngine(name, clock, calls, *t) for name, t in times.items()]


def test_a_round_is_timed_from_its_start_and_synchronised(clock):
    calls = []
    fast, = engines_(clock, calls, fast=(0.25, 0.5))
    assert auto._run(fast, None, None, 2, False) == pytest.approx(0.25)
    assert calls == [("fast", "forward", 2, False)] and len(clock.synced) == 1
    calls.clear()
    assert auto._run(fast, None, None, 2, True) == pytest.approx(0.75)
    assert auto._run(fast, None, None, 3, True, False) == pytest.approx(0.75)
    assert calls == [("fast", "forward", 2, True), ("fast", "backward", 2, "kept by fast", True),
                     ("fast", "forward", 3, True), ("fast", "backward", 3, "kept by fast", False)]
    assert len(clock.synced) == 3


def test_warm_up_runs_two_forwards_each_then_rounds_in_turns_until_the_budget(clock, monkeypatch):
    monkeypatch.setattr(auto, "MIN_ROUNDS", 1)  # the budget alone ends the rounds here
    calls = []
    a, b = engines_(clock, calls, a=(0.004, 0.004), b=(0.005, 0.005))
    name, best, dropped = auto.measure([a, b], None, None, 1, True)
    # warm-up: forwards only, in order and then reversed
    assert calls[:4] == [("a", "forward", 1, False), ("b", "forward", 1, False),
                         ("b", "forward", 1, False), ("a", "forward", 1, False)]
    timed = [c for c in calls[4:] if c[1] == "forward"]
    # warm-up 0.018 s, then 0.018 s per round: over BUDGET_S = 0.05 after the second round
    assert [c[0] for c in timed] == ["a", "b", "b", "a"]  # turns rotate: each engine leads in turn
    assert all(c[3] is True for c in timed)
    assert [c for c in calls[4:] if c[1] == "backward"] == [
        (n, "backward", 1, f"kept by {n}", True) for n in ["a", "b", "b", "a"]]
    assert (name, dropped) == ("a", []) and best == pytest.approx({"a": 0.008, "b": 0.010})


def test_rounds_stop_at_max_rounds_and_run_at_least_min_rounds(clock, monkeypatch):
    calls = []
    quick = engines_(clock, calls, a=(1e-6,), b=(2e-6,))
    auto.measure(quick, None, None, 1, False)
    assert len(calls) == 4 + 2 * auto.MAX_ROUNDS  # never over the budget: MAX_ROUNDS rounds
    calls.clear()
    slow = engines_(clock, calls, a=(1.0,), b=(1.0,))
    auto.measure(slow, None, None, 1, False)
    assert len(calls) == 4 + 2 * auto.MIN_ROUNDS  # over the budget at once: MIN_ROUNDS rounds
    calls.clear()
    monkeypatch.setattr(auto, "MIN_ROUNDS", 3)
    auto.measure(slow, None, None, 1, False)
    assert len(calls) == 4 + 2 * 3
    calls.clear()
    monkeypatch.setattr(auto, "MIN_ROUNDS", 1)
    monkeypatch.setattr(auto, "BUDGET_S", 0.0)  # over the budget, but an exact tie of elapsed and budget is not
    edge = engines_(clock, calls, a=(0.0,), b=(0.0,))
    auto.measure(edge, None, None, 1, False)
    assert len(calls) == 4 + 2 * auto.MAX_ROUNDS


def test_the_budget_counts_from_the_start_of_the_warm_up(clock, monkeypatch):
    monkeypatch.setattr(auto, "MIN_ROUNDS", 1)
    calls = []
    # warm-up 4 × 0.01 = 0.04 s; one round 0.02 s: 0.06 > 0.05 after the first round
    auto.measure(engines_(clock, calls, a=(0.01,), b=(0.01,)), None, None, 1, False)
    assert len(calls) == 4 + 2


def test_an_engine_over_hopeless_times_the_fastest_is_dropped_after_the_warm_up(clock):
    calls = []
    unit = 1 / 1024  # exact binary fractions: "4 times the fastest" is an exact tie
    fast, slow, edge = engines_(clock, calls, fast=(unit,), slow=(5 * unit,), edge=(4 * unit,))
    name, best, dropped = auto.measure([fast, slow, edge], None, None, 1, True)
    assert (name, dropped) == ("fast", ["slow"])  # exactly HOPELESS times slower stays
    assert not any(c[0] == "slow" for c in calls[6:])  # only its two warm-up forwards
    assert best["slow"] == 5 * unit  # its forward alone, as choices() says
    calls.clear()
    name, best, dropped = auto.measure([slow, fast], None, None, 1, True)
    assert (name, dropped, best) == ("fast", ["slow"], {"slow": 5 * unit, "fast": unit})
    assert len(calls) == 4  # one engine left: no timed rounds


def test_a_stall_in_one_warm_up_pass_does_not_drop_an_engine(clock):
    calls = []
    unit = 1 / 1024
    stalled, fast = engines_(clock, calls, stalled=([100 * unit, 2 * unit],), fast=([unit, 100 * unit, unit],))
    name, best, dropped = auto.measure([stalled, fast], None, None, 1, False)
    assert dropped == [] and name == "fast" and best == {"stalled": 2 * unit, "fast": unit}


def test_one_engine_is_not_measured(clock):
    calls = []
    only, = engines_(clock, calls, only=(1.0,))
    assert auto.measure([only], None, None, 1, True) == ("only", {}, [])
    assert calls == []


def test_choose_measures_a_first_layer_without_the_input_gradient_and_records_the_time(clock, monkeypatch):
    calls = []
    known = {e.name: e for e in engines_(clock, calls, gemm=(0.001, 0.002), signal=(0.003, 0.001))}
    x, kernels = np.zeros((2, 1, 5, 5)), np.zeros((3, 1, 3, 3))
    assert auto.choose(x, kernels, 2, True, known, False) is known["gemm"]
    assert {c[4] for c in calls if c[1] == "backward"} == {False} and {c[2] for c in calls} == {2}
    (report,) = auto.choices()
    assert report["measured_s"] == pytest.approx(clock.now - 64.0)
    assert report["seconds"] == pytest.approx({"gemm": 0.003, "signal": 0.004})
    assert (report["input_gradient"], report["mode"], report["stride"]) == (False, "train", 2)


def test_signal_direct_is_a_candidate_on_cupy_only(monkeypatch):
    x = np.zeros((1, 1, 5, 5))
    assert [e.name for e in auto.candidates(x, None, 1, ENGINES)] == ["gemm", "signal"]
    monkeypatch.setattr(backend.CUPY, "_cupy", fake_cupy())
    on_gpu = FakeCupyArray(x)
    assert backend.backend_for(on_gpu) is backend.CUPY
    assert [e.name for e in auto.candidates(on_gpu, None, 1, ENGINES)] == ["gemm", "signal", "signal-direct"]
    assert [e.name for e in auto.candidates(on_gpu, None, 2, ENGINES)] == [
        n for n in ["gemm", "signal", "signal-direct"] if ENGINES[n].supports(2)]


def test_a_cold_first_round_does_not_decide(clock):
    calls = []
    unit = 1 / 1024
    # a: two warm-up forwards, then a first training round of 100 units (its first backward's
    # allocations), then 10; b: 20 throughout. The budget is spent after the first round.
    a, b = engines_(clock, calls, a=([20 * unit, 20 * unit, 100 * unit, 10 * unit],), b=(20 * unit,))
    name, best, _ = auto.measure([a, b], None, None, 1, True)
    assert auto.MIN_ROUNDS >= 2 and (name, best["a"]) == ("a", 10 * unit)


def test_a_later_engine_is_chosen_only_when_over_margin_times_faster_than_the_first(clock):
    unit = 1 / 1024  # exact binary fractions: 4 · 1.25 = 5 is an exact tie
    for later, chosen in [(5, "first"), (4, "first"), (3, "later"), (6, "first")]:
        engines = engines_(clock, [], first=(5 * unit,), later=(later * unit,))
        assert auto.measure(engines, None, None, 1, False)[0] == chosen, later
    # the first engine dropped as hopeless: the fastest of the others, by the same rule among them
    engines = engines_(clock, [], first=(50 * unit,), b=(5 * unit,), c=(4 * unit,))
    assert auto.measure(engines, None, None, 1, False)[:3:2] == ("b", ["first"])
    engines = engines_(clock, [], first=(50 * unit,), b=(5 * unit,), c=(3 * unit,))
    assert auto.measure(engines, None, None, 1, False)[0] == "c"


# -- inside a layer --------------------------------------------------------------------------------

class SlowGemm(GemmEngine):
    """gemm's results under another name, ``delay`` seconds late in every forward pass."""

    def __init__(self, name, delay=0.02):
        self.name, self.delay = name, delay

    def forward(self, *args, **kwargs):
        time.sleep(self.delay)
        return super().forward(*args, **kwargs)


def with_candidates(monkeypatch, *engines_):
    known = dict(ENGINES, **{e.name: e for e in engines_})
    monkeypatch.setattr(engines, "ENGINES", known)
    monkeypatch.setattr(auto, "candidates", lambda x, k, s, known: list(engines_))


def conv(**kw):
    return xc.Convolutional((2, 9, 8), 3, 4, seed=0, dtype="float64", **kw)


def batch(n=3):
    return np.random.default_rng(0).standard_normal((n, 2, 9, 8))


@pytest.mark.parametrize("slow", ["gemm", "signal"])
def test_auto_measures_the_candidates_and_picks_the_fastest(measured, monkeypatch, slow):
    fast = "signal" if slow == "gemm" else "gemm"
    with_candidates(monkeypatch, SlowGemm(slow), ENGINES[fast])
    layer = conv()
    assert layer.chosen_engine is None
    layer.forward(batch())
    assert layer.chosen_engine == fast
    (choice,) = auto.choices()
    assert choice["engine"] == fast and choice["input"] == [3, 2, 9, 8] and choice["mode"] == "train"
    assert choice["seconds"][slow] > choice["seconds"][fast]
    assert choice["dropped"] == [slow]  # 20 ms against well under 5: dropped after one forward pass


@pytest.mark.parametrize("slower", ["gemm", "signal"])
def test_auto_times_close_contenders_in_rounds_and_keeps_the_faster(measured, monkeypatch, slower):
    faster = "signal" if slower == "gemm" else "gemm"
    with_candidates(monkeypatch, SlowGemm(slower, 0.006), SlowGemm(faster, 0.003))
    layer = conv()
    layer.forward(batch())
    (choice,) = auto.choices()
    assert choice["dropped"] == [] and layer.chosen_engine == faster
    # a training step's forward sleeps once, and backward (forward-free here) adds little
    assert 0.006 <= choice["seconds"][slower] and 0.003 <= choice["seconds"][faster] < choice["seconds"][slower]


def test_auto_measures_once_per_shape_and_keeps_the_winner(measured, monkeypatch):
    calls = []
    real_measure = auto.measure
    monkeypatch.setattr(auto, "measure", lambda *a: calls.append(a[1].shape) or real_measure(*a))
    layer, other = conv(), conv()
    for _ in range(3):
        layer.forward(batch())
        other.forward(batch())  # another layer of the same shape reuses the choice
    assert len(calls) == 1 and other.chosen_engine == layer.chosen_engine in ENGINES
    layer.forward(batch(5))  # a new batch size is a new shape
    layer.forward(batch(5), training=False)  # and inference is measured on its own
    assert len(calls) == 3
    assert {c["mode"] for c in auto.choices()} == {"train", "infer"}


def test_auto_skips_engines_that_cannot_do_the_stride(measured, monkeypatch):
    class NoStride(SlowGemm):
        def supports(self, stride):
            return stride == 1

    real = auto.candidates
    monkeypatch.setattr(auto, "candidates", lambda x, k, s, known: real(x, k, s, dict(known, gemm=NoStride("gemm"))))
    layer = conv(stride=2)
    layer.forward(batch())
    assert layer.chosen_engine == "signal"  # the only candidate left: no measurement needed
    assert auto.choices()[0]["seconds"] == {}


@pytest.mark.parametrize("value", ["gemm", "signal", "signal-direct"])
def test_xpcnn_engine_overrides_auto_without_measuring(measured, monkeypatch, value):
    monkeypatch.setenv(auto.ENV, value)
    layer = conv()
    layer.forward(batch())
    assert layer.chosen_engine == value and auto.choices() == []
    assert f"engine='auto' -> '{value}'" in repr(layer)


def test_an_engine_named_in_the_layer_wins_over_xpcnn_engine(measured, monkeypatch):
    monkeypatch.setenv(auto.ENV, "signal")
    layer = conv(engine="gemm")
    layer.forward(batch())
    assert layer.chosen_engine == "gemm" and "->" not in repr(layer)


def test_unknown_xpcnn_engine_is_a_config_error_naming_the_choices(measured, monkeypatch):
    monkeypatch.setenv(auto.ENV, "winograd")
    with pytest.raises(ConfigError, match=r"XPCNN_ENGINE='winograd'.*'gemm', 'signal'"):
        conv().forward(batch())




def test_a_first_layer_is_measured_without_the_input_gradient_it_never_computes(measured, monkeypatch):
    computed = []
    real_backward = GemmEngine.backward
    monkeypatch.setattr(GemmEngine, "backward", lambda self, *a: computed.append(a[-1]) or real_backward(self, *a))
    with_candidates(monkeypatch, SlowGemm("gemm", 0.003), SlowGemm("signal", 0.003))  # both timed in rounds
    model = xc.Sequential([conv(), xc.Flatten()], seed=0)  # Sequential spares its first layer ∂E/∂X
    model.forward(batch())
    assert computed and not any(computed)
    assert [c["input_gradient"] for c in auto.choices()] == [False]


def test_engine_for_defaults_to_a_stride_1_training_step_and_get_engine_refuses_auto(measured):
    x, kernels = batch(), conv().kernels
    engine = engines.engine_for("auto", x, kernels)
    (choice,) = auto.choices()
    assert engine is ENGINES[choice["engine"]]
    assert (choice["stride"], choice["mode"], choice["input_gradient"]) == (1, "train", True)
    assert engines.engine_for("signal", x, kernels) is ENGINES["signal"] and len(auto.choices()) == 1
    assert engines.get_engine("signal-direct") is ENGINES["signal-direct"]
    with pytest.raises(ConfigError, match=r"^get_engine: 'auto' is chosen per layer shape; call engine_for\(\.\.\.\) "
                                          r"instead$"):
        engines.get_engine("auto")


def test_a_layer_that_computes_the_input_gradient_is_measured_with_it(measured):
    layer = conv()
    layer.forward(batch())
    layer.forward(batch(), training=False)
    modes = {(c["mode"], c["input_gradient"]) for c in auto.choices()}
    assert modes == {("train", True), ("infer", False)}


def test_choices_report_each_measurement_in_full(measured):
    layer = conv(stride=2)
    start = time.perf_counter()
    layer.forward(batch())
    elapsed = time.perf_counter() - start
    (choice,) = auto.choices()
    assert set(choice) == {"input", "kernels", "stride", "dtype", "device", "mode", "input_gradient", "engine",
                           "seconds", "dropped", "measured_s"}
    assert (choice["input"], choice["kernels"], choice["stride"], choice["dtype"], choice["device"]) == \
        ([3, 2, 9, 8], [4, 2, 3, 3], 2, "float64", "cpu")
    assert (choice["mode"], choice["input_gradient"], choice["engine"]) == ("train", True, layer.chosen_engine)
    assert 0 < choice["measured_s"] <= elapsed  # the measurement's own duration, within the forward pass


def test_xpcnn_engine_auto_measures_and_a_bad_value_lists_every_choice(measured, monkeypatch):
    monkeypatch.setenv(auto.ENV, " Auto ")
    layer = conv()
    layer.forward(batch())
    assert len(auto.choices()) == 1 and layer.chosen_engine == auto.choices()[0]["engine"]
    monkeypatch.setenv(auto.ENV, "fastest")
    with pytest.raises(ConfigError, match=r"^XPCNN_ENGINE='fastest': expected one of "
                                          r"\['auto', 'gemm', 'signal', 'signal-direct'\]$"):
        conv().forward(batch())
