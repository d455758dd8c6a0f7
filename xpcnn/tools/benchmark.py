"""The benchmark's workloads and contenders, and one configuration timed into result rows.

``scripts/bench.py`` times every contender of a configuration (model, dtype, batch, device) on the
same network with the same weights, in interleaved rounds (:mod:`.timing`):

* ``xpcnn[ENGINE]``: ``Sequential.train_step`` (forward, loss, backward, SGD update) and
  ``forward(x, training=False)``, one pair per convolution engine (:func:`model_contenders`);
* ``per-sample``: the derivation's one-sample-at-a-time training (:mod:`xpcnn.testing.per_sample`,
  :func:`host_contenders`);
* ``torch``: the PyTorch twin (:mod:`xpcnn.testing.torch_twins`, :func:`torch_contenders`);
* ``matmul``: the roofline's peak, timed in every round (:mod:`.roofline`), not a row of its own.

This module sits below ``model``, ``zoo`` and ``testing``: the caller builds the models, the
per-sample formulation and the PyTorch twin and passes them in.
"""

from __future__ import annotations

import math
import os
import platform
import sys
from dataclasses import dataclass
from typing import Callable

from array_api_compat import array_namespace

from .. import backend
from ..backend import info as backend_info
from ..errors import ConfigError
from ..layers import Convolutional
from ..losses import get_loss
from ..optim.optimizers import SGD
from .roofline import matrix_flops, roofline
from .timing import Contender, calibrate, interleave, summary

#: The zoo networks the benchmarks time, with their number of classes.
NETWORKS = {"seed": 2, "convnet": 10}
#: The large-kernel cases of issue 9: one convolution (input shape, kernel size, depth) under a mean
#: squared error, forward and both gradients, each at its own batch size (the last number).
CASES = {"conv11": ((3, 64, 64), 11, 8, 32), "conv25": ((1, 128, 128), 25, 2, 8)}
LEARNING_RATE = 0.1
#: The cases' learning rate: at 0.1 their regression diverges to inf within the timed steps.
CASE_LEARNING_RATE = 1e-3
#: xpcnn's contenders unless told otherwise (signal-direct: add it by name, it is slow).
DEFAULT_ENGINES = ("auto", "gemm", "signal")


@dataclass(frozen=True)
class Plan:
    """How to time a configuration: interleaved rounds, seconds per timed run, the slowest step to
    time, and the rest between contenders of different families."""

    repeats: int = 5
    min_time: float = 0.07
    max_step: float = 2.0
    pause: float = 0.2


@dataclass(frozen=True)
class Config:
    """One configuration: a model by name, its dtype, the batch size and the device's name."""

    model: str
    dtype: str
    batch: int
    device: str


def learning_rate(model: str) -> float:
    return CASE_LEARNING_RATE if model in CASES else LEARNING_RATE


def set_engine(layers: list, engine: str) -> None:
    """Switch every convolution of ``layers`` to ``engine`` (``auto`` measures on the first step)."""
    for layer in layers:
        if isinstance(layer, Convolutional):
            layer.engine_name = engine


def synthetic_batch(input_shape: tuple, output_shape: tuple, classes: "int | None", batch: int, dtype: str):
    """Host arrays: images ``(batch, *input_shape)`` in [0, 1) and one-hot labels ``(batch, classes)``
    (random targets ``(batch, *output_shape)`` when ``classes`` is None)."""
    rng = backend.new_rng(1)
    x = backend.host_buffer(rng.random((batch, *input_shape)), dtype)
    if classes is None:
        return x, backend.host_buffer(rng.random((batch, *output_shape)), dtype)
    xp = array_namespace(x)
    labels = xp.asarray(rng.integers(0, classes, batch))
    return x, xp.take(xp.eye(classes, dtype=x.dtype), labels, axis=0)


