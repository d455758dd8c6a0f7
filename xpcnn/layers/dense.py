"""Dense (fully connected) layer.

Forward, for a batch of row vectors ``X`` of shape ``(N, in)``::

    Y = X Wᵀ + b                      W: (out, in), b: (out,), Y: (N, out)

Backward, from ``∂E/∂Y`` of shape ``(N, out)``::

    ∂E/∂W = (∂E/∂Y)ᵀ X               (out, in)   summed over the batch by the product
    ∂E/∂b = Σ_n ∂E/∂Y                 (out,)
    ∂E/∂X = (∂E/∂Y) W                 (N, in)

(The derivation writes one sample as a column vector, ``Y = W X + B``; stacking samples as
rows gives the same equations transposed.)
"""

from __future__ import annotations

from ..backend.namespaces import array_namespace
from .. import backend
from .._checks import integer
from ..errors import check_parameter_memory
from .base import ParameterLayer


class Dense(ParameterLayer):
    """``(N, input_size) -> (N, output_size)``. Glorot-uniform weights and zero biases, as in Keras."""

    def __init__(self, input_size: int, output_size: int, *, dtype: str = "float32", device="cpu", seed=None):
        super().__init__(dtype, device, seed)
        self.input_size = integer("Dense", "input_size", input_size, minimum=1)
        self.output_size = integer("Dense", "output_size", output_size, minimum=1)
        self.input_shape = (self.input_size,)
        check_parameter_memory("Dense", [(self.output_size, self.input_size + 1)], dtype, "input_size or output_size")
        self.reset_parameters(seed)

    def config(self) -> dict:
        return {"input_size": self.input_size, "output_size": self.output_size}

    def output_shape(self, input_shape):
        return (self.output_size,)

    def reset_parameters(self, rng=None) -> None:
        rng = backend.new_rng(rng)
        self.params = {
            "weights": self.glorot_uniform(rng, (self.output_size, self.input_size),
                                            self.input_size, self.output_size),
            "bias": self.zeros((self.output_size,)),
        }
        self.grads = {}

    @property
    def weights(self):
        return self.params["weights"]

    @property
    def bias(self):
        return self.params["bias"]

    def forward(self, x, training=True):
        x = self.check_input(x)
        self.save_for_backward(training, input=x)
        xp = array_namespace(x)
        y = xp.matmul(x, xp.matrix_transpose(self.weights))
        y += self.bias
        return y

    def backward(self, output_gradient, learning_rate=None):
        x = self.saved_for_backward()["input"]
        self.check_gradient(output_gradient, (x.shape[0], self.output_size))
        xp = array_namespace(output_gradient)
        if x.shape[0] == 1:
            # One sample: the outer product ∂E/∂Y Xᵀ of the derivation, as a broadcast product
            # (a matmul with an inner dimension of 1 is far slower in some BLAS builds).
            self.grads["weights"] = xp.matrix_transpose(output_gradient) * x
        else:
            self.grads["weights"] = xp.matmul(xp.matrix_transpose(output_gradient), x)
        self.grads["bias"] = xp.sum(output_gradient, axis=0)
        input_gradient = xp.matmul(output_gradient, self.weights)
        return self.descend(input_gradient, learning_rate)
