"""xpcnn: a convolutional neural network library from first principles, on NumPy or CuPy.

Layers are written once against the Python array API standard; the backend module sends
2-D correlations to ``scipy.signal`` (NumPy) or ``cupyx.scipy.signal`` (CuPy).
"""

from .backend import CPU, Device, DeviceError, get_device, to_device, to_numpy
from .early_stopping import EarlyStopping
from .errors import (
    CheckpointError, ConfigError, ConfigTypeError, DataError, DeviceMismatchError, ExportError, GradientCheckError,
    MissingDependencyError, OutputError, ShapeError, StateError, TrainingError, XpcnnDtypeError, XpcnnError,
)
from .gradcheck import gradcheck
from .layers import (
    Activation, AvgPool2D, BatchNorm1D, BatchNorm2D, Convolutional, Dense, Dropout, Flatten, GlobalAveragePool2D, Layer,
    MaxPool2D, ParameterLayer, ReLU, Reshape, Sigmoid, Softmax, Tanh,
)
from .losses import (
    binary_cross_entropy, binary_cross_entropy_prime, categorical_cross_entropy,
    categorical_cross_entropy_prime, get_loss, mse, mse_prime,
)
from .model import Sequential, predict_classes
from .optimizers import SGD, Adam, Optimizer, get_optimizer
from .schedules import Chain, Cosine, Schedule, StepDecay, Warmup, parse_schedule
from .training import output_classes

__version__ = "0.1.0"

__all__ = [
    "CPU", "Device", "DeviceError", "get_device", "to_device", "to_numpy",
    "XpcnnError", "ConfigError", "ConfigTypeError", "ShapeError", "XpcnnDtypeError", "DeviceMismatchError",
    "DataError", "OutputError", "MissingDependencyError", "ExportError", "CheckpointError", "TrainingError",
    "StateError",
    "Layer", "ParameterLayer", "Convolutional", "Dense", "MaxPool2D", "Reshape", "Flatten",
    "BatchNorm1D", "BatchNorm2D", "Dropout", "AvgPool2D", "GlobalAveragePool2D", "gradcheck", "GradientCheckError",
    "Activation", "Sigmoid", "Tanh", "ReLU", "Softmax",
    "mse", "mse_prime", "binary_cross_entropy", "binary_cross_entropy_prime",
    "categorical_cross_entropy", "categorical_cross_entropy_prime", "get_loss",
    "Sequential", "predict_classes", "output_classes", "SGD", "Adam", "Optimizer", "get_optimizer",
    "Schedule", "StepDecay", "Cosine", "Warmup", "Chain", "parse_schedule", "EarlyStopping",
]
