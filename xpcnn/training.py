"""The pieces of ``Sequential.fit`` that are not the model: data checks, the epoch tally, the step guard.

Checking every step's loss without a host synchronisation
    Reading a CuPy value on the host (``float(loss)``) waits for the GPU, and a training step
    queues its kernels without ever waiting today. So the loss is checked on the device:

    * every step computes ``finite = finite & isfinite(loss)`` (a 0-d bool; the loss is already
      the one reduction), and keeps the step's new parameters and optimizer slots only where
      ``finite`` holds: ``P ← where(finite, P_new, P_old)``. Steps never change arrays in place,
      so ``P_old`` is a reference kept from before the step, not a copy. After the first
      non-finite loss every later step of the epoch is thus a no-op, and the model holds the
      state after the last finite step.
    * the host reads ``finite`` where it reads values anyway: with the running loss and accuracy
      that the progress bar shows (at most every :data:`READ_INTERVAL` seconds) and at the end of
      the epoch. A false flag stops training with a :class:`~xpcnn.errors.TrainingError` naming
      the epoch and the step of the first non-finite loss.

    NumPy arrays are already in host memory, where reading costs nothing: there the step is
    checked at once, and a bad one is undone by restoring the references (no ``where``).
"""

from __future__ import annotations

import time
from typing import Any

from array_api_compat import array_namespace, is_numpy_array

from .distributed import shard
from .errors import ConfigError, DataError, ShapeError, TrainingError, format_shape
from .losses import target_problem

#: Seconds between two host reads of the running loss, accuracy and finiteness flag.
READ_INTERVAL = 0.2


# -- data checks, before any training ----------------------------------------------------------

def as_batch(x: Any, who: str, what: str) -> Any:
    """``x`` if it is an array with a batch axis, else a :class:`ShapeError`."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype") or len(tuple(x.shape)) == 0:
        raise ShapeError(f"{who}: {what} must be an array of shape (N, ...), got {type(x).__name__}"
                         + (f" of shape {tuple(x.shape)}" if hasattr(x, "shape") else ""))
    return x


def first_non_finite(x: Any) -> "int | None":
    """Index of the first sample of ``x`` (``(N, ...)``) holding a NaN or an infinity, or ``None``."""
    xp = array_namespace(x)
    if not xp.isdtype(x.dtype, ("real floating", "complex floating")) or x.shape[0] == 0:
        return None
    good = xp.all(xp.isfinite(xp.reshape(x, (x.shape[0], -1))), axis=1)
    if bool(xp.all(good)):
        return None
    return int(xp.argmax(xp.astype(~good, xp.int8)))


def check_values(x: Any, y: Any, who: str, loss: "str | tuple | None") -> None:
    """Refuse NaN or infinity in ``x`` or ``y``, and targets that do not suit ``loss``, naming the sample."""
    for array, what in ((x, "input"), (y, "label")):
        bad = first_non_finite(array)
        if bad is not None:
            raise DataError(f"{who}: {what} of sample {bad} holds NaN or infinity; clean the data before training")
    if loss is not None:
        problem = target_problem(loss, y)
        if problem is not None:
            index, why = problem
            raise DataError(f"{who}: the label of sample {index} does not fit: {why} (one-hot rows for integer "
                            f"classes: numpy.eye(K)[labels])")


def check_count(n: int, who: str) -> None:
    if n == 0:
        raise ShapeError(f"{who}: got 0 samples; needs at least one")


def check_inputs(model: Any, x: Any, who: str, what: str = "input") -> None:
    """``x`` is a batch ``(N, *model.input_shape)`` (any ``N``, 0 included)."""
    as_batch(x, who, what)
    if model.input_shape is not None and tuple(x.shape[1:]) != tuple(model.input_shape):
        raise ShapeError(f"{who}: expected {what} of shape {format_shape(model.input_shape)} for "
                         f"{model.layers[0]!r}, got {tuple(x.shape)}")


def check_labels(model: Any, x: Any, y: Any, who: str) -> None:
    """``y`` holds one label per input, of the model's output shape."""
    as_batch(y, who, "labels")
    if y.shape[0] != x.shape[0]:
        raise ShapeError(f"{who}: {x.shape[0]} inputs but {y.shape[0]} labels")
    if model.output_shape is not None and tuple(y.shape[1:]) != tuple(model.output_shape):
        raise ShapeError(f"{who}: labels of shape {tuple(y.shape)} do not match the model's output "
                         f"{format_shape(model.output_shape)}")


