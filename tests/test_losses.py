"""Losses (xpcnn/losses.py): the derivation's formulas, finite differences, PyTorch, safety at 0 and 1, shape
errors, and targets that do not suit the loss named on every array-API namespace."""

import math

import numpy as np
import pytest

import xpcnn as xc
from xpcnn.losses import target_problem
from xpcnn.tools import gradcheck_loss

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
    rng = np.random.default_rng(0)
    y_true = np.eye(3)[rng.integers(0, 3, 4)]
    y_pred = rng.uniform(0.05, 0.95, (4, 3))
    assert gradcheck_loss(name, y_true, y_pred, tolerance=1e-6) <= 1e-6


@pytest.mark.parametrize("name", LOSSES)
def test_predictions_of_exactly_zero_or_one_stay_finite(name):
    loss, prime = xc.get_loss(name)
    y_true = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    y_pred = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    value, grad = loss(y_true, y_pred), prime(y_true, y_pred)
    assert np.isfinite(float(value)) and np.all(np.isfinite(grad))
    assert value.dtype == np.float32 and grad.dtype == np.float32


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("which", ["loss", "derivative"])
def test_mismatched_shapes_name_the_loss_and_both_shapes(name, which):
    fn = xc.get_loss(name)[which == "derivative"]
    expected = rf"^{name}: labels of shape \(4, 1\) do not match predictions of shape \(4, 2\)"
    with pytest.raises(xc.ShapeError, match=expected):
        fn(np.zeros((4, 1)), np.zeros((4, 2)))


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("which", ["loss", "derivative"])
@pytest.mark.parametrize("strict_side", ["labels", "predictions"])
def test_labels_and_predictions_from_two_array_libraries_are_refused(name, which, strict_side):
    xs = pytest.importorskip("array_api_strict")
    fn = xc.get_loss(name)[which == "derivative"]
    y_true, y_pred = np.eye(2), np.full((2, 2), 0.5)
    if strict_side == "labels":
        y_true = xs.asarray(y_true)
    else:
        y_pred = xs.asarray(y_pred)
    with pytest.raises((TypeError, ValueError), match="(?i)namespace|device"):
        fn(y_true, y_pred)


def test_unknown_loss_name_is_rejected():
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        xc.get_loss("hinge")


# -- values against their formulas, written out element by element --------------------------

def _batch(k, seed=0):
    """Four one-hot labels over ``k`` classes and predictions strictly inside (0, 1)."""
    rng = np.random.default_rng(seed)
    return np.eye(k)[rng.integers(0, k, 4)], rng.uniform(0.05, 0.95, (4, k))


@pytest.mark.parametrize("k", [2, 3, 10])
def test_each_loss_value_is_its_formula_averaged_over_all_n_times_k_elements(k):
    y_true, y_pred = _batch(k)
    n = y_true.size  # N·K: every loss is the mean over all elements, as in the derivation
    mse = sum((t - p) ** 2 for t, p in zip(y_true.flat, y_pred.flat)) / n
    bce = -sum(t * math.log(p) + (1 - t) * math.log(1 - p) for t, p in zip(y_true.flat, y_pred.flat)) / n
    cce = -sum(t * math.log(p) for t, p in zip(y_true.flat, y_pred.flat)) / n
    np.testing.assert_allclose(float(xc.mse(y_true, y_pred)), mse, rtol=1e-12)
    np.testing.assert_allclose(float(xc.binary_cross_entropy(y_true, y_pred)), bce, rtol=1e-12)
    np.testing.assert_allclose(float(xc.categorical_cross_entropy(y_true, y_pred)), cce, rtol=1e-12)


@pytest.mark.parametrize("k", [2, 3, 10])
def test_each_loss_derivative_is_its_formula_over_n_times_k(k):
    y_true, y_pred = _batch(k, seed=1)
    n = y_true.size
    np.testing.assert_allclose(xc.mse_prime(y_true, y_pred), 2 * (y_pred - y_true) / n, rtol=1e-12)
    np.testing.assert_allclose(xc.binary_cross_entropy_prime(y_true, y_pred),
                               ((1 - y_true) / (1 - y_pred) - y_true / y_pred) / n, rtol=1e-12)
    np.testing.assert_allclose(xc.categorical_cross_entropy_prime(y_true, y_pred), -(y_true / y_pred) / n, rtol=1e-12)


