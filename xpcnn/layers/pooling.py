"""Pooling over non-overlapping ``k × k`` windows (max and average), and global average pooling.

Max pooling, for a whole batch.

Forward, for ``X: (N, C, H, W)`` and ``Ho = ⌊H/k⌋``, ``Wo = ⌊W/k⌋``::

    Y[n, c, u, v] = max_{0 ≤ p, q < k} X[n, c, u·k + p, v·k + q]          Y: (N, C, Ho, Wo)

Backward: the gradient flows only to the element that won each window (the first one in
row-major order on ties, as in PyTorch); rows and columns cut off by the floor get zero::

    ∂E/∂X[n, c, u·k + p, v·k + q] = ∂E/∂Y[n, c, u, v]   if (p, q) = argmax of window (u, v)
                                  = 0                    otherwise

Inference takes the maximum over each window's rows, then over its columns
(:meth:`MaxPool2D._separable_max`). A training forward pass takes ``k·k - 1`` element-wise
maxima of contiguous copies of the windows' strided views, row-major in ``(p, q)``, and also
records each window's winner, the offset ``j = p·k + q`` (a ``uint8`` per output), updated when
a view beats the running maximum strictly, so the first maximum wins. Backward then writes
``∂E/∂Y ⊙ [winner = j]`` into the ``j``-th strided view: ``k·k`` passes over the small
output, where comparing the saved input with ``Y`` took ``7·k·k``; only the ``uint8`` winners
are kept, not ``X`` and ``Y``. The measurements behind these choices: ``docs/performance.md``
("Pooling").

Average pooling (``AvgPool2D``, PyTorch's ``AvgPool2d(k)``), same windows and ``Ho``, ``Wo``::

    Y[n, c, u, v] = (1/k²) Σ_{0 ≤ p, q < k} X[n, c, u·k + p, v·k + q]
    ∂E/∂X[n, c, u·k + p, v·k + q] = ∂E/∂Y[n, c, u, v] / k²      (0 on the rows and columns cut off)

Global average pooling (``GlobalAveragePool2D``), one window the size of the image::

    Y[n, c] = (1/(H·W)) Σ_{h, w} X[n, c, h, w]                  Y: (N, C)
    ∂E/∂X[n, c, h, w] = ∂E/∂Y[n, c] / (H·W)                     (N, C, H, W)

Neither keeps anything but the input's shape for backward.
"""

from __future__ import annotations

from array_api_compat import device

from ..backend.namespaces import array_namespace
from .._checks import integer, shape as check_shape
from ..errors import ShapeError
from .base import Layer


