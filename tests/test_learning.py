"""Learning on real data: the derivation's network and experiment on real MNIST 0-vs-1 digits."""

import numpy as np

import xpcnn as xc
from xpcnn.datasets import load_sample


def test_derivation_network_reaches_98_percent_on_real_mnist_zero_vs_one():
    images, labels = load_sample()
    zeros, ones = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    train = np.concatenate([zeros[:100], ones[:100]])
    test = np.concatenate([zeros[100:200], ones[100:200]])
    assert not set(train) & set(test)
    x = images[:, None].astype(np.float32) / 255.0
    y = np.eye(2, dtype=np.float32)[(labels == 1).astype(int)]

    model = xc.Sequential([
        xc.Convolutional((1, 28, 28), 3, 5), xc.Sigmoid(),
        xc.Reshape((5, 26, 26), (5 * 26 * 26,)),
        xc.Dense(5 * 26 * 26, 100), xc.Sigmoid(),
        xc.Dense(100, 2), xc.Sigmoid(),
    ], seed=0)
    # The derivation's training: binary cross-entropy, one sample at a time, learning rate 0.1.
    model.fit(x[train], y[train], loss="binary_cross_entropy", epochs=20, batch_size=1, learning_rate=0.1, seed=0)
    result = model.evaluate(x[test], y[test], loss="binary_cross_entropy")
    assert result["accuracy"] >= 0.98, result


def test_embedded_sample_is_real_mnist_with_200_digits_per_class():
    images, labels = load_sample()
    assert images.shape == (2000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [200] * 10
