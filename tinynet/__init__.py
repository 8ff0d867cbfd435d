"""tinynet: a small NumPy neural-network library with explicit forward and backward passes.

    import tinynet as tn
    model = tn.Sequential(tn.Linear(784, 512), tn.ReLU(), tn.Linear(512, 10))
    loss_fn = tn.CrossEntropyLoss()
    optimizer = tn.optim.SGD(model.parameters(), lr=0.05)

    loss = loss_fn(model(x), y)            # forward
    model.backward(loss_fn.backward())     # backward: fills each parameter's .grad
    optimizer.step(); optimizer.zero_grad()

Importing tinynet imports neither torch, cupy nor numba; the numba kernels are compiled (or
loaded from the on-disk cache) in the background the first time they are asked for, while the
NumPy reference kernels serve; ``tinynet.kernels.warm_up()`` compiles them ahead.
"""
__version__ = "0.1.0"

from . import data, datasets, functional, init, nn
from . import optim
from . import kernels
from . import losses, testing
from . import augment, callbacks, metrics, schedules, train
from . import debug, utils
from . import distributed
from .train import evaluate, fit, predict
from .debug import NonFiniteError, detect_anomaly
from .model_summary import summary
from .backend import get_array_module, has_cupy, has_numba, to_device, to_numpy
from .nn import (
    Dropout, Flatten, LeakyReLU, Linear, Module, Parameter, ReLU, Sequential, Sigmoid, Softmax, Tanh,
)
from .losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from .losses import HuberLoss, NLLLoss, SmoothL1Loss
from .nn import AvgPool2d, Conv2d, MaxPool2d
from .nn import AdaptiveAvgPool2d, BatchNorm1d, BatchNorm2d, LayerNorm, Residual
from .nn import ELU, GELU, Dropout2d, Hardtanh, Identity, LogSoftmax, SiLU, Softplus
from .rng import manual_seed
from .serialization import load, save

__all__ = [
    "__version__",
    # modules
    "data", "datasets", "functional", "init", "nn",
    "optim",
    "kernels",
    # saving and loading
    "save", "load",
    # backend and randomness
    "get_array_module", "has_cupy", "has_numba", "to_device", "to_numpy", "manual_seed",
    # layers
    "Module", "Parameter", "Sequential", "Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax",
    "Dropout", "Flatten",
    "Conv2d", "MaxPool2d", "AvgPool2d",
    "BatchNorm1d", "BatchNorm2d", "LayerNorm", "AdaptiveAvgPool2d", "Residual",
    "GELU", "SiLU", "ELU", "Softplus", "Hardtanh", "LogSoftmax", "Identity", "Dropout2d",
    # losses and gradient checking
    "losses", "testing", "MSELoss", "CrossEntropyLoss", "BCELoss", "BCEWithLogitsLoss",
    "NLLLoss", "HuberLoss", "SmoothL1Loss",
    # training
    "train", "fit", "evaluate", "predict", "metrics", "schedules", "callbacks", "augment",
    "utils",
    # seeing inside a network
    "debug", "summary", "detect_anomaly", "NonFiniteError",
    # data-parallel training over MPI
    "distributed",
]
