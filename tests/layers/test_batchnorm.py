"""BatchNorm2D and BatchNorm1D (xpcnn/layers/batchnorm.py): against PyTorch's BatchNorm2d / BatchNorm1d
in training and in inference, running statistics after several steps included; against the
equations written as loops; buffers moved, restored and refused like parameters.

At the edges: PyTorch's defaults, the smallest batch that trains (two values per channel, whatever
the image's shape), the bounds of the arguments, shape errors named in full, the config that
rebuilds each layer."""

import numpy as np
import pytest

import xpcnn as xc
from xpcnn.errors import ConfigError, ShapeError

xs = pytest.importorskip("array_api_strict")

CASES = [("2d", (5, 3, 4, 6)), ("1d", (7, 4))]


def make(kind, channels, **kw):
    return (xc.BatchNorm2D if kind == "2d" else xc.BatchNorm1D)(channels, dtype="float64", **kw)


def torch_twin(torch, layer):
    kind = torch.nn.BatchNorm2d if isinstance(layer, xc.BatchNorm2D) else torch.nn.BatchNorm1d
    bn = kind(layer.num_channels, eps=layer.eps, momentum=layer.momentum).double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(layer.params["gamma"]))
        bn.bias.copy_(torch.tensor(layer.params["beta"]))
    return bn


def with_gamma_beta(layer, rng):
    c = layer.num_channels
    layer.params = {"gamma": rng.uniform(0.5, 2.0, c), "beta": rng.standard_normal(c)}
    return layer


@pytest.mark.parametrize("kind, shape", CASES)
def test_training_forward_gradients_and_running_statistics_match_pytorch_over_several_steps(kind, shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    layer = with_gamma_beta(make(kind, shape[1], momentum=0.2), rng)
    bn = torch_twin(torch, layer)
    bn.train()
    for step in range(4):
        x = rng.standard_normal(shape) * (1 + step) + step  # statistics that move from step to step
        dy = rng.standard_normal(shape)
        y = layer.forward(x)
        dx = layer.backward(dy)
        tx = torch.tensor(x, requires_grad=True)
        ty = bn(tx)
        ty.backward(torch.tensor(dy))
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(layer.grads["gamma"], bn.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(layer.grads["beta"], bn.bias.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(layer.buffers["running_mean"], bn.running_mean.numpy(), rtol=1e-12)
        np.testing.assert_allclose(layer.buffers["running_var"], bn.running_var.numpy(), rtol=1e-12)
        bn.weight.grad = bn.bias.grad = None
    assert np.abs(layer.buffers["running_mean"]).max() > 0.5  # the statistics did move: the check could fail


@pytest.mark.parametrize("kind, shape", CASES)
def test_inference_uses_the_running_statistics_like_pytorch_eval_and_changes_nothing(kind, shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    layer = with_gamma_beta(make(kind, shape[1]), rng)
    bn = torch_twin(torch, layer)
    for _ in range(3):
        x = rng.standard_normal(shape) * 3 + 2
        layer.forward(x)
        bn.train()(torch.tensor(x))
    running = {k: v.copy() for k, v in layer.buffers.items()}
    x = rng.standard_normal(shape)
    y = layer.forward(x, training=False)
    np.testing.assert_allclose(y, bn.eval()(torch.tensor(x)).detach().numpy(), rtol=1e-12, atol=1e-12)
    for k, v in layer.buffers.items():
        np.testing.assert_array_equal(v, running[k])
    assert not np.allclose(y, layer.forward(x), atol=1e-3)  # inference and training really differ here


def test_training_forward_is_the_equation_written_per_channel():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 2, 3, 5))
    layer = with_gamma_beta(xc.BatchNorm2D(2, dtype="float64"), rng)
    y = layer.forward(x)
    for c in range(2):
        values = x[:, c].ravel()
        mu, var = values.mean(), ((values - values.mean()) ** 2).mean()
        expected = layer.params["gamma"][c] * (x[:, c] - mu) / np.sqrt(var + 1e-5) + layer.params["beta"][c]
        np.testing.assert_allclose(y[:, c], expected, rtol=1e-12)
        m = values.size
        np.testing.assert_allclose(layer.buffers["running_var"][c], 0.9 + 0.1 * var * m / (m - 1), rtol=1e-12)
        np.testing.assert_allclose(layer.buffers["running_mean"][c], 0.1 * mu, rtol=1e-12)


def test_buffers_move_with_to_and_are_never_changed_in_place():
    layer = xc.BatchNorm2D(3)
    dev = xc.Device.of(xs.zeros(1, device=xs.Device("device1")))
    layer.to(dev, "float64")
    for v in layer.buffers.values():
        assert xc.Device.of(v) == dev and v.dtype == xs.float64
    old = dict(layer.buffers)
    old_values = {k: xc.to_numpy(v).copy() for k, v in old.items()}
    layer.forward(xc.to_device(np.random.default_rng(3).standard_normal((4, 3, 2, 2)), dev))
    for k in old:
        assert layer.buffers[k] is not old[k]
        np.testing.assert_array_equal(xc.to_numpy(old[k]), old_values[k])  # a snapshot stays valid


def test_one_value_per_channel_cannot_train_and_bad_arguments_are_config_errors():
    with pytest.raises(ShapeError, match="more than one value per channel"):
        xc.BatchNorm1D(3).forward(np.ones((1, 3), np.float32))
    xc.BatchNorm1D(3).forward(np.ones((1, 3), np.float32), training=False)  # inference is fine
    with pytest.raises(ShapeError, match=r"C = 3"):
        xc.BatchNorm2D(3).forward(np.ones((2, 4, 2, 2), np.float32))
    with pytest.raises(ShapeError, match=r"\(N, F\)"):
        xc.BatchNorm1D(3).forward(np.ones((2, 3, 1, 1), np.float32))
    with pytest.raises(ConfigError, match="num_channels"):
        xc.BatchNorm2D(0)
    with pytest.raises(ConfigError, match="momentum"):
        xc.BatchNorm2D(2, momentum=1.5)
    with pytest.raises(ConfigError, match="eps"):
        xc.BatchNorm1D(2, eps=0)


def test_a_model_with_batchnorm_keeps_its_running_statistics_through_fit_and_predict():
    rng = np.random.default_rng(4)
    x = rng.random((20, 1, 6, 6), dtype=np.float32) * 4 + 1
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 20)]
    model = xc.Sequential([xc.Convolutional((1, 6, 6), 3, 2, bias="none"), xc.BatchNorm2D(2), xc.ReLU(),
                           xc.GlobalAveragePool2D(), xc.Dense(2, 2), xc.Softmax()], seed=0)
    model.fit(x, y, loss="categorical_cross_entropy", epochs=2, batch_size=5)
    mean = model.layers[1].buffers["running_mean"].copy()
    assert np.abs(mean).max() > 0
    model.predict(x)
    model.evaluate(x, y)
    np.testing.assert_array_equal(model.layers[1].buffers["running_mean"], mean)


