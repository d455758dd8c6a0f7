#!/usr/bin/env python
"""Training and inference throughput of xpcnn against the per-sample formulation and PyTorch.

Every contender trains the same network, with the same weights, dtype, batch size and thread
count, in the same run. Contenders take turns within each repeat (round-robin, the order
rotated every repeat), so a noisy neighbour slows all of them alike; the table gives the
median and the spread (min–max) over the repeats.

Contenders
    xpcnn[ENGINE]  ``Sequential.train_step`` (forward, loss, backward, SGD update) on prepared
                   arrays, one per convolution engine (``auto``, ``gemm``, ``signal`` by default;
                   ``auto`` measures during the untimed warm-up step); inference is
                   ``Sequential.forward(x, training=False)``.
    per-sample     the derivation's own formulation, written below: one sample at a time, each
                   updating the weights, the convolution looping over output and input channels
                   with ``scipy.signal.correlate2d`` / ``convolve2d``.
    torch          PyTorch (optional, ``pip install -e '.[bench]'``), the same layers built from
                   the xpcnn model (untied conv biases as a learned ``(D, Ho, Wo)`` tensor).

Models: ``seed`` and ``convnet`` (at every ``--batch-sizes``), and the large-kernel cases of
issue 9, one convolution each with forward, kernel and input gradients, at their own batch:
``conv11`` (3→8 channels, 11×11 kernels, 64×64 inputs, batch 32) and ``conv25`` (1→2 channels,
25×25 kernels, 128×128 inputs, batch 8). After the table come each engine's speed against
``gemm`` and what ``auto`` measured and chose for every layer shape.

The roofline: a large matrix product, timed in every interleaved round like a contender, gives
the machine's peak GFLOP/s for the dtype in that round; each result's GFLOP/s counts the
network's matrix work per sample (convolution forward and kernel gradient, input gradients where
computed, dense forward and backward), and its roofline fraction is taken round by round.

Ratios and verdicts: a ratio (xpcnn / PyTorch, say) is taken per round, between runs timed side
by side, and printed as its median and min–max with two decimals. A target is "met" only when
the whole min–max is at or above the goal, "missed" only when all of it is below, and "within
noise" otherwise; there is no verdict when the two contenders' outputs differ (the same weights
must give the same outputs). Each verdict names the thread count it was measured at.

    python scripts/bench.py                      # the default run (< 5 minutes on 2 cores)
    python scripts/bench.py --quick              # a one-minute look
    python scripts/bench.py --batch-sizes 128 --dtypes float32 --json bench.json
    python scripts/bench.py --threads 1          # on a machine that other jobs share
    python scripts/bench.py --device cuda        # CuPy and PyTorch CUDA
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import time
from typing import Callable

import numpy as np

import xpcnn as xc
from xpcnn.engines import get_engine
from xpcnn.losses import get_loss
from xpcnn.optim.optimizers import SGD
from xpcnn.backend import info as backend_info
from xpcnn.doctor.environment import cpu_name
from xpcnn.testing.torch_twins import torch_loss, torch_model
from xpcnn.io.files import atomic_write, check_output_path
from xpcnn.tools.timing import Contender, calibrate, interleave, summary

LEARNING_RATE = 0.1
SEED = 0
#: xpcnn's contenders unless --engines says otherwise (signal-direct: add it by name, it is slow).
DEFAULT_ENGINES = ("auto", "gemm", "signal")


# ----------------------------------------------------------------------------------------------
# The workloads
# ----------------------------------------------------------------------------------------------

def seed_model(dtype: str) -> "tuple[xc.Sequential, str, int]":
    """The derivation's network: Conv 5×3×3 on 1×28×28, Sigmoid, Dense 3380→100, Sigmoid, Dense 100→2."""
    layers = [
        xc.Convolutional((1, 28, 28), kernel_size=3, depth=5), xc.Sigmoid(),
        xc.Reshape((5, 26, 26), (5 * 26 * 26,)),
        xc.Dense(5 * 26 * 26, 100), xc.Sigmoid(), xc.Dense(100, 2), xc.Sigmoid(),
    ]
    return xc.Sequential(layers, seed=SEED, dtype=dtype), "binary_cross_entropy", 2


def convnet_model(dtype: str) -> "tuple[xc.Sequential, str, int]":
    """The deeper ten-class network of :mod:`xpcnn.zoo`."""
    zoo = importlib.import_module("xpcnn.zoo")
    model, loss = zoo.build_model("convnet", (1, 28, 28), 10, seed=SEED, dtype=dtype)
    return model, loss, 10


