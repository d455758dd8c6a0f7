"""What every convolution engine shares: zero padding and the input gradient as a correlation."""

from __future__ import annotations

from array_api_compat import array_namespace, device


def pad2d(x, pad_h: int, pad_w: "int | None" = None):
    """Zero-pad the last two axes of ``(..., H, W)`` to ``(..., H + 2 pad_h, W + 2 pad_w)``."""
    pad_w = pad_h if pad_w is None else pad_w
    if pad_h == 0 and pad_w == 0:
        return x
    xp = array_namespace(x)
    *lead, h, w = x.shape
    out = xp.zeros((*lead, h + 2 * pad_h, w + 2 * pad_w), dtype=x.dtype, device=device(x))
    out[..., pad_h:pad_h + h, pad_w:pad_w + w] = x
    return out


class ConvEngine:
    """Base engine. Subclasses implement ``forward`` and ``kernel_gradient``."""

    name = "base"

    def forward(self, x, kernels):  # pragma: no cover - abstract
        """``Y_i = Σ_j X_j ⋆ K_ij``: ``(N, C, H, W), (D, C, k, k) -> (N, D, H-k+1, W-k+1)``.

        Returns a fresh array (the layer adds its biases in place).
        """
        raise NotImplementedError

    def kernel_gradient(self, x, output_gradient):  # pragma: no cover - abstract
        """``∂E/∂K_ij = Σ_n X_nj ⋆ ∂E/∂Y_ni``: ``(N, C, H, W), (N, D, Ho, Wo) -> (D, C, k, k)``."""
        raise NotImplementedError

    def input_gradient(self, output_gradient, kernels):
        """``∂E/∂X_j = Σ_i ∂E/∂Y_i ∗full K_ij``: ``(N, D, Ho, Wo), (D, C, k, k) -> (N, C, H, W)``.

        A full convolution with ``K`` is a valid correlation of the zero-padded gradient with
        ``rot180(K)``; swapping the kernel's first two axes turns the sum over outputs ``i``
        into the channel sum of :meth:`forward`, so every engine reuses its forward here.
        """
        xp = array_namespace(output_gradient)
        k_h, k_w = kernels.shape[-2:]
        rotated = xp.flip(xp.permute_dims(kernels, (1, 0, 2, 3)), axis=(-2, -1))
        return self.forward(pad2d(output_gradient, k_h - 1, k_w - 1), rotated)
