"""Convolutional layer (xpcnn/layers/conv.py): the worked example, the derivation's loops, finite
differences, errors.

At the edges: defaults and the config that rebuilds the layer, Glorot bounds, padding modes,
strides, each bad argument named, the engine each mode chose (forgotten by ``to``), and a training
step that lowers its input to columns once."""

import numpy as np
import pytest

import xpcnn as xc
from xpcnn.testing.derivation import conv_backward, conv_forward

ENGINES = ["signal", "gemm", "signal-direct"]


def make_conv(input_shape, k, depth, engine, dtype="float64", **kw):
    return xc.Convolutional(input_shape, k, depth, engine=engine, dtype=dtype, seed=0, **kw)


@pytest.mark.parametrize("engine", ENGINES)
def test_worked_example_of_the_derivation(engine):
    x = np.array([[1, 6, 2], [5, 3, 1], [7, 0, 4]], dtype=np.float64)
    k = np.array([[1, 2], [-1, 0]], dtype=np.float64)
    conv = make_conv((1, 3, 3), 2, 1, engine)
    conv.params["kernels"] = k[None, None]
    conv.params["biases"] = np.zeros((1, 2, 2))
    np.testing.assert_array_equal(conv.forward(x[None, None])[0, 0], [[8, 7], [4, 5]])


@pytest.mark.parametrize("engine", ENGINES)
def test_backend_correlate_reproduces_worked_example(engine):
    from xpcnn import backend
    x = np.array([[1, 6, 2], [5, 3, 1], [7, 0, 4]], dtype=np.float64)
    k = np.array([[1, 2], [-1, 0]], dtype=np.float64)
    for method in ("direct", "fft"):
        np.testing.assert_allclose(backend.correlate(x, k, "valid", method), [[8, 7], [4, 5]], atol=1e-12)