def conv_case(input_shape: tuple, kernel_size: int, depth: int) -> Callable:
    """One convolution, forward and both gradients (as inside a network), under a mean squared error."""

    def build(dtype: str) -> "tuple[xc.Sequential, str, None]":
        conv = xc.Convolutional(input_shape, kernel_size=kernel_size, depth=depth)
        model = xc.Sequential([conv, xc.Flatten()], seed=SEED, dtype=dtype)
        conv.compute_input_gradient = True  # a first layer skips ∂E/∂X; a case measures all three products
        return model, "mse", None

    build.__doc__ = (f"Conv {depth}×{kernel_size}×{kernel_size} on {'×'.join(map(str, input_shape))}: "
                     f"forward, kernel and input gradients, mean squared error")
    return build


#: The large-kernel cases of issue 9, each at its own batch size (``--batch-sizes`` does not apply)
#: and learning rate (at 0.1 their regression diverges to inf within the timed steps).
CASES = {
    "conv11": (conv_case((3, 64, 64), 11, 8), 32),
    "conv25": (conv_case((1, 128, 128), 25, 2), 8),
}
CASE_LEARNING_RATE = 1e-3


def learning_rate(model_name: str) -> float:
    return CASE_LEARNING_RATE if model_name in CASES else LEARNING_RATE


def available_models() -> "dict[str, Callable]":
    models = {"seed": seed_model}
    try:
        zoo = importlib.import_module("xpcnn.zoo")
        if "convnet" in getattr(zoo, "MODELS", {}):
            models["convnet"] = convnet_model
    except ImportError:
        pass
    models.update({name: build for name, (build, _) in CASES.items()})
    return models


def set_engine(model: xc.Sequential, engine: str) -> None:
    """Switch every convolution of ``model`` to ``engine`` (``auto`` measures on the first step)."""
    for layer in model.layers:
        if isinstance(layer, xc.Convolutional):
            layer.engine_name = engine


def matrix_flops(model: xc.Sequential, train: bool) -> int:
    """Multiply-adds ×2 per sample in convolutions and dense layers (element-wise work not counted)."""
    flops = 0
    for layer in model.layers:
        if isinstance(layer, xc.Convolutional):
            c = layer.input_shape[0]
            fwd = 2 * layer.depth * c * layer.kernel_size ** 2 * layer.out_hw[0] * layer.out_hw[1]
            flops += fwd
            if train:
                flops += fwd  # kernel gradient
                flops += fwd if layer.compute_input_gradient else 0
        elif isinstance(layer, xc.Dense):
            fwd = 2 * layer.input_size * layer.output_size
            flops += 3 * fwd if train else fwd  # forward, weight gradient, input gradient
    return flops


def synthetic_batch(model: xc.Sequential, classes: "int | None", batch: int, dtype: str):
    """Random images in [0, 1) and one-hot labels (random targets when ``classes`` is None), on the host."""
    rng = np.random.default_rng(1)
    x = rng.random((batch, *model.input_shape)).astype(dtype)
    if classes is None:
        return x, rng.random((batch, *model.output_shape)).astype(dtype)
    y = np.eye(classes, dtype=dtype)[rng.integers(0, classes, batch)]
    return x, y


# ----------------------------------------------------------------------------------------------
# Contender 2: the derivation's per-sample formulation (NumPy + scipy.signal, CPU only)
# ----------------------------------------------------------------------------------------------

