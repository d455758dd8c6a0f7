"""Convolution engines: interchangeable ways to compute the conv layer's three products.

Every engine computes, for ``X: (N, C, H, W)``, ``K: (D, C, k, k)``, stride ``s`` and
``∂E/∂Y: (N, D, Ho, Wo)`` with ``Ho = ⌊(H - k) / s⌋ + 1``::

    forward          Y_i       = (Σ_j X_j ⋆ K_ij)[::s, ::s]             (N, D, Ho, Wo), no bias
    kernel_gradient  ∂E/∂K_ij  = Σ_n X_nj ⋆ dil(∂E/∂Y_ni)               (D, C, k, k)
    input_gradient   ∂E/∂X_j   = Σ_i dil(∂E/∂Y_i) ∗full K_ij            (N, C, H, W)

``gemm`` lowers them to matrix products (im2col, col2im) written in the array API;
``signal`` computes them as per-frequency products of FFTs, ``signal-direct`` as direct
correlations, both through the backend's dispatch (SciPy for NumPy, CuPy for CuPy); ``auto``
(the default) times the engines on each layer's real shapes and keeps ``gemm`` unless another
is over :data:`~xpcnn.engines.auto.MARGIN` times faster (:mod:`xpcnn.engines.auto`). Engines
hold no state: one instance of each serves every layer.

The FFTs win on large kernels, im2col on the small 3×3 layers, and the two meet on the
convnet's second layer at batch 128: no fixed rule would do, hence the measurement. SciPy's
direct N-d correlation is never a contender on the CPU (``auto`` times it on CuPy only).
``scripts/bench.py`` compares the engines inside whole networks and prints ``auto``'s choices.
The measured table of each engine on each shape is in ``docs/performance.md``.
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
