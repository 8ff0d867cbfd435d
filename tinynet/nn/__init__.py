"""Layers: thin stateful modules over ``tinynet.functional``."""
from .activation import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .dropout import Dropout
from .flatten import Flatten
from .linear import Linear
from .module import Module, Parameter, Sequential

__all__ = [
    "Module", "Parameter", "Sequential",
    "Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "Dropout", "Flatten",
]
