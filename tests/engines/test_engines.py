"""Convolution engines (xpcnn/engines/__init__.py and every engine in it): the three products against
the derivation's loops, strided convolutions against loops and PyTorch, the defaults every engine
shares, what ``biased_forward`` keeps, and no state between calls.

Each engine product is checked on its own here, on NumPy and on array_api_strict (CPU and device1);
each engine's own routes live in its own file (test_gemm.py, test_signal.py, test_base.py for
what the base class gives a new engine), ``auto`` in test_auto.py, and the layer-level comparisons
in tests/layers/test_conv.py.
"""

import numpy as np
import pytest

import xpcnn as xc
from xpcnn import backend
from xpcnn.engines import ENGINES, get_engine
from xpcnn.errors import ConfigError
from xpcnn.testing.derivation import conv_backward, conv_forward, strided_conv_backward, strided_conv_forward

# (N, C, H, W, D, k): non-square, k = 1, k = H, C = 1 and C > 1; for gemm, C·Ho·Wo <= D·H·W takes
# col2im, the others the padded full convolution
SHAPES = [(2, 1, 5, 7, 3, 2), (3, 4, 6, 5, 2, 3), (2, 6, 7, 8, 2, 3), (2, 4, 5, 5, 1, 2), (2, 2, 3, 3, 2, 3),
          (2, 3, 4, 6, 2, 1), (1, 1, 6, 6, 2, 6)]
WHERE = [None, "CPU_DEVICE", "device1"]  # NumPy, then array_api_strict's devices
WHERE_IDS = ["numpy", "strict-cpu", "strict-device1"]
# float32 through FFTs rounds each output at about 1e-7 of the largest term it sums
TOLERANCE = {"float64": 1e-10, "float32": 2e-5}


def on(device_name, a):
    if device_name is None:
        return a
    xs = pytest.importorskip("array_api_strict")
    return xc.to_device(a, backend.Device.of(xs.empty(0, device=xs.Device(device_name))))


def assert_close(ours, ref, dtype, where_from=None):
    if where_from is not None:
        assert backend.Device.of(ours) == backend.Device.of(where_from)
    ours = xc.to_numpy(ours)
    assert ours.dtype == np.dtype(dtype)
    scale = max(1.0, float(np.max(np.abs(ref))))
    np.testing.assert_allclose(ours, ref, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype] * scale)


