"""tinynet's own BLAS: a private, single-threaded OpenBLAS that the numba kernels call for their
matrix products (``gemm``).

Why a BLAS of its own:

* Threads. The kernels already run one part of the batch per thread of numba's pool (see
  ``threads``); each part's product must run on that thread alone. NumPy's and SciPy's BLAS
  belong to the user, who may want their threads, and limiting them is a side effect on code
  that is not ours. This copy is loaded privately (``ctypes``, local symbols) and set to one
  thread; nothing else in the process calls it, and NumPy's and SciPy's are left as they are.
* Speed. The library is the ``scipy-openblas32`` wheel, a recent OpenBLAS. numba's ``np.dot``
  calls SciPy's, which is often older and was slower on the MNIST CNN's short, wide products
  (``benchmarks/HISTORY.md``). OpenBLAS 0.3.31 was as fast as 0.3.34 on one thread; hence
  ``scipy-openblas32>=0.3.31``.

How it stays private: the package is located, not imported (importing ``scipy_openblas32`` loads
the library with global symbols, and SciPy's extension modules imported later would then bind
their ``scipy_dgemm_`` to this single-threaded copy), and the file is loaded with local symbols.
threadpoolctl sees it like any other OpenBLAS: ``threadpool_limits(n, user_api="blas")`` sets
this copy to n threads too, and tinynet's products then compete with numba's threads again.

How numba calls it: the library's CBLAS functions are registered with LLVM under names of our
own (``llvmlite.binding.add_symbol``) and declared to numba as external functions, which
compiled code calls by name. Cached kernels keep working in a new process because the names are
resolved again when the cache is loaded, after this module has registered them at their new
addresses. (numba caches a caller with the code of the jitted functions it calls; ``compiling.jit``
keys every kernel's cache to this file too, so an edited ``gemm`` is compiled again.)

Under ``NUMBA_DISABLE_JIT=1`` ``gemm`` runs as Python and multiplies with NumPy instead (compiled
code alone can call the BLAS this way).
"""
import ctypes
import importlib.util
import os

import llvmlite.binding
import numpy as np
from numba import types
from numba.extending import overload

from .compiling import jit

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112  # CBLAS_ORDER and CBLAS_TRANSPOSE values from cblas.h


def library_path(folder=None):
    """The shared library of ``scipy-openblas32`` (.so, .dylib or .dll) in ``folder``, by default
    the installed wheel's lib folder, found without importing the package (see above). (The
    package's ``get_library()`` names the .lib import library on Windows.)"""
    if folder is None:
        spec = importlib.util.find_spec("scipy_openblas32")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("tinynet: the numba kernels need scipy-openblas32: pip install scipy-openblas32")
        folder = os.path.join(spec.submodule_search_locations[0], "lib")
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if name.startswith("libscipy_openblas") and name.endswith((".so", ".dylib", ".dll")):
            return os.path.join(folder, name)
    raise ImportError(f"tinynet: no OpenBLAS library (libscipy_openblas.so, .dylib or .dll) in {folder}; "
                      f"reinstall it: pip install --force-reinstall scipy-openblas32")


def _load():
    """The OpenBLAS of ``scipy-openblas32``, set to one thread; its CBLAS gemm registered with
    LLVM as ``tinynet_cblas_sgemm`` and ``tinynet_cblas_dgemm``."""
    library = ctypes.CDLL(library_path(), mode=getattr(os, "RTLD_LOCAL", 0))
    library.scipy_openblas_set_num_threads(1)
    for name in ("sgemm", "dgemm"):
        function = getattr(library, "scipy_cblas_" + name)
        llvmlite.binding.add_symbol("tinynet_cblas_" + name, ctypes.cast(function, ctypes.c_void_p).value)
    return library


LIBRARY = _load()


def _cblas_gemm(name, real):
    """cblas_?gemm(order, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) as a
    function numba can call; the matrices are passed as addresses."""
    i32, address = types.int32, types.voidptr
    return types.ExternalFunction(name, types.void(i32, i32, i32, i32, i32, i32, real, address, i32, address, i32,
                                                   real, address, i32))


_sgemm = _cblas_gemm("tinynet_cblas_sgemm", types.float32)
_dgemm = _cblas_gemm("tinynet_cblas_dgemm", types.float64)


def _one_real_dtype(a, b, out):
    """Whether a, b and out all hold float32, or all float64 (decided when numba compiles the caller)."""
    return a.dtype == b.dtype == out.dtype and a.dtype in (np.float32, np.float64)


