"""The doctor's parity check fails a layer whose values are right but whose dtype or device is wrong."""

from __future__ import annotations

import array_api_strict
import numpy as np
import pytest

import xpcnn as xc
from xpcnn.testing import parity


class WrongDtypeReLU(xc.ReLU):
    """The right values, in float64 whatever the input's dtype."""

    def forward(self, x, training=True):
        return super().forward(x, training).astype(np.float64)


def on_another_device(array):
    """The same values, handed back in another array library (on another device)."""
    return array_api_strict.asarray(np.asarray(array))


class WrongDeviceReLU(xc.ReLU):
    """The right values, handed back in another array library (on another device)."""

    def forward(self, x, training=True):
        return on_another_device(super().forward(x, training))

    def backward(self, output_gradient, learning_rate=None):
        return on_another_device(super().backward(np.asarray(output_gradient), learning_rate))


@pytest.mark.parametrize("layer, problem", [(WrongDtypeReLU, "dtype float64, expected float32"),
                                            (WrongDeviceReLU, "expected cpu")])
def test_right_values_in_the_wrong_place_fail(monkeypatch, layer, problem):
    monkeypatch.setitem(parity.LAYER_CASES, "relu", parity.LayerCase(lambda dtype: layer(), (3, 7)))
    check = parity.check_layer("relu", xc.CPU, "float32")
    assert not check.ok
    assert any(problem in p for p in check.problems), check.problems
    assert check.worst <= check.tolerance  # the values themselves agree


def test_the_plain_layer_passes():
    assert parity.check_layer("relu", xc.CPU, "float32").ok


def test_the_convolution_cases_cover_every_engine_bias_padding_and_stride_each_built_as_asked():
    convs = {name: case for name, case in parity.LAYER_CASES.items() if name.startswith("conv-")}
    configs = {name: case.make("float32").config() for name, case in convs.items()}
    engine_in_name = {"signal": "signal", "gemm": "gemm", "direct": "signal-direct", "auto": "auto"}
    assert all(config["engine"] == engine_in_name[name.split("-")[1]] for name, config in configs.items())
    assert {config["engine"] for config in configs.values()} == set(parity.ENGINE_NAMES)
    assert {config["bias"] for config in configs.values()} == {"tied", "untied"}
    assert {config["padding"] for config in configs.values()} == {0, 1, 2}
    assert {config["stride"] for config in configs.values()} == {1, 2, 3}
    for name, case in convs.items():
        assert tuple(configs[name]["input_shape"]) == case.shape, name
        for dtype in parity.DTYPES:  # the device's and the host's builds: the same weights, from seed 0
            a, b = case.make(dtype), case.make(dtype)
            assert a.dtype == dtype and np.array_equal(xc.to_numpy(a.kernels), xc.to_numpy(b.kernels)), name


def off_in_float32(array, factor=1.01):
    """``array`` times ``factor`` when it is float32 (the device's dtype in these tests): a device-only error."""
    return array * factor if array.dtype == np.float32 else array


class DenseOffForward(xc.Dense):
    def forward(self, x, training=True):
        return off_in_float32(super().forward(x, training))


class DenseOffInputGradient(xc.Dense):
    def backward(self, output_gradient, learning_rate=None):
        return off_in_float32(super().backward(output_gradient, learning_rate))


class DenseOffWeightGradient(xc.Dense):
    def backward(self, output_gradient, learning_rate=None):
        dx = super().backward(output_gradient, learning_rate)
        self.grads["weights"] = off_in_float32(self.grads["weights"])
        return dx


class DenseNoInputGradient(xc.Dense):
    def backward(self, output_gradient, learning_rate=None):
        dx = super().backward(output_gradient, learning_rate)
        return None if dx.dtype == np.float32 else dx


class BatchNormOffStatistics(xc.BatchNorm1D):
    def forward(self, x, training=True):
        y = super().forward(x, training)
        self.buffers["running_mean"] = off_in_float32(self.buffers["running_mean"], 1.5)
        return y


