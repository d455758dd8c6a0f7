"""Array API purity: the library computes on array_api_strict arrays exactly as on NumPy.

``device1`` refuses implicit conversion to NumPy, as CuPy does, so a passing run there proves
that no layer, loss, optimizer or model code converts behind the user's back.
"""

import ast
import pathlib

import numpy as np
import pytest

import xpcnn as xc

xs = pytest.importorskip("array_api_strict")

PACKAGE = pathlib.Path(xc.__file__).parent
# Host-side modules (the CLI, MPI) may use NumPy; the math must not.
HOST_MODULES = {"app/cli.py", "app/run.py", "distributed/world.py"}
# The communication backend: the only module that may import mpi4py or CuPy's NCCL.
COMM_BACKEND = "distributed/world.py"
# backend: the one layer that knows NumPy, SciPy and CuPy; io: host files (checkpoints, ONNX, safetensors) from
# host copies; testing: the oracles, NumPy float64 and PyTorch on the host; doctor: xpcnn-doctor, built on them.
HOST_PACKAGES = {"datasets", "backend", "io", "testing", "doctor"}


def strict_device(name):
    return xc.Device.of(xs.asarray([0.0], device=xs.Device(name)))


def network(engine, seed=0):
    return xc.Sequential([
        xc.Convolutional((2, 7, 6), 3, 3, padding=1, bias="tied", engine=engine), xc.ReLU(),
        xc.Convolutional((3, 7, 6), 2, 2, engine=engine), xc.Tanh(),
        xc.Reshape((2, 6, 5), (60,)), xc.Dense(60, 8), xc.Sigmoid(), xc.Dense(8, 3), xc.Softmax(),
    ], seed=seed, dtype="float64")


def network_bn(engine, seed=0):
    """Every layer of issue 12: BatchNorm (2-D and 1-D), Dropout, average and global average pooling.

    No bias sits right before a BatchNorm (its gradient would be rounding noise, which Adam scales up).
    """
    return xc.Sequential([
        xc.Convolutional((2, 7, 6), 3, 4, padding=1, bias="none", engine=engine), xc.BatchNorm2D(4), xc.ReLU(),
        xc.AvgPool2D(2), xc.Dropout(0.3),
        xc.Convolutional((4, 3, 3), 2, 5, padding=1, stride=2, engine=engine), xc.BatchNorm2D(5),
        xc.Tanh(), xc.GlobalAveragePool2D(), xc.Dense(5, 6), xc.Tanh(), xc.BatchNorm1D(6), xc.Dropout(0.5),
        xc.Dense(6, 3), xc.Softmax(),
    ], seed=seed, dtype="float64")


def train_step(model, x, y, optimizer):
    loss_fn, prime = xc.get_loss("categorical_cross_entropy")
    loss, out = model.train_step(x, y, loss_fn, prime, optimizer)
    return loss, out


@pytest.mark.parametrize("make", [network, network_bn], ids=["network", "network_bn"])
@pytest.mark.parametrize("engine", ["signal", "gemm", "signal-direct"])
@pytest.mark.parametrize("device_name", ["CPU_DEVICE", "device1"])
@pytest.mark.parametrize("make_opt", [lambda: xc.SGD(0.1, momentum=0.9), lambda: xc.Adam(0.01)])
def test_full_training_step_on_array_api_strict_matches_numpy(engine, device_name, make_opt, make):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 2, 7, 6))
    y = np.eye(3)[rng.integers(0, 3, 4)]
    ref = make(engine)
    ref_opt = make_opt()
    ref_loss = ref_out = None
    for _ in range(2):
        ref_loss, ref_out = train_step(ref, x, y, ref_opt)

    dev = strict_device(device_name)
    model = make(engine).to(dev)
    opt = make_opt()
    xd, yd = xc.to_device(x, dev), xc.to_device(y, dev)
    for _ in range(2):
        loss, out = train_step(model, xd, yd, opt)
    assert xc.Device.of(out) == dev and xc.Device.of(loss) == dev
    np.testing.assert_allclose(xc.to_numpy(loss), ref_loss, rtol=1e-12)
    np.testing.assert_allclose(xc.to_numpy(out), ref_out, rtol=1e-10, atol=1e-12)
    for lr, ls in zip(ref.layers, model.layers):
        for k in lr.params:
            assert xc.Device.of(ls.params[k]) == dev
            np.testing.assert_allclose(xc.to_numpy(ls.params[k]), lr.params[k], rtol=1e-10, atol=1e-12)
        for k in lr.buffers:
            assert xc.Device.of(ls.buffers[k]) == dev
            np.testing.assert_allclose(xc.to_numpy(ls.buffers[k]), lr.buffers[k], rtol=1e-10, atol=1e-12)


def test_device1_really_refuses_implicit_numpy_conversion():
    a = xs.asarray([1.0], device=xs.Device("device1"))
    with pytest.raises(RuntimeError):
        np.asarray(a)


def test_fit_on_device1_takes_numpy_inputs_and_returns_device1_outputs():
    dev = strict_device("device1")
    rng = np.random.default_rng(1)
    x = rng.random((12, 2, 7, 6), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 12)]
    model = network("gemm").to(dev, "float32")
    history = model.fit(x, y, loss="categorical_cross_entropy", epochs=2, batch_size=5)
    assert len(history["loss"]) == 2
    out = model.predict(x)
    assert xc.Device.of(out) == dev and out.dtype == xs.float32


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0]


def test_only_host_modules_import_numpy_scipy_or_cupy():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.as_posix() in HOST_MODULES or rel.parts[0] in HOST_PACKAGES:
            continue
        bad = {m for m in _imports(path) if m in {"numpy", "scipy", "cupy", "cupyx", "torch"}}
        if bad:
            offenders.append(f"{rel}: {sorted(bad)}")
    assert not offenders, "library math modules must use xp only:\n" + "\n".join(offenders)


def test_importing_xpcnn_does_not_import_cupy():
    import subprocess
    import sys

    code = "import sys, xpcnn; assert 'cupy' not in sys.modules, 'cupy imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def _lazy_imports(path):
    """Modules named by ``importlib.import_module("...")`` calls (the lazy imports)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield node.args[0].value


def test_only_the_communication_backend_imports_mpi4py_or_nccl():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.as_posix() == COMM_BACKEND:
            continue
        named = set(_imports(path)) | set(_lazy_imports(path))
        bad = {m for m in named if m.split(".")[0] == "mpi4py" or m.startswith("cupy.cuda.nccl")}
        if bad:
            offenders.append(f"{rel}: {sorted(bad)}")
    assert not offenders, "only xpcnn/distributed/world.py may import mpi4py or NCCL:\n" + "\n".join(offenders)
    assert {"mpi4py.MPI", "cupy.cuda.nccl"} <= set(_lazy_imports(PACKAGE / COMM_BACKEND))


def test_importing_xpcnn_and_its_distributed_api_imports_neither_mpi4py_nor_cupy():
    import subprocess
    import sys

    code = ("import sys, xpcnn, xpcnn.distributed, xpcnn.distributed.data_parallel; "
            "assert not {'mpi4py', 'cupy'} & set(sys.modules), sorted({'mpi4py', 'cupy'} & set(sys.modules))")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
