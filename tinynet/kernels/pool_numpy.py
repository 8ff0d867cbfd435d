"""Max and average pooling in plain NumPy: the reference the other implementations must match.

Like ``im2col_numpy``, each loop step handles one kernel offset (i, j) for
every output position at once, through one strided slice of the padded input.
"""
import numpy as np

from . import output_hw


def _offsets(kernel_size, stride, out_h, out_w):
    """Yield (i, j, window): the padded-input slice that kernel offset (i, j) sees at every output."""
    for i in range(kernel_size[0]):
        for j in range(kernel_size[1]):
            yield i, j, (
                slice(i, i + stride[0] * (out_h - 1) + 1, stride[0]),
                slice(j, j + stride[1] * (out_w - 1) + 1, stride[1]),
            )


def _pad(x, padding, value):
    return np.pad(x, ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1])), constant_values=value)


def max_pool2d_forward(x, kernel_size, stride, padding):
    n, c, h, w = x.shape
    out_h, out_w = output_hw(x.shape, kernel_size, stride, padding)
    padded = _pad(x, padding, -np.inf)  # padding loses every comparison: it is never a maximum
    # Top-left input row/column of each window, in unpadded coordinates.
    top = np.arange(out_h)[:, None] * stride[0] - padding[0]
    left = np.arange(out_w)[None, :] * stride[1] - padding[1]
    best = np.full((n, c, out_h, out_w), -np.inf, dtype=x.dtype)
    # PyTorch starts from the window's first real pixel, which stays the answer if nothing beats -inf.
    indices = np.broadcast_to(np.maximum(top, 0) * w + np.maximum(left, 0), best.shape).astype(np.int32)
    for i, j, window in _offsets(kernel_size, stride, out_h, out_w):
        value = padded[:, :, window[0], window[1]]
        # Strictly greater keeps the first maximum in row-major order; a NaN always takes over.
        take = (value > best) | np.isnan(value)
        best = np.where(take, value, best)
        indices = np.where(take, (top + i) * w + (left + j), indices).astype(np.int32)
    return best, indices


def max_pool2d_values(x, kernel_size, stride, padding):
    return max_pool2d_forward(x, kernel_size, stride, padding)[0]


def max_pool2d_backward(grad_y, indices, x_shape):
    n, c, h, w = x_shape
    grad_x = np.zeros((n * c, h * w), dtype=grad_y.dtype)
    planes = np.arange(n * c)[:, None]
    # add.at, not fancy-index +=: overlapping windows may name the same input more than once.
    outputs = grad_y.shape[2] * grad_y.shape[3]  # not -1 in the reshape: an empty batch has no size to infer from
    np.add.at(grad_x, (planes, indices.reshape(n * c, outputs)), grad_y.reshape(n * c, outputs))
    return grad_x.reshape(x_shape)


def avg_pool2d_forward(x, kernel_size, stride, padding):
    n, c, h, w = x.shape
    out_h, out_w = output_hw(x.shape, kernel_size, stride, padding)
    padded = _pad(x, padding, 0)
    total = np.zeros((n, c, out_h, out_w), dtype=x.dtype)
    for _, _, window in _offsets(kernel_size, stride, out_h, out_w):
        total += padded[:, :, window[0], window[1]]
    return total / x.dtype.type(kernel_size[0] * kernel_size[1])


def avg_pool2d_backward(grad_y, x_shape, kernel_size, stride, padding):
    n, c, h, w = x_shape
    out_h, out_w = output_hw(x_shape, kernel_size, stride, padding)
    share = grad_y / grad_y.dtype.type(kernel_size[0] * kernel_size[1])
    padded = np.zeros((n, c, h + 2 * padding[0], w + 2 * padding[1]), dtype=grad_y.dtype)
    for _, _, window in _offsets(kernel_size, stride, out_h, out_w):
        padded[:, :, window[0], window[1]] += share
    return np.ascontiguousarray(padded[:, :, padding[0]:padding[0] + h, padding[1]:padding[1] + w])
