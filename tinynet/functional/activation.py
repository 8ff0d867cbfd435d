"""Element-wise activations and softmax, each a forward returning ``(y, cache)``
and a backward taking ``(grad_y, cache)`` and returning ``grad_x``."""
from .. import kernels
from ..backend import get_array_module


def relu_forward(x):
    y = kernels.relu_forward(x)
    return y, y


def relu_backward(grad_y, y):
    return kernels.relu_backward(grad_y, y)


def leaky_relu_forward(x, negative_slope):
    xp = get_array_module(x)
    y = xp.where(x > 0, x, x * x.dtype.type(negative_slope))
    return y, x


def leaky_relu_backward(grad_y, x, negative_slope):
    xp = get_array_module(x)
    return xp.where(x > 0, grad_y, grad_y * x.dtype.type(negative_slope))


def sigmoid_forward(x):
    """1 / (1 + exp(-x)), computed as exp(-|x|)-based halves so neither side overflows."""
    xp = get_array_module(x)
    z = xp.exp(-xp.abs(x))
    y = xp.where(x >= 0, 1 / (1 + z), z / (1 + z))
    return y, y


def sigmoid_backward(grad_y, y):
    return grad_y * y * (1 - y)


def tanh_forward(x):
    xp = get_array_module(x)
    y = xp.tanh(x)
    return y, y


def tanh_backward(grad_y, y):
    return grad_y * (1 - y * y)


def softmax_forward(x, axis):
    """exp(x - max) / sum(exp(x - max)) along ``axis``; subtracting the max keeps exp finite."""
    xp = get_array_module(x)
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    y = e / e.sum(axis=axis, keepdims=True)
    return y, y


def softmax_backward(grad_y, y, axis):
    # Jacobian-vector product of softmax: y * (g - sum(g * y)).
    return y * (grad_y - (grad_y * y).sum(axis=axis, keepdims=True))
