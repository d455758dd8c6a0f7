"""Dropout (xpcnn/layers/dropout.py): the identity in inference; in training a kept fraction within
3 standard errors of 1 - rate, survivors scaled by exactly 1/(1 - rate), the same mask in
backward; masks from the model's seeded generator, drawn on the data's device.

At the edges: the default rate, the bounds of ``rate``, a rate of 0 drawing nothing, the mask as
the equation's ``[U ≥ r] / (1 - r)`` on the same uniform draws."""

import math

import numpy as np
import pytest

import xpcnn as xc
from xpcnn import backend
from xpcnn.errors import ConfigError

xs = pytest.importorskip("array_api_strict")

DEVICES = {
    "numpy": backend.CPU,
    "strict-device1": backend.Device.of(xs.zeros(1, device=xs.Device("device1"))),
}


@pytest.mark.parametrize("where", list(DEVICES))
def test_inference_is_the_identity_and_keeps_nothing(where):
    dev = DEVICES[where]
    x = xc.to_device(np.random.default_rng(0).standard_normal((4, 3, 5)).astype(np.float32), dev)
    layer = xc.Dropout(0.5, seed=0)
    y = layer.forward(x, training=False)
    np.testing.assert_array_equal(xc.to_numpy(y), xc.to_numpy(x))
    assert layer._saved is None


