"""im2col and col2im as compiled numba loops.

Each kernel is a plain Python function (``_im2col_loops``) bound, compiled,
to its own name (``_im2col_jit``): tests can run the pure version, and
``NUMBA_DISABLE_JIT=1`` runs everything as Python. Compiled code is cached
on disk, keyed to the kernel sources (``compiling.jit``), so only the first process pays for compilation.

How the loops are written, and why (each point measured on the MNIST CNN's shapes; the figures
are in ``benchmarks/HISTORY.md``):

* The work is one (N, C) plane and one kernel offset (i, j) at a time: the
  pixels that offset sees form a rectangle of the input (rows [a_lo, a_hi),
  columns [b_lo, b_hi) of the output), and everything outside it is zero padding.
  The inner loops then copy with no bounds test.
* Inner-loop indices are unsigned (``np.uint64``). numba wraps negative
  indices of signed ones (``a[-1]``), and that test kept LLVM from vectorising
  the copies.
* Arrays are indexed flat with computed offsets: a view per plane
  (``x[n, c]``) costs more than copying a 14 x 14 plane.
* With stride 1 and output rows as wide as the input's ("same" padding), one
  offset's rectangle is a single contiguous run in both planes, copied in one
  loop instead of row by row. col2im adds that run under a mask that skips the
  padding columns it wraps into (rows of 14 are too short to vectorise one by one).
* Each kernel runs on one thread; ``conv_numba`` calls them on parts of the batch, one part
  per thread (see ``tinynet.kernels.threads``).

The second half of the file makes the convolution's other column layout, the channels-last
patches that ``conv_numba`` takes when an input has many channels and small planes: one row per
output position holding its whole receptive field, (N, OH, OW, KH, KW, C), copied from a
zero-padded channels-last copy of the input in runs of KW*C values (instead of one (N, C) plane
and offset at a time, whose bookkeeping costs more than the copy when the planes are 7 x 7 or
4 x 4), and the layout changes between channels first and channels last that go with it. Last,
the "wide rows" of the shifted products, which need no columns: each channel's planes padded and
laid one after another in one row (``_to_wide_loops``), and back (``_from_wide_loops``).
"""
import numpy as np

from . import output_hw
from .compiling import jit


