"""im2col engine: the correlation as matrix products, written once in the array API.

For offsets ``(p, q)`` of the ``k×k`` window and stride ``s``,
``cols[(p, q, j), (n, u, v)] = X[n, j, s·u + p, s·v + q]``. Then the three products of the
convolutional layer are matmuls, one product each (the layouts are below)::

    forward          Y[i, (n, u, v)]      = Σ_{p,q,j} K[i, (p, q, j)] · cols[(p, q, j), (n, u, v)]
    kernel_gradient  ∂E/∂K[i, (p, q, j)]  = Σ_{n,u,v} ∂E/∂Y[i, (n, u, v)] · cols[(p, q, j), (n, u, v)]
    input_gradient   ∂E/∂cols[(p,q,j), (n,u,v)] = Σ_i K[i, (p, q, j)] · ∂E/∂Y[i, (n, u, v)],
                     then each window's gradient is added back where it was taken from (col2im)

The rows are ordered offset first, channel second: each window ``X[:, :, p::s, q::s]`` then
fills one contiguous ``(C, N, Ho, Wo)`` block. ``Y`` comes out channel-major, ``(D, N, Ho, Wo)``,
and is copied to ``(N, D, Ho, Wo)`` (contiguous rows of ``Ho·Wo``); ``∂E/∂Y`` goes the other way,
once for both gradients.

Each product is one matmul over the whole batch, which a multi-threaded BLAS spreads over its
threads far better than one small product per sample (``matmul`` broadcast over ``N``).
Layers with few rows ``k·k·C`` (< :data:`BATCH_PRODUCT_ROWS`: a first layer on grey images) are
memory-bound; there the per-sample layout, ``cols[n, (p, q, j), (u, v)]``, which needs no
transposition, is kept.

A tied bias rides in the forward product as a last column of ``K`` against a row of ones in ``cols``
(:meth:`GemmEngine.biased_forward`), which saves the layer a pass over ``Y``.

``cols`` of the forward pass is returned to the layer, which keeps it for the kernel gradient
of a training step (and drops it in inference). The input gradient takes whichever of two
equivalent routes moves less data: col2im above, or the derivation's full convolution (a
forward pass over the zero-padded ``∂E/∂Y`` with ``rot180(K)``, see
:class:`~xpcnn.engines.base.ConvEngine`); a strided layer always takes col2im.

The measurements behind each choice here are in ``docs/performance.md`` ("The gemm engine's layout").
"""

from __future__ import annotations

from array_api_compat import device

from ..backend.namespaces import array_namespace
from .base import ConvEngine, output_size


#: Below this many rows ``k·k·C`` (the first layers of image networks: 9 for one channel and
#: 3×3 kernels), the products are memory-bound, and the per-sample layout, which needs no
#: transposition, wins; from it on, one product over the whole batch does.
BATCH_PRODUCT_ROWS = 32


def _window(p: int, count: int, stride: int) -> slice:
    """Rows ``p, p + s, ..., p + s(count - 1)``."""
    return slice(p, p + stride * (count - 1) + 1, stride)


def channel_major(x):
    """``(N, C, H, W) -> (C, N, H, W)`` and back: a view (no copy)."""
    return array_namespace(x).permute_dims(x, (1, 0, 2, 3))


def batch_major(x):
    """``(C, N, H, W) -> (N, C, H, W)`` (or back), copied into a contiguous array: the layers
    after this one, and the gradients that come back, then all share one layout."""
    xp = array_namespace(x)
    c, n, h, w = x.shape
    out = xp.empty((n, c, h, w), dtype=x.dtype, device=device(x))  # row-major, unlike a copy of a view
    out[...] = channel_major(x)
    return out


def per_sample(kernel_shape: tuple) -> bool:
    """Whether the engine lays out ``K: (D, C, k_h, k_w)``'s products per sample (see the module)."""
    _, c, k_h, k_w = kernel_shape
    return k_h * k_w * c < BATCH_PRODUCT_ROWS


