"""xpcnn.tools.gradcheck (xpcnn/tools/gradcheck.py): every layer's gradients against central differences, in
float64, on NumPy and on array_api_strict; and the check itself fails on a wrong gradient."""

import numpy as np
import pytest

import xpcnn as xc
from xpcnn import backend
xs = pytest.importorskip("array_api_strict")

DEVICES = {
    "numpy": backend.CPU,
    "strict-cpu": backend.Device.of(xs.zeros(1, device=xs.Device("CPU_DEVICE"))),
    "strict-device1": backend.Device.of(xs.zeros(1, device=xs.Device("device1"))),
}

IMG = (3, 2, 6, 6)


def every_layer():
    """``(id, layer factory, input shape)`` for every layer class xpcnn has."""
    return [
        ("conv-untied", lambda: xc.Convolutional((2, 6, 6), 3, 3, seed=0), IMG),
        ("conv-tied-same", lambda: xc.Convolutional((2, 6, 6), 3, 3, padding=1, bias="tied", seed=0), IMG),
        ("conv-stride2", lambda: xc.Convolutional((2, 6, 6), 3, 2, padding=1, stride=2, bias="tied", seed=0), IMG),
        ("conv-no-bias", lambda: xc.Convolutional((2, 6, 6), 3, 3, padding=1, bias="none", seed=0), IMG),
        ("conv-signal", lambda: xc.Convolutional((2, 6, 6), 3, 2, engine="signal", seed=0), IMG),
        ("dense", lambda: xc.Dense(8, 5, seed=0), (4, 8)),
        ("maxpool", lambda: xc.MaxPool2D(2), (3, 2, 7, 6)),
        ("avgpool", lambda: xc.AvgPool2D(2), (3, 2, 7, 6)),
        ("avgpool3", lambda: xc.AvgPool2D(3), (2, 2, 6, 7)),
        ("global-avgpool", lambda: xc.GlobalAveragePool2D(), IMG),
        ("batchnorm2d", lambda: xc.BatchNorm2D(2), IMG),
        ("batchnorm1d", lambda: xc.BatchNorm1D(8), (5, 8)),
        ("dropout", lambda: xc.Dropout(0.4, seed=3), IMG),
        ("reshape", lambda: xc.Reshape((2, 6, 6), (72,)), IMG),
        ("flatten", lambda: xc.Flatten(), IMG),
        ("sigmoid", lambda: xc.Sigmoid(), (4, 8)),
        ("tanh", lambda: xc.Tanh(), (4, 8)),
        ("relu", lambda: xc.ReLU(), (4, 8)),
        ("softmax", lambda: xc.Softmax(), (4, 8)),
    ]


def nonzero_batchnorm(layer):
    """γ ≠ 1 and β ≠ 0, so a gradient that ignored them would show."""
    if isinstance(layer, (xc.BatchNorm1D, xc.BatchNorm2D)):
        c = layer.num_channels
        layer.params = {"gamma": np.linspace(0.5, 1.5, c, dtype=np.float32),
                        "beta": np.linspace(-0.3, 0.3, c, dtype=np.float32)}
    return layer


@pytest.mark.parametrize("where", list(DEVICES))
@pytest.mark.parametrize("name, make, shape", every_layer(), ids=[c[0] for c in every_layer()])
def test_every_layer_passes_gradcheck_in_float64(name, make, shape, where):
    dev = DEVICES[where]
    layer = nonzero_batchnorm(make()).to(dev)
    x = xc.to_device(np.random.default_rng(1).standard_normal(shape), dev)
    assert xc.gradcheck(layer, x) < 1e-4


@pytest.mark.parametrize("where", list(DEVICES))
def test_a_whole_model_with_batchnorm_and_dropout_passes_gradcheck(where):
    dev = DEVICES[where]
    model = xc.Sequential([
        xc.Convolutional((2, 6, 6), 3, 3, padding=1, bias="tied"), xc.BatchNorm2D(3), xc.ReLU(), xc.AvgPool2D(2),
        xc.Dropout(0.3), xc.Convolutional((3, 3, 3), 2, 4, bias="tied"), xc.BatchNorm2D(4), xc.Tanh(),
        xc.GlobalAveragePool2D(), xc.BatchNorm1D(4), xc.Dense(4, 3), xc.Softmax(),
    ], seed=0, device=dev)
    x = xc.to_device(np.random.default_rng(2).standard_normal((5, 2, 6, 6)), dev)
    before = {k: xc.to_numpy(v) for k, v in model.layers[1].buffers.items()}
    assert xc.gradcheck(model, x) < 1e-4
    for k, v in model.layers[1].buffers.items():  # the model itself is left as it was
        np.testing.assert_array_equal(xc.to_numpy(v), before[k])
    assert model.layers[0].params["kernels"].dtype == dev.xp.float32


class WrongBatchNorm(xc.BatchNorm2D):
    """The backward without the mean terms: ∂E/∂X = γ s G (a classic mistake)."""

    def backward(self, output_gradient, learning_rate=None):
        super().backward(output_gradient)
        saved = self.saved_for_backward()
        return output_gradient * saved["inv_std"] * self._per_channel(self.params["gamma"])


def test_a_wrong_gradient_raises_naming_the_array_and_the_element():
    x = np.random.default_rng(3).standard_normal(IMG)
    with pytest.raises(xc.GradientCheckError, match=r"input\[.*analytic .* numeric .* relative error") as info:
        xc.gradcheck(WrongBatchNorm(2), x)
    assert isinstance(info.value, xc.XpcnnError)
    assert "gamma" not in str(info.value)  # γ's and β's gradients are right and are not reported


def test_a_gradient_off_by_one_percent_fails_and_the_tolerance_is_what_decides():
    class Scaled(xc.Dense):
        def backward(self, output_gradient, learning_rate=None):
            dx = super().backward(output_gradient)
            self.grads["weights"] = self.grads["weights"] * 1.01
            return dx

    x = np.random.default_rng(4).standard_normal((4, 8))
    with pytest.raises(xc.GradientCheckError, match=r"weights"):
        xc.gradcheck(Scaled(8, 3, seed=0), x)
    assert 0.005 < xc.gradcheck(Scaled(8, 3, seed=0), x, tolerance=0.05) < 0.05


def test_large_arrays_are_checked_at_a_seeded_sample_and_bad_arguments_are_config_errors():
    x = np.random.default_rng(5).standard_normal((2, 300))
    assert xc.gradcheck(xc.Dense(300, 2, seed=0), x, max_checks=10) < 1e-4
    with pytest.raises(xc.ConfigError, match="step"):
        xc.gradcheck(xc.ReLU(), x, step=0)
    with pytest.raises(xc.ConfigTypeError, match="layer or Sequential"):
        xc.gradcheck("relu", x)