class PerSample:
    """The seed network exactly as the derivation writes it: column vectors, one sample at a time.

    Each sample runs forward, then backward with the learning rate, which updates every layer
    at once (the derivation's ``backward(output_gradient, learning_rate)``); the convolution
    loops over output and input channels calling ``correlate2d`` / ``convolve2d``. Its speed
    per sample does not depend on the batch size.
    """

    def __init__(self, model: xc.Sequential, learning_rate: float) -> None:
        from scipy import signal

        self.signal = signal
        conv, dense1, dense2 = model.layers[0], model.layers[3], model.layers[5]
        self.kernels = np.array(xc.to_numpy(conv.kernels))
        self.biases = np.array(xc.to_numpy(conv.biases))
        self.w1, self.b1 = np.array(xc.to_numpy(dense1.weights)), np.array(xc.to_numpy(dense1.bias))[:, None]
        self.w2, self.b2 = np.array(xc.to_numpy(dense2.weights)), np.array(xc.to_numpy(dense2.bias))[:, None]
        self.lr = learning_rate

    @staticmethod
    def sigmoid(x):
        with np.errstate(over="ignore"):  # the derivation's formula; e^{-x} = inf gives 0 correctly
            return 1 / (1 + np.exp(-x))

    def sigmoid_prime(self, x):
        s = self.sigmoid(x)
        return s * (1 - s)

    def forward(self, sample):
        """``(C, 28, 28)`` -> the output column ``(2, 1)``; returns what backward needs too."""
        depth, channels = self.kernels.shape[:2]
        z0 = np.copy(self.biases)
        for i in range(depth):
            for j in range(channels):
                z0[i] += self.signal.correlate2d(sample[j], self.kernels[i, j], mode="valid")
        h0 = np.reshape(self.sigmoid(z0), (-1, 1))
        z1 = np.dot(self.w1, h0) + self.b1
        a1 = self.sigmoid(z1)
        z2 = np.dot(self.w2, a1) + self.b2
        return self.sigmoid(z2), (sample, z0, h0, z1, a1, z2)

    def predict_batch(self, x):
        return np.stack([self.forward(sample)[0][:, 0] for sample in x])

    def train_batch(self, x, y) -> None:
        for sample, target in zip(x, y):
            self.train_sample(sample, target[:, None])

    def train_sample(self, sample, y_true) -> None:
        signal, lr = self.signal, self.lr
        y_pred, (inp, z0, h0, z1, a1, z2) = self.forward(sample)
        grad = ((1 - y_true) / (1 - y_pred) - y_true / y_pred) / np.size(y_true)  # BCE'
        grad = grad * self.sigmoid_prime(z2)
        w2_grad, grad_in = np.dot(grad, a1.T), np.dot(self.w2.T, grad)           # Dense 2
        self.w2 -= lr * w2_grad
        self.b2 -= lr * grad
        grad = grad_in * self.sigmoid_prime(z1)
        w1_grad, grad_in = np.dot(grad, h0.T), np.dot(self.w1.T, grad)           # Dense 1
        self.w1 -= lr * w1_grad
        self.b1 -= lr * grad
        grad = np.reshape(grad_in, z0.shape) * self.sigmoid_prime(z0)            # Reshape, Sigmoid
        depth, channels = self.kernels.shape[:2]
        kernels_gradient = np.zeros(self.kernels.shape, dtype=self.kernels.dtype)  # Convolutional
        input_gradient = np.zeros(inp.shape, dtype=inp.dtype)
        for i in range(depth):
            for j in range(channels):
                kernels_gradient[i, j] = signal.correlate2d(inp[j], grad[i], mode="valid")
                input_gradient[j] += signal.convolve2d(grad[i], self.kernels[i, j], mode="full")
        self.kernels -= lr * kernels_gradient
        self.biases -= lr * grad


# ----------------------------------------------------------------------------------------------
# Contender 3: PyTorch, the same layers and weights
# ----------------------------------------------------------------------------------------------

# torch_model and torch_loss: xpcnn.testing.torch_twins, shared with xpcnn-doctor.


# ----------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------

# Contender, calibrate, timed_run, interleave and summary: xpcnn.tools.timing, shared with xpcnn-doctor.


# ----------------------------------------------------------------------------------------------
# The machine
# ----------------------------------------------------------------------------------------------

def blas_info() -> dict:
    """NumPy's BLAS (library, kernel, threads): threadpoolctl when installed, else NumPy's build config."""
    return backend_info.blas()


def measure_peak(xp, dtype: str, sync: Callable, n: int, repeats: int = 3) -> float:
    """Best GFLOP/s of an ``n × n`` matrix product in ``xp`` (the roofline's ceiling)."""
    rng = np.random.default_rng(0)
    a = xp.asarray(rng.random((n, n)).astype(dtype))
    b = xp.asarray(rng.random((n, n)).astype(dtype))
    xp.matmul(a, b)
    sync()
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        xp.matmul(a, b)
        sync()
        best = max(best, 2 * n ** 3 / (time.perf_counter() - start) / 1e9)
    return best


def peak_contender(xp, dtype: str, sync: Callable, n: int) -> "tuple[Contender, int]":
    """An ``n × n`` matrix product timed in the interleaved rounds like any contender: each
    round's GFLOP/s is the peak that round's results are compared with (a machine whose load
    changes during the run changes both). Returns the contender and the FLOPs of one product."""
    rng = np.random.default_rng(0)
    a = xp.asarray(rng.random((n, n)).astype(dtype))
    b = xp.asarray(rng.random((n, n)).astype(dtype))
    return Contender("matmul", "peak", lambda: xp.matmul(a, b), sync, 1), 2 * n ** 3


# ----------------------------------------------------------------------------------------------
# One configuration: build the contenders, check they agree, time them interleaved
# ----------------------------------------------------------------------------------------------

