"""Losses and their derivatives, each the mean over *all* elements, as in the derivation.

For predictions ``y`` and targets ``y*`` of the same shape (``(N, K)``), ``n = size(y)``::

    mse                        E = (1/n) Σ (y* - y)²                   ∂E/∂y = 2 (y - y*) / n
    binary_cross_entropy       E = -(1/n) Σ y* log y + (1-y*) log(1-y)  ∂E/∂y = ((1-y*)/(1-y) - y*/y) / n
    categorical_cross_entropy  E = -(1/n) Σ y* log y                   ∂E/∂y = -(y*/y) / n

The logarithms and divisions see ``y`` clipped to ``[ε, 1-ε]`` (``ε`` the dtype's machine
epsilon), so predictions of exactly 0 or 1 give finite losses and gradients. Losses return a
0-d array in the predictions' namespace and dtype.

Every loss is the mean over all ``N·K`` elements, as in the derivation. For binary
cross-entropy that is also Keras's and PyTorch's value; categorical cross-entropy, which Keras
and PyTorch average over the ``N`` samples only, is ``1/K`` of theirs here (and so is its
gradient: with plain SGD, a learning rate ``K`` times theirs takes the same steps; Adam does
not care).

Targets: the cross-entropies take one-hot (or, for binary cross-entropy, 0/1) targets.
:func:`target_problem` finds the first sample whose targets are not, and ``fit`` and
``evaluate`` refuse such labels rather than train on them (integer class labels are not
converted: ``numpy.eye(K)[labels]`` makes them one-hot).
"""

from __future__ import annotations

from typing import Callable

from array_api_compat import array_namespace, size

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


def binary_cross_entropy(y_true, y_pred):
    xp, y_true = _check("binary_cross_entropy", y_true, y_pred)
    y = _clipped(xp, y_pred)
    return xp.mean(-y_true * xp.log(y) - (1.0 - y_true) * xp.log(1.0 - y))


def binary_cross_entropy_prime(y_true, y_pred):
    xp, y_true = _check("binary_cross_entropy", y_true, y_pred)
    y = _clipped(xp, y_pred)
    return ((1.0 - y_true) / (1.0 - y) - y_true / y) / size(y_pred)


def categorical_cross_entropy(y_true, y_pred):
    xp, y_true = _check("categorical_cross_entropy", y_true, y_pred)
    return -xp.sum(y_true * xp.log(_clipped(xp, y_pred))) / size(y_pred)


def categorical_cross_entropy_prime(y_true, y_pred):
    xp, y_true = _check("categorical_cross_entropy", y_true, y_pred)
    return -(y_true / _clipped(xp, y_pred)) / size(y_pred)


LOSSES: dict[str, tuple[Callable, Callable]] = {
    "mse": (mse, mse_prime),
    "binary_cross_entropy": (binary_cross_entropy, binary_cross_entropy_prime),
    "categorical_cross_entropy": (categorical_cross_entropy, categorical_cross_entropy_prime),
}


def get_loss(loss: "str | tuple[Callable, Callable]") -> tuple[Callable, Callable]:
    """``(loss, loss_prime)`` from a name in :data:`LOSSES` or a pair of functions."""
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

    Binary cross-entropy needs values in {0, 1}; categorical cross-entropy needs one-hot rows
    (values in {0, 1} summing to 1). Other losses, and pairs of functions, take any finite
    targets. ``None`` when every sample is fine. Costs a pass over ``y_true`` and one host read.
    """
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
        return index, f"{loss} needs targets in {{0, 1}}"
    return index, f"{loss} needs one-hot targets (one 1 per row)"
