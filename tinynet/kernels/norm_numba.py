"""BatchNorm's normalisation as compiled loops, one channel at a time, the channels split over
numba's threads.

BatchNorm reduces an (N, C, ...) input over every axis but the channels. Viewed as (N, C, L),
channel c is N contiguous runs of L values, and each loop below walks those runs: the forward
sums them for the mean, sums the squares of their deviations for the variance, then writes y in
one more pass; the backward sums grad_y and grad_y * x_hat (the parameter gradients, and the
means the three-term gradient needs), then writes grad_x in one pass. The passes after a
channel's first find its values in the core's cache (when a channel fits there, as the ResNet's
do), where the array code reads the whole input once per sum and writes a temporary array per
operation. x_hat = (x - mean) * inv_std is not stored: the backward computes it again from x,
rounded as the forward rounded it, where writing it in the forward and reading it back cost a
quarter of the forward (2.17 against 1.58 ms over the MNIST ResNet's nine layers).

The sums are accumulated in float64 and compiled with ``fastmath={"reassoc"}``, which lets LLVM
reorder them into vector lanes (a scalar sum waits on each addition); the element-wise parts are
compiled without it and round every operation as the reference (``norm_numpy``) does. The
results therefore equal the reference's to rounding, as a sum in another order does.

Other normalisations (LayerNorm's axes, a weight or statistics per element, arguments of another
dtype than x) take the reference.
"""
import math

import numpy as np
from numba import prange

from . import norm_numpy
from .compiling import jit


def _channel_sum(x, c):
    """The sum of channel c of x (N, C, L), in float64."""
    total = 0.0
    for n in range(x.shape[0]):
        for i in range(x.shape[2]):
            total += x[n, c, i]
    return total


def _channel_squared_deviations(x, c, mean):
    """The sum of (x - mean)**2 over channel c of x (N, C, L), in float64."""
    total = 0.0
    for n in range(x.shape[0]):
        for i in range(x.shape[2]):
            deviation = x[n, c, i] - mean
            total += deviation * deviation
    return total


def _channel_dot_normalised(g, x, c, mean, inv_std):
    """The sum of g * x_hat over channel c of g and x (N, C, L), x_hat = (x - mean) * inv_std
    rounded as the forward rounds it, in float64."""
    total = 0.0
    for n in range(g.shape[0]):
        for i in range(g.shape[2]):
            total += np.float64(g[n, c, i]) * ((x[n, c, i] - mean) * inv_std)
    return total


def _forward_loops(x, eps, weight, bias, mean, var, inv_std, y, batch_stats):
    """y (N, C, L) <- x (N, C, L), per channel: weight, bias, mean, var, inv_std (C,).
    With ``batch_stats`` the loops write the batch's mean and biased variance into mean and var,
    else they read them."""
    count = x.shape[0] * x.shape[2]
    one = x.dtype.type(1)
    for c in prange(x.shape[1]):
        if batch_stats:
            batch_mean = _channel_sum_jit(x, c) / count
            mean[c] = batch_mean
            var[c] = _channel_squared_deviations_jit(x, c, batch_mean) / count
        scale = one / np.sqrt(var[c] + eps)
        inv_std[c] = scale
        centre, gamma, beta = mean[c], weight[c], bias[c]
        for n in range(x.shape[0]):
            for i in range(x.shape[2]):
                y[n, c, i] = ((x[n, c, i] - centre) * scale) * gamma + beta


