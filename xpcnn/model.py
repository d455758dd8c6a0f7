"""Sequential model: a list of layers, trained with mini-batch gradient descent.

    forward:   Y = f_L(... f_2(f_1(X)))
    backward:  ∂E/∂X_l = backward_l(∂E/∂X_{l+1}),  starting from ∂E/∂Y = loss_prime(Y*, Y)
    step:      optimizer.step(layers)   (every layer's params from its grads)

Inputs from any namespace (NumPy arrays for a CUDA model, say) are moved to the model's
device once per batch and cast to its dtype; outputs stay in the model's namespace (use
:func:`xpcnn.to_numpy` to bring them home).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

from array_api_compat import array_namespace, is_numpy_array

from . import backend
from .errors import ShapeError, TrainingError, format_shape
from .layers.base import Layer, ParameterLayer
from .losses import get_loss
from .optimizers import SGD, Optimizer


class Sequential:
    """``Sequential([Convolutional(...), Sigmoid(), ...], seed=0)``.

    ``seed`` re-draws every layer's parameters from one generator, in order, so a seed gives
    the same weights on every device. The model's device and dtype are its parameters'.
    """

    def __init__(self, layers: "list[Layer]", *, seed=None, device=None, dtype: "str | None" = None):
        self.layers = list(layers)
        if not self.layers:
            raise ValueError("Sequential: needs at least one layer")
        self.rng = backend.new_rng(seed)
        if seed is not None:
            init_rng = backend.new_rng(seed)
            for layer in self.layers:
                if isinstance(layer, ParameterLayer):
                    layer.reset_parameters(init_rng)
        self._check_shapes()
        first = self.layers[0]
        if hasattr(first, "compute_input_gradient"):
            first.compute_input_gradient = False
        params = [p for layer in self.layers for p in layer.params.values()]
        self.device = backend.device_of(*params) if params else backend.CPU
        self.dtype = next((layer.dtype for layer in self.layers if isinstance(layer, ParameterLayer)), "float32")
        self.optimizer: "Optimizer | None" = None
        self.epoch = 0
        self.history: dict[str, list] = {}
        if device is not None or dtype is not None:
            self.to(device or self.device, dtype)

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
        return sum(math.prod(p.shape) for layer in self.layers for p in layer.params.values())

    # -- data in -----------------------------------------------------------------------------
    def _prepare(self, x):
        """Move ``x`` to the model's device and cast floating or integer data to its dtype."""
        x = backend.to_device(x, self.device)
        xp = self.xp
        dtype = backend.as_dtype(xp, self.dtype)
        if x.dtype != dtype:
            x = xp.astype(x, dtype)
        return x

    def _take(self, x, idx):
        """Rows ``idx`` (host indices) of ``x``, moved: NumPy inputs are sliced on the host first."""
        if is_numpy_array(x):
            return self._prepare(x[idx])
        xp = array_namespace(x)
        return self._prepare(xp.take(x, backend.to_device(idx, backend.Device.of(x)), axis=0))

    def _check_batch(self, x, what: str = "input") -> None:
        if self.input_shape is not None and tuple(x.shape[1:]) != tuple(self.input_shape):
            raise ShapeError(
                f"Sequential: expected {what} of shape {format_shape(self.input_shape)} "
                f"for {self.layers[0]!r}, got {tuple(x.shape)}"
            )

    def _check_labels(self, x, y) -> None:
        if y.shape[0] != x.shape[0]:
            raise ShapeError(f"Sequential: {x.shape[0]} inputs but {y.shape[0]} labels")
        if self.output_shape is not None and tuple(y.shape[1:]) != tuple(self.output_shape):
            raise ShapeError(
                f"Sequential: labels of shape {tuple(y.shape)} do not match the model's output "
                f"{format_shape(self.output_shape)}"
            )

    # -- forward and backward ----------------------------------------------------------------
    def forward(self, x, training: bool = True):
        """``(N, *input_shape) -> (N, *output_shape)`` on the model's device (no batching).

        ``training=False`` (inference) keeps nothing for backward in any layer.
        """
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, output_gradient):
        """Back-propagate ``∂E/∂Y`` through every layer, filling their ``grads``."""
        for layer in reversed(self.layers):
            output_gradient = layer.backward(output_gradient)
        return output_gradient

    def predict(self, x, batch_size: int = 256):
        """Outputs for ``x`` (any namespace), computed in batches, in the model's namespace."""
        self._check_batch(x)
        outs = [self.forward(self._prepare(x[lo:hi, ...]), training=False) for lo, hi in _batches(x.shape[0], batch_size)]
        return self.xp.concat(outs, axis=0) if len(outs) != 1 else outs[0]

    def train_step(self, x, y, loss_fn: Callable, loss_prime: Callable, optimizer: Optimizer):
        """One forward, backward and update on a prepared batch; returns ``(loss, output)``."""
        out = self.forward(x)
        loss = loss_fn(y, out)
        self.backward(loss_prime(y, out))
        optimizer.step(self.layers)
        return loss, out

    # -- training ----------------------------------------------------------------------------
    def fit(
        self,
        x,
        y,
        *,
        loss: "str | tuple" = "binary_cross_entropy",
        epochs: int = 1,
        batch_size: int = 32,
        learning_rate: float = 0.1,
        optimizer: "Optimizer | None" = None,
        shuffle: bool = True,
        seed=None,
        validation_data: "tuple | None" = None,
        on_batch: "Callable[[dict], Any] | None" = None,
        on_epoch: "Callable[[dict], Any] | None" = None,
    ) -> dict:
        """Train for ``epochs`` more epochs; returns the per-epoch history (also ``self.history``).

        ``optimizer`` defaults to the one from an earlier ``fit`` or to ``SGD(learning_rate)``.
        ``seed`` re-seeds the shuffling generator. ``on_batch`` receives ``{epoch, batch,
        batches, size, loss, correct}`` (``loss`` and the batch's number of right answers
        ``correct`` are 0-d arrays: converting them synchronises a GPU);
        ``on_epoch`` receives the epoch's logs and may return ``True`` to stop.
        """
        if batch_size < 1 or epochs < 0:
            raise ValueError(f"fit: batch_size must be >= 1 and epochs >= 0, got {batch_size} and {epochs}")
        self._check_batch(x)
        self._check_labels(x, y)
        if validation_data is not None:
            self._check_batch(validation_data[0], "validation input")
            self._check_labels(*validation_data)
        loss_fn, loss_prime = get_loss(loss)
        if optimizer is not None:
            self.optimizer = optimizer.to(self.device)
        elif self.optimizer is None:
            self.optimizer = SGD(learning_rate)
        if seed is not None:
            self.rng = backend.new_rng(seed)
        n = x.shape[0]
        batches = math.ceil(n / batch_size)
        for _ in range(epochs):
            start = time.perf_counter()
            order = backend.permutation(self.rng, n) if shuffle else None
            total_loss, correct = 0.0, 0.0
            for b, (lo, hi) in enumerate(_batches(n, batch_size)):
                if order is None:
                    xb, yb = self._prepare(x[lo:hi, ...]), self._prepare(y[lo:hi, ...])
                else:
                    xb, yb = self._take(x, order[lo:hi]), self._take(y, order[lo:hi])
                batch_loss, out = self.train_step(xb, yb, loss_fn, loss_prime, self.optimizer)
                total_loss = total_loss + batch_loss * (hi - lo)
                batch_correct = _correct(self.xp, yb, out)
                correct = correct + batch_correct
                if on_batch is not None:
                    on_batch({"epoch": self.epoch + 1, "batch": b + 1, "batches": batches,
                              "size": hi - lo, "loss": batch_loss, "correct": batch_correct})
            self.epoch += 1
            logs = {"epoch": self.epoch, "loss": float(total_loss) / n, "accuracy": float(correct) / n}
            if not math.isfinite(logs["loss"]):
                raise TrainingError(
                    f"epoch {self.epoch}: the training loss is {logs['loss']}; "
                    f"lower the learning rate or check the inputs for NaN/inf"
                )
            logs["seconds"] = time.perf_counter() - start
            logs["samples_per_s"] = n / logs["seconds"] if logs["seconds"] > 0 else float("inf")
            if validation_data is not None:
                val = self.evaluate(*validation_data, loss=(loss_fn, loss_prime))
                logs["val_loss"], logs["val_accuracy"] = val["loss"], val["accuracy"]
            for key, value in logs.items():
                self.history.setdefault(key, []).append(value)
            if on_epoch is not None and on_epoch(logs):
                break
        return self.history

    def evaluate(self, x, y, *, loss: "str | tuple" = "binary_cross_entropy", batch_size: int = 256) -> dict:
        """``{"loss", "accuracy"}`` over ``(x, y)``, as Python floats."""
        self._check_batch(x)
        self._check_labels(x, y)
        loss_fn, _ = get_loss(loss)
        n = x.shape[0]
        total_loss, correct = 0.0, 0.0
        for lo, hi in _batches(n, batch_size):
            yb = self._prepare(y[lo:hi, ...])
            out = self.forward(self._prepare(x[lo:hi, ...]), training=False)
            total_loss = total_loss + loss_fn(yb, out) * yb.shape[0]
            correct = correct + _correct(self.xp, yb, out)
        return {"loss": float(total_loss) / n, "accuracy": float(correct) / n}


def _batches(n: int, batch_size: int):
    """``(lo, hi)`` bounds of consecutive batches; ``hi`` never passes ``n`` (strict slicing)."""
    return [(lo, min(n, lo + batch_size)) for lo in range(0, n, batch_size)]


def _correct(xp, y_true, y_pred):
    """Number of right answers in a batch (0-d array): argmax for several outputs, 0.5 for one."""
    if y_pred.ndim == 2 and y_pred.shape[1] > 1:
        hits = xp.argmax(y_pred, axis=1) == xp.argmax(y_true, axis=1)
    else:
        hits = (y_pred >= 0.5) == (y_true >= 0.5)
        hits = xp.all(xp.reshape(hits, (hits.shape[0], -1)), axis=1)
    return xp.sum(xp.astype(hits, y_pred.dtype))


def predict_classes(model: Sequential, x, batch_size: int = 256):
    """Class indices ``(N,)`` in the model's namespace (argmax, or ``>= 0.5`` for one output)."""
    xp = model.xp
    out = model.predict(x, batch_size)
    if out.ndim == 2 and out.shape[1] > 1:
        return xp.argmax(out, axis=1)
    return xp.astype(xp.reshape(out, (out.shape[0],)) >= 0.5, xp.int64)
