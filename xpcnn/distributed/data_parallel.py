"""Synchronous data-parallel training: each rank's share of a batch, one fused allreduce per step.

The global batch ``[lo, hi)`` of the epoch's permutation holds ``m`` samples; rank ``r`` takes
``m_r`` of them (:func:`xpcnn.distributed.shard`, ``Σ m_r = m``). Every xpcnn loss is a mean over
its batch (and over outputs), so rank ``r``'s gradient ``g_r`` is a mean over its ``m_r``
samples, and the gradient of the whole batch is

    g = (1/m) Σ_samples ∇e = Σ_r (m_r / m) g_r        E = Σ_r (m_r / m) E_r

Each rank writes ``(m_r/m) g_r`` of every parameter into one flat buffer per dtype, allocated
once (Horovod's tensor fusion), followed by two numbers: ``(m_r/m) E_r`` and its count of right
answers. One allreduce sums the buffer; every rank reads the same gradients back and applies
the same update to the same parameters, so 1, 2 or P processes follow one trajectory up to
the order of floating-point sums. A rank without samples (a last batch shorter than the
number of ranks) adds zeros.

Layers with batch statistics normalise with their rank's ``m_r`` samples (PyTorch's DDP without
SyncBatchNorm does the same), so a model holding one is outside that promise. Their running
statistics (a layer's floating-point ``buffers``) ride in the same buffer, weighted like the
gradients: a running average is linear in the batch statistics, so every rank keeps the
weighted mean of the ranks' updates, the same on all of them (DDP instead copies rank 0's).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import array_api_compat

from ..backend.namespaces import array_namespace
from .. import backend
from ..errors import ConfigError
from .communicator import Communicator, on_every_rank, shard
from .world import fingerprint

Key = Any


class Fusion:
    """A fixed list of named arrays laid end to end in one flat buffer per dtype.

    ``extra`` more elements follow the arrays of the first dtype (for the loss and the count
    of right answers). The buffers are allocated once and reused by every :meth:`pack`.
    """

    def __init__(self, arrays: "dict[Key, Any]", extra: int = 0) -> None:
        self.groups: "dict[str, dict]" = {}
        for key, array in arrays.items():
            group = self.groups.setdefault(backend.dtype_name(array), {"entries": [], "size": 0, "like": array})
            size = math.prod(array.shape)
            group["entries"].append((key, group["size"], group["size"] + size, tuple(array.shape)))
            group["size"] += size
        if not self.groups:
            raise ConfigError("data-parallel training needs a model with parameters")
        first = next(iter(self.groups.values()))
        self.extra_at, self.extra = first["size"], extra
        first["size"] += extra
        for group in self.groups.values():
            like = group.pop("like")
            xp = array_namespace(like)
            group["buffer"] = xp.zeros((group["size"],), dtype=like.dtype, device=array_api_compat.device(like))

    def pack(self, arrays: "dict[Key, Any]", scale: "float | None" = None, extras: tuple = ()) -> None:
        """Copy ``arrays`` (``None``: zeros) into the buffers, then multiply them by ``scale``."""
        for group in self.groups.values():
            buf = group["buffer"]
            xp = array_namespace(buf)
            for key, lo, hi, _ in group["entries"]:
                value = arrays.get(key)
                buf[lo:hi] = 0.0 if value is None else xp.reshape(value, (hi - lo,))
            if scale is not None and scale != 1.0:
                buf *= scale
        first = next(iter(self.groups.values()))["buffer"]
        for i, value in enumerate(extras):
            first[self.extra_at + i] = value

    def run(self, collective: Callable) -> None:
        """``buffer = collective(buffer)`` for every dtype: one call each."""
        for group in self.groups.values():
            group["buffer"] = collective(group["buffer"])

    def unpack(self, copy: bool = False) -> "dict[Key, Any]":
        """The arrays, reshaped from the buffers (views unless ``copy``)."""
        out = {}
        for group in self.groups.values():
            buf = group["buffer"]
            xp = array_namespace(buf)
            for key, lo, hi, shape in group["entries"]:
                view = xp.reshape(buf[lo:hi], shape)
                out[key] = xp.asarray(view, copy=True) if copy else view
        return out

    def extras(self) -> list:
        """The ``extra`` trailing elements, as 0-d arrays of their own."""
        first = next(iter(self.groups.values()))["buffer"]
        xp = array_namespace(first)
        tail = xp.asarray(first[self.extra_at:self.extra_at + self.extra], copy=True)
        return [xp.reshape(tail[i:i + 1], ()) for i in range(self.extra)]


def _parameters(model) -> "dict[Key, Any]":
    return {(i, name): p for i, layer in enumerate(model.layers) for name, p in layer.params.items()}


def _buffers(model) -> "dict[Key, Any]":
    """Floating-point state that is not trained (BatchNorm's running statistics), keyed ``("buffer", i, name)``."""
    return {("buffer", i, name): b for i, layer in enumerate(model.layers)
            for name, b in getattr(layer, "buffers", {}).items() if backend.dtype_name(b).startswith("float")}


def _assign(model, values: "dict[Key, Any]", where: str = "params") -> None:
    """Put unpacked arrays back: ``(i, name)`` into ``layer.<where>``, ``("buffer", i, name)`` into buffers."""
    for key, value in values.items():
        if key[0] == "buffer":  # a copy: the fusion buffer is overwritten in place by the next step
            model.layers[key[1]].buffers[key[2]] = array_namespace(value).asarray(value, copy=True)
        elif key[0] != "slot":
            getattr(model.layers[key[0]], where)[key[1]] = value


def broadcast_state(comm: Communicator, model) -> None:
    """Rank 0's parameters, optimizer state, epoch and shuffling generator on every rank."""
    optimizer = model.optimizer
    meta = comm.broadcast_object({
        "epoch": model.epoch,
        "rng": backend.rng_state(model.rng),
        "iterations": optimizer.iterations if optimizer is not None else 0,
        "slots": sorted((k, tuple(v.shape)) for k, v in optimizer.slots.items()) if optimizer is not None else [],
    })
    model.epoch = meta["epoch"]
    backend.set_rng_state(model.rng, meta["rng"])
    arrays = {**_parameters(model), **_buffers(model)}
    if optimizer is not None:
        optimizer.iterations = meta["iterations"]
        like = next(iter(arrays.values()))
        xp = array_namespace(like)
        slots = {}
        for key, shape in meta["slots"]:
            old = optimizer.slots.get(key)
            slots[key] = old if old is not None and tuple(old.shape) == shape else \
                xp.zeros(shape, dtype=like.dtype, device=array_api_compat.device(like))
        optimizer.slots = slots
        arrays.update({("slot", key): value for key, value in slots.items()})
    fusion = Fusion(arrays)
    fusion.pack(arrays)
    fusion.run(comm.broadcast)
    values = fusion.unpack(copy=True)
    _assign(model, values)
    for key, value in values.items():
        if key[0] == "slot":
            optimizer.slots[key[1]] = value


class DataParallel:
    """What ``fit`` does differently when it is given a communicator.

    It drives the model through its public passes (``forward``, ``backward``, ``layers``,
    ``optimizer``); ``correct(xp, y, out)`` counts a batch's right answers and
    ``evaluate(model, x, y, loss_fns, batch_size)`` evaluates one rank's part of the data (the
    trainer's own functions, passed in: this package sits below :mod:`xpcnn.train`).
    """

    def __init__(self, comm: Communicator, model, loss_fn: Callable, loss_prime: Callable, correct: Callable,
                 evaluate: Callable, workers: Any = None):
        self.comm, self.model = comm, model
        self.loss_fn, self.loss_prime, self.correct = loss_fn, loss_prime, correct
        self._evaluate = evaluate
        self.fusion: "Fusion | None" = None
        #: With ``fit(workers=T)``: the :class:`xpcnn.train.workers.Workers` whose ``accumulate`` computes this
        #: rank's weighted sums over its ``T`` shares (``None``: one pass on this rank's rows).
        self.workers = workers

    def start(self, batch_size: int, settings: dict) -> None:
        """Check that every rank has the same settings, then start from rank 0's state.

        Both checks fail on every rank alike (the batch size is checked once the ranks agree on it).
        """
        self.comm.check_same(settings, "training setting")
        if batch_size % self.comm.size:
            raise on_every_rank(ConfigError(
                f"batch_size {batch_size} does not divide by the {self.comm.size} processes: the global batch "
                f"is split evenly (use a multiple of {self.comm.size})"))
        broadcast_state(self.comm, self.model)
        self.fusion = Fusion({**_parameters(self.model), **_buffers(self.model)}, extra=2)

    def local(self, lo: int, hi: int) -> "tuple[int, int]":
        """This rank's part of the global batch ``[lo, hi)``."""
        return shard(lo, hi, self.comm.rank, self.comm.size)

    def step(self, x, y, batch: int):
        """Forward and backward on this rank's ``x``, one allreduce, the update: ``(batch loss, right answers)``."""
        model, m = self.model, x.shape[0]
        if self.workers is not None:
            fusion = self.workers.accumulate(x, y, batch, self.comm.rank, self.comm.size)
            fusion.run(self.comm.allreduce)
            _assign(model, fusion.unpack(), where="grads")
            model.optimizer.step(model.layers)
            loss, correct = fusion.extras()
            return loss, correct
        grads: "dict[Key, Any]" = {}
        loss = correct = 0.0
        if m:
            start = shard(0, batch, self.comm.rank, self.comm.size)[0]  # this rank's first row of the batch
            random_layers = [layer for layer in model.layers if layer.uses_rng]
            for layer in random_layers:
                layer.batch_rows = (start, batch)
            try:
                out = model.forward(x)
            finally:
                for layer in random_layers:
                    layer.batch_rows = None
            loss = self.loss_fn(y, out)
            model.backward(self.loss_prime(y, out))
            correct = self.correct(model.xp, y, out)
            grads = {(i, name): g for i, layer in enumerate(model.layers) for name, g in layer.grads.items()}
            grads.update(_buffers(model))
        else:  # no samples here: draw the keys the others' Dropout layers drew, so the generators stay equal
            for layer in model.layers:
                if layer.uses_rng:
                    backend.random_key(model.rng)
        weight = m / batch
        self.fusion.pack(grads, scale=weight, extras=(loss * weight, correct))
        self.fusion.run(self.comm.allreduce)
        _assign(model, self.fusion.unpack(), where="grads")
        model.optimizer.step(model.layers)
        loss, correct = self.fusion.extras()
        return loss, correct

    def evaluate(self, x, y, loss_fns: tuple, batch_size: int) -> dict:
        """``{"loss", "accuracy"}`` over all of ``(x, y)``, each rank evaluating a contiguous part."""
        n = x.shape[0]
        a, b = shard(0, n, self.comm.rank, self.comm.size)
        part = self._evaluate(self.model, x[a:b, ...], y[a:b, ...], loss_fns, batch_size) if b > a else \
            {"loss": 0.0, "accuracy": 0.0}
        sums = self.comm.allgather_object((part["loss"] * (b - a), part["accuracy"] * (b - a)))
        return {"loss": math.fsum(s[0] for s in sums) / n, "accuracy": math.fsum(s[1] for s in sums) / n}

    def agree(self, stop: Any) -> bool:
        """Rank 0's decision to stop, on every rank (callbacks may differ between ranks)."""
        return bool(self.comm.broadcast_object(bool(stop)))


def fit_settings(model, x, y, loss, batch_size: int, epochs: int, shuffle: bool, seed, validation_data,
                 early_stopping=None) -> dict:
    """What every rank of a ``fit`` must agree on: the model, the optimizer and its schedule, the loop and the data.

    A schedule sets the rate from the optimizer's step count and the epoch, which
    :func:`broadcast_state` makes the same on every rank, so every rank takes the same rates.
    """
    def name(fn):
        return getattr(fn, "__qualname__", type(fn).__name__)

    return {
        # the constructor arguments, not repr: engine="auto" measures on each rank and may choose differently
        "layers": [f"{type(layer).__name__}({layer.config()!r})" for layer in model.layers],
        "dtype": model.dtype,
        "device": model.device.name.split(":")[0],
        "loss": loss if isinstance(loss, str) else [name(f) for f in loss],
        "optimizer": repr(model.optimizer),
        "schedule": None if model.schedule is None else model.schedule.spec(),
        "early_stopping": repr(early_stopping),
        "batch_size": batch_size, "epochs": epochs, "shuffle": bool(shuffle), "seed": seed,
        "x": fingerprint(x), "y": fingerprint(y),
        "validation": None if validation_data is None else [fingerprint(a) for a in validation_data],
    }
