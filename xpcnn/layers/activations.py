"""Element-wise activations and Softmax: ``Y = f(X)``, ``∂E/∂X = ∂E/∂Y ⊙ f'(X)``.

Each keeps what its derivative needs from the forward pass (usually the output ``Y``), so
backward costs one or two element-wise operations. Any batched shape ``(N, ...)`` works.
"""

from __future__ import annotations

from array_api_compat import array_namespace

from .base import Layer


class Activation(Layer):
    """Shared plumbing: subclasses define ``forward`` and ``derivative`` (``f'`` from saved values)."""

    _saved = None

    def derivative(self, xp):  # pragma: no cover - abstract
        """``f'(X)`` as a fresh array (``backward`` multiplies it by ``∂E/∂Y`` in place)."""
        raise NotImplementedError

    def backward(self, output_gradient, learning_rate=None):
        if self._saved is None:
            raise RuntimeError(f"{self!r}: backward called before forward")
        self._check_gradient(output_gradient, tuple(self._saved.shape))
        xp = array_namespace(output_gradient)
        gradient = self.derivative(xp)  # f'(X), a fresh array
        gradient *= output_gradient
        return gradient

    def to(self, device, dtype=None):
        self._saved = None
        return super().to(device, dtype)


class Sigmoid(Activation):
    """``σ(x) = 1 / (1 + e^{-x})``, ``σ' = σ (1 - σ)``.

    Computed from ``e^{-|x|}`` so no exponential overflows for large ``|x|``:
    ``σ(x) = 1/(1+e^{-|x|})`` for ``x ≥ 0`` and ``e^{-|x|}/(1+e^{-|x|})`` otherwise. The two
    numerators are ``max(e^{-|x|}, [x ≥ 0])``, since ``e^{-|x|} ≤ 1`` (no ``where``, which NumPy
    runs element by element with a branch).
    """

    def forward(self, x):
        xp = array_namespace(x)
        e = xp.exp(-xp.abs(x))
        numerator = xp.maximum(e, xp.astype(x >= 0, x.dtype))
        e += 1.0
        numerator /= e
        self._saved = numerator
        return self._saved

    def derivative(self, xp):
        s = self._saved
        d = 1.0 - s
        d *= s
        return d


class Tanh(Activation):
    """``tanh(x)``, ``tanh' = 1 - tanh²``."""

    def forward(self, x):
        xp = array_namespace(x)
        self._saved = xp.tanh(x)
        return self._saved

    def derivative(self, xp):
        t = self._saved
        return 1.0 - t * t


class ReLU(Activation):
    """``max(x, 0)``, derivative ``1[x > 0]``."""

    def forward(self, x):
        xp = array_namespace(x)
        self._saved = x
        return xp.clip(x, min=0.0)  # not where(): NumPy's where branches on every element

    def derivative(self, xp):
        x = self._saved
        return xp.astype(x > 0, x.dtype)


class Softmax(Activation):
    """Softmax over the last axis: ``s = e^{x - max x} / Σ e^{x - max x}``.

    Backward (the Jacobian ``diag(s) - s sᵀ`` applied to ``g = ∂E/∂Y`` without forming it)::

        ∂E/∂X = s ⊙ (g - Σ_k g_k s_k)
    """

    def forward(self, x):
        xp = array_namespace(x)
        e = xp.exp(x - xp.max(x, axis=-1, keepdims=True))
        self._saved = e / xp.sum(e, axis=-1, keepdims=True)
        return self._saved

    def backward(self, output_gradient, learning_rate=None):
        if self._saved is None:
            raise RuntimeError(f"{self!r}: backward called before forward")
        self._check_gradient(output_gradient, tuple(self._saved.shape))
        xp = array_namespace(output_gradient)
        s = self._saved
        return s * (output_gradient - xp.sum(output_gradient * s, axis=-1, keepdims=True))
