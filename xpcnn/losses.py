"""Losses and their derivatives, each the mean over *all* elements, as in the derivation.

For predictions ``y`` and targets ``y*`` of the same shape (``(N, K)``), ``n = size(y)``::

    mse                        E = (1/n) Σ (y* - y)²                   ∂E/∂y = 2 (y - y*) / n
    binary_cross_entropy       E = -(1/n) Σ y* log y + (1-y*) log(1-y)  ∂E/∂y = ((1-y*)/(1-y) - y*/y) / n
    categorical_cross_entropy  E = -(1/n) Σ y* log y                   ∂E/∂y = -(y*/y) / n

and, for logits ``z`` (a network without a final Softmax or Sigmoid, as PyTorch's
``CrossEntropyLoss`` and ``BCEWithLogitsLoss`` take), ``p = softmax(z)`` over each row::

    softmax_cross_entropy      E = -(1/n) Σ y* log softmax(z)          ∂E/∂z = (p Σ_k y* - y*) / n
    sigmoid_cross_entropy      E = (1/n) Σ max(z,0) - z y* + log1p(exp(-|z|))   ∂E/∂z = (σ(z) - y*) / n

(their derivations are in :func:`softmax_cross_entropy` and :func:`sigmoid_cross_entropy`).

The logarithms and divisions see ``y`` clipped to ``[ε, 1-ε]`` (``ε`` the dtype's machine
epsilon), so predictions of exactly 0 or 1 give finite losses and gradients. Losses return a
0-d array in the predictions' namespace and dtype.

Every loss is the mean over all ``N·K`` elements, as in the derivation. For binary
cross-entropy that is also Keras's and PyTorch's value; categorical cross-entropy, which Keras
and PyTorch average over the ``N`` samples only, is ``1/K`` of theirs here (and so is its
gradient: with plain SGD, a learning rate ``K`` times theirs takes the same steps; Adam does
not care). The same holds for the two logits forms (``sigmoid_cross_entropy`` is exactly
``binary_cross_entropy_with_logits``; ``softmax_cross_entropy`` is ``cross_entropy / K``).

Predictions: the probability forms check what they receive, as PyTorch's ``BCELoss`` does, and
raise a :class:`~xpcnn.errors.ConfigError` of one line that names the fix (end the network with
Softmax or Sigmoid, or take the logits form): binary cross-entropy needs values in ``[0, 1]``,
categorical cross-entropy rows ``(N, K)`` of values ``>= 0`` that sum to 1 within
``eps ** (1/3)`` of the dtype (float16 0.099, float32 0.0049, float64 6.1e-6: far above a
Softmax's rounding, far below what logits or a Sigmoid give). The check runs in the loss value
(not in ``_prime``, which ``fit`` calls on the same outputs right after it): a few vectorised
passes over the predictions, one reduction and one host read per call (about 11 µs, 1% of a
batch-1 step of the zoo's ``seed`` network on a CPU: ``docs/guide/training.md``). Where reading
a value waits for a device (CuPy, a CUDA tensor), the check reads only at the 1st, 2nd, 4th,
8th, ... call since :func:`get_loss` (which ``fit`` and ``evaluate`` call once), so that a run of
``S`` steps synchronises ``log2 S`` times for it, never once per step. NaN and infinity pass it,
for the step guard to report as a non-finite loss.

Targets: the cross-entropies take one-hot (or, for binary cross-entropy, 0/1) targets.
:func:`target_problem` finds the first sample whose targets are not, and ``fit`` and
``evaluate`` refuse such labels rather than train on them (integer class labels are not
converted: ``numpy.eye(K)[labels]`` makes them one-hot). The logits forms take the same targets
as their probability forms (the functions themselves accept any probability targets, as
PyTorch's do; ``fit``'s check is the same as for the probability forms).
"""

from __future__ import annotations

from typing import Callable

from array_api_compat import device, is_numpy_array, size

from .backend.namespaces import array_namespace
from .errors import ConfigError, ConfigTypeError, ShapeError