@pytest.mark.parametrize("name, make, array", [
    ("dense", lambda dtype: DenseOffForward(12, 5, dtype=dtype, seed=0), "Y"),
    ("dense", lambda dtype: DenseOffInputGradient(12, 5, dtype=dtype, seed=0), "∂E/∂X"),
    ("dense", lambda dtype: DenseOffWeightGradient(12, 5, dtype=dtype, seed=0), "∂E/∂weights"),
    ("batchnorm1d", lambda dtype: BatchNormOffStatistics(7, dtype=dtype), "buffer running_mean"),
])
def test_a_layer_wrong_on_the_device_alone_fails_naming_the_array(monkeypatch, name, make, array):
    monkeypatch.setitem(parity.LAYER_CASES, name, parity.LayerCase(make, parity.LAYER_CASES[name].shape))
    check = parity.check_layer(name, xc.CPU, "float32")
    assert not check.ok and check.worst_array == array and check.worst > check.tolerance == 1e-4
    assert parity.check_layer(name, xc.CPU, "float64").ok  # the host reference is float64: no error there


def test_a_layer_that_hands_back_fewer_arrays_on_the_device_fails_listing_them(monkeypatch):
    monkeypatch.setitem(parity.LAYER_CASES, "dense",
                        parity.LayerCase(lambda dtype: DenseNoInputGradient(12, 5, dtype=dtype, seed=0), (12,)))
    check = parity.check_layer("dense", xc.CPU, "float32")
    assert check.ok is False
    assert check.problems == ["arrays ['Y', '∂E/∂bias', '∂E/∂weights'], expected ['Y', '∂E/∂X', '∂E/∂bias', "
                              "'∂E/∂weights']"]


def test_a_check_reports_itself_as_json_with_infinity_as_text():
    check = parity.Check("layer x float32", ok=False, worst=float("inf"), tolerance=1e-4, worst_array="Y",
                         problems=["Y: shape (2,), expected (3,)"], seconds=1.234567)
    assert check.to_json() == {"name": "layer x float32", "ok": False, "worst_relative_error": "inf",
                               "tolerance": 1e-4, "worst_array": "Y", "problems": ["Y: shape (2,), expected (3,)"],
                               "seconds": 1.2346}
    assert parity.Check("c", worst=2.5e-7).to_json()["worst_relative_error"] == 2.5e-7


def test_each_check_is_named_for_what_it_compares():
    assert parity.check_layer("relu", xc.CPU, "float32").name == "layer relu float32"
    assert parity.check_layer_gradients("relu").name == "gradient relu float64 (finite differences)"
    assert parity.check_engine("gemm", xc.CPU, "float32", 2).name == "engine gemm stride 2 float32"
    auto = parity.check_engine("auto", xc.CPU, "float64", 1).name
    assert auto.startswith("engine auto stride 1 float64 -> ") and auto.split(" -> ")[1] in parity.ENGINES
    assert parity.check_loss("mse", xc.CPU, "float32").name == "loss mse float32"
    assert parity.check_loss_gradient("mse").name == "gradient loss mse float64 (finite differences)"
    assert parity.check_optimizer("adam", xc.CPU, "float32").name == "optimizer adam float32"
    names = [name for name, _ in parity.parity_checks(xc.CPU)]
    assert len(names) == len(set(names)) and "engine signal stride 2 float32" in names
    assert "gradient loss binary_cross_entropy" in names and "gradient dropout" not in names  # inference only


def test_a_passing_check_still_names_the_array_it_compared_last():
    # every error is 0: the name is the last compared (in set order), never the empty one a check starts with
    assert parity.check_layer("relu", xc.CPU, "float64").worst_array in {"Y", "∂E/∂X"}


class SpoiledEngine:
    """The gemm engine, with one product passed through ``spoil`` (by default: off by 1% in float32, the
    device's dtype here)."""

    def __init__(self, product, spoil=off_in_float32):
        from xpcnn.engines import ENGINES

        self.inner, self.product, self.spoil, self.name = ENGINES["gemm"], product, spoil, "gemm"

    def _maybe(self, product, array):
        return self.spoil(array) if product == self.product else array

    def forward(self, x, kernels, stride=1, keep=False):
        y, kept = self.inner.forward(x, kernels, stride, keep)
        return self._maybe("Y", y), kept

    def backward(self, x, kernels, dy, stride=1, kept=None, input_gradient=True):
        dk, dx = self.inner.backward(x, kernels, dy, stride, kept, input_gradient)
        return self._maybe("∂E/∂K", dk), self._maybe("∂E/∂X", dx)


