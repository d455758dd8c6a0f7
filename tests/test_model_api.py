"""Sequential's contract (xpcnn/model.py): the loss it knows, one draw of the parameters, one SGD rule
(the one rule for classes from outputs: tests/train/test_metrics.py)."""

import numpy as np
import pytest

import xpcnn as xc
from xpcnn import backend
from xpcnn.io.checkpoint import load_checkpoint, save_checkpoint


def convnet(seed=0, **kwargs):
    return xc.Sequential([xc.Convolutional((1, 6, 6), 3, 2, padding="same", bias="tied"), xc.ReLU(), xc.Flatten(),
                          xc.Dense(72, 3), xc.Softmax()], seed=seed, **kwargs)


def data(n=12):
    rng = np.random.default_rng(0)
    return rng.random((n, 1, 6, 6), dtype=np.float32), np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]


def test_the_model_keeps_the_loss_fit_was_given_and_evaluate_uses_it(tmp_path):
    x, y = data()
    model = convnet()
    model.fit(x, y, loss="categorical_cross_entropy", batch_size=4)
    assert model.loss == "categorical_cross_entropy"
    assert model.evaluate(x, y) == model.evaluate(x, y, loss="categorical_cross_entropy")
    assert model.evaluate(x, y) != model.evaluate(x, y, loss="binary_cross_entropy")
    save_checkpoint(tmp_path / "m.npz", model)
    loaded = load_checkpoint(tmp_path / "m.npz")
    assert loaded.loss == "categorical_cross_entropy" and loaded.evaluate(x, y) == model.evaluate(x, y)
    model.fit(x, y, batch_size=4)  # no loss: the model's own, not binary cross-entropy
    assert model.loss == "categorical_cross_entropy"


def test_compile_sets_the_loss_and_the_optimizer_and_evaluate_needs_one():
    x, y = data()
    with pytest.raises(xc.ConfigError, match="evaluate: the model has no loss yet"):
        convnet().evaluate(x, y)
    adam = xc.Adam(0.01)
    model = convnet().compile("categorical_cross_entropy", adam)
    assert model.loss == "categorical_cross_entropy" and model.optimizer is adam
    model.fit(x, y, batch_size=4)
    assert model.optimizer is adam and adam.iterations == 3
    with pytest.raises(xc.ConfigTypeError, match="optimizer must be an xpcnn Optimizer"):
        convnet().compile("mse", optimizer=3)
    assert isinstance(convnet().compile("mse", optimizer="adam").optimizer, xc.Adam)  # Keras's spelling


def test_fit_without_any_loss_takes_the_one_the_output_layer_calls_for_or_asks_in_one_line():
    """A Softmax network once trained silently on binary cross-entropy: the loss follows the output."""
    x, y = data()
    model = convnet()  # ends in a Softmax
    model.fit(x, y, batch_size=4)
    assert model.loss == "categorical_cross_entropy"
    sigmoid = xc.Sequential([xc.Flatten(), xc.Dense(36, 3), xc.Sigmoid()], seed=0)
    sigmoid.fit(x, y, batch_size=4)
    assert sigmoid.loss == "binary_cross_entropy"
    bare = xc.Sequential([xc.Flatten(), xc.Dense(36, 3)], seed=0)
    with pytest.raises(xc.ConfigError) as info:
        bare.fit(x, y, batch_size=4)
    message = str(info.value)
    assert "\n" not in message and message.startswith("fit: the model has no loss and its output layer Dense")
    assert "neither Softmax nor Sigmoid" in message and "pass loss=" in message and bare.loss is None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_seeded_model_draws_its_parameters_once_in_the_final_dtype(dtype):
    alone = xc.Dense(5, 3, dtype=dtype, seed=0)
    model = xc.Sequential([xc.Dense(5, 3)], seed=0, dtype=dtype)
    np.testing.assert_array_equal(model.layers[0].params["weights"], alone.params["weights"])
    assert model.layers[0].params["weights"].dtype == np.dtype(dtype) and model.dtype == dtype
    if dtype == "float64":  # not float32 values cast up
        w = model.layers[0].params["weights"]
        assert not np.array_equal(w, w.astype(np.float32).astype(np.float64))


