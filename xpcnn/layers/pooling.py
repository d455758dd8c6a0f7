"""Max pooling over non-overlapping ``k × k`` windows, for a whole batch.

Forward, for ``X: (N, C, H, W)`` and ``Ho = ⌊H/k⌋``, ``Wo = ⌊W/k⌋``::

    Y[n, c, u, v] = max_{0 ≤ p, q < k} X[n, c, u·k + p, v·k + q]          Y: (N, C, Ho, Wo)

Backward: the gradient flows only to the element that won each window (the first one in
row-major order on ties, as in PyTorch); rows and columns cut off by the floor get zero::

    ∂E/∂X[n, c, u·k + p, v·k + q] = ∂E/∂Y[n, c, u, v]   if (p, q) = argmax of window (u, v)
                                  = 0                    otherwise

Forward is ``k·k - 1`` element-wise maxima of strided views; backward finds each window's
winner by comparing the views with the saved ``Y`` in row-major order.
"""

from __future__ import annotations

from array_api_compat import array_namespace, device

from .. import validation
from ..errors import ShapeError
from .base import Layer


class MaxPool2D(Layer):
    """``(N, C, H, W) -> (N, C, H // k, W // k)`` with ``k = pool_size`` (stride ``k``)."""

    def __init__(self, pool_size: int = 2, input_shape=None):
        super().__init__()
        self.pool_size = validation.integer("MaxPool2D", "pool_size", pool_size, minimum=1)
        if input_shape is not None:
            input_shape = validation.shape("MaxPool2D", "input_shape (C, H, W)", input_shape, ndim=3)
            self.output_shape(input_shape)
        self.input_shape = input_shape

    def config(self) -> dict:
        shape = None if self.input_shape is None else list(self.input_shape)
        return {"pool_size": self.pool_size, "input_shape": shape}

    def output_shape(self, input_shape):
        if len(tuple(input_shape)) != 3:
            raise ShapeError(f"MaxPool2D: expects (C, H, W) samples, got {tuple(input_shape)}")
        c, h, w = input_shape
        k = self.pool_size
        if h < k or w < k:
            raise ShapeError(f"MaxPool2D: pool_size {k} is larger than the input {tuple(input_shape)}")
        return (c, h // k, w // k)

    def _views(self, x):
        """The ``k·k`` strided views ``X[:, :, p::k, q::k]`` (cropped to ``Ho × Wo``), row-major in ``(p, q)``."""
        k = self.pool_size
        ho, wo = x.shape[2] // k, x.shape[3] // k
        return [((p, q), x[:, :, p:ho * k:k, q:wo * k:k]) for p in range(k) for q in range(k)]

    def forward(self, x, training=True):
        if x.ndim != 4:
            raise ShapeError(f"{self!r}: expected input of shape (N, C, H, W), got {tuple(x.shape)}")
        x = self._check_input(x)
        self.output_shape(tuple(x.shape[1:]))
        xp = array_namespace(x)
        views = self._views(x)
        y = views[0][1]
        for _, view in views[1:]:
            y = xp.maximum(y, view)  # element-wise max over the k·k offsets: one pass each
        self._keep(training, input=x, output=y)
        return y

    def backward(self, output_gradient, learning_rate=None):
        saved = self._recall()
        x, y = saved["input"], saved["output"]
        xp = array_namespace(output_gradient)
        self._check_gradient(output_gradient, tuple(y.shape))
        grad = xp.zeros(tuple(x.shape), dtype=output_gradient.dtype, device=device(output_gradient))
        taken = xp.zeros(tuple(y.shape), dtype=xp.bool, device=device(output_gradient))
        k = self.pool_size
        ho, wo = y.shape[2], y.shape[3]
        for (p, q), view in self._views(x):
            winner = (view == y) & ~taken  # the first offset holding the maximum wins its window
            taken = taken | winner
            grad[:, :, p:ho * k:k, q:wo * k:k] = output_gradient * xp.astype(winner, output_gradient.dtype)
        return grad
