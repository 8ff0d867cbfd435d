"""Activation layers. Each keeps the array its backward needs and nothing else.

Shape: any input shape -> the same shape (Softmax normalises along ``dim``).
"""
from ..functional import activation as F
from .._checks import check_float, integer, real_number
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
        self.negative_slope = real_number("LeakyReLU", "negative_slope", negative_slope)

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

    _functions = (F.softmax_forward, F.softmax_backward)

    def __init__(self, dim=-1):
        super().__init__()
        self.dim = integer("Softmax", "dim", dim)

    def forward(self, x):
        where = type(self).__name__
        check_float(where, x)
        if not -x.ndim <= self.dim < x.ndim:
            raise ValueError(f"{where}: dim {self.dim} is out of range for an input of shape {x.shape}")
        y, self._cache = self._functions[0](x, self.dim)
        return y

    def backward(self, grad_out):
        return self._functions[1](grad_out, self._pop_cache(grad_out))

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """log(softmax(x)) along ``dim`` (default: the last axis), computed without exp overflowing.

    With ``NLLLoss`` it makes ``CrossEntropyLoss`` in two steps.
    """

    _functions = (F.log_softmax_forward, F.log_softmax_backward)


class GELU(Module):
    """x * Phi(x), Phi the standard normal CDF (Hendrycks and Gimpel, 2016).

    Args:
        approximate: ``"none"`` (exact, with erf) or ``"tanh"`` (PyTorch's tanh approximation).
    """

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        check_float("GELU", x)
        y, self._cache = F.gelu_forward(x, self.approximate)
        return y

    def backward(self, grad_out):
        return F.gelu_backward(grad_out, self._pop_cache(grad_out))

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class SiLU(Module):
    """x * sigmoid(x), also called swish."""

    def forward(self, x):
        check_float("SiLU", x)
        y, self._cache = F.silu_forward(x)
        return y

    def backward(self, grad_out):
        return F.silu_backward(grad_out, self._pop_cache(grad_out))


class ELU(Module):
    """x for x > 0, alpha * (exp(x) - 1) otherwise (Clevert et al., 2015)."""

    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x):
        check_float("ELU", x)
        y, self._cache = F.elu_forward(x, self.alpha)
        return y

    def backward(self, grad_out):
        return F.elu_backward(grad_out, self._pop_cache(grad_out))

    def extra_repr(self):
        return f"alpha={self.alpha}"


class Softplus(Module):
    """log(1 + exp(beta * x)) / beta, a smooth ReLU; x itself where beta * x > threshold."""

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        if not beta > 0:
            raise ValueError(f"Softplus: beta must be positive, got {beta!r}")
        self.beta, self.threshold = float(beta), float(threshold)

    def forward(self, x):
        check_float("Softplus", x)
        y, self._cache = F.softplus_forward(x, self.beta, self.threshold)
        return y

    def backward(self, grad_out):
        return F.softplus_backward(grad_out, self._pop_cache(grad_out))

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class Hardtanh(Module):
    """x clipped to [min_val, max_val]; the gradient passes strictly between them."""

    def __init__(self, min_val=-1.0, max_val=1.0):
        super().__init__()
        if not min_val < max_val:
            raise ValueError(f"Hardtanh: min_val must be less than max_val, got min_val={min_val} and max_val={max_val}")
        self.min_val, self.max_val = float(min_val), float(max_val)

    def forward(self, x):
        check_float("Hardtanh", x)
        y, self._cache = F.hardtanh_forward(x, self.min_val, self.max_val)
        return y

    def backward(self, grad_out):
        return F.hardtanh_backward(grad_out, self._pop_cache(grad_out))

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}"


class Identity(Module):
    """Returns its input (and the gradient) unchanged: a placeholder, e.g. for a removed layer.
    Accepts and ignores any constructor arguments, as PyTorch's does."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        self._cache = True
        return x

    def backward(self, grad_out):
        self._pop_cache(grad_out)
        return grad_out
