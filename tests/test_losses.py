"""Losses (xpcnn/losses.py): the derivation's formulas, finite differences, PyTorch, safety at 0 and 1, shape
errors, and targets that do not suit the loss named on every array-API namespace."""

import math

import numpy as np
import pytest

import xpcnn as xc
from xpcnn.losses import target_problem
from xpcnn.tools import gradcheck_loss

LOSSES = ["mse", "binary_cross_entropy", "categorical_cross_entropy"]
LOGITS = ["softmax_cross_entropy", "sigmoid_cross_entropy"]


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
    y_pred /= y_pred.sum(axis=1, keepdims=True)  # probabilities: rows that sum to 1
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
    """Four one-hot labels over ``k`` classes and probabilities strictly inside (0, 1), rows summing to 1."""
    rng = np.random.default_rng(seed)
    y_pred = rng.uniform(0.05, 0.95, (4, k))
    return np.eye(k)[rng.integers(0, k, 4)], y_pred / y_pred.sum(axis=1, keepdims=True)


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


# -- predictions that are not probabilities, and the logits forms ----------------------------------

def _issue_example():
    rng = np.random.default_rng(0)
    x = rng.random((200, 8), dtype=np.float32)
    return x, np.eye(2, dtype=np.float32)[(x.sum(1) > 4).astype(int)]


def test_categorical_cross_entropy_on_a_network_without_softmax_fails_in_one_line_naming_the_fix():
    """The issue's example: it reported loss 0.0 at chance accuracy; now the first step refuses."""
    x, y = _issue_example()
    model = xc.Sequential([xc.Dense(8, 2)], seed=0)
    start = np.array(model.layers[0].params["weights"])
    with pytest.raises(xc.ConfigError, match=r"^categorical_cross_entropy: predictions must be probabilities, each "
                       r"row >= 0 and summing to 1, got .*; end the network with Softmax\(\), or use "
                       r"loss='softmax_cross_entropy', which takes the logits$"):
        model.fit(x, y, loss="categorical_cross_entropy", epochs=5, learning_rate=0.5)
    np.testing.assert_array_equal(model.layers[0].params["weights"], start)  # no step was taken


def test_binary_cross_entropy_refuses_values_outside_zero_one_naming_the_logits_form():
    with pytest.raises(xc.ConfigError, match=r"^binary_cross_entropy: predictions must be probabilities in \[0, 1\], "
                       r"got a value of 1\.5; end the network with Sigmoid\(\), or use "
                       r"loss='sigmoid_cross_entropy', which takes the logits$"):
        xc.binary_cross_entropy(np.eye(2), np.array([[0.2, 1.5], [0.5, 0.5]]))
    with pytest.raises(xc.ConfigError, match="got a value of -0.25;"):
        xc.binary_cross_entropy(np.eye(2), np.array([[0.2, 0.5], [-0.25, 0.5]]))
    x, y = _issue_example()
    with pytest.raises(xc.ConfigError, match="^binary_cross_entropy: predictions must be probabilities"):
        xc.Sequential([xc.Dense(8, 2)], seed=0).fit(x, y, loss="binary_cross_entropy", epochs=1)


def test_categorical_cross_entropy_refuses_sigmoid_outputs_and_negative_values_in_rows_that_sum_to_one():
    y = np.eye(2)
    with pytest.raises(xc.ConfigError, match="got a row summing to 1.3;"):
        xc.categorical_cross_entropy(y, np.array([[0.6, 0.7], [0.5, 0.5]]))
    with pytest.raises(xc.ConfigError, match="got a value of -0.5;"):  # sums to 1, but is no probability
        xc.categorical_cross_entropy(y, np.array([[1.5, -0.5], [0.5, 0.5]]))


@pytest.mark.parametrize("dtype, off, refused", [("float64", 1e-7, False), ("float64", 1e-4, True),
                                                 ("float32", 1e-3, False), ("float32", 1e-2, True),
                                                 ("float16", 0.05, False), ("float16", 0.2, True)])