def _check(name: str, y_true, y_pred):
    if tuple(y_true.shape) != tuple(y_pred.shape):
        raise ShapeError(
            f"{name}: labels of shape {tuple(y_true.shape)} do not match predictions of shape {tuple(y_pred.shape)}"
        )
    xp = array_namespace(y_true, y_pred)
    return xp, xp.astype(y_true, y_pred.dtype)


def _clipped(xp, y_pred):
    eps = float(xp.finfo(y_pred.dtype).eps)
    return xp.clip(y_pred, eps, 1.0 - eps)


def mse(y_true, y_pred):
    xp, y_true = _check("mse", y_true, y_pred)
    return xp.mean((y_true - y_pred) ** 2)


def mse_prime(y_true, y_pred):
    xp, y_true = _check("mse", y_true, y_pred)
    return 2.0 * (y_pred - y_true) / size(y_pred)


#: Probabilities' rows must sum to 1 within ``eps ** ROW_SUM_POWER`` of their dtype.
ROW_SUM_POWER = 1 / 3


#: Calls of the check on arrays whose reading waits for a device, since the last :func:`get_loss`.
_device_calls = [0]


def _due(y_pred) -> bool:
    """Whether the check reads ``y_pred`` now: always where reading is free (NumPy, a CPU tensor); on a
    device at the 1st, 2nd, 4th, 8th, ... call since :func:`get_loss`."""
    if is_numpy_array(y_pred) or "cpu" in str(device(y_pred)).lower():
        return True
    _device_calls[0] += 1
    count = _device_calls[0]
    return count & (count - 1) == 0


def check_probabilities(name: str, y_pred, rows_sum_to_one: bool) -> None:
    """Refuse predictions ``y_pred`` that are not probabilities: values outside ``[0, 1]``, or, with
    ``rows_sum_to_one``, samples ``(N, ...)`` whose values are negative or do not sum to 1 within
    ``eps ** (1/3)`` of the dtype. One :class:`ConfigError` line names the fix. NaN passes.

    Cost: one pass over ``y_pred``, one reduction to a scalar, one host read (on a device, only at the
    calls ``_due`` picks)."""
    xp = array_namespace(y_pred)
    if y_pred.ndim == 0 or size(y_pred) == 0 or not _due(y_pred):
        return
    if not rows_sum_to_one:  # |y - 1/2| <= 1/2  <=>  0 <= y <= 1
        worst = xp.max(xp.abs(y_pred - 0.5))
        if bool(worst > 0.5):
            high = float(xp.max(y_pred))
            extreme = high if high > 1 else float(xp.min(y_pred))
            raise ConfigError(f"{name}: predictions must be probabilities in [0, 1], got a value of {extreme:.4g}; "
                              f"end the network with Sigmoid(), or use loss='sigmoid_cross_entropy', which takes "
                              f"the logits")
        return
    rows = xp.reshape(y_pred, (y_pred.shape[0], -1))
    total = xp.sum(rows, axis=1)
    # |Σ y - 1| + (Σ |y| - Σ y): zero exactly when the row is >= 0 and sums to 1
    worst = xp.max(xp.abs(total - 1.0) + (xp.sum(xp.abs(rows), axis=1) - total))
    tolerance = float(xp.finfo(y_pred.dtype).eps) ** ROW_SUM_POWER
    if bool(worst > tolerance):
        low, off = float(xp.min(rows)), float(total[int(xp.argmax(xp.abs(total - 1.0)))])
        found = f"a value of {low:.4g}" if low < 0 else f"a row summing to {off:.4g}"
        raise ConfigError(f"{name}: predictions must be probabilities, each row >= 0 and summing to 1, got {found}; "
                          f"end the network with Softmax(), or use loss='softmax_cross_entropy', which takes the "
                          f"logits")


