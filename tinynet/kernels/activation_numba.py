"""ReLU as compiled numba loops: one pass over the data, where NumPy's ``maximum`` and
``grad * (y > 0)`` make two or three: ReLU is bound by memory traffic, so passes are its cost.

Arrays of ``PARALLEL_SIZE`` elements or more are split in one part per thread (see
``tinynet.kernels.threads``). Plain functions are bound, compiled, to ``*_jit`` names (see
``im2col_numba``). Results equal ``activation_numpy``'s bit for bit: the backward multiplies by 1 or 0 as NumPy does, so a
negative gradient where y <= 0 gives -0.0 there too (PyTorch selects, and gives +0.0; the two
are equal as numbers).
"""
import math

import numpy as np
from numba import prange

from .compiling import jit
from .threads import batch_parts, part

#: Elements below which ReLU runs on the calling thread: starting the pool costs more than it saves.
PARALLEL_SIZE = 2**15


def _relu_loops(x, y):
    """y = max(x, 0) over flat arrays; ``x <= 0`` is False for a NaN, which therefore passes."""
    zero = x.dtype.type(0)
    for i in range(x.size):
        value = x[i]
        y[i] = zero if value <= zero else value


def _relu_backward_loops(grad_y, y, grad_x):
    """grad_x = grad_y * ~(y <= 0) over flat arrays."""
    zero, one = grad_y.dtype.type(0), grad_y.dtype.type(1)
    for i in range(grad_y.size):
        grad_x[i] = grad_y[i] * (zero if y[i] <= zero else one)


def _relu_parallel(x, y, parts):
    for p in prange(parts):
        lo, hi = part(x.size, parts, p)
        _relu_jit(x[lo:hi], y[lo:hi])


def _relu_backward_parallel(grad_y, y, grad_x, parts):
    for p in prange(parts):
        lo, hi = part(grad_y.size, parts, p)
        _relu_backward_jit(grad_y[lo:hi], y[lo:hi], grad_x[lo:hi])


def _erf_loops(x, y):
    """y = erf(x) over flat arrays, computed in float64 as the reference does."""
    for i in range(x.size):
        y[i] = math.erf(np.float64(x[i]))


_relu_jit = jit()(_relu_loops)
_erf_jit = jit()(_erf_loops)
_relu_backward_jit = jit()(_relu_backward_loops)
_relu_parallel_jit = jit(parallel=True)(_relu_parallel)
_relu_backward_parallel_jit = jit(parallel=True)(_relu_backward_parallel)


def _run(serial, parallel, *flat):
    """Run a loop over the flat arrays ``flat`` on this thread, or split over numba's when they are large."""
    if flat[0].size < PARALLEL_SIZE:
        serial(*flat)
    else:
        parallel(*flat, batch_parts(flat[0].size))


def relu_forward(x):
    x = np.asarray(x, order="C")  # not ascontiguousarray, which turns a 0-d array into 1-d
    y = np.empty_like(x)
    _run(_relu_jit, _relu_parallel_jit, x.reshape(-1), y.reshape(-1))
    return y


def relu_backward(grad_y, y):
    grad_y, y = np.asarray(grad_y, order="C"), np.asarray(y, order="C")
    grad_x = np.empty_like(grad_y)
    _run(_relu_backward_jit, _relu_backward_parallel_jit, grad_y.reshape(-1), y.reshape(-1), grad_x.reshape(-1))
    return grad_x


def erf(x):
    x = np.asarray(x, order="C")
    y = np.empty_like(x)
    _erf_jit(x.reshape(-1), y.reshape(-1))
    return y
