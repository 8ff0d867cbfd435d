"""``a @ b.T`` per group, in plain array code: the reference for ``matmul_numba``.

Written with the array module of its input, so the same line also runs on CuPy.
"""
from ..backend import get_array_module


def matmul_transposed(a, b):
    """a (G, M, P), b (G, N, P) -> (G, M, N): each group's a @ b.T."""
    return get_array_module(a).matmul(a, b.transpose(0, 2, 1))


def matmul(a, b):
    """a (M, K) @ b (K, N) -> (M, N)."""
    return a @ b


def matmul_tn(a, b):
    """a (K, M), b (K, N) -> a.T @ b (M, N)."""
    return a.T @ b
