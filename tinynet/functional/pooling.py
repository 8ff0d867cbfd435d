"""2-D max and average pooling: forward returns ``(y, cache)``, backward takes ``(grad_y, cache)``.

Output size per axis: ``floor((size + 2*padding - kernel) / stride) + 1``.
Arguments that come in pairs are (height, width) tuples; ``tinynet.nn.MaxPool2d``
and ``AvgPool2d`` check and normalise them.
"""
from typing import Any, NamedTuple, Optional, Tuple

from .. import kernels


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
    return kernels.avg_pool2d_backward(grad_y, *cache)
