"""Reshape and Flatten: shapes without the batch axis, gradients reshaped back."""

import numpy as np
import pytest

import xpcnn as xc


def test_reshape_round_trip_keeps_the_batch_axis():
    layer = xc.Reshape((5, 26, 26), (5 * 26 * 26,))
    x = np.arange(2 * 5 * 26 * 26, dtype=np.float32).reshape(2, 5, 26, 26)
    y = layer.forward(x)
    assert y.shape == (2, 3380)
    np.testing.assert_array_equal(y[1], x[1].ravel())
    np.testing.assert_array_equal(layer.backward(y), x)


def test_flatten_accepts_any_per_sample_shape():
    layer = xc.Flatten()
    x = np.ones((3, 2, 4, 5))
    assert layer.forward(x).shape == (3, 40)
    assert layer.backward(np.ones((3, 40))).shape == (3, 2, 4, 5)


def test_reshape_with_a_different_size_is_rejected():
    with pytest.raises(xc.ShapeError, match=r"cannot reshape \(5, 26, 26\).*to \(3381,\)"):
        xc.Reshape((5, 26, 26), (3381,))


def test_reshape_names_expected_and_received_shape():
    with pytest.raises(xc.ShapeError, match=r"\(N, 5, 26, 26\).*\(2, 5, 26, 25\)"):
        xc.Reshape((5, 26, 26), (3380,)).forward(np.zeros((2, 5, 26, 25)))
