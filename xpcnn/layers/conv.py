"""Convolutional layer: valid cross-correlation, exactly as derived, for a whole batch.

Forward, for ``X: (N, C, H, W)`` (``j = 1..C`` input channels) and ``K: (D, C, k, k)``::

    Y_i = B_i + Σ_j X_j ⋆ K_ij                      i = 1..D,  Y: (N, D, Ho, Wo)

with ``Ho = H + 2·padding - k + 1`` (likewise ``Wo``). Backward, from ``∂E/∂Y: (N, D, Ho, Wo)``::

    ∂E/∂K_ij = X_j ⋆ ∂E/∂Y_i                         summed over the batch
    ∂E/∂B_i  = ∂E/∂Y_i                               summed over the batch (and over Ho, Wo
                                                     for per-channel biases)
    ∂E/∂X_j  = Σ_i ∂E/∂Y_i ∗full K_ij                (then cropped by the padding)

Biases are *untied* by default, as in the derivation (``B_i`` has the shape of ``Y_i``, so
``biases: (D, Ho, Wo)``); ``bias="tied"`` gives one bias per output channel (``(D,)``), as in
PyTorch and Keras. The three products are computed by a convolution engine
(:mod:`xpcnn.engines`): ``"signal"`` (scipy / cupyx correlation) or ``"gemm"`` (im2col).
"""

from __future__ import annotations

from array_api_compat import array_namespace

from .. import backend, validation
from ..engines import get_engine, pad2d
from ..errors import ConfigError, ShapeError
from .base import ParameterLayer


class Convolutional(ParameterLayer):
    """``(N, C, H, W) -> (N, depth, Ho, Wo)`` with ``depth`` kernels of ``kernel_size × kernel_size``."""

    def __init__(
        self,
        input_shape,
        kernel_size: int,
        depth: int,
        *,
        padding: "int | str" = 0,
        bias: str = "untied",
        engine: str = "auto",
        dtype: str = "float32",
        device="cpu",
        seed=None,
    ):
        super().__init__(dtype, device, seed)
        self.input_shape = validation.shape("Convolutional", "input_shape (C, H, W)", input_shape, ndim=3)
        self.kernel_size = validation.integer("Convolutional", "kernel_size", kernel_size, minimum=1)
        self.depth = validation.integer("Convolutional", "depth", depth, minimum=1)
        if isinstance(padding, str):
            padding = validation.one_of("Convolutional", "padding", padding, ("valid", "same"))
            if padding == "same" and self.kernel_size % 2 == 0:
                raise ConfigError(f"Convolutional: padding='same' needs an odd kernel_size, got {self.kernel_size}")
            padding = 0 if padding == "valid" else (self.kernel_size - 1) // 2
        self.padding = validation.integer("Convolutional", "padding", padding, minimum=0)
        self.bias = validation.one_of("Convolutional", "bias", bias, ("untied", "tied"))
        self.engine_name = engine
        try:
            self.engine = get_engine(engine)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"Convolutional: engine: {exc}") from None
        c, h, w = self.input_shape
        self.out_hw = (h + 2 * self.padding - self.kernel_size + 1, w + 2 * self.padding - self.kernel_size + 1)
        if min(self.out_hw) < 1:
            raise ShapeError(
                f"Convolutional: kernel_size {self.kernel_size} is larger than the padded input {self.input_shape}"
            )
        #: Set to False for a first layer: nobody needs ∂E/∂X there, and backward then returns None.
        self.compute_input_gradient = True
        self.reset_parameters(seed)

    def config(self):
        return {
            "input_shape": list(self.input_shape),
            "kernel_size": self.kernel_size,
            "depth": self.depth,
            "padding": self.padding,
            "bias": self.bias,
            "engine": self.engine_name,
        }

    def output_shape(self, input_shape):
        return (self.depth, *self.out_hw)

    def reset_parameters(self, rng=None) -> None:
        rng = backend.new_rng(rng)
        c = self.input_shape[0]
        k2 = self.kernel_size * self.kernel_size
        bias_shape = (self.depth, *self.out_hw) if self.bias == "untied" else (self.depth,)
        self.params = {
            "kernels": self._glorot_uniform(rng, (self.depth, c, self.kernel_size, self.kernel_size), c * k2, self.depth * k2),
            "biases": self._zeros(bias_shape),
        }
        self.grads = {}

    @property
    def kernels(self):
        return self.params["kernels"]

    @property
    def biases(self):
        return self.params["biases"]

    def _bias_view(self, xp):
        b = self.biases
        return b if self.bias == "untied" else xp.reshape(b, (self.depth, 1, 1))

    def forward(self, x, training=True):
        x = self._check_input(x)
        xp = array_namespace(x)
        x_padded = pad2d(x, self.padding)
        self._keep(training, padded_input=x_padded)
        # Y_i = B_i + Σ_j X_j ⋆ K_ij   (the engine returns a fresh array: add B_i in place)
        y = self.engine.forward(x_padded, self.kernels)
        y += self._bias_view(xp)
        return y

    def backward(self, output_gradient, learning_rate=None):
        x_padded = self._recall()["padded_input"]
        self._check_gradient(output_gradient, (x_padded.shape[0], self.depth, *self.out_hw))
        xp = array_namespace(output_gradient)
        # ∂E/∂K_ij = X_j ⋆ ∂E/∂Y_i
        self.grads["kernels"] = self.engine.kernel_gradient(x_padded, output_gradient)
        # ∂E/∂B_i = ∂E/∂Y_i
        axes = (0,) if self.bias == "untied" else (0, 2, 3)
        self.grads["biases"] = xp.sum(output_gradient, axis=axes)
        input_gradient = None
        if self.compute_input_gradient:
            # ∂E/∂X_j = Σ_i ∂E/∂Y_i ∗full K_ij
            input_gradient = self.engine.input_gradient(output_gradient, self.kernels)
            p = self.padding
            if p:
                input_gradient = input_gradient[:, :, p:-p, p:-p]
        return self._descend(input_gradient, learning_rate)