def test_row_sum_tolerance_follows_the_dtype(dtype, off, refused):
    y_pred = np.array([[0.25, 0.75 + off], [0.5, 0.5]], dtype=dtype)
    call = lambda: xc.categorical_cross_entropy(np.eye(2, dtype=dtype), y_pred)  # noqa: E731
    if refused:
        with pytest.raises(xc.ConfigError, match="a row summing to"):
            call()
    else:
        assert np.isfinite(float(call()))


@pytest.mark.parametrize("k", [10, 1000])
def test_a_float32_softmax_of_many_classes_passes_the_check(k):
    logits = np.random.default_rng(0).normal(0, 30, (64, k)).astype(np.float32)
    probs = xc.Softmax().forward(logits, training=False)
    labels = np.eye(k, dtype=np.float32)[np.arange(64) % k]
    assert np.isfinite(float(xc.categorical_cross_entropy(labels, probs)))


@pytest.mark.parametrize("name", ["binary_cross_entropy", "categorical_cross_entropy"])
def test_nan_predictions_pass_the_check_for_the_step_guard_to_report(name):
    y_pred = np.array([[np.nan, 0.5], [0.5, 0.5]])
    assert np.isnan(float(xc.get_loss(name)[0](np.eye(2), y_pred)))


def test_a_network_without_softmax_learns_the_issues_example_with_softmax_cross_entropy():
    x, y = _issue_example()
    history = xc.Sequential([xc.Dense(8, 2)], seed=0).fit(x, y, loss="softmax_cross_entropy", epochs=30,
                                                          learning_rate=5.0, batch_size=10)
    assert history["loss"][-1] < 0.5 * history["loss"][0] and history["accuracy"][-1] >= 0.9


def _logits(shape, seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, scale, shape)


def test_softmax_cross_entropy_and_its_gradient_agree_with_pytorch_cross_entropy_on_probability_targets():
    torch = pytest.importorskip("torch")
    z = _logits((6, 5))
    rng = np.random.default_rng(1)
    targets = rng.random((6, 5))
    targets /= targets.sum(axis=1, keepdims=True)  # PyTorch takes class probabilities too
    targets[0] = np.eye(5)[2]
    targets[1] *= 0.5  # targets that do not sum to 1: the gradient is p Σ_k y* - y*, as PyTorch's
    tz = torch.tensor(z, requires_grad=True)
    value = torch.nn.functional.cross_entropy(tz, torch.tensor(targets)) / 5  # mean over N·K here
    value.backward()
    loss, prime = xc.get_loss("softmax_cross_entropy")
    np.testing.assert_allclose(float(loss(targets, z)), value.item(), rtol=1e-12)
    np.testing.assert_allclose(prime(targets, z), tz.grad.numpy(), rtol=1e-10, atol=1e-16)


def test_sigmoid_cross_entropy_and_its_gradient_agree_with_pytorch_bce_with_logits():
    torch = pytest.importorskip("torch")
    z = _logits((6, 3), seed=2, scale=10.0)
    targets = np.random.default_rng(3).random((6, 3))
    tz = torch.tensor(z, requires_grad=True)
    value = torch.nn.functional.binary_cross_entropy_with_logits(tz, torch.tensor(targets))
    value.backward()
    loss, prime = xc.get_loss("sigmoid_cross_entropy")
    np.testing.assert_allclose(float(loss(targets, z)), value.item(), rtol=1e-12)
    np.testing.assert_allclose(prime(targets, z), tz.grad.numpy(), rtol=1e-10, atol=1e-16)


@pytest.mark.parametrize("name", LOGITS)
def test_logits_forms_pass_gradcheck_in_float64(name):
    y_true = np.eye(4)[[0, 3, 1, 2, 2]]
    assert gradcheck_loss(name, y_true, _logits((5, 4), seed=4, scale=1.0), tolerance=1e-5) <= 1e-5


@pytest.mark.parametrize("name, probability_form, activation", [
    ("softmax_cross_entropy", "categorical_cross_entropy", xc.Softmax),
    ("sigmoid_cross_entropy", "binary_cross_entropy", xc.Sigmoid)])