def binary_cross_entropy(y_true, y_pred):
    xp, y_true = _check("binary_cross_entropy", y_true, y_pred)
    check_probabilities("binary_cross_entropy", y_pred, rows_sum_to_one=False)
    y = _clipped(xp, y_pred)
    return xp.mean(-y_true * xp.log(y) - (1.0 - y_true) * xp.log(1.0 - y))


def binary_cross_entropy_prime(y_true, y_pred):
    xp, y_true = _check("binary_cross_entropy", y_true, y_pred)
    y = _clipped(xp, y_pred)
    return ((1.0 - y_true) / (1.0 - y) - y_true / y) / size(y_pred)


def categorical_cross_entropy(y_true, y_pred):
    xp, y_true = _check("categorical_cross_entropy", y_true, y_pred)
    check_probabilities("categorical_cross_entropy", y_pred, rows_sum_to_one=True)
    return -xp.sum(y_true * xp.log(_clipped(xp, y_pred))) / size(y_pred)


def categorical_cross_entropy_prime(y_true, y_pred):
    xp, y_true = _check("categorical_cross_entropy", y_true, y_pred)
    return -(y_true / _clipped(xp, y_pred)) / size(y_pred)


def _rows(xp, z):
    """``z`` as ``(N, K)``: every axis after the batch is one sample's classes (as for one-hot targets)."""
    return xp.reshape(z, (z.shape[0], -1)) if z.ndim > 1 else xp.reshape(z, (z.shape[0], 1))


def log_softmax(z):
    """``log softmax(z)`` over each sample's classes, shape of ``z`` ``(N, K)``: ``z - m - log Σ exp(z - m)``
    with ``m`` the row's maximum, so that no ``exp`` overflows (the log-sum-exp trick)."""
    xp = array_namespace(z)
    rows = _rows(xp, z)
    shifted = rows - xp.max(rows, axis=1, keepdims=True)
    return xp.reshape(shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True)), z.shape)


def softmax_cross_entropy(y_true, z):
    """Categorical cross-entropy of logits ``z`` ``(N, K)``: ``categorical_cross_entropy(y*, softmax(z))``,
    computed stably (PyTorch's ``cross_entropy``, divided by ``K`` as every loss here is a mean over ``N·K``).

    Derivation. With ``p = softmax(z)`` over each row, ``log p_k = z_k - log Σ_j exp(z_j)``; subtracting the
    row's maximum ``m`` from every ``z_j`` changes nothing (it cancels) and keeps every ``exp`` <= 1, so::

        E = -(1/n) Σ_i Σ_k y*_ik (z_ik - m_i - log Σ_j exp(z_ij - m_i))

    ``∂ log Σ_j exp(z_j) / ∂z_k = p_k``, hence ``∂E/∂z_ik = (p_ik Σ_k y*_ik - y*_ik) / n``, which is
    ``(p - y*) / n`` for targets that sum to 1 (one-hot or probabilities). No clipping is needed.
    """
    xp, y_true = _check("softmax_cross_entropy", y_true, z)
    return -xp.sum(y_true * log_softmax(z)) / size(z)


def softmax_cross_entropy_prime(y_true, z):
    xp, y_true = _check("softmax_cross_entropy", y_true, z)
    p = xp.exp(log_softmax(z))
    mass = xp.sum(_rows(xp, y_true), axis=1)  # Σ_k y*_ik, 1 for one-hot targets
    return (p * xp.reshape(mass, (z.shape[0],) + (1,) * (z.ndim - 1)) - y_true) / size(z)


