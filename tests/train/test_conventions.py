"""Keras's spellings (issue 25, item 7): each means what it means in Keras, or says in one line what to write."""

from __future__ import annotations

import numpy as np
import pytest

import xpcnn as xc
from xpcnn.errors import ConfigError, ConfigTypeError, DataError, ShapeError


def data(n=60, features=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features))
    labels = rng.integers(0, classes, n)
    return x, labels


def classifier(classes=3, features=6, dropout=False):
    layers = [xc.Dense(features, 8), xc.Tanh()] + ([xc.Dropout(0.3)] if dropout else [])
    return xc.Sequential(layers + [xc.Dense(8, classes), xc.Softmax()], seed=1, dtype="float64")


def params(model):
    return [np.asarray(p) for layer in model.layers for p in layer.params.values()]


def assert_same(a, b):
    for p, q in zip(params(a), params(b), strict=True):
        np.testing.assert_array_equal(p, q)


# -- compile -------------------------------------------------------------------------------------

def test_compile_takes_keras_names():
    model = classifier().compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    assert model.loss == "categorical_cross_entropy"
    assert isinstance(model.optimizer, xc.Adam) and model.optimizer.learning_rate == 1e-3
    assert isinstance(classifier().compile(optimizer="SGD").optimizer, xc.SGD)


def test_compile_without_loss_takes_the_output_layers():
    assert classifier().compile().loss == "categorical_cross_entropy"


def test_compile_with_the_optimizer_first_says_what_to_write():
    with pytest.raises(ConfigError, match=r"loss first: write compile\(loss=\.\.\., optimizer='adam'\)"):
        classifier().compile("adam", "categorical_crossentropy")


@pytest.mark.parametrize("metrics, error", [(["auc"], ConfigError), ("accuracy", ConfigTypeError)])
def test_compile_refuses_other_metrics(metrics, error):
    with pytest.raises(error, match="metrics"):
        classifier().compile(metrics=metrics)


def test_compile_refuses_unknown_optimizer_names():
    with pytest.raises(ConfigError, match="unknown optimizer 'rmsprop'"):
        classifier().compile(optimizer="rmsprop")


# -- labels --------------------------------------------------------------------------------------

@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", "sparse_categorical_cross_entropy",
                                  "categorical_cross_entropy"])
def test_integer_labels_train_as_one_hot_rows(loss):
    x, labels = data()
    a, b = classifier(), classifier()
    a.fit(x, labels, loss=loss, epochs=2, batch_size=16, learning_rate=0.3, seed=3)
    b.fit(x, np.eye(3)[labels], loss="categorical_cross_entropy", epochs=2, batch_size=16, learning_rate=0.3, seed=3)
    assert_same(a, b)
    assert a.loss == "categorical_cross_entropy"
    assert a.evaluate(x, labels) == b.evaluate(x, np.eye(3)[labels])


def test_compile_with_the_sparse_loss_then_fit_and_evaluate_on_labels():
    x, labels = data()
    model = classifier().compile(loss="sparse_categorical_crossentropy")
    model.fit(x, labels, epochs=1, batch_size=16)
    assert 0.0 <= model.evaluate(x, labels)["accuracy"] <= 1.0


@pytest.mark.parametrize("bad, message", [(3, "sample 5 is 3, not a class in \\[0, 3\\)"),
                                          (-1, "sample 5 is -1")])
def test_labels_out_of_range_name_the_sample(bad, message):
    x, labels = data()
    labels[5] = bad
    with pytest.raises(DataError, match=message):
        classifier().fit(x, labels, loss="sparse_categorical_crossentropy")


def test_fractional_labels_are_refused():
    x, labels = data()
    with pytest.raises(DataError, match="whole numbers"):
        classifier().fit(x, labels + 0.5, loss="sparse_categorical_crossentropy")


def test_sparse_loss_wants_labels_of_shape_n():
    x, labels = data()
    with pytest.raises(ShapeError, match=r"class labels of shape \(N,\)"):
        classifier().fit(x, np.eye(3)[labels], loss="sparse_categorical_crossentropy")


def test_binary_labels_of_shape_n_are_a_column():
    x, labels = data(classes=2)
    make = lambda: xc.Sequential([xc.Dense(6, 1), xc.Sigmoid()], seed=0, dtype="float64")  # noqa: E731
    a, b = make(), make()
    a.fit(x, labels, loss="binary_crossentropy", epochs=2, batch_size=8, seed=0)
    b.fit(x, labels[:, None].astype(float), loss="binary_cross_entropy", epochs=2, batch_size=8, seed=0)
    assert_same(a, b)


# -- fit: validation_split, verbose, callbacks --------------------------------------------------------