def build_contenders(args, model_name, build, dtype, batch, device, torch) -> "tuple[list[Contender], dict]":
    model, loss_name, classes = build(dtype)
    x_host, y_host = synthetic_batch(model, classes, batch, dtype)
    loss_fn, loss_prime = get_loss(loss_name)
    contenders: list[Contender] = []
    outputs: dict[str, np.ndarray] = {}
    xsync = device_sync(device)

    for engine in args.engines:
        m, _, _ = build(dtype)
        set_engine(m, engine)
        m.to(device)
        x, y = xc.to_device(x_host, device), xc.to_device(y_host, device)
        opt = SGD(learning_rate(model_name))
        outputs[f"xpcnn[{engine}]"] = np.asarray(xc.to_numpy(m.forward(x)))
        contenders.append(Contender(f"xpcnn[{engine}]", "train",
                                    lambda m=m, x=x, y=y, opt=opt: m.train_step(x, y, loss_fn, loss_prime, opt),
                                    xsync, batch))
        contenders.append(Contender(f"xpcnn[{engine}]", "infer", lambda m=m, x=x: m.forward(x, training=False),
                                    xsync, batch))

    if "per-sample" in args.contenders and model_name == "seed" and device == "cpu":
        ref = PerSample(model, LEARNING_RATE)
        chunk = min(batch, args.per_sample_batch)
        xs, ys = x_host[:chunk], y_host[:chunk]
        outputs["per-sample"] = ref.predict_batch(x_host[: min(batch, 8)])
        # Its time per sample does not depend on the batch size: it is timed on `chunk` samples.
        contenders.append(Contender("per-sample", "train", lambda: ref.train_batch(xs, ys), lambda: None, chunk))
        contenders.append(Contender("per-sample", "infer", lambda: ref.predict_batch(xs), lambda: None, chunk))

    if torch is not None:
        tdev = "cuda" if device.startswith("cuda") else "cpu"
        net = torch_model(model, torch, tdev, dtype)
        tx = torch.tensor(x_host, device=tdev)
        first = model.layers[0]
        if getattr(first, "compute_input_gradient", False):
            tx.requires_grad_(True)  # a case computes ∂E/∂X of its first layer too
        ty = torch.tensor(y_host, device=tdev)
        tloss = torch_loss(torch, loss_name)
        topt = torch.optim.SGD(net.parameters(), lr=learning_rate(model_name))
        with torch.inference_mode():
            outputs["torch"] = net(tx).cpu().numpy()

        def torch_train(net=net, tx=tx, ty=ty, topt=topt):
            topt.zero_grad(set_to_none=True)
            tloss(net(tx), ty).backward()
            topt.step()

        def torch_infer(net=net, tx=tx):
            with torch.inference_mode():
                return net(tx)

        tsync = torch.cuda.synchronize if tdev == "cuda" else (lambda: None)
        contenders.append(Contender("torch", "train", torch_train, tsync, batch))
        contenders.append(Contender("torch", "infer", torch_infer, tsync, batch))

    # Same network, same weights: every contender's first outputs must agree.
    reference = next(iter(outputs.values()))
    agreement = {}
    for name, out in outputs.items():
        n = min(len(out), len(reference))
        agreement[name] = float(np.max(np.abs(out[:n] - reference[:n])))
    xp = xc.get_device(device).xp
    peak, peak_flops = peak_contender(xp, dtype, xsync, 4096 if device != "cpu" else 1536)
    contenders.append(peak)
    return contenders, {"max_abs_output_difference": agreement, "model": model, "peak_flops": peak_flops}


def device_sync(device: str) -> Callable:
    if device.startswith("cuda"):
        cp = importlib.import_module("cupy")
        return lambda: cp.cuda.Device().synchronize()
    return lambda: None


def run_interleaved(args, active: "list[Contender]") -> None:
    """``args.repeats`` rounds; in each, every contender times one run, the first one rotating.

    Three families rest ``--pause`` between each other: PyTorch (its OpenMP threads), the peak's
    matrix product (OpenBLAS's threads, which spin for a while after it), and xpcnn, which holds
    OpenBLAS to one thread and runs its own (:func:`xpcnn.backend.host_threads`). Right after
    the peak, a convnet training step at batch 128 took 1,913 samples/s instead of 2,928."""
    interleave(active, args.repeats, args.pause,
               family=lambda c: "torch" if c.name == "torch" else "blas" if c.mode == "peak" else "xpcnn")


