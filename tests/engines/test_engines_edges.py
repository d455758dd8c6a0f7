"""Engines: padding and dilation helpers, defaults, routes, and each engine keeping to its method (mutation tests).

Written to kill mutmut's survivors in xpcnn/engines/, against NumPy, the derivation's loops and counted calls.
"""
import numpy as np
import pytest

import xpcnn as xc
from xpcnn.testing.derivation import conv_backward, conv_forward, strided_conv_backward
from test_engines import WHERE, assert_close, on, operands
from xpcnn import backend
from xpcnn.engines import ENGINES, GemmEngine, get_engine
from xpcnn.engines.gemm import col2im, im2col
from xpcnn.errors import ConfigError


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


@pytest.mark.parametrize("name", list(ENGINES))
def test_defaults_are_stride_1_nothing_kept_and_both_gradients(name):
    x, kernels, dy = operands("float64", 2, 3, 6, 5, 2, 3)
    engine = get_engine(name)
    y, kept = engine.forward(x, kernels)
    assert kept is None
    assert_close(y, conv_forward(x, kernels, np.zeros(2)), "float64")
    dk, dx = engine.backward(x, kernels, dy)
    dk_ref, _, dx_ref = conv_backward(x, kernels, dy)
    assert_close(dk, dk_ref, "float64")
    assert_close(dx, dx_ref, "float64")
    # <im2col(x), cols> = <x, col2im(cols)> with the default stride 1 on both sides
    cols = np.random.default_rng(8).standard_normal(im2col(x, 3, 3).shape)
    assert np.isclose(np.sum(im2col(x, 3, 3) * cols), np.sum(x * col2im(cols, x.shape, 3, 3)))


@pytest.mark.parametrize("n,c,h,w,d,k,s", [(2, 4, 6, 6, 1, 3, 1), (2, 1, 6, 6, 4, 3, 1), (2, 2, 5, 5, 2, 1, 1),
                                           (1, 3, 4, 4, 2, 1, 1), (2, 8, 7, 7, 1, 3, 2)])
def test_gemm_input_gradient_takes_the_route_that_moves_less_data(monkeypatch, n, c, h, w, d, k, s):
    """col2im when C·Ho·Wo <= D·H·W (or strided), else the padded full convolution: same values."""
    import xpcnn.engines.gemm as gemm

    x, kernels, dy = operands("float64", n, c, h, w, d, k, s)
    ho, wo = dy.shape[-2:]
    routes = []
    real = gemm.col2im
    monkeypatch.setattr(gemm, "col2im", lambda *a, **kw: routes.append("col2im") or real(*a, **kw))
    dx = GemmEngine().input_gradient(dy, kernels, (h, w), s)
    assert routes == (["col2im"] if s > 1 or c * ho * wo <= d * h * w else [])
    assert_close(dx, strided_conv_backward(x, kernels, dy, s)[1], "float64")


@pytest.mark.parametrize("name", ["signal", "signal-direct"])
def test_signal_results_are_copies_that_free_the_transform_buffers(name):
    """``_crop`` copies: a view of the padded FFT output would keep the whole buffer alive."""
    x, kernels, dy = operands("float64", 2, 2, 7, 6, 2, 3)
    engine = get_engine(name)
    y, kept = engine.forward(x, kernels, 1, keep=True)
    dk, dx = engine.backward(x, kernels, dy, 1, kept)
    for a in (y, dk, dx, engine.kernel_gradient(x, dy, (3, 3)), engine.input_gradient(dy, kernels, (7, 6))):
        assert a.base is None and a.flags.c_contiguous


@pytest.mark.parametrize("name", list(ENGINES))
def test_strided_gradients_without_what_forward_kept(name):
    """A backward with ``kept=None`` (or the kernel gradient alone) redoes the strided lowering."""
    n, c, h, w, d, k, s = 2, 3, 10, 11, 2, 3, 3
    x, kernels, dy = operands("float64", n, c, h, w, d, k, s)
    engine = get_engine(name)
    dk_ref, dx_ref = strided_conv_backward(x, kernels, dy, s)
    assert_close(engine.kernel_gradient(x, dy, (k, k), s), dk_ref, "float64")
    dk, dx = engine.backward(x, kernels, dy, s, None)
    assert_close(dk, dk_ref, "float64")
    assert_close(dx, dx_ref, "float64")