def check_data(model: Any, x: Any, y: Any, who: str, loss: "str | tuple | None") -> None:
    """Shapes, at least one sample, finite values and targets that suit ``loss``: before any work."""
    check_inputs(model, x, who)
    check_labels(model, x, y, who)
    check_count(x.shape[0], who)
    check_values(x, y, who, loss)


# -- batches and classes -------------------------------------------------------------------------

def batch_bounds(n: int, batch_size: int) -> "list[tuple[int, int]]":
    """``(lo, hi)`` bounds of consecutive batches; ``hi`` never passes ``n`` (strict slicing)."""
    return [(lo, min(n, lo + batch_size)) for lo in range(0, n, batch_size)]


def smallest_batch(n: int, batch_size: int, ranks: int = 1) -> int:
    """The fewest samples a forward pass of ``fit`` gets: the short last batch, or a rank's share of a batch
    (:func:`xpcnn.distributed.shard`; a rank left without samples makes no forward pass)."""
    sizes = {min(n, batch_size)} | ({n % batch_size} if n % batch_size else set())
    shares = (hi - lo for m in sizes for lo, hi in (shard(0, m, r, ranks) for r in range(ranks)))
    return min(share for share in shares if share > 0)


def check_batch_sizes(model: Any, x: Any, batch_size: int, who: str, ranks: int = 1) -> None:
    """Every batch ``fit`` will make of ``x`` is large enough for every layer in training (BatchNorm needs two
    values per channel): a :class:`~xpcnn.errors.ConfigError` before the first step, not a failure mid-epoch."""
    n, shape = x.shape[0], tuple(x.shape[1:])
    smallest = smallest_batch(n, batch_size, ranks)
    for i, layer in enumerate(model.layers):
        need = layer.min_training_batch(shape)
        if smallest < need:
            where = f"{n} sample{'s' * (n != 1)} in batches of {batch_size}" + (
                f" over {ranks} processes" if ranks > 1 else "")
            raise ConfigError(f"{who}: {layer!r} (layer {i}) needs at least {need} samples per batch in training, "
                              f"but {where} give a batch of {smallest}; choose another batch_size")
        shape = tuple(layer.output_shape(shape))


def output_classes(outputs: Any) -> Any:
    """Class indices from outputs or one-hot labels ``(N, K)``: ``argmax`` over ``K``, or ``>= 0.5``
    for a single output (``(N, 1)`` or ``(N,)``). ``(N,)`` int64, in the outputs' namespace.

    The one rule for a prediction from outputs: accuracy in ``fit``/``evaluate``,
    :func:`xpcnn.predict_classes` and the CLI's confusion matrix all use it. Outputs with more
    axes, ``(N, ..., K)``, give ``(N, ...)``.
    """
    xp = array_namespace(outputs)
    if outputs.ndim == 1 or outputs.shape[-1] == 1:
        scores = outputs if outputs.ndim == 1 else outputs[..., 0]
        return xp.astype(scores >= 0.5, xp.int64)
    return xp.astype(xp.argmax(outputs, axis=-1), xp.int64)


def correct_count(xp: Any, y_true: Any, y_pred: Any) -> Any:
    """Number of right answers in a batch (0-d array in ``y_pred``'s dtype)."""
    hits = output_classes(y_pred) == output_classes(y_true)
    if hits.ndim > 1:
        hits = xp.all(xp.reshape(hits, (hits.shape[0], -1)), axis=1)
    return xp.sum(xp.astype(hits, y_pred.dtype))


# -- the epoch's running values ---------------------------------------------------------------

class EpochTally:
    """The epoch's loss sum and right answers, summed on the device and read at most every
    :data:`READ_INTERVAL` seconds (and at the last batch)."""

    def __init__(self) -> None:
        self.loss_sum: Any = 0.0
        self.correct: Any = 0.0
        self.seen = 0
        self._last_read = time.monotonic()

    def add(self, loss: Any, correct: Any, size: int) -> None:
        self.loss_sum = self.loss_sum + loss * size
        self.correct = self.correct + correct
        self.seen += size

    def due(self, last_batch: bool) -> bool:
        now = time.monotonic()
        if last_batch or now - self._last_read >= READ_INTERVAL:
            self._last_read = now
            return True
        return False

    def read(self) -> "tuple[float, float]":
        """``(mean loss, accuracy)`` so far, as Python floats (a host read); also kept in ``last``."""
        self.last = (float(self.loss_sum) / self.seen, float(self.correct) / self.seen)
        return self.last


