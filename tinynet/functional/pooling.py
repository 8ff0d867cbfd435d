"""2-D max and average pooling: forward returns ``(y, cache)``, backward takes ``(grad_y, cache)``.

Output size per axis: ``floor((size + 2*padding - kernel) / stride) + 1``.
Arguments that come in pairs are (height, width) tuples; ``tinynet.nn.MaxPool2d``
and ``AvgPool2d`` check and normalise them.
"""
from typing import Any, NamedTuple, Optional, Tuple

from .. import kernels
from ..backend import get_array_module


class MaxPool2dCache(NamedTuple):
    x: Any
    indices: Optional[Any]  # None when the forward ran without saving them (evaluation)
    kernel_size: Tuple[int, int]
    stride: Tuple[int, int]
    padding: Tuple[int, int]


class AvgPool2dCache(NamedTuple):
    x_shape: Tuple[int, ...]
    kernel_size: Tuple[int, int]
    stride: Tuple[int, int]
    padding: Tuple[int, int]


class AdaptiveAvgPool2dCache(NamedTuple):
    x_shape: Tuple[int, ...]
    output_size: Tuple[int, int]


def max_pool2d_forward(x, kernel_size, stride, padding, save_indices=True):
    """Each output is its window's maximum. With ``save_indices`` (training) the cache keeps which
    input that was (the first maximum in row-major order on a tie, as in PyTorch), so backward
    needs no comparison; without it (evaluation) only the maxima are computed, which is faster,
    and a backward pass, if one comes, finds them again from ``x``."""
    if save_indices:
        y, indices = kernels.max_pool2d_forward(x, kernel_size, stride, padding)
    else:
        y, indices = kernels.max_pool2d_values(x, kernel_size, stride, padding), None
    return y, MaxPool2dCache(x, indices, kernel_size, stride, padding)


def max_pool2d_backward(grad_y, cache):
    """The whole gradient of each output goes to the one input that was its maximum."""
    indices = cache.indices
    if indices is None:
        _, indices = kernels.max_pool2d_forward(cache.x, cache.kernel_size, cache.stride, cache.padding)
    return kernels.max_pool2d_backward(grad_y, indices, cache.x.shape)


def avg_pool2d_forward(x, kernel_size, stride, padding):
    """Each output is the sum of its window divided by KH*KW (zero padding counted, as PyTorch's
    default ``count_include_pad=True``)."""
    y = kernels.avg_pool2d_forward(x, kernel_size, stride, padding)
    return y, AvgPool2dCache(x.shape, kernel_size, stride, padding)


def avg_pool2d_backward(grad_y, cache):
    """Each input receives grad_y / (KH*KW) from every window that contains it."""
    return kernels.avg_pool2d_backward(grad_y, cache.x_shape, cache.kernel_size, cache.stride, cache.padding)


def adaptive_bins(size, out_size):
    """PyTorch's adaptive-pooling windows along one axis: bin i covers
    [floor(i * size / out_size), ceil((i + 1) * size / out_size))."""
    return [((i * size) // out_size, -((-(i + 1) * size) // out_size)) for i in range(out_size)]


#: Planes of at most this many positions are averaged by einsum's plain sum (its rounding grows
#: with the count, as pairwise summation's does not).
SMALL_PLANE = 256


def adaptive_avg_pool2d_forward(x, output_size):
    """Each output is the mean of its adaptive window (``adaptive_bins`` per axis); windows may
    overlap when the input size is not a multiple of the output size.

    Shapes: x (N, C, H, W) -> (N, C, OH, OW).
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    out_h, out_w = output_size
    if (out_h, out_w) == (1, 1):  # the global average pool, in one pass
        if h * w <= SMALL_PLANE and x.dtype.itemsize >= 4:
            # NumPy's mean spends its time per plane on small planes (five times einsum's on 4 x 4).
            y = xp.einsum("ncl->nc", x.reshape(n, c, h * w)) / (h * w)
        else:  # mean sums pairwise, and float16 in float32
            y = x.mean(axis=(2, 3))
        return y.reshape(n, c, 1, 1), AdaptiveAvgPool2dCache(x.shape, output_size)
    y = xp.empty((n, c, out_h, out_w), dtype=x.dtype)
    for i, (top, bottom) in enumerate(adaptive_bins(h, out_h)):
        for j, (left, right) in enumerate(adaptive_bins(w, out_w)):
            y[:, :, i, j] = x[:, :, top:bottom, left:right].mean(axis=(2, 3))
    return y, AdaptiveAvgPool2dCache(x.shape, output_size)


def adaptive_avg_pool2d_backward(grad_y, cache):
    """Each input receives grad_y / (window area) from every window that contains it."""
    x_shape, (out_h, out_w) = cache.x_shape, cache.output_size
    xp = get_array_module(grad_y)
    _, _, h, w = x_shape
    if (out_h, out_w) == (1, 1):
        return xp.broadcast_to(grad_y * grad_y.dtype.type(1.0 / (h * w)), x_shape).copy()
    grad_x = xp.zeros(x_shape, dtype=grad_y.dtype)
    for i, (top, bottom) in enumerate(adaptive_bins(h, out_h)):
        for j, (left, right) in enumerate(adaptive_bins(w, out_w)):
            area = (bottom - top) * (right - left)
            grad_x[:, :, top:bottom, left:right] += (grad_y[:, :, i, j] * grad_y.dtype.type(1.0 / area))[:, :, None, None]
    return grad_x
