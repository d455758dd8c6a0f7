"""Convolutional layer: defaults, bounds, padding modes, named errors and engine bookkeeping (mutation tests).

Written to kill mutmut's survivors in xpcnn/layers/conv.py; each compares with an oracle (a formula, the
derivation's loops, a counted call). Kept apart from test_conv.py so both can change independently.
"""
import numpy as np
import pytest

import xpcnn as xc
from test_conv import make_conv


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
    """The layer hands the columns its forward pass kept to backward: im2col runs once per step."""
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
