"""model.summary() (xpcnn/tools/summary.py): shapes that a real forward produces, counts, bytes, engines."""

import math

import numpy as np
import pytest

import xpcnn as xc
from xpcnn import backend, zoo
from xpcnn.tools import summary
from xpcnn.errors import ConfigError, ShapeError
from xpcnn.layers.base import Layer


def forward_shapes(model, input_shape):
    """Per-sample output shape of every layer, from a real forward of a zero batch of 2."""
    x = backend.to_device(backend.zeros((2, *input_shape), model.dtype), model.device)
    shapes = []
    for layer in model.layers:
        x = layer.forward(x, training=False)
        shapes.append(tuple(x.shape[1:]))
    return shapes


def strided():
    return xc.Sequential([
        xc.Convolutional((3, 11, 9), 3, 4, stride=2, padding=1), xc.ReLU(), xc.MaxPool2D(2),
        xc.Flatten(), xc.Dense(4 * 3 * 2, 5), xc.Softmax(),
    ], seed=0, dtype="float64")


MODELS = {name: (lambda name=name: zoo.build_model(name, (1, 28, 28), 10)[0]) for name in zoo.MODELS}
MODELS["strided-float64"] = strided


@pytest.mark.parametrize("name", list(MODELS))
def test_every_row_has_the_shape_a_forward_gives_and_the_layers_parameter_count(name):
    model = MODELS[name]()
    rows = summary.rows(model)
    assert [r["output_shape"] for r in rows] == forward_shapes(model, model.input_shape)
    def size(arrays):
        return sum(math.prod(a.shape) for a in arrays.values())

    # Keras's Param # counts the non-trained state too (BatchNormalization: 4 per channel)
    assert [r["params"] for r in rows] == [size(layer.params) + size(layer.buffers) for layer in model.layers]
    text = model.summary_text()
    itemsize = {"float32": 4, "float64": 8}[model.dtype]
    trained = model.parameter_count()
    kept = sum(size(layer.buffers) for layer in model.layers)
    assert (kept > 0) == any(isinstance(layer, (xc.BatchNorm1D, xc.BatchNorm2D)) for layer in model.layers)
    assert f"Total params: {trained + kept:,} ({summary.readable_bytes((trained + kept) * itemsize)})" in text
    assert f"Trainable params: {trained:,} ({summary.readable_bytes(trained * itemsize)})" in text
    assert f"Non-trainable params: {kept:,} ({summary.readable_bytes(kept * itemsize)})" in text
    assert f"Gradients: {trained:,} ({summary.readable_bytes(trained * itemsize)})" in text
    memory = (2 * trained + kept) * itemsize
    assert f"Parameters + gradients + buffers: {summary.readable_bytes(memory)} ({memory:,} bytes)" in text
    for layer, line in zip(model.layers, text.splitlines()[4:]):
        assert type(layer).__name__ in line


def test_the_engine_column_names_the_engine_asked_for_and_the_one_the_last_pass_used():
    model = strided()
    assert summary.rows(model)[0]["engine"] == "auto" and summary.rows(model)[1]["engine"] == ""
    forward_shapes(model, model.input_shape)
    used = model.layers[0].chosen_engine
    assert used is not None and summary.rows(model)[0]["engine"] == f"auto -> {used}"
    assert f"auto -> {used}" in model.summary_text()
    model.layers[0].chosen_engines = {"train": "gemm", "infer": "signal"}
    assert summary.rows(model)[0]["engine"] == "auto -> infer signal, train gemm"
    plain = xc.Sequential([xc.Dense(3, 2)], seed=0)
    assert "Engine" not in plain.summary_text()


class Running(Layer):
    """A stand-in for a layer with non-trained state (BatchNorm's running statistics): nothing special needed."""

    def __init__(self, n):
        super().__init__()
        self.buffers = {"mean": np.zeros(n, np.float32), "count": np.zeros((), np.int64)}

    def forward(self, x, training=True):
        return x


def test_buffers_count_as_non_trainable_parameters_with_their_own_bytes():
    model = xc.Sequential([xc.Dense(3, 4), Running(4), xc.Dense(4, 2)], seed=0)
    row = summary.rows(model)[1]
    assert row["params"] == 5 and row["trainable"] == (0, 0) and row["buffers"] == (5, 4 * 4 + 8)
    text = model.summary_text()
    assert "Total params: 31 (128 B)" in text and "Trainable params: 26 (104 B)" in text
    assert "Non-trainable params: 5 (24 B)" in text and "Gradients: 26 (104 B)" in text
    assert "Parameters + gradients + buffers: 232 B (232 bytes)" in text


