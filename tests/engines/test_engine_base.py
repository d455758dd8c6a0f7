"""ConvEngine's own defaults: a new engine that writes only forward and kernel_gradient (mutation tests).

The base class is the documented way to add an engine: it supplies ``biased_forward``, ``input_gradient``
and ``backward``. The built-in engines override most of them or always pass every argument, so these
tests use a minimal subclass and compare with the derivation's loops. Written for mutmut's survivors
in xpcnn/engines/base.py.
"""
import numpy as np

from xpcnn.testing.derivation import conv_backward, conv_forward, strided_conv_backward
from test_engines import assert_close, operands
from xpcnn.engines import ConvEngine, GemmEngine, get_engine


class Minimal(ConvEngine):
    """Only the two methods a subclass must write (borrowed from gemm), and a log of their arguments."""

    name = "minimal"

    def __init__(self):
        self.calls = []

    def forward(self, x, kernels, stride=1, keep=False):
        self.calls.append(("forward", stride, keep))
        return GemmEngine().forward(x, kernels, stride, keep)

    def kernel_gradient(self, x, output_gradient, kernel_hw, stride=1, kept=None):
        self.calls.append(("kernel_gradient", stride, kept))
        return GemmEngine().kernel_gradient(x, output_gradient, kernel_hw, stride, kept)


def test_biased_forward_keeps_nothing_by_default_and_hands_keep_to_forward():
    x, kernels, _ = operands("float64", 2, 3, 6, 5, 2, 3)
    bias = np.array([1.5, -2.0])
    expected = conv_forward(x, kernels, np.zeros(2)) + bias[:, None, None]
    engine = Minimal()
    y, kept = engine.biased_forward(x, kernels, bias)
    assert_close(y, expected, "float64")
    assert kept is None and engine.calls == [("forward", 1, False)]
    y, kept = engine.biased_forward(x, kernels, bias, 1, True)
    assert_close(y, expected, "float64")
    assert kept is not None and engine.calls[-1] == ("forward", 1, True)


def test_backward_defaults_are_stride_1_and_both_gradients():
    x, kernels, dy = operands("float64", 2, 3, 6, 5, 2, 3)
    dk_ref, _, dx_ref = conv_backward(x, kernels, dy)
    engine = Minimal()
    dk, dx = engine.backward(x, kernels, dy)
    assert_close(dk, dk_ref, "float64")
    assert dx is not None
    assert_close(dx, dx_ref, "float64")
    assert engine.calls[0] == ("kernel_gradient", 1, None)
    assert_close(engine.input_gradient(dy, kernels, (6, 5)), dx_ref, "float64")  # its stride is 1 by default


def test_backward_hands_what_forward_kept_to_the_kernel_gradient():
    x, kernels, dy = operands("float64", 2, 3, 9, 8, 2, 3, 2)
    engine = Minimal()
    _, kept = engine.forward(x, kernels, 2, True)
    dk, dx = engine.backward(x, kernels, dy, 2, kept)
    assert engine.calls[1][2] is kept
    dk_ref, dx_ref = strided_conv_backward(x, kernels, dy, 2)
    assert_close(dk, dk_ref, "float64")
    assert_close(dx, dx_ref, "float64")
    # the columns kept are what the kernel gradient computes from: a stand-in changes the result
    assert_close(engine.backward(x, kernels, dy, 2, 2 * kept, False)[0], 2 * dk_ref, "float64")


def test_signal_biased_forward_returns_the_spectrum_its_kernel_gradient_reuses():
    """signal inherits ``biased_forward``: with ``keep`` it returns forward's input spectrum."""
    x, kernels, dy = operands("float64", 2, 4, 6, 6, 2, 3)
    engine = get_engine("signal")
    bias = np.array([0.5, -1.0])
    _, x_hat = engine.biased_forward(x, kernels, bias, keep=True)
    assert x_hat is not None
    doubled = engine.kernel_gradient(x, dy, (3, 3), 1, 2 * x_hat)
    np.testing.assert_allclose(doubled, 2 * conv_backward(x, kernels, dy)[0], atol=1e-10)
    assert engine.biased_forward(x, kernels, bias)[1] is None
