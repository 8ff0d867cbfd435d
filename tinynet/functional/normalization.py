"""Batch and layer normalisation as pure forward/backward pairs.

Both normalise x over some axes ("the reduced axes") to zero mean and unit variance,
x_hat = (x - mean) / sqrt(var + eps) with the biased variance, then scale and shift
per feature: y = x_hat * weight + bias. BatchNorm reduces over every axis but the
channel axis 1, LayerNorm over the last few axes.

When the mean and variance were computed from x itself (training), x_hat depends on
x through them too, and the input gradient has three terms (Ioffe and Szegedy, 2015)::

    g_hat = grad_y * weight
    grad_x = (g_hat - mean(g_hat) - x_hat * mean(g_hat * x_hat)) / sqrt(var + eps)

(means over the reduced axes). With fixed statistics (BatchNorm in evaluation)
only the first term remains.
"""
import math
from typing import NamedTuple

from ..backend import get_array_module


class NormCache(NamedTuple):
    x_hat: object        # the normalised input, x's shape
    inv_std: object      # 1 / sqrt(var + eps), shaped to broadcast against x
    weight: object       # the scale, shaped to broadcast against x, or None without affine
    axes: tuple          # the reduced axes
    param_axes: tuple    # the axes summed for the weight and bias gradients
    batch_stats: bool    # the statistics came from x (the three-term gradient)


def _sum(axes, *factors, keepdims=True):
    """The sum over ``axes`` of the product of ``factors`` (arrays of one shape), by einsum: one pass,
    no temporary for the product, and for NCHW's per-channel sums a third of the time NumPy's
    ``sum(axis=(0, 2, 3))`` takes."""
    xp = get_array_module(*factors)
    shape = factors[0].shape
    letters = "abcdefghijklmnopqrstuvwxyz"[:len(shape)]
    kept = "".join(letter for axis, letter in enumerate(letters) if axis not in axes)
    total = xp.einsum(",".join([letters] * len(factors)) + "->" + kept, *factors)
    if keepdims:
        total = total.reshape([1 if axis in axes else size for axis, size in enumerate(shape)])
    return total


def normalize_forward(x, axes, eps, weight=None, bias=None, mean=None, var=None, param_axes=None):
    """Normalise ``x`` over ``axes``, then scale by ``weight`` and shift by ``bias`` (both
    shaped to broadcast against x, or None).

    Given ``mean`` and ``var`` (broadcastable against x), uses them instead of x's own.
    Returns ``(y, cache, batch_mean, batch_var)``: the batch statistics (biased variance,
    reduced axes kept) are None when ``mean`` and ``var`` were given.
    ``param_axes`` are the axes the weight is broadcast over (default: ``axes``).
    """
    xp = get_array_module(x)
    batch_stats = mean is None
    if batch_stats:
        count = x.dtype.type(math.prod(x.shape[axis] for axis in axes))
        mean = _sum(axes, x) / count
        centred = x - mean
        var = _sum(axes, centred, centred) / count
    else:
        centred = x - mean
    inv_std = 1 / xp.sqrt(var + x.dtype.type(eps))
    x_hat = centred
    x_hat *= inv_std
    y = x_hat.copy() if weight is None else x_hat * weight  # a new array: the cache keeps x_hat
    if bias is not None:
        y += bias
    cache = NormCache(x_hat, inv_std, weight, tuple(axes), tuple(axes if param_axes is None else param_axes),
                      batch_stats)
    return y, cache, (mean if batch_stats else None), (var if batch_stats else None)


def normalize_backward(grad_y, cache, need_param_grads):
    """Return ``(grad_x, grad_weight, grad_bias)``; the last two summed over ``param_axes``
    (and None unless ``need_param_grads``)."""
    x_hat, inv_std, weight, axes, param_axes, batch_stats = cache
    grad_weight = grad_bias = None
    if need_param_grads:
        grad_weight = _sum(param_axes, grad_y, x_hat, keepdims=False)
        grad_bias = _sum(param_axes, grad_y, keepdims=False)
    g_hat = grad_y if weight is None else grad_y * weight
    if not batch_stats:
        return g_hat * inv_std, grad_weight, grad_bias
    count = grad_y.dtype.type(math.prod(grad_y.shape[axis] for axis in axes))
    grad_x = g_hat - _sum(axes, g_hat) / count
    grad_x -= x_hat * (_sum(axes, g_hat, x_hat) / count)
    grad_x *= inv_std
    return grad_x, grad_weight, grad_bias
