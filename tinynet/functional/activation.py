"""Element-wise activations and softmax, each a forward returning ``(y, cache)``
and a backward taking ``(grad_y, cache)`` and returning ``grad_x``.

Each cache is a small named record of what backward reads: the output ``y`` for ReLU, sigmoid,
tanh and softmax (their derivatives are functions of y), the input ``x`` for the others (with
what forward computed from it that backward can reuse), and any hyper-parameter backward needs.
"""
import math
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


class GELUCache(NamedTuple):
    x: Any
    cdf: Any  # Phi(x), or its tanh approximation
    approximate: str


class SiLUCache(NamedTuple):
    x: Any
    sigmoid: Any


class ELUCache(NamedTuple):
    x: Any
    negative: Any  # alpha * (exp(min(x, 0)) - 1), the negative branch
    alpha: float


class SoftplusCache(NamedTuple):
    scaled_x: Any  # beta * x
    threshold: float


class HardtanhCache(NamedTuple):
    x: Any
    min_val: float
    max_val: float


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


def log_softmax_forward(x, axis):
    """x - max - log(sum(exp(x - max))) along ``axis``: finite for any finite x."""
    xp = get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    y = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
    return y, SoftmaxCache(y, axis)


def log_softmax_backward(grad_y, cache):
    # d/dx of log-softmax applied to g: g - softmax(x) * sum(g), with softmax = exp(y).
    xp = get_array_module(cache.y)
    return grad_y - xp.exp(cache.y) * grad_y.sum(axis=cache.axis, keepdims=True)


def gelu_forward(x, approximate="none"):
    """x * Phi(x), Phi the standard normal CDF: exactly with erf, or with PyTorch's tanh
    approximation 0.5 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))."""
    xp = get_array_module(x)
    one, half = x.dtype.type(1), x.dtype.type(0.5)
    if approximate == "tanh":
        inner = x.dtype.type(math.sqrt(2 / math.pi)) * (x + x.dtype.type(0.044715) * x * x * x)
        cdf = half * (one + xp.tanh(inner))
    else:
        cdf = half * (one + kernels.erf(x * x.dtype.type(1 / math.sqrt(2))))
    return x * cdf, GELUCache(x, cdf, approximate)


def gelu_backward(grad_y, cache):
    """Phi(x) + x * Phi'(x), with the derivative of the same approximation."""
    x, cdf = cache.x, cache.cdf
    xp = get_array_module(x)
    if cache.approximate == "tanh":
        k, c = x.dtype.type(math.sqrt(2 / math.pi)), x.dtype.type(0.044715)
        tanh = 2 * cdf - 1
        d_cdf = x.dtype.type(0.5) * (1 - tanh * tanh) * k * (1 + 3 * c * x * x)
    else:
        d_cdf = xp.exp(x * x * x.dtype.type(-0.5)) * x.dtype.type(1 / math.sqrt(2 * math.pi))
    return grad_y * (cdf + x * d_cdf)


def silu_forward(x):
    """x * sigmoid(x) (the swish), with the stable sigmoid."""
    sigmoid, _ = sigmoid_forward(x)
    return x * sigmoid, SiLUCache(x, sigmoid)


def silu_backward(grad_y, cache):
    x, sigmoid = cache.x, cache.sigmoid
    return grad_y * sigmoid * (1 + x * (1 - sigmoid))


def elu_forward(x, alpha):
    """x for x > 0, alpha * (exp(x) - 1) otherwise (expm1 of min(x, 0), so exp never overflows)."""
    xp = get_array_module(x)
    negative = x.dtype.type(alpha) * xp.expm1(xp.minimum(x, 0))
    return xp.where(x > 0, x, negative), ELUCache(x, negative, alpha)


def elu_backward(grad_y, cache):
    """1 for x > 0, alpha * exp(x) = (the negative branch) + alpha otherwise."""
    x = cache.x
    xp = get_array_module(x)
    return grad_y * xp.where(x > 0, x.dtype.type(1), cache.negative + x.dtype.type(cache.alpha))


def softplus_forward(x, beta, threshold):
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (PyTorch's rule);
    computed as max(bx, 0) + log1p(exp(-|bx|)) so exp never overflows."""
    xp = get_array_module(x)
    bx = x * x.dtype.type(beta)
    soft = (xp.maximum(bx, 0) + xp.log1p(xp.exp(-xp.abs(bx)))) * x.dtype.type(1 / beta)
    return xp.where(bx > threshold, x, soft), SoftplusCache(bx, threshold)


def softplus_backward(grad_y, cache):
    """sigmoid(beta x), and 1 above the threshold."""
    bx = cache.scaled_x
    xp = get_array_module(bx)
    sigmoid, _ = sigmoid_forward(bx)
    return grad_y * xp.where(bx > cache.threshold, bx.dtype.type(1), sigmoid)


def hardtanh_forward(x, min_val, max_val):
    xp = get_array_module(x)
    return xp.clip(x, x.dtype.type(min_val), x.dtype.type(max_val)), HardtanhCache(x, min_val, max_val)


def hardtanh_backward(grad_y, cache):
    """The gradient passes strictly inside (min_val, max_val), as in PyTorch, and is 0 elsewhere."""
    x = cache.x
    return grad_y * ((x > cache.min_val) & (x < cache.max_val))
