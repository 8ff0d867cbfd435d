"""Array kernels behind convolution and pooling, and the one place that picks their implementation.

Every kernel exists in interchangeable implementations with the same functions,
arguments and results:

* ``numpy``: the reference, written like the textbook (one strided slice per
  kernel offset, as in Chainer's ``im2col_cpu``), in ``*_numpy.py``;
* ``numba``: the default on the CPU, compiled loops (``*_numba.py``);
* ``cupy``: used whenever the input is a CuPy array (``*_cupy.py``).

The functions below look at the array they are given and the CPU choice, and
forward the call (Chainer's ``utils/conv.py`` pattern); nothing else in tinynet
chooses an implementation.

Choosing the CPU implementation (the GPU always uses CuPy)::

    TINYNET_KERNELS=numpy python train.py       # environment variable, read at import
    tinynet.kernels.set_backend("numpy")         # for the rest of the process
    with tinynet.kernels.use("numpy"):           # for one block (per thread / async task)
        y = model(x)
    tinynet.kernels.get_backend()                # -> "numba" by default

Layout conventions shared by all implementations:

* ``im2col`` turns x (N, C, H, W) into cols (C*KH*KW, N*OH*OW): row
  ``(c*KH + i)*KW + j`` holds, for every output position, the input pixel
  under kernel offset (i, j) of channel c (zero where the kernel overlaps the
  padding). ``weight.reshape(O, -1) @ cols`` is then the convolution, laid out
  (O, N, OH, OW), and with groups the rows of group g are one contiguous block.
* Max pooling returns, per output, the flat index ``h*W + w`` of the chosen
  input in its (H, W) plane (int32), as PyTorch's ``return_indices`` does.

Threading (CPU): the numba kernels run in parallel over ``numba.get_num_threads()``
threads; BLAS calls made by the convolution are left to NumPy's BLAS. See
``benchmarks/README.md`` for the measurements behind this.
"""
import contextlib
import contextvars
import importlib
import os

from ..backend import is_cupy_array

CPU_BACKENDS = ("numba", "numpy")


def _check_backend(name, where):
    if name not in CPU_BACKENDS:
        raise ValueError(f"{where}: the CPU kernels must be one of {CPU_BACKENDS}, got {name!r}")
    return name


_cpu_backend = contextvars.ContextVar(
    "tinynet_kernels", default=_check_backend(os.environ.get("TINYNET_KERNELS", "numba"), "TINYNET_KERNELS")
)


def get_backend():
    """The CPU kernel implementation in use here: ``"numba"`` or ``"numpy"``."""
    return _cpu_backend.get()


def set_backend(name):
    """Use the ``name`` kernels ("numba" or "numpy") on the CPU from now on (in this context)."""
    _cpu_backend.set(_check_backend(name, "tinynet.kernels.set_backend"))


@contextlib.contextmanager
def use(name):
    """Run a block with the ``name`` CPU kernels, then restore the previous choice.

    Example::

        with tinynet.kernels.use("numpy"):
            reference = model(x)
    """
    token = _cpu_backend.set(_check_backend(name, "tinynet.kernels.use"))
    try:
        yield
    finally:
        _cpu_backend.reset(token)


def _implementation(family, array):
    """The module ``<family>_<backend>`` that should process ``array`` (imported on first use)."""
    backend = "cupy" if is_cupy_array(array) else _cpu_backend.get()
    return importlib.import_module(f"{__name__}.{family}_{backend}")


def output_size(size, kernel, stride, padding, dilation=1):
    """Positions a window of ``kernel`` taps ``dilation`` apart takes along an axis of ``size``
    padded by ``padding`` on both sides, moving by ``stride``:
    ``floor((size + 2*padding - dilation*(kernel - 1) - 1) / stride) + 1``."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def output_hw(x_shape, kernel_size, stride, padding, dilation=(1, 1)):
    """(OH, OW) for an input whose last two axes are (H, W); the other arguments are (height, width) pairs."""
    return tuple(
        output_size(size, kernel_size[axis], stride[axis], padding[axis], dilation[axis])
        for axis, size in enumerate(x_shape[-2:])
    )


# --- convolution -------------------------------------------------------------
def im2col(x, kernel_size, stride, padding, dilation):
    """x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW); arguments are (height, width) pairs."""
    return _implementation("im2col", x).im2col(x, kernel_size, stride, padding, dilation)


def col2im(cols, x_shape, kernel_size, stride, padding, dilation):
    """The adjoint of ``im2col``: sum every column entry back onto the input pixel it was copied
    from. cols (C*KH*KW, N*OH*OW) -> (N, C, H, W) with ``x_shape = (N, C, H, W)``."""
    return _implementation("im2col", cols).col2im(cols, x_shape, kernel_size, stride, padding, dilation)


# --- pooling -----------------------------------------------------------------
def max_pool2d_forward(x, kernel_size, stride, padding):
    """x (N, C, H, W) -> (y (N, C, OH, OW), indices (N, C, OH, OW) int32).

    Each output is the largest input in its window (padding never wins); on a
    tie the first maximum in row-major order is chosen, and a NaN always wins
    (the last NaN), exactly as PyTorch's CPU kernel does.
    """
    return _implementation("pool", x).max_pool2d_forward(x, kernel_size, stride, padding)


def max_pool2d_backward(grad_y, indices, x_shape):
    """Send each output gradient to the one input its index names (summing where windows overlap)."""
    return _implementation("pool", grad_y).max_pool2d_backward(grad_y, indices, x_shape)


def avg_pool2d_forward(x, kernel_size, stride, padding):
    """x (N, C, H, W) -> the mean of each window, zero padding included in the count
    (PyTorch's ``count_include_pad=True``): every window divides by KH*KW."""
    return _implementation("pool", x).avg_pool2d_forward(x, kernel_size, stride, padding)


def avg_pool2d_backward(grad_y, x_shape, kernel_size, stride, padding):
    """Spread each output gradient evenly (1 / (KH*KW)) over its window's inputs."""
    return _implementation("pool", grad_y).avg_pool2d_backward(grad_y, x_shape, kernel_size, stride, padding)