def test_a_seeded_model_draws_on_its_final_device_with_the_same_values(device1):
    model = convnet(device=device1, dtype="float64")
    ref = convnet(dtype="float64")
    assert model.device == device1
    for a, b in zip(model.layers, ref.layers):
        for key in a.params:
            assert backend.Device.of(a.params[key]) == device1
            np.testing.assert_array_equal(backend.to_numpy(a.params[key]), b.params[key])


def test_an_unseeded_model_moves_and_casts_the_layers_it_was_given(device1):
    dense = xc.Dense(4, 2, seed=3)
    expected = dense.params["weights"].astype(np.float64)
    model = xc.Sequential([dense], device=device1, dtype="float64")
    np.testing.assert_array_equal(backend.to_numpy(model.layers[0].params["weights"]), expected)
    assert model.device == device1 and model.dtype == "float64"



def test_the_layers_one_call_step_is_sgds_rule(monkeypatch):
    rng = np.random.default_rng(0)
    dense = xc.Dense(3, 2, dtype="float64", seed=0)
    x, dy = rng.random((4, 3)), rng.random((4, 2))
    before = dense.params["weights"].copy()
    dense.forward(x)
    dense.backward(dy, learning_rate=0.5)
    np.testing.assert_allclose(dense.params["weights"], before - 0.5 * dy.T @ x)
    monkeypatch.setattr(xc.SGD, "update", lambda self, key, param, grad: param)  # break the one rule
    dense.forward(x)
    dense.backward(dy, learning_rate=0.5)
    np.testing.assert_allclose(dense.params["weights"], before - 0.5 * dy.T @ x)  # unchanged: it went through SGD


def test_an_input_on_another_device_is_a_device_mismatch_error(device1):
    dense = xc.Dense(3, 2, device=device1)
    with pytest.raises(xc.DeviceMismatchError, match="input lives on cpu"):
        dense.forward(np.zeros((1, 3), np.float32))


def test_fit_learning_rate_on_a_model_with_an_optimizer_becomes_its_rate_and_keeps_its_state():
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 2)), rng.random((40, 2))
    model = xc.Sequential([xc.Dense(2, 2)], seed=0, dtype="float64")
    model.fit(x, y, epochs=1, batch_size=10, loss="mse", optimizer=xc.SGD(0.05, momentum=0.9))
    optimizer, velocity = model.optimizer, dict(model.optimizer.slots)
    assert optimizer.iterations == 4 and velocity
    model.fit(x, y, epochs=1, batch_size=10, learning_rate=0.01)  # a Keras or PyTorch user's "train on at 0.01"
    assert model.optimizer is optimizer and optimizer.learning_rate == 0.01 and optimizer.iterations == 8
    assert model.history["learning_rate"] == [0.05, 0.01]
    model.fit(x, y, epochs=1, batch_size=10)  # no rate given: the optimizer's own
    assert optimizer.learning_rate == 0.01
    fresh = xc.Sequential([xc.Dense(2, 2)], seed=0, dtype="float64")
    fresh.fit(x, y, epochs=1, batch_size=10, loss="mse")
    assert repr(fresh.optimizer) == "SGD(learning_rate=0.1, momentum=0.0)"


def test_fit_refuses_an_optimizer_and_another_learning_rate_in_one_line_and_changes_nothing():
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 2)), rng.random((40, 2))
    model = xc.Sequential([xc.Dense(2, 2)], seed=0, dtype="float64")
    model.fit(x, y, epochs=1, batch_size=10, loss="mse", learning_rate=0.05)
    expected = (r"^fit: got optimizer=Adam\(learning_rate=0\.001.*and learning_rate=0\.01; "
                r"the rate belongs to the optimizer: pass Adam\(learning_rate=0\.01, \.\.\.\)")
    with pytest.raises(xc.ConfigError, match=expected):
        model.fit(x, y, optimizer=xc.Adam(0.001), learning_rate=0.01)
    with pytest.raises(xc.ConfigError, match="learning_rate"):
        model.fit(x, y, learning_rate=-1.0)
    with pytest.raises(xc.ConfigError, match="min_lr 0.2 is above the base learning rate 0.1"):
        model.fit(x, y, learning_rate=0.1, schedule=xc.Cosine(min_lr=0.2))  # refused: the old rate stays
    assert model.optimizer.learning_rate == 0.05 and model.epoch == 1


