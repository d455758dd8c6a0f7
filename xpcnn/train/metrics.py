"""Right answers and the epoch's running loss: the one rule for a prediction from outputs.

``output_classes`` turns outputs (or one-hot labels) into class indices; accuracy in ``fit`` and
``evaluate``, :func:`xpcnn.predict_classes` and the CLI's confusion matrix all use it.
:class:`EpochTally` sums a training epoch's loss and right answers on the device and reads them
on the host at most every :data:`READ_INTERVAL` seconds.
"""

from __future__ import annotations

import time
from typing import Any

from ..backend.namespaces import array_namespace

#: Seconds between two host reads of the running loss, accuracy and finiteness flag.
READ_INTERVAL = 0.2


def output_classes(outputs: Any) -> Any:
    """Class indices from outputs or one-hot labels ``(N, K)``: ``argmax`` over ``K``, or ``>= 0.5``
    for a single output (``(N, 1)`` or ``(N,)``). ``(N,)`` int64, in the outputs' namespace.

    The one rule for a prediction from outputs: accuracy in ``fit``/``evaluate``,
    :func:`xpcnn.predict_classes` and the CLI's confusion matrix all use it. Outputs with more
    axes, ``(N, ..., K)``, give ``(N, ...)``.
    """
    xp = array_namespace(outputs)
    return xp.astype(_classes(xp, outputs), xp.int64)


def _classes(xp: Any, outputs: Any) -> Any:
    """:func:`output_classes` before the cast (bools or indices): what a comparison needs, every step."""
    if outputs.ndim == 1 or outputs.shape[-1] == 1:
        return (outputs if outputs.ndim == 1 else outputs[..., 0]) >= 0.5
    return xp.argmax(outputs, axis=-1)


def correct_count(xp: Any, y_true: Any, y_pred: Any) -> Any:
    """Number of right answers in a batch (0-d array in ``y_pred``'s dtype)."""
    hits = _classes(xp, y_pred) == _classes(xp, y_true)
    if hits.ndim > 1:
        hits = xp.all(xp.reshape(hits, (hits.shape[0], -1)), axis=1)
    return xp.sum(xp.astype(hits, y_pred.dtype))


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


def predict_classes(model: Any, x: Any, batch_size: int = 256) -> Any:
    """Class indices ``(N,)`` of ``model.predict(x)``, in the model's namespace (:func:`output_classes`)."""
    return output_classes(model.predict(x, batch_size))
