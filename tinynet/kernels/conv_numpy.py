"""The convolution's forward and backward composed of the other kernels: the reference.

Forward::

    cols = im2col(x)                       (C*KH*KW, N*OH*OW)
    y    = W.reshape(O, C*KH*KW) @ cols    (O, N*OH*OW) -> transposed to (N, O, OH, OW), plus bias

Backward, with gy the upstream gradient laid out (O, N*OH*OW)::

    grad_W    = gy @ cols.T                (O, C*KH*KW)
    grad_b    = gy summed over N*OH*OW     (O,)
    grad_cols = W.T @ gy                   (C*KH*KW, N*OH*OW) -> col2im -> grad_x (N, C, H, W)

With ``groups=G`` each group is one contiguous block of rows of ``cols`` and of W, so the
products become one batched (G, ...) matmul. Written with the array module of the input, so the
same code runs on CuPy (``conv_cupy``), and with the kernels of the current backend
(``tinynet.kernels.im2col`` and the rest).

In evaluation mode nothing is kept, and on the CPU the batch is convolved in chunks of about
``CHUNK_COLUMN_BYTES`` of columns: the columns of a whole large batch (28 MB for 1,000 MNIST
images in the first layer) would fall out of the CPU's caches between im2col, the product and
the layout change.
"""
import numpy as np

from .. import kernels
from ..backend import get_array_module

#: Columns per chunk when an evaluation-mode convolution splits a large CPU batch.
CHUNK_COLUMN_BYTES = 4 * 2**20


def _convolve(x, weight, bias, stride, padding, dilation, groups, out):
    """Write the convolution of x into ``out`` (N, O, OH, OW); return the columns it was computed from."""
    xp = get_array_module(x)
    out_channels, n, out_h, out_w = out.shape[1], x.shape[0], out.shape[2], out.shape[3]
    cols = kernels.im2col(x, weight.shape[2:], stride, padding, dilation)
    # (G, O/G, K/G) @ (G, K/G, N*OH*OW) -> (G, O/G, N*OH*OW), i.e. (O, N, OH, OW)
    y_t = xp.matmul(kernels.grouped(weight, groups), cols.reshape(groups, cols.shape[0] // groups, cols.shape[1]))
    kernels.cnhw_to_nchw(y_t.reshape(out_channels, n, out_h, out_w), bias, out)
    return cols


def conv2d_forward(x, weight, bias, stride, padding, dilation, groups, keep_columns):
    xp = get_array_module(x)
    out_hw = kernels.output_hw(x.shape, weight.shape[2:], stride, padding, dilation)
    y = xp.empty((x.shape[0], weight.shape[0]) + out_hw, dtype=x.dtype)
    geometry = (stride, padding, dilation, groups)
    if keep_columns:
        return y, _convolve(x, weight, bias, *geometry, y)
    column_bytes = x.shape[1] * weight.shape[2] * weight.shape[3] * out_hw[0] * out_hw[1] * x.itemsize  # per sample
    # the GPU takes the whole batch; max(1, ...) keeps an empty batch's range() step positive
    chunk = max(1, len(x) if xp is not np else CHUNK_COLUMN_BYTES // column_bytes)
    for start in range(0, len(x), chunk):
        _convolve(x[start:start + chunk], weight, bias, *geometry, y[start:start + chunk])
    return y, None


def conv2d_backward(grad_y, x, columns, weight, stride, padding, dilation, groups, need_bias_grad, need_input_grad):
    xp = get_array_module(grad_y)
    cols = columns if columns is not None else kernels.im2col(x, weight.shape[2:], stride, padding, dilation)
    rows, positions = cols.shape
    # (N, O, OH, OW) -> (G, O/G, N*OH*OW): the layout the forward product produced
    grad_t, grad_bias = kernels.nchw_to_cnhw(grad_y, need_bias_grad)
    grad_t = grad_t.reshape(groups, weight.shape[0] // groups, positions)
    cols = cols.reshape(groups, rows // groups, positions)
    grad_weight = kernels.matmul_transposed(grad_t, cols).reshape(weight.shape)
    if not need_input_grad:
        return None, grad_weight, grad_bias
    grad_cols = xp.matmul(kernels.grouped(weight, groups).transpose(0, 2, 1), grad_t).reshape(rows, positions)
    grad_x = kernels.col2im(grad_cols, x.shape, weight.shape[2:], stride, padding, dilation)
    return grad_x, grad_weight, grad_bias


def im2col_workspace_bytes(x_shape, weight_shape, stride, padding, dilation, groups, itemsize, keep_columns):
    """Bytes of im2col columns ``conv2d_forward`` holds at once for a CPU input of ``x_shape``: with
    ``keep_columns`` the whole batch's, else one chunk's (``CHUNK_COLUMN_BYTES`` of whole samples,
    at least one sample). (im2col also pads a copy of the input first when padding is not 0.)"""
    kernel_size = weight_shape[2:]
    out_hw = kernels.output_hw(x_shape, kernel_size, stride, padding, dilation)
    per_sample = kernels.column_count((1, *x_shape[1:]), kernel_size, out_hw) * itemsize
    if keep_columns:
        return x_shape[0] * per_sample
    return min(x_shape[0], max(1, CHUNK_COLUMN_BYTES // per_sample)) * per_sample