def test_categorical_cross_entropy_worked_example():
    # two samples, three classes: -(log 0.7 + log 0.5) / 6
    y_true = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    y_pred = np.array([[0.2, 0.7, 0.1], [0.3, 0.2, 0.5]])
    np.testing.assert_allclose(float(xc.categorical_cross_entropy(y_true, y_pred)),
                               -(math.log(0.7) + math.log(0.5)) / 6, rtol=1e-12)


@pytest.mark.parametrize("name", LOSSES)
def test_loss_values_and_gradients_agree_with_pytorch(name):
    torch = pytest.importorskip("torch")
    y_true, y_pred = _batch(5, seed=2)
    t_pred = torch.tensor(y_pred, requires_grad=True)
    t_true = torch.tensor(y_true)
    if name == "mse":
        value = torch.nn.functional.mse_loss(t_pred, t_true)
    elif name == "binary_cross_entropy":
        value = torch.nn.functional.binary_cross_entropy(t_pred, t_true)
    else:  # PyTorch's negative log-likelihood is the mean over N samples; xpcnn's over N·K elements
        value = torch.nn.functional.nll_loss(torch.log(t_pred), t_true.argmax(dim=1)) / t_pred.shape[1]
    value.backward()
    loss, prime = xc.get_loss(name)
    np.testing.assert_allclose(float(loss(y_true, y_pred)), value.item(), rtol=1e-12)
    np.testing.assert_allclose(prime(y_true, y_pred), t_pred.grad.numpy(), rtol=1e-10)


def test_target_problem_names_the_first_sample_whose_targets_do_not_suit_the_loss():
    cce, bce = "categorical_cross_entropy", "binary_cross_entropy"
    onehot = np.eye(3)[[0, 2, 1]]
    assert target_problem(cce, onehot) is None and target_problem(bce, onehot) is None
    assert target_problem("mse", np.full((2, 3), 7.0)) is None and target_problem(cce, np.zeros((0, 3))) is None
    two_ones = onehot.copy()
    two_ones[1] = [1.0, 1.0, 0.0]
    assert target_problem(cce, two_ones) == (1, f"{cce} needs one-hot targets (one 1 per row)")
    assert target_problem(bce, two_ones) is None
    half = onehot.copy()
    half[2, 0] = 0.5
    assert target_problem(bce, half) == (2, f"{bce} needs targets in {{0, 1}}")
    assert target_problem(cce, half) == (2, f"{cce} needs targets in {{0, 1}}")
    assert target_problem(cce, np.array([[0.0, 0.0]])) == (0, f"{cce} needs one-hot targets (one 1 per row)")
    assert target_problem(bce, np.array([[[0.0, 1.0]], [[1.0, 2.0]]])) == (1, f"{bce} needs targets in {{0, 1}}")


@pytest.mark.parametrize("device", ["CPU_DEVICE", "device1"])
def test_target_problem_on_array_api_strict_names_the_first_bad_sample(device):
    """As the trainer's check before a step does, on any device."""
    xs = pytest.importorskip("array_api_strict")
    cce, bce = "categorical_cross_entropy", "binary_cross_entropy"
    targets = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.5, 0.0]])
    y = xs.asarray(targets, device=xs.Device(device))
    assert target_problem(cce, y) == (2, f"{cce} needs one-hot targets (one 1 per row)")
    assert target_problem(bce, y) == (3, f"{bce} needs targets in {{0, 1}}")
    assert target_problem(cce, y[:2, ...]) is None


def test_get_loss_takes_a_name_or_a_pair_of_functions_and_nothing_else():
    from xpcnn.losses import get_loss

    def f(y_true, y_pred):
        return 0.0

    assert get_loss((f, abs)) == (f, abs)
    for bad in [(f,), (f, abs, f), (f, "mse"), [f, abs], 3]:
        with pytest.raises(xc.ConfigTypeError,
                           match=r"^loss must be one of \[.*\] or a pair \(loss, loss_prime\) of functions, got "):
            get_loss(bad)