# -- what mutmut found untested in xpcnn/model.py (docs/mutation.md) --------------------------------------------

def test_to_refuses_a_dtype_it_does_not_train_in_naming_itself():
    with pytest.raises(xc.ConfigError) as info:
        convnet().to(dtype="float16")
    assert str(info.value) == "Sequential.to: dtype must be one of 'float32', 'float64', got 'float16'"
    assert convnet().to(dtype="float64").dtype == "float64"


def test_a_cast_alone_keeps_the_models_device_and_so_does_a_model_built_from_placed_layers(device1):
    model = convnet().to(device1)
    assert model.to(dtype="float64").device == device1
    assert all(backend.Device.of(p) == device1 for layer in model.layers for p in layer.params.values())
    dense = xc.Dense(3, 2, seed=0).to(device1)
    cast = xc.Sequential([dense, xc.Softmax()], dtype="float64")  # no seed: the layer keeps its weights and device
    assert cast.device == device1 and backend.Device.of(dense.weights) == device1 and cast.dtype == "float64"


def test_save_passes_extra_to_the_checkpoint_and_without_the_writer_names_the_import(tmp_path, monkeypatch):
    from xpcnn import model as model_module
    from xpcnn.io.checkpoint import read_metadata

    convnet().save(tmp_path / "m.npz", extra={"note": "hello"})
    assert read_metadata(tmp_path / "m.npz")["extra"] == {"note": "hello"}
    monkeypatch.setattr(model_module, "CHECKPOINT_WRITER", [None])
    with pytest.raises(xc.ConfigError) as info:
        convnet().save(tmp_path / "n.npz")
    assert str(info.value) == "model.save needs xpcnn.io; import xpcnn (or xpcnn.io) first"


def test_repr_lists_one_layer_per_line_with_the_device_and_dtype():
    model = xc.Sequential([xc.Dense(3, 2), xc.Softmax()], seed=0)
    assert repr(model) == ("Sequential([\n    Dense(input_size=3, output_size=2),\n    Softmax()\n], device='cpu', "
                           "dtype='float32')")


def test_summary_hands_its_table_for_the_given_input_shape_to_print_fn_or_print(capsys):
    model = xc.Sequential([xc.Flatten(), xc.Dense(12, 3), xc.Softmax()], seed=0)  # takes any input shape
    tables = []
    model.summary((3, 2, 2), print_fn=tables.append)
    assert tables == [model.summary_text((3, 2, 2))] and "(N, 12)" in tables[0]
    model.summary((3, 2, 2), print_fn=None)
    assert capsys.readouterr().out == tables[0] + "\n"
    with pytest.raises(xc.ConfigTypeError) as info:
        model.summary((3, 2, 2), print_fn="stdout")
    assert str(info.value) == "summary: print_fn must be a function taking the table, or None, got 'stdout'"


def test_a_model_that_takes_any_shape_remembers_one_samples_shape_from_its_first_batch_only():
    free = xc.Sequential([xc.Flatten(), xc.Dense(12, 3)], seed=0)
    assert free.first_input_shape is None
    free.predict(np.zeros((4, 3, 2, 2), np.float32))
    assert free.first_input_shape == (3, 2, 2)
    free.predict(np.zeros((2, 12), np.float32))  # a later batch of another shape changes nothing
    assert free.first_input_shape == (3, 2, 2)
    fixed = convnet()  # its first layer fixes the shape: nothing to remember
    fixed.predict(data(2)[0])
    assert fixed.first_input_shape is None


