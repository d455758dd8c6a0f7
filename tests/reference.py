"""Oracles for the tests: the derivation's per-sample loops and central finite differences.

Written straight from ``cnn-derivation.txt`` with ``scipy.signal.correlate2d`` / ``convolve2d``,
one sample and one channel pair at a time: slow, obvious, and independent of the library.
"""

from __future__ import annotations

import numpy as np
from scipy import signal


def conv_forward(x, kernels, biases):
    """``Y_i = B_i + Σ_j X_j ⋆ K_ij`` for each sample; ``biases`` (D, Ho, Wo) or (D,)."""
    n, c = x.shape[:2]
    d = kernels.shape[0]
    ho, wo = x.shape[2] - kernels.shape[2] + 1, x.shape[3] - kernels.shape[3] + 1
    y = np.zeros((n, d, ho, wo))
    for s in range(n):
        for i in range(d):
            y[s, i] = biases[i]
            for j in range(c):
                y[s, i] += signal.correlate2d(x[s, j], kernels[i, j], mode="valid")
    return y


def conv_backward(x, kernels, output_gradient):
    """``(∂E/∂K, ∂E/∂B untied, ∂E/∂X)`` summed over the batch, from the derivation's loops."""
    n, c = x.shape[:2]
    d = kernels.shape[0]
    dk = np.zeros(kernels.shape)
    dx = np.zeros(x.shape)
    for s in range(n):
        for i in range(d):
            for j in range(c):
                dk[i, j] += signal.correlate2d(x[s, j], output_gradient[s, i], mode="valid")
                dx[s, j] += signal.convolve2d(output_gradient[s, i], kernels[i, j], mode="full")
    db = output_gradient.sum(axis=0)
    return dk, db, dx


def numerical_gradient(f, x, eps=1e-6):
    """Central differences of the scalar ``f()`` with respect to every entry of ``x`` (in place)."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        idx = it.multi_index
        old = x[idx]
        x[idx] = old + eps
        plus = f()
        x[idx] = old - eps
        minus = f()
        x[idx] = old
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


def check_layer_gradients(layer, x, rng, rtol=1e-6, atol=1e-8):
    """Finite-difference check of ``backward`` for ``E = Σ g ⊙ layer(x)`` (float64 NumPy)."""
    g = rng.standard_normal(layer.forward(x).shape)

    def energy():
        return float(np.sum(g * layer.forward(x)))

    layer.forward(x)
    dx = layer.backward(g)
    analytic = {name: np.array(grad) for name, grad in layer.grads.items()}
    if dx is not None:
        np.testing.assert_allclose(dx, numerical_gradient(energy, x), rtol=rtol, atol=atol,
                                   err_msg=f"{layer!r}: input gradient")
    for name, param in layer.params.items():
        np.testing.assert_allclose(analytic[name], numerical_gradient(energy, param), rtol=rtol, atol=atol,
                                   err_msg=f"{layer!r}: gradient of {name}")
