"""Workers: data parallelism inside one process, with the ranks' promise (see docs/workers.md).

``fit(..., workers=T)`` trains ``T`` replicas of the model in ``T`` threads. A replica is a shallow
copy of the model and of each layer: it shares the layers' parameter dictionaries (so every
optimizer step is seen by all) and keeps its own saved state for backward, gradients, buffers and
generator. The layers are unchanged; NumPy and BLAS release the GIL, so the threads run at once.

The global batch ``[lo, hi)`` of ``m`` rows is cut into ``S = P·T`` shares by the ranks' rule
(:func:`xpcnn.distributed.shard`; ``P`` ranks, 1 without ``mpiexec``): worker ``w`` of rank ``r``
takes share ``s = r·T + w``, of ``m_s`` rows (rank ``r``'s shares together are exactly its rows
``shard(lo, hi, r, P)``). Each worker writes ``(m_s/m) g_s`` of every parameter, its buffers
weighted alike, ``(m_s/m) E_s`` and its right answers into one flat buffer of its own
(:class:`~xpcnn.distributed.data_parallel.Fusion`); the buffers are summed in worker order, then
over the ranks (allreduce), and the optimizer steps once::

    g = Σ_s (m_s / m) g_s        E = Σ_s (m_s / m) E_s

Dropout draws the whole batch's values from one copy of the model's generator per worker and keeps
its own rows (``batch_rows``), so the masks do not depend on ``T``; the model's generator then
moves on as one pass would have moved it. BatchNorm normalises with its worker's ``m_s`` rows, as
it does per rank. ``evaluate`` and ``predict`` split each batch the same way.
"""

from __future__ import annotations

import copy
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from .. import backend
from ..distributed import shard
from ..distributed.data_parallel import Fusion, _assign, _buffers, _parameters
from .batches import to_model
from .data_checks import batch_bounds
from .metrics import correct_count

_POOL: "list[ThreadPoolExecutor]" = []
_POOL_LOCK = threading.Lock()


def pool(threads: int) -> ThreadPoolExecutor:
    """A process-wide pool with at least ``threads`` threads (idle threads cost nothing)."""
    with _POOL_LOCK:
        if not _POOL or _POOL[0]._max_workers < threads:
            if _POOL:
                _POOL.pop().shutdown(wait=False)
            _POOL.append(ThreadPoolExecutor(threads, thread_name_prefix="xpcnn-worker"))
        return _POOL[0]


def replica(model: Any) -> Any:
    """A shallow copy of ``model`` and its layers with a generator of its own (see :meth:`Workers.sync`)."""
    twin = copy.copy(model)
    twin.layers = [copy.copy(layer) for layer in model.layers]
    twin.rng = backend.new_rng(0)
    return twin


def run_all(tasks: "list[Callable[[], Any]]") -> list:
    """Run ``tasks``: the first in this thread, the others in the pool; every one finishes before any error."""
    futures = [pool(len(tasks) - 1).submit(task) for task in tasks[1:]]
    errors, results = [], []
    try:
        results.append(tasks[0]())
    except BaseException as exc:  # noqa: BLE001 - re-raised below, after the other workers finished
        errors.append(exc)
    for future in futures:
        try:
            results.append(future.result())
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
    if errors:
        raise errors[0]
    return results