def test_validation_split_holds_out_the_last_samples_before_shuffling():
    x, labels = data()
    y = np.eye(3)[labels]
    a, b = classifier(), classifier()
    ha = a.fit(x, y, epochs=2, batch_size=16, validation_split=0.25, seed=2)
    hb = b.fit(x[:45], y[:45], epochs=2, batch_size=16, validation_data=(x[45:], y[45:]), seed=2)
    assert ha["val_loss"] == hb["val_loss"]
    assert_same(a, b)


@pytest.mark.parametrize("split, error, message", [(0.001, ConfigError, "leave at least one"),
                                                   (1.0, ConfigError, "validation_split must be in"),
                                                   ("half", ConfigTypeError, "validation_split")])
def test_validation_split_is_checked(split, error, message):
    x, labels = data()
    with pytest.raises(error, match=message):
        classifier().fit(x, np.eye(3)[labels], validation_split=split)


def test_validation_split_and_validation_data_together_are_refused():
    x, labels = data()
    y = np.eye(3)[labels]
    with pytest.raises(ConfigError, match="not both"):
        classifier().fit(x, y, validation_split=0.2, validation_data=(x, y))


def test_verbose_prints_as_keras(capsys):
    x, labels = data()
    classifier().fit(x, labels, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""
    classifier().fit(x, labels, epochs=2, verbose=2, validation_split=0.2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2") and "val_accuracy" in lines[1]
    classifier().fit(x, labels, epochs=1, verbose=1)
    assert "epoch 1/1" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="verbose must be 0"):
        classifier().fit(x, labels, verbose=3)


class Recorder:
    def __init__(self, stop_at=None):
        self.calls, self.stop_at, self.model = [], stop_at, None

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs):
        self.calls.append("begin")

    def on_train_batch_end(self, batch, logs):
        self.calls.append(("batch", batch))

    def on_epoch_end(self, epoch, logs):
        self.calls.append(("epoch", epoch, logs["loss"]))
        if epoch == self.stop_at:
            self.model.stop_training = True

    def on_train_end(self, logs):
        self.calls.append(("end", logs["epoch"]))


def test_callbacks_get_keras_hooks_in_order():
    x, labels = data(n=40)
    model = classifier()
    rec = Recorder()
    history = model.fit(x, labels, epochs=2, batch_size=20, callbacks=[rec])
    assert rec.model is model
    assert rec.calls == ["begin", ("batch", 0), ("batch", 1), ("epoch", 0, history["loss"][0]),
                         ("batch", 0), ("batch", 1), ("epoch", 1, history["loss"][1]), ("end", 2)]


def test_stop_training_stops_after_the_epoch():
    x, labels = data(n=40)
    model = classifier()
    model.fit(x, labels, epochs=5, batch_size=20, callbacks=[Recorder(stop_at=1)])
    assert model.epoch == 2
    model.fit(x, labels, epochs=1, batch_size=20)  # the flag does not outlive its fit
    assert model.epoch == 3


def test_early_stopping_among_callbacks_is_fits():
    x, labels = data()
    stopper = xc.EarlyStopping(patience=1)
    model = classifier()
    model.fit(x, labels, epochs=2, validation_split=0.2, callbacks=[stopper])
    assert model.early_stopping is stopper
    with pytest.raises(ConfigError, match="not both"):
        model.fit(x, labels, validation_split=0.2, callbacks=[stopper], early_stopping=2)
    with pytest.raises(ConfigError, match="2 EarlyStopping"):
        model.fit(x, labels, validation_split=0.2, callbacks=[stopper, xc.EarlyStopping()])


@pytest.mark.parametrize("callbacks", [[object()], Recorder()])
def test_callbacks_are_checked(callbacks):
    x, labels = data()
    with pytest.raises(ConfigTypeError, match="callbacks"):
        classifier().fit(x, labels, callbacks=callbacks)


# -- the model's own spellings -------------------------------------------------------------------

def test_calling_the_model_is_inference():
    x, _ = data()
    model = classifier(dropout=True)
    np.testing.assert_array_equal(model(x[:5]), model.predict(x[:5]))
    assert model(x[:5], training=True).shape == (5, 3)
    with pytest.raises(ShapeError, match=r"model\(x\): expected input of shape \(N, 6\)"):
        model(x[:5, :4])


def test_count_params_and_save_with_load_model(tmp_path):
    x, labels = data()
    model = classifier()
    assert model.count_params() == model.parameter_count() == 6 * 8 + 8 + 8 * 3 + 3
    model.fit(x, labels, epochs=1, optimizer=xc.Adam(0.01))
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = xc.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.loss == "categorical_cross_entropy" and isinstance(loaded.optimizer, xc.Adam)