@pytest.mark.parametrize("where", list(DEVICES))
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kept_fraction_is_within_three_standard_errors_and_survivors_are_scaled_exactly(where, rate, dtype):
    dev = DEVICES[where]
    n = 200_000
    x_host = np.random.default_rng(1).uniform(0.5, 2.0, (n // 100, 100)).astype(dtype)  # no zeros in X
    layer = xc.Dropout(rate, seed=2)
    y_dev = layer.forward(xc.to_device(x_host, dev))
    assert xc.Device.of(y_dev) == dev and str(y_dev.dtype).endswith(dtype)  # drawn and kept on the device
    y = xc.to_numpy(y_dev)
    kept = y != 0
    p = 1 - rate
    assert abs(kept.mean() - p) <= 3 * math.sqrt(p * (1 - p) / n)
    scale = np.asarray(1.0 / (1.0 - rate), dtype=dtype)
    np.testing.assert_array_equal(y[kept], x_host[kept] * scale)
    dy = np.random.default_rng(3).standard_normal(y.shape).astype(dtype)
    dx = xc.to_numpy(layer.backward(xc.to_device(dy, dev)))
    np.testing.assert_array_equal(dx[~kept], 0)
    np.testing.assert_array_equal(dx[kept], dy[kept] * scale)


def test_the_same_seed_gives_the_same_masks_and_each_step_draws_a_new_one():
    x = np.ones((8, 50), np.float32)
    a, b = xc.Dropout(0.5, seed=7), xc.Dropout(0.5, seed=7)
    first, second = a.forward(x), a.forward(x)
    np.testing.assert_array_equal(first, b.forward(x))
    np.testing.assert_array_equal(second, b.forward(x))
    assert not np.array_equal(first, second)


def test_rate_zero_is_the_identity_in_training_too_and_bad_rates_are_config_errors():
    x = np.random.default_rng(4).standard_normal((3, 4)).astype(np.float32)
    layer = xc.Dropout(0.0)
    np.testing.assert_array_equal(layer.forward(x), x)
    np.testing.assert_array_equal(layer.backward(x), x)
    for rate in (1.0, -0.1, "half"):
        with pytest.raises(ConfigError, match="rate"):
            xc.Dropout(rate)


def model(seed=0, device=None):
    return xc.Sequential([xc.Dense(6, 16), xc.ReLU(), xc.Dropout(0.5), xc.Dense(16, 2), xc.Softmax()],
                         seed=seed, device=device)


def test_in_a_model_the_masks_come_from_the_models_seeded_generator():
    x = np.random.default_rng(5).standard_normal((10, 6)).astype(np.float32)
    a, b, c = model(seed=0), model(seed=0), model(seed=0)
    c.rng = backend.new_rng(99)
    ya, yb, yc = a.forward(x), b.forward(x), c.forward(x)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(ya, yc)  # same weights, another generator: other masks
    assert a.layers[2].rng is a.rng


def test_the_mask_draws_happen_on_the_device_with_no_implicit_host_conversion(device1):
    x = xc.to_device(np.ones((4, 6), np.float32), device1)
    m = model(device=device1)
    y = m.forward(x)  # device1 refuses implicit conversion to NumPy: this proves the draw stays explicit
    assert xc.Device.of(y) == device1
    np.testing.assert_allclose(xc.to_numpy(y), xc.to_numpy(model().forward(np.ones((4, 6), np.float32))),
                               rtol=1e-6)  # the host key decides the mask: device1 draws NumPy's numbers


class FakeRandomState:
    """Stands in for ``cupy.random.RandomState``: records the method, the seeds and the draws."""

    log: list = []

    def __init__(self, method):
        self.log.append(("new", method))

    def seed(self, key):
        self.log.append(("seed", key))
        self.rng = np.random.default_rng(key)

    def random_sample(self, shape, dtype):
        self.log.append(("draw", shape, dtype))
        return self.rng.random(shape, dtype=np.dtype(dtype))


def test_the_cupy_path_seeds_one_philox_generator_per_gpu_with_the_hosts_key():
    import contextlib
    import types

    fake = types.SimpleNamespace(random=types.SimpleNamespace(RandomState=FakeRandomState))
    cupy_backend = backend.CupyBackend(cupy=fake, signal=object())
    gpu = backend.Device(None, contextlib.nullcontext(), "cuda:0", cupy_backend)
    FakeRandomState.log.clear()
    rng = backend.new_rng(3)
    key = backend.random_key(backend.new_rng(3))
    u = backend.uniform_from_key(backend.random_key(rng), (2, 3), "float32", gpu)
    backend.uniform_from_key(backend.random_key(rng), (4,), "float32", gpu)
    assert FakeRandomState.log[:3] == [("new", 161), ("seed", key), ("draw", (2, 3), "float32")]
    assert [e[0] for e in FakeRandomState.log[3:]] == ["seed", "draw"]  # one generator, seeded again
    assert u.shape == (2, 3)


@pytest.mark.parametrize("where", list(DEVICES))
def test_a_ranks_rows_of_the_batch_get_the_rows_of_the_whole_batchs_mask(where):
    # data-parallel training sets batch_rows, so P ranks drop what one process drops
    dev = DEVICES[where]
    x = xc.to_device(np.ones((10, 3, 4), dtype=np.float64), dev)
    whole = xc.to_numpy(xc.Dropout(0.5, seed=3).forward(x))
    parts = []
    for start, stop in [(0, 3), (3, 6), (6, 10)]:
        layer = xc.Dropout(0.5, seed=3)
        layer.batch_rows = (start, 10)
        parts.append(xc.to_numpy(layer.forward(x[start:stop, ...])))
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert 0 < np.count_nonzero(whole) < whole.size


@pytest.mark.parametrize("dtype", [np.int64, np.float16, np.bool_])
def test_a_non_float_input_is_a_dtype_error_naming_the_layer_not_a_backend_type_error(dtype):
    layer = xc.Dropout(0.5, seed=0)
    for training in (True, False):
        with pytest.raises(xc.XpcnnDtypeError, match=r"^Dropout\(rate=0\.5\): expected float32 or float64 input, "
                                                     rf"got {np.dtype(dtype).name}; cast it \(x\.astype\)$"):
            layer.forward(np.ones((2, 3), dtype), training=training)


@pytest.mark.parametrize("rate", [0.0, 0.5])
def test_backward_refuses_a_gradient_of_another_shape_at_every_rate(rate):
    layer = xc.Dropout(rate, seed=0)
    layer.forward(np.ones((4, 3), np.float32))
    with pytest.raises(xc.ShapeError, match=r"\(4, 3\)"):
        layer.backward(np.ones((4, 2), np.float32))



# -- at the edges ----------------------------------------------------------------------------------

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
    assert layer.forward(x) is x and layer.saved_for_backward() == {"mask": None, "shape": (2, 3)}
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
