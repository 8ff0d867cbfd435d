"""The CPU kernels' threading policy: one pool of threads, numba's, and BLAS single-threaded inside it.

The numba kernels split the batch into ``batch_parts(n)`` contiguous parts and run one part per
thread of numba's pool (``prange``); the convolution takes a multiple of that, several small parts
per thread (see ``conv_numba``). Matrix products run inside those threads, one BLAS call per part,
on tinynet's own single-threaded OpenBLAS (``blas.gemm``). Two pools of
threads that both spin while they wait, numba's OpenMP workers and OpenBLAS's, fight for the
cores: a prototype that left BLAS its two threads ran the MNIST CNN's training step many times
slower. tinynet never calls NumPy's or SciPy's BLAS from its kernels, and leaves their
threads as the user set them.

The policy was faster than single-threaded kernels beside BLAS's threads, and stays fast when the
second core is busy elsewhere (measurements: ``benchmarks/HISTORY.md``).

How many threads: numba's (``numba.get_num_threads()``, every core by default; change it with
``numba.set_num_threads`` or ``NUMBA_NUM_THREADS``). A batch split into more parts sums the
weight gradient in another order, so results differ by rounding, not more, between thread
counts, as PyTorch's do.
"""
import numba

from .compiling import jit


def batch_parts(n):
    """How many parts a batch of ``n`` is split into: one per thread, at most one per sample."""
    return max(1, min(n, numba.get_num_threads()))


@jit(inline="always")
def rows(a, lo, hi):
    """``a[lo:hi]`` of a C-contiguous array, as a view that numba types C-contiguous too (it
    types ``a[lo:hi]`` as of any layout, and then indexes it through strides and compiles the
    kernels it is passed to once more for that layout)."""
    per_row = a.size // a.shape[0] if a.shape[0] else 0
    return a.reshape(-1)[lo * per_row:hi * per_row].reshape((hi - lo,) + a.shape[1:])


@jit(inline="always")
def part(n, parts, p):
    """Samples [lo, hi) of part p when n samples are split into ``parts`` near-equal parts
    (compiled, for the kernels' ``prange`` loops)."""
    return n * p // parts, n * (p + 1) // parts

