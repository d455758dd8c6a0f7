"""Convolution engines: interchangeable ways to compute the conv layer's three products.

Every engine computes, for ``X: (N, C, H, W)``, ``K: (D, C, k, k)`` and ``∂E/∂Y: (N, D, Ho, Wo)``::

    forward          Y_i       = Σ_j X_j ⋆ K_ij                   (N, D, Ho, Wo), no bias
    kernel_gradient  ∂E/∂K_ij  = Σ_n X_nj ⋆ ∂E/∂Y_ni              (D, C, k, k)
    input_gradient   ∂E/∂X_j   = Σ_i ∂E/∂Y_i ∗full K_ij           (N, C, H, W)

``"signal"`` calls the backend's correlation dispatch (scipy.signal / cupyx.scipy.signal);
``"gemm"`` lowers the correlation to one matrix product (im2col) written in the array API.
"""

from __future__ import annotations

from .base import ConvEngine, pad2d
from .gemm import GemmEngine
from .signal import SignalEngine

ENGINES: dict[str, type[ConvEngine]] = {"signal": SignalEngine, "gemm": GemmEngine}

#: The engine ``engine="auto"`` picks (measured by ``scripts/bench.py``).
DEFAULT_ENGINE = "gemm"


def get_engine(name: str) -> ConvEngine:
    """A fresh engine instance for ``"signal"``, ``"gemm"`` or ``"auto"``."""
    key = DEFAULT_ENGINE if name == "auto" else name
    if key not in ENGINES:
        raise ValueError(f"unknown convolution engine {name!r}: expected one of {['auto', *ENGINES]}")
    return ENGINES[key]()


__all__ = ["ConvEngine", "SignalEngine", "GemmEngine", "ENGINES", "DEFAULT_ENGINE", "get_engine", "pad2d"]
