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

The arithmetic runs in the kernels (``tinynet.kernels.normalize_forward`` and ``_backward``:
the reference ``norm_numpy``, compiled per-channel loops for BatchNorm in ``norm_numba``); this
module keeps what backward needs.
"""
from typing import NamedTuple

from .. import kernels


class NormCache(NamedTuple):
    x: object            # the input (backward computes x_hat from it again)
    mean: object         # the mean used, shaped to broadcast against x (the batch's, or a copy of the given one)
    inv_std: object      # 1 / sqrt(var + eps), shaped to broadcast against x
    weight: object       # the scale, shaped to broadcast against x, or None without affine
    axes: tuple          # the reduced axes
    param_axes: tuple    # the axes summed for the weight and bias gradients
    batch_stats: bool    # the statistics came from x (the three-term gradient)


def normalize_forward(x, axes, eps, weight=None, bias=None, mean=None, var=None, param_axes=None):
    """Normalise ``x`` over ``axes``, then scale by ``weight`` and shift by ``bias`` (both
    shaped to broadcast against x, or None).

    Given ``mean`` and ``var`` (broadcastable against x), uses them instead of x's own.
    Returns ``(y, cache, batch_mean, batch_var)``: the batch statistics (biased variance,
    reduced axes kept) are None when ``mean`` and ``var`` were given.
    ``param_axes`` are the axes the weight is broadcast over (default: ``axes``).
    """
    axes = tuple(axes)
    y, inv_std, batch_mean, batch_var = kernels.normalize_forward(x, axes, eps, weight, bias, mean, var)
    # A copy of given statistics: the running estimates they come from may change before backward.
    used_mean = batch_mean if mean is None else mean.copy()
    cache = NormCache(x, used_mean, inv_std, weight, axes, axes if param_axes is None else tuple(param_axes),
                      mean is None)
    return y, cache, batch_mean, batch_var


def normalize_backward(grad_y, cache, need_param_grads):
    """Return ``(grad_x, grad_weight, grad_bias)``; the last two summed over ``param_axes``
    (and None unless ``need_param_grads``)."""
    return kernels.normalize_backward(grad_y, cache.x, cache.mean, cache.inv_std, cache.weight, cache.axes,
                                      cache.param_axes, cache.batch_stats, need_param_grads)
