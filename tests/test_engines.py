"""Convolution engines: both input-gradient routes of the GEMM engine, col2im, and "auto".

The layer-level comparisons with the derivation's loops live in tests/test_conv.py; here each
engine product is checked on its own, on NumPy and on array_api_strict (CPU and device1).
"""

import numpy as np
import pytest

import xpcnn as xc
from reference import conv_backward, conv_forward
from xpcnn import backend
from xpcnn.engines import DEFAULT_ENGINE, ENGINES, GemmEngine, get_engine
from xpcnn.engines.gemm import col2im, im2col

# (N, C, H, W, D, k): C·Ho·Wo <= D·H·W takes col2im, the others the padded full convolution
SHAPES = [(2, 1, 5, 7, 3, 2), (3, 4, 6, 5, 2, 3), (2, 6, 7, 8, 2, 3), (2, 4, 5, 5, 1, 2), (2, 2, 3, 3, 2, 3)]
WHERE = [None, "CPU_DEVICE", "device1"]  # NumPy, then array_api_strict's devices


def on(device_name, a):
    if device_name is None:
        return a
    xs = pytest.importorskip("array_api_strict")
    return xc.to_device(a, backend.Device.of(xs.empty(0, device=xs.Device(device_name))))


@pytest.mark.parametrize("where", WHERE, ids=["numpy", "strict-cpu", "strict-device1"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("n,c,h,w,d,k", SHAPES)
def test_gemm_engine_products_match_the_derivation_loops(where, dtype, n, c, h, w, d, k):
    rng = np.random.default_rng(n + c + h + w + d + k)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    kernels = rng.standard_normal((d, c, k, k)).astype(dtype)
    dy = rng.standard_normal((n, d, h - k + 1, w - k + 1)).astype(dtype)
    engine = GemmEngine()
    xa, ka, dya = on(where, x), on(where, kernels), on(where, dy)
    y = engine.forward(xa, ka)
    dk = engine.kernel_gradient(xa, dya)
    dx = engine.input_gradient(dya, ka)
    dk_ref, _, dx_ref = conv_backward(x, kernels, dy)
    tol = 1e-4 if dtype == "float32" else 1e-10
    for ours, ref in ((y, conv_forward(x, kernels, np.zeros(d))), (dk, dk_ref), (dx, dx_ref)):
        assert backend.Device.of(ours) == backend.Device.of(xa)
        ours = xc.to_numpy(ours)
        assert ours.dtype == np.dtype(dtype)
        np.testing.assert_allclose(ours, ref, rtol=tol, atol=tol)


def test_kernel_gradient_after_input_gradient_still_uses_the_forward_columns():
    rng = np.random.default_rng(1)
    x, kernels = rng.standard_normal((2, 4, 6, 6)), rng.standard_normal((1, 4, 3, 3))
    dy = rng.standard_normal((2, 1, 4, 4))
    engine = GemmEngine()
    engine.forward(x, kernels)
    engine.input_gradient(dy, kernels)  # C·Ho·Wo > D·H·W: the padded route, which runs forward()
    np.testing.assert_allclose(engine.kernel_gradient(x, dy), conv_backward(x, kernels, dy)[0], atol=1e-10)


def test_col2im_is_the_adjoint_of_im2col():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 7, 5))
    cols = rng.standard_normal((2, 3 * 3 * 2, 5 * 4))
    # <im2col(x), cols> = <x, col2im(cols)>: col2im adds each window's values back where im2col took them
    assert np.isclose(np.sum(im2col(x, 3, 2) * cols), np.sum(x * col2im(cols, x.shape, 3, 2)))


def test_forward_returns_a_fresh_array_the_layer_may_add_biases_to():
    x, kernels = np.ones((1, 1, 4, 4)), np.ones((2, 1, 2, 2))
    for name in ENGINES:
        engine = get_engine(name)
        y = engine.forward(x, kernels)
        y += 1.0
        np.testing.assert_allclose(engine.forward(x, kernels), 4.0)


def test_auto_is_the_measured_default_gemm():
    assert DEFAULT_ENGINE == "gemm"
    assert isinstance(get_engine("auto"), GemmEngine)