def model_contenders(name: str, model, x, y, loss: str, lr: float, device) -> "list[Contender]":
    """``model``'s training step (SGD at ``lr``) and inference on ``(x, y)`` sent to ``device``."""
    x, y = backend.to_device(x, device), backend.to_device(y, device)
    loss_fn, loss_prime = get_loss(loss)
    opt = SGD(lr)

    def sync():
        backend.synchronize(x)

    batch = x.shape[0]
    return [Contender(name, "train", lambda: model.train_step(x, y, loss_fn, loss_prime, opt), sync, batch),
            Contender(name, "infer", lambda: model.forward(x, training=False), sync, batch)]


def host_contenders(name: str, train: Callable, infer: Callable, x, y) -> "list[Contender]":
    """``train(x, y)`` and ``infer(x)`` on the host (nothing to wait for)."""
    return [Contender(name, "train", lambda: train(x, y), lambda: None, len(x)),
            Contender(name, "infer", lambda: infer(x), lambda: None, len(x))]


def torch_contenders(torch, net, loss: Callable, x, y, lr: float, device: str,
                     input_gradient: bool = False) -> "list[Contender]":
    """PyTorch's training step (``torch.optim.SGD`` at ``lr``) and inference of ``net`` on host arrays
    ``(x, y)`` sent to ``device`` ("cpu" or "cuda[:N]"). ``input_gradient``: ``∂E/∂x`` is computed
    too (a case's first layer)."""
    tx, ty = torch.tensor(x, device=device), torch.tensor(y, device=device)
    if input_gradient:
        tx.requires_grad_(True)
    opt = torch.optim.SGD(net.parameters(), lr=lr)

    def train():
        opt.zero_grad(set_to_none=True)
        loss(net(tx), ty).backward()
        opt.step()

    def infer():
        with torch.inference_mode():
            return net(tx)

    sync = (lambda: torch.cuda.synchronize(device)) if device.startswith("cuda") else (lambda: None)
    return [Contender("torch", "train", train, sync, len(x)), Contender("torch", "infer", infer, sync, len(x))]


def output_tolerance(dtype: str) -> float:
    """Largest output difference between contenders that still counts as the same network."""
    return 1e-3 if dtype == "float32" else 1e-8


def output_differences(outputs: dict) -> dict:
    """Each contender's largest absolute difference from the first one's outputs (on the samples both have)."""
    reference = next(iter(outputs.values()))
    differences = {}
    for name, out in outputs.items():
        n = min(len(out), len(reference))
        xp = array_namespace(out)
        differences[name] = float(xp.max(xp.abs(out[:n] - reference[:n])))
    return differences


def family(c: Contender) -> str:
    """Three families rest ``pause`` between each other: PyTorch (its OpenMP threads), the peak's
    matrix product (OpenBLAS's threads spin for a while after it) and xpcnn."""
    return "torch" if c.name == "torch" else "blas" if c.mode == "peak" else "xpcnn"


def time_contenders(config: Config, contenders: "list[Contender]", plan: Plan, seconds_per_sample: dict) -> None:
    """Warm up and calibrate each contender, then time them in ``plan.repeats`` interleaved rounds.

    ``seconds_per_sample`` holds each contender's time per sample at the last (smaller) batch.
    Larger batches cost less per sample, so a step estimated at over twice ``max_step`` is not
    even warmed up; the others are, and :func:`calibrate` skips them if they are too slow."""
    for c in contenders:
        key = (config.model, config.dtype, config.device, c.name, c.mode)
        estimate = seconds_per_sample.get(key, 0.0) * c.batch
        if estimate > 2 * plan.max_step:
            c.skipped = f"about {estimate:.0f} s per step > 2 x --max-step {plan.max_step:g}"
            continue
        calibrate(c, plan.min_time, plan.max_step)
        seconds_per_sample[key] = c.step_seconds / c.batch if not c.skipped else math.inf
    interleave([c for c in contenders if not c.skipped], plan.repeats, plan.pause, family=family)


