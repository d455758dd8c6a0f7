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


class WrongDeviceReLU(xc.ReLU):
    """The right values, handed back in another array library (on another device)."""

    def forward(self, x, training=True):
        return array_api_strict.asarray(np.asarray(super().forward(x, training)))

    def backward(self, output_gradient, learning_rate=None):
        return array_api_strict.asarray(np.asarray(super().backward(np.asarray(output_gradient), learning_rate)))


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
