"""CuPy against NumPy: every layer, loss and optimizer, every engine, training, checkpoints, the CLI.

Run with ``pytest -m gpu``. Without CuPy or a visible GPU every test here is skipped, and the
reason says which is missing. The layer, engine, loss and optimizer tests run the parity cases of
``xpcnn-doctor`` (:mod:`xpcnn.testing.parity`, one set for both): each builds the same thing from
the same seed on the host and on ``cuda:0`` (the weights are drawn on the host, then moved) and
compares with NumPy float64 (engines: with the derivation's loops). float64 must agree to rounding
(rtol 1e-10, atol 1e-11); float32 within the tolerances CuPy's own tests use (rtol 1e-4, atol
1e-5), each atol scaled by the largest value compared; and a float32 input must give float32
outputs and gradients on the GPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xpcnn as xc
from xpcnn.datasets import load_sample
from xpcnn.testing import parity as cases
from xpcnn.doctor.report import check_line
from xpcnn.engines import ENGINES, auto
from xpcnn.losses import LOSSES

pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("cuda")]

ROOT = Path(__file__).resolve().parents[2]
DTYPES = list(cases.DTYPES)


# -- the parity cases of xpcnn-doctor (xpcnn/testing/parity.py): layers, engines, losses, optimizers ----

@pytest.mark.parametrize("dtype", cases.DTYPES)
@pytest.mark.parametrize("name", cases.LAYER_CASES)
def test_layer_forward_and_backward_match_numpy(cuda, name, dtype):
    case = cases.LAYER_CASES[name]
    cpu_layer, gpu_layer = case.make(dtype), case.make(dtype).to(cuda)
    for key, p in cpu_layer.params.items():  # same seed, same weights: drawn on the host, then moved
        np.testing.assert_array_equal(xc.to_numpy(gpu_layer.params[key]), p)
    check = cases.check_layer(name, cuda, dtype)
    assert check.ok, check_line(check)


@pytest.mark.parametrize("dtype", cases.DTYPES)
@pytest.mark.parametrize("stride", cases.STRIDES)
@pytest.mark.parametrize("engine", cases.ENGINE_NAMES)
def test_engine_products_match_the_derivations_loops(cuda, engine, dtype, stride):
    check = cases.check_engine(engine, cuda, dtype, stride)
    assert check.ok, check_line(check)


def test_auto_measures_on_the_gpu_and_names_its_choice(cuda, monkeypatch):
    monkeypatch.delenv(auto.ENV, raising=False)
    auto.forget()
    layer = xc.Convolutional((3, 32, 32), 5, 8, seed=0).to(cuda)
    y = layer.forward(xc.to_device(np.ones((16, 3, 32, 32), np.float32), cuda))
    (choice,) = auto.choices()
    assert layer.chosen_engine == choice["engine"] in ENGINES and choice["device"] == cuda.name
    assert set(choice["seconds"]) == {"gemm", "signal", "signal-direct"}  # direct is a candidate on CuPy
    assert xc.backend.Device.of(y) == cuda
    auto.forget()


# -- losses and optimizers ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", cases.DTYPES)
@pytest.mark.parametrize("name", LOSSES)
def test_loss_and_its_prime_match_numpy(cuda, name, dtype):
    check = cases.check_loss(name, cuda, dtype)
    assert check.ok, check_line(check)


@pytest.mark.parametrize("dtype", cases.DTYPES)
@pytest.mark.parametrize("name", cases.OPTIMIZER_CASES)
def test_optimizer_steps_and_state_match_numpy(cuda, name, dtype):
    check = cases.check_optimizer(name, cuda, dtype)
    assert check.ok, check_line(check)


# -- training, checkpoints, the script ------------------------------------------------------------

def zero_one_digits():
    images, labels = load_sample()
    keep = labels < 2
    x = (images[keep][:, None] / np.float32(255)).astype(np.float32)
    return x, np.eye(2, dtype=np.float32)[labels[keep]]


def network(engine: str, dtype: str, device="cpu") -> xc.Sequential:
    return xc.Sequential([
        xc.Convolutional((1, 28, 28), 3, 4, engine=engine, padding=1, bias="tied"), xc.ReLU(),
        xc.MaxPool2D(2), xc.Flatten(), xc.Dense(4 * 14 * 14, 16), xc.Tanh(), xc.Dense(16, 2), xc.Sigmoid(),
    ], seed=0, dtype=dtype, device=device)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("engine", list(ENGINES))
def test_training_from_the_same_seed_gives_the_same_loss_curve(cuda, engine, dtype):
    x, y = zero_one_digits()
    curves = {}
    for where in ("cpu", cuda):
        model = network(engine, dtype, where)
        batches = []
        model.fit(x, y, epochs=2, batch_size=32, optimizer=xc.Adam(2e-3),
                  on_batch=lambda logs: batches.append(float(logs["loss"])))
        curves[str(where)] = (model, np.array(batches), model.history)
    (cpu_model, cpu_batches, cpu_history), (gpu_model, gpu_batches, gpu_history) = curves.values()
    rtol = 1e-8 if dtype == "float64" else 2e-3
    np.testing.assert_allclose(gpu_batches, cpu_batches, rtol=rtol)
    np.testing.assert_allclose(gpu_history["loss"], cpu_history["loss"], rtol=rtol)
    assert gpu_history["accuracy"][-1] >= 0.95
    for cpu_layer, gpu_layer in zip(cpu_model.layers, gpu_model.layers):
        for key, p in cpu_layer.params.items():
            assert xc.backend.Device.of(gpu_layer.params[key]) == cuda
            assert gpu_layer.params[key].dtype == getattr(cuda.xp, dtype)
            np.testing.assert_allclose(xc.to_numpy(gpu_layer.params[key]), p, rtol=rtol * 10, atol=rtol)


def test_checkpoint_saved_on_cuda_loads_on_cpu(cuda, tmp_path):
    from xpcnn.io import checkpoint
    x, y = zero_one_digits()
    model = network("auto", "float32", cuda)
    model.fit(x, y, epochs=1, batch_size=32, optimizer=xc.Adam(2e-3))
    path = tmp_path / "cuda.npz"
    checkpoint.save_checkpoint(path, model)
    loaded = checkpoint.load_checkpoint(path, device="cpu")
    assert loaded.device == xc.CPU and loaded.epoch == 1
    for saved, cpu_layer in zip(model.layers, loaded.layers):
        for key, p in cpu_layer.params.items():  # host copies of the very same numbers
            np.testing.assert_array_equal(p, xc.to_numpy(saved.params[key]))
    np.testing.assert_allclose(loaded.predict(x), xc.to_numpy(model.predict(x)), rtol=1e-4, atol=1e-5)
    for key, slot in loaded.optimizer.slots.items():
        np.testing.assert_array_equal(slot, xc.to_numpy(model.optimizer.slots[key]))


def test_train_script_runs_end_to_end_on_cuda_like_on_cpu(cuda, tmp_path):
    script = ROOT / "scripts" / "train.py"
    if not script.exists():
        pytest.skip("scripts/train.py (issue 3) is not in this checkout")
    from xpcnn.io import checkpoint
    runs = {}
    for device in ("cuda", "cpu"):
        folder = tmp_path / device
        folder.mkdir()
        result = subprocess.run(
            [sys.executable, str(script), "--device", device, "--dataset", "sample", "--epochs", "2",
             "--dtype", "float64", "--quiet", "--save", "model.npz", "--metrics-json", "metrics.json"],
            cwd=folder, capture_output=True, text=True, timeout=600,
        )
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        runs[device] = json.loads((folder / "metrics.json").read_text())
    assert runs["cuda"]["device"] == cuda.name and runs["cuda"]["epochs_total"] == 2
    gpu_loss = [h["loss"] for h in runs["cuda"]["history"]]
    cpu_loss = [h["loss"] for h in runs["cpu"]["history"]]
    np.testing.assert_allclose(gpu_loss, cpu_loss, rtol=1e-6)
    model = checkpoint.load_checkpoint(tmp_path / "cuda" / "model.npz", device="cpu")  # saved on CUDA
    assert model.device == xc.CPU and model.epoch == 2
