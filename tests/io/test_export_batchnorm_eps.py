"""ONNX export keeps BatchNorm's own eps: with a large one, onnxruntime still computes what predict does."""

from __future__ import annotations

import numpy as np
import pytest

import xpcnn as xc
from xpcnn.io.export import to_onnx

ort = pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("kind", ["BatchNorm2D", "BatchNorm1D"])
def test_a_non_default_eps_reaches_the_graph(kind, tmp_path):
    layers, shape = {"BatchNorm2D": ([xc.BatchNorm2D(3, eps=0.5)], (3, 4, 4)),
                     "BatchNorm1D": ([xc.Flatten(), xc.BatchNorm1D(3, eps=0.5)], (3,))}[kind]
    model = xc.Sequential(layers, seed=0)
    rng = np.random.default_rng(0)
    bn = model.layers[-1]
    bn.buffers["running_var"] = rng.uniform(0.01, 0.2, 3).astype(np.float32)  # eps then weighs much
    bn.buffers["running_mean"] = rng.uniform(-1, 1, 3).astype(np.float32)
    x = rng.standard_normal((5, *shape)).astype(np.float32)
    to_onnx(model, tmp_path / "bn.onnx", input_shape=shape)
    ours = xc.to_numpy(model.predict(x))
    theirs = ort.InferenceSession(str(tmp_path / "bn.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"input": x})[0]
    np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-6)
