"""Sequential: shape chain, fit/evaluate/predict, seeds, and the errors a user meets."""

import numpy as np
import pytest

import xpcnn as xc


def seed_network(seed=0, dtype="float32", size=28):
    o = size - 2
    return xc.Sequential([
        xc.Convolutional((1, size, size), 3, 5), xc.Sigmoid(), xc.Reshape((5, o, o), (5 * o * o,)),
        xc.Dense(5 * o * o, 100), xc.Sigmoid(), xc.Dense(100, 2), xc.Sigmoid(),
    ], seed=seed, dtype=dtype)


def data(n=24, size=10, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 1, size, size), dtype=np.float32)
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, n)]
    return x, y


def test_fit_returns_per_epoch_history_and_learns_a_separable_toy_problem():
    x, y = data(40)
    x[y[:, 1] == 1] += 1.0  # class 1 is brighter
    model = seed_network(size=10)
    history = model.fit(x, y, epochs=15, batch_size=8, learning_rate=0.5, seed=0)
    assert set(history) >= {"epoch", "loss", "accuracy", "seconds", "samples_per_s"}
    assert len(history["loss"]) == 15 and history["epoch"][-1] == 15
    assert history["loss"][-1] < history["loss"][0]
    assert model.evaluate(x, y)["accuracy"] == 1.0


def test_same_seed_same_weights_and_same_training():
    x, y = data()
    a, b = seed_network(3, size=10), seed_network(3, size=10)
    a.fit(x, y, epochs=2, batch_size=5, seed=1)
    b.fit(x, y, epochs=2, batch_size=5, seed=1)
    for la, lb in zip(a.layers, b.layers):
        for k in la.params:
            np.testing.assert_array_equal(la.params[k], lb.params[k])


def test_validation_data_is_reported_per_epoch():
    x, y = data()
    h = seed_network(size=10).fit(x, y, epochs=2, validation_data=(x[:8], y[:8]))
    assert len(h["val_loss"]) == 2 and 0.0 <= h["val_accuracy"][-1] <= 1.0


def test_predict_batches_and_keeps_dtype():
    x, _ = data(30)
    out = seed_network(size=10).predict(x, batch_size=7)
    assert out.shape == (30, 2) and out.dtype == np.float32


def test_float64_model_on_request():
    x, y = data()
    model = seed_network(size=10, dtype="float64")
    model.fit(x, y, epochs=1)
    assert model.dtype == "float64"
    assert all(p.dtype == np.float64 for layer in model.layers for p in layer.params.values())


def test_layer_chain_mismatch_names_both_layers():
    with pytest.raises(xc.ShapeError, match=r"Dense\(input_size=100.*expects input \(N, 100\).*produces \(N, 3380\)"):
        xc.Sequential([xc.Convolutional((1, 28, 28), 3, 5), xc.Flatten(), xc.Dense(100, 2)])


def test_labels_that_do_not_match_the_output_are_rejected():
    x, y = data()
    with pytest.raises(xc.ShapeError, match=r"labels of shape \(24, 1\) do not match the model's output \(N, 2\)"):
        seed_network(size=10).fit(x, y[:, :1])
    with pytest.raises(xc.ShapeError, match="24 inputs but 23 labels"):
        seed_network(size=10).fit(x, y[:23])


def test_wrong_input_shape_in_fit_names_expected_and_received():
    x, y = data(size=12)
    with pytest.raises(xc.ShapeError, match=r"expected input of shape \(N, 1, 10, 10\).*got \(24, 1, 12, 12\)"):
        seed_network(size=10).fit(x, y)


def test_nan_in_the_inputs_is_refused_before_training_naming_the_sample():
    x, y = data()
    x[5, 0, 0, 0] = np.nan
    model = seed_network(size=10)
    before = [p.copy() for layer in model.layers for p in layer.params.values()]
    with pytest.raises(xc.DataError, match="fit: input of sample 5 holds NaN or infinity"):
        model.fit(x, y, epochs=3)
    assert model.epoch == 0 and model.history == {}
    assert all(np.array_equal(a, b) for a, b in zip(before, [p for la in model.layers for p in la.params.values()]))


