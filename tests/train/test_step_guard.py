"""The step guard (xpcnn/train/step_guard.py): a non-finite loss in ``fit``.

A non-finite loss stops training at once, naming epoch and step, with the parameters and the
optimizer state of the last finite step, a consistent history and no NumPy warning. The
NumPy path decides on the host (free there); the array_api_strict backends take the device
path (``where`` on every parameter, the flag read with the running values), as CuPy would.
"""

import warnings

import numpy as np
import pytest

import xpcnn as xc
from test_data_checks import data, small
from xpcnn import backend
from xpcnn.train import metrics

xs = pytest.importorskip("array_api_strict")


def state(model):
    """Host copies of every parameter and optimizer slot, and the step count."""
    params = {f"{i}.{k}": backend.to_numpy(v).copy() for i, la in enumerate(model.layers) for k, v in la.params.items()}
    slots = {k: backend.to_numpy(v).copy() for k, v in model.optimizer.slots.items()}
    return params, slots, model.optimizer.iterations


def assert_same_state(a, b):
    assert a[0].keys() == b[0].keys() and a[1].keys() == b[1].keys() and a[2] == b[2]
    for part in (0, 1):
        for key in a[part]:
            np.testing.assert_array_equal(a[part][key], b[part][key], err_msg=key)


def poisoned_loss(bad_call, value=np.inf):
    """Categorical cross-entropy whose ``bad_call``-th value (1-based) is replaced by ``value``."""
    loss_fn, prime = xc.get_loss("categorical_cross_entropy")
    calls = [0]

    def fn(y, out):
        calls[0] += 1
        loss = loss_fn(y, out)
        return loss * value if calls[0] == bad_call else loss

    return fn, prime


@pytest.mark.parametrize("optimizer", [lambda: xc.SGD(0.1, momentum=0.9), lambda: xc.Adam(0.01)])
def test_first_non_finite_loss_stops_with_the_state_of_the_last_finite_step(device, optimizer, monkeypatch):
    monkeypatch.setattr(metrics, "READ_INTERVAL", 1e9)  # the device path then only reads at the epoch's end
    x, y = data()
    model = small().to(device)
    steps = []  # state after each step that on_batch saw
    on_batch = lambda logs: steps.append((logs["epoch"], logs["batch"], state(model)))  # noqa: E731
    # 4 batches per epoch: the 7th step is epoch 2, step 3
    with pytest.raises(xc.TrainingError) as info:
        model.fit(x, y, loss=poisoned_loss(7, np.nan), epochs=3, batch_size=5, optimizer=optimizer(),
                  on_batch=on_batch)
    message = str(info.value)
    assert "epoch 2, step 3/4: the training loss is nan" in message and "lower learning rate" in message
    assert info.value.epoch == 2 and info.value.step == 3
    last_finite = next(s for e, b, s in steps if (e, b) == (2, 2))
    assert_same_state(state(model), last_finite)
    assert last_finite[2] == 6  # the optimizer has counted six steps
    assert model.epoch == 1 and model.history["epoch"] == [1] and len(model.history["loss"]) == 1


def with_batchnorm(seed=0):
    return xc.Sequential([xc.Convolutional((1, 6, 6), 3, 2, bias="none"), xc.BatchNorm2D(2), xc.ReLU(),
                          xc.Dropout(0.2), xc.Flatten(), xc.Dense(2 * 4 * 4, 3), xc.Softmax()], seed=seed,
                         dtype="float64")


def test_a_non_finite_loss_also_restores_batchnorms_running_statistics(device, monkeypatch):
    monkeypatch.setattr(metrics, "READ_INTERVAL", 1e9)
    x, y = data()
    model = with_batchnorm().to(device)
    seen = []  # running statistics after each step that on_batch saw
    on_batch = lambda logs: seen.append({k: backend.to_numpy(v).copy()  # noqa: E731
                                         for k, v in model.layers[1].buffers.items()})
    with pytest.raises(xc.TrainingError, match="epoch 2, step 3/4"):
        model.fit(x, y, loss=poisoned_loss(7, np.nan), epochs=3, batch_size=5, optimizer=xc.Adam(0.01),
                  on_batch=on_batch)
    last_finite = seen[5]  # after epoch 2, step 2
    for key, value in model.layers[1].buffers.items():
        np.testing.assert_array_equal(backend.to_numpy(value), last_finite[key], err_msg=key)
    # every step's forward moves them, the poisoned one's too: the restore is what put them back
    assert not np.array_equal(seen[4]["running_mean"], last_finite["running_mean"])


def test_an_inf_loss_on_the_very_first_step_leaves_the_initial_parameters(device):
    x, y = data()
    model = small().to(device)
    initial = {k: backend.to_numpy(v).copy() for k, v in model.layers[3].params.items()}
    with pytest.raises(xc.TrainingError, match="epoch 1, step 1/2: the training loss is inf.*end of epoch 0"):
        model.fit(x, y, loss=poisoned_loss(1), batch_size=10, optimizer=xc.Adam(0.1))
    for k, v in model.layers[3].params.items():
        np.testing.assert_array_equal(backend.to_numpy(v), initial[k])
    assert model.optimizer.iterations == 0 and model.optimizer.slots == {} and model.history == {}


def test_a_diverging_learning_rate_fails_in_the_first_epoch_without_numpy_warnings():
    x, y = data(40)
    model = xc.Sequential([xc.Convolutional((1, 6, 6), 3, 4), xc.ReLU(), xc.Flatten(), xc.Dense(64, 3), xc.Softmax()],
                          seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        expected = r"epoch 1, step \d+/8: the training loss is nan.*lower learning rate \(now 1e\+30\)"
        with pytest.raises(xc.TrainingError, match=expected):
            model.fit(x, y, loss="categorical_cross_entropy", batch_size=5, optimizer=xc.SGD(1e30))
    assert [str(w.message) for w in caught] == []
    assert all(np.all(np.isfinite(p)) for layer in model.layers for p in layer.params.values())


def test_the_device_path_reads_the_flag_only_with_the_running_values(device1, monkeypatch):
    monkeypatch.setattr(metrics, "READ_INTERVAL", 1e9)
    x, y = data()
    seen = []
    small().to(device1).fit(x, y, loss="categorical_cross_entropy", batch_size=5, epochs=2,
                            on_batch=lambda logs: seen.append("running_loss" in logs))
    assert seen == [False, False, False, True] * 2  # host reads at the last batch of each epoch only
