"""``engine="auto"``: choose by measuring, once per layer shape, and keep the winner.

On the first forward pass of a given (input shape, kernel shape, stride, dtype, device, mode),
each engine that applies computes the real products on the real arrays: the forward pass in
inference, forward and backward (with the forward output standing in for ``∂E/∂Y``) in
training. Two first rounds, forward passes only, warm up (FFT plans, first allocations) and
drop any engine over :data:`HOPELESS` times slower than the best; timed rounds then run,
engines taking turns, until :data:`BUDGET_S` seconds are spent (at least :data:`MIN_ROUNDS`
rounds, at most :data:`MAX_ROUNDS`). Each engine's best round counts (a busy machine's stalls
only ever lengthen a round), and the choice is kept for the process, the way cuDNN's benchmark
mode does. :func:`choices` lists what was measured and chosen.

Two rules make the choice hold inside a network, where it matters:

- An engine's first training round is its first backward pass and pays for that pass's first
  allocations: at least :data:`MIN_ROUNDS` rounds run, and the best counts.
- A layer timed alone cannot show how an engine slows the layers around it (an FFT engine that
  won alone has made the whole training step slower). So the candidates are in order of
  preference (gemm first: exact, and the least memory), and a later one is chosen only when it
  is over :data:`MARGIN` times faster than the first.

The measurements behind both rules are in ``docs/performance.md`` ("Convolution engines and auto").

``XPCNN_ENGINE=gemm|signal|signal-direct|auto`` overrides the choice of every layer built
with ``engine="auto"`` (a layer that names an engine keeps it): ``XPCNN_ENGINE=gemm`` is the
deterministic default the test suite runs with.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import array_api_compat

from .. import backend
from ..errors import ConfigError
from .base import ConvEngine

ENV = "XPCNN_ENGINE"
BUDGET_S = 0.05
MIN_ROUNDS = 3
MAX_ROUNDS = 5
HOPELESS = 4.0
MARGIN = 1.25


@dataclass
class Choice:
    """One measurement: the key it was made for, the engine chosen, each engine's best seconds."""

    key: tuple
    engine: str
    seconds: "dict[str, float]" = field(default_factory=dict)
    dropped: "list[str]" = field(default_factory=list)
    measured_s: float = 0.0


_CHOICES: "dict[tuple, Choice]" = {}


def resolve(requested: str, known: "dict[str, ConvEngine]") -> str:
    """The engine name to use for a layer that asked for ``requested`` (``XPCNN_ENGINE`` applied)."""
    if requested != "auto":
        return requested
    value = os.environ.get(ENV, "").strip().lower()
    if not value:
        return "auto"
    if value != "auto" and value not in known:
        raise ConfigError(f"{ENV}={value!r}: expected one of {['auto', *known]}")
    return value


def candidates(x, kernels, stride: int, known: "dict[str, ConvEngine]") -> "list[ConvEngine]":
    """The engines worth timing for this layer: those that compute ``stride``.

    ``signal-direct`` is timed on CuPy only: SciPy's N-d direct correlation is 100× to 1000×
    slower than ``gemm`` on the CPU (``docs/performance.md``), so timing it there would only cost seconds.
    """
    names = ["gemm", "signal"]
    if backend.backend_for(x) is backend.CUPY:
        names.append("signal-direct")
    return [known[n] for n in names if known[n].supports(stride)]


def _run(engine: ConvEngine, x, kernels, stride: int, training: bool, input_gradient: bool = True) -> float:
    start = time.perf_counter()
    y, kept = engine.forward(x, kernels, stride, keep=training)
    if training:
        engine.backward(x, kernels, y, stride, kept, input_gradient)  # y stands in for ∂E/∂Y: same shape
    backend.synchronize(y)
    return time.perf_counter() - start


def measure(engines: "list[ConvEngine]", x, kernels, stride: int, training: bool,
            input_gradient: bool = True) -> "tuple[str, dict, list]":
    """``(chosen engine's name, {name: best seconds}, names dropped after the warm-up)``, on these arrays.

    The warm-up rounds run the forward pass only, twice, so an engine many times too slow costs
    two forwards, not whole training steps, before it is dropped, and one stall of a busy
    machine does not drop an engine (the better of its two passes counts).
    """
    if len(engines) == 1:
        return engines[0].name, {}, []
    start = time.perf_counter()
    best = {e.name: _run(e, x, kernels, stride, False) for e in engines}  # warm-up rounds
    best = {e.name: min(best[e.name], _run(e, x, kernels, stride, False)) for e in reversed(engines)}
    fastest = min(best.values())
    alive = [e for e in engines if best[e.name] <= HOPELESS * fastest]
    dropped = [e.name for e in engines if e not in alive]
    if len(alive) > 1:
        best.update({e.name: float("inf") for e in alive})
        for r in range(MAX_ROUNDS):
            for e in alive[r % len(alive):] + alive[:r % len(alive)]:
                best[e.name] = min(best[e.name], _run(e, x, kernels, stride, training, input_gradient))
            if r + 1 >= MIN_ROUNDS and time.perf_counter() - start > BUDGET_S:
                break
    return preferred(alive, best), best, dropped


def preferred(alive: "list[ConvEngine]", best: dict) -> str:
    """The first engine of ``alive``, unless the fastest is over :data:`MARGIN` times faster than it."""
    fastest = min(alive, key=lambda e: best[e.name])
    if best[fastest.name] * MARGIN < best[alive[0].name]:
        return fastest.name
    return alive[0].name


def choose(x, kernels, stride: int, training: bool, known: "dict[str, ConvEngine]",
           input_gradient: bool = True) -> ConvEngine:
    """The engine ``auto`` uses for these shapes: measured on the first call, then remembered.

    A first layer's training step computes no ``∂E/∂X`` (``input_gradient=False``): it is
    measured, and remembered, without it.
    """
    # the key is cheap to build (a few microseconds count at batch 1); names are made once
    mode = (training, input_gradient and training)
    key = (x.shape, kernels.shape, stride, x.dtype, type(x), array_api_compat.device(x), mode)
    choice = _CHOICES.get(key)
    if choice is None:
        start = time.perf_counter()
        engines = candidates(x, kernels, stride, known)
        name, seconds, dropped = measure(engines, x, kernels, stride, training, input_gradient)
        shown = (tuple(x.shape), tuple(kernels.shape), int(stride), str(x.dtype), backend.Device.of(x).name,
                 bool(training), bool(mode[1]))
        choice = _CHOICES[key] = Choice(shown, name, seconds, dropped, time.perf_counter() - start)
    return known[choice.engine]


def choices() -> "list[dict[str, Any]]":
    """Every measurement of this process: shapes, the engine chosen, each engine's best time
    (the forward pass alone for an engine ``dropped`` after the warm-up)."""
    out = []
    for c in _CHOICES.values():
        x_shape, k_shape, stride, dtype, device, training, input_gradient = c.key
        out.append({"input": list(x_shape), "kernels": list(k_shape), "stride": stride, "dtype": dtype,
                    "device": device, "mode": "train" if training else "infer", "input_gradient": input_gradient,
                    "engine": c.engine,
                    "seconds": dict(c.seconds), "dropped": list(c.dropped), "measured_s": c.measured_s})
    return out


def forget() -> None:
    """Drop every remembered choice (the next forward of each shape measures again)."""
    _CHOICES.clear()
