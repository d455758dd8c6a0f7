"""Dense layer: per-sample equations, finite differences, errors."""

import numpy as np
import pytest

import xpcnn as xc


def test_forward_and_backward_match_the_column_vector_equations_per_sample():
    rng = np.random.default_rng(0)
    dense = xc.Dense(4, 3, dtype="float64", seed=0)
    x = rng.standard_normal((5, 4))
    y = dense.forward(x)
    dy = rng.standard_normal((5, 3))
    dx = dense.backward(dy)
    w, b = dense.weights, dense.bias
    for n in range(5):  # the derivation's Y = W X + B with column vectors, one sample at a time
        np.testing.assert_allclose(y[n], w @ x[n] + b)
        np.testing.assert_allclose(dx[n], w.T @ dy[n])
    np.testing.assert_allclose(dense.grads["weights"], sum(np.outer(dy[n], x[n]) for n in range(5)))
    np.testing.assert_allclose(dense.grads["bias"], dy.sum(axis=0))


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(1)
    assert xc.gradcheck(xc.Dense(6, 4, dtype="float64", seed=1), rng.standard_normal((3, 6)), tolerance=1e-6,
                        max_checks=1000) <= 1e-6


def test_initialisation_is_seeded_glorot_uniform_with_zero_bias():
    a, b = xc.Dense(100, 10, seed=7), xc.Dense(100, 10, seed=7)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert a.weights.dtype == np.float32
    bound = np.sqrt(6 / 110)
    assert np.abs(a.weights).max() <= bound and np.abs(a.weights).max() > 0.9 * bound
    np.testing.assert_array_equal(a.bias, 0.0)


def test_wrong_input_shape_names_layer_expected_and_received():
    with pytest.raises(xc.ShapeError, match=r"Dense\(input_size=3380, output_size=100\).*\(N, 3380\).*\(2, 3381\)"):
        xc.Dense(3380, 100).forward(np.zeros((2, 3381), np.float32))


def test_backward_before_forward_is_a_clear_error():
    with pytest.raises(RuntimeError, match="backward needs a forward"):
        xc.Dense(2, 2).backward(np.zeros((1, 2), np.float32))


def test_wrong_output_gradient_shape_is_reported():
    dense = xc.Dense(2, 3, dtype="float64")
    dense.forward(np.zeros((4, 2)))
    with pytest.raises(xc.ShapeError, match=r"expected output gradient of shape \(4, 3\), got \(4, 2\)"):
        dense.backward(np.zeros((4, 2)))


@pytest.mark.parametrize("n, size_in", [(1, 4), (2, 4), (4, 1)])
def test_one_sample_and_one_feature_gradients_are_the_outer_products(n, size_in):
    rng = np.random.default_rng(2)
    dense = xc.Dense(size_in, 3, dtype="float64", seed=2)
    x, dy = rng.standard_normal((n, size_in)), rng.standard_normal((n, 3))
    dense.forward(x)
    dx = dense.backward(dy)
    np.testing.assert_allclose(dense.grads["weights"], sum(np.outer(dy[i], x[i]) for i in range(n)))
    np.testing.assert_allclose(dense.grads["bias"], dy.sum(axis=0))
    np.testing.assert_allclose(dx, [dense.weights.T @ dy[i] for i in range(n)])


def test_backward_with_a_learning_rate_takes_the_derivations_step():
    rng = np.random.default_rng(3)
    dense = xc.Dense(4, 3, dtype="float64", seed=3)
    w, b = dense.weights.copy(), dense.bias.copy()
    x, dy = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    dense.forward(x)
    dx = dense.backward(dy, learning_rate=0.1)
    np.testing.assert_allclose(dx, dy @ w)  # ∂E/∂X with the weights before the step
    np.testing.assert_allclose(dense.weights, w - 0.1 * dy.T @ x)
    np.testing.assert_allclose(dense.bias, b - 0.1 * dy.sum(axis=0))


def test_sizes_are_checked_and_the_config_rebuilds_the_layer():
    for args, match in [((0, 3), "Dense: input_size must be an integer >= 1, got 0"),
                        ((3, 0), "Dense: output_size must be an integer >= 1, got 0")]:
        with pytest.raises(ValueError, match=match):
            xc.Dense(*args)
    one = xc.Dense(1, 1, dtype="float64")
    assert one.config() == {"input_size": 1, "output_size": 1} and one.output_shape((1,)) == (1,)
    again = xc.Dense(**xc.Dense(5, 2).config())
    assert (again.input_size, again.output_size, again.weights.shape, again.bias.shape) == (5, 2, (2, 5), (2,))
