"""The per-sample formulation: the seed network trained as the derivation writes it.

:class:`PerSample` starts from an xpcnn seed network's weights (:func:`xpcnn.zoo.build_model`,
``"seed"``). The tests check that its step is the library's (``tests/testing/test_per_sample.py``),
and ``scripts/bench.py`` times it as a contender.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from ..backend import to_numpy
from ..model import Sequential


class PerSample:
    """The seed network exactly as the derivation writes it: column vectors, one sample at a time.

    Each sample runs forward, then backward with the learning rate, which updates every layer
    at once (the derivation's ``backward(output_gradient, learning_rate)``); the convolution
    loops over output and input channels calling ``correlate2d`` / ``convolve2d``. Its speed
    per sample does not depend on the batch size.
    """

    def __init__(self, model: Sequential, learning_rate: float) -> None:
        conv, dense1, dense2 = model.layers[0], model.layers[3], model.layers[5]
        self.kernels = np.array(to_numpy(conv.kernels))
        self.biases = np.array(to_numpy(conv.biases))
        self.w1, self.b1 = np.array(to_numpy(dense1.weights)), np.array(to_numpy(dense1.bias))[:, None]
        self.w2, self.b2 = np.array(to_numpy(dense2.weights)), np.array(to_numpy(dense2.bias))[:, None]
        self.lr = learning_rate

    @staticmethod
    def sigmoid(x):
        with np.errstate(over="ignore"):  # the derivation's formula; e^{-x} = inf gives 0 correctly
            return 1 / (1 + np.exp(-x))

    def sigmoid_prime(self, x):
        s = self.sigmoid(x)
        return s * (1 - s)

    def forward(self, sample):
        """``(C, 28, 28)`` -> the output column ``(2, 1)``; returns what backward needs too."""
        depth, channels = self.kernels.shape[:2]
        z0 = np.copy(self.biases)
        for i in range(depth):
            for j in range(channels):
                z0[i] += signal.correlate2d(sample[j], self.kernels[i, j], mode="valid")
        h0 = np.reshape(self.sigmoid(z0), (-1, 1))
        z1 = np.dot(self.w1, h0) + self.b1
        a1 = self.sigmoid(z1)
        z2 = np.dot(self.w2, a1) + self.b2
        return self.sigmoid(z2), (sample, z0, h0, z1, a1, z2)

    def predict_batch(self, x):
        return np.stack([self.forward(sample)[0][:, 0] for sample in x])

    def train_batch(self, x, y) -> None:
        for sample, target in zip(x, y):
            self.train_sample(sample, target[:, None])

    def train_sample(self, sample, y_true) -> None:
        lr = self.lr
        y_pred, (inp, z0, h0, z1, a1, z2) = self.forward(sample)
        grad = ((1 - y_true) / (1 - y_pred) - y_true / y_pred) / np.size(y_true)  # BCE'
        grad = grad * self.sigmoid_prime(z2)
        w2_grad, grad_in = np.dot(grad, a1.T), np.dot(self.w2.T, grad)           # Dense 2
        self.w2 -= lr * w2_grad
        self.b2 -= lr * grad
        grad = grad_in * self.sigmoid_prime(z1)
        w1_grad, grad_in = np.dot(grad, h0.T), np.dot(self.w1.T, grad)           # Dense 1
        self.w1 -= lr * w1_grad
        self.b1 -= lr * grad
        grad = np.reshape(grad_in, z0.shape) * self.sigmoid_prime(z0)            # Reshape, Sigmoid
        depth, channels = self.kernels.shape[:2]
        kernels_gradient = np.zeros(self.kernels.shape, dtype=self.kernels.dtype)  # Convolutional
        input_gradient = np.zeros(inp.shape, dtype=inp.dtype)
        for i in range(depth):
            for j in range(channels):
                kernels_gradient[i, j] = signal.correlate2d(inp[j], grad[i], mode="valid")
                input_gradient[j] += signal.convolve2d(grad[i], self.kernels[i, j], mode="full")
        self.kernels -= lr * kernels_gradient
        self.biases -= lr * grad
