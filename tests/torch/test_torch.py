"""PyTorch tensors as an array library (issue 23): xpcnn's layers on ``torch:cpu`` against NumPy.

Every layer, loss, optimizer rule and engine runs the parity cases of ``xpcnn-doctor``
(:mod:`xpcnn.testing.parity`) on ``torch:cpu`` against NumPy float64 (float64 rtol 1e-10, float32
1e-4); three training steps of the zoo's networks equal NumPy's; checkpoints cross between NumPy and
torch; ONNX and safetensors export from a torch-held model; ``import xpcnn`` imports no torch. The
``gpu``-marked tests at the end repeat the parity cases on ``torch:cuda`` and ``torch:mps`` where
this PyTorch build has them (skipped otherwise, with the reason).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import xpcnn as xc
from xpcnn import backend
from xpcnn.doctor.report import check_line
from xpcnn.engines import ENGINES, auto
from xpcnn.io.checkpoint import load_checkpoint, save_checkpoint
from xpcnn.testing import parity as cases
from xpcnn.zoo import build_model

torch = pytest.importorskip("torch")

TOLERANCES = {"float64": (1e-10, 1e-11), "float32": (1e-4, 1e-5)}


@pytest.fixture
def tcpu() -> xc.Device:
    return xc.get_device("torch:cpu")


def on_host(x) -> np.ndarray:
    return xc.to_numpy(x)


# -- import and devices ----------------------------------------------------------------------------

def test_importing_xpcnn_imports_no_torch():
    code = ("import sys, xpcnn, xpcnn.io, xpcnn.zoo, xpcnn.engines, xpcnn.backend; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("spec", ["torch:cpu", "TORCH:CPU", " torch:cpu", "torch:cpu:0"])
def test_torch_cpu_spellings_name_one_device_that_tensors_report(spec):
    dev = xc.get_device(spec)
    assert dev.name == "torch:cpu" and dev.backend is backend.TORCH
    assert dev == backend.Device.of(torch.zeros(1)) == xc.get_device(torch.device("cpu"))
    assert dev.native == torch.device("cpu")


@pytest.mark.parametrize("spec", ["torch:tpu", "torch:", "torch:cpu:1", "torch:cuda:x", "torch:mps:1", "torch"])
def test_unknown_torch_devices_list_the_accepted_spellings(spec):
    with pytest.raises(xc.errors.ConfigError, match=r"expected 'cpu', 'cuda', 'cuda:N', 'torch:cpu', 'torch:cuda'"):
        xc.get_device(spec)


def test_a_torch_device_type_xpcnn_does_not_serve_is_refused_in_one_line():
    with pytest.raises(xc.errors.ConfigError, match=r"unknown device device\(type='meta'\)"):
        xc.get_device(torch.device("meta"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this PyTorch sees a CUDA GPU")
@pytest.mark.parametrize("spec", ["torch:cuda", "torch:cuda:1"])
def test_torch_cuda_without_a_gpu_says_so_in_one_line(spec):
    with pytest.raises(xc.DeviceError) as info:
        xc.get_device(spec)
    assert "sees no CUDA GPU" in str(info.value) and "\n" not in str(info.value)


def test_model_layer_and_move_accept_torch_device_strings_and_torch_devices(tcpu):
    dense = xc.Dense(4, 3, device="torch:cpu", seed=0)
    assert backend.Device.of(dense.params["weights"]) == tcpu
    model = xc.Sequential([xc.Dense(4, 3), xc.Sigmoid()], seed=0, device=torch.device("cpu"))
    assert model.device == tcpu and isinstance(model.layers[0].params["weights"], torch.Tensor)
    assert model.to("cpu").device == xc.CPU and isinstance(model.layers[0].params["weights"], np.ndarray)
    assert model.to(torch.device("cpu")).device == tcpu
    # the same seed gives the same weights on NumPy and on torch (drawn on the host, then moved)
    np.testing.assert_array_equal(on_host(dense.params["weights"]), xc.Dense(4, 3, seed=0).params["weights"])


# -- one clear line ----------------------------------------------------------------------------------

def test_a_tensor_that_requires_grad_is_refused_in_one_line_by_layers_fit_and_to_numpy(tcpu):
    model = xc.Sequential([xc.Dense(4, 2), xc.Softmax()], seed=0, device=tcpu)
    x = torch.ones(3, 4, requires_grad=True)
    for call in (lambda: model.forward(x), lambda: model.predict(x), lambda: xc.to_numpy(x),
                 lambda: model.fit(x, torch.eye(2)[[0, 1, 0]], loss="categorical_cross_entropy")):
        with pytest.raises(xc.errors.ConfigTypeError) as info:
            call()
        message = str(info.value)
        assert "requires_grad=True" in message and "x.detach()" in message and "\n" not in message


def test_an_input_on_another_device_than_the_model_is_one_line(tcpu):
    layer = xc.Dense(4, 2, seed=0, device=tcpu)
    with pytest.raises(xc.errors.DeviceMismatchError, match=r"input lives on cpu but the layer's weights on torch:cpu"):
        layer.forward(np.ones((2, 4), np.float32))
    with pytest.raises(xc.errors.DeviceMismatchError, match=r"input lives on torch:cpu but the layer's weights on cpu"):
        xc.Dense(4, 2, seed=0).forward(torch.ones(2, 4))


# -- fit, predict, evaluate -------------------------------------------------------------------------

def data(n=12, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 1, 28, 28))
    return x, np.eye(classes)[rng.integers(0, classes, n)]


def test_fit_predict_evaluate_take_numpy_and_predict_returns_a_tensor_on_the_models_device(tcpu):
    x, y = data()
    model, loss = build_model("convnet", (1, 28, 28), 3, seed=0, device=tcpu)
    history = model.fit(x, y, epochs=1, batch_size=4)
    out = model.predict(x, batch_size=5)
    assert isinstance(out, torch.Tensor) and out.device == torch.device("cpu") and out.dtype == torch.float32
    assert isinstance(xc.to_numpy(out), np.ndarray) and tuple(out.shape) == (12, 3)
    result = model.evaluate(x, y)
    assert isinstance(result["loss"], float) and np.isfinite(history["loss"][0])


# -- parity: every layer, loss, optimizer rule and engine, the doctor's cases -------------------------

PLAN = [name for name, _ in cases.parity_checks(xc.CPU) if not name.startswith("gradient")]


@pytest.mark.parametrize("name", PLAN)
def test_parity_case_on_torch_cpu_matches_numpy_float64(tcpu, name, monkeypatch):
    monkeypatch.delenv(auto.ENV, raising=False)
    (run,) = [run for n, run in cases.parity_checks(tcpu) if n == name]
    check = run()
    assert check.ok, check_line(check)


def test_the_parity_plan_covers_every_layer_engine_loss_and_optimizer():
    text = " ".join(PLAN)
    for name in ("batchnorm2d", "batchnorm1d", "dropout", "maxpool", "softmax", "dense"):
        assert f"layer {name} float64" in text and f"layer {name} float32" in text
    for engine in ("auto", *ENGINES):
        assert f"engine {engine} stride 2 float32" in text
    for name in xc.losses.LOSSES:
        assert f"loss {name} float64" in text
    for name in ("sgd", "momentum", "adam"):
        assert f"optimizer {name} float32" in text


# -- engines stay on the device ----------------------------------------------------------------------

def test_signal_engine_ffts_are_torch_fft_on_the_tensors_device(tcpu, monkeypatch):
    x = xc.to_device(np.random.default_rng(0).random((2, 3, 9, 8)), tcpu)
    spectrum = backend.rfft2(x, (16, 16))
    assert isinstance(spectrum, torch.Tensor) and spectrum.dtype == torch.complex128
    np.testing.assert_allclose(on_host(spectrum), np.fft.rfft2(on_host(x), s=(16, 16)), rtol=1e-12, atol=1e-12)
    calls = []
    monkeypatch.setattr(backend.NUMPY, "rfft2", lambda *a: calls.append(a))  # NumPy's FFT must not be asked
    k = xc.to_device(np.ones((4, 3, 3, 3)), tcpu)
    y, _ = ENGINES["signal"].forward(x, k, 1)
    assert isinstance(y, torch.Tensor) and not calls


def test_signal_direct_makes_an_explicit_host_round_trip_and_returns_a_tensor(tcpu, monkeypatch):
    x = xc.to_device(np.random.default_rng(0).random((2, 3, 9, 8)), tcpu)
    k = xc.to_device(np.random.default_rng(1).random((4, 3, 3, 3)), tcpu)
    moves = []
    real = backend.TORCH.to_host
    monkeypatch.setattr(backend.TORCH, "to_host", lambda a: moves.append(tuple(a.shape)) or real(a))
    y, _ = ENGINES["signal-direct"].forward(x, k, 1)
    assert isinstance(y, torch.Tensor) and moves  # the round trip goes through the backend's explicit move
    expected, _ = ENGINES["gemm"].forward(on_host(x), on_host(k), 1)
    np.testing.assert_allclose(on_host(y), expected, rtol=1e-12, atol=1e-12)


def test_auto_measures_gemm_and_signal_on_torch_and_never_the_host_round_trip(tcpu, monkeypatch):
    monkeypatch.delenv(auto.ENV, raising=False)
    auto.forget()
    layer = xc.Convolutional((3, 16, 16), 5, 4, seed=0, device=tcpu)
    y = layer.forward(xc.to_device(np.ones((8, 3, 16, 16), np.float32), tcpu))
    (choice,) = auto.choices()
    assert set(choice["seconds"]) == {"gemm", "signal"} and choice["device"] == "torch:cpu"
    assert layer.chosen_engine == choice["engine"] and isinstance(y, torch.Tensor)
    auto.forget()


# -- training: three steps equal NumPy's, masks, checkpoints, export -----------------------------------

def params_and_buffers(model) -> "dict[str, np.ndarray]":
    return {f"{i}.{k}": on_host(v) for i, layer in enumerate(model.layers)
            for store in (layer.params, layer.buffers) for k, v in store.items()}


@pytest.mark.parametrize("engine", ["gemm", "signal"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["seed", "convnet", "convnet-bn"])
def test_three_training_steps_on_torch_cpu_equal_numpys(tcpu, name, dtype, engine, monkeypatch):
    monkeypatch.setenv(auto.ENV, engine)
    classes = 2 if name == "seed" else 10
    x, y = data(12, classes)
    rtol, atol = TOLERANCES[dtype]
    models = {}
    for device in (xc.CPU, tcpu):
        model, loss = build_model(name, (1, 28, 28), classes, seed=3, device=device, dtype=dtype)
        # Adam's m / √v turns float32 rounding of a near-zero gradient into a whole step (its rule is
        # checked alone, above); SGD with momentum carries the differences without amplifying them
        optimizer = xc.Adam(1e-2) if dtype == "float64" else xc.SGD(0.1, momentum=0.9)
        model.fit(x, y, epochs=1, batch_size=4, optimizer=optimizer, seed=5)  # 3 steps, shuffled
        models[device.name] = model
    ours, theirs = params_and_buffers(models["torch:cpu"]), params_and_buffers(models["cpu"])
    assert ours.keys() == theirs.keys()
    start = params_and_buffers(build_model(name, (1, 28, 28), classes, seed=3, dtype=dtype)[0])
    for key in ours:
        assert ours[key].dtype == theirs[key].dtype == np.dtype(dtype), key
        scale = max(1.0, float(np.abs(theirs[key]).max()))
        np.testing.assert_allclose(ours[key], theirs[key], rtol=rtol, atol=atol * scale, err_msg=key)
    assert any(not np.array_equal(start[k], theirs[k]) for k in start)  # they trained: the check could fail


def dropout_model(device, seed=0):
    return xc.Sequential([xc.Flatten(), xc.Dense(16, 32), xc.ReLU(), xc.Dropout(0.5), xc.Dense(32, 3), xc.Softmax()],
                         seed=seed, device=device, dtype="float64")


def test_dropout_masks_same_seed_same_masks_on_torch_and_equal_to_numpys(tcpu):
    x = np.random.default_rng(0).random((6, 1, 4, 4))
    masks = []
    for device in (tcpu, tcpu, xc.CPU):
        model = dropout_model(device)
        model.forward(xc.to_device(x, device), training=True)
        mask = model.layers[3]._saved["mask"]
        assert backend.Device.of(mask) == device
        masks.append(on_host(mask))
    np.testing.assert_array_equal(masks[0], masks[1])
    np.testing.assert_array_equal(masks[0], masks[2])  # torch:cpu draws on the host, as NumPy does
    assert 0 < np.count_nonzero(masks[0]) < masks[0].size


def test_a_torch_generator_draws_on_the_device_the_same_numbers_for_the_same_key(tcpu):
    a = backend.TORCH.generated(7, (3, 4), "float32", tcpu)
    b = backend.TORCH.generated(7, (3, 4), "float32", tcpu)
    c = backend.TORCH.generated(8, (3, 4), "float32", tcpu)
    assert isinstance(a, torch.Tensor) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c) and bool(((a >= 0) & (a < 1)).all())


def test_a_resumed_torch_run_gets_the_uninterrupted_runs_masks_and_statistics(tcpu, tmp_path):
    x, y = data(12, 10)

    def train(model, epochs):
        model.fit(x, y, epochs=epochs, batch_size=4, optimizer=model.optimizer or xc.Adam(1e-2))
        return model

    straight = train(build_model("convnet-bn", (1, 28, 28), 10, seed=2, device=tcpu)[0], 2)
    half = train(build_model("convnet-bn", (1, 28, 28), 10, seed=2, device=tcpu)[0], 1)
    save_checkpoint(tmp_path / "half.npz", half)
    resumed = train(load_checkpoint(tmp_path / "half.npz", device=tcpu), 1)
    assert resumed.device == tcpu and resumed.epoch == 2
    ours, theirs = params_and_buffers(resumed), params_and_buffers(straight)
    for key in theirs:
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)
    assert resumed.history["loss"] == straight.history["loss"]


def test_checkpoint_round_trip_numpy_to_torch_to_numpy_keeps_predictions(tcpu, tmp_path):
    x, y = data(12, 10)
    model, _ = build_model("convnet-bn", (1, 28, 28), 10, seed=1, dtype="float64")
    model.fit(x, y, epochs=1, batch_size=4)
    expected = on_host(model.predict(x))
    save_checkpoint(tmp_path / "numpy.npz", model)
    on_torch = load_checkpoint(tmp_path / "numpy.npz", device="torch:cpu")
    assert on_torch.device == tcpu
    assert all(isinstance(v, torch.Tensor) for layer in on_torch.layers for v in (*layer.params.values(),
                                                                                  *layer.buffers.values()))
    got = on_torch.predict(x)
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(on_host(got), expected, rtol=1e-12, atol=1e-14)
    on_torch.fit(x, y, epochs=1, batch_size=4)  # its optimizer state came along, on the device
    save_checkpoint(tmp_path / "torch.npz", on_torch)
    back = load_checkpoint(tmp_path / "torch.npz")
    assert back.device == xc.CPU and back.epoch == 2
    saved, loaded = params_and_buffers(on_torch), params_and_buffers(back)
    for key in saved:  # the arrays cross bit for bit; the predictions differ only by each library's rounding
        np.testing.assert_array_equal(loaded[key], saved[key], err_msg=key)
    np.testing.assert_allclose(on_host(back.predict(x)), on_host(on_torch.predict(x)), rtol=1e-12, atol=1e-14)


def test_onnx_and_safetensors_export_from_a_torch_held_model_equal_the_numpy_models(tcpu, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("safetensors")
    from xpcnn.io.export import from_safetensors, to_onnx, to_safetensors
    x, y = data(8, 10)
    model, _ = build_model("convnet-bn", (1, 28, 28), 10, seed=1, device=tcpu)
    model.fit(x, y, epochs=1, batch_size=4)
    to_onnx(model, tmp_path / "m.onnx")
    to_safetensors(model, tmp_path / "m.safetensors")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})
    np.testing.assert_allclose(got, on_host(model.predict(x)), rtol=1e-4, atol=1e-6)
    fresh, _ = build_model("convnet-bn", (1, 28, 28), 10, seed=9)
    from_safetensors(fresh, tmp_path / "m.safetensors")
    saved, loaded = params_and_buffers(model), params_and_buffers(fresh)
    for key in saved:
        np.testing.assert_array_equal(loaded[key], saved[key], err_msg=key)
    np.testing.assert_allclose(on_host(fresh.predict(x)), on_host(model.predict(x)), rtol=1e-5, atol=1e-7)


# -- GPUs: torch:cuda and torch:mps, where this PyTorch has them ---------------------------------------

def _gpu(kind: str) -> xc.Device:
    try:
        return xc.get_device(f"torch:{kind}")
    except xc.DeviceError as exc:
        pytest.skip(str(exc))


@pytest.fixture(params=["cuda", "mps"])
def tgpu(request) -> xc.Device:
    return _gpu(request.param)


GPU_PLAN = [name for name in PLAN if name != "layer dropout float32"]


@pytest.mark.gpu
@pytest.mark.parametrize("name", GPU_PLAN)
def test_parity_case_on_a_torch_gpu_matches_numpy_float64(tgpu, name, monkeypatch):
    if tgpu.native.type == "mps" and "float64" in name:
        pytest.skip("MPS has no float64")
    monkeypatch.delenv(auto.ENV, raising=False)
    (run,) = [run for n, run in cases.parity_checks(tgpu) if n == name]
    check = run()
    assert check.ok, check_line(check)


@pytest.mark.gpu
def test_dropout_masks_on_a_torch_gpu_are_drawn_there_and_repeat_for_a_seed(tgpu):
    x = np.random.default_rng(0).random((6, 1, 4, 4))
    masks = []
    for _ in range(2):
        model = dropout_model(tgpu).to(tgpu, "float32")
        model.forward(xc.to_device(x.astype(np.float32), tgpu), training=True)
        mask = model.layers[3]._saved["mask"]
        assert backend.Device.of(mask) == tgpu
        masks.append(on_host(mask))
    np.testing.assert_array_equal(masks[0], masks[1])


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["seed", "convnet", "convnet-bn"])
def test_three_training_steps_on_a_torch_gpu_equal_numpys_in_float32(tgpu, name, monkeypatch):
    monkeypatch.setenv(auto.ENV, "gemm")
    classes = 2 if name == "seed" else 10
    x, y = data(12, classes)
    rate = 0.0 if name == "convnet-bn" else None  # GPU masks are not NumPy's: compare without dropout
    models = {}
    for device in (xc.CPU, tgpu):
        model, _ = build_model(name, (1, 28, 28), classes, seed=3, device=device, dtype="float32")
        if rate is not None:
            for layer in model.layers:
                if isinstance(layer, xc.Dropout):
                    layer.rate = rate
        model.fit(x, y, epochs=1, batch_size=4, optimizer=xc.SGD(0.1, momentum=0.9), seed=5)
        models[device.name] = model
    ours, theirs = params_and_buffers(models[tgpu.name]), params_and_buffers(models["cpu"])
    for key in theirs:
        scale = max(1.0, float(np.abs(theirs[key]).max()))
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-4, atol=1e-5 * scale, err_msg=key)
