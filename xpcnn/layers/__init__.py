"""Layers: each file holds one concept, its equations, its forward and its backward."""

from .activations import Activation, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer, ParameterLayer
from .batchnorm import BatchNorm1D, BatchNorm2D
from .conv import Convolutional
from .dense import Dense
from .dropout import Dropout
from .pooling import AvgPool2D, GlobalAveragePool2D, MaxPool2D
from .registry import register_layer
from .reshape import Flatten, Reshape

__all__ = [
    "Layer", "ParameterLayer", "Convolutional", "Dense", "MaxPool2D", "Reshape", "Flatten",
    "BatchNorm1D", "BatchNorm2D", "Dropout", "AvgPool2D", "GlobalAveragePool2D",
    "Activation", "Sigmoid", "Tanh", "ReLU", "Softmax", "register_layer",
]
