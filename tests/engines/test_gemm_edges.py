"""gemm engine: its layout change and what biased_forward keeps (written for mutmut's survivors)."""
import numpy as np
import pytest

from xpcnn.testing.derivation import conv_backward, conv_forward
from test_engines import assert_close, operands
from xpcnn.engines import ENGINES, get_engine
from xpcnn.engines.gemm import batch_major

N, C, H, W = 2, 3, 7, 6


def test_batch_major_is_the_transpose_of_the_first_two_axes_laid_out_row_major():
    x = np.random.default_rng(3).standard_normal((C, N, H, W))
    y = batch_major(x)
    np.testing.assert_array_equal(y, np.transpose(x, (1, 0, 2, 3)))
    assert y.flags["C_CONTIGUOUS"]  # the layers after it, and the gradients coming back, share this layout


@pytest.mark.parametrize("shape", [(2, 1, 5, 7, 3, 2), (3, 4, 6, 5, 2, 3)])  # per sample, one product
@pytest.mark.parametrize("name", list(ENGINES))
def test_biased_forward_keeps_nothing_by_default_and_what_the_kernel_gradient_reuses(name, shape):
    x, kernels, dy = operands("float64", *shape)
    d = kernels.shape[0]
    bias = np.arange(1.0, d + 1.0)
    engine = get_engine(name)
    y, kept = engine.biased_forward(x, kernels, bias)
    assert kept is None
    assert_close(y, conv_forward(x, kernels, np.zeros(d)) + bias[:, None, None], "float64")
    _, kept = engine.biased_forward(x, kernels, bias, keep=True)
    dk_ref = conv_backward(x, kernels, dy)[0]
    if name == "signal-direct":  # direct correlations keep nothing
        assert kept is None
        return
    # what was kept is what the kernel gradient computes from: a stand-in changes the result
    assert_close(engine.backward(x, kernels, dy, 1, 2 * kept)[0], 2 * dk_ref, "float64")