def test_layers_that_are_not_a_list_are_one_error_naming_what_came():
    with pytest.raises(xc.ConfigTypeError) as info:
        xc.Sequential(xc.Dense(3, 2))
    assert str(info.value) == "Sequential: layers must be a list of layers, got Dense"


def test_what_sequential_refuses_is_one_error_naming_it():
    cases = [([], xc.ConfigError, "Sequential: needs at least one layer"),
             ([xc.Dense(3, 2), "relu"], xc.ConfigTypeError, "Sequential: layers[1] is 'relu', not an xpcnn layer"),
             ([xc.Dense(3, 2), xc.Dense(4, 1)], xc.ShapeError,
              "Dense(input_size=4, output_size=1) expects input (N, 4) but Dense(input_size=3, output_size=2) "
              "produces (N, 2)")]
    for layers, error, message in cases:
        with pytest.raises(error) as info:
            xc.Sequential(layers)
        assert str(info.value) == message
    with pytest.raises(xc.ConfigError) as info:
        xc.Sequential([xc.Dense(3, 2)], dtype="float16")
    assert str(info.value) == "Sequential: dtype must be one of 'float32', 'float64', got 'float16'"


def test_the_shapes_walk_through_layers_that_take_any_shape():
    model = xc.Sequential([xc.Dense(3, 2), xc.ReLU(), xc.Reshape((2,), (1, 2)), xc.Flatten(), xc.Dense(2, 1)], seed=0)
    assert (model.input_shape, model.output_shape) == ((3,), (1,))
    free = xc.Sequential([xc.Flatten(), xc.Dense(12, 3), xc.Softmax()], seed=0)
    assert (free.input_shape, free.output_shape) == (None, (3,))  # fixed from the first layer that fixes it
    shapeless = xc.Sequential([xc.ReLU(), xc.Softmax()])
    assert (shapeless.input_shape, shapeless.output_shape) == (None, None)
    assert (shapeless.device, shapeless.dtype) == (backend.CPU, "float32")  # no parameters: the defaults


def test_the_first_convolution_computes_no_input_gradient_and_the_others_do():
    model = convnet()
    conv = xc.Convolutional((2, 6, 6), 3, 2)
    two = xc.Sequential([xc.Convolutional((1, 6, 6), 3, 2, padding="same"), conv, xc.Flatten(),
                         xc.Dense(32, 3)], seed=0)
    assert model.layers[0].compute_input_gradient is False
    assert two.layers[0].compute_input_gradient is False and conv.compute_input_gradient is True


def test_a_model_takes_its_dtype_from_its_first_layer_with_parameters_and_its_device_from_its_parameters(device1):
    model = xc.Sequential([xc.ReLU(), xc.Dense(3, 2, dtype="float64", seed=0), xc.Dense(2, 2, dtype="float64",
                                                                                       seed=1)])
    assert model.dtype == "float64" and model.device == backend.CPU
    moved = xc.Sequential([xc.ReLU(), xc.Dense(3, 2, seed=0).to(device1)])
    assert moved.device == device1 and moved.dtype == "float32"
    assert xc.Sequential([xc.ReLU()], device=device1).device == device1  # no parameters: the device asked for


def test_an_unseeded_model_casts_with_dtype_alone_and_moves_with_device_alone(device1):
    cast = xc.Sequential([xc.Dense(3, 2, seed=0), xc.Softmax()], dtype="float64")
    assert cast.layers[0].params["weights"].dtype == np.float64 and cast.device == backend.CPU
    moved = xc.Sequential([xc.Dense(3, 2, seed=0), xc.Softmax()], device=device1)
    weights = moved.layers[0].params["weights"]
    assert backend.Device.of(weights) == device1 and backend.dtype_name(weights) == "float32"
    both = xc.Sequential([xc.Dense(3, 2, seed=0)], device=device1, dtype="float64")
    assert backend.dtype_name(both.layers[0].params["weights"]) == "float64"