def run_config(args, model_name, build, dtype, batch, device, torch, seconds_per_sample: dict) -> "list[dict]":
    contenders, info = build_contenders(args, model_name, build, dtype, batch, device, torch)
    differences = info["max_abs_output_difference"]
    tolerance = output_tolerance(dtype)
    if max(differences.values()) > tolerance:
        print(f"  warning: contenders' outputs differ by up to {max(differences.values()):.2e} "
              f"({differences}): no verdict on their ratios", file=sys.stderr)
    for c in contenders:
        # `seconds_per_sample` holds each contender's time per sample at the last (smaller) batch.
        # Larger batches cost less per sample, so a step estimated at over twice --max-step is not
        # even warmed up; the others are, and calibrate() skips them if they are too slow.
        key = (model_name, dtype, device, c.name, c.mode)
        estimate = seconds_per_sample.get(key, 0.0) * c.batch
        if estimate > 2 * args.max_step:
            c.skipped = f"about {estimate:.0f} s per step > 2 x --max-step {args.max_step:g}"
            continue
        calibrate(c, args.min_time, args.max_step)
        seconds_per_sample[key] = c.step_seconds / c.batch if not c.skipped else math.inf
    run_interleaved(args, [c for c in contenders if not c.skipped])
    peak = next(c for c in contenders if c.mode == "peak")  # each round's peak, not a row of its own
    contenders.remove(peak)
    peak_gflops = [r * info["peak_flops"] / 1e9 for r in peak.runs]
    if peak_gflops:
        print(f"  matmul peak in these rounds: {min(peak_gflops):.0f}–{max(peak_gflops):.0f} GFLOP/s")
    model = info["model"]
    rows = []
    for c in contenders:
        row = {"model": model_name, "dtype": dtype, "batch": batch, "mode": c.mode, "contender": c.name,
               "device": device, "timed_samples": c.batch, "steps_per_run": c.reps}
        row["max_abs_output_difference"] = differences.get(c.name)
        row["outputs_agree"] = row["max_abs_output_difference"] is not None and \
            row["max_abs_output_difference"] <= tolerance
        if c.skipped:
            row["skipped"] = c.skipped
        else:
            row["samples_per_s"] = summary(c.runs)
            flops = matrix_flops(model, c.mode == "train")
            row["gflops"] = row["samples_per_s"]["median"] * flops / 1e9
            if peak_gflops:
                # each round's GFLOP/s over the same round's matmul peak
                row["peak_gflops"] = summary(peak_gflops)
                row["roofline"] = spread(paired_ratios([r * flops / 1e9 for r in c.runs], peak_gflops))
                row["roofline_fraction"] = row["roofline"]["median"]
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------

def output_tolerance(dtype: str) -> float:
    """Largest output difference between contenders that still counts as the same network."""
    return 1e-3 if dtype == "float32" else 1e-8


