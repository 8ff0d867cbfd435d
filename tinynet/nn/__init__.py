"""Layers: thin stateful modules over ``tinynet.functional``."""
from .activation import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .conv import Conv2d
from .dropout import Dropout
from .flatten import Flatten
from .linear import Linear
from .module import Module, Parameter, Sequential
from .pooling import AvgPool2d, MaxPool2d

__all__ = [
    "Module", "Parameter", "Sequential",
    "Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "Dropout", "Flatten",
    "Conv2d", "MaxPool2d", "AvgPool2d",
]