def test_arrays_from_two_namespaces_are_a_clear_error():
    xs = pytest.importorskip("array_api_strict")
    with pytest.raises(ValueError, match="different devices"):
        xc.backend.device_of(np.zeros(2), xs.asarray([1.0]))


def test_input_on_another_device_than_the_layer_is_a_clear_error():
    xs = pytest.importorskip("array_api_strict")
    dev = xc.Device.of(xs.asarray([0.0], device=xs.Device("device1")))
    dense = xc.Dense(3, 2, device=dev)
    expected = r"Dense\(input_size=3, output_size=2\): input lives on cpu .* on array_api_strict"
    with pytest.raises(ValueError, match=expected):
        dense.forward(np.zeros((1, 3), np.float32))


# -- predict, evaluate and fit's validation numbers against one forward pass -----------------

def _one_forward_oracle(model, x, y, loss):
    """Loss and accuracy of the whole set from a single forward pass (no batching)."""
    out = xc.to_numpy(model.forward(x.astype(model.dtype), training=False))
    loss_fn, _ = xc.get_loss(loss)
    accuracy = float(np.mean(np.argmax(out, axis=1) == np.argmax(y, axis=1)))
    return out, float(loss_fn(y, out)), accuracy


def test_predict_in_batches_equals_one_forward_in_the_same_row_order():
    x, _ = data(23, seed=2)  # 23 = 4 batches of 5 and one of 3
    model = seed_network(size=10, dtype="float64")
    whole = xc.to_numpy(model.forward(x.astype("float64"), training=False))
    np.testing.assert_allclose(xc.to_numpy(model.predict(x, batch_size=5)), whole, rtol=1e-12, atol=0)
    np.testing.assert_allclose(xc.to_numpy(model.predict(x, batch_size=100)), whole, rtol=1e-12, atol=0)


@pytest.mark.parametrize("loss", ["binary_cross_entropy", "mse", "categorical_cross_entropy"])
def test_evaluate_in_batches_equals_loss_and_accuracy_of_one_forward(loss):
    x, y = data(23, seed=3)
    model = seed_network(size=10, dtype="float64")
    if loss == "categorical_cross_entropy":  # it takes rows of probabilities, which a Softmax gives
        model = xc.Sequential([*model.layers[:-1], xc.Softmax()], seed=0)
    _, expected_loss, expected_accuracy = _one_forward_oracle(model, x, y, loss)
    result = model.evaluate(x, y, loss=loss, batch_size=5)
    assert 0.0 < expected_accuracy < 1.0  # an accuracy that can be wrong in either direction
    np.testing.assert_allclose(result["loss"], expected_loss, rtol=1e-12)
    assert result["accuracy"] == pytest.approx(expected_accuracy, abs=1e-12)


def test_fit_reports_the_validation_loss_and_accuracy_that_evaluate_gives_after_the_epoch():
    x, y = data(24, seed=4)
    xv, yv = data(13, seed=5)  # not a multiple of the batch size, and not the training data
    model = seed_network(size=10, dtype="float64")
    history = model.fit(x, y, epochs=1, batch_size=5, learning_rate=0.5, validation_data=(xv, yv), seed=0)
    _, expected_loss, expected_accuracy = _one_forward_oracle(model, xv, yv, "binary_cross_entropy")
    np.testing.assert_allclose(history["val_loss"][-1], expected_loss, rtol=1e-12)
    assert history["val_accuracy"][-1] == pytest.approx(expected_accuracy, abs=1e-12)
    evaluated = model.evaluate(xv, yv, batch_size=4)
    assert (history["val_loss"][-1], history["val_accuracy"][-1]) == pytest.approx(
        (evaluated["loss"], evaluated["accuracy"]), rel=1e-12)
    training_loss = _one_forward_oracle(model, x, y, "binary_cross_entropy")[1]
    assert abs(training_loss - expected_loss) > 1e-6  # the check can tell the two sets apart
