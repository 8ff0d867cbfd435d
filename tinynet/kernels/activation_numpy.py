"""ReLU in plain array code: the reference the compiled kernels must match bit for bit.

Written with the array module of its input, so the same two lines also run on CuPy.
"""
import math

import numpy as np

from ..backend import get_array_module


def relu_forward(x):
    """max(x, 0) element-wise; a NaN stays NaN, as in PyTorch."""
    return get_array_module(x).maximum(x, 0)


def relu_backward(grad_y, y):
    """grad_y where the output y is not <= 0, else 0: PyTorch's rule, which lets the gradient
    through where y is NaN and stops it at x == 0. A multiplication by the mask rather than
    ``where``, whose branches cost 10 times as much on a random mask."""
    return grad_y * ~(y <= 0)


def erf(x):
    """The error function element-wise (GELU needs it; NumPy has none): libm's, in float64,
    rounded to x's dtype."""
    return np.vectorize(math.erf, otypes=[x.dtype])(x)
