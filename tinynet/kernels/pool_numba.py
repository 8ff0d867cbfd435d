"""Max and average pooling as compiled numba loops, one (N, C) plane at a time.

Plain functions are bound, compiled, to ``*_jit`` names (see ``im2col_numba``).

How the loops are written, and why (measured on the MNIST CNN's shapes):

* Arrays are indexed flat, with offsets computed per plane: making a view
  per plane (``x[n, c]``) cost more than the pooling of a 14 x 14 plane.
* A window that lies inside the input (every window, without padding) takes
  a short path: no clipping, and the maximum is found with a plain ``>``.
  Windows that touch the padding take the general path, and so does every
  window of a plane that holds a NaN, where PyTorch's rule ("a NaN always
  wins") needs a second comparison that slowed the whole loop several times.
* MaxPool2d(2) and AvgPool2d(2) (kernel 2, stride 2), by far the most common
  pools, are compiled as their own case: the helper is inlined with constant
  window sizes, so LLVM unrolls the window loops.
  Max pooling now takes that case only with padding or an odd width; the
  two-pass path below serves the rest.
* MaxPool2d(2) without padding on inputs of even width, the MNIST CNN's case, takes a path of
  its own in two passes (``_max_pool_2x2_loops``): the larger of each horizontal pair over the
  whole array as one flat loop, whose stride-2 loads LLVM vectorises, then the larger of two
  such rows. Windows of 2 inside rows of 14 or 28 were too short for LLVM to vectorise the
  one-pass loop. Each
  choice is a branch-free select that also lets a NaN win, so this path needs no NaN scan.
* Each loop runs on one thread; the ``*_parallel`` functions below call it on parts of the
  batch, one part per thread (see ``tinynet.kernels.threads``).
"""
import numpy as np
from numba import prange

from . import output_shape
from .compiling import jit
from .threads import batch_parts, part, rows


def _has_nan(flat, start, size):
    """True if ``flat[start:start + size]`` holds a NaN (a branch-free loop, so it vectorises)."""
    found = False
    base = np.uint64(start)
    for k in range(np.uint64(size)):
        found |= flat[base + k] != flat[base + k]
    return found


