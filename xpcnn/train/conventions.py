"""The spellings Keras and PyTorch users bring to ``compile`` and ``fit``, and what xpcnn makes of them.

xpcnn accepts the Keras form where it means the same thing, and answers in one line, naming what to
write, where it does not:

===============================================  ================================================================
Keras / PyTorch form                             in xpcnn
===============================================  ================================================================
``loss="categorical_crossentropy"`` (and the     the same loss, under its xpcnn name (:data:`LOSS_ALIASES`)
other Keras names)
``loss="sparse_categorical_crossentropy"``,      integer class labels ``(N,)`` become one-hot rows on the host,
integer labels (PyTorch's ``CrossEntropyLoss``)  then categorical cross-entropy (:func:`targets_for`)
``compile(optimizer="adam")``                    ``Adam()`` with its default rate (``"sgd"``, ``"momentum"`` too)
``compile(metrics=["accuracy"])``                accepted: every epoch reports loss and accuracy; other metrics
                                                 are refused in one line
``fit(verbose=0|1|2)``                           0 silent (xpcnn's default, as a PyTorch loop), 1 a progress bar
                                                 per epoch, 2 one line per epoch
``fit(validation_split=f)``                      the last ``f`` of the samples, before shuffling, as Keras
``fit(callbacks=[...])``                         objects with Keras's hooks (:func:`callback_hooks`); an
                                                 :class:`~xpcnn.train.EarlyStopping` among them is fit's
``model(x)``, ``model.count_params()``,          ``model(x)`` (= ``predict``), ``count_params``,
``model.save(path)``, ``load_model(path)``       ``save`` (an xpcnn checkpoint) and :func:`xpcnn.load_model`
===============================================  ================================================================
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from array_api_compat import array_namespace

from .._checks import number
from ..errors import ConfigError, ConfigTypeError, DataError, ShapeError
from ..optim import Optimizer, get_optimizer
from .early_stopping import EarlyStopping

#: Keras's (and common) loss names → xpcnn's.
LOSS_ALIASES = {
    "categorical_crossentropy": "categorical_cross_entropy",
    "binary_crossentropy": "binary_cross_entropy",
    "mean_squared_error": "mse",
    "MeanSquaredError": "mse",
    "CategoricalCrossentropy": "categorical_cross_entropy",
    "BinaryCrossentropy": "binary_cross_entropy",
    "sparse_categorical_crossentropy": "sparse_categorical_cross_entropy",
    "SparseCategoricalCrossentropy": "sparse_categorical_cross_entropy",
}
#: The loss that takes integer class labels; xpcnn trains it as categorical cross-entropy on one-hot rows.
SPARSE = "sparse_categorical_cross_entropy"
#: The optimizers ``compile(optimizer=...)`` takes by name, each at its class's default rate (Keras's too).
OPTIMIZER_RATES = {"sgd": 0.01, "momentum": 0.01, "adam": 1e-3}
#: The metrics every epoch reports anyway.
METRICS = {"accuracy", "acc"}
#: The callback methods ``fit`` calls, as Keras names them.
HOOKS = ("on_train_begin", "on_epoch_end", "on_train_batch_end", "on_train_end")


def canonical_loss(loss: Any) -> Any:
    """xpcnn's name for a Keras loss name; anything else unchanged."""
    return LOSS_ALIASES.get(loss, loss) if isinstance(loss, str) else loss


def optimizer_named(value: Any, who: str) -> "Optimizer | None":
    """``compile(optimizer="adam")``: the named optimizer at its default rate; an Optimizer or None unchanged."""
    if not isinstance(value, str):
        return value
    name = value.lower()
    if name not in OPTIMIZER_RATES:
        raise ConfigError(f"{who}: unknown optimizer {value!r}: expected one of {sorted(OPTIMIZER_RATES)} or an "
                          f"xpcnn Optimizer such as Adam(1e-3)")
    return get_optimizer(name, OPTIMIZER_RATES[name])


