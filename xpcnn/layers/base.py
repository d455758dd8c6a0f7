"""The layer protocol: ``forward``, ``backward``, ``params`` and ``grads``.

Every layer works on batches: the first axis is the sample axis ``N``. A layer of your own
subclasses :class:`Layer` (or :class:`ParameterLayer`, for trained parameters), computes with
``xp = array_namespace(x)`` only, and uses the public helpers below; ``@xpcnn.register_layer``
lets checkpoints save and load it (:mod:`xpcnn.layers.registry`). The tutorial
"Write a layer" walks through one.

* ``forward(x, training=True)`` computes ``Y``. :meth:`Layer.check_input` checks ``x`` against the
  layer (per-sample shape, namespace, device, dtype). With ``training=True`` the layer keeps what its
  backward needs, in one place, with :meth:`Layer.save_for_backward`; with ``training=False``
  (inference: ``predict``, ``evaluate``) it keeps nothing, so a large batch holds no activation
  beyond the layer being computed.
* ``backward(∂E/∂Y)`` (same shape as the forward output) reads what forward kept with
  :meth:`Layer.saved_for_backward` (a :class:`~xpcnn.errors.StateError` without a training forward
  before it), checks the gradient's shape with :meth:`Layer.check_gradient`, fills ``grads`` (same
  keys as ``params``) and returns ``∂E/∂X`` through :meth:`Layer.descend`, which applies the
  derivation's one-call gradient step ``P ← P - learning_rate · ∂E/∂P`` when a learning rate is
  passed (the rule of :class:`~xpcnn.optim.optimizers.SGD`, which it calls).
* ``output_shape(input_shape)``: the per-sample output shape. A layer whose output has its input's
  shape sets ``preserves_shape = True``; any other layer defines ``output_shape``, or the base class
  infers it by a forward pass on one zero sample (and says in one line when that fails).
* ``config()``: the constructor arguments that rebuild the layer (checkpoints store them as JSON).
* ``buffers``: state that is not trained but belongs to the layer (BatchNorm's running
  statistics). Like ``params`` they are replaced, never changed in place; checkpoints save
  them, ``to()`` moves them, ``fit``'s step guard restores them with the parameters, and a
  distributed start broadcasts them.
* ``uses_rng``: a layer that draws random numbers (Dropout) reads ``self.rng``, which
  :class:`~xpcnn.model.Sequential` points at the model's seeded generator before every
  training forward pass. In data-parallel training it also reads ``self.batch_rows``, this
  rank's rows ``(start, total)`` of the global batch, and draws what one process would have drawn
  for those rows (``None``: the input is the whole batch).

A :class:`ParameterLayer` draws its parameters in ``reset_parameters(rng)`` with
:meth:`ParameterLayer.glorot_uniform`, :meth:`ParameterLayer.zeros` and
:meth:`ParameterLayer.constant`, in its dtype, on its device. Constructors check every argument
with :mod:`xpcnn._checks`, so a bad one is a :class:`~xpcnn.errors.ConfigError` naming it.
Parameters are never changed in place: a step replaces the arrays in ``params``, so a reference
to the old ones is a free snapshot (``fit`` relies on it to undo a step whose loss is not finite).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from typing import Any, Iterator

from array_api_compat import device

from .. import backend
from ..errors import ConfigError, DeviceMismatchError, ShapeError, StateError, XpcnnDtypeError, format_shape
from .._checks import one_of
from ..optim.optimizers import SGD

Array = Any


class Layer:
    """Base class. Subclasses set ``input_shape`` (per sample, or ``None`` for any shape)."""

    input_shape: "tuple[int, ...] | None" = None
    #: True for a layer that draws from the model's generator in a training forward pass.
    uses_rng = False
    #: For a ``uses_rng`` layer in data-parallel training: ``(start, total)``, this rank's rows of the batch.
    batch_rows: "tuple[int, int] | None" = None
    #: True for a layer whose output has its input's shape (activations, Dropout, BatchNorm).
    preserves_shape = False

    def __init__(self) -> None:
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        #: Non-trained state (running statistics), saved, moved and restored with the parameters.
        self.buffers: dict[str, Array] = {}
        #: What backward needs from the last training forward (``None``: nothing kept).
        self._saved: "dict[str, Any] | None" = None

    # -- protocol -------------------------------------------------------------------------------
    def forward(self, x: Array, training: bool = True) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, output_gradient: Array, learning_rate: "float | None" = None) -> Array:  # pragma: no cover
        raise NotImplementedError

    def output_shape(self, input_shape: tuple) -> tuple:
        """Per-sample output shape for a per-sample input shape.

        ``input_shape`` itself when the class sets ``preserves_shape``; otherwise, for a layer that does
        not define this method, the shape a forward pass (``training=False``) gives on one zero sample,
        in the layer's namespace, dtype and device (remembered per input shape).
        """
        input_shape = tuple(input_shape)
        if self.preserves_shape:
            return input_shape
        known = self.__dict__.setdefault("_inferred_shapes", {})
        if input_shape not in known:
            known[input_shape] = _infer_output_shape(self, input_shape)
        return known[input_shape]

    def config(self) -> dict:
        """Constructor arguments that rebuild this layer (checkpoints store them)."""
        return {}

    def min_training_batch(self, input_shape: tuple) -> int:
        """The fewest samples of per-sample shape ``input_shape`` a training batch may hold (BatchNorm: 2 values
        per channel); ``fit`` checks every batch it will make against it before the first step."""
        return 1

    # -- helpers shared by every layer ----------------------------------------------------------
    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    def check_input(self, x: Array) -> Array:
        """Check ``x``'s per-sample shape, and its namespace, device and dtype against the parameters."""
        shape = tuple(getattr(x, "shape", ()))
        if not hasattr(x, "shape") or len(shape) == 0:
            raise ShapeError(f"{self!r}: expected a batch, an array of shape (N, ...), got {type(x).__name__} "
                             f"of shape {shape}")
        backend.check_array(x, self)  # the layer, formatted only in an error
        if 0 in shape[1:]:
            raise ShapeError(f"{self!r}: expected samples with at least one value on every axis, got shape {shape}")
        if self.input_shape is not None and shape[1:] != tuple(self.input_shape):
            raise ShapeError(
                f"{self!r}: expected input of shape {format_shape(self.input_shape)}, got {shape}"
            )
        for name, p in self.params.items():
            if type(x) is not type(p) or device(x) != device(p):
                raise DeviceMismatchError(
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

    def save_for_backward(self, training: bool, **saved: Any) -> None:
        """Keep ``saved`` for backward when ``training``; forget the last batch's otherwise."""
        self._saved = saved if training else None

    def saved_for_backward(self) -> "dict[str, Any]":
        """What the last training forward kept, or a :class:`StateError` if nothing was."""
        if self._saved is None:
            raise StateError(
                f"{self!r}: backward needs a forward(x, training=True) first; forward(x, training=False) "
                f"(predict, evaluate) keeps nothing for backward"
            )
        return self._saved

    def check_gradient(self, output_gradient: Array, expected: tuple) -> None:
        if tuple(output_gradient.shape) != tuple(expected):
            raise ShapeError(
                f"{self!r}: expected output gradient of shape {tuple(expected)}, got {tuple(output_gradient.shape)}"
            )

    def descend(self, input_gradient: Array, learning_rate: "float | None") -> Array:
        """The derivation's step ``P ← P - η ∂E/∂P`` when a learning rate is given (SGD's one rule)."""
        if learning_rate is not None:
            SGD(learning_rate).step([self])
        return input_gradient

    def to(self, device: "str | backend.Device", dtype: "str | None" = None) -> "Layer":
        """Move (and optionally cast) the parameters and buffers; returns ``self``."""
        dev = backend.get_device(device)
        for arrays in (self.params, self.buffers):
            for name, p in arrays.items():
                p = backend.to_device(p, dev)
                if dtype is not None:
                    p = dev.xp.astype(p, backend.as_dtype(dev.xp, dtype))
                arrays[name] = p
        self.grads = {}
        self._saved = None
        return self


class ParameterLayer(Layer):
    """A layer with trainable parameters drawn from a seeded host generator."""

    def __init__(self, dtype: str = "float32", device: "str | backend.Device" = "cpu", seed=None) -> None:
        super().__init__()
        self.dtype = one_of(type(self).__name__, "dtype", dtype, ("float32", "float64"))
        self._device = backend.get_device(device)
        self._seed = seed
        backend.new_rng(seed)  # a bad seed fails here, naming itself, before any parameter is drawn

    def reset_parameters(self, rng=None) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def place(self, device=None, dtype: "str | None" = None) -> "ParameterLayer":
        """Set where the *next* :meth:`reset_parameters` draws (nothing is moved or cast now)."""
        if device is not None:
            self._device = backend.get_device(device)
        if dtype is not None:
            self.dtype = one_of(type(self).__name__, "dtype", dtype, ("float32", "float64"))
        return self

    def glorot_uniform(self, rng, shape: tuple, fan_in: int, fan_out: int) -> Array:
        """Weights ``U(±√(6 / (fan_in + fan_out)))`` (Glorot and Bengio, 2010; Keras's default)."""
        _spend(self, shape)
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        return backend.uniform(rng, shape, bound, self.dtype, self._device)

    def zeros(self, shape: tuple) -> Array:
        """Biases start at zero (Keras's default)."""
        return self.constant(shape, 0.0)

    def constant(self, shape: tuple, value: float) -> Array:
        """An array of ``shape`` filled with ``value``, in the layer's dtype, on its device."""
        _spend(self, shape)
        return backend.to_device(backend.zeros(shape, self.dtype) + value, self._device)

    def to(self, device, dtype=None):
        super().to(device, dtype)
        self._device = backend.get_device(device)
        if dtype is not None:
            self.dtype = dtype
        return self


def _infer_output_shape(layer: Layer, input_shape: tuple) -> tuple:
    """The per-sample shape ``layer.forward`` gives on one zero sample of shape ``input_shape``."""
    like = next(iter(layer.params.values()), None)
    if like is None:
        sample = backend.zeros((1, *input_shape), "float32")
    else:
        xp = backend.namespace_of(like)
        sample = xp.zeros((1, *input_shape), dtype=like.dtype, device=device(like))
    try:
        out = layer.forward(sample, training=False)
        shape = tuple(int(n) for n in out.shape)
    except Exception as exc:  # a custom layer's forward may raise anything; say what to do instead
        raise ShapeError(f"{layer!r}: cannot tell its output shape for input {format_shape(input_shape)}: a "
                         f"forward pass on one zero sample raised {type(exc).__name__}: {exc}; define "
                         f"output_shape(input_shape), or set preserves_shape = True") from exc
    if len(shape) < 1 or shape[0] != 1:
        raise ShapeError(f"{layer!r}: forward on a batch of 1 gave shape {shape}; a layer keeps the batch axis "
                         f"first (define output_shape(input_shape) to say what it gives)")
    return shape[1:]


# -- a cap on parameter allocation, for layers built from untrusted descriptions ----------------

_BUDGET: "contextvars.ContextVar[list[int] | None]" = contextvars.ContextVar("xpcnn_parameter_budget", default=None)


@contextlib.contextmanager
def parameter_budget(values: int) -> Iterator[None]:
    """Layers built inside may draw at most ``values`` parameter values in all, else a ConfigError.

    A checkpoint's loader builds each layer within the number of values the file stores for it,
    so a configuration that claims a 10¹²-weight layer fails before allocating anything.
    """
    token = _BUDGET.set([int(values)])
    try:
        yield
    finally:
        _BUDGET.reset(token)


def _spend(layer: Layer, shape: tuple) -> None:
    budget = _BUDGET.get()
    if budget is None:
        return
    need = math.prod(shape)
    if need > budget[0]:
        raise ConfigError(f"{type(layer).__name__}: a parameter of shape {tuple(shape)} ({need} values) is more "
                          f"than the {budget[0]} values left for this layer")
    budget[0] -= need