def spread(values: list) -> dict:
    """Median and min–max of per-round values."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "rounds": len(values)}


def paired_ratios(ours: list, theirs: list) -> list:
    """``ours[i] / theirs[i]``: both were timed in round ``i`` of the interleaving, under the same
    load. Runs that cannot be paired give the widest bounds: every ratio of one to the other."""
    if len(ours) == len(theirs):
        return [a / b for a, b in zip(ours, theirs)]
    return [a / b for a in ours for b in theirs]


def ratios(rows: list, default: str) -> list:
    """xpcnn (default engine) / torch, / per-sample and (another default than gemm) / gemm samples/s,
    per (model, dtype, batch, mode).

    Each ratio is ``{"median", "min", "max", "rounds", "outputs_agree"}`` over the interleaved
    rounds; ``outputs_agree`` is False when either side's outputs differed from the others'."""
    table: dict = {}
    for row in rows:
        if "samples_per_s" in row:
            table.setdefault((row["model"], row["dtype"], row["batch"], row["mode"]), {})[row["contender"]] = row
    out = []
    for (model, dtype, batch, mode), by in table.items():
        ours = by.get(f"xpcnn[{default}]")
        if ours is None:
            continue
        entry = {"model": model, "dtype": dtype, "batch": batch, "mode": mode, "xpcnn": f"xpcnn[{default}]"}
        others = [("torch", "xpcnn_over_torch"), ("per-sample", "xpcnn_over_per_sample")]
        if default != "gemm":
            others.append(("xpcnn[gemm]", "xpcnn_over_gemm"))  # what choosing (auto) gains over the im2col engine
        for other, key in others:
            if other in by:
                entry[key] = spread(paired_ratios(ours["samples_per_s"]["runs"], by[other]["samples_per_s"]["runs"]))
                agree = ours.get("outputs_agree") is True and by[other].get("outputs_agree") is True
                entry[key]["outputs_agree"] = agree
        out.append(entry)
    return out


def verdict(ratio: "dict | None", goal: float) -> str:
    """"met" only when the whole spread is at or above ``goal``, "missed" only when all of it is
    below, "within noise" otherwise; no verdict on contenders that did not compute the same outputs."""
    if ratio is None:
        return "not measured"
    if ratio.get("outputs_agree") is not True:
        return "no verdict: the outputs differ"
    if ratio["min"] >= goal:
        return "met"
    if ratio["max"] < goal:
        return "missed"
    return "within noise"


#: The issues' targets, float32: (text, model, batch, mode, ratio key, goal). The seed network's
#: four (the batched-training issue; issue 9 asks that they hold), and issue 9's convnet at
#: PyTorch speed and ``auto`` against gemm on the large-kernel case.
TARGETS = [("seed train batch 128 >= 1.2x torch", "seed", 128, "train", "xpcnn_over_torch", 1.2),
           ("seed train batch 1 >= 1.0x torch", "seed", 1, "train", "xpcnn_over_torch", 1.0),
           ("seed train batch 128 >= 50x per-sample", "seed", 128, "train", "xpcnn_over_per_sample", 50.0),
           ("seed train batch 128 >= 0.30 of the GEMM roofline", "seed", 128, "train", "roofline", 0.30),
           ("convnet train batch 128 >= 1.0x torch", "convnet", 128, "train", "xpcnn_over_torch", 1.0),
           ("convnet infer batch 128 >= 1.0x torch", "convnet", 128, "infer", "xpcnn_over_torch", 1.0),
           ("conv11 train batch 32 >= 3x gemm", "conv11", 32, "train", "xpcnn_over_gemm", 3.0)]


def target_verdicts(rows: list, entries: list, default: str, threads: int) -> list:
    """One ``{target, goal, median, min, max, rounds, verdict, threads}`` per target this run measured."""
    def measured(model: str, batch: int, mode: str, key: str) -> "dict | None":
        where = (model, "float32", batch, mode)
        if key == "roofline":  # a property of xpcnn's own row: its outputs must agree with the others'
            row = next((r for r in rows if (r["model"], r["dtype"], r["batch"], r["mode"]) == where
                        and r["contender"] == f"xpcnn[{default}]" and "roofline" in r), None)
            return None if row is None else dict(row["roofline"], outputs_agree=row.get("outputs_agree"))
        return next((e[key] for e in entries if (e["model"], e["dtype"], e["batch"], e["mode"]) == where
                     and key in e), None)

    out = []
    for text, model, batch, mode, key, goal in TARGETS:
        ratio = measured(model, batch, mode, key)
        if ratio is not None:
            out.append({"target": text, "goal": goal, **{k: ratio[k] for k in ("median", "min", "max", "rounds")},
                        "verdict": verdict(ratio, goal), "threads": threads})
    return out


def print_table(rows: list) -> None:
    head = f"{'model':8} {'dtype':7} {'batch':>5} {'mode':5} {'contender':14} {'samples/s':>10} " \
           f"{'min–max':>17} {'GFLOP/s':>8} {'roofline':>8}"
    print(head)
    print("-" * len(head))
    for r in rows:
        lead = f"{r['model']:8} {r['dtype']:7} {r['batch']:>5} {r['mode']:5} {r['contender']:14}"
        if "skipped" in r:
            print(f"{lead} skipped: {r['skipped']}")
            continue
        s = r["samples_per_s"]
        span = f"{s['min']:.0f}–{s['max']:.0f}"
        roof = f"{r['roofline_fraction']:>8.1%}" if "roofline_fraction" in r else f"{'-':>8}"
        print(f"{lead} {s['median']:>10.0f} {span:>17} {r['gflops']:>8.1f} {roof}")


def format_ratio(ratio: dict, unit: str = "x") -> str:
    """``1.05x (0.98–1.12)``: the median and the min–max over the rounds, two decimals."""
    return f"{ratio['median']:.2f}{unit} ({ratio['min']:.2f}–{ratio['max']:.2f})"


def print_ratios(entries: list) -> None:
    print("\nratios (xpcnn default engine; median and min–max of the per-round ratios):")
    for e in entries:
        parts = []
        for key, label in (("xpcnn_over_torch", "/torch"), ("xpcnn_over_per_sample", "/per-sample")):
            if key in e:
                note = "" if e[key]["outputs_agree"] else " [outputs differ]"
                parts.append(f"{label} {format_ratio(e[key])}{note}")
        if parts:
            print(f"  {e['model']:8} {e['dtype']:7} batch {e['batch']:>4} {e['mode']:5} {'  '.join(parts)}")


def print_engines(rows: list, choices: list) -> None:
    """Each engine against ``gemm`` (per-round ratios), and what ``auto`` measured and chose per layer."""
    table: dict = {}
    for row in rows:
        if "samples_per_s" in row and row["contender"].startswith("xpcnn["):
            key = (row["model"], row["dtype"], row["batch"], row["mode"])
            table.setdefault(key, {})[row["contender"][6:-1]] = row["samples_per_s"]["runs"]
    lines = [(key, by) for key, by in table.items() if "gemm" in by and len(by) > 1]
    if lines:
        print("\nengines against gemm (median and min–max of the per-round ratios; > 1 is faster):")
        for (model, dtype, batch, mode), by in lines:
            parts = "  ".join(f"{name} {format_ratio(spread(paired_ratios(runs, by['gemm'])))}"
                              for name, runs in by.items() if name != "gemm")
            print(f"  {model:8} {dtype:7} batch {batch:>4} {mode:5} {parts}")
    if choices:
        print("\nauto's choices (input, kernels, stride, mode: engine; best seconds of each engine measured):")
        for c in choices:
            times = ", ".join(f"{name} {seconds * 1e3:.1f} ms" + (" (forward, dropped)" if name in c["dropped"] else "")
                              for name, seconds in c["seconds"].items())
            print(f"  {tuple(c['input'])} {tuple(c['kernels'])} s={c['stride']} {c['dtype']:7} {c['mode']:5}: "
                  f"{c['engine']:13} ({times or 'one candidate'}; {c['measured_s'] * 1e3:.0f} ms to measure)")


def print_targets(verdicts: list) -> None:
    """The issues' targets (float32), where this run measured them."""
    if not verdicts:
        return
    print(f"\ntargets (float32; median and min–max over {verdicts[0]['rounds']} interleaved rounds):")
    for v in verdicts:
        unit = "" if "roofline" in v["target"] else "x"
        print(f"  {v['target']:50} {format_ratio(v, unit):>22}  {v['verdict']} at {v['threads']} threads")


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------

