"""The parity cases: every layer, loss, optimizer rule and convolution engine, on a device, against
NumPy float64 on the host. ``xpcnn-doctor`` runs them on the machine it checks; ``pytest -m gpu``
(``tests/backend/test_gpu.py``) runs the same ones on ``cuda:0``. A new layer is one entry in
:data:`LAYER_CASES`.

Each check builds its case from the same seed on the device, in ``dtype``, and on the host in
float64 with the same (rounded) inputs and parameters, and compares every array it produces.
The references are:

* layers, losses, optimizer slots: xpcnn itself on NumPy float64 (on a GPU, the device against the
  host; on the CPU, float32 against float64);
* convolution engines: the derivation's loops (:mod:`.derivation`), which share no code with them;
* optimizer parameters: the textbook update rules (:func:`.textbook.optimizer_steps`);
* every layer's and loss's gradients, in float64 on the host: central finite differences of its
  own forward pass (:func:`xpcnn.tools.gradcheck`), so a backward pass that does not match its
  forward fails on any machine.

Tolerances are those of CuPy's own tests and of the ``gpu`` tests: float64 ``rtol 1e-10``,
``atol 1e-11``; float32 ``rtol 1e-4``, ``atol 1e-5``; each ``atol`` scaled by the largest value
compared (sums of many terms round in absolute terms). A check's *worst relative error* is
``max |got - expected| / (|expected| + atol / rtol)``: it passes when that is at most ``rtol``,
which is ``numpy.testing.assert_allclose``'s condition exactly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .. import backend
from ..engines import ENGINES, auto
from ..layers import (BatchNorm1D, BatchNorm2D, Convolutional, Dense, Dropout, Flatten, MaxPool2D, ReLU, Reshape,
                      Sigmoid, Softmax, Tanh)
from ..losses import LOSSES
from ..optim.optimizers import SGD, Adam
from ..tools.gradcheck import gradcheck, gradcheck_loss
from . import derivation, textbook

DTYPES = ("float64", "float32")
TOLERANCES = {"float64": (1e-10, 1e-11), "float32": (1e-4, 1e-5)}
#: Finite differences (:func:`xpcnn.tools.gradcheck`, float64, every element): the worst relative
#: error ``|a - n| / max(|a|, |n|, 1e-4)`` allowed; central differences land near 1e-9.
GRADIENT_TOLERANCE = 1e-6
N = 5  # samples per batch


# -- the cases -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerCase:
    """``make(dtype)`` builds the layer on the host from a fixed seed; ``shape`` is one sample's input.

    ``training=False`` compares inference only (for a layer whose training pass draws random
    numbers on the device, which a host reference cannot repeat)."""

    make: Callable[[str], Any]
    shape: tuple
    training: bool = True


def _conv(engine: str, **kw) -> Callable[[str], Any]:
    return lambda dtype: Convolutional((2, 9, 8), 3, 4, engine=engine, dtype=dtype, seed=0, **kw)


LAYER_CASES: "dict[str, LayerCase]" = {
    "conv-signal-untied": LayerCase(_conv("signal"), (2, 9, 8)),
    "conv-gemm-untied": LayerCase(_conv("gemm"), (2, 9, 8)),
    "conv-signal-tied-same": LayerCase(_conv("signal", bias="tied", padding="same"), (2, 9, 8)),
    "conv-gemm-tied-same": LayerCase(_conv("gemm", bias="tied", padding="same"), (2, 9, 8)),
    "conv-signal-untied-pad2": LayerCase(_conv("signal", padding=2), (2, 9, 8)),
    "conv-gemm-tied-pad2": LayerCase(_conv("gemm", bias="tied", padding=2), (2, 9, 8)),
    "conv-direct-tied-same": LayerCase(_conv("signal-direct", bias="tied", padding="same"), (2, 9, 8)),
    "conv-signal-stride2-pad1": LayerCase(_conv("signal", stride=2, padding=1), (2, 9, 8)),
    "conv-gemm-stride3": LayerCase(_conv("gemm", stride=3, bias="tied"), (2, 9, 8)),
    "conv-direct-stride2": LayerCase(_conv("signal-direct", stride=2), (2, 9, 8)),
    "conv-auto": LayerCase(_conv("auto", bias="tied", padding=1), (2, 9, 8)),
    "dense": LayerCase(lambda dtype: Dense(12, 5, dtype=dtype, seed=0), (12,)),
    "reshape": LayerCase(lambda dtype: Reshape((2, 3, 4), (24,)), (2, 3, 4)),
    "flatten": LayerCase(lambda dtype: Flatten(), (2, 3, 4)),
    "sigmoid": LayerCase(lambda dtype: Sigmoid(), (3, 7)),
    "tanh": LayerCase(lambda dtype: Tanh(), (3, 7)),
    "relu": LayerCase(lambda dtype: ReLU(), (3, 7)),
    "softmax": LayerCase(lambda dtype: Softmax(), (7,)),
    "maxpool": LayerCase(lambda dtype: MaxPool2D(2), (3, 9, 8)),
    "batchnorm2d": LayerCase(lambda dtype: BatchNorm2D(3, dtype=dtype), (3, 5, 4)),
    "batchnorm1d": LayerCase(lambda dtype: BatchNorm1D(7, dtype=dtype), (7,)),
    # a training pass draws its mask on the device, which a host reference cannot repeat everywhere
    "dropout": LayerCase(lambda dtype: Dropout(0.5, seed=0), (3, 7), training=False),
}

OPTIMIZER_CASES: "dict[str, Callable[[], Any]]" = {
    "sgd": lambda: SGD(0.1),
    "momentum": lambda: SGD(0.1, momentum=0.9),
    "adam": lambda: Adam(1e-2),
}
OPTIMIZER_SETTINGS = {"sgd": (0.1, {}), "momentum": (0.1, {"momentum": 0.9}), "adam": (1e-2, {})}

#: Every engine, and ``auto`` (its measurement on the device, then the engine it chose).
ENGINE_NAMES = ("auto", *ENGINES)
STRIDES = (1, 2)


# -- results ---------------------------------------------------------------------------------------

@dataclass
class Check:
    """One check's verdict: ``worst`` is the worst relative error over the arrays it compared."""

    name: str
    ok: bool = True
    worst: float = 0.0
    tolerance: float = 0.0
    worst_array: str = ""
    problems: "list[str]" = field(default_factory=list)
    seconds: float = 0.0

    def add(self, comparison: "Check") -> None:
        self.ok = self.ok and comparison.ok
        self.problems += comparison.problems
        self.tolerance = comparison.tolerance
        if comparison.worst >= self.worst or not np.isfinite(comparison.worst):
            self.worst, self.worst_array = comparison.worst, comparison.worst_array

    def to_json(self) -> dict:
        return {"name": self.name, "ok": self.ok, "worst_relative_error": _finite_or_text(self.worst),
                "tolerance": self.tolerance, "worst_array": self.worst_array, "problems": self.problems,
                "seconds": round(self.seconds, 4)}