def test_logits_forms_equal_their_probability_forms_after_the_activation(name, probability_form, activation):
    z, y_true = _logits((5, 4), seed=5), np.eye(4)[[0, 3, 1, 2, 2]]
    probs = activation().forward(z, training=False)
    np.testing.assert_allclose(float(xc.get_loss(name)[0](y_true, z)),
                               float(xc.get_loss(probability_form)[0](y_true, probs)), rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_logits_forms_stay_finite_and_exact_at_huge_logits(dtype):
    """Log-sum-exp and max(z,0) - z y + log1p(exp(-|z|)): no overflow at |z| = 1e4 (exp(1e4) is inf)."""
    z = np.array([[1e4, -1e4], [-1e4, 1e4]], dtype=dtype)
    y = np.array([[0.0, 1.0], [0.0, 1.0]], dtype=dtype)
    for name in LOGITS:
        loss, prime = xc.get_loss(name)
        value, grad = loss(y, z), prime(y, z)
        assert value.dtype == dtype and grad.dtype == dtype
        assert np.all(np.isfinite(grad)) and np.isfinite(float(value))
    # row 0 puts all mass on the wrong class: -log softmax = 2e4 for it; row 1 is right: 0; mean over 4
    np.testing.assert_allclose(float(xc.get_loss("softmax_cross_entropy")[0](y, z)), 2e4 / 4, rtol=1e-6)
    np.testing.assert_allclose(xc.get_loss("softmax_cross_entropy")[1](y, z), [[0.25, -0.25], [0, 0]], atol=1e-7)
    # per element: max(z,0) - z y + log1p(exp(-|z|)) = 1e4, 1e4, 0, 0
    np.testing.assert_allclose(float(xc.get_loss("sigmoid_cross_entropy")[0](y, z)), 2e4 / 4, rtol=1e-6)


def test_logits_forms_take_the_targets_of_their_probability_forms():
    two_ones = np.array([[1.0, 1.0], [0.0, 1.0]])
    assert target_problem("softmax_cross_entropy", two_ones) == (0, "softmax_cross_entropy needs one-hot targets "
                                                                    "(one 1 per row)")
    assert target_problem("sigmoid_cross_entropy", two_ones) is None
    assert target_problem("sigmoid_cross_entropy", np.array([[0.5]])) == (0, "sigmoid_cross_entropy needs targets in "
                                                                              "{0, 1}")


def test_the_check_costs_one_host_read_per_loss_value_and_none_in_the_derivative(monkeypatch):
    """One reduction read on the host per call of the loss (``bool`` of a 0-d array); ``_prime`` checks nothing."""
    import xpcnn.losses as losses
    calls = []
    real = losses.check_probabilities
    monkeypatch.setattr(losses, "check_probabilities", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    y_true, y_pred = _batch(3)
    losses.categorical_cross_entropy(y_true, y_pred)
    losses.categorical_cross_entropy_prime(y_true, y_pred)
    losses.binary_cross_entropy_prime(y_true, y_pred)
    assert calls == ["categorical_cross_entropy"]


def test_on_a_device_the_check_reads_at_the_first_second_fourth_call_since_get_loss():
    """Reading a device's value waits for it: the check reads at calls 1, 2, 4, 8, ... since get_loss, not every
    step (array_api_strict's "device1" stands for a GPU; its CPU_DEVICE, like NumPy, is read every call)."""
    xs = pytest.importorskip("array_api_strict")
    on = xs.Device("device1")
    y = xs.asarray([[1.0, 0.0]], device=on)
    good, bad = xs.asarray([[0.4, 0.6]], device=on), xs.asarray([[3.0, -1.0]], device=on)
    loss = xc.get_loss("categorical_cross_entropy")[0]
    refused = []
    for call in range(1, 10):
        try:
            loss(y, bad)
            refused.append(False)
        except xc.ConfigError:
            refused.append(True)
    assert refused == [True, True, False, True, False, False, False, True, False]
    loss(y, good)  # call 10
    xc.get_loss("categorical_cross_entropy")  # a new fit or evaluate: its first batch is checked
    with pytest.raises(xc.ConfigError, match="summing to 1"):
        loss(y, bad)
    host = xs.asarray([[3.0, -1.0]])
    for _ in range(3):  # CPU_DEVICE: free to read, checked every call
        with pytest.raises(xc.ConfigError):
            loss(xs.asarray([[1.0, 0.0]]), host)
