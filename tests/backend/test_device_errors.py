"""Device errors: what a machine without CuPy or without a GPU says, bad device strings, mixed devices.

The missing-CuPy and missing-GPU cases are simulated (``sys.modules`` or a stand-in ``cupy``
package on ``PYTHONPATH``), so they run the same on every machine, GPU or not.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import xpcnn as xc
from fake_cupy import cupy_package
from xpcnn import backend
ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "scripts" / "train.py"


# -- get_device ------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "CUDA:1"])
def test_cuda_without_cupy_is_a_device_error_naming_the_extra(monkeypatch, spec):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` fail, even where it is installed
    with pytest.raises(xc.DeviceError, match=r"xpcnn\[cuda12\]") as info:
        xc.get_device(spec)
    assert "CuPy" in str(info.value) and "not installed" in str(info.value)


def _fake_cupy(device_count, missing: "tuple[str, ...]" = ()):
    """A stand-in for ``cupy`` whose runtime reports ``device_count`` GPUs (or raises it), and whose
    ``cupy.cuda`` fails to load the CUDA libraries named in ``missing`` (``"cublas"``, ...) as CuPy does."""

    def get_device_count():
        if isinstance(device_count, Exception):
            raise device_count
        return device_count

    class Cuda:
        runtime = types.SimpleNamespace(getDeviceCount=get_device_count)
        Device = staticmethod(lambda i: i)

        def __getattr__(self, name):
            if name in missing:
                raise ImportError(f'Failure finding "lib{name}.so.12": No such file: lib{name}.so.12')
            if name in backend.libraries.CUDA_LIBRARIES.values():
                return types.SimpleNamespace()
            raise AttributeError(name)

    return types.SimpleNamespace(cuda=Cuda())


@pytest.mark.parametrize("count", [0, RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")])
def test_cupy_without_a_visible_gpu_is_a_device_error(monkeypatch, count):
    monkeypatch.setattr(backend.devices, "import_cupy", lambda: _fake_cupy(count))
    with pytest.raises(xc.DeviceError, match="CuPy is installed but no CUDA GPU is visible"):
        xc.get_device("cuda")


def test_cuda_index_beyond_the_visible_gpus_names_the_valid_range(monkeypatch):
    monkeypatch.setattr(backend.devices, "import_cupy", lambda: _fake_cupy(2))
    with pytest.raises(xc.DeviceError, match=r"only 2 CUDA GPU\(s\) visible \(cuda:0\.\.cuda:1\)"):
        xc.get_device("cuda:2")


@pytest.mark.parametrize("missing,named", [(("cublas",), "cuBLAS"), (("cufft", "nvrtc"), "cuFFT, NVRTC")])
def test_a_gpu_whose_cupy_lacks_cuda_libraries_is_one_line_naming_them_and_the_extra(monkeypatch, missing, named):
    """CuPy without its [ctk] wheels: the device check says so, before the first product would fail."""
    monkeypatch.setattr(backend.devices, "import_cupy", lambda: _fake_cupy(1, missing))
    with pytest.raises(xc.DeviceError) as info:
        xc.get_device("cuda")
    message = str(info.value)
    assert "\n" not in message and f"CuPy cannot load CUDA's {named} (Failure finding" in message
    assert "pip install 'xpcnn[cuda12]'" in message and "cuda13" in message


def test_device_error_is_a_runtime_error_so_callers_can_catch_either():
    assert issubclass(xc.DeviceError, RuntimeError)


@pytest.mark.parametrize("spec", ["gpu", "tpu", "", "cuda:", "cuda:x", "cuda:-1", "cuda0", "cpu:0", "cuda:0:1"])
def test_unknown_device_strings_list_the_accepted_spellings(spec):
    with pytest.raises(ValueError, match=r"expected 'cpu', 'cuda', 'cuda:N', 'torch:cpu'"):
        xc.get_device(spec)


@pytest.mark.parametrize("spec", [0, 1.5, ["cpu"], np.float64(0)])
def test_a_device_that_is_not_a_string_is_a_type_error(spec):
    with pytest.raises(TypeError, match="device must be"):
        xc.get_device(spec)


@pytest.mark.parametrize("spec", [None, "cpu", "CPU", " cpu ", xc.CPU])
def test_cpu_spellings_all_resolve_to_the_numpy_device(spec):
    assert xc.get_device(spec) is xc.CPU


def test_moving_to_an_unknown_device_is_refused_before_anything_moves():
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        xc.to_device(np.zeros(3), "gpu")


# -- device_of: one device or a clear error ---------------------------------------------------

def test_arrays_on_one_device_give_that_device(device):
    a = xc.to_device(np.zeros((2, 3)), device)
    b = xc.to_device(np.ones(3), device)
    assert backend.device_of(a, None, b) == device


def test_numpy_and_device1_arrays_together_name_both_devices(device1):
    a = np.zeros(3)
    b = xc.to_device(np.zeros(3), device1)
    with pytest.raises(ValueError, match="different devices") as info:
        backend.device_of(a, b)
    message = str(info.value)
    assert "'cpu'" in message and "device1" in message and "to_device" in message


def test_two_devices_of_one_namespace_are_refused_too(strict_cpu, device1):
    a = xc.to_device(np.zeros(3), strict_cpu)
    b = xc.to_device(np.zeros(3), device1)
    with pytest.raises(ValueError, match="different devices") as info:
        backend.device_of(a, b)
    assert "CPU_DEVICE" in str(info.value) and "device1" in str(info.value)


def test_correlate_refuses_input_and_kernel_from_different_namespaces(device1):
    x = np.zeros((4, 4))
    k = xc.to_device(np.ones((2, 2)), device1)
    with pytest.raises(ValueError, match="different array namespaces"):
        backend.correlate(x, k)


# -- the training script: one line on stderr, non-zero exit, no traceback ---------------------

NO_GPU = "cudaErrorNoDevice: no CUDA-capable device is detected"


def _run_train_with_fake_cupy(tmp_path: Path, *args: str, **fake) -> subprocess.CompletedProcess:
    """``train.py --device cuda args`` with the stand-in CuPy of ``cupy_package(**fake)`` first on the path."""
    if not TRAIN.exists():
        pytest.skip("scripts/train.py is not in this checkout yet")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [cupy_package(tmp_path / "fake", **fake), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, str(TRAIN), "--device", "cuda", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_train_device_cuda_without_cupy_is_one_line_naming_the_extra(tmp_path):
    line = _one_error_line(_run_train_with_fake_cupy(tmp_path, "--epochs", "1", devices=None))
    assert "cuda" in line and "xpcnn[cuda12]" in line


def test_train_device_cuda_with_a_cupy_lacking_cublas_is_one_line_naming_it_before_training(tmp_path):
    line = _one_error_line(_run_train_with_fake_cupy(
        tmp_path, "--epochs", "1", missing={"cublas": 'Failure finding "libcublasLt.so.13 or libcublasLt.so.12"'}))
    assert "CuPy cannot load CUDA's cuBLAS" in line and "libcublasLt" in line and "xpcnn[cuda12]" in line


def test_train_device_cuda_without_a_gpu_is_one_line_saying_so(tmp_path):
    line = _one_error_line(_run_train_with_fake_cupy(tmp_path, "--epochs", "1", devices=NO_GPU))
    assert "no CUDA GPU is visible" in line
