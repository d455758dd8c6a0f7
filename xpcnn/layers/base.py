"""The layer protocol: ``forward``, ``backward``, ``params`` and ``grads``.

Every layer works on batches: the first axis is the sample axis ``N``.

* ``forward(x, training=True)`` computes ``Y``. With ``training=True`` the layer keeps what
  its backward needs (see :meth:`Layer._keep`), in one place, ``self._saved``; with
  ``training=False`` (inference: ``predict``, ``evaluate``) it keeps nothing, so a large batch
  holds no activation beyond the layer being computed.
* ``backward(∂E/∂Y)`` (same shape as the forward output) fills ``grads`` (same keys as
  ``params``) and returns ``∂E/∂X``. Without a training forward before it, it raises
  :class:`~xpcnn.errors.StateError`. Passing ``learning_rate`` applies the derivation's
  one-call gradient step ``P ← P - learning_rate · ∂E/∂P`` at once.
"""

from __future__ import annotations

import math
from typing import Any

from array_api_compat import device

from .. import backend
from ..errors import ShapeError, StateError, XpcnnDtypeError, format_shape

Array = Any


class Layer:
    """Base class. Subclasses set ``input_shape`` (per sample, or ``None`` for any shape)."""

    input_shape: "tuple[int, ...] | None" = None

    def __init__(self) -> None:
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        #: What backward needs from the last training forward (``None``: nothing kept).
        self._saved: "dict[str, Any] | None" = None

    # -- protocol -------------------------------------------------------------------------------
    def forward(self, x: Array, training: bool = True) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, output_gradient: Array, learning_rate: "float | None" = None) -> Array:  # pragma: no cover
        raise NotImplementedError

    def output_shape(self, input_shape: tuple) -> tuple:
        """Per-sample output shape for a per-sample input shape (shape-preserving by default)."""
        return tuple(input_shape)

    def config(self) -> dict:
        """Constructor arguments that rebuild this layer (checkpoints store them)."""
        return {}

    # -- helpers shared by every layer ----------------------------------------------------------
    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    def _check_input(self, x: Array) -> Array:
        """Check ``x``'s per-sample shape, and its namespace, device and dtype against the parameters."""
        shape = tuple(x.shape)
        if self.input_shape is not None and shape[1:] != tuple(self.input_shape):
            raise ShapeError(
                f"{self!r}: expected input of shape {format_shape(self.input_shape)}, got {shape}"
            )
        for name, p in self.params.items():
            if type(x) is not type(p) or device(x) != device(p):
                raise ValueError(
                    f"{self!r}: input lives on {backend.Device.of(x)} but the layer's {name} on "
                    f"{backend.Device.of(p)}; move one with xpcnn.to_device or layer.to(...)"
                )
            if x.dtype != p.dtype:
                raise XpcnnDtypeError(
                    f"{self!r}: input dtype {x.dtype} does not match the layer's {name} dtype {p.dtype}; "
                    f"cast the input (x.astype) or move the model with model.to(dtype=...)"
                )
            break
        return x

    def _keep(self, training: bool, **saved: Any) -> None:
        """Keep ``saved`` for backward when ``training``; forget the last batch's otherwise."""
        self._saved = saved if training else None

    def _recall(self) -> "dict[str, Any]":
        """What the last training forward kept, or a :class:`StateError` if nothing was."""
        if self._saved is None:
            raise StateError(
                f"{self!r}: backward needs a forward(x, training=True) first; forward(x, training=False) "
                f"(predict, evaluate) keeps nothing for backward"
            )
        return self._saved

    def _check_gradient(self, output_gradient: Array, expected: tuple) -> None:
        if tuple(output_gradient.shape) != tuple(expected):
            raise ShapeError(
                f"{self!r}: expected output gradient of shape {tuple(expected)}, got {tuple(output_gradient.shape)}"
            )

    def _descend(self, input_gradient: Array, learning_rate: "float | None") -> Array:
        """The derivation's in-place step ``P ← P - η ∂E/∂P`` when a learning rate is given."""
        if learning_rate is not None:
            for name in self.params:
                self.params[name] = self.params[name] - learning_rate * self.grads[name]
        return input_gradient

    def to(self, device: "str | backend.Device", dtype: "str | None" = None) -> "Layer":
        """Move (and optionally cast) the parameters; returns ``self``."""
        dev = backend.get_device(device)
        for name, p in self.params.items():
            p = backend.to_device(p, dev)
            if dtype is not None:
                p = dev.xp.astype(p, backend.as_dtype(dev.xp, dtype))
            self.params[name] = p
        self.grads = {}
        self._saved = None
        return self


class ParameterLayer(Layer):
    """A layer with trainable parameters drawn from a seeded host generator."""

    def __init__(self, dtype: str = "float32", device: "str | backend.Device" = "cpu", seed=None) -> None:
        super().__init__()
        if dtype not in ("float32", "float64"):
            raise ValueError(f"{type(self).__name__}: dtype must be 'float32' or 'float64', got {dtype!r}")
        self.dtype = dtype
        self._device = backend.get_device(device)
        self._seed = seed

    def reset_parameters(self, rng=None) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _glorot_uniform(self, rng, shape: tuple, fan_in: int, fan_out: int) -> Array:
        """Weights ``U(±√(6 / (fan_in + fan_out)))`` (Glorot and Bengio, 2010; Keras's default)."""
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        return backend.uniform(rng, shape, bound, self.dtype, self._device)

    def _zeros(self, shape: tuple) -> Array:
        """Biases start at zero (Keras's default)."""
        return backend.to_device(backend.zeros(shape, self.dtype), self._device)

    def to(self, device, dtype=None):
        super().to(device, dtype)
        self._device = backend.get_device(device)
        if dtype is not None:
            self.dtype = dtype
        return self