def spoiled_mse(wrong, spoil):
    """``(loss, prime)`` of MSE with ``wrong`` (``"E"`` or ``"∂E/∂Y"``) passed through ``spoil``."""
    from xpcnn.losses import mse, mse_prime

    def spoiled(fn):
        return lambda t, p: spoil(fn(t, p))

    return spoiled(mse) if wrong == "E" else mse, spoiled(mse_prime) if wrong == "∂E/∂Y" else mse_prime


@pytest.mark.parametrize("product", ["Y", "∂E/∂K", "∂E/∂X"])
def test_an_engine_wrong_on_the_device_alone_fails_naming_the_product(monkeypatch, product):
    monkeypatch.setitem(parity.ENGINES, "gemm", SpoiledEngine(product))
    check = parity.check_engine("gemm", xc.CPU, "float32", 1)
    assert not check.ok and check.worst_array == product and check.worst > check.tolerance


@pytest.mark.parametrize("wrong", ["E", "∂E/∂Y"])
def test_a_loss_wrong_on_the_device_alone_fails_naming_it(monkeypatch, wrong):
    monkeypatch.setitem(parity.LOSSES, "mse", spoiled_mse(wrong, off_in_float32))
    check = parity.check_loss("mse", xc.CPU, "float32")
    assert not check.ok and check.worst_array == wrong


def test_an_optimizer_wrong_on_the_device_alone_fails_naming_the_parameter_and_the_slot(monkeypatch):
    class OffAdam(xc.Adam):
        def step(self, layers):
            super().step(layers)
            for layer in layers:
                layer.params["bias"] = off_in_float32(layer.params["bias"], 1.001)

    monkeypatch.setitem(parity.OPTIMIZER_CASES, "adam", lambda: OffAdam(1e-2))
    check = parity.check_optimizer("adam", xc.CPU, "float32")
    assert not check.ok and check.worst_array == "bias after 4 steps"

    class ExtraSlot(xc.Adam):
        def step(self, layers):
            super().step(layers)
            if layers[0].params["bias"].dtype == np.float32:
                self.slots["0.bias.extra"] = self.slots["0.bias.m"]

    monkeypatch.setitem(parity.OPTIMIZER_CASES, "adam", lambda: ExtraSlot(1e-2))
    check = parity.check_optimizer("adam", xc.CPU, "float32")
    assert check.ok is False and check.problems == [
        "slots ['0.bias.extra', '0.bias.m', '0.bias.v', '0.weights.m', '0.weights.v'], expected ['0.bias.m', "
        "'0.bias.v', '0.weights.m', '0.weights.v']"]


@pytest.mark.parametrize("where", ["off", "elsewhere"])
@pytest.mark.parametrize("what", ["bias", "slot 0.bias.m"])
def test_an_optimizer_whose_parameter_or_slot_is_wrong_or_elsewhere_on_the_device_fails_naming_it(monkeypatch,
                                                                                                  where, what):
    def spoil(array):
        if where == "off":
            return off_in_float32(array, 1.001)
        return on_another_device(array) if array.dtype == np.float32 else array

    class Spoiled(xc.Adam):
        def step(self, layers):
            super().step(layers)
            if self.iterations < 4:  # spoiled after the last of the check's 4 steps
                return
            if what == "bias":
                layers[0].params["bias"] = spoil(layers[0].params["bias"])
            else:
                self.slots["0.bias.m"] = spoil(self.slots["0.bias.m"])

    monkeypatch.setitem(parity.OPTIMIZER_CASES, "adam", lambda: Spoiled(1e-2))
    check = parity.check_optimizer("adam", xc.CPU, "float32")
    name = "bias after 4 steps" if what == "bias" else what
    assert check.ok is False
    if where == "off":
        assert check.worst_array == name
    else:
        assert any(p.startswith(f"{name}: on ") and p.endswith("expected cpu") for p in check.problems)


