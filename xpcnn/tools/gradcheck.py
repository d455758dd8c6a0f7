"""``gradcheck``: every analytic gradient of a layer or model against central differences, in float64.

For a layer or model ``f`` and a batch ``X``, the check uses the scalar ``E = Σ f(X) ⊙ R`` with
a fixed random ``R`` (uniform, unit variance, shape of ``f(X)``), so ``∂E/∂Y = R``. One training
forward pass and ``backward(R)`` give the analytic ``∂E/∂P`` for every parameter ``P`` and
``∂E/∂X``; each checked element ``θ`` of them is compared with::

    n = (E(θ + h) - E(θ - h)) / 2h                       (error O(h²), rounding O(ε |E| / h))
    error = |a - n| / max(|a|, |n|, floor)                a: the analytic value

``floor`` keeps gradients that are zero by the equations (a convolution bias under BatchNorm)
from dividing rounding noise by zero. The check runs on a float64 copy of ``f`` on the same
device (``f`` itself is left as it was, running statistics included), in training mode. A layer
that draws random numbers (Dropout) gets the same generator state for every evaluation, so
its mask is fixed. Arrays with more than ``max_checks`` elements are checked at a seeded random
sample of that many.

:func:`gradcheck_loss` checks a loss the same way: its ``loss_prime`` against central differences
of ``E(Y*, Y)`` with respect to the prediction ``Y``.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from array_api_compat import array_namespace

from .. import backend
from ..errors import ConfigTypeError, GradientCheckError
from ..layers.base import Layer
from ..losses import get_loss
from .._checks import integer, number

Array = Any


class _Target:
    """A float64 copy of a layer or a model, evaluated with a fixed generator state."""

    def __init__(self, layer_or_model: Any, device: "backend.Device", seed: int) -> None:
        if isinstance(layer_or_model, Layer):
            layers = [layer_or_model]
        elif _is_model(layer_or_model):
            layers = layer_or_model.layers
        else:
            raise ConfigTypeError(f"gradcheck: expected an xpcnn layer or Sequential, got "
                                  f"{type(layer_or_model).__name__}")
        self.layers = [_float64_copy(layer) for layer in layers]
        for layer in self.layers:
            layer.to(device, "float64")
            if hasattr(layer, "compute_input_gradient"):
                layer.compute_input_gradient = True  # a model's first layer skips it to save time
        self.seed = seed

    def forward(self, x: Array) -> Array:
        buffers = [dict(layer.buffers) for layer in self.layers]  # E must not depend on earlier calls
        for layer in self.layers:
            if layer.uses_rng:
                layer.rng = backend.new_rng(self.seed)
            x = layer.forward(x, True)
        for layer, kept in zip(self.layers, buffers):
            layer.buffers = kept
        return x

    def backward(self, gradient: Array) -> Array:
        for layer in reversed(self.layers):
            gradient = layer.backward(gradient)
        return gradient


def _is_model(value: Any) -> bool:
    """A model is what holds a list of xpcnn layers (``Sequential``; this module sits below it)."""
    layers = getattr(value, "layers", None)
    return isinstance(layers, list) and bool(layers) and all(isinstance(layer, Layer) for layer in layers)


def _float64_copy(layer: Layer) -> Layer:
    """A copy with its own ``params``, ``buffers`` and ``grads`` (their arrays are replaced, never
    changed in place, so the original's stay as they are)."""
    twin = copy.copy(layer)
    twin.params, twin.buffers, twin.grads, twin._saved = dict(layer.params), dict(layer.buffers), {}, None
    return twin


def _indices(size: int, limit: int, rng) -> "list[int]":
    if size <= limit:
        return list(range(size))
    return sorted(int(i) for i in backend.permutation(rng, size)[:limit])


def _unravel(flat: int, shape: tuple) -> tuple:
    index = []
    for dim in reversed(shape):
        flat, rest = divmod(flat, dim)
        index.append(rest)
    return tuple(reversed(index))


def gradcheck(layer_or_model: Any, x: Array, *, step: float = 1e-5, tolerance: float = 1e-4,
              floor: float = 1e-4, max_checks: int = 256, seed: int = 0) -> float:
    """The worst relative error of any checked gradient element (see the module); raises
    :class:`~xpcnn.errors.GradientCheckError` naming the worst element of each failing array when
    it passes ``tolerance``.

    ``x``: a batch ``(N, ...)`` in the layer's namespace and on its device (cast to float64).
    """
    step = number("gradcheck", "step", step, low=0.0, low_open=True)
    tolerance = number("gradcheck", "tolerance", tolerance, low=0.0)
    floor = number("gradcheck", "floor", floor, low=0.0, low_open=True)
    max_checks = integer("gradcheck", "max_checks", max_checks, minimum=1)
    target = _Target(layer_or_model, backend.Device.of(x), seed)
    xp = array_namespace(x)
    x = xp.astype(x, xp.float64)
    rng = backend.new_rng(seed)
    y = target.forward(x)
    r = backend.uniform(rng, tuple(y.shape), math.sqrt(3.0), "float64", backend.Device.of(y))  # unit variance
    analytic = {"input": target.backward(r)}
    for i, layer in enumerate(target.layers):
        for name in layer.params:
            analytic[(i, name)] = layer.grads[name]

    def energy(x_now: Array) -> float:
        return float(xp.sum(target.forward(x_now) * r))

    rows, worst = [], 0.0
    for key, grad in analytic.items():
        indices = _indices(math.prod(tuple(grad.shape)), max_checks, rng)
        error, index, a, n = _worst_element(grad, _perturbation(target, x, key, energy), indices, step, floor)
        worst = max(worst, error)
        if error > tolerance:
            where = "input" if key == "input" else f"{target.layers[key[0]]!r} (layer {key[0]}) {key[1]}"
            rows.append(_row(where, index, a, n, error))
    _raise_if_any("gradcheck", rows, step, tolerance)
    return worst


def gradcheck_loss(loss: "str | tuple", y_true: Array, y_pred: Array, *, step: float = 1e-6,
                   tolerance: float = 1e-4, floor: float = 1e-4, max_checks: int = 256, seed: int = 0) -> float:
    """``∂E/∂Y`` of ``loss`` (a name or a ``(loss, loss_prime)`` pair) at the prediction ``y_pred``
    against central differences of ``E(y_true, y_pred)``, in float64; the worst relative error, or
    :class:`~xpcnn.errors.GradientCheckError` past ``tolerance`` (as :func:`gradcheck`)."""
    step = number("gradcheck_loss", "step", step, low=0.0, low_open=True)
    tolerance = number("gradcheck_loss", "tolerance", tolerance, low=0.0)
    floor = number("gradcheck_loss", "floor", floor, low=0.0, low_open=True)
    max_checks = integer("gradcheck_loss", "max_checks", max_checks, minimum=1)
    loss_fn, loss_prime = get_loss(loss)
    xp = array_namespace(y_pred)
    y_true, y_pred = xp.astype(y_true, xp.float64), xp.astype(y_pred, xp.float64)
    analytic = loss_prime(y_true, y_pred)

    def moved_prediction(index: tuple, delta: float) -> float:
        moved = xp.asarray(y_pred, copy=True)
        moved[index] += delta
        return float(loss_fn(y_true, moved))

    indices = _indices(math.prod(tuple(y_pred.shape)), max_checks, backend.new_rng(seed))
    error, index, a, n = _worst_element(analytic, moved_prediction, indices, step, floor)
    _raise_if_any("gradcheck_loss", [_row("∂E/∂Y", index, a, n, error)] if error > tolerance else [], step, tolerance)
    return error


def _row(where: str, index: tuple, analytic: float, numeric: float, error: float) -> str:
    return f"  {where}{list(index)}: analytic {analytic:.10g}, numeric {numeric:.10g}, relative error {error:.3g}"


def _raise_if_any(who: str, rows: "list[str]", step: float, tolerance: float) -> None:
    if rows:
        raise GradientCheckError(f"{who}: {len(rows)} gradient(s) disagree with central differences (step "
                                 f"{step:g}) past the tolerance {tolerance:g}:\n" + "\n".join(rows))


def _perturbation(target: _Target, x: Array, key, energy):
    """``E`` with one element of the input (``key == "input"``) or of a parameter moved by ``delta``."""
    xp = array_namespace(x)
    if key == "input":
        def moved_input(index: tuple, delta: float) -> float:
            moved = xp.asarray(x, copy=True)
            moved[index] += delta
            return energy(moved)
        return moved_input
    layer, name = target.layers[key[0]], key[1]

    def moved_parameter(index: tuple, delta: float) -> float:
        base = layer.params[name]
        moved = xp.asarray(base, copy=True)
        moved[index] += delta
        layer.params[name] = moved
        try:
            return energy(x)
        finally:
            layer.params[name] = base
    return moved_parameter


def _worst_element(grad: Array, perturb, indices: "list[int]", step: float, floor: float) -> tuple:
    """``(error, index, analytic, numeric)`` of the checked element with the largest error."""
    host = backend.to_numpy(grad)
    shape = tuple(grad.shape)
    worst = (0.0, (), 0.0, 0.0)
    for flat in indices:
        index = _unravel(flat, shape)
        numeric = (perturb(index, step) - perturb(index, -step)) / (2 * step)
        a = float(host[index])
        error = abs(a - numeric) / max(abs(a), abs(numeric), floor)
        if error >= worst[0]:
            worst = (error, index, a, numeric)
    return worst
