"""The roofline: a network's matrix work against the machine's matrix-product peak.

:func:`matrix_flops` counts a network's multiply-adds ×2 per sample in its convolutions and dense
layers (convolution forward and kernel gradient, input gradients where computed, dense forward
and backward; element-wise work is not counted). The peak is an ``n × n`` matrix product timed
like any contender, in every interleaved round (:func:`peak_contender`), so a load that changes
during a run changes both; :func:`roofline` divides each round's GFLOP/s by that round's peak.
"""

from __future__ import annotations

import time
from array_api_compat import array_namespace

from .. import backend
from ..layers import Convolutional, Dense
from .timing import Contender, paired_ratios, spread, summary


def matrix_flops(layers: list, train: bool) -> int:
    """Multiply-adds ×2 per sample in the convolutions and dense layers of ``layers``."""
    flops = 0
    for layer in layers:
        if isinstance(layer, Convolutional):
            c = layer.input_shape[0]
            fwd = 2 * layer.depth * c * layer.kernel_size ** 2 * layer.out_hw[0] * layer.out_hw[1]
            flops += fwd
            if train:
                flops += fwd  # kernel gradient
                flops += fwd if layer.compute_input_gradient else 0
        elif isinstance(layer, Dense):
            fwd = 2 * layer.input_size * layer.output_size
            flops += 3 * fwd if train else fwd  # forward, weight gradient, input gradient
    return flops


def _squares(device, dtype: str, n: int):
    """Two random ``(n, n)`` matrices of ``dtype`` on ``device``, their namespace, and a wait for the device."""
    rng = backend.new_rng(0)
    a = backend.to_device(backend.host_buffer(rng.random((n, n)), dtype), device)
    b = backend.to_device(backend.host_buffer(rng.random((n, n)), dtype), device)
    return array_namespace(a), a, b, lambda: backend.synchronize(a)


def measure_peak(device, dtype: str, n: int, repeats: int = 3) -> float:
    """Best GFLOP/s of an ``n × n`` matrix product on ``device`` (the roofline's ceiling)."""
    xp, a, b, sync = _squares(device, dtype, n)
    xp.matmul(a, b)
    sync()
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        xp.matmul(a, b)
        sync()
        best = max(best, 2 * n ** 3 / (time.perf_counter() - start) / 1e9)
    return best


def peak_contender(device, dtype: str, n: int) -> "tuple[Contender, int]":
    """An ``n × n`` matrix product to time in the interleaved rounds like any contender (mode
    ``"peak"``), and the FLOPs of one product."""
    xp, a, b, sync = _squares(device, dtype, n)
    return Contender("matmul", "peak", lambda: xp.matmul(a, b), sync, 1), 2 * n ** 3


def roofline(runs: list, flops: int, peak_gflops: list) -> dict:
    """``{"peak_gflops", "roofline", "roofline_fraction"}``: a contender's per-round samples/s
    ``runs`` at ``flops`` per sample over the same rounds' peak GFLOP/s."""
    ratio = spread(paired_ratios([r * flops / 1e9 for r in runs], peak_gflops))
    return {"peak_gflops": summary(peak_gflops), "roofline": ratio, "roofline_fraction": ratio["median"]}
