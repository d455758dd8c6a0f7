"""What every convolution engine shares: the interface, padding, dilation, and the input
gradient as a correlation.

An engine holds no state between calls: what its backward can reuse from the forward pass
(the im2col columns, the input's spectrum) is returned by ``forward(..., keep=True)`` and
handed back to ``backward`` by the layer, which keeps it in its one place for saved state.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import device

from ..backend.namespaces import array_namespace

Array = Any


def output_size(size: int, kernel: int, stride: int = 1) -> int:
    """``⌊(size - kernel) / stride⌋ + 1``: the valid positions of a ``kernel`` every ``stride``."""
    return (size - kernel) // stride + 1


def _pair(pad) -> "tuple[int, int]":
    return (pad, pad) if isinstance(pad, int) else (int(pad[0]), int(pad[1]))


def pad2d(x: Array, pad_h, pad_w=None) -> Array:
    """Zero-pad the last two axes of ``(..., H, W)``.

    ``pad_h`` (and ``pad_w``, default ``pad_h``) is a number of rows on each side, or a pair
    ``(before, after)``: the result is ``(..., before_h + H + after_h, before_w + W + after_w)``.
    """
    (top, bottom), (left, right) = _pair(pad_h), _pair(pad_h if pad_w is None else pad_w)
    if top == bottom == left == right == 0:
        return x
    xp = array_namespace(x)
    *lead, h, w = x.shape
    out = xp.zeros((*lead, top + h + bottom, left + w + right), dtype=x.dtype, device=device(x))
    out[..., top:top + h, left:left + w] = x
    return out


def dilate2d(x: Array, stride: int) -> Array:
    """``(..., Ho, Wo) -> (..., s(Ho-1)+1, s(Wo-1)+1)``: ``stride - 1`` zeros between neighbours.

    A strided correlation samples every ``s``-th position; its adjoint spreads ``∂E/∂Y`` back
    to those positions, with zeros at the positions that were skipped.
    """
    if stride == 1:
        return x
    xp = array_namespace(x)
    *lead, h, w = x.shape
    out = xp.zeros((*lead, stride * (h - 1) + 1, stride * (w - 1) + 1), dtype=x.dtype, device=device(x))
    out[..., ::stride, ::stride] = x
    return out


def rotated_transpose(kernels: Array) -> Array:
    """``K: (D, C, k, k) -> (C, D, k, k)`` with each ``k × k`` kernel turned by 180°."""
    xp = array_namespace(kernels)
    return xp.flip(xp.permute_dims(kernels, (1, 0, 2, 3)), axis=(-2, -1))


class ConvEngine:
    """One way to compute the conv layer's three products (see :mod:`xpcnn.engines`).

    Subclasses implement :meth:`forward` and :meth:`kernel_gradient`; :meth:`input_gradient`
    defaults to the derivation's full convolution, computed by the subclass's own forward.
    """

    name = "base"

    def supports(self, stride: int) -> bool:
        """Whether this engine computes a convolution with ``stride`` (``auto`` skips it if not)."""
        return True

    def forward(self, x: Array, kernels: Array, stride: int = 1, keep: bool = False) -> "tuple[Array, Any]":
        """``Y_i = Σ_j X_j ⋆ K_ij`` sampled every ``stride``: ``(N, C, H, W), (D, C, k, k) -> (N, D, Ho, Wo)``.

        Returns ``(Y, kept)``: ``Y`` is a fresh array (the layer adds its biases in place);
        ``kept`` is what :meth:`backward` may reuse, or ``None`` when ``keep`` is false.
        """
        raise NotImplementedError  # pragma: no cover - abstract

    def biased_forward(self, x: Array, kernels: Array, bias: Array, stride: int = 1,
                       keep: bool = False) -> "tuple[Array, Any]":
        """:meth:`forward` plus one bias per output channel, ``bias: (D,)`` (a tied bias).

        By default the bias is added to the forward output; an engine may fold it into its
        products instead (:class:`~xpcnn.engines.gemm.GemmEngine`). ``kept`` is for
        :meth:`backward` as from :meth:`forward`.
        """
        y, kept = self.forward(x, kernels, stride, keep)
        y += array_namespace(bias).reshape(bias, (bias.shape[0], 1, 1))
        return y, kept

    def kernel_gradient(self, x: Array, output_gradient: Array, kernel_hw: tuple, stride: int = 1,
                        kept: Any = None) -> Array:
        """``∂E/∂K_ij = Σ_n X_nj ⋆ dil(∂E/∂Y_ni)``: ``(N, C, H, W), (N, D, Ho, Wo) -> (D, C, k, k)``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def input_gradient(self, output_gradient: Array, kernels: Array, input_hw: tuple, stride: int = 1) -> Array:
        """``∂E/∂X_j = Σ_i dil(∂E/∂Y_i) ∗full K_ij``: ``(N, D, Ho, Wo), (D, C, k, k) -> (N, C, H, W)``.

        A full convolution with ``K`` is a valid correlation of the zero-padded gradient with
        ``rot180(K)``; swapping the kernel's first two axes turns the sum over outputs ``i``
        into the channel sum of :meth:`forward`, so every engine can reuse its forward here.
        The full convolution of the dilated gradient covers ``s(Ho-1) + k`` rows; the rows
        after it, which no window reached, get zeros (``H + 2p - k`` need not divide by ``s``).
        """
        k_h, k_w = kernels.shape[-2:]
        h, w = input_hw
        dilated = dilate2d(output_gradient, stride)
        hd, wd = dilated.shape[-2:]
        padded = pad2d(dilated, (k_h - 1, h - hd), (k_w - 1, w - wd))
        return self.forward(padded, rotated_transpose(kernels), 1)[0]

    def backward(self, x: Array, kernels: Array, output_gradient: Array, stride: int = 1, kept: Any = None,
                 input_gradient: bool = True) -> "tuple[Array, Array | None]":
        """``(∂E/∂K, ∂E/∂X)``; ``∂E/∂X`` is ``None`` when ``input_gradient`` is false (a first layer)."""
        grad_k = self.kernel_gradient(x, output_gradient, tuple(kernels.shape[-2:]), stride, kept)
        grad_x = None
        if input_gradient:
            grad_x = self.input_gradient(output_gradient, kernels, tuple(x.shape[-2:]), stride)
        return grad_k, grad_x

    def __repr__(self) -> str:
        return f"<{self.name} engine>"
