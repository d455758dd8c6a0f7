"""Activations: values, stability at large |x|, finite differences, dtypes."""

import warnings

import numpy as np
import pytest

import xpcnn as xc
from reference import check_layer_gradients

ACTIVATIONS = [xc.Sigmoid, xc.Tanh, xc.ReLU, xc.Softmax]


@pytest.mark.parametrize("cls", ACTIVATIONS)
def test_gradients_match_finite_differences(cls):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6))
    x[np.abs(x) < 1e-3] = 0.5  # keep ReLU away from its kink
    check_layer_gradients(cls(), x, rng)


def test_sigmoid_matches_formula_and_is_stable_for_large_inputs():
    x = np.array([[-1000.0, -30.0, 0.0, 30.0, 1000.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning
        s = xc.Sigmoid().forward(x)
    np.testing.assert_allclose(s[0, 1:4], 1 / (1 + np.exp(-x[0, 1:4])))
    assert s[0, 0] == 0.0 and s[0, -1] == 1.0 and np.all(np.isfinite(s))


def test_softmax_rows_sum_to_one_and_survive_huge_logits():
    x = np.array([[1000.0, 1000.0], [-1000.0, 0.0]], dtype=np.float32)
    s = xc.Softmax().forward(x)
    assert s.dtype == np.float32
    np.testing.assert_allclose(s.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(s[0], [0.5, 0.5])


@pytest.mark.parametrize("cls", ACTIVATIONS)
def test_float32_in_float32_out_forward_and_backward(cls):
    x = np.linspace(-3, 3, 24, dtype=np.float32).reshape(2, 3, 4)
    layer = cls()
    y = layer.forward(x)
    assert y.dtype == np.float32
    assert layer.backward(np.ones_like(y)).dtype == np.float32
