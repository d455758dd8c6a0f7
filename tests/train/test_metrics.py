"""Right answers and the running loss (xpcnn/train/metrics.py): one rule turns outputs into classes, and
``fit``'s accuracy, ``evaluate``, ``predict_classes`` and the CLI's confusion matrix all use it; the running
values reach ``on_batch`` as Python floats equal to the epoch's log."""

import numpy as np
import pytest

import xpcnn as xc
from xpcnn.app import run as run_module
from xpcnn.train import metrics


def convnet(seed=0):
    return xc.Sequential([xc.Convolutional((1, 6, 6), 3, 2, padding="same", bias="tied"), xc.ReLU(), xc.Flatten(),
                          xc.Dense(72, 3), xc.Softmax()], seed=seed)


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 6, 6), dtype=np.float32), np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]


@pytest.mark.parametrize("outputs, classes", [
    ([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]], [1, 0]),
    ([[0.2], [0.5], [0.9]], [0, 1, 1]),
    ([0.2, 0.5, 0.9], [0, 1, 1]),
    ([[0.6, 0.4]], [0]),
])
def test_classes_from_outputs_is_one_rule(outputs, classes):
    got = xc.output_classes(np.array(outputs))
    assert got.tolist() == classes and got.dtype == np.int64


def test_predict_classes_accuracy_and_the_cli_use_that_rule(monkeypatch):
    x, y = data(12)
    model = convnet().compile("categorical_cross_entropy")
    expected = np.argmax(model.predict(x), axis=1)
    np.testing.assert_array_equal(xc.predict_classes(model, x), expected)
    assert model.evaluate(x, y)["accuracy"] == np.mean(expected == np.argmax(y, axis=1))
    monkeypatch.setattr(metrics, "_classes", lambda xp, out: np.zeros(out.shape[0], np.int64))  # the one rule
    assert xc.predict_classes(model, x).tolist() == [0] * 12
    assert model.evaluate(x, y)["accuracy"] == 1.0  # labels and outputs both went through the broken rule
    matrix = run_module._test(model, x, y, np.argmax(y, axis=1), "categorical_cross_entropy")[0]
    assert matrix[:, 1:].sum() == 0


def test_running_values_reach_on_batch_as_python_floats_and_match_the_epoch_log():
    x, y = data(20)
    logs = []
    history = convnet().fit(x, y, loss="categorical_cross_entropy", batch_size=7, on_batch=logs.append)
    last = logs[-1]
    assert isinstance(last["running_loss"], float) and last["running_loss"] == history["loss"][0]
    assert last["running_accuracy"] == history["accuracy"][0]
