"""Layers by name: the classes a checkpoint may rebuild, the built-in ones and yours.

A checkpoint stores each layer as ``{"class": name, "config": layer.config()}`` with its arrays,
and rebuilds it by looking ``name`` up here; nothing outside this table is ever instantiated from
a file. :func:`register_layer` adds a class of your own, as Keras's
``register_keras_serializable`` does::

    @xpcnn.register_layer
    class Scale(xpcnn.Layer):
        ...

A registered class is rebuilt as ``cls(**config)``, or ``cls(**config, dtype=..., seed=0)`` for a
:class:`~xpcnn.layers.base.ParameterLayer`, whose parameters and buffers the file then restores.
"""

from __future__ import annotations

from ..errors import ConfigError, ConfigTypeError
from .activations import ReLU, Sigmoid, Softmax, Tanh
from .base import Layer
from .batchnorm import BatchNorm1D, BatchNorm2D
from .conv import Convolutional
from .dense import Dense
from .dropout import Dropout
from .pooling import AvgPool2D, GlobalAveragePool2D, MaxPool2D
from .reshape import Flatten, Reshape

BUILT_IN: "dict[str, type[Layer]]" = {
    cls.__name__: cls for cls in (Convolutional, Dense, MaxPool2D, Reshape, Flatten, Sigmoid, Tanh, ReLU, Softmax,
                                  BatchNorm2D, BatchNorm1D, Dropout, AvgPool2D, GlobalAveragePool2D)
}

#: Every class a checkpoint may name (the built-in layers, then the registered ones).
LAYERS: "dict[str, type[Layer]]" = dict(BUILT_IN)


def _where(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register_layer(cls: "type[Layer] | None" = None, *, name: "str | None" = None):
    """Let checkpoints save and load the layer class ``cls`` under ``name`` (default: its class name).

    Use it as a decorator, ``@register_layer`` or ``@register_layer(name="mypackage.Scale")``; it
    returns the class unchanged. Registering the same class again (a re-run notebook cell, a
    reloaded module) replaces the entry; another class under a taken name is refused in one line.
    """
    if cls is None:
        return lambda c: register_layer(c, name=name)
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise ConfigTypeError(f"register_layer: expected a subclass of xpcnn.Layer, got {cls!r}")
    if name is None:
        name = cls.__name__
    if not isinstance(name, str) or not name.strip():
        raise ConfigTypeError(f"register_layer: name must be a non-empty string, got {name!r}")
    taken = LAYERS.get(name)
    if taken is not None and taken is not cls:
        same = _where(taken) == _where(cls) and name not in BUILT_IN
        if not same:
            raise ConfigError(f"register_layer: the name {name!r} already belongs to {_where(taken)}; register "
                              f"{_where(cls)} under another, e.g. @register_layer(name=\"{cls.__module__}."
                              f"{cls.__qualname__}\")")
    LAYERS[name] = cls
    return cls


def layer_class(name: str) -> "type[Layer] | None":
    """The class registered under ``name``, or ``None``."""
    return LAYERS.get(name) if isinstance(name, str) else None


def registered_name(layer: Layer) -> "str | None":
    """The name ``type(layer)`` is registered under (its exact class: a subclass registers itself), or ``None``."""
    cls = type(layer)
    for name, known in LAYERS.items():
        if known is cls:
            return name
    return None