def check_metrics(metrics: Any, who: str) -> None:
    """``None`` or metrics among :data:`METRICS` (every epoch reports loss and accuracy anyway)."""
    if metrics is None:
        return
    if isinstance(metrics, str) or not isinstance(metrics, (list, tuple)):
        raise ConfigTypeError(f"{who}: metrics must be a list such as ['accuracy'], got {metrics!r}")
    other = [m for m in metrics if m not in METRICS]
    if other:
        raise ConfigError(f"{who}: xpcnn reports loss and accuracy for every epoch (history['loss'], "
                          f"history['accuracy']) and no other metric; got metrics={list(metrics)!r}")


def check_loss_not_optimizer(loss: Any, optimizer: Any, who: str) -> None:
    """Keras's ``compile("adam", "categorical_crossentropy")`` passes the optimizer first: say so."""
    if isinstance(loss, Optimizer) or (isinstance(loss, str) and loss.lower() in OPTIMIZER_RATES):
        raise ConfigError(f"{who}: loss={loss!r} is an optimizer; xpcnn's compile takes the loss first: write "
                          f"compile(loss=..., optimizer={loss!r})")


def targets_for(model: Any, y: Any, loss: Any, who: str) -> "tuple[Any, Any]":
    """``(y, loss)`` as the loss needs them: integer class labels ``(N,)`` become one-hot rows.

    With :data:`SPARSE`, or with categorical cross-entropy given integer labels ``(N,)`` (PyTorch's
    ``CrossEntropyLoss`` takes class indices), ``y`` becomes ``(N, K)`` one-hot rows in the model's
    dtype, ``K`` the model's output size, and the loss categorical cross-entropy. Binary
    cross-entropy and a single output take labels ``(N,)`` as ``(N, 1)``. Everything else is
    returned unchanged, for the data checks to judge. The conversion is one comparison on the
    labels' own namespace (no loop).
    """
    loss = canonical_loss(loss)
    out = tuple(model.output_shape) if model.output_shape is not None else None
    if not (hasattr(y, "shape") and hasattr(y, "dtype") and len(tuple(y.shape)) == 1):
        if loss == SPARSE:
            got = tuple(y.shape) if hasattr(y, "shape") else type(y).__name__
            raise ShapeError(f"{who}: {SPARSE} takes integer class labels of shape (N,), got {got}")
        return y, loss
    xp = array_namespace(y)
    integral = xp.isdtype(y.dtype, "integral")
    if loss == SPARSE or (loss == "categorical_cross_entropy" and integral):
        if out is None or len(out) != 1:
            raise ShapeError(f"{who}: class labels need a model whose output is (K,) class scores, got "
                             f"{out}")
        return one_hot(y, out[0], model.dtype, who), "categorical_cross_entropy"
    if out == (1,):
        return xp.reshape(y, (y.shape[0], 1)), loss
    return y, loss


def one_hot(labels: Any, classes: int, dtype: str, who: str) -> Any:
    """``(N,)`` integer labels in ``[0, classes)`` → ``(N, classes)`` one-hot rows; names the first bad label."""
    xp = array_namespace(labels)
    if not xp.isdtype(labels.dtype, "integral"):
        if labels.shape[0] and not bool(xp.all(labels == xp.round(labels))):
            raise DataError(f"{who}: class labels must be whole numbers in [0, {classes}), got {labels.dtype} "
                            f"values with a fraction")
        labels = xp.astype(labels, xp.int64)
    bad = (labels < 0) | (labels >= classes)
    if labels.shape[0] and bool(xp.any(bad)):
        index = int(xp.argmax(xp.astype(bad, xp.int8)))
        raise DataError(f"{who}: the label of sample {index} is {int(labels[index])}, not a class in "
                        f"[0, {classes}) (the model has {classes} outputs)")
    classes_row = xp.arange(classes, dtype=labels.dtype, device=getattr(labels, "device", None))
    return xp.astype(labels[:, None] == classes_row[None, :], getattr(xp, dtype))


