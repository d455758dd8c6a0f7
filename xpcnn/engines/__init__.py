"""Convolution engines: interchangeable ways to compute the conv layer's three products.

Every engine computes, for ``X: (N, C, H, W)``, ``K: (D, C, k, k)`` and ``∂E/∂Y: (N, D, Ho, Wo)``::

    forward          Y_i       = Σ_j X_j ⋆ K_ij                   (N, D, Ho, Wo), no bias
    kernel_gradient  ∂E/∂K_ij  = Σ_n X_nj ⋆ ∂E/∂Y_ni              (D, C, k, k)
    input_gradient   ∂E/∂X_j   = Σ_i ∂E/∂Y_i ∗full K_ij           (N, C, H, W)

``"signal"`` calls the backend's correlation dispatch (scipy.signal / cupyx.scipy.signal);
``"gemm"`` lowers them to matrix products (im2col, col2im) written in the array API.
"""

from __future__ import annotations

from ..errors import ConfigError
from .base import ConvEngine, pad2d
from .gemm import GemmEngine
from .signal import SignalEngine

ENGINES: dict[str, type[ConvEngine]] = {"signal": SignalEngine, "gemm": GemmEngine}

#: The engine ``engine="auto"`` picks, by measurement. Forward + kernel gradient + input
#: gradient, float32, batch 32, one thread, 2-core AMD EPYC (NumPy 2.4, OpenBLAS, SciPy 1.17)::
#:
#:     (C, H, D, k)       signal      gemm
#:     (1, 28, 5, 3)      41 ms      0.4 ms     the seed network's convolution
#:     (1, 30, 32, 3)    301 ms      0.8 ms     convnet, first layer (padded)
#:     (32, 16, 64, 3)  4738 ms       21 ms     convnet, second layer (padded)
#:     (1, 28, 8, 7)     269 ms      1.6 ms
#:     (3, 64, 8, 5)    5823 ms       65 ms
#:     (3, 64, 8, 11)  11463 ms      115 ms
#:     (1, 128, 2, 25)  3271 ms      161 ms     (batch 8)
#:
#: ``gemm`` wins every shape tried, by 20x (25×25 kernels) to 350x, so no per-shape rule pays
#: on the CPU. ``scripts/bench.py --engines signal,gemm`` compares them inside whole networks.
#: On CuPy ``gemm`` runs on cuBLAS; it is the default there too (not measured: no GPU here;
#: ``scripts/bench.py --device cuda`` measures both engines on a GPU machine).
DEFAULT_ENGINE = "gemm"


def get_engine(name: str) -> ConvEngine:
    """A fresh engine instance for ``"signal"``, ``"gemm"`` or ``"auto"``."""
    key = DEFAULT_ENGINE if name == "auto" else name
    if key not in ENGINES:
        raise ConfigError(f"unknown convolution engine {name!r}: expected one of {['auto', *ENGINES]}")
    return ENGINES[key]()


__all__ = ["ConvEngine", "SignalEngine", "GemmEngine", "ENGINES", "DEFAULT_ENGINE", "get_engine", "pad2d"]
