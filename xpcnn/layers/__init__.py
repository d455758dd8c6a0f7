"""Layers: each file holds one concept, its equations, its forward and its backward."""

from .activations import Activation, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer, ParameterLayer
from .conv import Convolutional
from .dense import Dense
from .pooling import MaxPool2D
from .reshape import Flatten, Reshape

__all__ = [
    "Layer", "ParameterLayer", "Convolutional", "Dense", "MaxPool2D", "Reshape", "Flatten",
    "Activation", "Sigmoid", "Tanh", "ReLU", "Softmax",
]
