"""The design card's engine: N-d correlations through ``backend.correlate``.

SciPy computes for NumPy arrays, ``cupyx.scipy.signal`` for CuPy arrays. Each call correlates
the whole batch at once; the Python loop runs over output channels, never over samples.
"""

from __future__ import annotations

from array_api_compat import array_namespace

from .. import backend
from .base import ConvEngine


class SignalEngine(ConvEngine):
    name = "signal"

    def __init__(self, method: str = "auto") -> None:
        self.method = method

    def forward(self, x, kernels):
        # X: (N, C, H, W) ⋆ K_i: (1, C, k, k) -> (N, 1, Ho, Wo); "valid" along C sums over j.
        xp = array_namespace(x)
        outputs = [backend.correlate(x, kernels[i:i + 1, ...], "valid", self.method) for i in range(kernels.shape[0])]
        return xp.concat(outputs, axis=1)

    def kernel_gradient(self, x, output_gradient):
        # X: (N, C, H, W) ⋆ ∂E/∂Y_i: (N, 1, Ho, Wo) -> (1, C, k, k); "valid" along N sums the batch.
        xp = array_namespace(x)
        grads = [
            backend.correlate(x, output_gradient[:, i:i + 1, ...], "valid", self.method)
            for i in range(output_gradient.shape[1])
        ]
        return xp.concat(grads, axis=0)
