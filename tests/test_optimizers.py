"""Optimizers: each update against its formula written out in NumPy, dtype kept, state round trip."""

import numpy as np
import pytest

import xpcnn as xc


def _layer_with_grads(rng, dtype="float64"):
    layer = xc.Dense(3, 2, dtype=dtype, seed=0)
    layer.grads = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in layer.params.items()}
    return layer


def test_sgd_is_the_derivations_step():
    rng = np.random.default_rng(0)
    layer = _layer_with_grads(rng)
    before = {k: v.copy() for k, v in layer.params.items()}
    xc.SGD(0.1).step([layer])
    for k in before:
        np.testing.assert_allclose(layer.params[k], before[k] - 0.1 * layer.grads[k])


def test_momentum_follows_pytorch_convention_over_three_steps():
    rng = np.random.default_rng(1)
    layer = _layer_with_grads(rng)
    opt = xc.SGD(0.1, momentum=0.9)
    p, v = layer.params["weights"].copy(), np.zeros((2, 3))
    for _ in range(3):
        g = layer.grads["weights"]
        v = 0.9 * v + g
        p = p - 0.1 * v
        opt.step([layer])
    np.testing.assert_allclose(layer.params["weights"], p)


def test_adam_matches_its_formula_over_three_steps():
    rng = np.random.default_rng(2)
    layer = _layer_with_grads(rng)
    opt = xc.Adam(0.01)
    p, m, v = layer.params["bias"].copy(), np.zeros(2), np.zeros(2)
    for t in range(1, 4):
        g = rng.standard_normal(2)
        layer.grads["bias"] = g
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        p = p - 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        opt.step([layer])
    np.testing.assert_allclose(layer.params["bias"], p, rtol=1e-12)


@pytest.mark.parametrize("opt", [xc.SGD(0.1), xc.SGD(0.1, momentum=0.9), xc.Adam(1e-3)])
def test_float32_parameters_stay_float32(opt):
    layer = _layer_with_grads(np.random.default_rng(3), "float32")
    for _ in range(2):
        opt.step([layer])
    assert all(p.dtype == np.float32 for p in layer.params.values())
    assert all(s.dtype == np.float32 for s in opt.slots.values())


def test_state_dict_round_trip_continues_identically():
    rng = np.random.default_rng(4)
    a, b = _layer_with_grads(rng), None
    opt_a = xc.Adam(0.01)
    opt_a.step([a])
    b = xc.Dense(3, 2, dtype="float64")
    b.params = {k: v.copy() for k, v in a.params.items()}
    b.grads = dict(a.grads)
    opt_b = xc.Adam(0.01)
    opt_b.load_state_dict(opt_a.state_dict())
    opt_a.step([a])
    opt_b.step([b])
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])


def test_bad_hyperparameters_are_rejected():
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        xc.SGD(0.0)
    with pytest.raises(ValueError, match="momentum must be in"):
        xc.SGD(0.1, momentum=1.5)
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        xc.get_optimizer("rmsprop", 0.1)