# -- the step guard ---------------------------------------------------------------------------

class Snapshot:
    """References to every layer's parameters and buffers (running statistics) and the optimizer's
    slots and step count (no copies: steps replace arrays, never change them in place)."""

    def __init__(self, layers: list, optimizer: Any) -> None:
        self.layers, self.optimizer = layers, optimizer
        self.params = [dict(layer.params) for layer in layers]
        self.buffers = [dict(layer.buffers) for layer in layers]
        self.slots = dict(optimizer.slots)
        self.iterations = optimizer.iterations

    def restore(self) -> None:
        for layer, params, buffers in zip(self.layers, self.params, self.buffers):
            layer.params.clear()
            layer.params.update(params)
            layer.buffers = dict(buffers)
        self.optimizer.slots = dict(self.slots)
        self.optimizer.iterations = self.iterations

    def forget_arrays(self) -> None:
        """Drop the references to arrays, keeping the step count and the slot names."""
        self.slot_names = set(self.slots)
        self.params, self.buffers, self.slots = [], [], {}

    def restore_counts(self) -> None:
        """The step count, and no slot that did not exist then (``keep_where`` kept the values)."""
        self.optimizer.iterations = self.iterations
        self.optimizer.slots = {k: v for k, v in self.optimizer.slots.items() if k in self.slot_names}

    def keep_where(self, flag: Any) -> None:
        """Every parameter, buffer and slot ``where(flag, now, snapshot)``: the step stays only if ``flag``."""
        for layer, old_params, old_buffers in zip(self.layers, self.params, self.buffers):
            for arrays, old in ((layer.params, old_params), (layer.buffers, old_buffers)):
                for name, new in arrays.items():
                    if name in old and new is not old[name]:
                        arrays[name] = array_namespace(new).where(flag, new, old[name])
        slots = self.optimizer.slots
        for key, new in slots.items():
            xp = array_namespace(new)
            old = self.slots.get(key)
            slots[key] = xp.where(flag, new, xp.zeros_like(new) if old is None else old)


class StepGuard:
    """Keeps each training step only while every loss of the epoch so far is finite (see the module)."""

    def __init__(self, epoch: int, steps: int, learning_rate: "float | None", finished_epochs: int) -> None:
        self.epoch, self.steps = epoch, steps
        self.learning_rate, self.finished_epochs = learning_rate, finished_epochs
        self.flag: Any = None
        #: Device path, since the last host read: ``(step, loss, snapshot)`` with the snapshot's
        #: arrays dropped (keeping them would keep every step's parameters alive).
        self.pending: "list[tuple[int, Any, Snapshot]]" = []

    def settle(self, step: int, loss: Any, before: Snapshot) -> None:
        """After step ``step`` (1-based) with ``loss``: keep it, or undo it (at once on the host)."""
        xp = array_namespace(loss)
        finite = xp.isfinite(loss)
        if is_numpy_array(finite):  # host memory: reading it costs no synchronisation
            if not bool(finite):
                before.restore()
                raise self._error(step, float(loss))
            return
        self.flag = finite if self.flag is None else xp.logical_and(self.flag, finite)
        before.keep_where(self.flag)
        before.forget_arrays()
        self.pending.append((step, loss, before))

    def check(self) -> None:
        """At a host read: raise for the first non-finite loss since the last read, if any."""
        if self.flag is None or bool(self.flag):
            self.pending.clear()
            return
        for step, loss, before in self.pending:
            value = float(loss)
            if value != value or value in (float("inf"), float("-inf")):
                before.restore_counts()  # the arrays were kept by keep_where
                raise self._error(step, value)
        raise TrainingError(f"epoch {self.epoch}: a training loss was not finite")  # pragma: no cover

    def _error(self, step: int, value: float) -> TrainingError:
        lr = f" (now {self.learning_rate:g})" if self.learning_rate is not None else ""
        kept = f"after step {step - 1} of epoch {self.epoch}" if step > 1 else f"from the end of epoch {self.epoch - 1}"
        err = TrainingError(
            f"epoch {self.epoch}, step {step}/{self.steps}: the training loss is {value}; training stopped. "
            f"The parameters and optimizer state are those {kept}, the last finite step, and the history "
            f"holds the {self.finished_epochs} finished epoch(s). Try a lower learning rate{lr}"
        )
        err.epoch, err.step, err.loss = self.epoch, step, value
        return err
