"""xpcnn.testing.per_sample: the derivation's one-sample-at-a-time formulation takes the library's step.

The per-sample formulation (column vectors, ``scipy.signal`` loops, each sample updating the
weights) is an oracle for the seed network: on one sample its outputs and its updated weights
are the library's, float64 and float32.
"""

import numpy as np
import pytest

import xpcnn as xc
from xpcnn import zoo
from xpcnn.losses import get_loss
from xpcnn.optim.optimizers import SGD
from xpcnn.testing.per_sample import PerSample
from xpcnn.tools.benchmark import synthetic_batch


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_per_sample_takes_the_same_step_as_xpcnn(dtype):
    model, loss = zoo.build_model("seed", (1, 28, 28), 2, seed=0, dtype=dtype)
    baseline = PerSample(model, 0.1)
    x, y = synthetic_batch(model.input_shape, model.output_shape, 2, 1, dtype)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(baseline.predict_batch(x), model.forward(x), atol=tol)
    baseline.train_batch(x, y)
    model.train_step(x, y, *get_loss(loss), SGD(0.1))
    conv, dense1, dense2 = model.layers[0], model.layers[3], model.layers[5]
    pairs = [(baseline.kernels, conv.kernels), (baseline.biases, conv.biases), (baseline.w1, dense1.weights),
             (baseline.b1[:, 0], dense1.bias), (baseline.w2, dense2.weights), (baseline.b2[:, 0], dense2.bias)]
    for ours, theirs in pairs:
        assert ours.dtype == np.dtype(dtype)
        np.testing.assert_allclose(ours, xc.to_numpy(theirs), atol=tol)


def test_per_sample_updates_after_each_sample_as_the_derivation_does():
    """Two samples one after the other are two batch-1 steps of the library, not one batch-2 step."""
    model, loss = zoo.build_model("seed", (1, 28, 28), 2, seed=3, dtype="float64")
    baseline = PerSample(model, 0.1)
    x, y = synthetic_batch(model.input_shape, model.output_shape, 2, 2, "float64")
    baseline.train_batch(x, y)
    opt = SGD(0.1)
    for i in range(2):
        model.train_step(x[i:i + 1], y[i:i + 1], *get_loss(loss), opt)
    np.testing.assert_allclose(baseline.kernels, xc.to_numpy(model.layers[0].kernels), atol=1e-12)
    np.testing.assert_allclose(baseline.w2, xc.to_numpy(model.layers[5].weights), atol=1e-12)
