"""Matrix products on numba's threads, each part one call of the private single-threaded BLAS
(``blas.gemm``): ``Linear``'s products (``matmul``, ``matmul_tn``) and a grouped ``a @ b.T``
(``matmul_transposed``).

A product splits its work into one part per thread: by the rows of the product when each thread
gets at least ``MIN_PART_ROWS``, else by its columns (when b is a transposed weight, as in
``Linear``'s forward) or by the axis summed over (adding the partial products). With a batch of
16 the rows alone are too few to keep two threads busy (the MNIST MLP's step was faster this
way than split by rows, unsplit, or on NumPy's threaded BLAS: ``benchmarks/HISTORY.md``). Products under ``PARALLEL_WORK``
multiply-adds are not split.
"""
import numpy as np
from numba import prange

from .blas import gemm
from .compiling import jit
from .threads import batch_parts, part, rows

#: Multiply-adds below which ``matmul`` and ``matmul_tn`` do not split a product between threads.
PARALLEL_WORK = 2**18
#: Rows per thread below which a product is split along another axis than its rows.
MIN_PART_ROWS = 32


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


_matmul_parallel_jit = jit(parallel=True)(_matmul_parallel)
_matmul_tn_parallel_jit = jit(parallel=True)(_matmul_tn_parallel)
_matmul_columns_parallel_jit = jit(parallel=True)(_matmul_columns_parallel)
_matmul_tn_columns_parallel_jit = jit(parallel=True)(_matmul_tn_columns_parallel)


def _parts(work, length):
    """Parts for a product of ``work`` multiply-adds split along an axis of ``length``: one when it is small."""
    return 1 if work < PARALLEL_WORK else batch_parts(length)


def _common_dtype(a, b):
    """a and b in their common dtype, as NumPy's product would compute in (BLAS takes one)."""
    dtype = np.result_type(a, b)
    return a.astype(dtype, copy=False), b.astype(dtype, copy=False)


def matmul(a, b):
    a, b = _common_dtype(a, b)
    out = np.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
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
    a, b = _common_dtype(a, b)
    parts = _parts(a.size * b.shape[1], a.shape[0])
    out = np.empty((a.shape[1], b.shape[1]), dtype=a.dtype)
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
    out = np.empty((a.shape[0], a.shape[1], b.shape[1]), dtype=np.result_type(a, b))
    for g in range(len(a)):
        out[g] = matmul(a[g], b[g].T)
    return out
