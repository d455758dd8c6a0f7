"""Early stopping on the validation loss, with the best epoch's weights restored (Keras's rule).

After each epoch of ``fit(..., validation_data=..., early_stopping=EarlyStopping(patience))``:

    improved  ⇔  val_loss < best - min_delta          (the first epoch always improves)
                 (monitor="val_accuracy": val_accuracy > best + min_delta)
    improved:  best ← val_loss, wait ← 0, keep a copy of every parameter and buffer
    otherwise: wait ← wait + 1;  wait ≥ patience  ⇒  stop, and (``restore_best``) put the copy back

Only the weights (parameters and buffers such as running statistics) are restored, not the
optimizer state nor the epoch count: the history keeps every epoch that ran, ``model.epoch``
counts them, and :attr:`EarlyStopping.best_epoch` / :attr:`restored_epoch` say which epoch's
weights the model holds. A run that ends without stopping keeps its last weights (as Keras does).
The counters start afresh at every ``fit`` (a resumed run counts its patience from its first epoch).
"""

from __future__ import annotations

import math
from typing import Any

from array_api_compat import array_namespace

from ..errors import ConfigTypeError
from .._checks import integer, number, one_of

#: What :class:`EarlyStopping` may watch, and whether smaller is better.
MONITORS = {"val_loss": True, "val_accuracy": False}


class EarlyStopping:
    """``EarlyStopping(patience=5, min_delta=0.0, restore_best=True, monitor="val_loss")``, for
    ``fit(early_stopping=...)``; ``monitor="val_accuracy"`` stops when the accuracy stops rising.

    After ``fit``: ``stopped_epoch`` (the epoch after which it stopped, or ``None``),
    ``best_epoch``, ``best`` (the monitored value there) and ``best_val_loss``, and
    ``restored_epoch`` (the epoch whose weights were put back, or ``None``).
    """

    def __init__(self, patience: int = 5, min_delta: float = 0.0, restore_best: bool = True,
                 monitor: str = "val_loss") -> None:
        self.patience = integer("EarlyStopping", "patience", patience, minimum=1)
        self.min_delta = number("EarlyStopping", "min_delta", min_delta, low=0.0)
        if not isinstance(restore_best, bool):
            raise ConfigTypeError(f"EarlyStopping: restore_best must be True or False, got {restore_best!r}")
        self.restore_best = restore_best
        self.monitor = one_of("EarlyStopping", "monitor", monitor, tuple(MONITORS))
        self.start()

    @classmethod
    def of(cls, value: Any) -> "EarlyStopping | None":
        """``fit``'s argument: ``None``, an :class:`EarlyStopping`, or an integer patience."""
        if value is None or isinstance(value, EarlyStopping):
            return value
        if hasattr(value, "__index__") and not isinstance(value, bool):  # an int, or NumPy's int64
            return cls(patience=value)
        raise ConfigTypeError(f"fit: early_stopping must be an EarlyStopping, an integer patience or None, "
                              f"got {value!r}")

    def __repr__(self) -> str:
        return (f"EarlyStopping(patience={self.patience}, min_delta={self.min_delta!r}, "
                f"restore_best={self.restore_best}, monitor={self.monitor!r})")

    def start(self) -> None:
        """Forget everything: a new ``fit`` begins."""
        self.best = math.inf if MONITORS[self.monitor] else -math.inf
        self.best_val_loss = math.inf
        self.best_epoch: "int | None" = None
        self.wait = 0
        self.stopped_epoch: "int | None" = None
        self.restored_epoch: "int | None" = None
        self._best: "list | None" = None

    def update(self, model: Any, logs: dict) -> bool:
        """After an epoch with ``logs["val_loss"]`` (and ``val_accuracy``): ``True`` to stop."""
        value = float(logs[self.monitor])
        smaller = MONITORS[self.monitor]
        if value < self.best - self.min_delta if smaller else value > self.best + self.min_delta:
            self.best, self.best_epoch, self.wait = value, logs["epoch"], 0
            self.best_val_loss = float(logs["val_loss"])
            if self.restore_best:
                self._best = _copy_weights(model)
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = logs["epoch"]
            return True
        return False

    def finish(self, model: Any) -> None:
        """At the end of ``fit``: put the best epoch's weights back when it stopped early."""
        if self.stopped_epoch is not None and self.restore_best and self._best is not None:
            for layer, (params, buffers) in zip(model.layers, self._best):
                layer.params.update(params)
                if buffers:
                    layer.buffers.update(buffers)
                layer.grads = {}
            self.restored_epoch = self.best_epoch
        self._best = None

    def report(self) -> dict:
        """JSON-ready: where it stopped and which epoch's weights the model holds."""
        found = self.best_epoch is not None
        return {"monitor": self.monitor, "patience": self.patience, "min_delta": self.min_delta,
                "restore_best": self.restore_best, "stopped_epoch": self.stopped_epoch, "best_epoch": self.best_epoch,
                "best": self.best if found else None, "best_val_loss": self.best_val_loss if found else None,
                "restored_epoch": self.restored_epoch}


def _copy(value: Any) -> Any:
    return array_namespace(value).asarray(value, copy=True)


def _copy_weights(model: Any) -> list:
    """A copy of every layer's parameters and buffers (buffers may be updated in place, or be views)."""
    return [({k: _copy(v) for k, v in layer.params.items()},
             {k: _copy(v) for k, v in getattr(layer, "buffers", {}).items()}) for layer in model.layers]