def sigmoid_cross_entropy(y_true, z):
    """Binary cross-entropy of logits ``z``: ``binary_cross_entropy(y*, σ(z))``, computed stably
    (exactly PyTorch's ``binary_cross_entropy_with_logits``, the mean over all elements).

    Derivation. ``log σ(z) = -log(1 + e^-z)`` and ``log(1 - σ(z)) = -z - log(1 + e^-z)``, so per element
    ``-y* log σ(z) - (1-y*) log(1-σ(z)) = z - z y* + log(1 + e^-z)``. For ``z < 0``, ``e^-z`` overflows;
    there ``log(1 + e^-z) = -z + log(1 + e^z)``, and both cases are one formula::

        E = (1/n) Σ max(z, 0) - z y* + log1p(exp(-|z|))

    ``∂/∂z [z + log(1 + e^-z)] = 1 - e^-z / (1 + e^-z) = σ(z)``, hence ``∂E/∂z = (σ(z) - y*) / n``, with
    ``σ(z)`` taken as ``1 / (1 + e^-|z|)`` for ``z >= 0`` and ``e^-|z| / (1 + e^-|z|)`` below (no overflow).
    """
    xp, y_true = _check("sigmoid_cross_entropy", y_true, z)
    return xp.mean(xp.maximum(z, 0.0) - z * y_true + xp.log1p(xp.exp(-xp.abs(z))))


def sigmoid_cross_entropy_prime(y_true, z):
    xp, y_true = _check("sigmoid_cross_entropy", y_true, z)
    e = xp.exp(-xp.abs(z))
    sigma = xp.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return (sigma - y_true) / size(z)


LOSSES: dict[str, tuple[Callable, Callable]] = {
    "mse": (mse, mse_prime),
    "binary_cross_entropy": (binary_cross_entropy, binary_cross_entropy_prime),
    "categorical_cross_entropy": (categorical_cross_entropy, categorical_cross_entropy_prime),
    "softmax_cross_entropy": (softmax_cross_entropy, softmax_cross_entropy_prime),
    "sigmoid_cross_entropy": (sigmoid_cross_entropy, sigmoid_cross_entropy_prime),
}

#: The logits forms take the targets of their probability forms.
TARGETS_OF = {"softmax_cross_entropy": "categorical_cross_entropy", "sigmoid_cross_entropy": "binary_cross_entropy"}


def get_loss(loss: "str | tuple[Callable, Callable]") -> tuple[Callable, Callable]:
    """``(loss, loss_prime)`` from a name in :data:`LOSSES` or a pair of functions.

    Restarts the count of :func:`check_probabilities`'s device reads: ``fit`` and ``evaluate`` call it once
    each, so that their first batch is always checked."""
    _device_calls[0] = 0
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ConfigError(f"unknown loss {loss!r}: expected one of {sorted(LOSSES)}")
        return LOSSES[loss]
    if not (isinstance(loss, tuple) and len(loss) == 2 and all(callable(f) for f in loss)):
        raise ConfigTypeError(f"loss must be one of {sorted(LOSSES)} or a pair (loss, loss_prime) of functions, "
                              f"got {loss!r}")
    fn, prime = loss
    return fn, prime


def target_problem(loss: "str | tuple", y_true) -> "tuple[int, str] | None":
    """``(index, what is wrong)`` of the first sample whose targets ``(N, K)`` do not suit ``loss``.

    Binary cross-entropy (and its logits form) needs values in {0, 1}; categorical cross-entropy (and
    ``softmax_cross_entropy``) needs one-hot rows (values in {0, 1} summing to 1). Other losses, and pairs of
    functions, take any finite targets. ``None`` when every sample is fine. Costs a pass over ``y_true`` and one
    host read.
    """
    name, loss = loss, TARGETS_OF.get(loss, loss) if isinstance(loss, str) else loss
    if loss not in ("binary_cross_entropy", "categorical_cross_entropy") or y_true.shape[0] == 0:
        return None
    xp = array_namespace(y_true)
    rows = xp.reshape(y_true, (y_true.shape[0], -1))
    binary = xp.all((rows == 0) | (rows == 1), axis=1)
    good = binary & (xp.sum(rows, axis=1) == 1) if loss == "categorical_cross_entropy" else binary
    if bool(xp.all(good)):
        return None
    index = int(xp.argmax(xp.astype(~good, xp.int8)))
    if not bool(binary[index]):
        return index, f"{name} needs targets in {{0, 1}}"
    return index, f"{name} needs one-hot targets (one 1 per row)"