def im2col(x, k_h: int, k_w: int, stride: int = 1, per_sample: bool = False, ones: bool = False):
    """``(N, C, H, W) -> (k_h·k_w·C, N·Ho·Wo)`` with ``Ho = ⌊(H - k_h) / s⌋ + 1`` (likewise ``Wo``).

    Row ``(p, q, j)``, column ``(n, u, v)`` holds ``X[n, j, s·u + p, s·v + q]``. With
    ``per_sample``, ``(N, k_h·k_w·C, Ho·Wo)``: the same rows, one matrix per sample. With
    ``ones``, one more row of ones at the end (the biases' row, see :meth:`GemmEngine.biased_forward`).
    """
    xp = array_namespace(x)
    n, c, h, w = x.shape
    ho, wo = output_size(h, k_h, stride), output_size(w, k_w, stride)
    rows = k_h * k_w * c + int(ones)
    if per_sample:
        windows = [x[:, :, _window(p, ho, stride), _window(q, wo, stride)] for p in range(k_h) for q in range(k_w)]
        if not ones:
            return xp.reshape(xp.stack(windows, axis=1), (n, rows, ho * wo))  # (N, k_h·k_w, C, Ho, Wo)
        cols = xp.empty((n, rows, ho, wo), dtype=x.dtype, device=device(x))
        for j, window in enumerate(windows):
            cols[:, j * c:(j + 1) * c, ...] = window
        cols[:, rows - 1, ...] = 1
        return xp.reshape(cols, (n, rows, ho * wo))
    # Filled window by window, not stacked: NumPy's stack keeps its inputs' memory order, (N, C)
    # here, and the reshape below would then copy everything once more.
    xt = channel_major(x)
    cols = xp.empty((rows, n, ho, wo), dtype=x.dtype, device=device(x))
    for p in range(k_h):
        for q in range(k_w):
            at = (p * k_w + q) * c
            cols[at:at + c, ...] = xt[:, :, _window(p, ho, stride), _window(q, wo, stride)]
    if ones:
        cols[rows - 1, ...] = 1
    return xp.reshape(cols, (rows, n * ho * wo))


def col2im(cols, shape: tuple, k_h: int, k_w: int, stride: int = 1, per_sample: bool = False):
    """The adjoint of :func:`im2col`: ``(k_h·k_w·C, N·Ho·Wo) -> (N, C, H, W)``, overlaps summed."""
    xp = array_namespace(cols)
    n, c, h, w = shape
    ho, wo = output_size(h, k_h, stride), output_size(w, k_w, stride)
    if per_sample:
        windows = xp.reshape(cols, (n, k_h * k_w, c, ho, wo))
        x = xp.zeros((n, c, h, w), dtype=cols.dtype, device=device(cols))
        for p in range(k_h):
            for q in range(k_w):
                x[:, :, _window(p, ho, stride), _window(q, wo, stride)] += windows[:, p * k_w + q, ...]
        return x
    windows = xp.reshape(cols, (k_h * k_w, c, n, ho, wo))
    x = xp.zeros((c, n, h, w), dtype=cols.dtype, device=device(cols))
    for p in range(k_h):
        for q in range(k_w):
            x[:, :, _window(p, ho, stride), _window(q, wo, stride)] += windows[p * k_w + q, ...]
    return batch_major(x)


def _rows_offset_first(kernels):
    """``K: (D, C, k_h, k_w) -> (D, k_h·k_w·C)``, ordered like the rows of :func:`im2col`."""
    xp = array_namespace(kernels)
    d, c, k_h, k_w = kernels.shape
    return xp.reshape(xp.permute_dims(kernels, (0, 2, 3, 1)), (d, k_h * k_w * c))


def _gradient_rows(output_gradient, per_sample: bool):
    """``∂E/∂Y: (N, D, Ho, Wo) -> (D, N·Ho·Wo)`` (one copy), the layout of the forward product;
    ``(N, D, Ho·Wo)`` (a view) with ``per_sample``."""
    xp = array_namespace(output_gradient)
    n, d, ho, wo = output_gradient.shape
    if per_sample:
        return xp.reshape(output_gradient, (n, d, ho * wo))
    return xp.reshape(batch_major(output_gradient), (d, n * ho * wo))  # (N, D, ...) -> (D, N, ...)


