"""Ready-made networks by name, each with the loss it is trained with.

``seed``     the derivation's network (MNIST 0 vs 1), sigmoid outputs and binary cross-entropy::

    (N, 1, 28, 28) -> Conv 5×3×3 -> Sigmoid -> Reshape (N, 3380) -> Dense 100 -> Sigmoid
                   -> Dense K -> Sigmoid                                            (N, K)

``convnet``  a deeper network for ten classes, softmax outputs and categorical cross-entropy::

    (N, 1, 28, 28) -> [Conv 32×3×3 same, tied -> MaxPool 2 -> ReLU] -> (N, 32, 14, 14)
                   -> [Conv 64×3×3 same, tied -> MaxPool 2 -> ReLU] -> (N, 64, 7, 7)
                   -> Flatten -> Dense 128 -> ReLU -> Dense K -> Softmax             (N, K)

``convnet-bn``  Conv-BatchNorm-MaxPool-ReLU blocks and dropout, for Fashion-MNIST (≥ 93% in the README)::

    (N, 1, 28, 28) -> [Conv 32×3×3 same, no bias -> BatchNorm -> MaxPool 2 -> ReLU] -> (N, 32, 14, 14)
                   -> [Conv 64×3×3 same, no bias -> BatchNorm -> MaxPool 2 -> ReLU] -> (N, 64, 7, 7)
                   -> Flatten -> Dropout 0.25 -> Dense 128 -> ReLU -> Dropout 0.25
                   -> Dense K -> Softmax                                             (N, K)

Each block pools before its ReLU, the reverse of the usual ``Conv -> ReLU -> MaxPool``, and
computes the same network exactly: ReLU is monotone, so ``max(relu(a), relu(b)) =
relu(max(a, b))``, and both orders send each window's gradient to the same element (the
window's first maximum, when it is positive; nowhere, when it is not). Both are exact
operations, so even the rounding is the same (``tests/test_zoo.py`` checks parameters after
training steps, bit for bit). The ReLU then runs on a quarter of the values, which makes
whole convnet steps faster (``docs/performance.md``, "The zoo's network choices").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .errors import ConfigError
from .layers import BatchNorm2D, Convolutional, Dense, Dropout, Flatten, MaxPool2D, ReLU, Reshape, Sigmoid, Softmax
from .layers.base import Layer
from .model import Sequential
from ._checks import integer, shape


def seed_layers(input_shape: tuple, num_classes: int) -> "list[Layer]":
    """The derivation's layers: one valid convolution with untied biases, two dense layers."""
    c, h, w = input_shape
    conv = Convolutional((c, h, w), kernel_size=3, depth=5)
    flat = 5 * conv.out_hw[0] * conv.out_hw[1]
    return [
        conv, Sigmoid(),
        Reshape((5, *conv.out_hw), (flat,)),
        Dense(flat, 100), Sigmoid(),
        Dense(100, num_classes), Sigmoid(),
    ]


def convnet_layers(input_shape: tuple, num_classes: int, widths: tuple = (32, 64), hidden: int = 128) -> "list[Layer]":
    """Two ``Conv 3×3 same -> MaxPool 2 -> ReLU`` blocks, then ``Dense -> ReLU -> Dense -> Softmax``."""
    shape = tuple(input_shape)
    layers: "list[Layer]" = []
    for width in widths:
        conv = Convolutional(shape, kernel_size=3, depth=width, padding="same", bias="tied")
        pool = MaxPool2D(2)
        layers += [conv, pool, ReLU()]  # pool first: the same network (see the module), a quarter of the ReLU's work
        shape = pool.output_shape(conv.output_shape(shape))
    flat = shape[0] * shape[1] * shape[2]
    layers += [Flatten(), Dense(flat, hidden), ReLU(), Dense(hidden, num_classes), Softmax()]
    return layers


def convnet_bn_layers(input_shape: tuple, num_classes: int, widths: tuple = (32, 64), hidden: int = 128,
                      dropout: float = 0.25) -> "list[Layer]":
    """``Conv 3×3 same -> BatchNorm -> MaxPool 2 -> ReLU`` blocks, then dropout around ``Dense -> ReLU``.

    The convolutions have no bias: BatchNorm's ``β`` does its work (a per-channel bias would be
    removed with the batch mean, and its gradient would be zero).
    """
    shape = tuple(input_shape)
    layers: "list[Layer]" = []
    for width in widths:
        conv = Convolutional(shape, kernel_size=3, depth=width, padding="same", bias="none")
        pool = MaxPool2D(2)
        layers += [conv, BatchNorm2D(width), pool, ReLU()]
        shape = pool.output_shape(conv.output_shape(shape))
    flat = shape[0] * shape[1] * shape[2]
    layers += [Flatten(), Dropout(dropout), Dense(flat, hidden), ReLU(), Dropout(dropout),
               Dense(hidden, num_classes), Softmax()]
    return layers


@dataclass(frozen=True)
class ModelSpec:
    """A named network: how to build its layers and the loss it is trained with."""

    name: str
    layers: Callable[[tuple, int], "list[Layer]"]
    loss: str
    description: str
    #: Training settings that suit the network: optimizer, learning_rate, batch_size, epochs.
    recipe: "dict" = field(default_factory=dict)


MODELS: dict[str, ModelSpec] = {
    # The derivation trains one sample at a time (batch 1) with plain gradient descent, η = 0.1.
    "seed": ModelSpec("seed", seed_layers, "binary_cross_entropy",
                      "the derivation's network: Conv 5x3x3, Sigmoid, Dense 100, Sigmoid, Dense K, Sigmoid",
                      {"optimizer": "sgd", "learning_rate": 0.1, "batch_size": 1, "epochs": 20}),
    "convnet": ModelSpec("convnet", convnet_layers, "categorical_cross_entropy",
                         "two Conv 3x3 + MaxPool + ReLU blocks (32, 64), Dense 128, Softmax",
                         {"optimizer": "adam", "learning_rate": 1e-3, "batch_size": 64, "epochs": 10}),
    "convnet-bn": ModelSpec("convnet-bn", convnet_bn_layers, "categorical_cross_entropy",
                            "two Conv 3x3 + BatchNorm + MaxPool + ReLU blocks (32, 64), Dropout, Dense 128, "
                            "Dropout, Softmax",
                            {"optimizer": "adam", "learning_rate": 1e-3, "batch_size": 64, "epochs": 15}),
}


def get_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}: expected one of {sorted(MODELS)}")
    return MODELS[name]


def build_model(
    name: str,
    input_shape: tuple = (1, 28, 28),
    num_classes: int = 2,
    *,
    seed: "int | None" = 0,
    device="cpu",
    dtype: str = "float32",
) -> "tuple[Sequential, str]":
    """``(model, loss_name)`` for the network ``name`` on ``(N, *input_shape)`` images."""
    spec = get_spec(name)
    num_classes = integer(f"model {name!r}", "num_classes", num_classes)
    if num_classes < 2:
        raise ConfigError(f"model {name!r}: needs at least 2 classes, got {num_classes}")
    input_shape = shape(f"model {name!r}", "input_shape (C, H, W)", input_shape, ndim=3)
    model = Sequential(spec.layers(input_shape, num_classes), seed=seed, device=device, dtype=dtype)
    return model.compile(spec.loss), spec.loss
