"""Convolution engines: interchangeable ways to compute the conv layer's three products.

Every engine computes, for ``X: (N, C, H, W)``, ``K: (D, C, k, k)``, stride ``s`` and
``∂E/∂Y: (N, D, Ho, Wo)`` with ``Ho = ⌊(H - k) / s⌋ + 1``::

    forward          Y_i       = (Σ_j X_j ⋆ K_ij)[::s, ::s]             (N, D, Ho, Wo), no bias
    kernel_gradient  ∂E/∂K_ij  = Σ_n X_nj ⋆ dil(∂E/∂Y_ni)               (D, C, k, k)
    input_gradient   ∂E/∂X_j   = Σ_i dil(∂E/∂Y_i) ∗full K_ij            (N, C, H, W)

``gemm`` lowers them to matrix products (im2col, col2im) written in the array API;
``signal`` computes them as per-frequency products of FFTs, ``signal-direct`` as direct
correlations, both through the backend's dispatch (SciPy for NumPy, CuPy for CuPy); ``auto``
(the default) times the engines on each layer's real shapes and keeps the fastest (``gemm`` on
a near tie, :mod:`xpcnn.engines.auto`). Engines hold no state: one instance of each serves every layer.

Measured: forward + kernel gradient + input gradient, float32, one thread (BLAS, FFT and the
gemm engine's copies), best CPU time of 7 interleaved repeats, 2-core AMD EPYC shared with other
jobs (load 3.9), NumPy 2.4.6 + OpenBLAS 0.3.31, SciPy 1.17.1; ``auto`` is the choice the
measurement of :mod:`~xpcnn.engines.auto` made in the same process (2026-12-04, after the gemm
engine's one product over the batch)::

    (N, C, H, D, k)         gemm     signal    signal-direct   auto
    (32, 1, 28, 5, 3)       0.7 ms    2.9 ms      42.2 ms      gemm     the seed network
    (32, 1, 30, 32, 3)      1.1 ms   19.1 ms                   gemm     convnet layer 1 (padded)
    (32, 32, 16, 64, 3)    12.0 ms   15.6 ms                   gemm     convnet layer 2 (padded)
    (128, 32, 16, 64, 3)   53.9 ms   48.1 ms                   gemm     the same at batch 128 (a tie)
    (32, 1, 28, 8, 7)       2.0 ms    2.1 ms                   gemm     (a tie, decided by wall time)
    (32, 3, 64, 8, 5)      31.4 ms   19.7 ms                   signal
    (32, 3, 64, 8, 11)    108.9 ms   20.0 ms                   signal   bench case conv11
    (8, 1, 128, 2, 25)    155.7 ms    4.2 ms                   signal   bench case conv25

On two threads the gemm engine's products run over the whole batch (one matmul each, which
OpenBLAS spreads over its threads): whole convnet training steps at batch 128, this engine and
the per-sample one alternating step by step in one process (2 BLAS threads, 40 steps each, load
2.3), took 94 against 121 ms (median; best 67 against 85 ms), inference 31 against 41 ms. Such
2-thread timings on the shared machine swing by 2× from run to run: compare within one run.

The FFTs win from 5×5 kernels on 64×64 inputs up (5× at 11×11, 30× at 25×25), im2col on
the small 3×3 layers, and the two meet on the convnet's second layer at batch 128: no fixed
rule would do, hence the measurement. SciPy's direct N-d correlation runs at about 75 million
multiply-adds per second, never a contender on the CPU (``auto`` times it on CuPy only).
``scripts/bench.py`` compares the engines inside whole networks and prints ``auto``'s choices.
"""

from __future__ import annotations

from ..errors import ConfigError
from . import auto
from .base import ConvEngine, dilate2d, output_size, pad2d
from .gemm import GemmEngine
from .signal import SignalEngine

ENGINES: "dict[str, ConvEngine]" = {
    "gemm": GemmEngine(),
    "signal": SignalEngine("fft"),
    "signal-direct": SignalEngine("direct"),
}
NAMES = ("auto", *ENGINES)


def check_engine_name(name: str) -> str:
    """``name`` if it is ``"auto"`` or an engine's, else a :class:`ConfigError` listing them."""
    if name not in NAMES:
        raise ConfigError(f"unknown convolution engine {name!r}: expected one of {list(NAMES)}")
    return name


def get_engine(name: str) -> ConvEngine:
    """The engine called ``name`` (``"gemm"``, ``"signal"``, ``"signal-direct"``)."""
    if check_engine_name(name) == "auto":
        raise ConfigError("get_engine: 'auto' is chosen per layer shape; call engine_for(...) instead")
    return ENGINES[name]


def engine_for(requested: str, x, kernels, stride: int = 1, training: bool = True,
               input_gradient: bool = True) -> ConvEngine:
    """The engine a layer that asked for ``requested`` uses on these arrays (``XPCNN_ENGINE`` applied)."""
    name = auto.resolve(requested, ENGINES)
    if name == "auto":
        return auto.choose(x, kernels, stride, training, ENGINES, input_gradient)
    return ENGINES[name]


__all__ = ["ConvEngine", "GemmEngine", "SignalEngine", "ENGINES", "NAMES", "auto", "check_engine_name",
           "get_engine", "engine_for", "pad2d", "dilate2d", "output_size"]
