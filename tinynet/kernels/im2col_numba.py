"""im2col and col2im as numba loops, parallel where each thread writes its own memory.

Each kernel is a plain Python function (``_im2col_loops``) bound, compiled,
to its own name (``_im2col_jit``): tests can run the pure version, and
``NUMBA_DISABLE_JIT=1`` runs everything as Python. Compiled code is cached
on disk (``cache=True``), so only the first process pays for compilation.
"""
import numpy as np
from numba import njit, prange

from . import output_hw


def _valid_range(start, stride, size, count):
    """The outputs b in [lo, hi) whose input position ``start + b*stride`` lies in [0, size).

    The loops below copy that range with no bounds test (so it vectorises)
    and write zeros outside it.
    """
    lo = min(max(-(start // stride), 0), count)                      # ceil(-start / stride)
    hi = min(max(-((start - size) // stride), lo), count)            # ceil((size - start) / stride)
    return lo, hi


def _im2col_loops(x, cols, kh, kw, sh, sw, ph, pw, dh, dw):
    """cols (C, KH, KW, N, OH, OW) <- x (N, C, H, W); one thread per row (c, i, j) of cols."""
    n_batch, channels, height, width = x.shape
    out_h, out_w = cols.shape[4], cols.shape[5]
    for row in prange(channels * kh * kw):
        c, i, j = row // (kh * kw), row // kw % kh, row % kw
        left = j * dw - pw
        lo, hi = _valid_range(left, sw, width, out_w)
        for n in range(n_batch):
            for a in range(out_h):
                h = a * sh + i * dh - ph
                out = cols[c, i, j, n, a]
                if h < 0 or h >= height:
                    out[:] = 0
                    continue
                src = x[n, c, h]
                out[:lo] = 0
                for b in range(lo, hi):
                    out[b] = src[left + b * sw]
                out[hi:] = 0


def _col2im_loops(cols, x, kh, kw, sh, sw, ph, pw, dh, dw):
    """x (N, C, H, W) <- sum over cols (C, KH, KW, N, OH, OW); one thread per (n, c) plane of x."""
    n_batch, channels, height, width = x.shape
    out_h, out_w = cols.shape[4], cols.shape[5]
    for plane in prange(n_batch * channels):
        n, c = plane // channels, plane % channels
        dst = x[n, c]
        dst[:] = 0
        for i in range(kh):
            for j in range(kw):
                left = j * dw - pw
                lo, hi = _valid_range(left, sw, width, out_w)
                for a in range(out_h):
                    h = a * sh + i * dh - ph
                    if h < 0 or h >= height:
                        continue
                    src = cols[c, i, j, n, a]
                    dst_row = dst[h]
                    for b in range(lo, hi):
                        dst_row[left + b * sw] += src[b]


_valid_range = njit(cache=True, inline="always")(_valid_range)
_im2col_jit = njit(parallel=True, cache=True)(_im2col_loops)
_col2im_jit = njit(parallel=True, cache=True)(_col2im_loops)


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
