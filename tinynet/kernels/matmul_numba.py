"""``a @ b.T``: a compiled loop for products with a small result and a long inner dimension,
BLAS for the rest.

The convolution's weight gradient is such a product: (O, N*OH*OW) @ (N*OH*OW, C*KH*KW), a
result of a few hundred numbers, each a dot product tens of thousands long. OpenBLAS blocks for
large results and spends most of its time packing here; on the MNIST CNN's layers (2 cores,
float32) it takes 0.45 ms for the first one's (8 x 9, inner 47,040) and 0.78 ms for the second's
(16 x 72, inner 11,760), this loop 0.08 and 0.31 ms on one core.

How the loop is written, and why:

* Each pass takes 4 rows of ``a`` and 3 rows of ``b`` and keeps their 12 dot products in
  registers, so every value loaded feeds 3 or 4 multiply-adds (one row pair at a time, the
  loads would bound it at one multiply-add each). At the edges of the result, the missing rows
  repeat the last real one and their sums are dropped.
* The inner dimension is walked in chunks of ``_CHUNK`` so that the 7 rows' chunks stay in the
  cache while every block of the result visits them.
* ``fastmath={"reassoc", "contract"}`` lets LLVM keep vector partial sums and use FMA: the sums
  are added in another order than BLAS's, so results differ from ``a @ b.T`` by rounding alone.
* Indices are unsigned and arrays flat, as in ``im2col_numba`` (signed indices block vectorising).

``matmul`` and ``matmul_tn``, ``Linear``'s products, split their work into one part per thread,
each a single-threaded BLAS call: by the rows of the product when each thread gets at least
``MIN_PART_ROWS``, else by its columns (when b is a transposed weight, as in ``Linear``'s forward)
or by the axis summed over (adding the partial products). With a batch of 16 the rows alone are
too few: the MNIST MLP's step took 2.2 ms split by rows, 1.4 ms unsplit, 0.93 ms like this (1.27
ms with NumPy's two-threaded BLAS).

Past ``SMALL_RESULT`` entries BLAS's two threads won (measured, inner 11,760: 8 x 72 0.17 ms
here against 0.22 ms, 16 x 72 0.30 against 0.28, 32 x 72 0.64 against 0.55), and the product is
handed to it as ``b @ a.T`` transposed, which OpenBLAS computes 1.5 to 2.8 times faster than
``a @ b.T`` on these shapes (16 x 72: 0.28 against 0.78 ms).
"""
import numpy as np
from numba import njit, prange

from .blas import gemm
from .threads import batch_parts, part, rows

#: Multiply-adds below which ``matmul`` and ``matmul_tn`` do not split a product between threads.
PARALLEL_WORK = 2**18
#: Rows per thread below which a product is split along another axis than its rows.
MIN_PART_ROWS = 32

_CHUNK = 2048  # of the inner dimension: 7 rows of it are 56 KiB in float32
_ROWS, _COLS = 4, 3  # the block of the result kept in registers
SMALL_RESULT = 1024  # entries of one group's result up to which the loop beats BLAS


def _add_block(a, b, out, a_rows, b_rows, out_start, out_width, rows, cols, start, stop):
    """out[out_start + r*out_width + c] += the dot product, over [start, stop), of the flat rows
    starting at a_rows[r] and b_rows[c], for r < rows <= 4 and c < cols <= 3."""
    zero = a.dtype.type(0)
    s00 = s01 = s02 = s10 = s11 = s12 = s20 = s21 = s22 = s30 = s31 = s32 = zero
    a0, a1, a2, a3 = a_rows
    b0, b1, b2 = b_rows
    for k in range(np.uint64(start), np.uint64(stop)):
        x0, x1, x2, x3 = a[a0 + k], a[a1 + k], a[a2 + k], a[a3 + k]
        y0, y1, y2 = b[b0 + k], b[b1 + k], b[b2 + k]
        s00 += x0 * y0
        s01 += x0 * y1
        s02 += x0 * y2
        s10 += x1 * y0
        s11 += x1 * y1
        s12 += x1 * y2
        s20 += x2 * y0
        s21 += x2 * y1
        s22 += x2 * y2
        s30 += x3 * y0
        s31 += x3 * y1
        s32 += x3 * y2
    sums = (s00, s01, s02, s10, s11, s12, s20, s21, s22, s30, s31, s32)
    for r in range(rows):
        for c in range(cols):
            out[out_start + r * out_width + c] += sums[r * _COLS + c]


def _matmul_transposed_loops(a, b, out):
    """out (G, M, N) <- a (G, M, P) @ b (G, N, P) transposed on its last two axes."""
    groups, m_rows, inner = a.shape
    n_rows = b.shape[1]
    fa, fb, fo = a.reshape(-1), b.reshape(-1), out.reshape(-1)
    fo[:] = 0
    for g in range(groups):
        for start in range(0, inner, _CHUNK):
            stop = min(start + _CHUNK, inner)
            for m in range(0, m_rows, _ROWS):
                rows = min(_ROWS, m_rows - m)
                a_rows = (np.uint64((g * m_rows + min(m, m_rows - 1)) * inner),
                          np.uint64((g * m_rows + min(m + 1, m_rows - 1)) * inner),
                          np.uint64((g * m_rows + min(m + 2, m_rows - 1)) * inner),
                          np.uint64((g * m_rows + min(m + 3, m_rows - 1)) * inner))
                for n in range(0, n_rows, _COLS):
                    cols = min(_COLS, n_rows - n)
                    b_rows = (np.uint64((g * n_rows + n) * inner),
                              np.uint64((g * n_rows + min(n + 1, n_rows - 1)) * inner),
                              np.uint64((g * n_rows + min(n + 2, n_rows - 1)) * inner))
                    _add_block(fa, fb, fo, a_rows, b_rows, (g * m_rows + m) * n_rows + n, n_rows, rows, cols,
                               start, stop)