def _inside_range(pad, stride, size, kernel, count):
    """The outputs b in [lo, hi) whose whole window [b*stride - pad, b*stride - pad + kernel) lies in [0, size)."""
    lo = min(max(-(-pad // stride), 0), count)                         # ceil(pad / stride)
    hi = min(max((size + pad - kernel) // stride + 1, lo), count)
    return lo, hi


def _max_pool_window(src, x_plane, height, width, h0, w0, kh, kw):
    """PyTorch's rule for one window at (h0, w0), padding allowed: start at its first real pixel
    with -inf, take a value that is strictly greater or a NaN. Returns (max, flat position)."""
    h_lo, h_hi, w_lo, w_hi = max(h0, 0), min(h0 + kh, height), max(w0, 0), min(w0 + kw, width)
    best, where = src.dtype.type(-np.inf), np.uint64(h_lo * width + w_lo)
    for h in range(h_lo, h_hi):
        for w in range(w_lo, w_hi):
            value = src[x_plane + h * width + w]
            if value > best or value != value:
                best, where = value, np.uint64(h * width + w)
    return best, where


def _max_pool_plane(src, y, indices, x_plane, y_plane, height, width, out_h, out_w, kh, kw, sh, sw, ph, pw, with_indices):
    """Max-pool one plane: src[x_plane:] (H, W) -> y, and indices if ``with_indices``, [y_plane:] (OH, OW), all flat."""
    a_lo, a_hi = _inside_range(ph, sh, height, kh, out_h)
    b_lo, b_hi = _inside_range(pw, sw, width, kw, out_w)
    if _has_nan(src, x_plane, height * width):
        a_lo = a_hi = 0  # every window takes the general path
    base, row = np.uint64(x_plane), np.uint64(width)
    for a in range(out_h):
        h0 = a * sh - ph
        # Windows inside the input, [lo, hi), take the short path: a branch-free loop that LLVM
        # vectorises. The rest touch the padding (or the plane holds a NaN) and take the general one.
        lo, hi = (b_lo, b_hi) if a_lo <= a < a_hi else (out_w, out_w)
        for b in range(lo):
            best, where = _max_pool_window(src, x_plane, height, width, h0, b * sw - pw, kh, kw)
            y[y_plane + a * out_w + b] = best
            if with_indices:
                indices[y_plane + a * out_w + b] = where
        for b in range(lo, hi):
            corner = np.uint64(h0 * width + b * sw - pw)
            best, where = src[base + corner], corner
            for i in range(np.uint64(kh)):
                for j in range(np.uint64(kw)):
                    position = corner + i * row + j
                    value = src[base + position]
                    if value > best:  # strictly: the first maximum (row-major) wins a tie
                        best, where = value, position
            y[y_plane + a * out_w + b] = best
            if with_indices:
                indices[y_plane + a * out_w + b] = where
        for b in range(hi, out_w):
            best, where = _max_pool_window(src, x_plane, height, width, h0, b * sw - pw, kh, kw)
            y[y_plane + a * out_w + b] = best
            if with_indices:
                indices[y_plane + a * out_w + b] = where


def _max_pool_loops(x, y, indices, kh, kw, sh, sw, ph, pw, with_indices):
    """y, indices (N, C, OH, OW) <- x (N, C, H, W): window maxima and, if ``with_indices``, their
    flat h*W + w positions (else ``indices`` is not touched)."""
    n_batch, channels, height, width = x.shape
    out_h, out_w = y.shape[2], y.shape[3]
    src, dst, where = x.reshape(-1), y.reshape(-1), indices.reshape(-1)
    for plane in range(n_batch * channels):
        x_plane, y_plane = plane * height * width, plane * out_h * out_w
        if kh == 2 and kw == 2 and sh == 2 and sw == 2 and with_indices:
            _max_pool_plane(src, dst, where, x_plane, y_plane, height, width, out_h, out_w, 2, 2, 2, 2, ph, pw, True)
        elif kh == 2 and kw == 2 and sh == 2 and sw == 2:
            _max_pool_plane(src, dst, where, x_plane, y_plane, height, width, out_h, out_w, 2, 2, 2, 2, ph, pw, False)
        else:
            _max_pool_plane(src, dst, where, x_plane, y_plane, height, width, out_h, out_w, kh, kw, sh, sw, ph, pw, with_indices)


def _larger(first, second):
    """(the larger of two values, True if it is the second): the first wins a tie, a NaN wins,
    the second of two NaNs wins (PyTorch's rule for consecutive window elements)."""
    second_wins = (second > first) | (second != second)
    return (second if second_wins else first), second_wins


def _max_pool_2x2_loops(x, y, indices, pair_max, pair_choice, with_indices):
    """y, and indices if ``with_indices``, (N, C, H//2, W//2) <- x (N, C, H, W) with W even:
    MaxPool2d(2) through ``pair_max`` and ``pair_choice`` (x.size // 2 each; ``pair_choice`` is
    neither read nor written without indices), the larger of every horizontal pair of x and
    whether it was the right one."""
    planes, height, width = x.shape[0] * x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w = y.shape[2], y.shape[3]
    src, dst, where = x.reshape(-1), y.reshape(-1), indices.reshape(-1)
    one, zero = np.int32(1), np.int32(0)
    if with_indices:
        for k in range(np.uint64(src.size // 2)):
            pair_max[k], right = _larger(src[2 * k], src[2 * k + 1])
            pair_choice[k] = one if right else zero
    else:  # the choices are not needed: a loop that does not write them
        for k in range(np.uint64(src.size // 2)):
            pair_max[k] = _larger(src[2 * k], src[2 * k + 1])[0]
    next_row = np.int32(width)
    for plane in range(planes):
        for a in range(out_h):
            upper = np.uint64((plane * height + 2 * a) * out_w)  # row 2a of pair_max, which is (.., H, W//2)
            lower = upper + np.uint64(out_w)
            out = np.uint64((plane * out_h + a) * out_w)
            top = np.int32(2 * a * width)
            # int32 index arithmetic throughout: mixing in 64-bit integers kept LLVM from vectorising
            for b in range(np.uint64(out_w)):
                dst[out + b], down = _larger(pair_max[upper + b], pair_max[lower + b])
                if with_indices:
                    offset = next_row + pair_choice[lower + b] if down else pair_choice[upper + b]
                    where[out + b] = top + np.int32(2 * b) + offset


def _max_pool_backward_loops(grad_y, indices, grad_x):
    """grad_x (N, C, H, W) <- each grad_y added at the flat position its index names."""
    n_batch, channels, height, width = grad_x.shape
    outputs = grad_y.shape[2] * grad_y.shape[3]
    dst, src, where = grad_x.reshape(-1), grad_y.reshape(-1), indices.reshape(-1)
    dst[:] = 0
    for plane in range(n_batch * channels):
        x_plane, y_plane = np.uint64(plane * height * width), plane * outputs
        for k in range(y_plane, y_plane + outputs):
            dst[x_plane + np.uint64(where[k])] += src[k]


def _avg_pool_window(src, x_plane, height, width, h0, w0, kh, kw):
    """Sum of the real pixels of the window at (h0, w0); padding adds nothing."""
    total = src.dtype.type(0)
    for h in range(max(h0, 0), min(h0 + kh, height)):
        for w in range(max(w0, 0), min(w0 + kw, width)):
            total += src[x_plane + h * width + w]
    return total


def _avg_pool_plane(src, y, x_plane, y_plane, height, width, out_h, out_w, kh, kw, sh, sw, ph, pw):
    """Average-pool one plane: src[x_plane:] (H, W) -> y[y_plane:] (OH, OW), flat; padding counts as 0."""
    count = src.dtype.type(kh * kw)  # divide in the input's dtype, as the NumPy reference does
    a_lo, a_hi = _inside_range(ph, sh, height, kh, out_h)
    b_lo, b_hi = _inside_range(pw, sw, width, kw, out_w)
    base, row = np.uint64(x_plane), np.uint64(width)
    for a in range(out_h):
        h0 = a * sh - ph
        lo, hi = (b_lo, b_hi) if a_lo <= a < a_hi else (out_w, out_w)  # as in _max_pool_plane
        for b in range(lo):
            y[y_plane + a * out_w + b] = _avg_pool_window(src, x_plane, height, width, h0, b * sw - pw, kh, kw) / count
        for b in range(lo, hi):
            corner = np.uint64(h0 * width + b * sw - pw)
            total = src.dtype.type(0)
            for i in range(np.uint64(kh)):
                for j in range(np.uint64(kw)):
                    total += src[base + corner + i * row + j]
            y[y_plane + a * out_w + b] = total / count
        for b in range(hi, out_w):
            y[y_plane + a * out_w + b] = _avg_pool_window(src, x_plane, height, width, h0, b * sw - pw, kh, kw) / count


def _avg_pool_loops(x, y, kh, kw, sh, sw, ph, pw):
    """y (N, C, OH, OW) <- window sums of x divided by KH*KW (zero padding counted)."""
    n_batch, channels, height, width = x.shape
    out_h, out_w = y.shape[2], y.shape[3]
    src, dst = x.reshape(-1), y.reshape(-1)
    for plane in range(n_batch * channels):
        x_plane, y_plane = plane * height * width, plane * out_h * out_w
        if kh == 2 and kw == 2 and sh == 2 and sw == 2:
            _avg_pool_plane(src, dst, x_plane, y_plane, height, width, out_h, out_w, 2, 2, 2, 2, ph, pw)
        else:
            _avg_pool_plane(src, dst, x_plane, y_plane, height, width, out_h, out_w, kh, kw, sh, sw, ph, pw)


def _avg_pool_backward_loops(grad_y, grad_x, kh, kw, sh, sw, ph, pw):
    """grad_x (N, C, H, W) <- every grad_y / (KH*KW) added over its window.

    Offsets (i, j) form the outer loops so that each input sums its shares in the
    same order as the NumPy reference, which then agrees to the last bit.
    """
    n_batch, channels, height, width = grad_x.shape
    out_h, out_w = grad_y.shape[2], grad_y.shape[3]
    count = grad_y.dtype.type(kh * kw)
    src, dst = grad_y.reshape(-1), grad_x.reshape(-1)
    dst[:] = 0
    for plane in range(n_batch * channels):
        x_plane, y_plane = plane * height * width, plane * out_h * out_w
        for i in range(kh):
            # the outputs whose offset-i input row is a real row, not padding (a window of one row)
            a_lo, a_hi = _inside_range(ph - i, sh, height, 1, out_h)
            for j in range(kw):
                b_lo, b_hi = _inside_range(pw - j, sw, width, 1, out_w)
                run, step = np.uint64(b_hi - b_lo), np.uint64(sw)
                for a in range(a_lo, a_hi):
                    s = np.uint64(y_plane + a * out_w + b_lo)
                    d = np.uint64(x_plane + (a * sh - ph + i) * width + b_lo * sw - pw + j)
                    for k in range(run):
                        dst[d + k * step] += src[s + k] / count


# --- the batch split over numba's threads (see tinynet.kernels.threads) ----------------------
def _max_pool_parallel(x, y, indices, parts, kh, kw, sh, sw, ph, pw, with_indices):
    for p in prange(parts):
        lo, hi = part(len(x), parts, p)
        _max_pool_jit(rows(x, lo, hi), rows(y, lo, hi), rows(indices, lo, hi), kh, kw, sh, sw, ph, pw, with_indices)


def _max_pool_2x2_parallel(x, y, indices, pair_max, pair_choice, parts, with_indices):
    pairs = x[0].size // 2  # per sample
    for p in prange(parts):
        lo, hi = part(len(x), parts, p)
        _max_pool_2x2_jit(rows(x, lo, hi), rows(y, lo, hi), rows(indices, lo, hi), pair_max[lo * pairs:hi * pairs],
                          pair_choice[lo * pairs:hi * pairs], with_indices)


def _max_pool_backward_parallel(grad_y, indices, grad_x, parts):
    for p in prange(parts):
        lo, hi = part(len(grad_x), parts, p)
        _max_pool_backward_jit(rows(grad_y, lo, hi), rows(indices, lo, hi), rows(grad_x, lo, hi))


def _avg_pool_parallel(x, y, parts, kh, kw, sh, sw, ph, pw):
    for p in prange(parts):
        lo, hi = part(len(x), parts, p)
        _avg_pool_jit(rows(x, lo, hi), rows(y, lo, hi), kh, kw, sh, sw, ph, pw)


def _avg_pool_backward_parallel(grad_y, grad_x, parts, kh, kw, sh, sw, ph, pw):
    for p in prange(parts):
        lo, hi = part(len(grad_x), parts, p)
        _avg_pool_backward_jit(rows(grad_y, lo, hi), rows(grad_x, lo, hi), kh, kw, sh, sw, ph, pw)


# The helpers are compiled under their own names because the kernels call them by those names;
# inlining them lets LLVM see the constant window sizes of the kernel-2 case.
_has_nan = jit(inline="always")(_has_nan)
_inside_range = jit(inline="always")(_inside_range)
_max_pool_window = jit(inline="always")(_max_pool_window)
_max_pool_plane = jit(inline="always")(_max_pool_plane)
_avg_pool_window = jit(inline="always")(_avg_pool_window)
_avg_pool_plane = jit(inline="always")(_avg_pool_plane)
_larger = jit(inline="always")(_larger)
_max_pool_jit = jit()(_max_pool_loops)
_max_pool_2x2_jit = jit()(_max_pool_2x2_loops)
_max_pool_backward_jit = jit()(_max_pool_backward_loops)
_avg_pool_jit = jit()(_avg_pool_loops)
_avg_pool_backward_jit = jit()(_avg_pool_backward_loops)
_max_pool_parallel_jit = jit(parallel=True)(_max_pool_parallel)
_max_pool_2x2_parallel_jit = jit(parallel=True)(_max_pool_2x2_parallel)
_max_pool_backward_parallel_jit = jit(parallel=True)(_max_pool_backward_parallel)
_avg_pool_parallel_jit = jit(parallel=True)(_avg_pool_parallel)
_avg_pool_backward_parallel_jit = jit(parallel=True)(_avg_pool_backward_parallel)


def _max_pool(x, kernel_size, stride, padding, with_indices):
    shape = output_shape(x.shape, kernel_size, stride, padding)
    x, y = np.ascontiguousarray(x), np.empty(shape, dtype=x.dtype)
    indices = np.empty(shape if with_indices else (len(x), 0, 0, 0), dtype=np.int32)
    parts = batch_parts(len(x))
    if kernel_size == stride == (2, 2) and padding == (0, 0) and x.shape[3] % 2 == 0:
        pairs = x.size // 2
        choices = np.empty(pairs if with_indices else 0, np.int32)
        _max_pool_2x2_parallel_jit(x, y, indices, np.empty(pairs, x.dtype), choices, parts, with_indices)
    else:
        _max_pool_parallel_jit(x, y, indices, parts, *kernel_size, *stride, *padding, with_indices)
    return y, indices


def max_pool2d_forward(x, kernel_size, stride, padding):
    return _max_pool(x, kernel_size, stride, padding, with_indices=True)


def max_pool2d_values(x, kernel_size, stride, padding):
    return _max_pool(x, kernel_size, stride, padding, with_indices=False)[0]


def max_pool2d_backward(grad_y, indices, x_shape):
    grad_x = np.empty(x_shape, dtype=grad_y.dtype)
    _max_pool_backward_parallel_jit(np.ascontiguousarray(grad_y), np.ascontiguousarray(indices), grad_x,
                                    batch_parts(x_shape[0]))
    return grad_x


def avg_pool2d_forward(x, kernel_size, stride, padding):
    y = np.empty(output_shape(x.shape, kernel_size, stride, padding), dtype=x.dtype)
    _avg_pool_parallel_jit(np.ascontiguousarray(x), y, batch_parts(len(x)), *kernel_size, *stride, *padding)
    return y


def avg_pool2d_backward(grad_y, x_shape, kernel_size, stride, padding):
    grad_x = np.empty(x_shape, dtype=grad_y.dtype)
    _avg_pool_backward_parallel_jit(np.ascontiguousarray(grad_y), grad_x, batch_parts(x_shape[0]),
                                    *kernel_size, *stride, *padding)
    return grad_x
