"""What the base class gives an engine (xpcnn/engines/base.py): the padding, dilation and output-size
helpers every engine uses, against NumPy and loops; and the defaults of a new engine that writes
only ``forward`` and ``kernel_gradient``.

The base class is the documented way to add an engine: it supplies ``biased_forward``,
``input_gradient`` and ``backward``. The built-in engines override most of them or always pass
every argument, so these tests use a minimal subclass and compare with the derivation's loops.
"""

import numpy as np
import pytest

import xpcnn as xc
from test_engines import WHERE, assert_close, on, operands
from xpcnn.engines import ConvEngine, GemmEngine
from xpcnn.testing.derivation import conv_backward, conv_forward, strided_conv_backward


class Minimal(ConvEngine):
    """Only the two methods a subclass must write (borrowed from gemm)."""

    name = "minimal"

    def forward(self, x, kernels, stride=1, keep=False):
        return GemmEngine().forward(x, kernels, stride, keep)

    def kernel_gradient(self, x, output_gradient, kernel_hw, stride=1, kept=None):
        return GemmEngine().kernel_gradient(x, output_gradient, kernel_hw, stride, kept)


def test_biased_forward_keeps_nothing_by_default_and_hands_keep_to_forward():
    x, kernels, _ = operands("float64", 2, 3, 6, 5, 2, 3)
    bias = np.array([1.5, -2.0])
    expected = conv_forward(x, kernels, np.zeros(2)) + bias[:, None, None]
    engine = Minimal()
    y, kept = engine.biased_forward(x, kernels, bias)
    assert_close(y, expected, "float64")
    assert kept is None  # forward was asked to keep nothing
    y, kept = engine.biased_forward(x, kernels, bias, 1, True)
    assert_close(y, expected, "float64")
    assert kept is not None  # keep was handed on to forward: gemm's columns came back


def test_backward_defaults_are_stride_1_and_both_gradients():
    x, kernels, dy = operands("float64", 2, 3, 6, 5, 2, 3)
    dk_ref, _, dx_ref = conv_backward(x, kernels, dy)
    engine = Minimal()
    dk, dx = engine.backward(x, kernels, dy)
    assert_close(dk, dk_ref, "float64")
    assert dx is not None
    assert_close(dx, dx_ref, "float64")
    assert_close(engine.input_gradient(dy, kernels, (6, 5)), dx_ref, "float64")  # its stride is 1 by default


def test_backward_hands_what_forward_kept_to_the_kernel_gradient():
    x, kernels, dy = operands("float64", 2, 3, 9, 8, 2, 3, 2)
    engine = Minimal()
    _, kept = engine.forward(x, kernels, 2, True)
    dk, dx = engine.backward(x, kernels, dy, 2, kept)
    dk_ref, dx_ref = strided_conv_backward(x, kernels, dy, 2)
    assert_close(dk, dk_ref, "float64")
    assert_close(dx, dx_ref, "float64")
    # the columns kept are what the kernel gradient computes from: a stand-in changes the result
    assert_close(engine.backward(x, kernels, dy, 2, 2 * kept, False)[0], 2 * dk_ref, "float64")


@pytest.mark.parametrize("pad_h, pad_w", [(0, None), (1, None), (2, 1), ((1, 0), (0, 0)), ((1, 1), (0, 0)),
                                          ((1, 1), (1, 0)), ((0, 2), (3, 1)), ((0, 0), (0, 0))])
def test_pad2d_is_numpys_zero_pad_of_the_last_two_axes(pad_h, pad_w):
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5) + 1
    rows = (pad_h, pad_h) if isinstance(pad_h, int) else pad_h
    cols = rows if pad_w is None else ((pad_w, pad_w) if isinstance(pad_w, int) else pad_w)
    for where in WHERE:
        padded = xc.engines.pad2d(on(where, x), pad_h, pad_w)
        assert padded.dtype == on(where, x).dtype
        assert_close(padded, np.pad(x, ((0, 0), (0, 0), rows, cols)), "float32", on(where, x))


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_dilate2d_puts_stride_minus_one_zeros_between_neighbours(stride):
    x = np.arange(1, 2 * 3 * 3 * 4 + 1, dtype=np.float32).reshape(2, 3, 3, 4)
    expected = np.zeros((2, 3, stride * 2 + 1, stride * 3 + 1), dtype=np.float32)
    for u in range(3):
        for v in range(4):
            expected[:, :, stride * u, stride * v] = x[:, :, u, v]
    for where in WHERE:
        assert_close(xc.engines.dilate2d(on(where, x), stride), expected, "float32", on(where, x))


def test_output_size_counts_the_valid_positions_of_a_kernel_every_stride():
    count = lambda size, k, s: len(range(0, size - k + 1, s))  # noqa: E731 (the window starts)
    for size, k, s in [(28, 3, 1), (28, 5, 2), (7, 3, 3), (9, 3, 2), (3, 3, 1), (4, 1, 4)]:
        assert xc.engines.output_size(size, k, s) == count(size, k, s)
    assert xc.engines.output_size(28, 3) == 26  # stride 1 by default
