"""Early stopping (xpcnn/train/early_stopping.py): when it stops, what it restores, what the history says."""

import json
import math

import numpy as np
import pytest

import xpcnn as xc
from xpcnn import backend
from xpcnn.train.early_stopping import EarlyStopping
from xpcnn.errors import ConfigError, ConfigTypeError


def model(seed=0):
    return xc.Sequential([xc.Dense(4, 8), xc.Tanh(), xc.Dense(8, 1), xc.Sigmoid()], seed=seed)


def data(n=40):
    rng = np.random.default_rng(2)
    x = rng.random((n, 4), dtype=np.float32)
    return x, (x[:, :1] > 0.5).astype(np.float32)


def weights(m):
    return {f"{i}.{k}": backend.to_numpy(v).copy() for i, layer in enumerate(m.layers) for k, v in layer.params.items()}


def fit_recording(m, stopper, validation, epochs=12, learning_rate=1.0, **kw):
    """Fit, keeping a copy of the weights after every epoch (index = epoch)."""
    x, y = data()
    after = {0: weights(m)}
    m.fit(x, y, epochs=epochs, batch_size=8, learning_rate=learning_rate, validation_data=validation,
          early_stopping=stopper, on_epoch=lambda logs: after.__setitem__(logs["epoch"], weights(m)), **kw)
    return after


def assert_weights(m, expected):
    got = weights(m)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


def test_it_stops_after_patience_epochs_without_improvement_and_restores_the_best_epoch():
    x, y = data()
    flipped = (x, 1 - y)  # learning the task makes this validation loss worse
    m, stopper = model(), EarlyStopping(patience=3)
    after = fit_recording(m, stopper, flipped)
    val = m.history["val_loss"]
    best = int(np.argmin(val)) + 1
    assert stopper.best_epoch == best and stopper.best_val_loss == val[best - 1]
    assert stopper.stopped_epoch == best + 3 == m.epoch == len(val) < 12  # it did stop early
    assert all(v >= val[best - 1] for v in val[best:])
    assert stopper.restored_epoch == best and m.early_stopping is stopper
    assert_weights(m, after[best])
    assert m.history["epoch"] == list(range(1, m.epoch + 1))  # every epoch that ran, and no other
    assert {len(v) for v in m.history.values()} == {m.epoch}
    report = stopper.report()
    assert report["stopped_epoch"] == m.epoch and report["restored_epoch"] == best and report["patience"] == 3


def test_min_delta_counts_only_large_enough_improvements():
    x, y = data()
    m = model()
    after = fit_recording(m, EarlyStopping(patience=2, min_delta=10.0), (x, y), learning_rate=0.5)
    assert m.history["val_loss"][2] < m.history["val_loss"][0]  # it improved, but by less than 10
    assert m.early_stopping.stopped_epoch == 3 and m.early_stopping.best_epoch == 1
    assert_weights(m, after[1])


def test_a_run_that_keeps_improving_is_not_stopped_and_keeps_its_last_weights():
    x, y = data()
    m = model()
    after = fit_recording(m, 2, (x, y), epochs=5, learning_rate=0.5)  # an integer is the patience
    assert np.all(np.diff(m.history["val_loss"]) < 0)
    assert m.epoch == 5 and m.early_stopping.stopped_epoch is None and m.early_stopping.restored_epoch is None
    assert_weights(m, after[5])


def test_restore_best_false_keeps_the_last_weights():
    x, y = data()
    m = model()
    after = fit_recording(m, EarlyStopping(patience=1, restore_best=False), (x, 1 - y))
    assert m.early_stopping.stopped_epoch == m.epoch < 12 and m.early_stopping.restored_epoch is None
    assert_weights(m, after[m.epoch])


def test_every_fit_starts_counting_afresh():
    x, y = data()
    m, stopper = model(), EarlyStopping(patience=1)
    m.fit(x, y, epochs=10, batch_size=8, learning_rate=1.0, validation_data=(x, 1 - y), early_stopping=stopper)
    first = stopper.stopped_epoch
    m.fit(x, y, epochs=1, batch_size=8, validation_data=(x, 1 - y), early_stopping=stopper)
    assert first is not None and stopper.stopped_epoch is None and stopper.best_epoch == m.epoch


def test_it_restores_on_array_api_strict_device1(device1):
    x, y = data()
    m = model().to(device1)
    m.fit(x, y, epochs=12, batch_size=8, learning_rate=1.0, validation_data=(x, 1 - y), early_stopping=1)
    assert m.early_stopping.restored_epoch is not None
    assert backend.Device.of(m.layers[0].params["weights"]) == m.device