@overload(_one_real_dtype)
def _one_real_dtype_typed(a, b, out):
    same = a.dtype == b.dtype == out.dtype and isinstance(out.dtype, types.Float) and out.dtype.bitwidth in (32, 64)
    return lambda a, b, out: same


@jit()
def _as_operand(row_step, col_step, itemsize, rows, cols):
    """How BLAS reads a (rows, cols) matrix whose rows and columns are ``row_step`` and
    ``col_step`` bytes apart: (_NO_TRANS, leading dimension) if its rows are runs of contiguous
    values (C order, or rows of a wider C-ordered matrix), (_TRANS, leading dimension) if its
    columns are, (0, 0) if neither. A single row (column) is a run whatever its stride, as
    NumPy's flags count it. (It takes the strides, not the array, so that numba compiles it
    once, not once per layout of array.)"""
    if col_step == itemsize or cols <= 1:
        if rows <= 1:
            return _NO_TRANS, max(1, cols)
        if row_step > 0 and row_step % itemsize == 0 and row_step // itemsize >= max(1, cols):
            return _NO_TRANS, row_step // itemsize
    if row_step == itemsize or rows <= 1:
        if cols <= 1:
            return _TRANS, max(1, rows)
        if col_step > 0 and col_step % itemsize == 0 and col_step // itemsize >= max(1, rows):
            return _TRANS, col_step // itemsize
    return 0, 0


def _product(a, b, out, accumulate, trans_a, lda, trans_b, ldb, ldc):
    """out <- a @ b, or out += a @ b, for checked, non-empty operands that BLAS reads as the
    transpose flags and leading dimensions say: in compiled code one call of the private BLAS
    (below); run as Python (``NUMBA_DISABLE_JIT=1``), NumPy's product."""
    if accumulate:
        out += a @ b
    else:
        np.matmul(a, b, out=out)


@overload(_product)
def _product_typed(a, b, out, accumulate, trans_a, lda, trans_b, ldb, ldc):
    def product(a, b, out, accumulate, trans_a, lda, trans_b, ldb, ldc):
        m, k = a.shape
        n = b.shape[1]
        if out.itemsize == 4:
            _sgemm(_ROW_MAJOR, trans_a, trans_b, m, n, k, np.float32(1), a.ctypes.data, lda, b.ctypes.data, ldb,
                   np.float32(1 if accumulate else 0), out.ctypes.data, ldc)
        else:
            _dgemm(_ROW_MAJOR, trans_a, trans_b, m, n, k, 1.0, a.ctypes.data, lda, b.ctypes.data, ldb,
                   1.0 if accumulate else 0.0, out.ctypes.data, ldc)
    return product


@jit()
def gemm(a, b, out, accumulate=False):
    """out (M, N) <- a (M, K) @ b (K, N), or out += a @ b with ``accumulate``, on the calling thread.

    a, b and out are float32, or float64, all three. a and b may each be read by rows or by columns:
    C- or F-ordered, or a block of a larger matrix whose rows (or columns) are runs of contiguous
    values, such as ``m[:, i:j]`` of a C-ordered m (BLAS's leading dimension; it reads the transpose
    of a C-ordered array without a copy); out's rows must be such runs."""
    m, k = a.shape
    n = b.shape[1]
    if out.shape != (m, n) or b.shape[0] != k:
        raise ValueError("blas.gemm: shapes must be a (M, K), b (K, N) and out (M, N)")
    if not _one_real_dtype(a, b, out):
        raise ValueError("blas.gemm: a, b and out must have one dtype, float32 or float64")
    if max(m, n, k) >= 2**31:
        raise ValueError("blas.gemm: the 32-bit BLAS takes dimensions below 2**31")
    if m == 0 or n == 0:
        return
    out_order, ldc = _as_operand(out.strides[0], out.strides[1], out.itemsize, m, n)
    if out_order != _NO_TRANS:
        raise ValueError("blas.gemm: out must have contiguous rows")
    if k == 0:  # an empty sum; BLAS would reject the leading dimension 0
        if not accumulate:
            out[:] = 0
        return
    trans_a, lda = _as_operand(a.strides[0], a.strides[1], a.itemsize, m, k)
    trans_b, ldb = _as_operand(b.strides[0], b.strides[1], b.itemsize, k, n)
    if trans_a == 0 or trans_b == 0:
        raise ValueError("blas.gemm: a and b must each have contiguous rows or contiguous columns")
    if max(lda, ldb, ldc) >= 2**31:
        raise ValueError("blas.gemm: the 32-bit BLAS takes leading dimensions (row or column steps) below 2**31")
    _product(a, b, out, accumulate, trans_a, lda, trans_b, ldb, ldc)