def _finite_or_text(value: float):
    return value if np.isfinite(value) else str(value)


def relative_error(got: np.ndarray, expected: np.ndarray, rtol: float, atol: float) -> float:
    """``max |got - expected| / (|expected| + atol / rtol)``; ``inf`` where ``got`` is not finite."""
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    if got.size == 0:
        return 0.0
    if not np.all(np.isfinite(got) == np.isfinite(expected)):
        return float("inf")
    finite = np.isfinite(expected)
    diff = np.abs(got[finite] - expected[finite]) / (np.abs(expected[finite]) + atol / rtol)
    return float(np.max(diff, initial=0.0))


def compare(got, expected, what: str, device: "backend.Device | None" = None, dtype: "str | None" = None,
            tolerance: "tuple[float, float] | None" = None) -> Check:
    """``got`` (any device) against the host's ``expected``: place, dtype, shape, then the values.

    ``device`` and ``dtype``, when given, are where and in what ``got`` must be. The tolerance is
    ``tolerance`` or that of ``dtype``; ``atol`` is scaled by the largest ``|expected|`` (at least 1).
    """
    rtol, atol = tolerance or TOLERANCES[dtype or "float64"]
    result = Check(what, tolerance=rtol, worst_array=what)
    if device is not None and backend.Device.of(got) != device:
        result.problems.append(f"{what}: on {backend.Device.of(got)}, expected {device}")
    if dtype is not None and got.dtype != getattr(backend.Device.of(got).xp, dtype):
        result.problems.append(f"{what}: dtype {got.dtype}, expected {dtype}")
    got, expected = backend.to_numpy(got), np.asarray(expected)
    if got.shape != expected.shape:
        result.problems.append(f"{what}: shape {got.shape}, expected {expected.shape}")
        result.ok, result.worst = False, float("inf")
        return result
    scale = max(1.0, float(np.max(np.abs(expected[np.isfinite(expected)]), initial=0.0)))
    result.worst = relative_error(got, expected, rtol, atol * scale)
    result.ok = not result.problems and result.worst <= rtol
    return result