def csv(kind):
    def parse(text):
        return [kind(t) for t in text.split(",") if t.strip()]
    return parse


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=csv(str), default=None,
                   help="seed,convnet,conv11,conv25 (default: every model available)")
    p.add_argument("--batch-sizes", type=csv(int), default=[1, 32, 128, 512])
    p.add_argument("--dtypes", type=csv(str), default=["float32", "float64"])
    p.add_argument("--engines", type=csv(str), default=None,
                   help=f"xpcnn convolution engines (default: {','.join(DEFAULT_ENGINES)}; also signal-direct)")
    p.add_argument("--contenders", type=csv(str), default=["xpcnn", "per-sample", "torch"],
                   help="which of xpcnn, per-sample, torch to run")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per contender (interleaved)")
    p.add_argument("--min-time", type=float, default=0.07, help="seconds one timed run lasts at least")
    p.add_argument("--max-step", type=float, default=2.0,
                   help="skip a contender whose single step takes longer than this many seconds")
    p.add_argument("--pause", type=float, default=0.2,
                   help="seconds of rest between a NumPy and a PyTorch run, so the idle threads of one stop spinning")
    p.add_argument("--per-sample-batch", type=int, default=16,
                   help="samples per timed per-sample step (its speed per sample does not depend on the batch)")
    p.add_argument("--host-threads", default=None, metavar="auto|N|blas",
                   help="xpcnn's own threads for copies, passes and products, BLAS held to one: "
                        "a count (1: off, the default), blas, or auto (measured per model; XPCNN_HOST_THREADS)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for NumPy's BLAS and PyTorch (default: as many as NumPy's BLAS uses)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (CuPy and PyTorch CUDA)")
    p.add_argument("--quick", action="store_true", help="float32, batches 1 and 128, 3 repeats")
    p.add_argument("--json", dest="json_path", default=None, help="also write the results to this file")
    args = p.parse_args(argv)
    if args.quick:
        args.dtypes, args.batch_sizes, args.repeats = ["float32"], [1, 128], 3
    return args


def fail(message: str) -> "None":
    print(f"bench.py: {message}", file=sys.stderr)
    raise SystemExit(2)


def check_arguments(args, models: dict) -> None:
    """Every usage error in one line, before anything is timed (and the ``--json`` path writable)."""
    from xpcnn.engines import NAMES

    unknown = [n for n in args.models if n not in models]
    if unknown:
        fail(f"unknown or unavailable model(s) {unknown}: available {sorted(models)}")
    bad = [e for e in args.engines if e not in NAMES]
    if bad:
        fail(f"unknown engine(s) {bad}: expected some of {list(NAMES)}")
    bad = [d for d in args.dtypes if d not in ("float32", "float64")]
    if bad or not args.batch_sizes or min(args.batch_sizes) < 1 or args.repeats < 1:
        fail("--dtypes takes float32,float64; --batch-sizes positive integers; --repeats >= 1")
    if "xpcnn" not in args.contenders:
        fail("--contenders must include xpcnn")
    if args.json_path:
        try:
            check_output_path(args.json_path, "--json")
        except xc.XpcnnError as exc:
            fail(str(exc))


def load_torch(args, device: str):
    """PyTorch if it is asked for, installed, and (for a GPU run) built with CUDA; else ``None``."""
    if "torch" not in args.contenders:
        return None
    if importlib.util.find_spec("torch") is None:
        print("torch is not installed: PyTorch left out (pip install -e '.[bench]')")
        return None
    torch = importlib.import_module("torch")
    if device != "cpu" and not torch.cuda.is_available():
        print("this PyTorch build has no CUDA: PyTorch left out")
        return None
    return torch


