"""The convolution's forward and backward as one numba kernel each, the batch split over threads.

The same steps as the reference (``conv_numpy``): im2col, one matrix product per group, and the
layout change to (N, O, OH, OW); backward the weight gradient, the transposed product and col2im;
or, for stride 1, products that need no columns (shifted products, below). Here the batch is
split into parts of about ``CHUNK_COLUMN_BYTES`` of columns, as many per thread
(``threads.batch_parts``, at least one part each), and a thread runs every step on a part
before the next, so a part's columns are made, multiplied and consumed while they are in its
core's L2 cache, and the products run on the private BLAS's single thread in each (see
``tinynet.kernels.threads``). The weight and bias gradients of the parts are summed in part order.

The products come in one of three layouts, chosen per call by ``layout``:

* rows of taps, the reference's: columns (C*KH*KW, m*OH*OW) for a part of m samples, made one
  (sample, channel) plane and kernel offset at a time (``_im2col_jit``). The product is
  ``W (O, C*KH*KW) @ cols``, laid out (O, m, OH, OW).
* channels-last patches: columns (m*OH*OW, KH*KW*C), one row per output position holding its
  whole window, copied in runs of KW*C values from a zero-padded channels-last copy of the part's
  input (``_patches_jit``). The product is ``cols @ W'.T`` with W' the weight's taps ordered (O,
  KH, KW, C), laid out (m, OH, OW, O).
* shifted products, stride 1 only: no columns. The part's input is zero-padded to H' x W' planes,
  channels first, each channel's m planes one after another in one row (C, m*H'*W'). Output
  position (n, a, b) is column n*H'*W' + a*W' + b of an (O, m*H'*W') product, and kernel tap
  (i, j) reads column q + i*dh*W' + j*dw of the padded rows for column q: the same shift for
  every column, so the tap's share is ``W_ij (O, C) @ padded[:, shift:shift + used]``, a block
  of the padded rows that BLAS reads in place (a leading dimension, ``blas.gemm``). KH*KW
  products of C-long sums, accumulated, replace one product of C*KH*KW-long sums over columns
  nine times the input's size; the price is products over the padding's columns too (16 x 16
  positions for 14 x 14 outputs), whose results are not read. The backward lays the gradient out
  the same way, zero where no output is: the weight gradient of tap (i, j) is the gradient times
  the shifted rows transposed, and the input's gradient the sum of ``W_ij.T`` times the gradient
  shifted the other way. (Those products also multiply the zero gradient of the positions that
  are not outputs with the input there: an inf or NaN in the input can make more of the weight
  gradient NaN than PyTorch's, whose sums leave those positions out.)

Rows of taps are copied in runs of an output row (OW values), patches in runs of a kernel row of
the patch (KW*C values; C with a dilation across). Patches are taken when the output rows are
short (``SHORT_ROW``) and the patch rows longer: a network's later layers, with many channels and
outputs of 8 x 8 or less (the MNIST ResNet's 7 x 7 and 4 x 4 outputs, where making rows of taps
cost half as much as the product, and adding them back in the backward more). Longer rows take
shifted products when the stride is 1 and the input has at least ``SHIFTED_MIN_CHANNELS``
channels: the MNIST ResNet's 16 -> 16 layer on 14 x 14, forward 0.99 -> 0.89 ms and backward
2.33 -> 1.79 ms at batch 128 on two threads, where making and adding back columns took a third
of the time; a 64 -> 64 layer on 32 x 32 10% faster both ways. With 8 channels (the MNIST CNN's
second layer) the sums of 8 per tap ran slower than one product over columns (forward 0.33
against 0.23 ms), and on 7 x 7 and 4 x 4 outputs products over the padding cost more than
patches (1.61 against 0.96 ms forward for 64 -> 64 on 4 x 4). The other layers take rows of taps:
a 1 x 1 kernel, whose taps are the input's planes themselves, grouped convolutions, the first
layer's single channel, and strides over 1 with rows longer than ``SHORT_ROW``.

Each part's columns (or padded rows) live in a buffer of their own, made, used and dropped by the
thread that runs the part; nothing is kept for backward, in training either (``keep_columns`` is the
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
``benchmarks/HISTORY.md``). Shifted products split the batch into the same parts; their time per
sample was the same for parts of 1 to 8 samples.
"""
import numba
import numpy as np
from numba import prange

from . import column_count, grouped, output_hw
from .blas import gemm
from .compiling import jit
from .im2col_numba import (_channels_last_to_first_jit, _cnhw_to_nchw_jit, _col2im_jit,
                           _from_wide_jit, _im2col_jit, _nchw_to_cnhw_jit, _pad_channels_last_jit, _patches_jit,
                           _to_wide_jit, _unpad_channels_first_jit)
