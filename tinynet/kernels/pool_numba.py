"""Max and average pooling as numba loops, one thread per (n, c) plane.

Planes are independent and every thread writes only its own plane, so no
atomics are needed, even in backward where overlapping windows add into the
same input. Plain functions are bound, compiled, to ``*_jit`` names (see
``im2col_numba``).
"""
import numpy as np
from numba import njit, prange

from . import output_hw


def _max_pool_loops(x, y, indices, kh, kw, sh, sw, ph, pw):
    """y, indices (N, C, OH, OW) <- x (N, C, H, W): window maxima and their flat h*W + w positions."""
    n_batch, channels, height, width = x.shape
    out_h, out_w = y.shape[2], y.shape[3]
    for plane in prange(n_batch * channels):
        n, c = plane // channels, plane % channels
        src = x[n, c]
        for a in range(out_h):
            h0 = a * sh - ph
            h_lo, h_hi = max(h0, 0), min(h0 + kh, height)
            for b in range(out_w):
                w0 = b * sw - pw
                w_lo, w_hi = max(w0, 0), min(w0 + kw, width)
                # PyTorch's rule: start at the first real pixel with -inf, replace on a strictly
                # greater value (first maximum wins a tie) or on a NaN.
                best, where = -np.inf, h_lo * width + w_lo
                for h in range(h_lo, h_hi):
                    for w in range(w_lo, w_hi):
                        value = src[h, w]
                        if value > best or np.isnan(value):
                            best, where = value, h * width + w
                y[n, c, a, b] = best
                indices[n, c, a, b] = where


def _max_pool_backward_loops(grad_y, indices, grad_x):
    """grad_x (N, C, H, W) <- each grad_y added at the flat position its index names."""
    n_batch, channels = grad_x.shape[0], grad_x.shape[1]
    out_h, out_w = grad_y.shape[2], grad_y.shape[3]
    for plane in prange(n_batch * channels):
        n, c = plane // channels, plane % channels
        dst = grad_x[n, c].reshape(-1)
        dst[:] = 0
        for a in range(out_h):
            for b in range(out_w):
                dst[indices[n, c, a, b]] += grad_y[n, c, a, b]


def _avg_pool_loops(x, y, kh, kw, sh, sw, ph, pw):
    """y (N, C, OH, OW) <- window sums of x divided by KH*KW (zero padding counted)."""
    n_batch, channels, height, width = x.shape
    out_h, out_w = y.shape[2], y.shape[3]
    count = x.dtype.type(kh * kw)  # divide in the input's dtype, as the NumPy reference does
    for plane in prange(n_batch * channels):
        n, c = plane // channels, plane % channels
        src = x[n, c]
        for a in range(out_h):
            h0 = a * sh - ph
            for b in range(out_w):
                w0 = b * sw - pw
                total = src.dtype.type(0)
                for h in range(max(h0, 0), min(h0 + kh, height)):
                    for w in range(max(w0, 0), min(w0 + kw, width)):
                        total += src[h, w]
                y[n, c, a, b] = total / count


def _avg_pool_backward_loops(grad_y, grad_x, kh, kw, sh, sw, ph, pw):
    """grad_x (N, C, H, W) <- every grad_y / (KH*KW) added over its window.

    Offsets (i, j) form the outer loops so that each input sums its shares in the
    same order as the NumPy reference, which then agrees to the last bit.
    """
    n_batch, channels, height, width = grad_x.shape
    out_h, out_w = grad_y.shape[2], grad_y.shape[3]
    count = grad_y.dtype.type(kh * kw)
    for plane in prange(n_batch * channels):
        n, c = plane // channels, plane % channels
        dst = grad_x[n, c]
        dst[:] = 0
        for i in range(kh):
            for j in range(kw):
                for a in range(out_h):
                    h = a * sh - ph + i
                    if h < 0 or h >= height:
                        continue
                    for b in range(out_w):
                        w = b * sw - pw + j
                        if 0 <= w < width:
                            dst[h, w] += grad_y[n, c, a, b] / count


_max_pool_jit = njit(parallel=True, cache=True)(_max_pool_loops)
_max_pool_backward_jit = njit(parallel=True, cache=True)(_max_pool_backward_loops)
_avg_pool_jit = njit(parallel=True, cache=True)(_avg_pool_loops)
_avg_pool_backward_jit = njit(parallel=True, cache=True)(_avg_pool_backward_loops)


def _output_shape(shape, kernel_size, stride, padding):
    return shape[:2] + output_hw(shape, kernel_size, stride, padding)


def max_pool2d_forward(x, kernel_size, stride, padding):
    shape = _output_shape(x.shape, kernel_size, stride, padding)
    y = np.empty(shape, dtype=x.dtype)
    indices = np.empty(shape, dtype=np.int32)
    _max_pool_jit(np.ascontiguousarray(x), y, indices, *kernel_size, *stride, *padding)
    return y, indices


def max_pool2d_backward(grad_y, indices, x_shape):
    grad_x = np.empty(x_shape, dtype=grad_y.dtype)
    _max_pool_backward_jit(np.ascontiguousarray(grad_y), np.ascontiguousarray(indices), grad_x)
    return grad_x


def avg_pool2d_forward(x, kernel_size, stride, padding):
    y = np.empty(_output_shape(x.shape, kernel_size, stride, padding), dtype=x.dtype)
    _avg_pool_jit(np.ascontiguousarray(x), y, *kernel_size, *stride, *padding)
    return y


def avg_pool2d_backward(grad_y, x_shape, kernel_size, stride, padding):
    grad_x = np.empty(x_shape, dtype=grad_y.dtype)
    _avg_pool_backward_jit(np.ascontiguousarray(grad_y), grad_x, *kernel_size, *stride, *padding)
    return grad_x
