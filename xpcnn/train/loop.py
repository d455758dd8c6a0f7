"""The epochs of ``Sequential.fit``: batches, the schedule's rate per step, validation, early stopping.

:meth:`xpcnn.train.Trainer.fit` checks its arguments and sets the loss, optimizer and
schedule; :func:`run_epochs` then trains::

    for each epoch:
        for each batch:  η ← schedule(η_base, k, e)   (k: optimizer steps so far, e: finished epochs)
                         forward, backward, optimizer step (data-parallel: this rank's rows)
        logs ← {epoch, loss, accuracy, seconds, samples_per_s, learning_rate, val_loss, val_accuracy}
        stop ← early_stopping.update(logs) or on_epoch(logs)      (the ranks agree on stop)
    early_stopping.finish()  (puts the best epoch's weights back when it stopped)

Like the model, this module touches arrays only through the model's namespace, and the model
only through its public API (``train_step``, ``forward``, ``layers``, ``optimizer``, ``schedule``,
``rng``, ``epoch``, ``history``).
"""

from __future__ import annotations

import functools
import time
from typing import Any, Callable

from .. import backend
from ..distributed.data_parallel import DataParallel
from .batches import batch, to_model
from .data_checks import batch_bounds
from .early_stopping import EarlyStopping
from .metrics import EpochTally, correct_count
from .step_guard import Snapshot, StepGuard


def run_epochs(model: Any, x, y, loss_fns: tuple, *, epochs: int, batch_size: int, shuffle: bool,
               validation_data: "tuple | None", on_batch: "Callable | None", on_epoch: "Callable | None",
               parallel: DataParallel | None, stopper: EarlyStopping | None) -> None:
    """Train ``model`` for ``epochs`` epochs (fewer when ``on_epoch`` or ``stopper`` stops it)."""
    evaluate = functools.partial(evaluate_batches, model) if parallel is None else parallel.evaluate
    if stopper is not None:
        stopper.start()
    with backend.float_errors_ignored():
        for _ in range(epochs):
            logs = train_epoch(model, x, y, loss_fns, batch_size=batch_size, shuffle=shuffle, on_batch=on_batch,
                               parallel=parallel)
            if validation_data is not None:
                val = evaluate(*validation_data, loss_fns, 256)
                logs["val_loss"], logs["val_accuracy"] = val["loss"], val["accuracy"]
            record(model, logs)
            stop = stopper is not None and stopper.update(model, logs)  # the same val_loss on every rank
            stop = bool(on_epoch is not None and on_epoch(logs)) or stop
            if stop if parallel is None else parallel.agree(stop):
                break
    if stopper is not None:
        stopper.finish(model)


def train_epoch(model: Any, x, y, loss_fns: tuple, *, batch_size: int, shuffle: bool, on_batch,
                parallel: DataParallel | None = None) -> dict:
    """One pass over ``(x, y)``; returns ``{epoch, loss, accuracy, seconds, samples_per_s, learning_rate}``.

    With ``parallel``, this rank trains on its share of each batch and every value is the
    whole batch's (see :mod:`xpcnn.distributed.data_parallel`).
    """
    start = time.perf_counter()
    n = x.shape[0]
    bounds = batch_bounds(n, batch_size)
    order = backend.permutation(model.rng, n) if shuffle else None
    epoch = model.epoch + 1
    guard = StepGuard(epoch, len(bounds), model.optimizer.learning_rate, model.epoch)
    tally = EpochTally()
    for step, (lo, hi) in enumerate(bounds, 1):
        schedule_step(model)
        xb, yb = batch(model, x, y, order, *((lo, hi) if parallel is None else parallel.local(lo, hi)))
        before = Snapshot(model.layers, model.optimizer)
        if parallel is None:
            loss, out = model.train_step(xb, yb, *loss_fns, model.optimizer)
            correct = correct_count(model.xp, yb, out)
        else:
            loss, correct = parallel.step(xb, yb, hi - lo)
        guard.settle(step, loss, before)
        tally.add(loss, correct, hi - lo)
        logs = {"epoch": epoch, "batch": step, "batches": len(bounds), "size": hi - lo,
                "loss": loss, "correct": correct}
        if tally.due(step == len(bounds)):
            guard.check()
            logs["running_loss"], logs["running_accuracy"] = tally.read()
        if on_batch is not None:
            on_batch(logs)
    seconds = time.perf_counter() - start
    mean_loss, accuracy = tally.last  # read at the last batch
    return {"epoch": epoch, "loss": mean_loss, "accuracy": accuracy, "seconds": seconds,
            "samples_per_s": n / seconds if seconds > 0 else float("inf"),
            "learning_rate": model.optimizer.rate}


def schedule_step(model: Any) -> None:
    """Set the optimizer's rate for its next step from the model's schedule (the same on every rank)."""
    if model.schedule is not None:
        opt = model.optimizer
        opt.scheduled_rate = model.schedule.learning_rate(opt.learning_rate, opt.iterations, model.epoch)


def record(model: Any, logs: dict) -> None:
    """A finished epoch: count it and append its logs to the history.

    A key the earlier epochs lack (``learning_rate`` after resuming an older checkpoint, say)
    gets ``None`` for them, so every list keeps one entry per epoch.
    """
    done = len(next(iter(model.history.values()), []))
    model.epoch = logs["epoch"]
    for key, value in logs.items():
        model.history.setdefault(key, [None] * done).append(value)
    for key, values in model.history.items():
        if len(values) == done:
            values.append(None)


def evaluate_batches(model: Any, x, y, loss_fns: tuple, batch_size: int) -> dict:
    """``{"loss", "accuracy"}`` of ``model`` over checked ``(x, y)``, in inference batches."""
    loss_fn = loss_fns[0]
    n = x.shape[0]
    total_loss, correct = 0.0, 0.0
    for lo, hi in batch_bounds(n, batch_size):
        yb = to_model(model, y[lo:hi, ...])
        out = model.forward(to_model(model, x[lo:hi, ...]), training=False)
        total_loss = total_loss + loss_fn(yb, out) * yb.shape[0]
        correct = correct + correct_count(model.xp, yb, out)
    return {"loss": float(total_loss) / n, "accuracy": float(correct) / n}