def test_a_loss_gradient_off_its_loss_fails_with_the_gradient_checks_own_problem(monkeypatch):
    from xpcnn.losses import mse, mse_prime

    monkeypatch.setitem(parity.LOSSES, "mse", (mse, lambda t, p: 1.1 * mse_prime(t, p)))
    check = parity.check_loss_gradient("mse")
    assert check.ok is False and check.worst > 0.05
    assert check.problems == [f"a gradient disagrees with central differences: relative error {check.worst:.3g}"]


def test_the_host_reference_holds_the_devices_parameters_and_buffers_rounded_to_its_dtype_exactly():
    for name in ("dense", "batchnorm2d"):
        layer, ref = parity.paired_layers(parity.LAYER_CASES[name], xc.CPU, "float32")
        for store in ("params", "buffers"):
            for key, value in getattr(layer, store).items():
                theirs = getattr(ref, store)[key]
                assert theirs.dtype == np.float64 and np.array_equal(theirs, np.asarray(value, np.float64)), key
        assert ref.params and layer.params["gamma" if name == "batchnorm2d" else "weights"].dtype == np.float32


def test_relative_error_edge_cases():
    assert parity.relative_error(np.zeros(0), np.zeros(0), 1e-4, 1e-5) == 0.0
    assert parity.relative_error(np.array([1.0, np.inf]), np.array([1.0, 2.0]), 1e-4, 1e-5) == float("inf")
    assert parity.relative_error(np.array([1.0, np.inf]), np.array([1.5, np.inf]), 0.1, 0.1) == 0.5 / 2.5
    assert parity.relative_error(np.array([3], np.int8), np.array([1], np.int8), 1.0, 1.0) == 2 / 2
    assert parity.relative_error(np.array([-128], np.int8), np.array([127], np.int8), 1.0, 1.0) == 255 / 128


def test_compare_fails_a_shape_mismatch_and_passes_an_error_of_exactly_rtol():
    check = parity.compare(np.zeros(2), np.zeros(3), "Y")
    assert (check.ok, check.worst, check.name, check.problems) == (False, float("inf"), "Y",
                                                                    ["Y: shape (2,), expected (3,)"])
    assert parity.compare(np.array([1.5]), np.array([1.0]), "v", tolerance=(0.5, 0.0)).ok  # |1.5 - 1| / 1 = rtol
    assert not parity.compare(np.array([1.5]), np.array([1.0]), "v", tolerance=(0.49, 0.0)).ok
    assert parity.compare(np.zeros(0), np.zeros(0), "empty").ok
    assert parity.compare(np.ones(2), np.ones(2), "v").tolerance == 1e-10  # no dtype: float64's tolerance


def test_atol_is_scaled_by_the_largest_expected_value_but_never_below_1():
    # expected 0, error 1.5e-5 against float32's atol 1e-5: fails unscaled, as |expected| < 1 leaves atol alone
    check = parity.compare(np.array([1.5e-5, 0.5]), np.array([0.0, 0.5]), "v", tolerance=(1e-4, 1e-5))
    assert not check.ok and check.problems == [] and check.worst == pytest.approx(1.5e-4)
    # the same error beside an expected value of 4: atol becomes 4e-5, and it passes
    check = parity.compare(np.array([1.5e-5, 4.0]), np.array([0.0, 4.0]), "v", tolerance=(1e-4, 1e-5))
    assert check.ok and check.worst == pytest.approx(1.5e-5 / 0.4)


def test_relative_error_of_infinities_where_both_are_infinite_is_zero():
    assert parity.relative_error(np.array([np.inf, -np.inf]), np.array([np.inf, -np.inf]), 1e-4, 1e-5) == 0.0


def test_the_host_reference_rounds_to_the_devices_dtype_then_holds_float64():
    rounded = parity._host(np.array([0.1]), "float32")
    assert rounded.dtype == np.float64 and rounded[0] == float(np.float32(0.1)) != 0.1


def test_a_check_that_crashes_fails_with_the_first_line_of_its_error_and_its_own_time(monkeypatch):
    import time

    def crash(message):
        def make(dtype):
            raise ValueError(message)
        return parity.LayerCase(make, (3, 7))

    monkeypatch.setitem(parity.LAYER_CASES, "relu", crash("bad layer\nsecond line"))
    start = time.perf_counter()
    check = parity.check_layer("relu", xc.CPU, "float32")
    wall = time.perf_counter() - start
    assert (check.ok, check.worst, check.problems) == (False, float("inf"), ["ValueError: bad layer"])
    assert 0 <= check.seconds <= wall
    monkeypatch.setitem(parity.LAYER_CASES, "relu", crash(""))
    assert parity.check_layer("relu", xc.CPU, "float32").problems == ["ValueError: "]


