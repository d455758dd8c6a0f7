"""Activations: values, stability at large |x|, finite differences, dtypes."""

import math
import warnings

import numpy as np
import pytest

import xpcnn as xc

ACTIVATIONS = [xc.Sigmoid, xc.Tanh, xc.ReLU, xc.Softmax]


@pytest.mark.parametrize("cls", ACTIVATIONS)
def test_gradients_match_finite_differences(cls):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6))
    x[np.abs(x) < 1e-3] = 0.5  # keep ReLU away from its kink
    assert xc.gradcheck(cls(), x, tolerance=1e-6, max_checks=1000) <= 1e-6


def test_sigmoid_matches_formula_and_is_stable_for_large_inputs():
    x = np.array([[-1000.0, -30.0, 0.0, 30.0, 1000.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning
        s = xc.Sigmoid().forward(x)
    np.testing.assert_allclose(s[0, 1:4], 1 / (1 + np.exp(-x[0, 1:4])))
    assert s[0, 0] == 0.0 and s[0, -1] == 1.0 and np.all(np.isfinite(s))


def test_softmax_rows_sum_to_one_and_survive_huge_logits():
    x = np.array([[1000.0, 1000.0], [-1000.0, 0.0]], dtype=np.float32)
    s = xc.Softmax().forward(x)
    assert s.dtype == np.float32
    np.testing.assert_allclose(s.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(s[0], [0.5, 0.5])


@pytest.mark.parametrize("cls", ACTIVATIONS)
def test_float32_in_float32_out_forward_and_backward(cls):
    x = np.linspace(-3, 3, 24, dtype=np.float32).reshape(2, 3, 4)
    layer = cls()
    y = layer.forward(x)
    assert y.dtype == np.float32
    assert layer.backward(np.ones_like(y)).dtype == np.float32


# -- values and derivatives against their formulas and PyTorch, on inputs up to |x| = 50 -------

def _wide_inputs(dtype="float64"):
    """(4, 26) values spread over [-50, 50], the ends and 0 included."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-50, 50, (4, 26))
    x[0, :5] = [-50.0, -6.5, 0.0, 6.5, 50.0]
    return x.astype(dtype)


def _softmax_rows(x):
    out = []
    for row in x:
        top = max(row)
        e = [math.exp(v - top) for v in row]
        out.append([v / sum(e) for v in e])
    return np.array(out)


FORMULAS = {
    xc.Sigmoid: (lambda x: np.vectorize(lambda v: 1 / (1 + math.exp(-v)))(x),
                 lambda x: np.vectorize(lambda v: math.exp(-v) / (1 + math.exp(-v)) ** 2)(x)),
    xc.Tanh: (np.vectorize(math.tanh), np.vectorize(lambda v: 1 / math.cosh(v) ** 2)),
    xc.ReLU: (np.vectorize(lambda v: max(v, 0.0)), np.vectorize(lambda v: 1.0 if v > 0 else 0.0)),
}


@pytest.mark.parametrize("cls", list(FORMULAS), ids=lambda c: c.__name__)
def test_element_wise_activation_and_its_derivative_are_their_formulas_up_to_50(cls):
    x = _wide_inputs()
    f, f_prime = FORMULAS[cls]
    layer = cls()
    np.testing.assert_allclose(layer.forward(x), f(x), rtol=1e-12, atol=1e-300)
    # f' from the kept output (σ(1-σ), 1-tanh²) loses its relative precision where f' < ε (|x| > ~18),
    # so the derivative is compared to machine precision of its largest value (1), not relatively.
    np.testing.assert_allclose(layer.backward(np.ones_like(x)), f_prime(x), rtol=1e-12, atol=4e-16)


def test_softmax_is_its_formula_on_logits_up_to_50():
    x = _wide_inputs()
    np.testing.assert_allclose(xc.Softmax().forward(x), _softmax_rows(x), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cls", ACTIVATIONS, ids=lambda c: c.__name__)
def test_activation_forward_and_backward_agree_with_pytorch_up_to_50(cls, dtype):
    torch = pytest.importorskip("torch")
    x = _wide_inputs(dtype)
    g = np.random.default_rng(4).standard_normal(x.shape).astype(dtype)
    tx = torch.tensor(x, requires_grad=True)
    fn = {xc.Sigmoid: torch.sigmoid, xc.Tanh: torch.tanh, xc.ReLU: torch.relu,
          xc.Softmax: lambda t: torch.softmax(t, dim=-1)}[cls]
    ty = fn(tx)
    ty.backward(torch.tensor(g))
    layer = cls()
    eps = float(np.finfo(dtype).eps)
    y = layer.forward(x)
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=4 * eps, atol=1e-300)
    # backward: to a few ulps of the largest upstream gradient (1 - tanh² cancels near |x| = 50)
    np.testing.assert_allclose(layer.backward(g), tx.grad.numpy(), rtol=16 * eps, atol=4 * eps * np.abs(g).max())


def test_softmax_is_over_the_last_axis_of_a_3d_batch_with_huge_logits():
    """(N, T, K): each row of K is one softmax, and its max is the row's own (else 0/0 at ±1000)."""
    x = _wide_inputs().reshape(2, 2, 26)
    x[0, 0] += 1000.0
    x[0, 1] -= 1000.0
    layer = xc.Softmax()
    s = layer.forward(x)
    expected = _softmax_rows(x.reshape(4, 26))
    np.testing.assert_allclose(s, expected.reshape(2, 2, 26), rtol=1e-12, atol=1e-300)
    g = np.random.default_rng(5).standard_normal(x.shape)
    # ∂E/∂X of each row: the Jacobian diag(s) - s sᵀ, formed, times g
    dx = [(np.diag(row) - np.outer(row, row)) @ grow for row, grow in zip(expected, g.reshape(4, 26))]
    np.testing.assert_allclose(layer.backward(g), np.reshape(dx, x.shape), rtol=1e-10, atol=1e-14)


def test_softmax_of_one_vector_names_the_shape_it_needs():
    with pytest.raises(xc.ShapeError, match=r"Softmax.*expected input of shape \(N, \.\.\., K\).*got \(3,\)"):
        xc.Softmax().forward(np.zeros(3))