def set_threads(args, torch) -> "tuple[int, dict]":
    """Limit NumPy's BLAS, scipy.fft and PyTorch to ``--threads``; ``(threads, BLAS description)``."""
    blas = blas_info()
    threads = args.threads or blas.get("num_threads") or os.cpu_count()
    if args.threads:
        try:
            from threadpoolctl import threadpool_limits
            threadpool_limits(args.threads, user_api="blas")
            blas["num_threads"] = args.threads
        except ImportError:
            fail("--threads needs threadpoolctl (pip install -e '.[bench]')")
        xc.backend.NUMPY.fft_workers = args.threads  # scipy.fft's threads, for the signal engine
    if torch is not None:
        torch.set_num_threads(threads)
    return threads, blas


def describe_machine(device: str, torch, threads: int, blas: dict) -> dict:
    """Print (and return) the machine, the libraries, the load and the settings that skew timings."""
    machine = {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
               "numpy": np.__version__, "blas": blas, "threads": threads, "device": device,
               "torch": getattr(torch, "__version__", None),
               "env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS")
                       if k in os.environ}}
    print(f"machine: {machine['cpu']}, {machine['cores']} cores; NumPy {np.__version__} "
          f"({blas.get('internal_api', '?')} {blas.get('architecture', '')}), {threads} threads; "
          f"torch {machine['torch'] or 'not run'}; device {device}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    machine["load_average_1min"] = load
    if load > max((os.cpu_count() or 1) - threads, 0) + 1.0:
        print(f"note: load average {load:.1f} on {machine['cores']} cores: other processes compete for the "
              f"CPU, and multi-threaded timings (PyTorch's above all) suffer; compare with --threads 1")
    if machine["env"]:
        print(f"note: {machine['env']} is set; it pins NumPy's BLAS kernel (unset it for this command "
              f"to measure the machine's best kernel)")
    return machine


def write_json(path: str, payload: dict) -> None:
    """``payload`` as JSON at ``path``, whole or not at all (a temporary file renamed over it)."""
    atomic_write(path, lambda f: json.dump(payload, f, indent=1), "--json", binary=False)
    print(f"wrote {path}")


def main(argv=None) -> int:
    args = parse_args(argv)
    from xpcnn.engines import auto

    models = available_models()
    args.models = args.models or list(models)
    args.engines = args.engines or list(DEFAULT_ENGINES)
    check_arguments(args, models)
    try:
        dev = xc.get_device(args.device)
    except (xc.DeviceError, ValueError) as exc:
        fail(str(exc).splitlines()[0])
    device = dev.name  # "cpu" or "cuda:N"
    torch = load_torch(args, device)
    threads, blas = set_threads(args, torch)
    if args.host_threads is not None:
        try:
            xc.backend.threads.configure(args.host_threads)
        except xc.XpcnnError as exc:
            fail(str(exc))
    machine = describe_machine(device, torch, threads, blas)

    xp = dev.xp
    sync = device_sync(device)
    size = 4096 if device != "cpu" else 1536
    peaks = {d: measure_peak(xp, d, sync, size) for d in args.dtypes}
    print("roofline: " + ", ".join(f"{d} matmul {peaks[d]:.0f} GFLOP/s" for d in args.dtypes)
          + " up front; each configuration's rounds time the matmul again and compare with it")
    default = "auto" if "auto" in args.engines else args.engines[0]
    if os.environ.get(auto.ENV):
        print(f"note: {auto.ENV}={os.environ[auto.ENV]} is set: it decides for xpcnn[auto] instead of a measurement")
    print(f"xpcnn default engine: {default}; per-sample contender timed on up to {args.per_sample_batch} "
          f"samples per step; {args.repeats} interleaved repeats of >= {args.min_time:g} s\n")

    rows: list = []
    seconds_per_sample: dict = {}
    started = time.perf_counter()
    for name in args.models:
        for dtype in args.dtypes:
            for batch in [CASES[name][1]] if name in CASES else sorted(args.batch_sizes):
                rows += run_config(args, name, models[name], dtype, batch, device, torch, seconds_per_sample)
                print(f"  done {name} {dtype} batch {batch} ({time.perf_counter() - started:.0f} s)", flush=True)
    print()
    print_table(rows)
    entries = ratios(rows, default)
    print_ratios(entries)
    verdicts = target_verdicts(rows, entries, default, threads)
    print_targets(verdicts)
    print_engines(rows, auto.choices())
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if args.json_path:
        write_json(args.json_path, {"machine": machine, "peak_gflops": peaks, "default_engine": default,
                                    "settings": {k: v for k, v in vars(args).items() if k != "json_path"},
                                    "results": rows, "ratios": entries, "targets": verdicts,
                                    "auto_choices": auto.choices()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
