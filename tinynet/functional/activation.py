"""Element-wise activations and softmax, each a forward returning ``(y, cache)``
and a backward taking ``(grad_y, cache)`` and returning ``grad_x``.

Each cache is a small named record of what backward reads: the output ``y`` for ReLU, sigmoid,
tanh and softmax (their derivatives are functions of y), the input ``x`` for leaky ReLU, and
any hyper-parameter backward needs.
"""
from typing import Any, NamedTuple

from .. import kernels
from ..backend import get_array_module


class OutputCache(NamedTuple):
    """What ReLU, sigmoid and tanh backward read: their output y."""
    y: Any


class LeakyReLUCache(NamedTuple):
    x: Any
    negative_slope: float


class SoftmaxCache(NamedTuple):
    y: Any
    axis: int


def relu_forward(x):
    y = kernels.relu_forward(x)
    return y, OutputCache(y)


def relu_backward(grad_y, cache):
    return kernels.relu_backward(grad_y, cache.y)


def leaky_relu_forward(x, negative_slope):
    xp = get_array_module(x)
    y = xp.where(x > 0, x, x * x.dtype.type(negative_slope))
    return y, LeakyReLUCache(x, negative_slope)


def leaky_relu_backward(grad_y, cache):
    x = cache.x
    return get_array_module(x).where(x > 0, grad_y, grad_y * x.dtype.type(cache.negative_slope))


def sigmoid_forward(x):
    """1 / (1 + exp(-x)), computed as exp(-|x|)-based halves so neither side overflows."""
    xp = get_array_module(x)
    z = xp.exp(-xp.abs(x))
    y = xp.where(x >= 0, 1 / (1 + z), z / (1 + z))
    return y, OutputCache(y)


def sigmoid_backward(grad_y, cache):
    y = cache.y
    return grad_y * y * (1 - y)


def tanh_forward(x):
    y = get_array_module(x).tanh(x)
    return y, OutputCache(y)


def tanh_backward(grad_y, cache):
    y = cache.y
    return grad_y * (1 - y * y)


def softmax_forward(x, axis):
    """exp(x - max) / sum(exp(x - max)) along ``axis``; subtracting the max keeps exp finite."""
    xp = get_array_module(x)
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    y = e / e.sum(axis=axis, keepdims=True)
    return y, SoftmaxCache(y, axis)


def softmax_backward(grad_y, cache):
    # Jacobian-vector product of softmax: y * (g - sum(g * y)).
    y = cache.y
    return y * (grad_y - (grad_y * y).sum(axis=cache.axis, keepdims=True))
