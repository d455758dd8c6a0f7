"""im2col engine: the correlation as one matrix product, written once in the array API.

For offsets ``(p, q)`` of the ``k×k`` window, ``cols[n, (j, p, q), (u, v)] = X[n, j, u+p, v+q]``.
Then ``Y[n, i, (u, v)] = Σ_{j,p,q} K[i, (j, p, q)] · cols[n, (j, p, q), (u, v)]`` is a matmul,
and so is the kernel gradient ``∂E/∂K[i, (j, p, q)] = Σ_{n,u,v} ∂E/∂Y[n, i, (u, v)] · cols[...]``.
"""

from __future__ import annotations

from array_api_compat import array_namespace

from .base import ConvEngine


def im2col(x, k_h: int, k_w: int):
    """``(N, C, H, W) -> (N, C·k_h·k_w, Ho·Wo)`` with ``Ho = H-k_h+1``, ``Wo = W-k_w+1``."""
    xp = array_namespace(x)
    n, c, h, w = x.shape
    ho, wo = h - k_h + 1, w - k_w + 1
    windows = [x[:, :, p:p + ho, q:q + wo] for p in range(k_h) for q in range(k_w)]
    cols = xp.stack(windows, axis=2)  # (N, C, k_h·k_w, Ho, Wo)
    return xp.reshape(cols, (n, c * k_h * k_w, ho * wo))


class GemmEngine(ConvEngine):
    name = "gemm"

    def __init__(self) -> None:
        self._cols_of = None  # (x, cols) of the last forward, reused by kernel_gradient
        self._cols = None

    def forward(self, x, kernels):
        xp = array_namespace(x)
        n, _, h, w = x.shape
        d, c, k_h, k_w = kernels.shape
        cols = im2col(x, k_h, k_w)
        self._cols_of, self._cols = x, cols
        y = xp.matmul(xp.reshape(kernels, (d, c * k_h * k_w)), cols)  # (N, D, Ho·Wo)
        return xp.reshape(y, (n, d, h - k_h + 1, w - k_w + 1))

    def kernel_gradient(self, x, output_gradient):
        xp = array_namespace(x)
        n, d, ho, wo = output_gradient.shape
        c, h = x.shape[1], x.shape[2]
        k_h, k_w = h - ho + 1, x.shape[3] - wo + 1
        cols = self._cols if self._cols_of is x else im2col(x, k_h, k_w)
        dy = xp.reshape(output_gradient, (n, d, ho * wo))
        grad = xp.tensordot(dy, cols, axes=([0, 2], [0, 2]))  # (D, C·k_h·k_w)
        return xp.reshape(grad, (d, c, k_h, k_w))

    def input_gradient(self, output_gradient, kernels):
        # The forward pass's im2col cache belongs to X, not to the padded gradient: keep it.
        saved = (self._cols_of, self._cols)
        try:
            return super().input_gradient(output_gradient, kernels)
        finally:
            self._cols_of, self._cols = saved
