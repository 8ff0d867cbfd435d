"""im2col and col2im in plain NumPy: the reference the other implementations must match.

For each kernel offset (i, j) the input pixels it touches, over all output
positions, form one strided slice of the padded input; im2col copies KH*KW
such slices (not one per pixel) and col2im adds them back. See
``tinynet.kernels`` for the layout of ``cols``.
"""
import numpy as np

from . import output_hw


def _window(i, j, out_h, out_w, stride, dilation):
    """The slice of the padded input seen by kernel offset (i, j) at every output position."""
    top, left = i * dilation[0], j * dilation[1]
    return (
        slice(top, top + stride[0] * (out_h - 1) + 1, stride[0]),
        slice(left, left + stride[1] * (out_w - 1) + 1, stride[1]),
    )


def im2col(x, kernel_size, stride, padding, dilation):
    n, c, h, w = x.shape
    kh, kw = kernel_size
    out_h, out_w = output_hw(x.shape, kernel_size, stride, padding, dilation)
    padded = np.pad(x, ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1])))
    cols = np.empty((c, kh, kw, n, out_h, out_w), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, columns = _window(i, j, out_h, out_w, stride, dilation)
            # (N, C, OH, OW) slice stored channel-first: rows of cols are (c, i, j)
            cols[:, i, j] = padded[:, :, rows, columns].transpose(1, 0, 2, 3)
    return cols.reshape(c * kh * kw, n * out_h * out_w)


def col2im(cols, x_shape, kernel_size, stride, padding, dilation):
    n, c, h, w = x_shape
    kh, kw = kernel_size
    out_h, out_w = output_hw(x_shape, kernel_size, stride, padding, dilation)
    cols = cols.reshape(c, kh, kw, n, out_h, out_w)
    padded = np.zeros((n, c, h + 2 * padding[0], w + 2 * padding[1]), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, columns = _window(i, j, out_h, out_w, stride, dilation)
            # += on a slice is exact here: within one offset no two outputs share an input pixel
            padded[:, :, rows, columns] += cols[:, i, j].transpose(1, 0, 2, 3)
    return np.ascontiguousarray(padded[:, :, padding[0]:padding[0] + h, padding[1]:padding[1] + w])


def cnhw_to_nchw(y_t, bias, out=None):
    y = np.empty((y_t.shape[1], y_t.shape[0]) + y_t.shape[2:], dtype=y_t.dtype) if out is None else out
    if bias is None:
        y[...] = y_t.transpose(1, 0, 2, 3)
    else:
        np.add(y_t.transpose(1, 0, 2, 3), bias.reshape(-1, 1, 1), out=y)
    return y


def nchw_to_cnhw(grad_y, channel_sums):
    grad_t = np.ascontiguousarray(grad_y.transpose(1, 0, 2, 3))
    return grad_t, grad_t.reshape(grad_t.shape[0], -1).sum(axis=1) if channel_sums else None
