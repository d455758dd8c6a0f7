"""BatchNorm2D/1D at the edges (mutation tests): PyTorch's defaults, the smallest batch that trains,
argument bounds, shape errors named in full, the config that rebuilds each layer."""

import numpy as np
import pytest

import xpcnn as xc
from xpcnn.errors import ConfigError, ShapeError


def test_defaults_are_pytorchs_and_float32():
    for layer in (xc.BatchNorm2D(3), xc.BatchNorm1D(3)):
        assert (layer.momentum, layer.eps, layer.num_channels) == (0.1, 1e-5, 3)
        assert all(p.dtype == np.float32 for p in (*layer.params.values(), *layer.buffers.values()))
        np.testing.assert_array_equal(layer.params["gamma"], np.ones(3))
        np.testing.assert_array_equal(layer.params["beta"], np.zeros(3))
        np.testing.assert_array_equal(layer.buffers["running_mean"], np.zeros(3))
        np.testing.assert_array_equal(layer.buffers["running_var"], np.ones(3))


def test_config_rebuilds_each_layer():
    bn2 = xc.BatchNorm2D(4, momentum=0.25, eps=1e-3)
    assert bn2.config() == {"num_channels": 4, "momentum": 0.25, "eps": 1e-3}
    assert xc.BatchNorm2D(**bn2.config()).config() == bn2.config()
    bn1 = xc.BatchNorm1D(5, momentum=0.5, eps=0.01)
    assert bn1.config() == {"num_features": 5, "momentum": 0.5, "eps": 0.01}
    assert xc.BatchNorm1D(**bn1.config()).config() == bn1.config()


@pytest.mark.parametrize("layer, shape", [(xc.BatchNorm1D, (2, 3)), (xc.BatchNorm2D, (1, 3, 1, 2))])
def test_two_values_per_channel_train_with_the_unbiased_running_variance(layer, shape):
    """M = 2: σ² = (a - b)² / 4, the running variance takes σ² · 2 / 1."""
    x = np.random.default_rng(0).standard_normal(shape)
    bn = layer(3, momentum=0.5, eps=1e-3, dtype="float64")
    y = bn.forward(x)
    pairs = x.reshape(shape[0], 3, -1).transpose(1, 0, 2).reshape(3, 2)  # the two values of each channel
    mean, var = pairs.mean(axis=1), ((pairs[:, 0] - pairs[:, 1]) / 2) ** 2
    expected = (pairs - mean[:, None]) / np.sqrt(var[:, None] + 1e-3)
    np.testing.assert_allclose(y.reshape(shape[0], 3, -1).transpose(1, 0, 2).reshape(3, 2), expected, rtol=1e-12)
    np.testing.assert_allclose(bn.buffers["running_mean"], 0.5 * mean, rtol=1e-12)
    np.testing.assert_allclose(bn.buffers["running_var"], 0.5 + 0.5 * 2 * var, rtol=1e-12)


def test_the_bounds_of_momentum_and_eps():
    for momentum in (0.0, 1.0):
        assert xc.BatchNorm2D(2, momentum=momentum).momentum == momentum
    assert xc.BatchNorm1D(2, eps=1e-12).eps == 1e-12
    with pytest.raises(ConfigError, match=r"^BatchNorm2D: momentum must be in \[0, 1\], got -0.1$"):
        xc.BatchNorm2D(2, momentum=-0.1)
    with pytest.raises(ConfigError, match=r"^BatchNorm1D: momentum must be in \[0, 1\], got 1.5$"):
        xc.BatchNorm1D(2, momentum=1.5)
    with pytest.raises(ConfigError, match=r"^BatchNorm2D: eps must be > 0 and finite, got 0$"):
        xc.BatchNorm2D(2, eps=0)
    with pytest.raises(ConfigError, match=r"^BatchNorm2D: num_channels must be an integer >= 1, got 0$"):
        xc.BatchNorm2D(0)


def test_shape_errors_name_the_layer_the_layout_and_what_came():
    bn2, bn1 = xc.BatchNorm2D(3), xc.BatchNorm1D(3)
    with pytest.raises(ShapeError, match=r"^BatchNorm2D\(.*\): expects samples of shape \(N, C, H, W\) with C = 3, "
                                         r"got \(4, 2, 2\)$"):
        bn2.output_shape((4, 2, 2))  # the right rank, the wrong C
    with pytest.raises(ShapeError, match=r"with C = 3, got \(3, 2\)$"):
        bn2.output_shape((3, 2))  # the right C, the wrong rank
    with pytest.raises(ShapeError, match=r"^BatchNorm1D\(.*\): expects samples of shape \(N, F\) with C = 3, "
                                         r"got \(3, 1\)$"):
        bn1.output_shape((3, 1))
    assert bn2.output_shape((3, 5, 4)) == (3, 5, 4) and bn1.output_shape((3,)) == (3,)
    with pytest.raises(ShapeError, match=r"^BatchNorm2D\(.*\): expected input of shape \(N, C, H, W\), "
                                         r"got \(2, 3\)$"):
        bn2.forward(np.ones((2, 3), np.float32))
    with pytest.raises(ShapeError, match=r"^BatchNorm1D\(.*\): training needs more than one value per channel, "
                                         r"got input of shape \(1, 3\)$"):
        bn1.forward(np.ones((1, 3), np.float32))


@pytest.mark.parametrize("layer", [xc.BatchNorm2D, xc.BatchNorm1D])
def test_parameters_and_buffers_are_made_on_the_device_asked_for(layer, device1):
    bn = layer(3, device=device1)
    assert all(xc.backend.Device.of(a) == device1 for a in (*bn.params.values(), *bn.buffers.values()))


@pytest.mark.parametrize("seed", [-1, "one", 1.5])
def test_a_bad_seed_is_refused_though_nothing_is_drawn(seed):
    """Every layer refuses a seed the others would refuse, even BatchNorm, whose start is constant."""
    with pytest.raises(ConfigError, match="seed"):
        xc.BatchNorm2D(2, seed=seed)


def test_backward_with_a_learning_rate_takes_the_derivations_step_on_gamma_and_beta():
    rng = np.random.default_rng(7)
    bn = xc.BatchNorm2D(3, dtype="float64")
    x, dy = rng.standard_normal((4, 3, 2, 2)), rng.standard_normal((4, 3, 2, 2))
    bn.forward(x)
    x_hat = (x - x.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(x.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
    bn.backward(dy, learning_rate=0.5)
    np.testing.assert_allclose(bn.params["gamma"], 1 - 0.5 * (dy * x_hat).sum(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(bn.params["beta"], -0.5 * dy.sum(axis=(0, 2, 3)), rtol=1e-12)