def test_val_accuracy_stops_when_the_accuracy_stops_rising_beyond_min_delta():
    x, y = data()
    m = model()
    after = fit_recording(m, EarlyStopping(patience=2, min_delta=0.05, monitor="val_accuracy"), (x, y),
                          learning_rate=0.5)
    acc = m.history["val_accuracy"]
    stopper = m.early_stopping
    best = stopper.best_epoch
    assert stopper.stopped_epoch == best + 2 == m.epoch < 12 and stopper.best == acc[best - 1]
    assert all(a <= acc[best - 1] + 0.05 for a in acc[best:])
    assert stopper.best_val_loss == m.history["val_loss"][best - 1]
    assert stopper.report()["monitor"] == "val_accuracy" and stopper.report()["best"] == acc[best - 1]
    assert_weights(m, after[best])


def test_the_restored_weights_include_batchnorm_running_statistics():
    """The best epoch's running statistics come back with its parameters, and inference agrees with that epoch."""
    x, y = data(48)
    flipped = (x, 1 - y)
    m = xc.Sequential([xc.Dense(4, 6), xc.BatchNorm1D(6), xc.ReLU(), xc.Dropout(0.2), xc.Dense(6, 1), xc.Sigmoid()],
                      seed=0)
    kept, outputs = {}, {}

    def remember(logs):
        kept[logs["epoch"]] = {k: backend.to_numpy(v).copy() for k, v in m.layers[1].buffers.items()}
        outputs[logs["epoch"]] = backend.to_numpy(m.predict(x)).copy()

    m.fit(x, y, epochs=15, batch_size=8, learning_rate=1.0, validation_data=flipped, early_stopping=2,
          on_epoch=remember)
    best, last = m.early_stopping.restored_epoch, m.epoch
    assert best is not None and best < last
    assert not np.array_equal(kept[best]["running_mean"], kept[last]["running_mean"])  # they did move on
    for key, value in kept[best].items():
        np.testing.assert_array_equal(backend.to_numpy(m.layers[1].buffers[key]), value, err_msg=key)
    np.testing.assert_array_equal(backend.to_numpy(m.predict(x)), outputs[best])


def test_bad_settings_are_clear_errors_before_training():
    x, y = data()
    m = model()
    with pytest.raises(ConfigError, match="early_stopping watches val_loss, which needs validation data; pass "
                                          r"validation_data=\(x, y\)"):
        m.fit(x, y, early_stopping=3)
    with pytest.raises(ConfigError, match="watches val_accuracy"):
        m.fit(x, y, early_stopping=EarlyStopping(3, monitor="val_accuracy"))
    with pytest.raises(ConfigError, match="monitor must be one of 'val_loss', 'val_accuracy'"):
        EarlyStopping(3, monitor="loss")
    with pytest.raises(ConfigTypeError, match="early_stopping must be an EarlyStopping, an integer patience"):
        m.fit(x, y, validation_data=(x, y), early_stopping="3")
    with pytest.raises(ConfigTypeError, match="early_stopping must be"):
        m.fit(x, y, validation_data=(x, y), early_stopping=True)
    assert m.epoch == 0
    with pytest.raises(ConfigError, match="patience must be an integer >= 1"):
        EarlyStopping(0)
    with pytest.raises(ConfigError, match="min_delta must be >= 0"):
        EarlyStopping(2, min_delta=-0.1)
    with pytest.raises(ConfigTypeError, match="restore_best must be True or False"):
        EarlyStopping(2, restore_best="yes")


@pytest.mark.gpu
def test_on_cuda_a_scheduled_run_stops_restores_and_matches_the_cpu_run(cuda):
    x, y = data()
    runs = []
    for device in ("cpu", cuda):
        m = model().to(device)
        m.fit(x, y, epochs=12, batch_size=8, learning_rate=1.0, validation_data=(x, 1 - y), early_stopping=2,
              schedule=xc.Chain(xc.Warmup(4), xc.Cosine(12)))
        runs.append(m)
    cpu, gpu = runs
    assert gpu.early_stopping.report()["restored_epoch"] == cpu.early_stopping.report()["restored_epoch"] is not None
    assert gpu.history["learning_rate"] == cpu.history["learning_rate"]
    for key, value in weights(cpu).items():
        np.testing.assert_allclose(weights(gpu)[key], value, rtol=1e-4, atol=1e-5, err_msg=key)
    assert f"Total params: {cpu.parameter_count():,}" in gpu.summary_text()


def test_a_numpy_integer_patience_is_taken_like_an_int_and_a_numpy_bool_is_not():
    assert EarlyStopping.of(np.int64(3)).patience == 3
    with pytest.raises(ConfigTypeError, match="early_stopping must be an EarlyStopping, an integer patience or None"):
        EarlyStopping.of(np.bool_(True))


def feed(stopper, m, values, key="val_loss"):
    """``stopper.update`` after epochs 1, 2, ... whose monitored value is ``values[i]``; the stop flags."""
    stopper.start()
    flags = []
    for epoch, value in enumerate(values, start=1):
        logs = {"epoch": epoch, "val_loss": 1.0, "val_accuracy": 0.5, key: value}
        flags.append(stopper.update(m, logs))
        if flags[-1]:
            break
    return flags