def _backward_loops(grad_y, x, mean, inv_std, weight, grad_x, grad_weight, grad_bias, batch_stats, need_param_grads):
    """grad_x (N, C, L), and grad_weight and grad_bias (C,) if ``need_param_grads``, per channel,
    given the forward's x (N, C, L) and the mean and inv_std (C,) it used."""
    count = grad_y.shape[0] * grad_y.shape[2]
    for c in prange(grad_y.shape[1]):
        gamma, centre, scale = weight[c], mean[c], inv_std[c]
        mean_g_hat = mean_g_hat_x_hat = grad_y.dtype.type(0)
        if batch_stats or need_param_grads:
            sum_g = _channel_sum_jit(grad_y, c)
            sum_g_x_hat = _channel_dot_normalised_jit(grad_y, x, c, centre, scale)
            grad_bias[c] = sum_g
            grad_weight[c] = sum_g_x_hat
            if batch_stats:  # the means of g_hat = grad_y * weight and of g_hat * x_hat
                mean_g_hat = grad_y.dtype.type(gamma * sum_g / count)
                mean_g_hat_x_hat = grad_y.dtype.type(gamma * sum_g_x_hat / count)
        for n in range(grad_y.shape[0]):
            if batch_stats:
                for i in range(grad_y.shape[2]):
                    g_hat = grad_y[n, c, i] * gamma
                    x_hat = (x[n, c, i] - centre) * scale
                    grad_x[n, c, i] = ((g_hat - mean_g_hat) - x_hat * mean_g_hat_x_hat) * scale
            else:
                for i in range(grad_y.shape[2]):
                    grad_x[n, c, i] = (grad_y[n, c, i] * gamma) * scale


_channel_sum_jit = jit(fastmath={"reassoc"})(_channel_sum)
_channel_squared_deviations_jit = jit(fastmath={"reassoc"})(_channel_squared_deviations)
_channel_dot_normalised_jit = jit(fastmath={"reassoc"})(_channel_dot_normalised)
_forward_jit = jit(parallel=True, error_model="numpy")(_forward_loops)
_backward_jit = jit(parallel=True, error_model="numpy")(_backward_loops)


def _channel_shape(x, axes):
    """(1, C, 1, ...) if normalising over ``axes`` is BatchNorm's (every axis of the NumPy array x
    but axis 1) and the loops can take x, else None."""
    if type(x) is not np.ndarray or x.ndim < 2 or tuple(axes) != (0,) + tuple(range(2, x.ndim)):
        return None
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _per_channel(shape, dtype, *arrays):
    """Whether each of ``arrays`` is None or a NumPy array of ``shape`` and ``dtype``."""
    return all(a is None or (type(a) is np.ndarray and a.shape == shape and a.dtype == dtype) for a in arrays)


def _as_channels(x):
    """x (N, C, ...) as a C-contiguous (N, C, L) array."""
    return np.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], math.prod(x.shape[2:]))


def normalize_forward(x, axes, eps, weight, bias, mean, var):
    shape = _channel_shape(x, axes)
    if shape is None or not _per_channel(shape, x.dtype, weight, bias, mean, var):
        return norm_numpy.normalize_forward(x, axes, eps, weight, bias, mean, var)
    channels, dtype = x.shape[1], x.dtype
    batch_stats = mean is None
    if batch_stats:
        mean, var = np.empty(shape, dtype), np.empty(shape, dtype)
    inv_std = np.empty(shape, dtype)
    y = np.empty(x.shape, dtype)
    _forward_jit(_as_channels(x), dtype.type(eps),
                 np.ones(channels, dtype) if weight is None else weight.reshape(-1),
                 np.zeros(channels, dtype) if bias is None else bias.reshape(-1),
                 mean.reshape(-1), var.reshape(-1), inv_std.reshape(-1), _as_channels(y), batch_stats)
    return y, inv_std, (mean if batch_stats else None), (var if batch_stats else None)


def normalize_backward(grad_y, x, mean, inv_std, weight, axes, param_axes, batch_stats, need_param_grads):
    shape = _channel_shape(grad_y, axes)
    if (shape is None or tuple(param_axes) != tuple(axes)
            or not _per_channel(shape, grad_y.dtype, mean, inv_std, weight)
            or not _per_channel(grad_y.shape, grad_y.dtype, x)):
        return norm_numpy.normalize_backward(grad_y, x, mean, inv_std, weight, axes, param_axes, batch_stats,
                                             need_param_grads)
    channels, dtype = grad_y.shape[1], grad_y.dtype
    grad_x = np.empty(grad_y.shape, dtype)
    grad_weight, grad_bias = np.empty(channels, dtype), np.empty(channels, dtype)
    _backward_jit(_as_channels(grad_y), _as_channels(x), mean.reshape(-1), inv_std.reshape(-1),
                  np.ones(channels, dtype) if weight is None else weight.reshape(-1), _as_channels(grad_x),
                  grad_weight, grad_bias, batch_stats, need_param_grads)
    return grad_x, (grad_weight if need_param_grads else None), (grad_bias if need_param_grads else None)
