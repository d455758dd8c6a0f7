"""Sequential model: a list of layers, and the two passes through them.

    forward:   Y = f_L(... f_2(f_1(X)))
    backward:  ∂E/∂X_l = backward_l(∂E/∂X_{l+1}),  starting from ∂E/∂Y = loss_prime(Y*, Y)

Training (``compile``, ``fit``, ``evaluate``, ``predict``, ``train_step``) comes from
:class:`xpcnn.train.Trainer`, mixed in as Keras mixes its ``Trainer`` into ``Model``: the
trainer drives the model through :meth:`Sequential.forward`, :meth:`Sequential.backward` and its
public attributes only. Inputs from any namespace (NumPy arrays for a CUDA model, say) are moved
to the model's device once per batch and cast to its dtype; outputs stay in the model's
namespace (use :func:`xpcnn.to_numpy` to bring them home).
"""

from __future__ import annotations

import math
from typing import Any, Callable

from . import backend
from ._checks import one_of
from .errors import ConfigError, ConfigTypeError, ShapeError, format_shape
from .layers.base import Layer, ParameterLayer
from .tools import summary as _summary
from .train import Trainer


#: The function :meth:`Sequential.save` calls: :mod:`xpcnn.io.checkpoint` puts ``save_checkpoint``
#: here when it is imported (the facade imports it), since ``io`` sits above the model: it builds
#: models when it loads them.
CHECKPOINT_WRITER: "list[Callable | None]" = [None]