def _valid_range(start, stride, size, count):
    """The outputs b in [lo, hi) whose input position ``start + b*stride`` lies in [0, size)."""
    lo = min(max(-(start // stride), 0), count)                      # ceil(-start / stride)
    hi = min(max(-((start - size) // stride), lo), count)            # ceil((size - start) / stride)
    return lo, hi


def _zero_outside(flat, start, out_h, out_w, a_lo, a_hi, b_lo, b_hi):
    """Zero the (out_h, out_w) plane at ``flat[start:]`` outside rows [a_lo, a_hi) x columns [b_lo, b_hi)."""
    base = np.uint64(start)
    for k in range(np.uint64(a_lo * out_w)):
        flat[base + k] = 0
    for a in range(a_lo, a_hi):
        row = np.uint64(start + a * out_w)
        for b in range(np.uint64(b_lo)):
            flat[row + b] = 0
        for b in range(np.uint64(b_hi), np.uint64(out_w)):
            flat[row + b] = 0
    for k in range(np.uint64(a_hi * out_w), np.uint64(out_h * out_w)):
        flat[base + k] = 0


def _im2col_loops(x, cols, kh, kw, sh, sw, ph, pw, dh, dw):
    """cols (C, KH, KW, N, OH, OW) <- x (N, C, H, W)."""
    n_batch, channels, height, width = x.shape
    out_h, out_w = cols.shape[4], cols.shape[5]
    src, dst = x.reshape(-1), cols.reshape(-1)  # flat: no view is made per plane
    for c in range(channels):
        for i in range(kh):
            top = i * dh - ph
            a_lo, a_hi = _valid_range(top, sh, height, out_h)
            for j in range(kw):
                left = j * dw - pw
                b_lo, b_hi = _valid_range(left, sw, width, out_w)
                # The rows that see input pixels: none when no column does (their offsets, computed
                # below, would then start before the plane).
                rows_hi = a_hi if b_hi > b_lo else a_lo
                # With stride 1 and rows as wide as the input's, the rectangle is one contiguous run
                # shifted by a constant: copy it in one loop (the columns it wraps into are padding,
                # zeroed after). Otherwise copy row by row.
                one_run = sh == 1 and sw == 1 and out_w == width and rows_hi > a_lo
                run, step = np.uint64(b_hi - b_lo), np.uint64(sw)
                for n in range(n_batch):
                    x_plane = (n * channels + c) * height * width
                    cols_plane = (((c * kh + i) * kw + j) * n_batch + n) * out_h * out_w
                    if one_run:
                        d = np.uint64(cols_plane + a_lo * out_w + b_lo)
                        s = np.uint64(x_plane + (top + a_lo) * width + left + b_lo)
                        for k in range(np.uint64((rows_hi - a_lo - 1) * out_w + b_hi - b_lo)):
                            dst[d + k] = src[s + k]
                    else:
                        for a in range(a_lo, rows_hi):
                            d = np.uint64(cols_plane + a * out_w + b_lo)
                            s = np.uint64(x_plane + (top + a * sh) * width + left + b_lo * sw)
                            for k in range(run):
                                dst[d + k] = src[s + k * step]
                    _zero_outside(dst, cols_plane, out_h, out_w, a_lo, a_hi, b_lo, b_hi)


def _col2im_loops(cols, x, kh, kw, sh, sw, ph, pw, dh, dw):
    """x (N, C, H, W) <- the sum over kernel offsets of cols (C, KH, KW, N, OH, OW), moved back into place."""
    n_batch, channels, height, width = x.shape
    out_h, out_w = cols.shape[4], cols.shape[5]
    src, dst = cols.reshape(-1), x.reshape(-1)
    dst[:] = 0
    # With stride 1 and rows as wide as the input's, as in im2col, one offset's rectangle is one
    # run shifted by a constant; but the entries it wraps into belong to padding and must not be
    # added, so the run is copied under a mask, keep[j, k]: position k of offset j's run is a
    # real column.
    one_run = sh == 1 and sw == 1 and out_w == width
    keep = np.zeros((kw, out_h * out_w if one_run else 0), dtype=np.bool_)
    for j in range(kw if one_run else 0):
        b_lo, b_hi = _valid_range(j * dw - pw, 1, width, out_w)
        for k in range(out_h * out_w):
            keep[j, k] = b_lo <= (b_lo + k) % out_w < b_hi
    for n in range(n_batch):
        for c in range(channels):
            x_plane = (n * channels + c) * height * width
            for i in range(kh):
                top = i * dh - ph
                a_lo, a_hi = _valid_range(top, sh, height, out_h)
                for j in range(kw):
                    left = j * dw - pw
                    b_lo, b_hi = _valid_range(left, sw, width, out_w)
                    rows_hi = a_hi if b_hi > b_lo else a_lo  # as in im2col
                    cols_plane = (((c * kh + i) * kw + j) * n_batch + n) * out_h * out_w
                    if one_run and rows_hi > a_lo:
                        s = np.uint64(cols_plane + a_lo * out_w + b_lo)
                        d = np.uint64(x_plane + (top + a_lo) * width + left + b_lo)
                        mask = keep[j]
                        for k in range(np.uint64((rows_hi - a_lo - 1) * out_w + b_hi - b_lo)):
                            total = dst[d + k] + src[s + k]
                            dst[d + k] = total if mask[k] else dst[d + k]
                        continue
                    run, step = np.uint64(b_hi - b_lo), np.uint64(sw)
                    for a in range(a_lo, rows_hi):
                        s = np.uint64(cols_plane + a * out_w + b_lo)
                        d = np.uint64(x_plane + (top + a * sh) * width + left + b_lo * sw)
                        for k in range(run):
                            dst[d + k * step] += src[s + k]


def _cnhw_to_nchw_loops(y_t, bias, y):
    """y (N, O, L) <- y_t (O, N, L) + bias[o], one contiguous plane of L at a time."""
    channels, n_batch, plane = y_t.shape
    src, dst, run = y_t.reshape(-1), y.reshape(-1), np.uint64(plane)
    for n in range(n_batch):
        for o in range(channels):
            s, d, b = np.uint64((o * n_batch + n) * plane), np.uint64((n * channels + o) * plane), bias[o]
            for k in range(run):
                dst[d + k] = src[s + k] + b


def _nchw_to_cnhw_loops(grad_y, grad_t, sums):
    """grad_t (O, N, L) <- grad_y (N, O, L), and sums[o] <- the sum of channel o (in float64)."""
    n_batch, channels, plane = grad_y.shape
    src, dst, run = grad_y.reshape(-1), grad_t.reshape(-1), np.uint64(plane)
    for o in range(channels):
        total = 0.0
        for n in range(n_batch):
            s, d = np.uint64((n * channels + o) * plane), np.uint64((o * n_batch + n) * plane)
            for k in range(run):
                value = src[s + k]
                dst[d + k] = value
                total += value
        sums[o] = total


# --- channels-last patches (see the module's docstring) ------------------------------------


def _pad_channels_last_loops(x, padded, ph, pw):
    """padded (N, H + 2*ph, W + 2*pw, C) <- x (N, C, H, W) moved channels last, zero in the border."""
    n_batch, channels, height, width = x.shape
    zero = x.dtype.type(0)
    for n in range(n_batch):
        for a in range(padded.shape[1]):
            if a < ph or a >= ph + height:
                padded[n, a] = zero
                continue
            padded[n, a, :pw] = zero
            padded[n, a, pw + width:] = zero
            for b in range(width):
                for c in range(channels):
                    padded[n, a, pw + b, c] = x[n, c, a - ph, b]


def _unpad_channels_first_loops(padded, x, ph, pw):
    """x (N, C, H, W) <- padded (N, H + 2*ph, W + 2*pw, C) without its border, moved channels first."""
    n_batch, channels, height, width = x.shape
    for n in range(n_batch):
        for c in range(channels):
            for a in range(height):
                for b in range(width):
                    x[n, c, a, b] = padded[n, ph + a, pw + b, c]


def _patches_loops(padded, cols, kh, kw, sh, sw, dh, dw, add_back):
    """cols (N, OH, OW, KH, KW, C) <- padded (N, H', W', C): the window under each output position;
    or, with ``add_back``, padded <- the sum of cols added back under the windows (the backward
    of the copy). Kernel row i of position (a, b) is KW*C consecutive values of padded when dw
    is 1 (KW runs of C otherwise)."""
    n_batch, padded_h, padded_w, channels = padded.shape
    out_h, out_w = cols.shape[1], cols.shape[2]
    flat_padded, flat_cols = padded.reshape(-1), cols.reshape(-1)
    if add_back:
        flat_padded[:] = 0
    run = np.uint64(kw * channels if dw == 1 else channels)
    runs_per_row, run_step = (1, 0) if dw == 1 else (kw, dw * channels)
    c = np.uint64(0)
    for n in range(n_batch):
        for a in range(out_h):
            for b in range(out_w):
                for i in range(kh):
                    start = ((n * padded_h + a * sh + i * dh) * padded_w + b * sw) * channels
                    for j in range(runs_per_row):
                        p = np.uint64(start + j * run_step)
                        if add_back:
                            for k in range(run):
                                flat_padded[p + k] += flat_cols[c + k]
                        else:
                            for k in range(run):
                                flat_cols[c + k] = flat_padded[p + k]
                        c += run


def _channels_last_to_first_loops(y_t, bias, y):
    """y (N, O, L) <- y_t (N, L, O) + bias[o]: a product's channels-last rows moved channels first."""
    n_batch, channels, plane = y.shape
    for n in range(n_batch):
        for o in range(channels):
            b = bias[o]
            for k in range(plane):
                y[n, o, k] = y_t[n, k, o] + b


# --- wide rows, for the shifted products of stride-1 convolutions (see conv_numba) -----------


def _to_wide_loops(x, wide, start, plane, row_step, sums):
    """wide[c, start + n*plane + a*row_step + b] <- x[n, c, a, b] for x (N, C, H, W) and wide
    (C, L), each channel's planes laid one after another in a row of wide with rows of row_step
    values; the other entries of wide are left as they are. If sums is not empty, sums[c] <- the
    sum of channel c (in float64)."""
    n_batch, channels, height, width = x.shape
    run = np.uint64(width)
    for n in range(n_batch):
        for c in range(channels):
            for a in range(height):
                d = np.uint64(start + n * plane + a * row_step)
                for b in range(run):
                    wide[c, d + b] = x[n, c, a, b]
    for c in range(sums.size):
        total = 0.0
        for n in range(n_batch):
            for a in range(height):
                for b in range(width):
                    total += x[n, c, a, b]
        sums[c] = total


def _from_wide_loops(wide, start, plane, row_step, bias, x):
    """x[n, c, a, b] <- wide[c, start + n*plane + a*row_step + b] + bias[c]: the inverse of
    ``_to_wide_loops``, for x (N, C, H, W)."""
    n_batch, channels, height, width = x.shape
    run = np.uint64(width)
    for n in range(n_batch):
        for c in range(channels):
            shift = bias[c]
            for a in range(height):
                s = np.uint64(start + n * plane + a * row_step)
                for b in range(run):
                    x[n, c, a, b] = wide[c, s + b] + shift


# The helpers are compiled under its own name because the kernels call them by those names.
_valid_range = jit(inline="always")(_valid_range)
_zero_outside = jit(inline="always")(_zero_outside)
_im2col_jit = jit()(_im2col_loops)
_col2im_jit = jit()(_col2im_loops)
_cnhw_to_nchw_jit = jit()(_cnhw_to_nchw_loops)
# Reassociation lets LLVM vectorise the float64 channel sums; it changes only their rounding.
_nchw_to_cnhw_jit = jit(fastmath={"reassoc"})(_nchw_to_cnhw_loops)
_pad_channels_last_jit = jit()(_pad_channels_last_loops)
_unpad_channels_first_jit = jit()(_unpad_channels_first_loops)
_patches_jit = jit()(_patches_loops)
_channels_last_to_first_jit = jit()(_channels_last_to_first_loops)
_to_wide_jit = jit(fastmath={"reassoc"})(_to_wide_loops)
_from_wide_jit = jit()(_from_wide_loops)


def im2col(x, kernel_size, stride, padding, dilation):
    n, c, h, w = x.shape
    kh, kw = kernel_size
    out_h, out_w = output_hw(x.shape, kernel_size, stride, padding, dilation)
    cols = np.empty((c, kh, kw, n, out_h, out_w), dtype=x.dtype)
    _im2col_jit(np.ascontiguousarray(x), cols, kh, kw, *stride, *padding, *dilation)
    return cols.reshape(c * kh * kw, n * out_h * out_w)


def col2im(cols, x_shape, kernel_size, stride, padding, dilation):
    n, c, h, w = x_shape
    kh, kw = kernel_size
    out_h, out_w = output_hw(x_shape, kernel_size, stride, padding, dilation)
    x = np.empty(x_shape, dtype=cols.dtype)
    _col2im_jit(np.ascontiguousarray(cols).reshape(c, kh, kw, n, out_h, out_w), x, kh, kw, *stride, *padding, *dilation)
    return x


def cnhw_to_nchw(y_t, bias, out=None):
    channels, n, h, w = y_t.shape
    y = np.empty((n, channels, h, w), dtype=y_t.dtype) if out is None else out
    bias = np.zeros(channels, y_t.dtype) if bias is None else bias
    _cnhw_to_nchw_jit(np.ascontiguousarray(y_t).reshape(channels, n, h * w), bias, y.reshape(n, channels, h * w))
    return y


def nchw_to_cnhw(grad_y, channel_sums):
    n, channels, h, w = grad_y.shape
    grad_t = np.empty((channels, n, h, w), dtype=grad_y.dtype)
    sums = np.empty(channels, dtype=grad_y.dtype)
    _nchw_to_cnhw_jit(np.ascontiguousarray(grad_y).reshape(n, channels, h * w), grad_t.reshape(channels, n, h * w), sums)
    return grad_t, sums if channel_sums else None
