"""The signal engines (xpcnn/engines/signal.py): ``signal`` (per-frequency products of FFTs) and
``signal-direct`` (direct correlations), each computing by its own method; the FFT sizes; the
spectrum forward keeps for the kernel gradient; results that are copies, not views of the
transform buffers."""

import numpy as np
import pytest

from test_engines import assert_close, operands
from xpcnn import backend
from xpcnn.engines import get_engine
from xpcnn.engines.signal import fast_length
from xpcnn.errors import ConfigError
from xpcnn.testing.derivation import conv_backward, conv_forward


@pytest.mark.parametrize("n", [1, 2, 7, 16, 17, 28, 30, 97, 121, 250])
def test_fast_length_is_the_smallest_5_smooth_size_not_below_n(n):
    size = fast_length(n)
    assert size >= n
    m = size
    for p in (2, 3, 5):
        while m % p == 0:
            m //= p
    assert m == 1
    assert all(not _smooth(t) for t in range(n, size))


def _smooth(t):
    for p in (2, 3, 5):
        while t % p == 0:
            t //= p
    return t == 1


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
    """signal-direct: direct correlations; signal: per-frequency products of FFTs, no correlation."""
    x, kernels, dy = operands("float64", 2, 2, 6, 5, 3, 3)
    methods = []
    real_correlate = backend.correlate
    monkeypatch.setattr(backend, "correlate", lambda *a: methods.append(a[3]) or real_correlate(*a))
    dk_ref, _, dx_ref = conv_backward(x, kernels, dy)
    direct, fft = get_engine("signal-direct"), get_engine("signal")
    assert_close(direct.input_gradient(dy, kernels, (6, 5)), dx_ref, "float64")
    assert_close(direct.kernel_gradient(x, dy, (3, 3)), dk_ref, "float64")
    direct.backward(x, kernels, dy)
    assert methods and set(methods) == {"direct"}
    methods.clear()
    assert_close(fft.input_gradient(dy, kernels, (6, 5)), dx_ref, "float64")
    assert_close(fft.kernel_gradient(x, dy, (3, 3)), dk_ref, "float64")
    fft.backward(x, kernels, dy)
    assert methods == []


def test_signal_kernel_gradient_reuses_the_spectrum_forward_kept():
    x, kernels, dy = operands("float64", 2, 4, 6, 6, 2, 3)
    engine = get_engine("signal")
    _, x_hat = engine.forward(x, kernels, keep=True)
    # the kept spectrum is what the kernel gradient computes from: a stand-in changes the result
    doubled = engine.kernel_gradient(x, dy, (3, 3), 1, 2 * x_hat)
    np.testing.assert_allclose(doubled, 2 * conv_backward(x, kernels, dy)[0], atol=1e-10)
    np.testing.assert_allclose(engine.backward(x, kernels, dy, 1, 2 * x_hat)[0], doubled, atol=1e-10)


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


@pytest.mark.parametrize("name", ["signal", "signal-direct"])
def test_signal_results_are_copies_that_free_the_transform_buffers(name):
    """``_crop`` copies: a view of the padded FFT output would keep the whole buffer alive."""
    x, kernels, dy = operands("float64", 2, 2, 7, 6, 2, 3)
    engine = get_engine(name)
    y, kept = engine.forward(x, kernels, 1, keep=True)
    dk, dx = engine.backward(x, kernels, dy, 1, kept)
    for a in (y, dk, dx, engine.kernel_gradient(x, dy, (3, 3)), engine.input_gradient(dy, kernels, (7, 6))):
        assert a.base is None and a.flags.c_contiguous
