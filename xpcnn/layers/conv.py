"""Convolutional layer: valid cross-correlation, exactly as derived, for a whole batch.

Forward, for ``X: (N, C, H, W)`` (``j = 1..C`` input channels) and ``K: (D, C, k, k)``::

    Y_i = B_i + Σ_j X_j ⋆ K_ij                      i = 1..D,  Y: (N, D, Ho, Wo)

with ``Ho = H + 2·padding - k + 1`` (likewise ``Wo``). Backward, from ``∂E/∂Y: (N, D, Ho, Wo)``::

    ∂E/∂K_ij = X_j ⋆ ∂E/∂Y_i                         summed over the batch
    ∂E/∂B_i  = ∂E/∂Y_i                               summed over the batch (and over Ho, Wo
                                                     for per-channel biases)
    ∂E/∂X_j  = Σ_i ∂E/∂Y_i ∗full K_ij                (then cropped by the padding)

Strided (``stride = s``): the forward pass is the valid correlation sampled every ``s``-th
position, ``Y_i[u, v] = B_i[u, v] + Σ_j (X_j ⋆ K_ij)[s·u, s·v]``, so
``Ho = ⌊(H + 2·padding - k) / s⌋ + 1``. Each ``Y_i[u, v]`` still depends on ``X_j`` through
``K_ij`` alone, at the offsets ``(s·u + p, s·v + q)``; collecting those terms gives, with
``dil(∂E/∂Y_i)`` the gradient spread back to the sampled positions (``s - 1`` zeros between
neighbours, ``s(Ho - 1) + 1`` rows)::

    ∂E/∂K_ij[p, q] = Σ_{u,v} ∂E/∂Y_i[u, v] · X_j[s·u + p, s·v + q]  =  (X_j ⋆ dil(∂E/∂Y_i))[p, q]
    ∂E/∂X_j        = Σ_i dil(∂E/∂Y_i) ∗full K_ij     (s(Ho-1) + k rows; the rows after them,
                                                     which no window reached, get zeros)

Biases are *untied* by default, as in the derivation (``B_i`` has the shape of ``Y_i``, so
``biases: (D, Ho, Wo)``); ``bias="tied"`` gives one bias per output channel (``(D,)``), as in
PyTorch and Keras; ``bias="none"`` gives none (before a BatchNorm, whose ``β`` does its work:
a per-channel bias would be removed with the mean, and its gradient would be zero). The three
products are computed by a convolution engine (:mod:`xpcnn.engines`): ``"gemm"`` (im2col),
``"signal"`` (FFTs), ``"signal-direct"`` (scipy / cupyx direct correlation), or ``"auto"``, which
times them on the layer's shapes and keeps ``gemm`` unless another is over 1.25× faster
(:mod:`xpcnn.engines.auto`); :attr:`Convolutional.chosen_engine` names the one the last forward
pass used.
"""

from __future__ import annotations

