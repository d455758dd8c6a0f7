"""Layers of your own are first-class: the public protocol, registration for checkpoints, export
errors that name every layer they cannot convert, and output shapes inferred or refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
from array_api_compat import array_namespace

import xpcnn as xc
from xpcnn.io.checkpoint import load_checkpoint, save_checkpoint
from xpcnn.layers import registry


class Scale(xc.ParameterLayer):
    """``Y = s ⊙ X`` with one trained scale per feature; ``∂E/∂s = Σ_n ∂E/∂Y ⊙ X``, ``∂E/∂X = s ⊙ ∂E/∂Y``."""

    def __init__(self, features: int, *, dtype="float32", device="cpu", seed=None):
        super().__init__(dtype, device, seed)
        self.features = features
        self.input_shape = (features,)
        self.reset_parameters(seed)

    def reset_parameters(self, rng=None):
        rng = xc.backend.new_rng(rng)
        self.params = {"s": self.constant((self.features,), 1.0) + self.glorot_uniform(
            rng, (self.features,), self.features, self.features)}

    def config(self):
        return {"features": self.features}

    def forward(self, x, training=True):
        self.check_input(x)
        self.save_for_backward(training, x=x)
        return x * self.params["s"]

    def backward(self, output_gradient, learning_rate=None):
        x = self.saved_for_backward()["x"]
        self.check_gradient(output_gradient, tuple(x.shape))
        xp = array_namespace(x)
        self.grads = {"s": xp.sum(output_gradient * x, axis=0)}
        return self.descend(output_gradient * self.params["s"], learning_rate)


class Halve(xc.Layer):
    """Keeps every other feature, ``(N, F) -> (N, ceil(F / 2))``, and defines no ``output_shape``."""

    def forward(self, x, training=True):
        self.check_input(x)
        self.save_for_backward(training, shape=tuple(x.shape))
        return x[:, ::2]

    def backward(self, output_gradient, learning_rate=None):
        shape = self.saved_for_backward()["shape"]
        xp = array_namespace(output_gradient)
        grad = xp.zeros(shape, dtype=output_gradient.dtype)
        grad[:, ::2] = output_gradient
        return grad


class NoForward(xc.Layer):
    def forward(self, x, training=True):
        raise RuntimeError("not written yet")


@pytest.fixture
def registered():
    before = dict(registry.LAYERS)
    yield
    registry.LAYERS.clear()
    registry.LAYERS.update(before)


def _model():
    return xc.Sequential([xc.Dense(6, 4), Scale(4), xc.Sigmoid()], seed=0)


def test_a_registered_layer_saves_and_loads_by_name_with_its_parameters(tmp_path, registered):
    assert xc.register_layer(Scale) is Scale
    model = _model()
    x = np.random.default_rng(1).random((5, 6), dtype=np.float32)
    model.fit(x, (x[:, :4] > 0.5).astype(np.float32), epochs=2, batch_size=5, learning_rate=0.5)
    save_checkpoint(tmp_path / "m.npz", model)
    back = load_checkpoint(tmp_path / "m.npz")
    assert type(back.layers[1]) is Scale and back.layers[1].features == 4
    np.testing.assert_array_equal(back.layers[1].params["s"], model.layers[1].params["s"])
    np.testing.assert_array_equal(back.predict(x), model.predict(x))


def test_an_unregistered_layer_is_refused_naming_register_layer(tmp_path):
    with pytest.raises(xc.CheckpointError, match=r"layer 1 .*Scale.* not registered.*@xpcnn.register_layer"):
        save_checkpoint(tmp_path / "m.npz", _model())
    assert not (tmp_path / "m.npz").exists()


def test_loading_an_unknown_class_says_to_import_and_register_it(tmp_path, registered):
    xc.register_layer(Scale)
    save_checkpoint(tmp_path / "m.npz", _model())
    del registry.LAYERS["Scale"]
    with pytest.raises(xc.CheckpointError, match=r"layer 1: unknown layer class 'Scale'.*@xpcnn.register_layer"):
        load_checkpoint(tmp_path / "m.npz")


def test_register_layer_names_conflicts_and_accepts_a_rerun(registered):
    xc.register_layer(name="tests.Scale")(Scale)
    assert registry.registered_name(Scale(2)) == "tests.Scale"
    xc.register_layer(Scale, name="tests.Scale")  # the same class again: a re-run cell
    with pytest.raises(xc.ConfigError, match=r"'Dense' already belongs to xpcnn.layers.dense.Dense"):
        xc.register_layer(Scale, name="Dense")
    with pytest.raises(xc.ConfigTypeError, match="expected a subclass of xpcnn.Layer"):
        xc.register_layer(dict)


def test_a_config_that_is_not_json_is_one_line_naming_the_layer(tmp_path, registered):
    class Odd(Halve):
        def config(self):
            return {"where": object()}

    xc.register_layer(Odd)
    model = xc.Sequential([xc.Dense(6, 4), Odd()], seed=0)
    with pytest.raises(xc.CheckpointError, match=r"layer 1 Odd: config\(\) must return JSON values"):
        save_checkpoint(tmp_path / "m.npz", model)


def test_output_shape_is_inferred_by_a_forward_on_one_zero_sample():
    model = xc.Sequential([xc.Dense(6, 4), Halve(), xc.Dense(2, 1), xc.Sigmoid()], seed=0)
    assert model.output_shape == (1,)
    assert Halve().output_shape((7,)) == (4,)
    table = model.summary_text()
    assert "Halve" in table and "(N, 2)" in table.split("Halve", 1)[1].splitlines()[0], table
    x = np.random.default_rng(0).random((3, 6), dtype=np.float32)
    assert model.predict(x[:0]).shape == (0, 1)


def test_a_shape_that_cannot_be_inferred_is_one_line_saying_what_to_define():
    with pytest.raises(xc.ShapeError, match=r"NoForward\(\).*raised RuntimeError: not written yet; define "
                                            r"output_shape\(input_shape\), or set preserves_shape = True"):
        xc.Sequential([xc.Dense(6, 4), NoForward()], seed=0)


def test_shape_preserving_layers_say_so_without_running():
    for layer in (xc.ReLU(), xc.Sigmoid(), xc.Softmax(), xc.Tanh(), xc.Dropout(0.5)):
        assert layer.preserves_shape and layer.output_shape((3, 5)) == (3, 5)


def test_export_names_every_layer_it_cannot_convert(tmp_path):
    pytest.importorskip("onnx")
    from xpcnn.io.export import to_onnx, to_safetensors

    model = xc.Sequential([xc.Dense(6, 4), Scale(4), Halve(), xc.Sigmoid()], seed=0)
    with pytest.raises(xc.ExportError, match=r"to_onnx: cannot convert layer 1 Scale\(features=4\); layer 2 Halve\(\)"):
        to_onnx(model, tmp_path / "m.onnx")
    pytest.importorskip("safetensors")
    with pytest.raises(xc.ExportError, match=r"cannot convert layer 1 Scale\(features=4\); layer 2 Halve\(\)"):
        to_safetensors(model, tmp_path / "m.safetensors")
