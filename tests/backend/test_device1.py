"""Whole training runs on ``array_api_strict``'s ``device1``: the GPU stand-in of CPU-only CI.

``device1`` is a second device that, like CuPy, refuses implicit conversion to NumPy, so a run
that finishes there touched the host only through the explicit moves of ``xpcnn.backend``.
Every run is compared with the same run on NumPy, from the same seed.
"""

from __future__ import annotations

import numpy as np
import pytest
from array_api_compat import is_numpy_array

import xpcnn as xc
from xpcnn.datasets import load_sample

EPOCHS, BATCH = 3, 32
OPTIMIZERS = {"sgd": lambda: xc.SGD(0.05), "momentum": lambda: xc.SGD(0.02, momentum=0.9),
              "adam": lambda: xc.Adam(2e-3)}


def zero_one_digits():
    """The derivation's task on the embedded sample: 0s and 1s, ``(400, 1, 28, 28)`` float32 in [0, 1]."""
    images, labels = load_sample()
    keep = labels < 2
    x = (images[keep][:, None] / np.float32(255)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[labels[keep]]
    return x[:320], y[:320], x[320:], y[320:]


def network(engine: str = "auto", **kw) -> xc.Sequential:
    """Conv 4×3×3 (untied biases) -> Tanh -> Flatten -> Dense 2 -> Sigmoid, from seed 0."""
    return xc.Sequential([
        xc.Convolutional((1, 28, 28), 3, 4, engine=engine), xc.Tanh(), xc.Flatten(),
        xc.Dense(4 * 26 * 26, 2), xc.Sigmoid(),
    ], seed=0, **kw)


def train(model: xc.Sequential, x, y, xv, yv, optimizer: str, epochs: int = EPOCHS) -> dict:
    return model.fit(x, y, epochs=epochs, batch_size=BATCH, optimizer=OPTIMIZERS[optimizer](),
                     validation_data=(xv, yv))


def assert_all_on(model: xc.Sequential, device: xc.Device) -> None:
    assert model.device == device
    for layer in model.layers:
        for name, p in layer.params.items():
            assert xc.backend.Device.of(p) == device, f"{layer!r}.{name} is on {xc.backend.Device.of(p)}"
            assert p.dtype == device.xp.float32
    for key, slot in (model.optimizer.slots if model.optimizer else {}).items():
        assert xc.backend.Device.of(slot) == device, f"optimizer slot {key}"


def assert_same_history(got: dict, expected: dict) -> None:
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-7, err_msg=key)


@pytest.fixture(scope="module")
def data():
    return zero_one_digits()


def test_device1_refuses_implicit_conversion_to_numpy(device1):
    a = xc.to_device(np.ones(3, dtype=np.float32), device1)
    with pytest.raises(RuntimeError, match="device1"):
        np.asarray(a)
    np.testing.assert_array_equal(xc.to_numpy(a), np.ones(3))  # the explicit way works


@pytest.mark.parametrize("engine,optimizer",
                         [("gemm", "sgd"), ("signal", "sgd"), ("gemm", "momentum"), ("gemm", "adam")])
def test_whole_training_run_on_device1_from_numpy_inputs_matches_numpy(device1, data, engine, optimizer):
    x, y, xv, yv = data
    reference = network(engine)
    expected = train(reference, x, y, xv, yv, optimizer)
    model = network(engine, device=device1)
    history = train(model, x, y, xv, yv, optimizer)
    assert_all_on(model, device1)
    assert_same_history(history, expected)
    assert history["val_accuracy"][-1] >= 0.95  # it learned, on device1
    out = model.predict(xv)
    assert xc.backend.Device.of(out) == device1 and out.dtype == device1.xp.float32
    np.testing.assert_allclose(xc.to_numpy(out), reference.predict(xv), rtol=1e-5, atol=1e-7)


def test_strict_cpu_inputs_are_moved_to_device1_batch_by_batch(device1, strict_cpu, data):
    x, y, xv, yv = data
    expected = train(network(), x, y, xv, yv, "adam")
    model = network(device=device1)
    moved = [xc.to_device(a, strict_cpu) for a in (x, y, xv, yv)]
    history = train(model, *moved, "adam")
    assert_all_on(model, device1)
    assert_same_history(history, expected)
    assert all(xc.backend.Device.of(a) == strict_cpu for a in moved)  # the caller's arrays stay put
    scores = model.evaluate(moved[2], moved[3])
    assert scores["accuracy"] == pytest.approx(history["val_accuracy"][-1])


