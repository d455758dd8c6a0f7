"""The gemm engine (xpcnn/engines/gemm.py): im2col and col2im as adjoints, the layouts (per sample or
over the batch, and back to batch-major), the columns forward keeps for the kernel gradient, and
the input gradient on either side of its route choice, all against the derivation's loops."""

import numpy as np
import pytest

from test_engines import assert_close, operands
from xpcnn.engines import GemmEngine
from xpcnn.engines.gemm import batch_major, col2im, im2col
from xpcnn.testing.derivation import conv_backward, strided_conv_backward

N, C, H, W = 2, 3, 7, 6


def test_batch_major_is_the_transpose_of_the_first_two_axes_laid_out_row_major():
    x = np.random.default_rng(3).standard_normal((C, N, H, W))
    y = batch_major(x)
    np.testing.assert_array_equal(y, np.transpose(x, (1, 0, 2, 3)))
    assert y.flags["C_CONTIGUOUS"]  # the layers after it, and the gradients coming back, share this layout


@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_col2im_is_the_adjoint_of_im2col(stride, per_sample):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 8, 7))
    ho, wo = (8 - 3) // stride + 1, (7 - 2) // stride + 1
    # rows (p, q, j); columns (n, u, v), or one matrix per sample
    shape = (2, 3 * 2 * 3, ho * wo) if per_sample else (3 * 2 * 3, 2 * ho * wo)
    cols = rng.standard_normal(shape)
    assert im2col(x, 3, 2, stride, per_sample).shape == shape
    # <im2col(x), cols> = <x, col2im(cols)>: col2im adds each window's values back where im2col took them
    back = col2im(cols, x.shape, 3, 2, stride, per_sample)
    assert back.shape == x.shape
    assert np.isclose(np.sum(im2col(x, 3, 2, stride, per_sample) * cols), np.sum(x * back))
    if stride == 1:  # the default stride, on both sides
        assert np.isclose(np.sum(im2col(x, 3, 2, per_sample=per_sample) * cols),
                          np.sum(x * col2im(cols, x.shape, 3, 2, per_sample=per_sample)))


def test_kernel_gradient_reuses_what_forward_kept():
    x, kernels, dy = operands("float64", 2, 4, 6, 6, 1, 3)
    engine = GemmEngine()
    _, cols = engine.forward(x, kernels, keep=True)
    np.testing.assert_array_equal(cols, im2col(x, 3, 3))
    # the kept columns are what the kernel gradient computes from: stand-ins change the result
    doubled = engine.kernel_gradient(x, dy, (3, 3), 1, 2 * cols)
    np.testing.assert_allclose(doubled, 2 * conv_backward(x, kernels, dy)[0], atol=1e-10)
    assert engine.forward(x, kernels, keep=False)[1] is None


def test_gemm_lays_out_small_products_per_sample_and_large_ones_over_the_batch():
    from xpcnn.engines.gemm import BATCH_PRODUCT_ROWS, per_sample

    assert per_sample((32, 1, 3, 3)) and not per_sample((64, 32, 3, 3))
    assert per_sample((1, 1, 1, BATCH_PRODUCT_ROWS - 1)) and not per_sample((1, 1, 1, BATCH_PRODUCT_ROWS))
    for c, expected in ((1, (2, 9, 16)), (4, (36, 2 * 16))):
        x, kernels, _ = operands("float64", 2, c, 6, 6, 3, 3)
        assert GemmEngine().forward(x, kernels, keep=True)[1].shape == expected


@pytest.mark.parametrize("n,c,h,w,d,k,s", [(2, 4, 6, 6, 1, 3, 1), (2, 1, 6, 6, 4, 3, 1), (2, 2, 5, 5, 2, 1, 1),
                                           (1, 3, 4, 4, 2, 1, 1), (2, 8, 7, 7, 1, 3, 2)])
def test_gemm_input_gradient_matches_the_loops_on_either_side_of_its_route_choice(n, c, h, w, d, k, s):
    """col2im when C·Ho·Wo <= D·H·W (or strided), else the padded full convolution: the same values."""
    x, kernels, dy = operands("float64", n, c, h, w, d, k, s)
    dx = GemmEngine().input_gradient(dy, kernels, (h, w), s)
    assert_close(dx, strided_conv_backward(x, kernels, dy, s)[1], "float64")