def _matmul_parallel(a, b, out, parts):
    """out (M, N) <- a (M, K) @ b (K, N), rows of a (C-contiguous) split into parts."""
    for p in prange(parts):
        lo, hi = part(a.shape[0], parts, p)
        gemm(rows(a, lo, hi), b, rows(out, lo, hi))


def _matmul_columns_parallel(a, b_t, out_t, parts):
    """out_t (N, M) <- (a (M, K) @ b (K, N)).T given b_t = b.T (N, K) C-contiguous: the columns of
    the product split into parts (for few rows and a transposed b, as ``Linear``'s forward has)."""
    for p in prange(parts):
        lo, hi = part(b_t.shape[0], parts, p)
        gemm(rows(b_t, lo, hi), a.T, rows(out_t, lo, hi))


def _matmul_tn_parallel(a, b, partial, parts):
    """partial[p] (M, N) <- a[lo:hi].T @ b[lo:hi] for a (K, M), b (K, N) C-contiguous: the rows of part p."""
    for p in prange(parts):
        lo, hi = part(a.shape[0], parts, p)
        gemm(rows(a, lo, hi).T, rows(b, lo, hi), partial[p])


def _matmul_tn_columns_parallel(a, b, out, parts):
    """out (M, N) <- a.T @ b for a (K, M), b (K, N), the columns of a (rows of out) split into parts
    (for a short sum, as ``Linear``'s weight gradient of a small batch has)."""
    for p in prange(parts):
        lo, hi = part(a.shape[1], parts, p)
        gemm(np.ascontiguousarray(a[:, lo:hi]).T, b, rows(out, lo, hi))


_add_block = njit(cache=True, inline="always", fastmath={"reassoc", "contract"})(_add_block)
_matmul_transposed_jit = njit(cache=True, fastmath={"reassoc", "contract"})(_matmul_transposed_loops)
_matmul_parallel_jit = njit(cache=True, parallel=True)(_matmul_parallel)
_matmul_tn_parallel_jit = njit(cache=True, parallel=True)(_matmul_tn_parallel)
_matmul_columns_parallel_jit = njit(cache=True, parallel=True)(_matmul_columns_parallel)
_matmul_tn_columns_parallel_jit = njit(cache=True, parallel=True)(_matmul_tn_columns_parallel)


def _parts(work, length):
    """Parts for a product of ``work`` multiply-adds split along an axis of ``length``: one when it is small."""
    return 1 if work < PARALLEL_WORK else batch_parts(length)


def matmul(a, b):
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
    if not (out.size and a.shape[1]):  # BLAS has no product of size 0; the sum over an empty axis is 0
        out[:] = 0
        return out
    parts = _parts(out.size * a.shape[1], a.shape[0])
    if parts > 1 and a.shape[0] < MIN_PART_ROWS * parts and b.flags.f_contiguous:
        out_t = np.empty((b.shape[1], a.shape[0]), dtype=out.dtype)
        _matmul_columns_parallel_jit(np.ascontiguousarray(a), b.T, out_t, batch_parts(b.shape[1]))
        out[:] = out_t.T
    elif parts > 1 and a.shape[0] < MIN_PART_ROWS * parts:  # few rows: split the sum, as matmul_tn does
        return matmul_tn(np.ascontiguousarray(a.T), b)
    else:
        _matmul_parallel_jit(np.ascontiguousarray(a), _contiguous(b), out, parts)
    return out


def matmul_tn(a, b):
    parts = _parts(a.size * b.shape[1], a.shape[0])
    out = np.empty((a.shape[1], b.shape[1]), dtype=np.result_type(a, b))
    if not (out.size and a.shape[0]):
        out[:] = 0
        return out
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    if parts > 1 and a.shape[0] < MIN_PART_ROWS * parts:
        _matmul_tn_columns_parallel_jit(a, b, out, batch_parts(a.shape[1]))
        return out
    partial = np.empty((parts,) + out.shape, dtype=out.dtype)
    _matmul_tn_parallel_jit(a, b, partial, parts)
    return partial[0] if parts == 1 else partial.sum(axis=0)


def _contiguous(array):
    """array itself if it is C- or F-contiguous (BLAS takes either), else a C-contiguous copy."""
    return array if array.flags.c_contiguous or array.flags.f_contiguous else np.ascontiguousarray(array)


def matmul_transposed(a, b):
    groups, m_rows, inner = a.shape
    if m_rows * b.shape[1] > SMALL_RESULT:
        return np.matmul(b, a.transpose(0, 2, 1)).transpose(0, 2, 1)
    out = np.empty((groups, m_rows, b.shape[1]), dtype=a.dtype)
    _matmul_transposed_jit(np.ascontiguousarray(a), np.ascontiguousarray(b), out)
    return out
