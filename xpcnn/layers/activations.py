"""Element-wise activations and Softmax: ``Y = f(X)``, ``∂E/∂X = ∂E/∂Y ⊙ f'(X)``.

Each keeps what its derivative needs from a training forward pass (usually the output ``Y``),
so backward costs one or two element-wise operations. Any batched shape ``(N, ...)`` works.
"""

from __future__ import annotations

from ..backend.namespaces import array_namespace
from ..errors import ShapeError
from .base import Layer


class Activation(Layer):
    """Shared plumbing: subclasses define ``forward`` and ``derivative`` (``f'`` from what was kept),
    or ``backward`` itself."""

    preserves_shape = True

    def derivative(self, xp, saved: dict):  # pragma: no cover - abstract
        """``f'(X)`` as a fresh array (``backward`` multiplies it by ``∂E/∂Y`` in place)."""
        raise NotImplementedError

    def backward(self, output_gradient, learning_rate=None):
        saved = self.saved_for_backward()
        self.check_gradient(output_gradient, tuple(next(iter(saved.values())).shape))
        xp = array_namespace(output_gradient)
        gradient = self.derivative(xp, saved)  # f'(X), a fresh array
        gradient *= output_gradient
        return gradient


class Sigmoid(Activation):
    """``σ(x) = 1 / (1 + e^{-x})``, ``σ' = σ (1 - σ)``.

    Computed from ``e^{-|x|}`` so no exponential overflows for large ``|x|``:
    ``σ(x) = 1/(1+e^{-|x|})`` for ``x ≥ 0`` and ``e^{-|x|}/(1+e^{-|x|})`` otherwise. The two
    numerators are ``max(e^{-|x|}, [x ≥ 0])``, since ``e^{-|x|} ≤ 1`` (no ``where``, which NumPy
    runs element by element with a branch).
    """

    def forward(self, x, training=True):
        xp = array_namespace(self.check_input(x))
        e = xp.exp(-xp.abs(x))
        numerator = xp.maximum(e, xp.astype(x >= 0, x.dtype))
        e += 1.0
        numerator /= e
        self.save_for_backward(training, output=numerator)
        return numerator

    def derivative(self, xp, saved):
        s = saved["output"]
        d = 1.0 - s
        d *= s
        return d


class Tanh(Activation):
    """``tanh(x)``, ``tanh' = 1 - tanh²``."""

    def forward(self, x, training=True):
        xp = array_namespace(self.check_input(x))
        y = xp.tanh(x)
        self.save_for_backward(training, output=y)
        return y

    def derivative(self, xp, saved):
        t = saved["output"]
        return 1.0 - t * t


class ReLU(Activation):
    """``max(x, 0)``, derivative ``1[x > 0]``."""

    def forward(self, x, training=True):
        xp = array_namespace(self.check_input(x))
        self.save_for_backward(training, input=x)
        return xp.clip(x, min=0.0)  # not where(): NumPy's where branches on every element

    def backward(self, output_gradient, learning_rate=None):  # f' and the product in one expression
        x = self.saved_for_backward()["input"]
        self.check_gradient(output_gradient, tuple(x.shape))
        xp = array_namespace(output_gradient)
        return output_gradient * xp.astype(x > 0, x.dtype)  # ∂E/∂Y ⊙ 1[x > 0]


class Softmax(Activation):
    """Softmax over the last axis: ``s = e^{x - max x} / Σ e^{x - max x}``.

    Backward (the Jacobian ``diag(s) - s sᵀ`` applied to ``g = ∂E/∂Y`` without forming it)::

        ∂E/∂X = s ⊙ (g - Σ_k g_k s_k)
    """

    def forward(self, x, training=True):
        xp = array_namespace(self.check_input(x))
        if x.ndim < 2:
            raise ShapeError(f"{self!r}: expected input of shape (N, ..., K), softmax over K, got {tuple(x.shape)}")
        e = xp.exp(x - xp.max(x, axis=-1, keepdims=True))
        s = e / xp.sum(e, axis=-1, keepdims=True)
        self.save_for_backward(training, output=s)
        return s

    def backward(self, output_gradient, learning_rate=None):
        s = self.saved_for_backward()["output"]
        self.check_gradient(output_gradient, tuple(s.shape))
        xp = array_namespace(output_gradient)
        return s * (output_gradient - xp.sum(output_gradient * s, axis=-1, keepdims=True))
