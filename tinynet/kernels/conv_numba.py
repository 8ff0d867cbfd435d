"""The convolution's forward and backward as one numba kernel each, the batch split over threads.

The same steps as the reference (``conv_numpy``): im2col, one matrix product per group, and the
layout change to (N, O, OH, OW); backward the weight gradient, the transposed product and col2im.
Here the batch is split into parts of about ``CHUNK_COLUMN_BYTES`` of columns, as many per
thread (``threads.batch_parts``, at least one part each), and a thread runs every step on a part
before the next, so a part's columns are made, multiplied and consumed while they are in its
core's L2 cache, and the products run on the private BLAS's single thread in each (see
``tinynet.kernels.threads``).

The columns of part p, samples [lo, hi), are one block of a flat buffer: the
``(C*KH*KW, (hi - lo)*OH*OW)`` matrix that im2col makes of those samples, starting at
``C*KH*KW * lo*OH*OW``. Training keeps that buffer for backward, which takes the same parts
and sums their weight and bias gradients in part order. In evaluation mode nothing is kept:
each part's columns are made in a buffer of its own and dropped after use.

Why parts of 256 KiB: the columns of a whole large batch (28 MB for 1,000 MNIST images in the
first layer) fall out of the caches between im2col, the product and the layout change, and a
part then fits in a core's L2 cache (1 MiB here) with its product. Of 4 MiB, 1 MiB, 256 KiB and
64 KiB, 256 KiB was fastest on the MNIST CNN in eval and in training mode (figures:
``benchmarks/HISTORY.md``).
"""
import numba
import numpy as np
from numba import prange

from . import column_count, grouped, output_hw
from .blas import gemm
from .compiling import jit
from .im2col_numba import _cnhw_to_nchw_jit, _col2im_jit, _im2col_jit, _nchw_to_cnhw_jit
from .threads import batch_parts, part, rows

#: Bytes of columns per part of the batch (see above).
CHUNK_COLUMN_BYTES = 2**18


def _part_columns(cols, col_rows, plane, lo, hi):
    """Part [lo, hi)'s block of the flat columns: C*KH*KW rows of (hi - lo)*OH*OW, flat."""
    return cols[col_rows * lo * plane:col_rows * hi * plane]


def _convolve_part(x, weight, bias, y, cols, kh, kw, sh, sw, ph, pw, dh, dw):
    """y (m, O, OH, OW) <- the convolution of x (m, C, H, W), through cols (C*KH*KW, m*OH*OW).
    weight is grouped, (G, O/G, C/G*KH*KW)."""
    m, channels = x.shape[0], x.shape[1]
    groups, group_out, group_rows = weight.shape
    out_h, out_w = y.shape[2], y.shape[3]
    _im2col_jit(x, cols.reshape(channels, kh, kw, m, out_h, out_w), kh, kw, sh, sw, ph, pw, dh, dw)
    y_t = np.empty((groups * group_out, m * out_h * out_w), dtype=x.dtype)
    for g in range(groups):
        gemm(weight[g], rows(cols, g * group_rows, (g + 1) * group_rows), rows(y_t, g * group_out, (g + 1) * group_out))
    _cnhw_to_nchw_jit(y_t.reshape(groups * group_out, m, out_h * out_w), bias, y.reshape(m, groups * group_out, out_h * out_w))


def _forward_loops(x, weight, bias, y, cols, parts, kh, kw, sh, sw, ph, pw, dh, dw):
    """y (N, O, OH, OW) <- x (N, C, H, W), part by part; the columns are kept in ``cols`` (flat)
    if it is not empty, else made per part and dropped."""
    n = x.shape[0]
    col_rows = weight.shape[0] * weight.shape[2]  # C*KH*KW
    plane = y.shape[2] * y.shape[3]
    for p in prange(parts):
        lo, hi = part(n, parts, p)
        if cols.size:
            part_cols = _part_columns(cols, col_rows, plane, lo, hi).reshape(col_rows, (hi - lo) * plane)
        else:
            part_cols = np.empty((col_rows, (hi - lo) * plane), dtype=x.dtype)
        _convolve_part(rows(x, lo, hi), weight, bias, rows(y, lo, hi), part_cols, kh, kw, sh, sw, ph, pw, dh, dw)