def _bn_model():
    return xc.Sequential([xc.Dense(4, 3), xc.BatchNorm1D(3), xc.ReLU(), xc.Dense(3, 2), xc.Softmax()], seed=0)


def _data(n):
    rng = np.random.default_rng(0)
    return rng.random((n, 4), dtype=np.float32), np.eye(2, dtype=np.float32)[rng.integers(0, 2, n)]


@pytest.mark.parametrize("n, batch_size, left", [(33, 32, 1), (5, 1, 1), (1, 8, 1)])
def test_fit_refuses_a_batch_of_one_for_batchnorm1d_before_the_first_step_not_mid_epoch(n, batch_size, left):
    """PyTorch fails at that batch ("Expected more than 1 value per channel when training"), after the
    steps before it; xpcnn says so before any step, so the model is left as it was."""
    model, (x, y) = _bn_model(), _data(n)
    before = [np.array(layer.params[k]) for layer in model.layers for k in layer.params]
    with pytest.raises(ConfigError, match=rf"^fit: BatchNorm1D\(.*\) \(layer 1\) needs at least 2 samples per batch "
                                          rf"in training, but {n} samples? in batches of {batch_size} give a batch "
                                          rf"of {left}; choose another batch_size$"):
        model.fit(x, y, loss="categorical_cross_entropy", batch_size=batch_size, epochs=2)
    after = [np.array(layer.params[k]) for layer in model.layers for k in layer.params]
    assert model.epoch == 0 and model.history == {} and model.optimizer is None
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    model.fit(*_data(32), loss="categorical_cross_entropy", batch_size=16, epochs=1)  # batches of 16: fine
    assert model.epoch == 1


def test_a_batchnorm2d_on_one_by_one_images_needs_two_samples_and_on_larger_ones_one():
    x = np.random.default_rng(0).random((3, 2, 1, 1), dtype=np.float32)
    y = np.eye(2, dtype=np.float32)[[0, 1, 0]]
    tiny = xc.Sequential([xc.BatchNorm2D(2), xc.Flatten(), xc.Softmax()], seed=0)
    with pytest.raises(ConfigError, match=r"BatchNorm2D\(.*\) \(layer 0\) needs at least 2 samples"):
        tiny.fit(x, y, loss="categorical_cross_entropy", batch_size=2)
    wide = xc.Sequential([xc.BatchNorm2D(2), xc.GlobalAveragePool2D(), xc.Softmax()], seed=0)
    wide.fit(np.repeat(np.repeat(x, 2, axis=2), 2, axis=3), y, loss="categorical_cross_entropy", batch_size=2)
    assert wide.epoch == 1


# -- at the edges ----------------------------------------------------------------------------------

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


@pytest.mark.parametrize("sample, smallest", [
    ((3, 1, 1), 2),   # one value per sample: two samples
    ((3, 2, 1), 1),   # a column of two: one sample already has two values per channel
    ((3, 1, 2), 1),
    ((3, 5, 7), 1),
])
def test_batchnorm2d_needs_two_values_per_channel_from_all_of_h_and_w(sample, smallest):
    assert xc.BatchNorm2D(3).min_training_batch(sample) == smallest


def test_batchnorm1d_needs_two_samples():
    assert xc.BatchNorm1D(4).min_training_batch((4,)) == 2
