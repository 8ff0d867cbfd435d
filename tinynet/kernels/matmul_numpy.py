"""``a @ b.T`` per group, in plain array code: the reference for ``matmul_numba``.

Written with the array module of its input, so the same line also runs on CuPy.
"""
from ..backend import get_array_module


def matmul_transposed(a, b):
    """a (G, M, P), b (G, N, P) -> (G, M, N): each group's a @ b.T."""
    return get_array_module(a).matmul(a, b.transpose(0, 2, 1))
