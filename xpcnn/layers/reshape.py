"""Reshape and Flatten: no parameters, the gradient is reshaped back.

    forward:  Y = reshape(X, (N, *output_shape))
    backward: ∂E/∂X = reshape(∂E/∂Y, (N, *input_shape))
"""

from __future__ import annotations

import math

from ..backend.namespaces import array_namespace
from .._checks import shape as check_shape
from ..errors import ShapeError
from .base import Layer


class Reshape(Layer):
    """``(N, *input_shape) -> (N, *output_shape)``; shapes are given without the batch axis."""

    def __init__(self, input_shape, output_shape):
        super().__init__()
        self.input_shape = check_shape("Reshape", "input_shape", input_shape)
        self._output_shape = check_shape("Reshape", "output_shape", output_shape)
        if math.prod(self.input_shape) != math.prod(self._output_shape):
            raise ShapeError(
                f"Reshape: cannot reshape {self.input_shape} ({math.prod(self.input_shape)} values) "
                f"to {self._output_shape} ({math.prod(self._output_shape)} values)"
            )

    def config(self):
        return {"input_shape": list(self.input_shape), "output_shape": list(self._output_shape)}

    def output_shape(self, input_shape):
        return self._output_shape

    def forward(self, x, training=True):
        x = self.check_input(x)
        self.save_for_backward(training, input_shape=tuple(x.shape))
        xp = array_namespace(x)
        return xp.reshape(x, (x.shape[0],) + self._output_shape)

    def backward(self, output_gradient, learning_rate=None):
        shape = self.saved_for_backward()["input_shape"]
        xp = array_namespace(output_gradient)
        self.check_gradient(output_gradient, (shape[0],) + self._output_shape)
        return xp.reshape(output_gradient, shape)


class Flatten(Layer):
    """``(N, *shape) -> (N, prod(shape))`` for any per-sample shape."""

    def output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def forward(self, x, training=True):
        x = self.check_input(x)
        self.save_for_backward(training, input_shape=tuple(x.shape))
        xp = array_namespace(x)
        return xp.reshape(x, (x.shape[0], math.prod(x.shape[1:])))  # not -1: N may be 0

    def backward(self, output_gradient, learning_rate=None):
        shape = self.saved_for_backward()["input_shape"]
        xp = array_namespace(output_gradient)
        self.check_gradient(output_gradient, (shape[0], math.prod(shape[1:])))
        return xp.reshape(output_gradient, shape)