def test_the_defaults_are_kerass_patience_5_no_min_delta_restore_and_val_loss():
    stopper = EarlyStopping()
    assert (stopper.patience, stopper.min_delta, stopper.restore_best, stopper.monitor) == (5, 0.0, True, "val_loss")
    assert feed(stopper, model(), [1.0] * 10) == [False] * 5 + [True]  # stops after 5 epochs without improvement


def test_an_equal_value_is_no_improvement_and_with_min_delta_only_a_rise_beyond_it_counts():
    m = model()
    stopper = EarlyStopping(patience=2)
    assert feed(stopper, m, [1.0, 1.0, 1.0]) == [False, False, True] and stopper.best_epoch == 1
    stopper = EarlyStopping(patience=2, monitor="val_accuracy")
    assert feed(stopper, m, [0.5, 0.5, 0.5], "val_accuracy") == [False, False, True] and stopper.best_epoch == 1
    stopper = EarlyStopping(patience=2, min_delta=0.05, monitor="val_accuracy")
    # 0.47 and 0.53 are within 0.05 of the best 0.5: no improvement either way; 0.56 is one
    assert feed(stopper, m, [0.5, 0.47, 0.56, 0.53, 0.6], "val_accuracy") == [False, False, False, False, True]
    assert stopper.best_epoch == 3 and stopper.best == 0.56


def test_a_nan_value_never_improves_and_counts_towards_the_patience_from_the_first_epoch():
    stopper = EarlyStopping(patience=2)
    assert feed(stopper, model(), [float("nan")] * 3) == [False, True]
    # nothing improved: the starting values, +inf for a loss (numbers, as the CLI formats them), and None reported
    assert stopper.best_epoch is None and stopper.best == math.inf and stopper.best_val_loss == math.inf
    stopper.finish(model())
    assert stopper.restored_epoch is None and stopper.stopped_epoch == 2
    assert stopper.report()["best"] is None and stopper.report()["best_val_loss"] is None


def test_the_report_names_every_field_and_is_strict_json_before_and_after_a_run():
    stopper = EarlyStopping(patience=1, min_delta=0.25, restore_best=False, monitor="val_accuracy")
    fresh = {"monitor": "val_accuracy", "patience": 1, "min_delta": 0.25, "restore_best": False,
             "stopped_epoch": None, "best_epoch": None, "best": None, "best_val_loss": None, "restored_epoch": None}
    assert stopper.report() == fresh
    json.dumps(stopper.report(), allow_nan=False)  # JSON-ready: no infinite best before any epoch
    m = model()
    stopper.start()
    stopper.update(m, {"epoch": 1, "val_loss": 0.75, "val_accuracy": 0.5})
    assert stopper.update(m, {"epoch": 2, "val_loss": 0.5, "val_accuracy": 0.625})  # +0.125 < 0.25: stop
    stopper.finish(m)
    assert stopper.report() == {**fresh, "stopped_epoch": 2, "best_epoch": 1, "best": 0.5, "best_val_loss": 0.75}
    json.dumps(stopper.report(), allow_nan=False)


def test_the_best_weights_are_a_copy_that_later_in_place_changes_do_not_reach():
    m = xc.Sequential([xc.Dense(4, 3), xc.BatchNorm1D(3), xc.Dense(3, 1), xc.Sigmoid()], seed=0)
    m.predict(data()[0])  # every layer built
    best = weights(m)
    buffers = {k: backend.to_numpy(v).copy() for k, v in m.layers[1].buffers.items()}
    stopper = EarlyStopping(patience=1)
    stopper.start()
    assert not stopper.update(m, {"epoch": 1, "val_loss": 0.5, "val_accuracy": 0.5})
    for layer in m.layers:  # the arrays the model holds, changed in place (NumPy arrays on the CPU)
        for arrays in (layer.params, layer.buffers):
            for value in arrays.values():
                value[...] = 7.0
    assert stopper.update(m, {"epoch": 2, "val_loss": 0.75, "val_accuracy": 0.5})
    stopper.finish(m)
    assert stopper.restored_epoch == 1
    assert_weights(m, best)
    for key, value in m.layers[1].buffers.items():
        np.testing.assert_array_equal(backend.to_numpy(value), buffers[key], err_msg=key)
    assert set(buffers) == {"running_mean", "running_var"}


def test_bad_settings_name_early_stopping_in_one_line():
    with pytest.raises(ConfigError, match=r"^EarlyStopping: patience must be an integer >= 1, got 0$"):
        EarlyStopping(0)
    with pytest.raises(ConfigError, match=r"^EarlyStopping: min_delta must be >= 0 and finite, got -0.5$"):
        EarlyStopping(2, min_delta=-0.5)
    with pytest.raises(ConfigError, match=r"^EarlyStopping: monitor must be one of 'val_loss', 'val_accuracy', "
                                          r"got 'loss'$"):
        EarlyStopping(2, monitor="loss")
