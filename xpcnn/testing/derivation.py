"""The derivation's loops: the convolutional layer one sample and one channel pair at a time.

Written straight from ``cnn-derivation.txt`` with ``scipy.signal.correlate2d`` / ``convolve2d``::

    Y_i = B_i + Σ_j X_j ⋆ K_ij        ∂E/∂K_ij = X_j ⋆ ∂E/∂Y_i        ∂E/∂X_j = Σ_i ∂E/∂Y_i ∗full K_ij

and, for a stride ``s``, one output position at a time. Slow, obvious, and independent of the
library's engines: the tests and ``xpcnn-doctor`` check against them, in NumPy float64 on the host.
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