class GemmEngine(ConvEngine):
    name = "gemm"

    def forward(self, x, kernels, stride=1, keep=False):
        return self._forward(x, kernels, None, stride, keep)

    def biased_forward(self, x, kernels, bias, stride=1, keep=False):
        """The biases ride in the product: ``[K | B]`` times the columns with a last row of ones.

        That saves the layer a pass over ``Y``, and costs one more row in ``cols``, which the
        kernel gradient skips.
        """
        return self._forward(x, kernels, bias, stride, keep)

    def _forward(self, x, kernels, bias, stride, keep):
        xp = array_namespace(x)
        n, _, h, w = x.shape
        d, c, k_h, k_w = kernels.shape
        ho, wo = output_size(h, k_h, stride), output_size(w, k_w, stride)
        single = not per_sample(kernels.shape)
        rows = _rows_offset_first(kernels)
        if bias is not None:
            rows = xp.concat([rows, xp.reshape(bias, (d, 1))], axis=1)
        cols = im2col(x, k_h, k_w, stride, not single, ones=bias is not None)
        y = xp.matmul(rows, cols)  # (D, N·Ho·Wo), or (N, D, Ho·Wo) per sample
        y = batch_major(xp.reshape(y, (d, n, ho, wo))) if single else xp.reshape(y, (n, d, ho, wo))
        return y, (cols if keep else None)

    def kernel_gradient(self, x, output_gradient, kernel_hw, stride=1, kept=None):
        layout = per_sample((None, x.shape[1], *kernel_hw))
        return self._kernel_gradient(x, _gradient_rows(output_gradient, layout), kernel_hw, stride, kept)

    def _kernel_gradient(self, x, dy, kernel_hw, stride, kept):
        xp = array_namespace(x)
        c = x.shape[1]
        k_h, k_w = kernel_hw
        layout = per_sample((None, c, k_h, k_w))
        cols = kept if kept is not None else im2col(x, k_h, k_w, stride, layout)
        if layout:
            # One small product per sample, then the batch sum: faster than tensordot, which would
            # first copy both operands into (D, N·Ho·Wo) and (N·Ho·Wo, C·k_h·k_w) matrices.
            grad = xp.sum(xp.matmul(dy, xp.matrix_transpose(cols)), axis=0)  # (D, k_h·k_w·C)
        else:
            # (cols ∂E/∂Yᵀ)ᵀ, not ∂E/∂Y colsᵀ: OpenBLAS runs this orientation faster (docs/performance.md).
            grad = xp.matrix_transpose(xp.matmul(cols, xp.matrix_transpose(dy)))
        if grad.shape[-1] > k_h * k_w * c:  # columns kept by biased_forward: drop the biases' row
            grad = grad[:, :k_h * k_w * c]
        return xp.permute_dims(xp.reshape(grad, (grad.shape[0], k_h, k_w, c)), (0, 3, 1, 2))

    def input_gradient(self, output_gradient, kernels, input_hw, stride=1):
        dy = _gradient_rows(output_gradient, per_sample(kernels.shape))
        return self._input_gradient(output_gradient, dy, kernels, input_hw, stride)

    def _input_gradient(self, output_gradient, dy, kernels, input_hw, stride):
        xp = array_namespace(dy)
        n, d, ho, wo = output_gradient.shape
        _, c, k_h, k_w = kernels.shape
        h, w = input_hw
        if stride > 1 or c * ho * wo <= d * h * w:
            # col2im: ∂E/∂cols = Kᵀ ∂E/∂Y has C·k·k rows, the padded route's cols D·k·k.
            grad_cols = xp.matmul(xp.matrix_transpose(_rows_offset_first(kernels)), dy)
            return col2im(grad_cols, (n, c, h, w), k_h, k_w, stride, per_sample(kernels.shape))
        return super().input_gradient(output_gradient, kernels, input_hw, stride)

    def backward(self, x, kernels, output_gradient, stride=1, kept=None, input_gradient=True):
        dy = _gradient_rows(output_gradient, per_sample(kernels.shape))  # at most one copy, for both
        grad_k = self._kernel_gradient(x, dy, tuple(kernels.shape[-2:]), stride, kept)
        grad_x = None
        if input_gradient:
            grad_x = self._input_gradient(output_gradient, dy, kernels, tuple(x.shape[-2:]), stride)
        return grad_k, grad_x
