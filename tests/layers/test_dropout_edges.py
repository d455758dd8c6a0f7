"""Dropout at the edges (mutation tests): its default rate, the bounds of ``rate``, a rate of 0
drawing nothing, the mask as the equation's ``[U ≥ r] / (1 - r)`` on the same uniform draws."""

import numpy as np
import pytest

import xpcnn as xc
from xpcnn import backend
from xpcnn.errors import ConfigError


def test_default_rate_is_one_half_and_the_config_rebuilds_it():
    layer = xc.Dropout()
    assert layer.rate == 0.5 and layer.config() == {"rate": 0.5}
    assert xc.Dropout(**xc.Dropout(0.3).config()).rate == 0.3


def test_the_bounds_of_rate_are_zero_included_and_one_excluded():
    assert xc.Dropout(0.0).rate == 0.0
    assert xc.Dropout(0.999).rate == 0.999
    with pytest.raises(ConfigError, match=r"^Dropout: rate must be in \[0, 1\), got 1.0$"):
        xc.Dropout(1.0)
    with pytest.raises(ConfigError, match=r"^Dropout: rate must be in \[0, 1\), got -0.1$"):
        xc.Dropout(-0.1)


def test_a_rate_of_zero_draws_no_key_and_keeps_no_mask():
    """Nothing to draw: the generator is untouched, so the masks of later layers do not shift."""
    layer = xc.Dropout(0.0, seed=3)
    before = backend.random_key(xc.Dropout(0.0, seed=3).rng)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert layer.forward(x) is x and layer._recall() == {"mask": None, "shape": (2, 3)}
    assert backend.random_key(layer.rng) == before
    np.testing.assert_array_equal(layer.backward(x + 1), x + 1)


@pytest.mark.parametrize("rate, dtype", [(0.25, "float32"), (0.6, "float64")])
def test_the_mask_is_u_at_least_rate_over_one_minus_rate_from_one_key(rate, dtype):
    shape = (4, 3, 5, 5)
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    layer = xc.Dropout(rate, seed=11)
    u = backend.uniform_from_key(backend.random_key(xc.Dropout(rate, seed=11).rng), shape, dtype, backend.CPU)
    mask = (u >= rate).astype(dtype) / dtype_of(dtype)(1 - rate)
    y = layer.forward(x)
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_allclose(y, x * mask, rtol=1e-6 if dtype == "float32" else 1e-15)
    dy = np.random.default_rng(2).standard_normal(shape).astype(dtype)
    np.testing.assert_allclose(layer.backward(dy), dy * mask, rtol=1e-6 if dtype == "float32" else 1e-15)
    with pytest.raises(xc.ShapeError):
        layer.backward(dy[:, :2])


def dtype_of(name):
    return np.dtype(name).type


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_draw_equal_to_the_rate_keeps_its_value(dtype):
    """``B = [U ≥ r]``: a rate equal to one of the drawn ``U`` keeps that element (``U > r`` would drop it)."""
    shape = (2, 8)
    u = backend.uniform_from_key(backend.random_key(xc.Dropout(0.5, seed=5).rng), shape, dtype, backend.CPU)
    rate = float(u[1, 3])
    x = np.ones(shape, dtype)
    y = xc.Dropout(rate, seed=5).forward(x)
    np.testing.assert_allclose(y, (u >= rate) / (1 - rate), rtol=1e-6)
    assert y[1, 3] > 0
