"""The convolution's forward and backward as one numba kernel each, the batch split over threads.

The same steps as the reference (``conv_numpy``): im2col, one matrix product per group, and the
layout change to (N, O, OH, OW); backward the weight gradient, the transposed product and col2im.
Here the batch is split into parts of about ``CHUNK_COLUMN_BYTES`` of columns, as many per
thread (``threads.batch_parts``, at least one part each), and a thread runs every step on a part
before the next, so a part's columns are made, multiplied and consumed while they are in its
core's L2 cache, and the products run on the private BLAS's single thread in each (see
``tinynet.kernels.threads``). The weight and bias gradients of the parts are summed in part order.

The columns come in one of two layouts, chosen per call by ``uses_patches``:

* rows of kernel taps, the reference's: (C*KH*KW, m*OH*OW) for a part of m samples, made one
  (sample, channel) plane and kernel offset at a time (``_im2col_jit``). The product is
  ``W (O, C*KH*KW) @ cols``, laid out (O, m, OH, OW).
* channels-last patches: (m*OH*OW, KH*KW*C), one row per output position holding its whole
  window, copied in runs of KW*C values from a zero-padded channels-last copy of the part's input
  (``_patches_jit``). The product is ``cols @ W'.T`` with W' the weight's taps ordered (O, KH,
  KW, C), laid out (m, OH, OW, O).

Rows of taps are copied in runs of an output row (OW values), patches in runs of a kernel row of
the patch (KW*C values; C with a dilation across). Patches are taken when the output rows are
short (``SHORT_ROW``) and the patch rows longer: a network's later layers, with many channels and
outputs of 8 x 8 or less (the MNIST ResNet's 7 x 7 and 4 x 4 outputs, where making rows of taps
cost half as much as the product, and adding them back in the backward more). With output rows
of 14 and more, rows of taps were as fast or faster (the MNIST CNN's second layer: 0.55 against 0.84 ms forward), as the
product with the few output channels of such layers runs faster in that layout, and the
patches' layout changes cost more there. A 1 x 1 kernel, whose taps are the input's planes
themselves, and grouped convolutions keep rows of taps.

Each part's columns live in a buffer of their own, made, used and dropped by the thread that
runs the part; nothing is kept for backward, in training either (``keep_columns`` is the
reference's). The backward makes each part's columns again from the input, which the layer keeps
anyway, and multiplies them while they are in the core's cache. Kept columns, nine times the
input for a 3 x 3 kernel, were written out to memory by the forward and read back by the
backward: making them again made the MNIST ResNet's training step 1.0 ms faster (32.5 against
33.6 ms, median of 100 steps each, alternating), left the MNIST CNN's as it was (2.04 against
2.06 ms), and the columns no longer count in a training step's peak memory.

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
from .im2col_numba import (_channels_first_to_last_jit, _channels_last_to_first_jit, _cnhw_to_nchw_jit, _col2im_jit,
                           _im2col_jit, _nchw_to_cnhw_jit, _pad_channels_last_jit, _patches_jit,
                           _unpad_channels_first_jit)
from .threads import batch_parts, part, rows

#: Bytes of columns per part of the batch (see above).
CHUNK_COLUMN_BYTES = 2**18


def _make_patches(x, cols, kh, kw, sh, sw, ph, pw, dh, dw):
    """cols (m, OH, OW, KH, KW, C) <- the patches of x (m, C, H, W), through a padded channels-last copy."""
    m, channels, height, width = x.shape
    padded = np.empty((m, height + 2 * ph, width + 2 * pw, channels), dtype=x.dtype)
    _pad_channels_last_jit(x, padded, ph, pw)
    _patches_jit(padded, cols, kh, kw, sh, sw, dh, dw, False)


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


def _convolve_part_patches(x, weight, bias, y, cols, kh, kw, sh, sw, ph, pw, dh, dw):
    """y (m, O, OH, OW) <- the convolution of x (m, C, H, W), through patches cols (m*OH*OW,
    KH*KW*C). weight is (1, O, KH*KW*C), its taps ordered (O, KH, KW, C)."""
    m, channels = x.shape[0], x.shape[1]
    out_channels, out_h, out_w = y.shape[1], y.shape[2], y.shape[3]
    _make_patches(x, cols.reshape(m, out_h, out_w, kh, kw, channels), kh, kw, sh, sw, ph, pw, dh, dw)
    y_t = np.empty((m * out_h * out_w, out_channels), dtype=x.dtype)
    gemm(cols, weight[0].T, y_t)
    _channels_last_to_first_jit(y_t.reshape(m, out_h * out_w, out_channels), bias,
                                y.reshape(m, out_channels, out_h * out_w))


def _forward_loops(x, weight, bias, y, parts, patches, kh, kw, sh, sw, ph, pw, dh, dw):
    """y (N, O, OH, OW) <- x (N, C, H, W), part by part, each through columns of its own, in
    patches if ``patches`` else in rows of taps (weight laid out for that layout, 3-D)."""
    n = x.shape[0]
    col_rows = weight.shape[0] * weight.shape[2]  # C*KH*KW
    plane = y.shape[2] * y.shape[3]
    for p in prange(parts):
        lo, hi = part(n, parts, p)
        if patches:
            _convolve_part_patches(rows(x, lo, hi), weight, bias, rows(y, lo, hi),
                                   np.empty(((hi - lo) * plane, col_rows), dtype=x.dtype),
                                   kh, kw, sh, sw, ph, pw, dh, dw)
        else:
            _convolve_part(rows(x, lo, hi), weight, bias, rows(y, lo, hi),
                           np.empty((col_rows, (hi - lo) * plane), dtype=x.dtype), kh, kw, sh, sw, ph, pw, dh, dw)


def _backward_part(grad_y, x, weight, cols, grad_x, grad_w, grad_b, kh, kw, sh, sw, ph, pw, dh, dw):
    """grad_w (G, O/G, C/G*KH*KW) and grad_b (O,) of the part's samples, and, if grad_x is not
    empty, grad_x (m, C, H, W), in rows of taps made again from x (m, C, H, W) in cols (C*KH*KW,
    m*OH*OW)."""
    m, out_channels, out_h, out_w = grad_y.shape
    groups, group_out, group_rows = weight.shape
    columns = m * out_h * out_w
    _im2col_jit(x, cols.reshape(x.shape[1], kh, kw, m, out_h, out_w), kh, kw, sh, sw, ph, pw, dh, dw)
    grad_t = np.empty((groups, group_out, columns), dtype=grad_y.dtype)
    _nchw_to_cnhw_jit(grad_y.reshape(m, out_channels, out_h * out_w), grad_t.reshape(out_channels, m, out_h * out_w),
                      grad_b)
    for g in range(groups):
        gemm(grad_t[g], rows(cols, g * group_rows, (g + 1) * group_rows).T, grad_w[g])
    if grad_x.size:
        grad_cols = np.empty((groups * group_rows, columns), dtype=grad_y.dtype)
        for g in range(groups):
            gemm(weight[g].T, grad_t[g], rows(grad_cols, g * group_rows, (g + 1) * group_rows))
        _col2im_jit(grad_cols.reshape(grad_x.shape[1], kh, kw, m, out_h, out_w), grad_x, kh, kw, sh, sw, ph, pw, dh, dw)


def _backward_part_patches(grad_y, x, weight, cols, grad_x, grad_w, grad_b, kh, kw, sh, sw, ph, pw, dh, dw):
    """As ``_backward_part``, in patches: cols (m*OH*OW, KH*KW*C), weight and grad_w (1, O,
    KH*KW*C) with taps ordered (O, KH, KW, C)."""
    m, out_channels, out_h, out_w = grad_y.shape
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    _make_patches(x, cols.reshape(m, out_h, out_w, kh, kw, channels), kh, kw, sh, sw, ph, pw, dh, dw)
    grad_t = np.empty((m * out_h * out_w, out_channels), dtype=grad_y.dtype)
    _channels_first_to_last_jit(grad_y.reshape(m, out_channels, out_h * out_w),
                                grad_t.reshape(m, out_h * out_w, out_channels), grad_b)
    gemm(grad_t.T, cols, grad_w[0])
    if grad_x.size:
        grad_cols = np.empty(cols.shape, dtype=grad_y.dtype)
        gemm(grad_t, weight[0], grad_cols)
        padded = np.empty((m, height + 2 * ph, width + 2 * pw, channels), dtype=grad_y.dtype)
        _patches_jit(padded, grad_cols.reshape(m, out_h, out_w, kh, kw, channels), kh, kw, sh, sw, dh, dw, True)
        _unpad_channels_first_jit(padded, grad_x, ph, pw)


def _backward_loops(grad_y, x, weight, grad_x, grad_w, grad_b, parts, patches, kh, kw, sh, sw, ph, pw, dh, dw):
    """For each part p: grad_w[p] and grad_b[p] (O,) of its samples, and, if grad_x is not
    empty, grad_x (N, C, H, W), through columns made again from x (N, C, H, W), in patches if
    ``patches`` else in rows of taps (weight and grad_w[p] laid out for that layout, 3-D)."""
    n, out_channels, out_h, out_w = grad_y.shape
    col_rows, plane = weight.shape[0] * weight.shape[2], out_h * out_w
    for p in prange(parts):
        lo, hi = part(n, parts, p)
        part_grad_x = rows(grad_x, lo, hi) if grad_x.size else grad_x
        if patches:
            _backward_part_patches(rows(grad_y, lo, hi), rows(x, lo, hi), weight,
                                   np.empty(((hi - lo) * plane, col_rows), dtype=x.dtype), part_grad_x, grad_w[p],
                                   grad_b[p], kh, kw, sh, sw, ph, pw, dh, dw)
        else:
            _backward_part(rows(grad_y, lo, hi), rows(x, lo, hi), weight,
                           np.empty((col_rows, (hi - lo) * plane), dtype=x.dtype), part_grad_x, grad_w[p], grad_b[p],
                           kh, kw, sh, sw, ph, pw, dh, dw)


_make_patches = jit()(_make_patches)
_convolve_part = jit()(_convolve_part)
_convolve_part_patches = jit()(_convolve_part_patches)
_backward_part = jit()(_backward_part)
_backward_part_patches = jit()(_backward_part_patches)
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
    """Bytes of columns ``conv2d_forward`` holds at once for an input of ``x_shape``, in training
    as in evaluation (``keep_columns`` is the reference's: this kernel keeps none): each thread
    makes and drops the columns of its parts one after another, so at most the largest parts,
    one per thread, are alive at once. Columns only: in patches each part also makes a padded
    channels-last copy of its input, and the backward holds a part's columns and their gradient,
    twice this."""
    n = x_shape[0]
    if n == 0:
        return 0
    parts = _part_count(x_shape, itemsize, kernel_size, out_hw)
    at_once = min(parts, numba.get_num_threads())
    samples = at_once * (n // parts) + min(at_once, n % parts)  # n % parts parts have a sample more
    return column_count(x_shape, kernel_size, out_hw) // n * samples * itemsize


#: Output rows of at most this many positions are short: rows of taps are then copied in runs
#: too short to pay for their bookkeeping (see the module's docstring).
SHORT_ROW = 8


def uses_patches(x_shape, kernel_size, out_w, groups):
    """Whether the convolution of an (N, C, H, W) input takes channels-last patches rather than
    rows of taps (see the module's docstring): ungrouped, more than one tap, short output rows
    (OW at most ``SHORT_ROW``) and a kernel row of a patch (KW*C values) longer than them."""
    kh, kw = kernel_size
    return groups == 1 and kh * kw > 1 and out_w <= SHORT_ROW and kw * x_shape[1] > out_w


def _weight_matrices(weight, groups, patches):
    """The weight (O, C/G, KH, KW) as the kernels take it: (1, O, KH*KW*C), taps ordered
    (O, KH, KW, C), for patches, else grouped (G, O/G, C/G*KH*KW); C-contiguous."""
    if patches:
        return np.ascontiguousarray(weight.transpose(0, 2, 3, 1)).reshape(1, weight.shape[0], -1)
    return np.ascontiguousarray(grouped(weight, groups))


def conv2d_forward(x, weight, bias, stride, padding, dilation, groups, keep_columns):
    out_channels, _, kh, kw = weight.shape
    out_hw = output_hw(x.shape, (kh, kw), stride, padding, dilation)
    y = np.empty((len(x), out_channels) + out_hw, dtype=x.dtype)
    patches = uses_patches(x.shape, (kh, kw), out_hw[1], groups)
    bias = np.zeros(out_channels, x.dtype) if bias is None else bias
    _forward_jit(np.ascontiguousarray(x), _weight_matrices(weight, groups, patches), bias, y,
                 _parts(x, (kh, kw), out_hw), patches, kh, kw, *stride, *padding, *dilation)
    return y, None  # no columns kept, whatever keep_columns says (see the module's docstring)


def conv2d_backward(grad_y, x, columns, weight, stride, padding, dilation, groups, need_bias_grad, need_input_grad):
    out_channels, in_group, kh, kw = weight.shape
    patches = uses_patches(x.shape, (kh, kw), grad_y.shape[3], groups)
    matrices = _weight_matrices(weight, groups, patches)
    parts = _parts(x, (kh, kw), grad_y.shape[2:])
    grad_x = np.empty(x.shape if need_input_grad else (0, 1, 1, 1), dtype=grad_y.dtype)
    grad_w = np.empty((parts,) + matrices.shape, dtype=grad_y.dtype)
    grad_b = np.empty((parts, out_channels), dtype=grad_y.dtype)
    _backward_jit(np.ascontiguousarray(grad_y), np.ascontiguousarray(x), matrices, grad_x, grad_w, grad_b,
                  parts, patches, kh, kw, *stride, *padding, *dilation)
    grad_weight = grad_w.sum(axis=0)
    if patches:  # taps ordered (O, KH, KW, C) -> (O, C, KH, KW)
        grad_weight = np.ascontiguousarray(grad_weight.reshape(out_channels, kh, kw, in_group).transpose(0, 3, 1, 2))
    return (grad_x if need_input_grad else None,
            grad_weight.reshape(weight.shape),
            grad_b.sum(axis=0) if need_bias_grad else None)