def _timed(name: str, body: Callable[[Check], None]) -> Check:
    check = Check(name)
    start = time.perf_counter()
    try:
        body(check)
    except Exception as exc:  # a check that crashes has failed; the doctor goes on with the others
        check.ok, check.worst = False, float("inf")
        check.problems.append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    check.seconds = time.perf_counter() - start
    return check


def _host(x: np.ndarray, dtype: str) -> np.ndarray:
    """``x`` rounded to ``dtype``, then held in float64: the reference sees what the device sees."""
    return np.asarray(x).astype(dtype).astype(np.float64)


# -- layers ----------------------------------------------------------------------------------------

def _run_layer(layer, x, dy_of: Callable, training: bool) -> "dict[str, Any]":
    """Forward (training or not), then backward: every array the layer produces, by name."""
    y = layer.forward(x, training=training)
    out = {"Y": y}
    if training:
        dx = layer.backward(dy_of(y))
        if dx is not None:
            out["∂E/∂X"] = dx
        out.update({f"∂E/∂{k}": g for k, g in layer.grads.items()})
        out.update({f"buffer {k}": b for k, b in getattr(layer, "buffers", {}).items()})
    return out


def paired_layers(case: LayerCase, device, dtype: str):
    """``(layer on device in dtype, the same layer on the host in float64)``: same seed, same rounded
    parameters (and buffers)."""
    layer = case.make(dtype).to(device)
    ref = case.make("float64")
    for store in ("params", "buffers"):
        theirs = getattr(layer, store, None)
        for key in (theirs or {}):
            getattr(ref, store)[key] = _host(backend.to_numpy(theirs[key]), dtype)
    return layer, ref


def check_layer(name: str, device, dtype: str) -> Check:
    """Layer ``name``'s forward, ``∂E/∂X``, parameter gradients and buffers on ``device`` in ``dtype``
    against the same layer in NumPy float64."""
    case = LAYER_CASES[name]

    def body(check: Check) -> None:
        layer, ref = paired_layers(case, device, dtype)
        rng = np.random.default_rng(1)
        x = _host(3 * rng.standard_normal((N, *case.shape)), dtype)
        dy_seed = int(rng.integers(2 ** 31))
        ref_dy = {}

        def dy_of(y):  # one ∂E/∂Y, drawn once from the reference's output shape
            if "dy" not in ref_dy:
                ref_dy["dy"] = _host(np.random.default_rng(dy_seed).standard_normal(y.shape), dtype)
            return ref_dy["dy"]

        expected = _run_layer(ref, x, dy_of, case.training)
        got = _run_layer(layer, backend.to_device(x.astype(dtype), device),
                         lambda y: backend.to_device(ref_dy["dy"].astype(dtype), device), case.training)
        if set(got) != set(expected):
            check.problems.append(f"arrays {sorted(got)}, expected {sorted(expected)}")
            check.ok = False
        for key in expected.keys() & got.keys():
            check.add(compare(got[key], expected[key], key, device, dtype))

    return _timed(f"layer {name} {dtype}", body)


