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
