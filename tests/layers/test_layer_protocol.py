"""The layer protocol: a training forward keeps what backward needs, an inference forward nothing."""

import numpy as np
import pytest

import xpcnn as xc
from xpcnn.errors import StateError, XpcnnError


def layers_and_inputs():
    rng = np.random.default_rng(0)
    img = rng.standard_normal((3, 2, 6, 6)).astype(np.float32)
    vec = rng.standard_normal((3, 8)).astype(np.float32)
    return [
        (xc.Convolutional((2, 6, 6), 3, 4, seed=0), img),
        (xc.Convolutional((2, 6, 6), 3, 4, padding=1, bias="tied", engine="signal", seed=0), img),
        (xc.Dense(8, 5, seed=0), vec),
        (xc.MaxPool2D(2), img),
        (xc.AvgPool2D(2), img),
        (xc.GlobalAveragePool2D(), img),
        (xc.Convolutional((2, 6, 6), 3, 4, bias="none", seed=0), img),
        (xc.Reshape((2, 6, 6), (72,)), img),
        (xc.Flatten(), img),
        (xc.Sigmoid(), vec),
        (xc.Tanh(), vec),
        (xc.ReLU(), vec),
        (xc.Softmax(), vec),
    ]


def _layer_name(value):
    return type(value).__name__ if isinstance(value, xc.Layer) else ""


@pytest.mark.parametrize("layer, x", layers_and_inputs(), ids=_layer_name)
def test_inference_forward_keeps_nothing_and_backward_then_raises(layer, x):
    y = layer.forward(x, training=True)
    assert layer._saved  # a training forward keeps what backward needs
    y_inference = layer.forward(x, training=False)
    np.testing.assert_array_equal(y_inference, y)  # same values either way
    assert layer._saved is None
    with pytest.raises(StateError, match="training=True"):
        layer.backward(np.ones_like(y))
    assert issubclass(StateError, XpcnnError)


@pytest.mark.parametrize("layer, x", [
    (xc.BatchNorm2D(2), np.random.default_rng(1).standard_normal((3, 2, 4, 4)).astype(np.float32)),
    (xc.BatchNorm1D(8), np.random.default_rng(2).standard_normal((3, 8)).astype(np.float32)),
    (xc.Dropout(0.5, seed=0), np.ones((3, 8), np.float32)),
], ids=["BatchNorm2D", "BatchNorm1D", "Dropout"])
def test_layers_that_differ_in_inference_keep_nothing_there_either(layer, x):
    y = layer.forward(x, training=True)
    assert layer._saved
    assert not np.allclose(layer.forward(x, training=False), y)  # running statistics / no mask
    assert layer._saved is None
    with pytest.raises(StateError, match="training=True"):
        layer.backward(np.ones_like(y))


def test_predict_and_evaluate_leave_no_activation_behind():
    layers = [xc.Convolutional((1, 8, 8), 3, 2), xc.Sigmoid(), xc.Flatten(), xc.Dense(72, 2), xc.Sigmoid()]
    model = xc.Sequential(layers, seed=0)
    x = np.random.default_rng(1).random((5, 1, 8, 8), dtype=np.float32)
    y = np.eye(2, dtype=np.float32)[[0, 1, 0, 1, 1]]
    model.fit(x, y, epochs=1, batch_size=5)
    model.predict(x)
    assert all(layer._saved is None for layer in model.layers)
    model.fit(x, y, epochs=1, batch_size=5)
    model.evaluate(x, y)
    assert all(layer._saved is None for layer in model.layers)


def test_to_forgets_what_a_training_forward_kept():
    layer = xc.Dense(8, 5, seed=0)
    layer.forward(np.ones((2, 8), np.float32))
    layer.to("cpu", "float64")
    assert layer._saved is None


def every_layer():
    return [layer for layer, _ in layers_and_inputs()] + [xc.BatchNorm2D(2), xc.BatchNorm1D(8), xc.Dropout(0.5, seed=0)]


@pytest.mark.parametrize("layer", every_layer(), ids=_layer_name)
def test_a_nested_list_instead_of_an_array_is_a_shape_error_naming_the_layer(layer):
    with pytest.raises(xc.ShapeError, match=r"expected a batch, an array of shape \(N, \.\.\.\), got list"):
        layer.forward([[1.0, 2.0], [3.0, 4.0]])


def test_min_training_batch_is_one_but_two_values_per_channel_for_batchnorm():
    assert all(layer.min_training_batch((2, 6, 6)) == 1 for layer, _ in layers_and_inputs())
    assert xc.BatchNorm1D(8).min_training_batch((8,)) == 2
    assert xc.BatchNorm2D(2).min_training_batch((2, 1, 1)) == 2 and xc.BatchNorm2D(2).min_training_batch((2, 1, 2)) == 1
