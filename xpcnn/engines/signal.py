"""The design card's engine: the derivation's correlations computed the signal-processing way.

Two methods, each one or a few batched calls per product through the backend's dispatch
(:mod:`xpcnn.backend.correlation`: SciPy for NumPy arrays, CuPy for CuPy arrays):

``"fft"`` (engine ``"signal"``)
    The correlation theorem with one FFT per operand and one matrix product per frequency.
    With ``X̂ = rfft2(X)`` zero-padded to ``(Hf, Wf) ≥ (H, W)`` (no wrap-around reaches a valid
    position), for every frequency ``f``::

        forward          Ŷ[f, n, i]      = Σ_j X̂[f, n, j] · conj(K̂[f, i, j])       Y = irfft2(Ŷ)[:Ho, :Wo]
        kernel_gradient  ∂Ê/∂K[f, i, j]  = Σ_n conj(Ĝ[f, n, i]) · X̂[f, n, j]       ∂E/∂K = irfft2(...)[:k, :k]
        input_gradient   ∂Ê/∂X[f, n, j]  = Σ_i Ĝ[f, n, i] · K̂[f, i, j]              ∂E/∂X = irfft2(...)[:H, :W]

    where ``G = dil(∂E/∂Y)``. Each line is one batched ``matmul`` over the frequencies; the
    forward pass returns ``X̂`` for the kernel gradient, and backward transforms ``G`` once for
    both gradients. ``rfft2`` / ``irfft2`` are ``scipy.fft`` (multi-threaded) or ``cupy.fft``.
``"direct"`` (engine ``"signal-direct"``)
    ``backend.correlate(..., method="direct")``: ``scipy.signal.correlate`` or
    ``cupyx.scipy.signal.correlate`` on whole batches, one call per output channel ("valid"
    along the channel axis sums over it).

FFTs as per-frequency products, and ``scipy.signal.fftconvolve`` nowhere: it cannot sum over
the channels inside the frequency domain, and the products measured faster than it, than
``oaconvolve``, than ``gemm`` on large kernels and than the direct method
(``docs/performance.md``, "The signal engine's form").
A strided convolution is computed at every position, then sampled every ``s``-th.
"""

from __future__ import annotations

from ..backend.namespaces import array_namespace
from .. import backend
from ..errors import ConfigError
from .base import ConvEngine, dilate2d, output_size


def fast_length(n: int) -> int:
    """The smallest ``2^a 3^b 5^c ≥ n``: the FFT sizes every FFT library computes fastest."""
    best = 1 << max(n - 1, 0).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35
            while p < n:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


def _spectra(a, shape: tuple):
    """``(B, C, H, W)`` real -> ``(F, B, C)`` complex (``F = Hf·(Wf/2 + 1)`` frequencies), contiguous."""
    xp = array_namespace(a)
    b, c = a.shape[:2]
    spectra = xp.reshape(backend.rfft2(a, shape), (b, c, -1))
    return backend.contiguous(xp.permute_dims(spectra, (2, 0, 1)))