def check_layer_gradients(name: str) -> Check:
    """Layer ``name``'s ``backward`` against finite differences of its own ``forward`` (host, float64)."""
    case = LAYER_CASES[name]

    def body(check: Check) -> None:
        layer = case.make("float64")
        if not case.training:
            check.problems.append("inference-only case: no gradients to check")
            return
        x = 3 * np.random.default_rng(5).standard_normal((2, *case.shape))
        _finite_differences(check, gradcheck(layer, x, tolerance=_UNLIMITED, max_checks=_EVERY))

    return _timed(f"gradient {name} float64 (finite differences)", body)


#: gradcheck's limits when the check itself judges the worst error: every element, any error.
_EVERY, _UNLIMITED = 1 << 30, 1e300


def _finite_differences(check: Check, worst: float) -> None:
    check.tolerance, check.worst, check.worst_array = GRADIENT_TOLERANCE, worst, "gradients"
    check.ok = worst <= GRADIENT_TOLERANCE
    if not check.ok:
        check.problems.append(f"a gradient disagrees with central differences: relative error {worst:.3g}")


# -- convolution engines ---------------------------------------------------------------------------

def engine_arrays(dtype: str, stride: int) -> "tuple[np.ndarray, np.ndarray, np.ndarray]":
    """``X (N, 3, 11, 10)``, ``K (4, 3, 3, 3)`` and ``∂E/∂Y`` for ``stride``, rounded to ``dtype`` (float64)."""
    rng = np.random.default_rng(2)
    x = _host(rng.standard_normal((N, 3, 11, 10)), dtype)
    k = _host(rng.standard_normal((4, 3, 3, 3)), dtype)
    dy = _host(rng.standard_normal((N, 4, 8 // stride + 1, 7 // stride + 1)), dtype)
    return x, k, dy


def engine_on(name: str, x, k, stride: int):
    """The engine called ``name``; ``auto`` measures on these arrays (whatever ``XPCNN_ENGINE`` says)."""
    if name == "auto":
        return auto.choose(x, k, stride, True, ENGINES, True)
    return ENGINES[name]


def check_engine(name: str, device, dtype: str, stride: int) -> Check:
    """Engine ``name``'s three products on ``device`` against the derivation's loops (float64)."""
    label = f"engine {name} stride {stride} {dtype}"

    def body(check: Check) -> None:
        x, k, dy = engine_arrays(dtype, stride)
        xd, kd, dyd = (backend.to_device(a.astype(dtype), device) for a in (x, k, dy))
        engine = engine_on(name, xd, kd, stride)
        if name == "auto":
            check.name = f"{label} -> {engine.name}"
        y, kept = engine.forward(xd, kd, stride, keep=True)
        dk, dx = engine.backward(xd, kd, dyd, stride, kept)
        ref_dk, ref_dx = derivation.strided_conv_backward(x, k, dy, stride)
        check.add(compare(y, derivation.strided_conv_forward(x, k, stride), "Y", device, dtype))
        check.add(compare(dk, ref_dk, "∂E/∂K", device, dtype))
        check.add(compare(dx, ref_dx, "∂E/∂X", device, dtype))

    return _timed(label, body)


# -- losses ----------------------------------------------------------------------------------------

def loss_arrays(dtype: str) -> "tuple[np.ndarray, np.ndarray]":
    """``(y_true one-hot (8, 5), y_pred in (0, 1))``; in float64 two predictions sit on the clipped ends
    (in float32 the clip, at the dtype's epsilon, differs from float64's by design)."""
    rng = np.random.default_rng(3)
    y_pred = rng.uniform(0.01, 0.99, (8, 5))
    if dtype == "float64":
        y_pred[0, :2] = (0.0, 1.0)
    y_true = np.eye(5)[rng.integers(0, 5, 8)]
    return _host(y_true, dtype), _host(y_pred, dtype)


def check_loss(name: str, device, dtype: str) -> Check:
    """Loss ``name`` and its derivative on ``device`` against NumPy float64."""
    def body(check: Check) -> None:
        loss, prime = LOSSES[name]
        y_true, y_pred = loss_arrays(dtype)
        yt, yp = (backend.to_device(a.astype(dtype), device) for a in (y_true, y_pred))
        check.add(compare(loss(yt, yp), loss(y_true, y_pred), "E", device, dtype))
        check.add(compare(prime(yt, yp), prime(y_true, y_pred), "∂E/∂Y", device, dtype))

    return _timed(f"loss {name} {dtype}", body)


def check_loss_gradient(name: str) -> Check:
    """Loss ``name``'s derivative against finite differences of the loss (host, float64)."""
    def body(check: Check) -> None:
        y_true, y_pred = loss_arrays("float32")  # away from the clipped ends, where E has no derivative
        _finite_differences(check, gradcheck_loss(name, y_true, y_pred, tolerance=_UNLIMITED, max_checks=_EVERY))

    return _timed(f"gradient loss {name} float64 (finite differences)", body)


# -- optimizers ------------------------------------------------------------------------------------

def check_optimizer(name: str, device, dtype: str, steps: int = 4) -> Check:
    """Optimizer ``name``: ``steps`` updates of a Dense layer on ``device`` against the textbook rule
    (parameters) and against NumPy float64 (its state, the slots)."""
    def body(check: Check) -> None:
        layer, ref = paired_layers(LayerCase(lambda d: Dense(6, 3, dtype=d, seed=0), (6,)), device, dtype)
        start = {k: np.array(p) for k, p in ref.params.items()}
        opt, ref_opt = OPTIMIZER_CASES[name](), OPTIMIZER_CASES[name]()
        rng = np.random.default_rng(4)
        history = {k: [] for k in ref.params}
        for _ in range(steps):
            grads = {k: _host(rng.standard_normal(p.shape), dtype) for k, p in ref.params.items()}
            for k, g in grads.items():
                history[k].append(g)
            ref.grads = grads
            layer.grads = {k: backend.to_device(g.astype(dtype), device) for k, g in grads.items()}
            ref_opt.step([ref])
            opt.step([layer])
        rate, extra = OPTIMIZER_SETTINGS[name]
        for key, p in start.items():
            expected = textbook.optimizer_steps(name, p, history[key], rate, **extra)
            check.add(compare(layer.params[key], expected, f"{key} after {steps} steps", device, dtype))
        if set(opt.slots) != set(ref_opt.slots):
            check.problems.append(f"slots {sorted(opt.slots)}, expected {sorted(ref_opt.slots)}")
            check.ok = False
        for key in opt.slots.keys() & ref_opt.slots.keys():
            check.add(compare(opt.slots[key], ref_opt.slots[key], f"slot {key}", device, dtype))

    return _timed(f"optimizer {name} {dtype}", body)


# -- all of them -----------------------------------------------------------------------------------

def parity_checks(device, dtypes=DTYPES) -> "list[tuple[str, Callable[[], Check]]]":
    """Every check, as ``(name, run)`` in the order the doctor prints them."""
    plan: list = []
    for dtype in dtypes:
        plan += [(f"layer {n} {dtype}", lambda n=n, d=dtype: check_layer(n, device, d)) for n in LAYER_CASES]
    for dtype in dtypes:
        for stride in STRIDES:
            plan += [(f"engine {e} stride {stride} {dtype}",
                      lambda e=e, d=dtype, s=stride: check_engine(e, device, d, s)) for e in ENGINE_NAMES]
    for dtype in dtypes:
        plan += [(f"loss {n} {dtype}", lambda n=n, d=dtype: check_loss(n, device, d)) for n in LOSSES]
        plan += [(f"optimizer {n} {dtype}", lambda n=n, d=dtype: check_optimizer(n, device, d))
                 for n in OPTIMIZER_CASES]
    plan += [(f"gradient {n}", lambda n=n: check_layer_gradients(n)) for n, c in LAYER_CASES.items() if c.training]
    plan += [(f"gradient loss {n}", lambda n=n: check_loss_gradient(n)) for n in LOSSES]
    return plan
