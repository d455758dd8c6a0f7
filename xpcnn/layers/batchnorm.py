"""Batch normalisation (Ioffe and Szegedy, 2015), per channel, with PyTorch's conventions.

``BatchNorm2D`` normalises ``X: (N, C, H, W)`` per channel over ``(N, H, W)``; ``BatchNorm1D``
normalises ``X: (N, F)`` per feature over ``N``. Write ``Σ`` for the sum over those ``M``
positions (``M = N·H·W`` or ``N``) and ``⟨a⟩ = Σ a / M`` for the mean. Per channel ``c``::

    μ = ⟨X⟩,   σ² = ⟨(X - μ)²⟩   (biased)        X̂ = (X - μ) / √(σ² + ε)
    Y = γ X̂ + β                                    γ, β: (C,)   Y: the shape of X

Running statistics (buffers ``running_mean``, ``running_var``: (C,), from 0 and 1), updated by
every training forward pass with the *unbiased* variance, as PyTorch does::

    running_mean ← (1 - m) running_mean + m μ
    running_var  ← (1 - m) running_var  + m σ² · M / (M - 1)           m = momentum = 0.1

With ``training=False`` the running statistics replace ``μ`` and ``σ²`` (and nothing changes).

Backward, from ``G = ∂E/∂Y``. ``γ`` and ``β`` act per position, so
``∂E/∂γ = Σ G X̂`` and ``∂E/∂β = Σ G``. ``∂E/∂X̂ = γ G``, and every ``X̂`` depends on every
``X`` of its channel through ``μ`` and ``σ²``. With ``s = 1/√(σ² + ε)``::

    ∂X̂_a/∂X_b = s (δ_ab - 1/M) - (X_a - μ) · ½ (σ² + ε)^(-3/2) · ∂σ²/∂X_b
    ∂σ²/∂X_b  = 2 (X_b - μ) / M                  (the term through μ vanishes: ⟨X - μ⟩ = 0)
    ∂X̂_a/∂X_b = (s / M) (M δ_ab - 1 - X̂_a X̂_b)

so, summing ``∂E/∂X̂_a ∂X̂_a/∂X_b`` over ``a``::

    ∂E/∂X = γ s (G - ⟨G⟩ - X̂ ⟨G X̂⟩)             the shape of X

A training forward pass keeps ``X̂`` and ``s`` for it; ``M < 2`` is refused in training (the
unbiased variance needs two values, as in PyTorch).
"""

from __future__ import annotations

import math

from ..backend.namespaces import array_namespace
from .._checks import integer, number
from ..errors import ShapeError
from .base import ParameterLayer


