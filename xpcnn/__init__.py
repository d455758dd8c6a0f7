"""xpcnn: a convolutional neural network library from first principles, on NumPy, CuPy or PyTorch tensors.

Layers are written once against the Python array API standard; the backend sends 2-D
correlations to ``scipy.signal`` (NumPy) or ``cupyx.scipy.signal`` (CuPy). The package, by job
(``docs/architecture.md`` walks through it):

* :mod:`xpcnn.backend` (array libraries and devices), :mod:`xpcnn.engines` (the convolution's
  three products), :mod:`xpcnn.layers` (the equations);
* :mod:`xpcnn.losses`, :mod:`xpcnn.optim`, :mod:`xpcnn.model` (``Sequential``) with its trainer
  :mod:`xpcnn.train`, :mod:`xpcnn.zoo` (named networks), :mod:`xpcnn.distributed` (MPI and NCCL);
* :mod:`xpcnn.io` (checkpoints, safe files, ONNX and safetensors), :mod:`xpcnn.datasets`,
  :mod:`xpcnn.tools` (gradcheck, summary, timing), :mod:`xpcnn.testing` (the oracles);
* :mod:`xpcnn.app` (``xpcnn-train``) and :mod:`xpcnn.doctor` (``xpcnn-doctor``).
"""

from . import _startup

_startup.guard()  # Ctrl-C while xpcnn-train or xpcnn-doctor imports the package: one line, not a traceback

from . import _moved
from .backend import CPU, Device, DeviceError, get_device, to_device, to_numpy
from .errors import (
    CheckpointError, ConfigError, ConfigTypeError, DataError, DeviceMismatchError, ExportError, GradientCheckError,
    MissingDependencyError, OutOfMemoryError, OutputError, ShapeError, StateError, TrainingError, XpcnnDtypeError,
    XpcnnError,
)
from .layers import (
    Activation, AvgPool2D, BatchNorm1D, BatchNorm2D, Convolutional, Dense, Dropout, Flatten, GlobalAveragePool2D, Layer,
    MaxPool2D, ParameterLayer, ReLU, Reshape, Sigmoid, Softmax, Tanh, register_layer,
)
from .losses import (
    binary_cross_entropy, binary_cross_entropy_prime, categorical_cross_entropy,
    categorical_cross_entropy_prime, get_loss, mse, mse_prime, sigmoid_cross_entropy, sigmoid_cross_entropy_prime,
    softmax_cross_entropy, softmax_cross_entropy_prime,
)
from .io.checkpoint import load_model
from .model import Sequential
from .optim import SGD, Adam, Chain, Cosine, Optimizer, Schedule, StepDecay, Warmup, get_optimizer, parse_schedule
from .tools.gradcheck import gradcheck
from .train import EarlyStopping, output_classes, predict_classes

__version__ = "0.1.0"

__all__ = [
    "CPU", "Device", "DeviceError", "get_device", "to_device", "to_numpy",
    "XpcnnError", "ConfigError", "ConfigTypeError", "ShapeError", "XpcnnDtypeError", "DeviceMismatchError",
    "DataError", "OutputError", "MissingDependencyError", "ExportError", "CheckpointError", "TrainingError",
    "StateError",
    "Layer", "ParameterLayer", "Convolutional", "Dense", "MaxPool2D", "Reshape", "Flatten",
    "BatchNorm1D", "BatchNorm2D", "Dropout", "AvgPool2D", "GlobalAveragePool2D", "gradcheck", "GradientCheckError",
    "Activation", "Sigmoid", "Tanh", "ReLU", "Softmax", "register_layer",
    "mse", "mse_prime", "binary_cross_entropy", "binary_cross_entropy_prime",
    "categorical_cross_entropy", "categorical_cross_entropy_prime", "get_loss",
    "softmax_cross_entropy", "softmax_cross_entropy_prime", "sigmoid_cross_entropy", "sigmoid_cross_entropy_prime",
    "OutOfMemoryError",
    "Sequential", "predict_classes", "output_classes", "SGD", "Adam", "Optimizer", "get_optimizer",
    "Schedule", "StepDecay", "Cosine", "Warmup", "Chain", "parse_schedule", "EarlyStopping", "load_model",
]


def __getattr__(name: str):
    """``xpcnn.checkpoint`` and the other modules that moved (:mod:`xpcnn._moved`), on first use."""
    if f"xpcnn.{name}" in _moved.MOVED:
        import importlib

        return importlib.import_module(f"xpcnn.{name}")
    raise AttributeError(f"module 'xpcnn' has no attribute {name!r}")