from .threads import batch_parts, part, rows

#: Bytes of columns per part of the batch (see above).
CHUNK_COLUMN_BYTES = 2**18

#: The layouts of a convolution's products (see above).
ROWS_OF_TAPS, PATCHES, SHIFTED = 0, 1, 2


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


def _padded_rows(x, ph, pw, padded_w, plane):
    """x (m, C, H, W) zero-padded to planes of ``plane`` values in rows of ``padded_w``, each
    channel's m padded planes in one row: (C, m*H'*W')."""
    m, channels = x.shape[0], x.shape[1]
    padded = np.zeros((channels, m * plane), dtype=x.dtype)
    _to_wide_jit(x, padded, ph * padded_w + pw, plane, padded_w, np.empty(0, dtype=x.dtype))
    return padded


def _tap_shift(tap, kw, dh, dw, padded_w):
    """How many columns of the padded rows kernel tap ``tap`` (i*KW + j) reads past the output's."""
    return (tap // kw) * dh * padded_w + (tap % kw) * dw


def _shifted_geometry(m, height, width, out_h, out_w, ph, pw):
    """For shifted products of m samples: the padded rows' row length W', plane H'*W', and the
    columns of the product up to the last output, ``used`` (the rest, past the last output,
    would read beyond the padded rows)."""
    padded_w = width + 2 * pw
    plane = (height + 2 * ph) * padded_w
    used = m * plane - (height + 2 * ph - out_h) * padded_w - (padded_w - out_w)
    return padded_w, plane, used


def _convolve_part_shifted(x, weight, bias, y, kh, kw, ph, pw, dh, dw):
    """y (m, O, OH, OW) <- the stride-1 convolution of x (m, C, H, W), as the sum of one product
    per kernel tap with the padded rows shifted (see above). weight is (KH*KW, O, C)."""
    m, height, width = x.shape[0], x.shape[2], x.shape[3]
    out_channels, out_h, out_w = y.shape[1], y.shape[2], y.shape[3]
    if m == 0:
        return
    padded_w, plane, used = _shifted_geometry(m, height, width, out_h, out_w, ph, pw)
    padded = _padded_rows(x, ph, pw, padded_w, plane)
    wide = np.empty((out_channels, m * plane), dtype=x.dtype)
    for tap in range(kh * kw):
        shift = _tap_shift(tap, kw, dh, dw, padded_w)
        gemm(weight[tap], padded[:, shift:shift + used], wide[:, :used], tap > 0)
    _from_wide_jit(wide, 0, plane, padded_w, bias, y)


def _forward_loops(x, weight, bias, y, parts, layout, kh, kw, sh, sw, ph, pw, dh, dw):
    """y (N, O, OH, OW) <- x (N, C, H, W), part by part, in ``layout`` (weight laid out for it,
    3-D), each part through buffers of its own."""
    n = x.shape[0]
    plane = y.shape[2] * y.shape[3]
    for p in prange(parts):
        lo, hi = part(n, parts, p)
        if layout == SHIFTED:
            _convolve_part_shifted(rows(x, lo, hi), weight, bias, rows(y, lo, hi), kh, kw, ph, pw, dh, dw)
        elif layout == PATCHES:
            _convolve_part_patches(rows(x, lo, hi), weight, bias, rows(y, lo, hi),
                                   np.empty(((hi - lo) * plane, weight.shape[0] * weight.shape[2]), dtype=x.dtype),
                                   kh, kw, sh, sw, ph, pw, dh, dw)
        else:
            _convolve_part(rows(x, lo, hi), weight, bias, rows(y, lo, hi),
                           np.empty((weight.shape[0] * weight.shape[2], (hi - lo) * plane), dtype=x.dtype),
                           kh, kw, sh, sw, ph, pw, dh, dw)


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
    grad_t = np.empty((out_channels, m * out_h * out_w), dtype=grad_y.dtype)
    _nchw_to_cnhw_jit(grad_y.reshape(m, out_channels, out_h * out_w), grad_t.reshape(out_channels, m, out_h * out_w),
                      grad_b)
    gemm(grad_t, cols, grad_w[0])
    if grad_x.size:
        grad_cols = np.empty(cols.shape, dtype=grad_y.dtype)
        gemm(grad_t.T, weight[0], grad_cols)
        padded = np.empty((m, height + 2 * ph, width + 2 * pw, channels), dtype=grad_y.dtype)
        _patches_jit(padded, grad_cols.reshape(m, out_h, out_w, kh, kw, channels), kh, kw, sh, sw, dh, dw, True)
        _unpad_channels_first_jit(padded, grad_x, ph, pw)


def _backward_part_shifted(grad_y, x, weight, grad_x, grad_w, grad_b, kh, kw, ph, pw, dh, dw):
    """As ``_backward_part``, in shifted products: weight and grad_w (KH*KW, O, C). The gradient
    is laid out as the forward's product, zero at the positions that are not outputs, after
    ``reach`` zeros: tap (i, j) sends the gradient at column q to column q + shift of the
    padded input, so the input's gradient is again a sum of products with shifted rows."""
    m, out_channels, out_h, out_w = grad_y.shape
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    if m == 0:  # an empty sum
        grad_w[:] = 0
        grad_b[:] = 0
        return
    padded_w, plane, used = _shifted_geometry(m, height, width, out_h, out_w, ph, pw)
    length = m * plane
    reach = _tap_shift(kh * kw - 1, kw, dh, dw, padded_w)  # the largest shift, the last tap's
    padded = _padded_rows(x, ph, pw, padded_w, plane)
    grad_wide = np.zeros((out_channels, reach + length), dtype=grad_y.dtype)
    _to_wide_jit(grad_y, grad_wide, reach, plane, padded_w, grad_b)
    for tap in range(kh * kw):
        shift = _tap_shift(tap, kw, dh, dw, padded_w)
        gemm(grad_wide[:, reach:reach + used], padded[:, shift:shift + used].T, grad_w[tap])
    if grad_x.size:
        grad_padded = np.empty((channels, length), dtype=grad_y.dtype)
        for tap in range(kh * kw):
            shift = _tap_shift(tap, kw, dh, dw, padded_w)
            gemm(weight[tap].T, grad_wide[:, reach - shift:reach - shift + length], grad_padded, tap > 0)
        _from_wide_jit(grad_padded, ph * padded_w + pw, plane, padded_w, np.zeros(channels, dtype=grad_y.dtype),
                       grad_x)


def _backward_loops(grad_y, x, weight, grad_x, grad_w, grad_b, parts, layout, kh, kw, sh, sw, ph, pw, dh, dw):
    """For each part p: grad_w[p] and grad_b[p] (O,) of its samples, and, if grad_x is not
    empty, grad_x (N, C, H, W), from x (N, C, H, W), in ``layout`` (weight and grad_w[p] laid
    out for it, 3-D)."""
    n, out_channels, out_h, out_w = grad_y.shape
    col_rows, plane = weight.shape[0] * weight.shape[2], out_h * out_w
    for p in prange(parts):
        lo, hi = part(n, parts, p)
        part_grad_x = rows(grad_x, lo, hi) if grad_x.size else grad_x
        if layout == SHIFTED:
            _backward_part_shifted(rows(grad_y, lo, hi), rows(x, lo, hi), weight, part_grad_x, grad_w[p], grad_b[p],
                                   kh, kw, ph, pw, dh, dw)
        elif layout == PATCHES:
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
_tap_shift = jit(inline="always")(_tap_shift)
_shifted_geometry = jit(inline="always")(_shifted_geometry)
_padded_rows = jit()(_padded_rows)
_convolve_part_shifted = jit()(_convolve_part_shifted)
_backward_part_shifted = jit()(_backward_part_shifted)
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


def im2col_workspace_bytes(x_shape, weight_shape, stride, padding, dilation, groups, itemsize, keep_columns):
    """Bytes of columns ``conv2d_forward`` holds at once for an input of ``x_shape``, in training
    as in evaluation (``keep_columns`` is the reference's: this kernel keeps none): each thread
    makes and drops the columns of its parts one after another, so at most the largest parts,
    one per thread, are alive at once. Shifted products make no columns: their padded input
    rows, which take the columns' place, are counted instead. Columns only: in patches each part
    also makes a padded channels-last copy of its input; shifted products also write a product
    over the padded positions; and the backward holds a part's columns and their gradient."""
    n, channels, height, width = x_shape
    if n == 0:
        return 0
    kernel_size = tuple(weight_shape[2:])
    out_hw = output_hw(x_shape, kernel_size, stride, padding, dilation)
    parts = _part_count(x_shape, itemsize, kernel_size, out_hw)
    at_once = min(parts, numba.get_num_threads())
    samples = at_once * (n // parts) + min(at_once, n % parts)  # n % parts parts have a sample more
    if layout(x_shape, kernel_size, stride, out_hw[1], groups) == SHIFTED:
        per_sample = channels * (height + 2 * padding[0]) * (width + 2 * padding[1])
    else:
        per_sample = column_count(x_shape, kernel_size, out_hw) // n
    return per_sample * samples * itemsize


#: Output rows of at most this many positions are short: rows of taps are then copied in runs
#: too short to pay for their bookkeeping (see the module's docstring).
SHORT_ROW = 8


#: Inputs with fewer channels than this take rows of taps rather than shifted products, whose
#: sums of C products per tap run too short (see the module's docstring).
SHIFTED_MIN_CHANNELS = 16


def uses_patches(x_shape, kernel_size, out_w, groups):
    """Whether the convolution of an (N, C, H, W) input takes channels-last patches rather than
    rows of taps (see the module's docstring): ungrouped, more than one tap, short output rows
    (OW at most ``SHORT_ROW``) and a kernel row of a patch (KW*C values) longer than them."""
    kh, kw = kernel_size
    return groups == 1 and kh * kw > 1 and out_w <= SHORT_ROW and kw * x_shape[1] > out_w


def layout(x_shape, kernel_size, stride, out_w, groups):
    """The layout of the products of a convolution of an (N, C, H, W) input: ``PATCHES`` if
    ``uses_patches``, else ``SHIFTED`` for an ungrouped stride-1 convolution with more than one tap
    and at least ``SHIFTED_MIN_CHANNELS`` input channels, else ``ROWS_OF_TAPS``."""
    if uses_patches(x_shape, kernel_size, out_w, groups):
        return PATCHES
    if (groups == 1 and kernel_size[0] * kernel_size[1] > 1 and tuple(stride) == (1, 1)
            and x_shape[1] >= SHIFTED_MIN_CHANNELS):
        return SHIFTED
    return ROWS_OF_TAPS


def _weight_matrices(weight, groups, layout):
    """The weight (O, C/G, KH, KW) as the kernels take it, C-contiguous: (KH*KW, O, C) for shifted
    products; (1, O, KH*KW*C), taps ordered (O, KH, KW, C), for patches; else grouped (G, O/G,
    C/G*KH*KW)."""
    out_channels, in_group, kh, kw = weight.shape
    if layout == SHIFTED:
        return np.ascontiguousarray(weight.transpose(2, 3, 0, 1)).reshape(kh * kw, out_channels, in_group)
    if layout == PATCHES:
        return np.ascontiguousarray(weight.transpose(0, 2, 3, 1)).reshape(1, out_channels, -1)
    return np.ascontiguousarray(grouped(weight, groups))


def conv2d_forward(x, weight, bias, stride, padding, dilation, groups, keep_columns):
    out_channels, _, kh, kw = weight.shape
    out_hw = output_hw(x.shape, (kh, kw), stride, padding, dilation)
    y = np.empty((len(x), out_channels) + out_hw, dtype=x.dtype)
    products = layout(x.shape, (kh, kw), stride, out_hw[1], groups)
    bias = np.zeros(out_channels, x.dtype) if bias is None else bias
    _forward_jit(np.ascontiguousarray(x), _weight_matrices(weight, groups, products), bias, y,
                 _parts(x, (kh, kw), out_hw), products, kh, kw, *stride, *padding, *dilation)
    return y, None  # no columns kept, whatever keep_columns says (see the module's docstring)


def conv2d_backward(grad_y, x, columns, weight, stride, padding, dilation, groups, need_bias_grad, need_input_grad):
    out_channels, in_group, kh, kw = weight.shape
    products = layout(x.shape, (kh, kw), stride, grad_y.shape[3], groups)
    matrices = _weight_matrices(weight, groups, products)
    parts = _parts(x, (kh, kw), grad_y.shape[2:])
    grad_x = np.empty(x.shape if need_input_grad else (0, 1, 1, 1), dtype=grad_y.dtype)
    grad_w = np.empty((parts,) + matrices.shape, dtype=grad_y.dtype)
    grad_b = np.empty((parts, out_channels), dtype=grad_y.dtype)
    _backward_jit(np.ascontiguousarray(grad_y), np.ascontiguousarray(x), matrices, grad_x, grad_w, grad_b,
                  parts, products, kh, kw, *stride, *padding, *dilation)
    grad_weight = grad_w.sum(axis=0)
    if products == SHIFTED:  # (KH*KW, O, C) -> (O, C, KH, KW)
        grad_weight = np.ascontiguousarray(grad_weight.reshape(kh, kw, out_channels, in_group).transpose(2, 3, 0, 1))
    elif products == PATCHES:  # taps ordered (O, KH, KW, C) -> (O, C, KH, KW)
        grad_weight = np.ascontiguousarray(grad_weight.reshape(out_channels, kh, kw, in_group).transpose(0, 3, 1, 2))
    return (grad_x if need_input_grad else None,
            grad_weight.reshape(weight.shape),
            grad_b.sum(axis=0) if need_bias_grad else None)
