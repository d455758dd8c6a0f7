"""Shared fixtures: the devices a test can run on, and the skip for GPU tests.

Fixtures
    ``device``   parametrized over every backend below; yields an :class:`xpcnn.Device`.
                 Build inputs with ``xpcnn.to_device(numpy_array, device)`` and read results
                 back with ``xpcnn.to_numpy``.
    ``cuda``     the ``cuda:0`` device, or a skip that says why there is none.
    ``device1``  ``array_api_strict`` on ``Device("device1")``: the GPU stand-in of CPU-only CI
                 (a second device that, like CuPy, refuses implicit conversion to NumPy).
    ``strict_cpu`` ``array_api_strict`` on its ``CPU_DEVICE`` (the host, but not NumPy).
    ``measured`` ``engine="auto"`` really measuring (the suite otherwise pins ``XPCNN_ENGINE=gemm``),
                 from a clean slate of choices.

Backends (test ids)
    ``numpy``           NumPy on the host (:data:`xpcnn.CPU`)
    ``strict-cpu``      ``array_api_strict`` on its ``CPU_DEVICE``
    ``strict-device1``  ``array_api_strict`` on ``device1``
    ``cupy``            CuPy on ``cuda:0``: marked ``gpu``; skipped without CuPy or a GPU

    ``mnist_test_dir`` the folder with the real MNIST test files (``$XPCNN_TEST_DATA`` or
                 ``shared/data/mnist`` beside the checkout); a skip without them, a failure in CI.

GPU tests carry the ``gpu`` marker (``pytest -m gpu`` runs only them). The default run
deselects nothing: without CuPy or a visible GPU they are reported as skipped, with the reason.
With ``CI=true`` any other skip is a failure (``tests/support/ci_policy.py``).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from pathlib import Path

import pytest

# tests/support holds what the tests share besides fixtures: the CI policy, the CuPy and NCCL
# stand-ins, the MPI worker script. Its modules are imported by their plain names.
sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))

import xpcnn  # noqa: E402
from ci_policy import pytest_runtest_makereport, require_mnist_test_dir  # noqa: F401 (a hook, re-exported)
from xpcnn import backend  # noqa: E402

BACKENDS = ["numpy", "strict-cpu", "strict-device1", "cupy"]

# engine="auto" times the engines on each new layer shape; the suite runs with the deterministic
# default instead (the ``measured`` fixture unsets it to test the measurement itself).
os.environ.setdefault("XPCNN_ENGINE", "gemm")


@functools.cache
def cuda_or_skip_reason() -> "tuple[xpcnn.Device | None, str | None]":
    """``(cuda:0, None)`` on a machine with CuPy and a GPU, else ``(None, why not)``."""
    if importlib.util.find_spec("cupy") is None:
        return None, "CuPy is not installed (pip install 'xpcnn[cuda12]')"
    try:
        return xpcnn.get_device("cuda"), None
    except xpcnn.DeviceError as exc:  # "CuPy is installed but no CUDA GPU is visible (...)"
        return None, str(exc)


def strict_device(name: str) -> xpcnn.Device:
    """``array_api_strict`` on ``Device(name)`` (``"CPU_DEVICE"``, ``"device1"``) as an xpcnn Device."""
    xs = pytest.importorskip("array_api_strict")
    return backend.Device.of(xs.empty(0, device=xs.Device(name)))


def _cuda() -> xpcnn.Device:
    dev, reason = cuda_or_skip_reason()
    if dev is None:
        pytest.skip(reason)
    return dev


@pytest.fixture
def cuda() -> xpcnn.Device:
    return _cuda()


@pytest.fixture
def device1() -> xpcnn.Device:
    return strict_device("device1")


@pytest.fixture
def strict_cpu() -> xpcnn.Device:
    return strict_device("CPU_DEVICE")


@pytest.fixture(params=[pytest.param(b, marks=pytest.mark.gpu) if b == "cupy" else b for b in BACKENDS])
def device(request) -> xpcnn.Device:
    name = request.param
    if name == "numpy":
        return xpcnn.CPU
    if name == "strict-cpu":
        return strict_device("CPU_DEVICE")
    if name == "strict-device1":
        return strict_device("device1")
    return _cuda()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """A test that asks for the ``cuda`` fixture is a GPU test, so ``-m gpu`` selects it too."""
    for item in items:
        if "cuda" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.gpu)


@pytest.fixture
def mnist_test_dir():
    return require_mnist_test_dir()


@pytest.fixture
def measured(monkeypatch):
    """``engine="auto"`` really measuring (the suite otherwise pins XPCNN_ENGINE=gemm), from a clean slate."""
    from xpcnn.engines import auto

    monkeypatch.delenv(auto.ENV, raising=False)
    auto.forget()
    yield
    auto.forget()