class Sequential(Trainer):
    """``Sequential([Convolutional(...), Sigmoid(), ...], seed=0)``.

    ``seed`` draws every layer's parameters from one generator, in order, directly in the final
    ``dtype`` and for the final ``device``, so ``Sequential([Dense(3, 2)], seed=0,
    dtype="float64")`` holds the weights of ``Dense(3, 2, seed=0, dtype="float64")``, and a
    seed gives the same weights on every device. Without a seed the layers keep the parameters
    they were built with (moved and cast when ``device`` or ``dtype`` is given). The model's
    device and dtype are its parameters'.
    """

    def __init__(self, layers: "list[Layer]", *, seed=None, device=None, dtype: "str | None" = None):
        if not isinstance(layers, (list, tuple)):
            raise ConfigTypeError(f"Sequential: layers must be a list of layers, got {type(layers).__name__}")
        self.layers = list(layers)
        if not self.layers:
            raise ConfigError("Sequential: needs at least one layer")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise ConfigTypeError(f"Sequential: layers[{i}] is {layer!r}, not an xpcnn layer")
        if dtype is not None:
            one_of("Sequential", "dtype", dtype, ("float32", "float64"))
        target = backend.get_device(device) if device is not None else None
        self.rng = backend.new_rng(seed)
        placed = set()
        if seed is not None:
            init_rng = backend.new_rng(seed)
            for layer in self.layers:
                if isinstance(layer, ParameterLayer):
                    layer.place(target, dtype).reset_parameters(init_rng)
                    placed.add(id(layer))
        if target is not None or dtype is not None:
            for layer in self.layers:
                if id(layer) not in placed:
                    layer.to(target if target is not None else _layer_device(layer), dtype)
        self._check_shapes()
        first = self.layers[0]
        if hasattr(first, "compute_input_gradient"):
            first.compute_input_gradient = False
        params = [p for layer in self.layers for p in layer.params.values()]
        self.device = backend.device_of(*params) if params else (target or backend.CPU)
        self.dtype = dtype or next((layer.dtype for layer in self.layers if isinstance(layer, ParameterLayer)),
                                   "float32")
        Trainer.__init__(self)  # loss, optimizer, schedule, early_stopping, epoch, history
        #: One sample's shape in the first batch the model ran on, when the first layer takes any
        #: shape: what :meth:`summary` walks without ``input_shape``, as Keras builds a model on
        #: its first call.
        self.first_input_shape: "tuple | None" = None

    # -- structure ---------------------------------------------------------------------------
    def _check_shapes(self) -> None:
        """Walk the per-sample shapes through the layers; name both layers where they disagree."""
        shape = None
        previous = None
        for layer in self.layers:
            expected = layer.input_shape
            if shape is not None and expected is not None and tuple(expected) != tuple(shape):
                raise ShapeError(
                    f"{layer!r} expects input {format_shape(expected)} but {previous!r} "
                    f"produces {format_shape(shape)}"
                )
            if expected is not None:
                shape = tuple(expected)
            if shape is not None:
                shape = tuple(layer.output_shape(shape))
            previous = layer
        self.input_shape = self.layers[0].input_shape
        self.output_shape = shape

    def __repr__(self) -> str:
        inner = ",\n".join(f"    {layer!r}" for layer in self.layers)
        return f"Sequential([\n{inner}\n], device={self.device.name!r}, dtype={self.dtype!r})"

    def to(self, device=None, dtype: "str | None" = None) -> "Sequential":
        """Move (and optionally cast) every parameter and the optimizer state; returns ``self``."""
        if dtype is not None:
            one_of("Sequential.to", "dtype", dtype, ("float32", "float64"))
        dev = backend.get_device(device if device is not None else self.device)
        for layer in self.layers:
            layer.to(dev, dtype)
        if self.optimizer is not None:
            self.optimizer.to(dev)
        self.device = dev
        if dtype is not None:
            self.dtype = dtype
        return self

    @property
    def xp(self):
        return self.device.xp

    def parameter_count(self) -> int:
        """The number of trainable parameters (Keras: :meth:`count_params`)."""
        return sum(math.prod(p.shape) for layer in self.layers for p in layer.params.values())

    def count_params(self) -> int:
        """Keras's spelling of :meth:`parameter_count`."""
        return self.parameter_count()

    def save(self, path, extra: "dict | None" = None) -> None:
        """``model.save(path)``, as Keras: an xpcnn checkpoint (:func:`xpcnn.io.save_checkpoint`: ``.npz``,
        no pickle), which :func:`xpcnn.load_model` reads back."""
        if CHECKPOINT_WRITER[0] is None:  # only when xpcnn.io was never imported; the facade imports it
            raise ConfigError("model.save needs xpcnn.io; import xpcnn (or xpcnn.io) first")
        CHECKPOINT_WRITER[0](path, self, extra)

    def summary(self, input_shape: "tuple | None" = None, *,
                print_fn: "Callable[[str], Any] | None" = print) -> None:
        """Print the layer table (output shapes, parameters, engines, bytes), as Keras's ``summary()`` does.

        ``input_shape`` (one sample's, ``(C, H, W)``) is needed only when the first layer takes
        any shape and the model has not run on a batch yet; ``print_fn`` receives the whole table
        (``None``: ``print``, as in Keras).
        :meth:`summary_text` returns it instead.
        """
        if print_fn is None:
            print_fn = print
        if not callable(print_fn):
            raise ConfigTypeError(f"summary: print_fn must be a function taking the table, or None, got {print_fn!r}")
        print_fn(self.summary_text(input_shape))

    def summary_text(self, input_shape: "tuple | None" = None) -> str:
        """The table :meth:`summary` prints (see :mod:`xpcnn.tools.summary`)."""
        return _summary.summary_text(self, input_shape)

    # -- forward and backward ----------------------------------------------------------------
    def forward(self, x, training: bool = True):
        """``(N, *input_shape) -> (N, *output_shape)`` on the model's device (no batching).

        ``training=False`` (inference) keeps nothing for backward in any layer. A layer that draws
        random numbers (Dropout) draws them from the model's seeded generator ``self.rng``.
        """
        batch = x
        for layer in self.layers:  # (the first layer names what is wrong with a non-array)
            if layer.uses_rng:
                layer.rng = self.rng
            x = layer.forward(x, training)
        if self.first_input_shape is None and self.input_shape is None:
            self.first_input_shape = tuple(batch.shape[1:])  # a batch every layer took, not one that failed
        return x

    def backward(self, output_gradient):
        """Back-propagate ``∂E/∂Y`` through every layer, filling their ``grads``."""
        for layer in reversed(self.layers):
            output_gradient = layer.backward(output_gradient)
        return output_gradient


def _layer_device(layer: Layer):
    params = list(layer.params.values())
    return backend.device_of(*params) if params else backend.CPU
