"""``engine="auto"``: it measures once per layer shape and keeps the winner; ``XPCNN_ENGINE`` and
``engine=`` override it; the choice can be seen (``chosen_engine``, ``repr``); an inference
forward keeps nothing for backward, whichever engine ran it."""

import time

import numpy as np
import pytest

import xpcnn as xc
from xpcnn import engines
from xpcnn.io.checkpoint import load_checkpoint, save_checkpoint
from xpcnn.engines import ENGINES, auto
from xpcnn.engines.gemm import GemmEngine
from xpcnn.errors import ConfigError, StateError


@pytest.fixture
def measured(monkeypatch):
    """``auto`` really measuring (the suite otherwise pins XPCNN_ENGINE=gemm), from a clean slate."""
    monkeypatch.delenv(auto.ENV, raising=False)
    auto.forget()
    yield
    auto.forget()


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


def test_unknown_engine_argument_is_rejected_when_the_layer_is_built():
    with pytest.raises(ConfigError, match="unknown convolution engine 'fast'"):
        conv(engine="fast")


def test_moving_a_layer_forgets_its_chosen_engine():
    layer = conv()
    layer.forward(batch())
    assert layer.chosen_engine == "gemm" and layer.chosen_engines == {"train": "gemm"}
    layer.to("cpu", "float32")
    assert layer.chosen_engine is None and layer.chosen_engines == {}


@pytest.mark.parametrize("name", ["auto", *ENGINES])
@pytest.mark.parametrize("stride", [1, 2])
def test_inference_forward_keeps_nothing_and_backward_then_raises(measured, name, stride):
    layer = conv(engine=name, stride=stride, padding=1)
    x = batch()
    y = layer.forward(x)
    assert layer._saved["reusable"] is not None or layer.chosen_engine == "signal-direct"
    np.testing.assert_allclose(layer.forward(x, training=False), y, atol=1e-12)
    assert layer._saved is None
    with pytest.raises(StateError, match="training=True"):
        layer.backward(np.ones_like(y))


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_checkpoints_keep_the_stride_and_the_engine(tmp_path, stride):
    model = xc.Sequential([xc.Convolutional((1, 9, 9), 3, 2, stride=stride, engine="signal"), xc.Flatten()], seed=0)
    x = np.random.default_rng(1).random((2, 1, 9, 9), dtype=np.float32)
    save_checkpoint(tmp_path / "m.npz", model)
    loaded = load_checkpoint(tmp_path / "m.npz")
    conv_layer = loaded.layers[0]
    assert conv_layer.stride == stride and conv_layer.engine_name == "signal"
    assert conv_layer.config() == model.layers[0].config()
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), atol=1e-6)


@pytest.mark.parametrize("stride", [0, -1, 1.5, True, "2"])
def test_a_bad_stride_is_a_config_error_naming_it(stride):
    with pytest.raises(ConfigError, match=r"Convolutional: stride must be an integer >= 1, got "):
        conv(stride=stride)


def test_stride_output_size_is_floor_of_padded_extent_over_stride_plus_one():
    for h, k, p, s in [(9, 3, 0, 2), (10, 3, 1, 3), (28, 5, 2, 2), (7, 7, 0, 4)]:
        layer = xc.Convolutional((1, h, h + 1), k, 1, padding=p, stride=s)
        assert layer.out_hw == ((h + 2 * p - k) // s + 1, (h + 1 + 2 * p - k) // s + 1)


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