def _backward_loops(grad_y, x, weight, cols, grad_x, grad_w, grad_b, parts, kh, kw, sh, sw, ph, pw, dh, dw):
    """For each part p: grad_w[p] (G, O/G, C/G*KH*KW) and grad_b[p] (O,) of its samples, and, if
    grad_x is not empty, grad_x (N, C, H, W). weight is grouped, (G, O/G, C/G*KH*KW); cols the
    flat columns the forward kept, or empty if it kept none: then each part makes its own again
    from x (N, C, H, W)."""
    n, out_channels, out_h, out_w = grad_y.shape
    groups, group_out, group_rows = weight.shape
    col_rows, plane = groups * group_rows, out_h * out_w
    for p in prange(parts):
        lo, hi = part(n, parts, p)
        columns = (hi - lo) * plane
        if cols.size:
            part_cols = _part_columns(cols, col_rows, plane, lo, hi).reshape(groups, group_rows, columns)
        else:
            part_cols = np.empty((groups, group_rows, columns), dtype=x.dtype)
            _im2col_jit(rows(x, lo, hi), part_cols.reshape(x.shape[1], kh, kw, hi - lo, out_h, out_w),
                        kh, kw, sh, sw, ph, pw, dh, dw)
        grad_t = np.empty((groups, group_out, columns), dtype=grad_y.dtype)
        _nchw_to_cnhw_jit(rows(grad_y, lo, hi).reshape(hi - lo, out_channels, plane),
                          grad_t.reshape(out_channels, hi - lo, plane), grad_b[p])
        for g in range(groups):
            gemm(grad_t[g], part_cols[g].T, grad_w[p, g])
        if grad_x.size:
            grad_cols = np.empty((col_rows, columns), dtype=grad_y.dtype)
            for g in range(groups):
                gemm(weight[g].T, grad_t[g], rows(grad_cols, g * group_rows, (g + 1) * group_rows))
            channels = grad_x.shape[1]
            _col2im_jit(grad_cols.reshape(channels, kh, kw, hi - lo, out_h, out_w), rows(grad_x, lo, hi),
                        kh, kw, sh, sw, ph, pw, dh, dw)


_part_columns = jit(inline="always")(_part_columns)
_convolve_part = jit()(_convolve_part)
_forward_jit = jit(parallel=True)(_forward_loops)
_backward_jit = jit(parallel=True)(_backward_loops)


def _parts(x, kernel_size, out_hw):
    """How many parts the batch x is split into: about CHUNK_COLUMN_BYTES of columns each, a
    multiple of the threads (so that each thread gets as many), at most one per sample."""
    return _part_count(x.shape, x.itemsize, kernel_size, out_hw)


def _part_count(x_shape, itemsize, kernel_size, out_hw):
    threads = batch_parts(x_shape[0])
    chunks = -(-column_count(x_shape, kernel_size, out_hw) * itemsize // CHUNK_COLUMN_BYTES)
    return max(1, min(x_shape[0], -(-chunks // threads) * threads))


def im2col_workspace_bytes(x_shape, kernel_size, out_hw, itemsize, keep_columns):
    """Bytes of im2col columns ``conv2d_forward`` holds at once for an input of ``x_shape``: with
    ``keep_columns`` the whole batch's (kept for backward), else one part's (the largest) per
    thread, each thread making and dropping the columns of its parts one after another."""
    columns = column_count(x_shape, kernel_size, out_hw)
    if keep_columns or x_shape[0] == 0:
        return columns * itemsize
    parts = _part_count(x_shape, itemsize, kernel_size, out_hw)
    largest = -(-x_shape[0] // parts)  # samples in the largest part
    return min(parts, numba.get_num_threads()) * columns // x_shape[0] * largest * itemsize


def conv2d_forward(x, weight, bias, stride, padding, dilation, groups, keep_columns):
    out_channels, _, kh, kw = weight.shape
    out_hw = output_hw(x.shape, (kh, kw), stride, padding, dilation)
    y = np.empty((len(x), out_channels) + out_hw, dtype=x.dtype)
    parts = _parts(x, (kh, kw), out_hw)
    if keep_columns:
        cols = np.empty(column_count(x.shape, (kh, kw), out_hw), dtype=x.dtype)
    else:
        cols = np.empty(0, dtype=x.dtype)
    bias = np.zeros(out_channels, x.dtype) if bias is None else bias
    _forward_jit(np.ascontiguousarray(x), np.ascontiguousarray(grouped(weight, groups)), bias, y, cols, parts,
                 kh, kw, *stride, *padding, *dilation)
    return y, ((cols, parts) if keep_columns else None)


def conv2d_backward(grad_y, x, columns, weight, stride, padding, dilation, groups, need_bias_grad, need_input_grad):
    out_channels, _, kh, kw = weight.shape
    weight_groups = np.ascontiguousarray(grouped(weight, groups))
    grad_x = np.empty(x.shape if need_input_grad else (0, 1, 1, 1), dtype=grad_y.dtype)
    if columns is None:  # the forward kept none: each part makes its own again
        cols, parts = np.empty(0, dtype=x.dtype), _parts(x, (kh, kw), grad_y.shape[2:])
    else:
        cols, parts = columns
    grad_w = np.empty((parts,) + weight_groups.shape, dtype=grad_y.dtype)
    grad_b = np.empty((parts, out_channels), dtype=grad_y.dtype)
    _backward_jit(np.ascontiguousarray(grad_y), np.ascontiguousarray(x), weight_groups, cols, grad_x, grad_w, grad_b,
                  parts, kh, kw, *stride, *padding, *dilation)
    return (grad_x if need_input_grad else None,
            grad_w.sum(axis=0).reshape(weight.shape),
            grad_b.sum(axis=0) if need_bias_grad else None)