def operands(dtype, n, c, h, w, d, k, stride=1):
    rng = np.random.default_rng(n + c + h + w + d + k + 7 * stride)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    kernels = rng.standard_normal((d, c, k, k)).astype(dtype)
    dy = rng.standard_normal((n, d, (h - k) // stride + 1, (w - k) // stride + 1)).astype(dtype)
    return x, kernels, dy


@pytest.mark.parametrize("where", WHERE, ids=WHERE_IDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("n,c,h,w,d,k", SHAPES)
@pytest.mark.parametrize("name", list(ENGINES))
def test_engine_products_match_the_derivation_loops(name, where, dtype, n, c, h, w, d, k):
    x, kernels, dy = operands(dtype, n, c, h, w, d, k)
    engine = get_engine(name)
    xa, ka, dya = on(where, x), on(where, kernels), on(where, dy)
    y, kept = engine.forward(xa, ka, keep=True)
    dk_ref, _, dx_ref = conv_backward(x, kernels, dy)
    assert_close(y, conv_forward(x, kernels, np.zeros(d)), dtype, xa)
    # backward with and without what forward kept, and each product on its own
    for grads in (engine.backward(xa, ka, dya, 1, kept), engine.backward(xa, ka, dya, 1, None)):
        assert_close(grads[0], dk_ref, dtype, xa)
        assert_close(grads[1], dx_ref, dtype, xa)
    assert_close(engine.kernel_gradient(xa, dya, (k, k)), dk_ref, dtype, xa)
    assert_close(engine.input_gradient(dya, ka, (h, w)), dx_ref, dtype, xa)


STRIDED = [  # (N, C, H, W, D, k, s): H - k divisible by s or not, k = 1, k > s, k < s
    (2, 3, 7, 9, 4, 3, 2), (1, 1, 5, 5, 1, 5, 3), (2, 2, 6, 4, 3, 1, 2), (2, 3, 10, 11, 2, 3, 3),
    (1, 2, 9, 8, 2, 4, 2), (2, 1, 8, 8, 2, 2, 4),
]


@pytest.mark.parametrize("where", WHERE, ids=WHERE_IDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("n,c,h,w,d,k,s", STRIDED)
@pytest.mark.parametrize("name", list(ENGINES))
def test_strided_products_match_loops_over_output_positions(name, where, dtype, n, c, h, w, d, k, s):
    x, kernels, dy = operands(dtype, n, c, h, w, d, k, s)
    engine = get_engine(name)
    assert engine.supports(s)
    xa, ka, dya = on(where, x), on(where, kernels), on(where, dy)
    y, kept = engine.forward(xa, ka, s, keep=True)
    assert tuple(y.shape) == (n, d, (h - k) // s + 1, (w - k) // s + 1)
    assert_close(y, strided_conv_forward(x, kernels, s), dtype, xa)
    dk, dx = engine.backward(xa, ka, dya, s, kept)
    dk_ref, dx_ref = strided_conv_backward(x, kernels, dy, s)
    assert_close(dk, dk_ref, dtype, xa)
    assert_close(dx, dx_ref, dtype, xa)


@pytest.mark.parametrize("n,c,h,w,d,k,s", STRIDED + [(2, 3, 8, 7, 2, 3, 1)])
@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("name", list(ENGINES))
def test_strided_padded_layer_matches_pytorch_conv2d(name, padding, n, c, h, w, d, k, s):
    torch = pytest.importorskip("torch")
    conv = xc.Convolutional((c, h, w), k, d, padding=padding, stride=s, bias="tied", engine=name,
                            dtype="float64", seed=0)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, c, h, w))
    tx = torch.tensor(x, requires_grad=True)
    tk = torch.tensor(np.asarray(conv.kernels), requires_grad=True)
    tb = torch.tensor(np.asarray(conv.biases) + rng.standard_normal(d), requires_grad=True)
    conv.params["biases"] = tb.detach().numpy().copy()
    ty = torch.nn.functional.conv2d(tx, tk, tb, stride=s, padding=padding)
    y = conv.forward(x)
    assert y.shape == tuple(ty.shape) == (n, d, *conv.out_hw)
    np.testing.assert_allclose(y, ty.detach().numpy(), atol=1e-10)
    dy = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(dy))
    dx = conv.backward(dy)
    np.testing.assert_allclose(dx, tx.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(conv.grads["kernels"], tk.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(conv.grads["biases"], tb.grad.numpy(), atol=1e-10)



def test_engines_hold_no_state_between_calls():
    x, kernels, _ = operands("float64", 2, 3, 6, 6, 2, 3)
    for engine in ENGINES.values():
        before = dict(vars(engine))
        engine.forward(x, kernels, keep=True)
        assert vars(engine) == before, f"{engine.name} changed its attributes in forward"



def test_forward_returns_a_fresh_array_the_layer_may_add_biases_to():
    x, kernels = np.ones((1, 1, 4, 4)), np.ones((2, 1, 2, 2))
    for engine in ENGINES.values():
        y, _ = engine.forward(x, kernels)
        y += 1.0
        np.testing.assert_allclose(engine.forward(x, kernels)[0], 4.0)



def test_unknown_engine_names_list_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown convolution engine 'fast'.*'auto', 'gemm', 'signal'"):
        get_engine("fast")


@pytest.mark.parametrize("where", WHERE, ids=WHERE_IDS)
@pytest.mark.parametrize("n,c,h,w,d,k", [(2, 1, 5, 7, 3, 2), (3, 4, 6, 5, 2, 3)])  # per-sample, one product
@pytest.mark.parametrize("name", list(ENGINES))
def test_biased_forward_adds_one_bias_per_channel_and_backward_ignores_it(name, where, n, c, h, w, d, k):
    x, kernels, dy = operands("float64", n, c, h, w, d, k)
    bias = np.arange(1.0, d + 1.0)
    engine = get_engine(name)
    xa, ka, ba, dya = on(where, x), on(where, kernels), on(where, bias), on(where, dy)
    y, kept = engine.biased_forward(xa, ka, ba, keep=True)
    assert_close(y, conv_forward(x, kernels, np.zeros(d)) + bias[:, None, None], "float64", xa)
    dk_ref, _, dx_ref = conv_backward(x, kernels, dy)
    dk, dx = engine.backward(xa, ka, dya, 1, kept)  # gemm's kept columns carry the biases' row of ones
    assert_close(dk, dk_ref, "float64", xa)
    assert_close(dx, dx_ref, "float64", xa)


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


@pytest.mark.parametrize("name", list(ENGINES))
def test_a_first_layers_backward_computes_no_input_gradient(name, monkeypatch):
    """``dx is None`` alone would pass an engine that computed ∂E/∂X and dropped it: the work not done
    is the rule (a first layer's input gradient is never used), so the call is watched."""
    x, kernels, dy = operands("float64", 2, 2, 6, 5, 3, 3)
    engine = get_engine(name)
    asked = []
    real = type(engine).input_gradient
    monkeypatch.setattr(type(engine), "input_gradient", lambda self, *a: asked.append(a) or real(self, *a))
    dk, dx = engine.backward(x, kernels, dy, 1, engine.forward(x, kernels, keep=True)[1], False)
    assert dx is None
    assert_close(dk, conv_backward(x, kernels, dy)[0], "float64")
    assert asked == []


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