def split_validation(x: Any, y: Any, fraction: Any, validation_data: Any, who: str) -> "tuple[Any, Any, Any]":
    """``(x, y, validation_data)`` with the last ``fraction`` of the samples held out, as Keras does."""
    if fraction is None:
        return x, y, validation_data
    fraction = number(who, "validation_split", fraction, low=0.0, high=1.0, high_open=True)
    if fraction == 0:
        return x, y, validation_data
    if validation_data is not None:
        raise ConfigError(f"{who}: pass validation_data or validation_split, not both")
    n = x.shape[0]
    held = int(n * fraction)
    if held < 1 or held >= n:
        raise ConfigError(f"{who}: validation_split={fraction} of {n} samples holds out {held}; it must leave "
                          f"at least one sample for each side")
    cut = n - held
    return x[:cut, ...], y[:cut, ...], (x[cut:, ...], y[cut:, ...])


class Progress:
    """``fit(verbose=1)``: a progress bar per epoch (tqdm); ``verbose=2``: one line per epoch."""

    def __init__(self, verbose: int, epochs: int, stream=None) -> None:
        self.verbose, self.epochs, self.stream = verbose, epochs, stream or sys.stdout
        self.bar = None

    def on_batch(self, logs: dict) -> None:
        if self.verbose != 1:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=logs["batches"], desc=f"epoch {logs['epoch']}/{self.epochs}", file=self.stream,
                            leave=True, dynamic_ncols=True)
        self.bar.update(1)
        if "running_loss" in logs:
            self.bar.set_postfix(loss=f"{logs['running_loss']:.4f}", accuracy=f"{logs['running_accuracy']:.4f}")

    def on_epoch(self, logs: dict) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.verbose == 2:
            shown = " - ".join(f"{k}: {logs[k]:.4f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy")
                               if logs.get(k) is not None)
            print(f"epoch {logs['epoch']}/{self.epochs} - {logs['seconds']:.1f}s - {shown}", file=self.stream)


def check_verbose(verbose: Any, who: str) -> int:
    if verbose is True:
        return 1
    if verbose is False:
        return 0
    if verbose not in (0, 1, 2) or isinstance(verbose, float):
        raise ConfigError(f"{who}: verbose must be 0 (silent), 1 (a progress bar) or 2 (one line per epoch), "
                          f"got {verbose!r}")
    return int(verbose)


def callback_hooks(model: Any, callbacks: Any, who: str) -> "tuple[list, EarlyStopping | None]":
    """The callbacks' objects, checked, and the :class:`EarlyStopping` among them (at most one).

    A callback is any object with at least one of Keras's methods :data:`HOOKS`:
    ``on_train_begin(logs)``, ``on_epoch_end(epoch, logs)`` (``epoch`` counts from 0, as Keras),
    ``on_train_batch_end(batch, logs)`` and ``on_train_end(logs)``. ``set_model(model)`` is called
    first where defined; setting ``model.stop_training = True`` stops after the epoch.
    """
    if callbacks is None:
        return [], None
    if not isinstance(callbacks, (list, tuple)):
        raise ConfigTypeError(f"{who}: callbacks must be a list of callback objects, got {callbacks!r}")
    plain, stoppers = [], []
    for i, cb in enumerate(callbacks):
        if isinstance(cb, EarlyStopping):
            stoppers.append(cb)
        elif any(callable(getattr(cb, hook, None)) for hook in HOOKS):
            plain.append(cb)
        else:
            raise ConfigTypeError(f"{who}: callbacks[{i}] is {cb!r}, which has none of the methods fit calls "
                                  f"({', '.join(HOOKS)})")
    if len(stoppers) > 1:
        raise ConfigError(f"{who}: callbacks hold {len(stoppers)} EarlyStopping objects; pass one")
    for cb in plain:
        if callable(getattr(cb, "set_model", None)):
            cb.set_model(model)
    return plain, (stoppers[0] if stoppers else None)


def call(callbacks: list, hook: str, *args: Any) -> None:
    for cb in callbacks:
        method = getattr(cb, hook, None)
        if callable(method):
            method(*args)


def chained(first: "Callable | None", *more: "Callable | None") -> "Callable | None":
    """One callback calling each given one in order; its answer is whether any asked to stop."""
    calls = [f for f in (first, *more) if f is not None]
    if not calls:
        return None
    if len(calls) == 1:
        return calls[0]

    def run(logs: dict) -> bool:
        stop = False
        for f in calls:
            stop = bool(f(logs)) or stop
        return stop

    return run