CASES = [  # (N, C, H, W, depth, k)
    (1, 1, 3, 3, 1, 2),
    (3, 2, 7, 5, 4, 3),
    (2, 3, 6, 9, 2, 1),
    (4, 1, 8, 6, 3, 4),
    (2, 2, 5, 5, 5, 5),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("n,c,h,w,depth,k", CASES)
def test_forward_and_gradients_match_per_sample_loops(engine, n, c, h, w, depth, k):
    rng = np.random.default_rng(n * 100 + c * 10 + k)
    conv = make_conv((c, h, w), k, depth, engine)
    x = rng.standard_normal((n, c, h, w))
    y = conv.forward(x)
    np.testing.assert_allclose(y, conv_forward(x, conv.kernels, conv.biases), rtol=1e-10, atol=1e-10)
    dy = rng.standard_normal(y.shape)
    dx = conv.backward(dy)
    dk, db, dx_ref = conv_backward(x, conv.kernels, dy)
    np.testing.assert_allclose(conv.grads["kernels"], dk, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(conv.grads["biases"], db, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("engine", ENGINES)
def test_tied_biases_and_padding_match_loops_on_padded_input(engine):
    rng = np.random.default_rng(1)
    conv = make_conv((2, 6, 7), 3, 3, engine, padding="same", bias="tied")
    x = rng.standard_normal((2, 2, 6, 7))
    y = conv.forward(x)
    assert y.shape == (2, 3, 6, 7)
    x_pad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    np.testing.assert_allclose(y, conv_forward(x_pad, conv.kernels, conv.biases), atol=1e-10)
    dy = rng.standard_normal(y.shape)
    dx = conv.backward(dy)
    dk, db, dx_ref = conv_backward(x_pad, conv.kernels, dy)
    np.testing.assert_allclose(conv.grads["kernels"], dk, atol=1e-10)
    np.testing.assert_allclose(conv.grads["biases"], db.sum(axis=(1, 2)), atol=1e-10)
    np.testing.assert_allclose(dx, dx_ref[:, :, 1:-1, 1:-1], atol=1e-10)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("bias,padding", [("untied", 0), ("tied", 1), ("untied", 2)])
def test_gradients_match_finite_differences(engine, bias, padding):
    rng = np.random.default_rng(2)
    conv = make_conv((2, 5, 4), 3, 2, engine, bias=bias, padding=padding)
    assert xc.gradcheck(conv, rng.standard_normal((2, 2, 5, 4)), tolerance=1e-6, max_checks=1000) <= 1e-6


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("stride,padding,bias", [(2, 0, "untied"), (2, 1, "tied"), (3, 2, "tied")])
def test_strided_gradients_match_finite_differences_on_numpy_and_array_api_strict(device, engine, stride, padding,
                                                                                  bias):
    if device.name.startswith("cuda"):
        pytest.skip("float64 finite differences run on the host namespaces "
                    "(tests/backend/test_gpu.py compares CuPy with NumPy)")
    rng = np.random.default_rng(7)
    conv = make_conv((2, 7, 6), 3, 2, engine, bias=bias, padding=padding, stride=stride).to(device)
    x = xc.to_device(rng.standard_normal((2, 2, 7, 6)), device)
    assert xc.gradcheck(conv, x, tolerance=1e-6, max_checks=1000) <= 1e-6  # every element, on the device


def test_engines_agree_with_each_other_in_float32():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 3, 12, 10)).astype(np.float32)
    a, b = make_conv((3, 12, 10), 3, 4, "signal", "float32"), make_conv((3, 12, 10), 3, 4, "gemm", "float32")
    ya, yb = a.forward(x), b.forward(x)
    assert ya.dtype == yb.dtype == np.float32
    np.testing.assert_allclose(ya, yb, rtol=1e-4, atol=1e-5)
    dy = rng.standard_normal(ya.shape).astype(np.float32)
    dxa, dxb = a.backward(dy), b.backward(dy)
    assert dxa.dtype == dxb.dtype == np.float32
    np.testing.assert_allclose(dxa, dxb, rtol=1e-4, atol=1e-5)
    for name in ("kernels", "biases"):
        assert a.grads[name].dtype == np.float32
        np.testing.assert_allclose(a.grads[name], b.grads[name], rtol=1e-4, atol=1e-4)


def test_one_call_backward_applies_the_gradient_step():
    rng = np.random.default_rng(4)
    conv = make_conv((1, 5, 5), 2, 2, "gemm")
    x = rng.standard_normal((3, 1, 5, 5))
    before = {k: v.copy() for k, v in conv.params.items()}
    dy = rng.standard_normal(conv.forward(x).shape)
    conv.backward(dy, 0.1)
    for name in before:
        np.testing.assert_allclose(conv.params[name], before[name] - 0.1 * conv.grads[name])


def test_first_layer_can_skip_the_input_gradient():
    conv = make_conv((1, 5, 5), 2, 2, "gemm")
    conv.compute_input_gradient = False
    y = conv.forward(np.ones((2, 1, 5, 5)))
    assert conv.backward(np.ones(y.shape)) is None
    assert set(conv.grads) == {"kernels", "biases"}


def test_wrong_input_shape_names_layer_expected_and_received():
    conv = make_conv((1, 28, 28), 3, 5, "gemm")
    expected = r"Convolutional\(input_shape=\[1, 28, 28\].*\(N, 1, 28, 28\).*\(4, 28, 28\)"
    with pytest.raises(xc.ShapeError, match=expected):
        conv.forward(np.zeros((4, 28, 28)))


def test_float64_input_to_float32_layer_is_refused_not_promoted():
    conv = xc.Convolutional((1, 5, 5), 3, 2, seed=0)
    with pytest.raises(xc.XpcnnDtypeError, match="float64.*float32"):
        conv.forward(np.zeros((1, 1, 5, 5)))


def test_kernel_larger_than_input_is_rejected():
    with pytest.raises(xc.ShapeError, match="kernel_size 4"):
        xc.Convolutional((1, 3, 3), 4, 1)


def test_unknown_engine_is_rejected():
    with pytest.raises(ValueError, match="unknown convolution engine 'fast'"):
        xc.Convolutional((1, 3, 3), 2, 1, engine="fast")


def test_repr_names_the_engine_auto_chose():
    conv = make_conv((1, 5, 5), 3, 2, "auto")
    assert repr(conv).endswith("engine='auto')") and conv.chosen_engine is None
    conv.forward(np.ones((1, 1, 5, 5)))
    assert conv.chosen_engine == "gemm"  # the suite pins XPCNN_ENGINE=gemm
    assert repr(conv).endswith("engine='auto' -> 'gemm')")


def test_bias_none_has_only_kernels_and_equals_a_tied_layer_with_zero_biases():
    x = np.random.default_rng(9).standard_normal((2, 2, 5, 5))
    plain = xc.Convolutional((2, 5, 5), 3, 3, padding=1, bias="none", dtype="float64", seed=0)
    tied = xc.Convolutional((2, 5, 5), 3, 3, padding=1, bias="tied", dtype="float64", seed=0)
    assert list(plain.params) == ["kernels"] and plain.config()["bias"] == "none"
    np.testing.assert_array_equal(plain.forward(x), tied.forward(x))
    dy = np.ones((2, 3, 5, 5))
    np.testing.assert_array_equal(plain.backward(dy), tied.backward(dy))
    assert list(plain.grads) == ["kernels"]
    with pytest.raises(xc.ConfigError, match="bias"):
        xc.Convolutional((2, 5, 5), 3, 3, bias="no")


# -- at the edges ----------------------------------------------------------------------------------

def test_defaults_and_the_config_that_rebuilds_the_layer():
    conv = xc.Convolutional((2, 6, 5), 3, 4)
    assert conv.config() == {"input_shape": [2, 6, 5], "kernel_size": 3, "depth": 4, "padding": 0, "stride": 1,
                             "bias": "untied", "engine": "auto"}
    assert conv.kernels.dtype == np.float32 and conv.biases.shape == (4, 4, 3)
    assert conv.output_shape((2, 6, 5)) == (4, 4, 3)
    again = xc.Convolutional(**{**conv.config(), "stride": 2, "padding": "same", "bias": "tied"})
    assert (again.stride, again.padding, again.bias, again.biases.shape) == (2, 1, "tied", (4,))
    assert again.output_shape((2, 6, 5)) == (4, 3, 3)  # ⌊(6 + 2 - 3) / 2⌋ + 1, ⌊(5 + 2 - 3) / 2⌋ + 1


def test_kernels_are_glorot_uniform_over_the_receptive_field():
    conv = xc.Convolutional((3, 8, 8), 5, 7, seed=1)  # fan_in = 3·25, fan_out = 7·25
    bound = np.sqrt(6 / (3 * 25 + 7 * 25))
    assert np.abs(conv.kernels).max() <= bound and np.abs(conv.kernels).max() > 0.95 * bound
    np.testing.assert_array_equal(conv.biases, 0.0)


@pytest.mark.parametrize("k, padding, rows",
                         [(1, "same", 0), (3, "same", 1), (5, "same", 2), (3, "valid", 0), (3, 1, 1)])
def test_padding_same_keeps_the_size_and_valid_is_none(k, padding, rows):
    conv = xc.Convolutional((1, 6, 7), k, 1, padding=padding, seed=0)
    assert conv.padding == rows
    shape = conv.forward(np.zeros((1, 1, 6, 7), np.float32)).shape
    assert shape == ((1, 1, 6, 7) if padding == "same" else (1, 1, 6 + 2 * rows - k + 1, 7 + 2 * rows - k + 1))


def test_a_kernel_as_large_as_the_padded_input_gives_one_output():
    assert xc.Convolutional((1, 3, 4), 3, 2).output_shape((1, 3, 4)) == (2, 1, 2)
    assert xc.Convolutional((1, 2, 2), 4, 1, padding=1).output_shape((1, 2, 2)) == (1, 1, 1)
    assert xc.Convolutional((1, 1, 1), 1, 1).output_shape((1, 1, 1)) == (1, 1, 1)
    with pytest.raises(xc.ShapeError, match=r"Convolutional: kernel_size 5 is larger than the padded input \(1, 2, 9"):
        xc.Convolutional((1, 2, 9), 5, 1, padding=1)


@pytest.mark.parametrize("kwargs, match", [
    ({"kernel_size": 0}, r"Convolutional: kernel_size must be an integer >= 1, got 0"),
    ({"depth": 0}, r"Convolutional: depth must be an integer >= 1, got 0"),
    ({"padding": -1}, r"Convolutional: padding must be an integer >= 0, got -1"),
    ({"padding": "full"}, r"Convolutional: padding must be one of .*'valid'.*'same'.*got 'full'"),
    ({"padding": "same", "kernel_size": 4}, r"Convolutional: padding='same' needs an odd kernel_size, got 4"),
    ({"padding": "same", "kernel_size": 2}, r"padding='same' needs an odd kernel_size, got 2"),
    ({"stride": 0}, r"Convolutional: stride must be an integer >= 1, got 0"),
    ({"bias": "shared"}, r"Convolutional: bias must be one of .*'untied'.*'tied'.*got 'shared'"),
    ({"input_shape": (1, 5)}, r"Convolutional: input_shape \(C, H, W\) must be 3 integers >= 1, got \(1, 5\)"),
])
def test_each_bad_argument_is_named(kwargs, match):
    args = {"input_shape": (1, 5, 5), "kernel_size": 3, "depth": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        xc.Convolutional(**args)


def test_chosen_engines_are_recorded_per_mode_and_forgotten_by_to():
    conv = make_conv((1, 5, 5), 3, 2, "auto")
    x = np.ones((1, 1, 5, 5))
    conv.forward(x, training=False)
    assert conv.chosen_engines == {"infer": "gemm"}
    conv.forward(x)
    assert conv.chosen_engines == {"infer": "gemm", "train": "gemm"} and conv.chosen_engine == "gemm"
    assert conv.to("cpu") is conv and conv.chosen_engine is None and conv.chosen_engines == {}
    assert repr(conv).endswith("engine='auto')")


@pytest.mark.parametrize("bias", ["untied", "tied", "none"])  # tied biases go through engine.biased_forward
def test_a_training_step_lowers_the_input_to_columns_once(monkeypatch, bias):
    """The layer hands the columns its forward pass kept to backward: im2col runs once per step.

    The count is the promise here (xpcnn/engines/base.py: what forward keeps, backward reuses): a
    step that lowers its input twice computes the same values with twice the copies."""
    import xpcnn.engines.gemm as gemm

    calls = []
    real = gemm.im2col
    monkeypatch.setattr(gemm, "im2col", lambda *a, **kw: calls.append(a[0].shape) or real(*a, **kw))
    conv = make_conv((2, 6, 6), 3, 4, "gemm", bias=bias)
    y = conv.forward(np.ones((3, 2, 6, 6)))
    conv.backward(np.ones(y.shape))
    assert calls == [(3, 2, 6, 6)]


def test_parameters_are_drawn_on_the_device_asked_for(device1):
    conv = xc.Convolutional((1, 5, 5), 3, 2, device=device1, seed=0)
    assert all(xc.backend.Device.of(p) == device1 for p in conv.params.values())
    np.testing.assert_array_equal(xc.to_numpy(conv.kernels), xc.Convolutional((1, 5, 5), 3, 2, seed=0).kernels)


def auto_conv(**kw):
    return xc.Convolutional((2, 9, 8), 3, 4, seed=0, dtype="float64", **kw)


def batch(n=3):
    return np.random.default_rng(0).standard_normal((n, 2, 9, 8))


def test_unknown_engine_argument_is_rejected_when_the_layer_is_built():
    with pytest.raises(xc.ConfigError, match="unknown convolution engine 'fast'"):
        auto_conv(engine="fast")


def test_moving_a_layer_forgets_its_chosen_engine():
    layer = auto_conv()
    layer.forward(batch())
    assert layer.chosen_engine == "gemm" and layer.chosen_engines == {"train": "gemm"}
    layer.to("cpu", "float32")
    assert layer.chosen_engine is None and layer.chosen_engines == {}


@pytest.mark.parametrize("name", ["auto", *ENGINES])
@pytest.mark.parametrize("stride", [1, 2])
def test_inference_forward_keeps_nothing_and_backward_then_raises(measured, name, stride):
    """Whichever engine ran it (``auto`` really measuring here): nothing kept, and backward says why."""
    layer = auto_conv(engine=name, stride=stride, padding=1)
    x = batch()
    y = layer.forward(x)
    assert layer._saved["reusable"] is not None or layer.chosen_engine == "signal-direct"
    np.testing.assert_allclose(layer.forward(x, training=False), y, atol=1e-12)
    assert layer._saved is None
    with pytest.raises(xc.StateError, match="training=True"):
        layer.backward(np.ones_like(y))


@pytest.mark.parametrize("stride", [0, -1, 1.5, True, "2"])
def test_a_bad_stride_is_a_config_error_naming_it(stride):
    with pytest.raises(xc.ConfigError, match=r"Convolutional: stride must be an integer >= 1, got "):
        auto_conv(stride=stride)


def test_stride_output_size_is_floor_of_padded_extent_over_stride_plus_one():
    for h, k, p, s in [(9, 3, 0, 2), (10, 3, 1, 3), (28, 5, 2, 2), (7, 7, 0, 4)]:
        layer = xc.Convolutional((1, h, h + 1), k, 1, padding=p, stride=s)
        assert layer.out_hw == ((h + 2 * p - k) // s + 1, (h + 1 + 2 * p - k) // s + 1)