def test_batchnorm_counts_as_keras_batchnormalization_does():
    """Keras: BatchNormalization(C) has 4C parameters, 2C of them (the moving statistics) non-trainable."""
    model = xc.Sequential([xc.Convolutional((3, 6, 6), 3, 8, padding=1), xc.BatchNorm2D(8), xc.ReLU(),
                           xc.Flatten(), xc.Dense(8 * 6 * 6, 16), xc.BatchNorm1D(16), xc.Dense(16, 2)], seed=0)
    rows = summary.rows(model)
    assert [r["params"] for r in rows] == [3 * 8 * 9 + 8 * 6 * 6, 32, 0, 0, 288 * 16 + 16, 64, 34]
    assert rows[1]["trainable"] == (16, 64) and rows[1]["buffers"] == (16, 64)
    text = model.summary_text()
    trained = 216 + 288 + 16 + 4624 + 32 + 34
    assert f"Trainable params: {trained:,}" in text and "Non-trainable params: 48 (192 B)" in text


def test_a_model_whose_first_layer_takes_any_shape_needs_input_shape():
    model = xc.Sequential([xc.Flatten(), xc.Dense(12, 2)], seed=0)
    with pytest.raises(ShapeError, match=r"takes any input shape; pass summary\(input_shape="):
        model.summary_text()
    assert "(N, 12)" in model.summary_text(input_shape=(3, 2, 2))
    with pytest.raises(ShapeError, match="does not match the model's input"):
        strided().summary_text(input_shape=(3, 11, 10))
    with pytest.raises(ConfigError, match=r"input_shape\[0\] must be an integer >= 1"):
        model.summary_text(input_shape=(0, 2))
    with pytest.raises(ShapeError, match="MaxPool2D"):  # a shape the layers cannot take
        xc.Sequential([xc.MaxPool2D(2)]).summary_text(input_shape=(1, 1, 1))


def test_after_its_first_batch_a_model_whose_first_layer_takes_any_shape_walks_that_batch_s_shape():
    """As Keras builds a model on its first call: fit, predict or forward set the shape summary walks."""
    x = np.zeros((5, 3, 2, 2), dtype=np.float32)
    for run in (lambda m: m.predict(x), lambda m: m.forward(x, training=False),
                lambda m: m.fit(x, np.zeros((5, 2), dtype=np.float32), epochs=1, batch_size=5)):
        model = xc.Sequential([xc.Flatten(), xc.Dense(12, 2)], seed=0).compile("mse")
        run(model)
        assert model.first_input_shape == (3, 2, 2)
        assert model.summary_text() == model.summary_text(input_shape=(3, 2, 2))
        model.forward(np.zeros((1, 12), dtype=np.float32))  # a later batch of another shape: the first counts
        assert model.first_input_shape == (3, 2, 2)
    model = xc.Sequential([xc.Flatten(), xc.Dense(12, 2)], seed=0)
    with pytest.raises(ShapeError):
        model.forward(np.zeros((2, 5), dtype=np.float32))  # a batch the Dense layer refuses is not recorded
    with pytest.raises(ShapeError, match="expected a batch"):
        model.forward([[0.0] * 12])  # not an array: the first layer's own one-line error
    assert model.first_input_shape is None
    fixed = strided()
    fixed.forward(np.zeros((1, *fixed.input_shape), dtype=fixed.dtype))
    assert fixed.first_input_shape is None  # its first layer names its shape


def test_summary_prints_like_keras_and_print_fn_receives_the_table(capsys):
    model = strided()
    assert model.summary() is None
    assert capsys.readouterr().out == model.summary_text() + "\n"
    got = []
    model.summary(print_fn=got.append)
    assert got == [model.summary_text()]
    assert model.summary_text().startswith("Model: Sequential (float64, cpu)")


@pytest.mark.parametrize("n,text", [(0, "0 B"), (1023, "1023 B"), (1024, "1.00 KB"), (5 * 2 ** 20, "5.00 MB"),
                                    (3 * 2 ** 30, "3.00 GB"), (2 ** 50, "1048576.00 GB")])
def test_readable_bytes_uses_powers_of_1024_as_keras_does(n, text):
    assert summary.readable_bytes(n) == text


def test_summary_of_a_model_on_device1_counts_its_arrays(device1):
    model = strided().to(device1)
    assert f"Total params: {model.parameter_count():,}" in model.summary_text()
    assert model.summary_text().splitlines()[0] == f"Model: Sequential (float64, {device1.name})"


def test_summary_print_fn_none_prints_as_keras_does_and_a_non_function_is_a_config_error(capsys):
    model = xc.Sequential([xc.Dense(4, 3), xc.BatchNorm1D(3), xc.Dropout(0.5), xc.Dense(3, 2)], seed=0)
    model.summary(print_fn=None)
    assert capsys.readouterr().out == model.summary_text() + "\n"
    with pytest.raises(ConfigError, match=r"^summary: print_fn must be a function taking the table, or None, got 1$"):
        model.summary(print_fn=1)