class Workers:
    """``count`` replicas of ``model``: one training step, or one evaluation, split between threads."""

    def __init__(self, model: Any, count: int, loss_fn: "Callable | None" = None,
                 loss_prime: "Callable | None" = None, correct: "Callable | None" = None) -> None:
        self.model, self.count = model, count
        self.loss_fn, self.loss_prime, self.correct = loss_fn, loss_prime, correct
        self.replicas = [replica(model) for _ in range(count)]
        self.fusions: "list[Fusion]" = []
        self._shapes: set = set()  # share shapes seen: a new one runs its workers one after another once

    def sync(self, twin: Any) -> None:
        """Point ``twin``'s layers at the model's current parameters and buffers; clear its gradients."""
        for mine, theirs in zip(twin.layers, self.model.layers):
            mine.params = theirs.params
            mine.buffers = dict(theirs.buffers)
            mine.grads = {}

    def _run(self, tasks: list, shapes: tuple) -> list:
        if shapes in self._shapes:
            return run_all(tasks)
        self._shapes.add(shapes)  # engine="auto" times a new shape: once, without the other workers' noise
        return [task() for task in tasks]

    # -- training ------------------------------------------------------------------------------------------
    def accumulate(self, x, y, batch: int, group: int = 0, groups: int = 1) -> Fusion:
        """Forward and backward of every worker on its share; returns the fusion buffer holding the sums.

        ``x, y`` are this process's rows of the global batch of ``batch`` rows: those of rank ``group``
        of ``groups`` (see the module).
        """
        model, count = self.model, self.count
        if not self.fusions:
            arrays = {**_parameters(model), **_buffers(model)}
            self.fusions = [Fusion(arrays, extra=2) for _ in range(count)]
        shares = groups * count
        start = shard(0, batch, group * count, shares)[0]
        rows = [shard(0, batch, group * count + w, shares) for w in range(count)]
        state = backend.rng_state(model.rng)
        tasks = [lambda w=w: self._train_share(w, x, y, rows[w], start, batch, state) for w in range(count)]
        ran = self._run(tasks, tuple(b - a for a, b in rows))
        drew = [twin for twin, did in zip(self.replicas, ran) if did]
        if drew:  # the generator moves on as one pass over the batch moves it
            backend.set_rng_state(model.rng, backend.rng_state(drew[-1].rng))
        else:  # no rows here (a rank of a short last batch): draw the keys the others' Dropout layers drew
            for layer in model.layers:
                if layer.uses_rng:
                    backend.random_key(model.rng)
        if getattr(model, "first_input_shape", ()) is None and model.input_shape is None:
            model.first_input_shape = tuple(x.shape[1:])
        total = self.fusions[0]
        for fusion in self.fusions[1:]:
            for mine, theirs in zip(total.groups.values(), fusion.groups.values()):
                mine["buffer"] += theirs["buffer"]
        return total

    def _train_share(self, w: int, x, y, rows: tuple, start: int, batch: int, state: dict) -> bool:
        a, b = rows
        fusion = self.fusions[w]
        if b == a:
            fusion.pack({}, extras=(0.0, 0.0))
            return False
        twin = self.replicas[w]
        self.sync(twin)
        backend.set_rng_state(twin.rng, state)
        xs, ys = x[a - start:b - start, ...], y[a - start:b - start, ...]
        for layer in twin.layers:
            if layer.uses_rng:
                layer.batch_rows = (a, batch)
        out = twin.forward(xs)
        loss = self.loss_fn(ys, out)
        twin.backward(self.loss_prime(ys, out))
        correct = self.correct(twin.xp, ys, out)
        grads = {(i, name): g for i, layer in enumerate(twin.layers) for name, g in layer.grads.items()}
        grads.update(_buffers(twin))
        weight = (b - a) / batch
        fusion.pack(grads, scale=weight, extras=(loss * weight, correct))
        return True

    def step(self, x, y, batch: int):
        """One training step of this process alone: ``(batch loss, right answers)``."""
        total = self.accumulate(x, y, batch)
        _assign(self.model, total.unpack(), where="grads")
        self.model.optimizer.step(self.model.layers)
        loss, correct = total.extras()
        return loss, correct

    # -- the interface of DataParallel, for fit without ranks ---------------------------------------------
    def local(self, lo: int, hi: int) -> "tuple[int, int]":
        return lo, hi

    def agree(self, stop: Any) -> bool:
        return bool(stop)

    # -- inference -----------------------------------------------------------------------------------------
    def forward_shares(self, x) -> list:
        """``[(rows, output)]`` of every worker with rows, in order (inference: nothing kept)."""
        n = x.shape[0]
        rows = [(a, b) for a, b in (shard(0, n, w, self.count) for w in range(self.count)) if b > a]

        def infer(w: int):
            twin = self.replicas[w]
            self.sync(twin)
            a, b = rows[w]
            return twin.forward(x[a:b, ...], training=False)

        outs = self._run([lambda w=w: infer(w) for w in range(len(rows))], tuple(b - a for a, b in rows))
        return list(zip(rows, outs))

    def evaluate_part(self, model: Any, x, y, loss_fns: tuple, batch_size: int) -> dict:
        """``{"loss", "accuracy"}`` over ``(x, y)`` (the signature of ``evaluate_batches``)."""
        loss_fn = loss_fns[0]
        n = x.shape[0]
        total_loss, correct = 0.0, 0.0
        for lo, hi in batch_bounds(n, batch_size):
            xb, yb = to_model(model, x[lo:hi, ...]), to_model(model, y[lo:hi, ...])
            for (a, b), out in self.forward_shares(xb):
                total_loss = total_loss + loss_fn(yb[a:b, ...], out) * (b - a)
                correct = correct + correct_count(model.xp, yb[a:b, ...], out)
        return {"loss": float(total_loss) / n, "accuracy": float(correct) / n}

    def evaluate(self, x, y, loss_fns: tuple, batch_size: int) -> dict:
        return self.evaluate_part(self.model, x, y, loss_fns, batch_size)
