"""Affine map ``y = x @ W.T + b`` and its gradients."""
from typing import Any, NamedTuple

from .. import kernels
from ..backend import get_array_module


class LinearCache(NamedTuple):
    x: Any
    weight: Any


def linear_forward(x, weight, bias):
    """Shapes: x (N, in), weight (out, in), bias (out,) or None -> y (N, out)."""
    y = kernels.matmul(x, weight.T)
    if bias is not None:
        y += bias
    return y, LinearCache(x, weight)


def linear_backward(grad_y, cache, need_bias_grad=True, need_input_grad=True):
    """Return ``(grad_x, grad_weight, grad_bias)`` for ``grad_y`` of shape (N, out).

    grad_x = grad_y @ W            (N, in), or None unless ``need_input_grad``
    grad_W = grad_y.T @ x          (out, in)
    grad_b = sum of grad_y over N  (out,), or None unless ``need_bias_grad``
    """
    x, weight = cache.x, cache.weight
    grad_x = kernels.matmul(grad_y, weight) if need_input_grad else None
    grad_weight = kernels.matmul_tn(grad_y, x)
    grad_bias = get_array_module(grad_y).sum(grad_y, axis=0) if need_bias_grad else None
    return grad_x, grad_weight, grad_bias