def run_config(config: Config, contenders: "list[Contender]", outputs: dict, layers: list, peak_flops: int,
               plan: Plan, seconds_per_sample: dict, say: Callable = print) -> "list[dict]":
    """Time ``contenders`` (the last one the ``matmul`` peak of ``peak_flops``) and return one result
    row per contender but the peak; ``outputs`` are their first outputs, ``layers`` the network's."""
    differences = output_differences(outputs)
    tolerance = output_tolerance(config.dtype)
    if max(differences.values()) > tolerance:
        say(f"  warning: contenders' outputs differ by up to {max(differences.values()):.2e} "
            f"({differences}): no verdict on their ratios", file=sys.stderr)
    time_contenders(config, contenders, plan, seconds_per_sample)
    peak = next(c for c in contenders if c.mode == "peak")  # each round's peak, not a row of its own
    peak_gflops = [r * peak_flops / 1e9 for r in peak.runs]
    if peak_gflops:
        say(f"  matmul peak in these rounds: {min(peak_gflops):.0f}–{max(peak_gflops):.0f} GFLOP/s")
    rows = []
    for c in contenders:
        if c is peak:
            continue
        row = {"model": config.model, "dtype": config.dtype, "batch": config.batch, "mode": c.mode,
               "contender": c.name, "device": config.device, "timed_samples": c.batch, "steps_per_run": c.reps}
        row["max_abs_output_difference"] = differences.get(c.name)
        row["outputs_agree"] = row["max_abs_output_difference"] is not None and \
            row["max_abs_output_difference"] <= tolerance
        if c.skipped:
            row["skipped"] = c.skipped
        else:
            row["samples_per_s"] = summary(c.runs)
            flops = matrix_flops(layers, c.mode == "train")
            row["gflops"] = row["samples_per_s"]["median"] * flops / 1e9
            if peak_gflops:
                row.update(roofline(c.runs, flops, peak_gflops))
        rows.append(row)
    return rows


def describe_machine(cpu: str, device: str, torch_version: "str | None", threads: int,
                     blas: dict) -> "tuple[dict, list[str]]":
    """The machine, the libraries, the load and the settings that skew timings, and the lines that say so."""
    numpy = backend_info.library_versions()["numpy"]
    env = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS") if k in os.environ}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    machine = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "numpy": numpy,
               "blas": blas, "threads": threads, "device": device, "torch": torch_version, "env": env,
               "load_average_1min": load}
    lines = [f"machine: {cpu}, {machine['cores']} cores; NumPy {numpy} ({blas.get('internal_api', '?')} "
             f"{blas.get('architecture', '')}), {threads} threads; torch {torch_version or 'not run'}; device {device}"]
    if load > max((os.cpu_count() or 1) - threads, 0) + 1.0:
        lines.append(f"note: load average {load:.1f} on {machine['cores']} cores: other processes compete for the "
                     f"CPU, and multi-threaded timings (PyTorch's above all) suffer; compare with --threads 1")
    if env:
        lines.append(f"note: {env} is set; it pins NumPy's BLAS kernel (unset it for this command "
                     f"to measure the machine's best kernel)")
    return machine, lines


def limit_threads(threads: "int | None", torch=None) -> "tuple[int, dict]":
    """Hold NumPy's BLAS, ``scipy.fft`` and PyTorch to ``threads`` (``None``: as many as NumPy's BLAS
    uses); ``(threads, BLAS description)``. Holding BLAS needs threadpoolctl (ConfigError without it)."""
    blas = backend_info.blas()
    count = threads or blas.get("num_threads") or os.cpu_count()
    if threads:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            raise ConfigError("--threads needs threadpoolctl (pip install -e '.[bench]')") from None
        threadpool_limits(threads, user_api="blas")
        blas["num_threads"] = threads
        backend.NUMPY.fft_workers = threads  # scipy.fft's threads, for the signal engine
    if torch is not None:
        torch.set_num_threads(count)
    return count, blas
