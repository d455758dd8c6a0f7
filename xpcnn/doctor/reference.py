"""Oracles: the derivation's per-sample loops, textbook optimizer updates and central finite differences.

Written straight from ``cnn-derivation.txt`` with ``scipy.signal.correlate2d`` / ``convolve2d``,
one sample and one channel pair at a time: slow, obvious, and independent of the library. The
tests (``tests/reference.py`` re-exports this module) and ``xpcnn-doctor`` check against them,
in NumPy float64 on the host.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from ..errors import ConfigError


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


def strided_conv_forward(x, kernels, stride):
    """``Y[n, i, u, v] = Σ_{j,p,q} X[n, j, s·u + p, s·v + q] K[i, j, p, q]``, one output position at a time."""
    n, c, h, w = x.shape
    d, _, kh, kw = kernels.shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    y = np.zeros((n, d, ho, wo))
    for u in range(ho):
        for v in range(wo):
            window = x[:, :, stride * u:stride * u + kh, stride * v:stride * v + kw]  # (N, C, kh, kw)
            y[:, :, u, v] = np.tensordot(window, kernels, axes=([1, 2, 3], [1, 2, 3]))
    return y


def strided_conv_backward(x, kernels, output_gradient, stride):
    """``(∂E/∂K, ∂E/∂X)`` of :func:`strided_conv_forward`: each output position's window gets its
    share back (the chain rule term by term, no dilation, no full convolution)."""
    kh, kw = kernels.shape[2:]
    dk = np.zeros(kernels.shape)
    dx = np.zeros(x.shape)
    for u in range(output_gradient.shape[2]):
        for v in range(output_gradient.shape[3]):
            rows, cols = slice(stride * u, stride * u + kh), slice(stride * v, stride * v + kw)
            g = output_gradient[:, :, u, v]  # (N, D)
            dk += np.tensordot(g, x[:, :, rows, cols], axes=([0], [0]))     # (D, C, kh, kw)
            dx[:, :, rows, cols] += np.tensordot(g, kernels, axes=([1], [0]))  # (N, C, kh, kw)
    return dk, dx


def optimizer_steps(name: str, param, grads: list, learning_rate: float, momentum: float = 0.9,
                    beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
    """``param`` after one update per gradient in ``grads``, by the textbook rule of ``name``.

    ``sgd``: ``P ← P - η g``; ``momentum``: ``v ← μ v + g``, ``P ← P - η v``; ``adam``: Kingma and
    Ba's Algorithm 1 with the bias corrections ``m / (1 - β₁ᵗ)``, ``v / (1 - β₂ᵗ)``.
    """
    p = np.array(param, dtype=np.float64)
    velocity, m, v = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        g = np.asarray(g, dtype=np.float64)
        if name == "sgd":
            p = p - learning_rate * g
        elif name == "momentum":
            velocity = momentum * velocity + g
            p = p - learning_rate * velocity
        elif name == "adam":
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            p = p - learning_rate * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + eps)
        else:
            raise ConfigError(f"optimizer_steps: unknown rule {name!r}: expected 'sgd', 'momentum' or 'adam'")
    return p