def _image(spectra, shape: tuple):
    """The inverse of :func:`_spectra`: ``(F, B, C)`` complex -> ``(B, C, Hf, Wf)`` real.

    The transpose to ``(B, C, F)`` goes through ``(B, F, C)``: two copies that each move
    contiguous blocks beat one that strides across the whole array (``docs/performance.md``).
    """
    xp = array_namespace(spectra)
    _, b, c = spectra.shape
    by_sample = backend.contiguous(xp.permute_dims(spectra, (1, 0, 2)))              # (B, F, C)
    half = backend.contiguous(xp.permute_dims(by_sample, (0, 2, 1)))                  # (B, C, F)
    return backend.irfft2(xp.reshape(half, (b, c, shape[0], shape[1] // 2 + 1)), shape)


def _crop(xp, a, rows: slice, columns: slice):
    """A fresh copy of ``a[..., rows, columns]`` (a view would keep the whole buffer alive)."""
    return xp.asarray(a[..., rows, columns], copy=True)


class SignalEngine(ConvEngine):
    """``method="fft"``: per-frequency products; ``method="direct"``: batched direct correlations."""

    def __init__(self, method: str = "fft") -> None:
        if method not in ("fft", "direct"):
            raise ConfigError(f"SignalEngine: method must be 'fft' or 'direct', got {method!r}")
        self.method = method
        self.name = "signal" if method == "fft" else "signal-direct"

    # -- forward ---------------------------------------------------------------------------------
    def forward(self, x, kernels, stride=1, keep=False):
        xp = array_namespace(x)
        h, w = x.shape[-2:]
        k_h, k_w = kernels.shape[-2:]
        rows = slice(0, stride * (output_size(h, k_h, stride) - 1) + 1, stride)
        columns = slice(0, stride * (output_size(w, k_w, stride) - 1) + 1, stride)
        if self.method == "direct":
            # X: (N, C, H, W) ⋆ K_i: (1, C, k, k) -> (N, 1, H-k+1, W-k+1); "valid" along C sums over j.
            outs = [backend.correlate(x, kernels[i:i + 1, ...], "valid", "direct") for i in range(kernels.shape[0])]
            return _crop(xp, xp.concat(outs, axis=1), rows, columns), None
        shape = (fast_length(h), fast_length(w))
        x_hat = _spectra(x, shape)                                             # (F, N, C)
        k_hat = _spectra(kernels, shape)                                       # (F, D, C)
        y_hat = xp.matmul(x_hat, xp.matrix_transpose(xp.conj(k_hat)))          # (F, N, D)
        return _crop(xp, _image(y_hat, shape), rows, columns), (x_hat if keep else None)

    # -- backward --------------------------------------------------------------------------------
    def kernel_gradient(self, x, output_gradient, kernel_hw, stride=1, kept=None):
        xp = array_namespace(x)
        k_h, k_w = kernel_hw
        g = dilate2d(output_gradient, stride)                                  # (N, D, Hd, Wd)
        if self.method == "direct":
            # X: (N, C, H, W) ⋆ G_i: (N, 1, Hd, Wd) -> (1, C, ≥k, ≥k); "valid" along N sums the batch.
            grads = [backend.correlate(x, g[:, i:i + 1, ...], "valid", "direct") for i in range(g.shape[1])]
            return _crop(xp, xp.concat(grads, axis=0), slice(0, k_h), slice(0, k_w))
        shape = (fast_length(x.shape[-2]), fast_length(x.shape[-1]))
        return self._kernel_gradient_fft(xp, x, _spectra(g, shape), kernel_hw, shape, kept)

    def _kernel_gradient_fft(self, xp, x, g_hat, kernel_hw, shape, kept):
        x_hat = kept if kept is not None else _spectra(x, shape)              # (F, N, C)
        # Σ_n conj(Ĝ) X̂ = conj(Σ_n Ĝ conj(X̂)): conjugate the smaller operands, not Ĝ
        dk_hat = xp.conj(xp.matmul(xp.matrix_transpose(g_hat), xp.conj(x_hat)))  # (F, D, C)
        return _crop(xp, _image(dk_hat, shape), slice(0, kernel_hw[0]), slice(0, kernel_hw[1]))

    def _input_gradient_fft(self, xp, g_hat, kernels, input_hw, shape):
        dx_hat = xp.matmul(g_hat, _spectra(kernels, shape))                   # (F, N, C)
        return _crop(xp, _image(dx_hat, shape), slice(0, input_hw[0]), slice(0, input_hw[1]))

    def input_gradient(self, output_gradient, kernels, input_hw, stride=1):
        if self.method == "direct":
            return super().input_gradient(output_gradient, kernels, input_hw, stride)
        xp = array_namespace(output_gradient)
        shape = (fast_length(input_hw[0]), fast_length(input_hw[1]))
        g_hat = _spectra(dilate2d(output_gradient, stride), shape)
        return self._input_gradient_fft(xp, g_hat, kernels, input_hw, shape)

    def backward(self, x, kernels, output_gradient, stride=1, kept=None, input_gradient=True):
        if self.method == "direct":
            return super().backward(x, kernels, output_gradient, stride, kept, input_gradient)
        xp = array_namespace(x)
        input_hw = tuple(x.shape[-2:])
        shape = (fast_length(input_hw[0]), fast_length(input_hw[1]))
        g_hat = _spectra(dilate2d(output_gradient, stride), shape)            # (F, N, D), once for both
        grad_k = self._kernel_gradient_fft(xp, x, g_hat, tuple(kernels.shape[-2:]), shape, kept)
        grad_x = self._input_gradient_fft(xp, g_hat, kernels, input_hw, shape) if input_gradient else None
        return grad_k, grad_x
