"""Layers: thin stateful modules over ``tinynet.functional``."""
from .activation import ELU, GELU, Hardtanh, Identity, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Softplus, Tanh
from .conv import Conv2d
from .dropout import Dropout, Dropout2d
from .flatten import Flatten
from .linear import Linear
from .module import Module, Parameter, Sequential
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .residual import Residual

__all__ = [
    "Module", "Parameter", "Sequential",
    "Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "Dropout", "Flatten",
    "Conv2d", "MaxPool2d", "AvgPool2d",
    "BatchNorm1d", "BatchNorm2d", "LayerNorm", "AdaptiveAvgPool2d", "Residual",
    "GELU", "SiLU", "ELU", "Softplus", "Hardtanh", "LogSoftmax", "Identity", "Dropout2d",
]
