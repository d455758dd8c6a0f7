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


def test_defaults_and_the_repr_that_lists_them():
    assert xc.SGD().config() == {"learning_rate": 0.01, "momentum": 0.0}  # Keras's SGD default rate
    assert xc.Adam().config() == {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    assert repr(xc.Adam()) == "Adam(learning_rate=0.001, beta1=0.9, beta2=0.999, eps=1e-08)"
    assert repr(xc.SGD(0.5, momentum=0.25)) == "SGD(learning_rate=0.5, momentum=0.25)"


def test_adam_and_momentum_defaults_are_pytorchs():
    torch = pytest.importorskip("torch")
    param = [torch.zeros(1, requires_grad=True)]
    sgd, adam = torch.optim.SGD(param).defaults, torch.optim.Adam(param).defaults
    assert xc.SGD(0.1).momentum == sgd["momentum"]
    assert xc.Adam().config() == {"learning_rate": adam["lr"], "beta1": adam["betas"][0], "beta2": adam["betas"][1],
                                  "eps": adam["eps"]}


def test_hyperparameter_bounds_are_the_open_and_closed_ends_of_their_formulas():
    xc.SGD(0.1, momentum=0.0), xc.Adam(0.1, beta1=0.0, beta2=0.0)  # closed at 0: allowed
    for make, match in [(lambda: xc.SGD(0.1, momentum=1.0), r"SGD: momentum must be in \[0, 1\), got 1.0"),
                        (lambda: xc.SGD(0.1, momentum=-0.1), r"SGD: momentum must be in \[0, 1\)"),
                        (lambda: xc.Adam(0.0), r"Adam: learning_rate must be > 0"),
                        (lambda: xc.Adam(0.1, beta1=1.0), r"Adam: beta1 must be in \[0, 1\), got 1.0"),
                        (lambda: xc.Adam(0.1, beta1=-0.1), r"Adam: beta1 must be in \[0, 1\)"),
                        (lambda: xc.Adam(0.1, beta2=1.0), r"Adam: beta2 must be in \[0, 1\), got 1.0"),
                        (lambda: xc.Adam(0.1, beta2=-0.1), r"Adam: beta2 must be in \[0, 1\)"),
                        (lambda: xc.Adam(0.1, eps=0.0), r"Adam: eps must be > 0 and finite, got 0.0")]:
        with pytest.raises(ValueError, match=match):
            make()


def test_get_optimizer_builds_each_named_one_with_its_settings():
    sgd = xc.get_optimizer("sgd", 0.5)
    assert type(sgd) is xc.SGD and sgd.config() == {"learning_rate": 0.5, "momentum": 0.0}
    assert xc.get_optimizer("momentum", 0.5).config() == {"learning_rate": 0.5, "momentum": 0.9}
    assert xc.get_optimizer("momentum", 0.5, momentum=0.5).momentum == 0.5
    adam = xc.get_optimizer("adam", 0.5, beta1=0.8)
    assert type(adam) is xc.Adam and (adam.learning_rate, adam.beta1, adam.beta2) == (0.5, 0.8, 0.999)


def test_two_layers_keep_separate_slots_and_a_missing_gradient_leaves_its_parameter():
    rng = np.random.default_rng(5)
    layers = [_layer_with_grads(rng), _layer_with_grads(rng)]
    del layers[1].grads["bias"]
    before = [{k: v.copy() for k, v in layer.params.items()} for layer in layers]
    opt = xc.SGD(0.1, momentum=0.5)
    for step in range(1, 3):  # v = g, then 1.5 g: P - 0.1 g, then P - 0.25 g
        opt.step(layers)
    for layer, old in zip(layers, before):
        np.testing.assert_allclose(layer.params["weights"], old["weights"] - 0.25 * layer.grads["weights"])
    np.testing.assert_allclose(layers[0].params["bias"], before[0]["bias"] - 0.25 * layers[0].grads["bias"])
    np.testing.assert_array_equal(layers[1].params["bias"], before[1]["bias"])
    assert sorted(opt.slots) == ["0.bias.velocity", "0.weights.velocity", "1.weights.velocity"]


def test_state_dict_names_the_type_settings_step_count_and_slots():
    layer = _layer_with_grads(np.random.default_rng(6))
    opt = xc.Adam(0.01, beta1=0.8)
    opt.step([layer])
    opt.step([layer])
    state = opt.state_dict()
    assert state["type"] == "Adam" and state["iterations"] == 2
    assert state["config"] == {"learning_rate": 0.01, "beta1": 0.8, "beta2": 0.999, "eps": 1e-8}
    assert sorted(state["slots"]) == ["0.bias.m", "0.bias.v", "0.weights.m", "0.weights.v"]
    fresh = xc.Adam(0.01, beta1=0.8)
    fresh.load_state_dict({**state, "iterations": np.int64(2)})
    assert fresh.iterations == 2 and type(fresh.iterations) is int


def test_the_base_optimizer_describes_a_new_rule_by_its_learning_rate():
    class SignSGD(xc.Optimizer):
        def update(self, key, param, grad):
            return param - self.learning_rate * np.sign(grad)

    opt = SignSGD(0.5)
    assert opt.config() == {"learning_rate": 0.5} and repr(opt) == "SignSGD(learning_rate=0.5)"
    layer = _layer_with_grads(np.random.default_rng(7))
    w = layer.params["weights"].copy()
    opt.step([layer])
    np.testing.assert_array_equal(layer.params["weights"], w - 0.5 * np.sign(layer.grads["weights"]))
