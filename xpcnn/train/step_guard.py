"""The step guard: every training step's loss is checked without a host synchronisation.

Reading a CuPy value on the host (``float(loss)``) waits for the GPU, and a training step
queues its kernels without ever waiting today. So the loss is checked on the device:

* every step computes ``finite = finite & isfinite(loss)`` (a 0-d bool; the loss is already
  the one reduction), and keeps the step's new parameters and optimizer slots only where
  ``finite`` holds: ``P ← where(finite, P_new, P_old)``. Steps never change arrays in place,
  so ``P_old`` is a reference kept from before the step, not a copy. After the first
  non-finite loss every later step of the epoch is thus a no-op, and the model holds the
  state after the last finite step.
* the host reads ``finite`` where it reads values anyway: with the running loss and accuracy
  that the progress bar shows (at most every :data:`~xpcnn.train.metrics.READ_INTERVAL` seconds) and at the end of
  the epoch. A false flag stops training with a :class:`~xpcnn.errors.TrainingError` naming
  the epoch and the step of the first non-finite loss.

NumPy arrays are already in host memory, where reading costs nothing: there the step is
checked at once, and a bad one is undone by restoring the references (no ``where``).
"""

from __future__ import annotations

from typing import Any

from array_api_compat import is_numpy_array

from ..backend.namespaces import array_namespace
from ..errors import TrainingError


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
