"""Losses: the derivation's formulas, finite differences, safety at 0 and 1, shape errors."""

import numpy as np
import pytest

import xpcnn as xc
from reference import numerical_gradient

LOSSES = ["mse", "binary_cross_entropy", "categorical_cross_entropy"]


def test_binary_cross_entropy_is_the_derivations_mean():
    y_true = np.array([[0.0, 1.0], [1.0, 0.0]])
    y_pred = np.array([[0.2, 0.7], [0.9, 0.4]])
    expected = np.mean(-y_true * np.log(y_pred) - (1 - y_true) * np.log(1 - y_pred))
    np.testing.assert_allclose(float(xc.binary_cross_entropy(y_true, y_pred)), expected)
    np.testing.assert_allclose(
        xc.binary_cross_entropy_prime(y_true, y_pred), ((1 - y_true) / (1 - y_pred) - y_true / y_pred) / 4
    )


@pytest.mark.parametrize("name", LOSSES)
def test_prime_matches_finite_differences(name):
    loss, prime = xc.get_loss(name)
    rng = np.random.default_rng(0)
    y_true = np.eye(3)[rng.integers(0, 3, 4)]
    y_pred = rng.uniform(0.05, 0.95, (4, 3))
    num = numerical_gradient(lambda: float(loss(y_true, y_pred)), y_pred)
    np.testing.assert_allclose(prime(y_true, y_pred), num, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", LOSSES)
def test_predictions_of_exactly_zero_or_one_stay_finite(name):
    loss, prime = xc.get_loss(name)
    y_true = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    y_pred = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    value, grad = loss(y_true, y_pred), prime(y_true, y_pred)
    assert np.isfinite(float(value)) and np.all(np.isfinite(grad))
    assert value.dtype == np.float32 and grad.dtype == np.float32


def test_mismatched_shapes_name_both():
    with pytest.raises(xc.ShapeError, match=r"binary_cross_entropy: labels of shape \(4, 1\).*\(4, 2\)"):
        xc.binary_cross_entropy(np.zeros((4, 1)), np.zeros((4, 2)))


def test_unknown_loss_name_is_rejected():
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        xc.get_loss("hinge")