class DenseWrongBackward(xc.Dense):
    def backward(self, output_gradient, learning_rate=None):
        return super().backward(output_gradient, learning_rate) * 1.1


def test_the_gradient_check_fails_a_backward_off_its_forward_with_one_problem_and_passes_the_rest(monkeypatch):
    good = parity.check_layer_gradients("dense")
    assert good.ok and good.problems == [] and good.worst_array == "gradients" and good.tolerance == 1e-6
    monkeypatch.setitem(parity.LAYER_CASES, "dense",
                        parity.LayerCase(lambda dtype: DenseWrongBackward(12, 5, dtype=dtype, seed=0), (12,)))
    bad = parity.check_layer_gradients("dense")
    assert bad.ok is False and bad.worst_array == "gradients" and bad.worst > 0.05
    assert bad.problems == [f"a gradient disagrees with central differences: relative error {bad.worst:.3g}"]
    check = parity.Check("c")
    parity._finite_differences(check, parity.GRADIENT_TOLERANCE)  # exactly the tolerance passes
    assert check.ok and check.problems == []
    assert parity.check_layer_gradients("dropout").problems == ["inference-only case: no gradients to check"]


@pytest.mark.parametrize("product", ["Y", "∂E/∂K", "∂E/∂X"])
def test_an_engine_answering_on_another_device_fails_naming_the_product(monkeypatch, product):
    monkeypatch.setitem(parity.ENGINES, "gemm", SpoiledEngine(product, on_another_device))
    check = parity.check_engine("gemm", xc.CPU, "float32", 1)
    assert check.ok is False
    assert any(p.startswith(f"{product}: on ") and p.endswith("expected cpu") for p in check.problems)


@pytest.mark.parametrize("wrong", ["E", "∂E/∂Y"])
def test_a_loss_answering_on_another_device_fails_naming_it(monkeypatch, wrong):
    monkeypatch.setitem(parity.LOSSES, "mse", spoiled_mse(wrong, on_another_device))
    check = parity.check_loss("mse", xc.CPU, "float32")
    assert check.ok is False and any(p.startswith(f"{wrong}: on ") for p in check.problems)


def test_the_host_reference_copies_the_devices_buffers_too():
    def make(dtype):
        layer = xc.BatchNorm1D(7, dtype=dtype)
        drawn = np.random.default_rng(0).uniform(0.5, 1.5, 7).astype(dtype)
        layer.buffers["running_var"] = drawn
        return layer

    layer, ref = parity.paired_layers(parity.LayerCase(make, (7,)), xc.CPU, "float32")
    assert np.array_equal(ref.buffers["running_var"], layer.buffers["running_var"].astype(np.float64))


def test_every_planned_check_runs_its_own_case_on_the_device_and_in_the_dtype_it_is_named_for(monkeypatch):
    calls = []
    for function in ("check_layer", "check_engine", "check_loss", "check_optimizer", "check_layer_gradients",
                     "check_loss_gradient"):
        monkeypatch.setattr(parity, function, lambda *args, f=function: calls.append((f, *args)) or len(calls))
    device = object()  # stands for the device the doctor checks
    plan = parity.parity_checks(device, dtypes=("float32",))
    assert [run() for _, run in plan] == list(range(1, len(plan) + 1))  # each run hands back its check
    kind = {"layer": "check_layer", "engine": "check_engine", "loss": "check_loss", "optimizer": "check_optimizer"}
    for (name, _), call in zip(plan, calls):
        words = name.split()
        if words[0] == "gradient":
            expected = ("check_loss_gradient", words[2]) if words[1] == "loss" else ("check_layer_gradients",
                                                                                      words[1])
        elif words[0] == "engine":
            expected = ("check_engine", words[1], device, "float32", int(words[3]))
        else:
            expected = (kind[words[0]], words[1], device, "float32")
        assert call == expected, name