class _BatchNorm(ParameterLayer):
    """Shared by :class:`BatchNorm2D` and :class:`BatchNorm1D`: the statistics are over ``axes``."""

    #: Axes of a batch reduced by the statistics, and the rank of a batch.
    axes: "tuple[int, ...]" = ()
    ndim = 0
    layout = ""

    def __init__(self, num_channels: int, *, momentum: float = 0.1, eps: float = 1e-5,
                 dtype: str = "float32", device="cpu", seed=None):
        super().__init__(dtype, device, seed)
        name = type(self).__name__
        self.num_channels = integer(name, "num_channels", num_channels, minimum=1)
        self.momentum = number(name, "momentum", momentum, low=0.0, high=1.0)
        self.eps = number(name, "eps", eps, low=0.0, low_open=True)
        self.reset_parameters(seed)

    def config(self) -> dict:
        return {"num_channels": self.num_channels, "momentum": self.momentum, "eps": self.eps}

    def output_shape(self, input_shape):
        if len(tuple(input_shape)) != self.ndim - 1 or input_shape[0] != self.num_channels:
            raise ShapeError(f"{self!r}: expects samples of shape {self.layout} with C = {self.num_channels}, "
                             f"got {tuple(input_shape)}")
        return tuple(input_shape)

    def min_training_batch(self, input_shape):
        """Enough samples for two values per channel: ``⌈2 / (H·W)⌉`` (2 for BatchNorm1D)."""
        per_sample = math.prod(tuple(input_shape)[1:])
        return max(1, math.ceil(2 / per_sample))

    def reset_parameters(self, rng=None) -> None:
        """``γ = 1``, ``β = 0``, running mean 0 and running variance 1 (PyTorch's start)."""
        c = self.num_channels
        self.params = {"gamma": self.constant((c,), 1.0), "beta": self.zeros((c,))}
        self.buffers = {"running_mean": self.zeros((c,)), "running_var": self.constant((c,), 1.0)}
        self.grads = {}

    def _per_channel(self, v):
        """A ``(C,)`` vector shaped to broadcast against a batch (``(1, C, 1, 1)`` or ``(1, C)``)."""
        xp = array_namespace(v)
        return xp.reshape(v, (1, self.num_channels) + (1,) * (self.ndim - 2))

    def _mean(self, a):
        """``⟨a⟩`` per channel, shaped to broadcast."""
        return array_namespace(a).mean(a, axis=self.axes, keepdims=True)

    def forward(self, x, training=True):
        x = self.check_input(x)
        if x.ndim != self.ndim:
            raise ShapeError(f"{self!r}: expected input of shape {self.layout}, got {tuple(x.shape)}")
        self.output_shape(tuple(x.shape[1:]))
        xp = array_namespace(x)
        gamma, beta = self._per_channel(self.params["gamma"]), self._per_channel(self.params["beta"])
        if not training:
            mean, var = self._per_channel(self.buffers["running_mean"]), self._per_channel(self.buffers["running_var"])
            self.save_for_backward(False)
            return (x - mean) / xp.sqrt(var + self.eps) * gamma + beta
        count = math.prod(x.shape[a] for a in self.axes)  # M
        if count < 2:
            raise ShapeError(f"{self!r}: training needs more than one value per channel, got input of shape "
                             f"{tuple(x.shape)}")
        mean = self._mean(x)
        centred = x - mean
        var = self._mean(centred * centred)
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        x_hat = centred * inv_std
        self._update_running(xp.reshape(mean, (-1,)), xp.reshape(var, (-1,)), count)
        self.save_for_backward(training, x_hat=x_hat, inv_std=inv_std)
        return x_hat * gamma + beta

    def _update_running(self, mean, var, count: int) -> None:
        """New arrays (never in place): a snapshot of the old ones stays valid."""
        m = self.momentum
        self.buffers = {
            "running_mean": (1 - m) * self.buffers["running_mean"] + m * mean,
            "running_var": (1 - m) * self.buffers["running_var"] + (m * count / (count - 1)) * var,
        }

    def backward(self, output_gradient, learning_rate=None):
        saved = self.saved_for_backward()
        x_hat, inv_std = saved["x_hat"], saved["inv_std"]
        self.check_gradient(output_gradient, tuple(x_hat.shape))
        xp = array_namespace(output_gradient)
        g = output_gradient
        gx_hat = g * x_hat
        self.grads["gamma"] = xp.sum(gx_hat, axis=self.axes)
        self.grads["beta"] = xp.sum(g, axis=self.axes)
        scale = self._per_channel(self.params["gamma"]) * inv_std
        input_gradient = scale * (g - self._mean(g) - x_hat * self._mean(gx_hat))
        return self.descend(input_gradient, learning_rate)


class BatchNorm2D(_BatchNorm):
    """``(N, C, H, W) -> (N, C, H, W)``, statistics per channel over ``(N, H, W)``."""

    axes = (0, 2, 3)
    ndim = 4
    layout = "(N, C, H, W)"


class BatchNorm1D(_BatchNorm):
    """``(N, F) -> (N, F)``, statistics per feature over ``N``."""

    axes = (0,)
    ndim = 2
    layout = "(N, F)"

    def __init__(self, num_features: int, **kwargs):
        super().__init__(num_features, **kwargs)

    def config(self) -> dict:
        return {"num_features": self.num_channels, "momentum": self.momentum, "eps": self.eps}
