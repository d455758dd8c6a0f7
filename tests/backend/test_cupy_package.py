"""The real CuPy package, on a machine without a GPU: every CuPy name xpcnn uses exists, and the stand-ins
offer only real names.

CI installs the ``cuda12`` and ``nccl12`` extras (CuPy with CUDA's libraries as wheels, and NCCL), which
install and import on a CPU-only machine; these tests are marked ``cupy`` and skip only where CuPy is not
installed, which CI does not allow (``tests/support/ci_policy.py``). The names are collected from the
code itself, so a name added to the library is checked without editing this file.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pathlib
import subprocess
import sys

import pytest

import xpcnn as xc
from xpcnn import backend
from xpcnn.backend import info

pytestmark = pytest.mark.cupy
cupy = pytest.importorskip("cupy", reason="CuPy is not installed (pip install -e '.[cuda12]')")

PACKAGE = pathlib.Path(xc.__file__).parent
ROOT = PACKAGE.parent
#: The names the library binds to CuPy's modules, and the module each stands for.
ROOTS = {"cp": "cupy", "cupy": "cupy", "nccl": "cupy.cuda.nccl"}
#: Methods world.py calls on an ``nccl.NcclCommunicator`` (the object, not the module, so not collected).
COMMUNICATOR_METHODS = ("allReduce", "broadcast", "abort")
#: What a stand-in keeps for the tests (its records and settings), on top of the names it shares with CuPy.
RECORDS = {"entered", "calls", "made", "unique_ids", "mpi_comm", "fail_with"}


def _chain(node: ast.Attribute) -> "tuple[str | None, list[str]]":
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    parts.reverse()
    if isinstance(node, ast.Name) and node.id in ROOTS:
        return ROOTS[node.id], parts
    if isinstance(node, ast.Name) and node.id == "self" and parts and parts[0] in ("cupy", "_cupy"):
        return "cupy", parts[1:]
    return None, parts


def used_names() -> "set[str]":
    """Every ``cupy...`` / ``cupyx...`` name the package's code reaches: attribute chains on the names
    bound to CuPy's modules, ``import_module("cupy...")`` strings, the ``cupy.cuda`` attributes that
    load CUDA's libraries, and the ``cupyx.scipy.signal`` functions the correlation dispatch calls."""
    names = {f"cupy.cuda.{attribute}" for attribute in backend.libraries.CUDA_LIBRARIES.values()}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                root, parts = _chain(node)
                if root is not None and parts:
                    names.add(".".join([root, *parts]))
            elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) ==
                  "import_module" and node.args and isinstance(node.args[0], ast.Constant)
                  and str(node.args[0].value).startswith("cupy")):
                names.add(node.args[0].value)
            elif (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "_signal_call" and node.args
                  and isinstance(node.args[0], ast.Constant)):
                names.add(f"cupyx.scipy.signal.{node.args[0].value}")
    return names


def resolve(name: str):
    """The object ``name`` (``"cupy.cuda.runtime.getDeviceCount"``) names, importing submodules on the way."""
    parts = name.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], 1):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            obj = importlib.import_module(".".join(parts[: i + 1]))
    return obj


def public(obj) -> "set[str]":
    return {n for n in vars(obj) if not n.startswith("_")} if inspect.isclass(obj) else \
        {n for n in dir(obj) if not n.startswith("_")}


def test_the_collector_finds_the_names_the_backend_is_known_to_use():
    names = used_names()
    assert {"cupy.fft.rfft2", "cupy.cuda.runtime.getDeviceCount", "cupyx.scipy.signal", "cupy.cuda.nccl",
            "cupyx.scipy.signal.correlate", "cupy.cuda.cublas", "cupy.cuda.nccl.NcclCommunicator",
            "cupy.random.RandomState", "cupy.cuda.alloc_pinned_memory"} <= names


def test_every_cupy_name_the_library_uses_exists_in_the_real_package():
    missing = []
    for name in sorted(used_names()):
        try:
            resolve(name)
        except (AttributeError, ImportError) as exc:
            missing.append(f"{name}: {type(exc).__name__}: {exc}")
    assert missing == []
    communicator = resolve("cupy.cuda.nccl.NcclCommunicator")
    assert [m for m in COMMUNICATOR_METHODS if not hasattr(communicator, m)] == []


def test_cupyx_signal_imports_and_the_backend_builds_with_every_cuda_library_loaded():
    library = backend.CupyBackend()
    assert library.cupy is cupy
    assert library.signal is importlib.import_module("cupyx.scipy.signal")
    assert backend.libraries.missing_cuda_libraries(cupy) == {}  # the wheels of the cuda12 extra
    found = info.cuda_libraries()
    assert set(found) == set(backend.libraries.CUDA_LIBRARIES)
    assert all(entry["loaded"] and entry["wheel"] for entry in found.values()), found


def test_the_cupy_stand_in_offers_only_names_the_real_cupy_has():
    from fake_cupy import FakeCupyArray, FakeDevice, RecordingSignal, fake_cupy

    fake, extra = fake_cupy(), []
    for name in public(fake):
        value = getattr(fake, name)
        if not hasattr(cupy, name):
            extra.append(f"cupy.{name}")
        elif not inspect.isclass(value) and not callable(value):  # a module: fft
            extra += [f"cupy.{name}.{n}" for n in public(value) if not hasattr(getattr(cupy, name), n)]
    extra += [f"cupy.ndarray.{n}" for n in public(FakeCupyArray) | {"__getitem__"} if not hasattr(cupy.ndarray, n)]
    extra += [f"cupy.cuda.Device.{n}" for n in (public(FakeDevice) | set(vars(FakeDevice(0)))) - RECORDS
              if not hasattr(cupy.cuda.Device, n)]
    signal = importlib.import_module("cupyx.scipy.signal")
    extra += [f"cupyx.scipy.signal.{n}" for n in public(RecordingSignal) - RECORDS if not hasattr(signal, n)]
    assert extra == []


def test_the_nccl_stand_in_offers_only_names_the_real_nccl_module_has():
    import fake_nccl

    nccl = importlib.import_module("cupy.cuda.nccl")
    module = fake_nccl.FakeNccl(mpi_comm=None)
    extra = [f"cupy.cuda.nccl.{n}" for n in public(module) - RECORDS if not hasattr(nccl, n)]
    extra += [f"NcclCommunicator.{n}" for n in public(fake_nccl._Communicator) - RECORDS
              if not hasattr(nccl.NcclCommunicator, n)]
    assert extra == []
    assert (module.NCCL_FLOAT32, module.NCCL_FLOAT64, module.NCCL_SUM) == \
        (nccl.NCCL_FLOAT32, nccl.NCCL_FLOAT64, nccl.NCCL_SUM)


def test_without_a_gpu_the_device_is_one_clear_error_and_train_py_one_line():
    with pytest.raises(xc.DeviceError, match="CuPy is installed but no CUDA GPU is visible"):
        xc.get_device("cuda")
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "--device", "cuda", "--epochs", "1"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1 and len(lines) == 1, run.stderr
    assert lines[0].startswith("error: ") and "no CUDA GPU is visible" in lines[0]