class _WindowPool(Layer):
    """``(N, C, H, W) -> (N, C, H // k, W // k)`` with ``k = pool_size`` (stride ``k``)."""

    def __init__(self, pool_size: int = 2, input_shape=None):
        super().__init__()
        name = type(self).__name__
        self.pool_size = integer(name, "pool_size", pool_size, minimum=1)
        if input_shape is not None:
            input_shape = check_shape(name, "input_shape (C, H, W)", input_shape, ndim=3)
            self.output_shape(input_shape)
        self.input_shape = input_shape

    def config(self) -> dict:
        shape = None if self.input_shape is None else list(self.input_shape)
        return {"pool_size": self.pool_size, "input_shape": shape}

    def output_shape(self, input_shape):
        name = type(self).__name__
        if len(tuple(input_shape)) != 3:
            raise ShapeError(f"{name}: expects (C, H, W) samples, got {tuple(input_shape)}")
        c, h, w = input_shape
        k = self.pool_size
        if h < k or w < k:
            raise ShapeError(f"{name}: pool_size {k} is larger than the input {tuple(input_shape)}")
        return (c, h // k, w // k)

    def _views(self, x):
        """The ``k·k`` strided views ``X[:, :, p::k, q::k]`` (cropped to ``Ho × Wo``), row-major in ``(p, q)``."""
        k = self.pool_size
        ho, wo = x.shape[2] // k, x.shape[3] // k
        return [x[:, :, p:ho * k:k, q:wo * k:k] for p in range(k) for q in range(k)]

    def _check_batch(self, x):
        x = self.check_input(x)
        if x.ndim != 4:
            raise ShapeError(f"{self!r}: expected input of shape (N, C, H, W), got {tuple(x.shape)}")
        self.output_shape(tuple(x.shape[1:]))
        return x


class MaxPool2D(_WindowPool):
    """``(N, C, H, W) -> (N, C, H // k, W // k)``: the maximum of each ``k × k`` window."""

    def forward(self, x, training=True):
        x = self._check_batch(x)
        xp = array_namespace(x)
        if not training:
            self.save_for_backward(False)
            return self._separable_max(x)
        # Training compares every view with the running maximum too: on contiguous copies, NumPy's
        # comparisons and maxima run several times faster than on the strided views, which pays
        # for the copies (docs/performance.md). Inference, with one maximum per view, does not.
        views = [xp.asarray(view, copy=True) for view in self._views(x)]
        y = views[0]
        index = xp.uint8 if len(views) < 256 else xp.int32
        winner = xp.zeros(tuple(y.shape), dtype=index, device=device(x))
        for j, view in enumerate(views[1:], 1):
            # a strictly larger value takes the window over; j grows, so max() records it
            winner = xp.maximum(winner, xp.astype(view > y, index) * j)
            y = xp.maximum(y, view)
        self.save_for_backward(training, winner=winner, input_shape=tuple(x.shape))
        return y

    def _separable_max(self, x):
        """``max_{p,q}`` as ``max_q max_p``: the maximum over the window's rows (whole rows of
        ``k·Wo`` values at once), then over its columns. ``2(k - 1)`` passes, the first over ``k``
        times the output and the second over the output, against ``k² - 1`` over the output, and
        the same values (a maximum is exact); faster on the convnet's pools (``docs/performance.md``).
        Training keeps the row-major order of the offsets: it must record which element won each
        window, the first one on ties."""
        xp = array_namespace(x)
        k = self.pool_size
        ho, wo = x.shape[2] // k, x.shape[3] // k
        rows = x[:, :, 0:ho * k:k, :wo * k]
        for p in range(1, k):
            rows = xp.maximum(rows, x[:, :, p:ho * k:k, :wo * k])  # (N, C, Ho, k·Wo)
        y = rows[..., 0::k]
        for q in range(1, k):
            y = xp.maximum(y, rows[..., q::k])
        return y

    def backward(self, output_gradient, learning_rate=None):
        saved = self.saved_for_backward()
        winner, shape = saved["winner"], saved["input_shape"]
        xp = array_namespace(output_gradient)
        self.check_gradient(output_gradient, tuple(winner.shape))
        k = self.pool_size
        ho, wo = winner.shape[2], winner.shape[3]
        covered = shape[2] == ho * k and shape[3] == wo * k  # every input element is in one window
        make = xp.empty if covered else xp.zeros             # else the cut-off rows get zero
        grad = make(shape, dtype=output_gradient.dtype, device=device(output_gradient))
        for j in range(k * k):
            p, q = divmod(j, k)
            grad[:, :, p:ho * k:k, q:wo * k:k] = output_gradient * xp.astype(winner == j, output_gradient.dtype)
        return grad


class AvgPool2D(_WindowPool):
    """``(N, C, H, W) -> (N, C, H // k, W // k)``: the mean of each ``k × k`` window."""

    def forward(self, x, training=True):
        x = self._check_batch(x)
        views = self._views(x)
        y = views[0]
        for view in views[1:]:
            y = y + view
        self.save_for_backward(training, input_shape=tuple(x.shape))
        return y / (self.pool_size * self.pool_size)

    def backward(self, output_gradient, learning_rate=None):
        shape = self.saved_for_backward()["input_shape"]
        k = self.pool_size
        ho, wo = shape[2] // k, shape[3] // k
        self.check_gradient(output_gradient, (shape[0], shape[1], ho, wo))
        xp = array_namespace(output_gradient)
        share = output_gradient / (k * k)
        make = xp.empty if (shape[2] == ho * k and shape[3] == wo * k) else xp.zeros
        grad = make(shape, dtype=output_gradient.dtype, device=device(output_gradient))
        for p in range(k):
            for q in range(k):
                grad[:, :, p:ho * k:k, q:wo * k:k] = share
        return grad


class GlobalAveragePool2D(Layer):
    """``(N, C, H, W) -> (N, C)``: the mean of each channel's image."""

    def output_shape(self, input_shape):
        if len(tuple(input_shape)) != 3:
            raise ShapeError(f"GlobalAveragePool2D: expects (C, H, W) samples, got {tuple(input_shape)}")
        return (input_shape[0],)

    def forward(self, x, training=True):
        x = self.check_input(x)
        if x.ndim != 4:
            raise ShapeError(f"{self!r}: expected input of shape (N, C, H, W), got {tuple(x.shape)}")
        self.save_for_backward(training, input_shape=tuple(x.shape))
        return array_namespace(x).mean(x, axis=(2, 3))

    def backward(self, output_gradient, learning_rate=None):
        shape = self.saved_for_backward()["input_shape"]
        self.check_gradient(output_gradient, shape[:2])
        xp = array_namespace(output_gradient)
        share = output_gradient / (shape[2] * shape[3])
        return xp.asarray(xp.broadcast_to(share[:, :, None, None], shape), copy=True)  # writable, like the others