from ..backend.namespaces import array_namespace
from .. import backend
from .._checks import integer, one_of, shape as check_shape
from ..engines import check_engine_name, engine_for, output_size, pad2d
from ..errors import ConfigError, ShapeError, check_parameter_memory
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
        stride: int = 1,
        bias: str = "untied",
        engine: str = "auto",
        dtype: str = "float32",
        device="cpu",
        seed=None,
    ):
        super().__init__(dtype, device, seed)
        self.input_shape = check_shape("Convolutional", "input_shape (C, H, W)", input_shape, ndim=3)
        self.kernel_size = integer("Convolutional", "kernel_size", kernel_size, minimum=1)
        self.depth = integer("Convolutional", "depth", depth, minimum=1)
        if isinstance(padding, str):
            padding = one_of("Convolutional", "padding", padding, ("valid", "same"))
            if padding == "same" and self.kernel_size % 2 == 0:
                raise ConfigError(f"Convolutional: padding='same' needs an odd kernel_size, got {self.kernel_size}")
            padding = 0 if padding == "valid" else (self.kernel_size - 1) // 2
        self.padding = integer("Convolutional", "padding", padding, minimum=0)
        self.stride = integer("Convolutional", "stride", stride, minimum=1)
        self.bias = one_of("Convolutional", "bias", bias, ("untied", "tied", "none"))
        #: The engine asked for (``"auto"``, ``"gemm"``, ...) and the one the last forward pass used.
        self.engine_name = check_engine_name(engine)
        self.chosen_engine: "str | None" = None
        #: The engine of the last training and of the last inference forward pass (``auto`` may differ).
        self.chosen_engines: "dict[str, str]" = {}
        c, h, w = self.input_shape
        k, p, s = self.kernel_size, self.padding, self.stride
        self.out_hw = (output_size(h + 2 * p, k, s), output_size(w + 2 * p, k, s))
        if min(h, w) + 2 * p < k:
            raise ShapeError(
                f"Convolutional: kernel_size {self.kernel_size} is larger than the padded input {self.input_shape}"
            )
        #: Set to False for a first layer: nobody needs ∂E/∂X there, and backward then returns None.
        self.compute_input_gradient = True
        check_parameter_memory("Convolutional", [(self.depth, c * k * k + (h + 2 * p) * (w + 2 * p))], dtype, "sizes")
        self.reset_parameters(seed)

    def config(self):
        return {
            "input_shape": list(self.input_shape),
            "kernel_size": self.kernel_size,
            "depth": self.depth,
            "padding": self.padding,
            "stride": self.stride,
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
            "kernels": self.glorot_uniform(rng, (self.depth, c, self.kernel_size, self.kernel_size),
                                            c * k2, self.depth * k2),
        }
        if self.bias != "none":
            self.params["biases"] = self.zeros(bias_shape)
        self.grads = {}

    @property
    def kernels(self):
        return self.params["kernels"]

    @property
    def biases(self):
        return self.params["biases"]

    def __repr__(self) -> str:
        text = super().__repr__()
        if self.chosen_engine is not None and self.chosen_engine != self.engine_name:
            text = f"{text[:-1]} -> {self.chosen_engine!r})"  # engine='auto' -> 'gemm'
        return text

    def forward(self, x, training=True):
        x = self.check_input(x)
        x_padded = pad2d(x, self.padding)
        engine = engine_for(self.engine_name, x_padded, self.kernels, self.stride, training,
                            self.compute_input_gradient)
        self.chosen_engine = self.chosen_engines["train" if training else "infer"] = engine.name
        # Y_i = B_i + Σ_j X_j ⋆ K_ij   (the engine returns a fresh array: add untied B_i in place;
        # a tied B_i goes to the engine, which may fold it into its products)
        if self.bias == "tied":
            y, reusable = engine.biased_forward(x_padded, self.kernels, self.biases, self.stride, keep=training)
        else:
            y, reusable = engine.forward(x_padded, self.kernels, self.stride, keep=training)
            if self.bias == "untied":
                y += self.biases  # (D, Ho, Wo) against (N, D, Ho, Wo)
        self.save_for_backward(training, padded_input=x_padded, engine=engine, reusable=reusable)
        return y

    def backward(self, output_gradient, learning_rate=None):
        saved = self.saved_for_backward()
        x_padded = saved["padded_input"]
        self.check_gradient(output_gradient, (x_padded.shape[0], self.depth, *self.out_hw))
        xp = array_namespace(output_gradient)
        # ∂E/∂K_ij = X_j ⋆ dil(∂E/∂Y_i)   and   ∂E/∂X_j = Σ_i dil(∂E/∂Y_i) ∗full K_ij
        grad_k, input_gradient = saved["engine"].backward(
            x_padded, self.kernels, output_gradient, self.stride, saved["reusable"], self.compute_input_gradient)
        self.grads["kernels"] = grad_k
        # ∂E/∂B_i = ∂E/∂Y_i
        if self.bias != "none":
            axes = (0,) if self.bias == "untied" else (0, 2, 3)
            self.grads["biases"] = xp.sum(output_gradient, axis=axes)
        p = self.padding
        if input_gradient is not None and p:
            input_gradient = input_gradient[:, :, p:-p, p:-p]
        return self.descend(input_gradient, learning_rate)

    def to(self, device, dtype=None):
        super().to(device, dtype)
        self.chosen_engine, self.chosen_engines = None, {}  # the next forward chooses again, for the new device
        return self
