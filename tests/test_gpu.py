"""CuPy against NumPy: every layer, loss and optimizer, every engine, training, checkpoints, the CLI.

Run with ``pytest -m gpu``. Without CuPy or a visible GPU every test here is skipped, and the
reason says which is missing. Each test builds the same thing from the same seed on the host
and on ``cuda:0`` (the weights are drawn on the host, then moved) and compares the results
through ``xpcnn.to_numpy``. float64 must agree to rounding (rtol 1e-10, atol 1e-11); float32
within the tolerances CuPy's own tests use (rtol 1e-4, atol 1e-5), each atol scaled by the
largest value compared; and a float32 input must give float32 outputs and gradients on the GPU.
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
from xpcnn.engines import ENGINES, auto, get_engine
from xpcnn.losses import LOSSES

pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("cuda")]

ROOT = Path(__file__).resolve().parents[1]
DTYPES = ["float64", "float32"]
N = 5


def assert_close(gpu_array, cpu_array, device: xc.Device, dtype: str, what: str = "") -> None:
    """``gpu_array`` lives on ``device``, keeps ``dtype`` and matches the NumPy result."""
    assert xc.backend.Device.of(gpu_array) == device, what
    assert gpu_array.dtype == getattr(device.xp, dtype), f"{what}: {gpu_array.dtype} on the GPU, expected {dtype}"
    got, expected = xc.to_numpy(gpu_array), np.asarray(cpu_array)
    assert got.shape == expected.shape, what
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))  # sums of many terms round in absolute terms
    rtol, atol = (1e-10, 1e-11) if dtype == "float64" else (1e-4, 1e-5)
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol * scale, err_msg=what)


# -- layers --------------------------------------------------------------------------------------

def _conv(engine, **kw):
    return lambda dtype: xc.Convolutional((2, 9, 8), 3, 4, engine=engine, dtype=dtype, seed=0, **kw)


LAYERS = {  # name: (factory(dtype) -> layer, per-sample input shape)
    "conv-signal-untied": (_conv("signal"), (2, 9, 8)),
    "conv-gemm-untied": (_conv("gemm"), (2, 9, 8)),
    "conv-signal-tied-same": (_conv("signal", bias="tied", padding="same"), (2, 9, 8)),
    "conv-gemm-tied-same": (_conv("gemm", bias="tied", padding="same"), (2, 9, 8)),
    "conv-signal-untied-pad2": (_conv("signal", padding=2), (2, 9, 8)),
    "conv-gemm-tied-pad2": (_conv("gemm", bias="tied", padding=2), (2, 9, 8)),
    "conv-direct-tied-same": (_conv("signal-direct", bias="tied", padding="same"), (2, 9, 8)),
    "conv-signal-stride2-pad1": (_conv("signal", stride=2, padding=1), (2, 9, 8)),
    "conv-gemm-stride3": (_conv("gemm", stride=3, bias="tied"), (2, 9, 8)),
    "conv-direct-stride2": (_conv("signal-direct", stride=2), (2, 9, 8)),
    "dense": (lambda dtype: xc.Dense(12, 5, dtype=dtype, seed=0), (12,)),
    "reshape": (lambda dtype: xc.Reshape((2, 3, 4), (24,)), (2, 3, 4)),
    "flatten": (lambda dtype: xc.Flatten(), (2, 3, 4)),
    "sigmoid": (lambda dtype: xc.Sigmoid(), (3, 7)),
    "tanh": (lambda dtype: xc.Tanh(), (3, 7)),
    "relu": (lambda dtype: xc.ReLU(), (3, 7)),
    "softmax": (lambda dtype: xc.Softmax(), (7,)),
    "maxpool": (lambda dtype: xc.MaxPool2D(2), (3, 9, 8)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", LAYERS)
def test_layer_forward_and_backward_match_numpy(cuda, name, dtype):
    make, shape = LAYERS[name]
    cpu_layer, gpu_layer = make(dtype), make(dtype).to(cuda)
    for key, p in cpu_layer.params.items():  # same seed, same weights: drawn on the host, then moved
        np.testing.assert_array_equal(xc.to_numpy(gpu_layer.params[key]), p)
    rng = np.random.default_rng(1)
    x = (3 * rng.standard_normal((N, *shape))).astype(dtype)
    y = cpu_layer.forward(x)
    assert_close(gpu_layer.forward(xc.to_device(x, cuda)), y, cuda, dtype, f"{name} forward")
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = cpu_layer.backward(dy)
    assert_close(gpu_layer.backward(xc.to_device(dy, cuda)), dx, cuda, dtype, f"{name} ∂E/∂X")
    assert set(gpu_layer.grads) == set(cpu_layer.grads)
    for key, g in cpu_layer.grads.items():
        assert_close(gpu_layer.grads[key], g, cuda, dtype, f"{name} ∂E/∂{key}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("engine", list(ENGINES))
def test_engine_products_match_numpy(cuda, engine, dtype, stride):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, 3, 11, 10)).astype(dtype)
    k = rng.standard_normal((4, 3, 3, 3)).astype(dtype)
    dy = rng.standard_normal((N, 4, 8 // stride + 1, 7 // stride + 1)).astype(dtype)
    e = get_engine(engine)  # engines hold no state: one instance serves both devices
    xg, kg, dyg = (xc.to_device(a, cuda) for a in (x, k, dy))
    (y_gpu, kept_gpu), (y_cpu, kept_cpu) = e.forward(xg, kg, stride, keep=True), e.forward(x, k, stride, keep=True)
    assert_close(y_gpu, y_cpu, cuda, dtype, "forward")
    dk_gpu, dx_gpu = e.backward(xg, kg, dyg, stride, kept_gpu)
    dk_cpu, dx_cpu = e.backward(x, k, dy, stride, kept_cpu)
    assert_close(dk_gpu, dk_cpu, cuda, dtype, "kernel_gradient")
    assert_close(dx_gpu, dx_cpu, cuda, dtype, "input_gradient")


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

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", LOSSES)
def test_loss_and_its_prime_match_numpy(cuda, name, dtype):
    rng = np.random.default_rng(3)
    y_pred = rng.uniform(0.01, 0.99, (8, 5)).astype(dtype)
    y_pred[0, :2] = (0.0, 1.0)  # the clipped ends
    y_true = np.eye(5, dtype=dtype)[rng.integers(0, 5, 8)]
    loss, prime = LOSSES[name]
    yt, yp = xc.to_device(y_true, cuda), xc.to_device(y_pred, cuda)
    assert_close(loss(yt, yp), loss(y_true, y_pred), cuda, dtype, f"{name}")
    assert_close(prime(yt, yp), prime(y_true, y_pred), cuda, dtype, f"{name}_prime")


OPTIMIZERS = {
    "sgd": lambda: xc.SGD(0.1),
    "momentum": lambda: xc.SGD(0.1, momentum=0.9),
    "adam": lambda: xc.Adam(1e-2),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_steps_and_state_match_numpy(cuda, name, dtype):
    cpu_layer, gpu_layer = xc.Dense(6, 3, dtype=dtype, seed=0), xc.Dense(6, 3, dtype=dtype, seed=0).to(cuda)
    cpu_opt, gpu_opt = OPTIMIZERS[name](), OPTIMIZERS[name]()
    rng = np.random.default_rng(4)
    for _ in range(4):
        grads = {k: rng.standard_normal(p.shape).astype(dtype) for k, p in cpu_layer.params.items()}
        cpu_layer.grads = grads
        gpu_layer.grads = {k: xc.to_device(g, cuda) for k, g in grads.items()}
        cpu_opt.step([cpu_layer])
        gpu_opt.step([gpu_layer])
    for key, p in cpu_layer.params.items():
        assert_close(gpu_layer.params[key], p, cuda, dtype, f"{name} {key}")
    assert set(gpu_opt.slots) == set(cpu_opt.slots)
    for key, slot in cpu_opt.slots.items():
        assert_close(gpu_opt.slots[key], slot, cuda, dtype, f"{name} slot {key}")


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
    checkpoint = pytest.importorskip("xpcnn.checkpoint", reason="xpcnn.checkpoint (issue 3) is not in this checkout")
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
    checkpoint = pytest.importorskip("xpcnn.checkpoint", reason="xpcnn.checkpoint (issue 3) is not in this checkout")
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
