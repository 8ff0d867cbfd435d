"""Normalisation (BatchNorm's and LayerNorm's arithmetic) in plain array code: the reference the
compiled loops match to rounding, and, written with its arrays' module, the CuPy implementation too.

x is normalised over ``axes`` ("the reduced axes"), x_hat = (x - mean) / sqrt(var + eps) with the
biased variance, then scaled and shifted: y = x_hat * weight + bias. When the statistics came
from x itself the input gradient has three terms (the formulas are in
``tinynet.functional.normalization``); with given statistics only the first.
"""
import math

from ..backend import get_array_module


def _sum(axes, *factors, keepdims=True):
    """The sum over ``axes`` of the product of ``factors`` (arrays of one shape), by einsum: one pass,
    no temporary for the product, and for NCHW's per-channel sums faster than NumPy's
    ``sum(axis=(0, 2, 3))``."""
    xp = get_array_module(*factors)
    shape = factors[0].shape
    letters = "abcdefghijklmnopqrstuvwxyz"[:len(shape)]
    kept = "".join(letter for axis, letter in enumerate(letters) if axis not in axes)
    total = xp.einsum(",".join([letters] * len(factors)) + "->" + kept, *factors)
    if keepdims:
        total = total.reshape([1 if axis in axes else size for axis, size in enumerate(shape)])
    return total


def normalize_forward(x, axes, eps, weight, bias, mean, var):
    """Normalise x over ``axes``, then scale by ``weight`` and shift by ``bias`` (each shaped to
    broadcast against x, or None). With ``mean`` and ``var`` None the batch's own statistics are
    used, else those (broadcastable against x).

    Returns ``(y, inv_std, batch_mean, batch_var)``: y of x's shape, inv_std = 1 / sqrt(var + eps)
    and the batch's mean and biased variance shaped as x with the reduced axes kept (the last two
    None when ``mean`` and ``var`` were given). The backward takes x and the mean used again, and
    recomputes x_hat from them.
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
    y = centred
    y *= inv_std  # x_hat
    if weight is not None:
        y *= weight
    if bias is not None:
        y += bias
    return y, inv_std, (mean if batch_stats else None), (var if batch_stats else None)


def normalize_backward(grad_y, x, mean, inv_std, weight, axes, param_axes, batch_stats, need_param_grads):
    """``(grad_x, grad_weight, grad_bias)`` given the forward's input x, the mean and inv_std it
    used and the scale ``weight`` (or None); the input gradient has three terms if
    ``batch_stats`` (the statistics came from x), else one. The parameter gradients are summed
    over ``param_axes`` (not kept), and None unless ``need_param_grads``."""
    x_hat = x - mean
    x_hat *= inv_std  # as the forward rounded it
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