def test_model_moves_between_devices_mid_training_and_continues_identically(device1, data):
    x, y, xv, yv = data
    expected = train(network(), x, y, xv, yv, "adam", epochs=3)
    model = network(device=device1)
    train(model, x, y, xv, yv, "adam", epochs=1)
    model.to("cpu")  # parameters and Adam's moments come home
    assert_all_on(model, xc.CPU)
    assert all(is_numpy_array(s) for s in model.optimizer.slots.values())
    model.fit(x, y, epochs=1, batch_size=BATCH, validation_data=(xv, yv))
    model.to(device1)
    assert_all_on(model, device1)
    model.fit(x, y, epochs=1, batch_size=BATCH, validation_data=(xv, yv))
    assert_same_history(model.history, expected)


def test_input_on_another_device_is_refused_not_converted(device1, data):
    x = data[0][:4]
    model = network(device=device1)
    with pytest.raises(ValueError, match=r"input lives on cpu.*device1.*to_device"):
        model.forward(x)  # forward does not move: only fit / predict / evaluate do


def test_checkpoint_saved_on_device1_loads_on_cpu_and_back_on_device1(device1, data, tmp_path):
    from xpcnn.io import checkpoint
    x, y, xv, yv = data
    model = network(device=device1)
    train(model, x, y, xv, yv, "adam", epochs=1)
    path = tmp_path / "model.npz"
    checkpoint.save_checkpoint(path, model)

    on_cpu = checkpoint.load_checkpoint(path, device="cpu")
    assert_all_on(on_cpu, xc.CPU)
    np.testing.assert_allclose(on_cpu.predict(xv), xc.to_numpy(model.predict(xv)), rtol=0)

    back = checkpoint.load_checkpoint(path, device=device1)
    assert_all_on(back, device1)
    # both carry on identically: same weights, same Adam moments, same shuffling generator
    model.fit(x, y, epochs=1, batch_size=BATCH)
    back.fit(x, y, epochs=1, batch_size=BATCH)
    assert back.epoch == model.epoch == 2
    np.testing.assert_allclose(back.history["loss"], model.history["loss"], rtol=1e-6)
    for a, b in zip(back.layers, model.layers):
        for name in a.params:
            np.testing.assert_array_equal(xc.to_numpy(a.params[name]), xc.to_numpy(b.params[name]))


def network_bn(**kw) -> xc.Sequential:
    """Conv 4×3×3 (no bias) -> BatchNorm -> ReLU -> AvgPool -> Dropout -> GlobalAveragePool -> Dense 2 -> Softmax."""
    return xc.Sequential([
        xc.Convolutional((1, 28, 28), 3, 4, bias="none"), xc.BatchNorm2D(4), xc.ReLU(), xc.AvgPool2D(2),
        xc.Dropout(0.2), xc.GlobalAveragePool2D(), xc.Dense(4, 2), xc.Softmax(),
    ], seed=0, **kw)


def test_whole_run_with_batchnorm_and_dropout_on_device1_matches_numpy(device1, data):
    x, y, xv, yv = data
    y, yv = np.eye(2, dtype=np.float32)[y.argmax(1)], np.eye(2, dtype=np.float32)[yv.argmax(1)]
    def fit(model):
        return model.fit(x, y, loss="categorical_cross_entropy", epochs=2, batch_size=BATCH,
                         optimizer=OPTIMIZERS["adam"](), validation_data=(xv, yv))
    expected = fit(reference := network_bn())
    model = network_bn(device=device1)
    history = fit(model)
    assert_all_on(model, device1)
    assert all(xc.backend.Device.of(b) == device1 for layer in model.layers for b in layer.buffers.values())
    assert_same_history(history, expected)
    for a, b in zip(model.layers, reference.layers):
        for name in a.buffers:  # the same running statistics: the same batches and the same masks
            np.testing.assert_allclose(xc.to_numpy(a.buffers[name]), b.buffers[name], rtol=1e-5, atol=1e-7)
