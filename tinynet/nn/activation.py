"""Activation layers. Each keeps the array its backward needs and nothing else.

Shape: any input shape -> the same shape (Softmax normalises along ``dim``).
"""
from ..functional import activation as F
from .._checks import check_float
from .module import Module


class ReLU(Module):
    """max(x, 0)."""

    def forward(self, x):
        check_float("ReLU", x)
        y, self._cache = F.relu_forward(x)
        return y

    def backward(self, grad_out):
        return F.relu_backward(grad_out, self._pop_cache(grad_out))


class LeakyReLU(Module):
    """x for x > 0, negative_slope * x otherwise."""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        check_float("LeakyReLU", x)
        y, self._cache = F.leaky_relu_forward(x, self.negative_slope)
        return y

    def backward(self, grad_out):
        return F.leaky_relu_backward(grad_out, self._pop_cache(grad_out))

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Sigmoid(Module):
    """1 / (1 + exp(-x)), stable for large |x|."""

    def forward(self, x):
        check_float("Sigmoid", x)
        y, self._cache = F.sigmoid_forward(x)
        return y

    def backward(self, grad_out):
        return F.sigmoid_backward(grad_out, self._pop_cache(grad_out))


class Tanh(Module):
    """tanh(x)."""

    def forward(self, x):
        check_float("Tanh", x)
        y, self._cache = F.tanh_forward(x)
        return y

    def backward(self, grad_out):
        return F.tanh_backward(grad_out, self._pop_cache(grad_out))


class Softmax(Module):
    """exp(x) / sum(exp(x)) along ``dim`` (default: the last axis).

    For classification, feed logits to ``CrossEntropyLoss`` instead: it fuses
    log-softmax with the loss, which is both faster and numerically safer.
    """

    def __init__(self, dim=-1):
        super().__init__()
        self.dim = int(dim)

    def forward(self, x):
        check_float("Softmax", x)
        if not -x.ndim <= self.dim < x.ndim:
            raise ValueError(f"Softmax: dim {self.dim} is out of range for an input of shape {x.shape}")
        y, self._cache = F.softmax_forward(x, self.dim)
        return y

    def backward(self, grad_out):
        return F.softmax_backward(grad_out, self._pop_cache(grad_out))

    def extra_repr(self):
        return f"dim={self.dim}"