def test_a_new_signal_engine_names_its_method_and_refuses_others():
    """``ENGINES`` is built at import; these build engines anew, as a user or a subclass would."""
    from xpcnn.engines import SignalEngine

    x, kernels, dy = operands("float64", 2, 2, 6, 5, 2, 3)
    dk_ref, _, dx_ref = conv_backward(x, kernels, dy)
    fresh = [(SignalEngine(), "fft", "signal"), (SignalEngine("direct"), "direct", "signal-direct")]
    for engine, method, name in fresh:
        assert (engine.method, engine.name, repr(engine)) == (method, name, f"<{name} engine>")
        assert_close(engine.forward(x, kernels)[0], conv_forward(x, kernels, np.zeros(2)), "float64")
        assert_close(engine.input_gradient(dy, kernels, (6, 5)), dx_ref, "float64")
    with pytest.raises(ConfigError, match=r"^SignalEngine: method must be 'fft' or 'direct', got 'FFT'$"):
        SignalEngine("FFT")


def test_each_signal_engine_computes_the_gradients_by_its_own_method(monkeypatch):
    """signal-direct: direct correlations (through its forward); signal: per-frequency products."""
    from xpcnn.engines import SignalEngine

    x, kernels, dy = operands("float64", 2, 2, 6, 5, 3, 3)
    methods, forwards = [], []
    real_correlate, real_forward = backend.correlate, SignalEngine.forward
    monkeypatch.setattr(backend, "correlate", lambda *a: methods.append(a[3]) or real_correlate(*a))
    monkeypatch.setattr(SignalEngine, "forward",
                        lambda self, *a, **k: forwards.append(self.name) or real_forward(self, *a, **k))
    dx_ref = conv_backward(x, kernels, dy)[2]
    assert_close(get_engine("signal-direct").input_gradient(dy, kernels, (6, 5)), dx_ref, "float64")
    assert forwards == ["signal-direct"] and methods == ["direct", "direct"]  # one correlation per input channel
    assert_close(get_engine("signal").input_gradient(dy, kernels, (6, 5)), dx_ref, "float64")
    assert forwards == ["signal-direct"] and methods == ["direct", "direct"]
    methods.clear()
    dk_ref = conv_backward(x, kernels, dy)[0]
    assert_close(get_engine("signal").kernel_gradient(x, dy, (3, 3)), dk_ref, "float64")
    assert methods == []
    assert_close(get_engine("signal-direct").kernel_gradient(x, dy, (3, 3)), dk_ref, "float64")
    assert methods == ["direct"] * 3  # one correlation per output channel
    methods.clear()
    get_engine("signal-direct").backward(x, kernels, dy)
    assert methods == ["direct"] * 5 and forwards[-1] == "signal-direct"  # 3 for ∂E/∂K, 2 for ∂E/∂X
    methods.clear()
    get_engine("signal").backward(x, kernels, dy)
    assert methods == []


@pytest.mark.parametrize("name", list(ENGINES))
def test_a_first_layers_backward_computes_no_input_gradient(name, monkeypatch):
    x, kernels, dy = operands("float64", 2, 2, 6, 5, 3, 3)
    engine = get_engine(name)
    asked = []
    real = type(engine).input_gradient
    monkeypatch.setattr(type(engine), "input_gradient", lambda self, *a: asked.append(a) or real(self, *a))
    dk, dx = engine.backward(x, kernels, dy, 1, engine.forward(x, kernels, keep=True)[1], False)
    assert dx is None
    assert_close(dk, conv_backward(x, kernels, dy)[0], "float64")
    assert asked == []


def test_signal_kernel_gradient_reuses_the_spectrum_forward_kept():
    x, kernels, dy = operands("float64", 2, 4, 6, 6, 2, 3)
    engine = get_engine("signal")
    _, x_hat = engine.forward(x, kernels, keep=True)
    # the kept spectrum is what the kernel gradient computes from: a stand-in changes the result
    doubled = engine.kernel_gradient(x, dy, (3, 3), 1, 2 * x_hat)
    np.testing.assert_allclose(doubled, 2 * conv_backward(x, kernels, dy)[0], atol=1e-10)
    np.testing.assert_allclose(engine.backward(x, kernels, dy, 1, 2 * x_hat)[0], doubled, atol=1e-10)


@pytest.mark.parametrize("name", list(ENGINES))
def test_non_square_kernels_match_the_derivation_loops(name):
    rng = np.random.default_rng(9)
    x, kernels = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((2, 3, 2, 4))
    dy = rng.standard_normal((2, 2, 6, 3))
    engine = get_engine(name)
    dk_ref, _, dx_ref = conv_backward(x, kernels, dy)
    assert_close(engine.forward(x, kernels)[0], conv_forward(x, kernels, np.zeros(2)), "float64")
    assert_close(engine.kernel_gradient(x, dy, (2, 4)), dk_ref, "float64")
    assert_close(engine.input_gradient(dy, kernels, (7, 6)), dx_ref, "float64")
