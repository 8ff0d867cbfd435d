"""Array kernels (convolution, ReLU, pooling, normalisation, optimizers) and the one place that picks their implementation.

Every kernel exists in interchangeable implementations with the same functions,
arguments and results (to rounding where a sum is split over threads or blocked
differently: the matrix products and the weight and bias gradients):

* ``numpy``: the reference, written like the textbook (one strided slice per
  kernel offset, as in Chainer's ``im2col_cpu``), in ``*_numpy.py``;
* ``numba``: the default on the CPU, compiled loops (``*_numba.py``) for float32 and
  float64 (``NUMBA_DTYPES``; a float16 array takes the reference), run on numba's threads.
  A family whose numba module cannot be imported (its BLAS, ``scipy-openblas32``, missing
  or broken) uses the reference instead, and tinynet warns once, saying why;
* ``cupy``: used whenever the input is a CuPy array (``*_cupy.py``).

The functions below look at the array they are given and the CPU choice, and
forward the call (Chainer's ``utils/conv.py`` pattern); nothing else in tinynet
chooses an implementation. ``FAMILIES`` lists, per family (module ``<family>_<implementation>``),
the functions every implementation provides with the same signature; a test holds each
implementation to it, so adding an implementation means filling that list.

Choosing the CPU implementation (the GPU always uses CuPy)::

    TINYNET_KERNELS=numpy python train.py       # environment variable, read at import
    tinynet.kernels.set_backend("numpy")         # from now on, in this thread
    with tinynet.kernels.use("numpy"):           # for one block
        y = model(x)
    tinynet.kernels.get_backend()                # -> "numba" by default

The choice is a ``contextvars.ContextVar``: ``set_backend`` and ``use`` act in the
calling thread (or asyncio task); other threads start from ``TINYNET_KERNELS``.

Layout conventions shared by all implementations:

* ``im2col`` turns x (N, C, H, W) into cols (C*KH*KW, N*OH*OW): row
  ``(c*KH + i)*KW + j`` holds, for every output position, the input pixel
  under kernel offset (i, j) of channel c (zero where the kernel overlaps the
  padding). ``weight.reshape(O, -1) @ cols`` is then the convolution, laid out
  (O, N, OH, OW), and with groups the rows of group g are one contiguous block.
* Max pooling returns, per output, the flat index ``h*W + w`` of the chosen
  input in its (H, W) plane (int32), as PyTorch's ``return_indices`` does.

Threading (CPU): one pool, numba's. The numba kernels split the batch into one part per
thread (``prange``), and the products inside them call tinynet's own single-threaded OpenBLAS
(``blas.py``), once per part; ``Linear``'s products go through ``matmul`` and ``matmul_tn`` the
same way, so tinynet never calls a multi-threaded BLAS, whose spinning workers fought numba's
for the cores, and leaves NumPy's and SciPy's alone (but for one thread fewer while numba
compiles in the background, see ``compiling.py``). See ``threads.py`` for the policy and its
measurements, ``conv_numba.py`` for the convolution.

Compiling: numba compiles its kernels for a dtype the first time one is asked for, in a
background process, while the reference kernels serve (``compiling.ready``); they are cached on
disk, keyed to their sources. ``warm_up()`` compiles them ahead (``python -m tinynet warm-up``).
See ``compiling.py``.

Memory: the first CPU kernel call tunes glibc's malloc (``malloc.tune_once()``; see there) so
that freed arrays are reused instead of returned to the kernel and faulted in again each step.
Importing tinynet changes nothing process-wide; ``TINYNET_TUNE_MALLOC=0`` switches the tuning off.
"""
import contextlib
import contextvars
import importlib
import os
import warnings
from typing import Any, NamedTuple

import numpy as np

from ..backend import is_cupy_array
from . import compiling, malloc
from .compiling import warm_up

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


#: Kernel family -> the functions each of its implementations (``<family>_numpy``, ``_numba``,
#: ``_cupy``) defines, with the reference's signature.
FAMILIES = {
    "conv": ("conv2d_forward", "conv2d_backward"),
    "im2col": ("im2col", "col2im", "cnhw_to_nchw", "nchw_to_cnhw"),
    "matmul": ("matmul", "matmul_tn", "matmul_transposed"),
    "activation": ("relu_forward", "relu_backward", "erf"),
    "pool": ("max_pool2d_forward", "max_pool2d_values", "max_pool2d_backward", "avg_pool2d_forward",
             "avg_pool2d_backward"),
    "norm": ("normalize_forward", "normalize_backward"),
    "optim": ("axpby", "sgd_step", "adam_step"),
}
IMPLEMENTATIONS = ("numpy", "numba", "cupy")

#: The dtypes the numba kernels are compiled for; arrays of any other (float16) take the NumPy reference.
NUMBA_DTYPES = (np.float32, np.float64)
_numba_missing = {}  # family -> why its numba kernels could not be imported


def _implementation(family, array):
    """The module ``<family>_<backend>`` that should process ``array`` (imported on first use)."""
    if is_cupy_array(array):
        backend = "cupy"
    else:
        malloc.tune_once()
        backend = _cpu_backend.get()
        if backend == "numba" and array.dtype.type not in NUMBA_DTYPES:
            backend = "numpy"
    if backend == "numba" and family in _numba_missing:
        backend = "numpy"
    try:
        module = importlib.import_module(f"{__name__}.{family}_{backend}")
    except ImportError as error:
        if backend != "numba":
            raise
        if not _numba_missing:
            warnings.warn(f"tinynet: the numba {family} kernels cannot be loaded ({error}); using the NumPy "
                          f"reference kernels, which are much slower", RuntimeWarning, stacklevel=3)
        _numba_missing[family] = str(error)
        return importlib.import_module(f"{__name__}.{family}_numpy")
    if backend == "numba" and not compiling.ready(array.dtype.type):  # the reference serves while numba compiles
        return importlib.import_module(f"{__name__}.{family}_numpy")
    return module


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


def column_count(x_shape, kernel_size, out_hw):
    """Entries of the im2col columns of an (N, C, H, W) input: C*KH*KW rows by N*OH*OW output positions."""
    return x_shape[1] * kernel_size[0] * kernel_size[1] * x_shape[0] * out_hw[0] * out_hw[1]


def output_shape(x_shape, kernel_size, stride, padding, dilation=(1, 1)):
    """(N, C, OH, OW) of a window sliding over an (N, C, H, W) input (pooling; a convolution's C is
    its output channels instead)."""
    return tuple(x_shape[:2]) + output_hw(x_shape, kernel_size, stride, padding, dilation)


def grouped(weight, groups):
    """A convolution's weight (O, C/G, KH, KW) as G matrices (G, O/G, C/G*KH*KW), one per group
    (a view when the weight is C-contiguous)."""
    return weight.reshape(groups, weight.shape[0] // groups, -1)


# --- convolution -------------------------------------------------------------
class Columns(NamedTuple):
    """The columns a convolution's forward kept for its backward, with the implementation
    (module) that made them: their layout is that implementation's."""
    implementation: Any
    data: Any


def conv2d_forward(x, weight, bias, stride, padding, dilation, groups, keep_columns):
    """x (N, C, H, W), weight (O, C/groups, KH, KW), bias (O,) or None -> ``(y, columns)``:
    y (N, O, OH, OW), and the columns backward multiplies by if ``keep_columns`` and the
    implementation keeps them (tagged with the implementation that made them, whose layout they
    have: ``Columns``), else None: backward then makes them again from x."""
    implementation = _implementation("conv", x)
    y, columns = implementation.conv2d_forward(x, weight, bias, stride, padding, dilation, groups, keep_columns)
    return y, None if columns is None else Columns(implementation, columns)


def conv2d_backward(grad_y, x, columns, weight, stride, padding, dilation, groups, need_bias_grad, need_input_grad):
    """``(grad_x, grad_weight, grad_bias)`` for grad_y (N, O, OH, OW), given the forward's input x and
    ``columns``; grad_x is None unless ``need_input_grad``, grad_bias None unless ``need_bias_grad``."""
    implementation, columns = columns if columns is not None else Columns(_implementation("conv", grad_y), None)
    return implementation.conv2d_backward(grad_y, x, columns, weight, stride, padding, dilation, groups,
                                          need_bias_grad, need_input_grad)


def im2col_workspace_bytes(x, weight, stride, padding, dilation, groups, keep_columns):
    """Bytes of im2col columns ``conv2d_forward(x, weight, ...)`` will hold at once, or of the
    padded input rows that take their place in the numba kernel's shifted products (the operand
    its products read; its product buffer, O rather than C rows, comes on top), computed from
    the shapes: x may be any array of the input's shape, dtype and device (``numpy.broadcast_to``
    of one zero will do)."""
    return _implementation("conv", x).im2col_workspace_bytes(x.shape, weight.shape, stride, padding, dilation, groups,
                                                             x.itemsize, keep_columns)


def im2col(x, kernel_size, stride, padding, dilation):
    """x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW); arguments are (height, width) pairs."""
    return _implementation("im2col", x).im2col(x, kernel_size, stride, padding, dilation)


def col2im(cols, x_shape, kernel_size, stride, padding, dilation):
    """The adjoint of ``im2col``: sum every column entry back onto the input pixel it was copied
    from. cols (C*KH*KW, N*OH*OW) -> (N, C, H, W) with ``x_shape = (N, C, H, W)``."""
    return _implementation("im2col", cols).col2im(cols, x_shape, kernel_size, stride, padding, dilation)


def cnhw_to_nchw(y_t, bias, out=None):
    """(O, N, OH, OW) -> (N, O, OH, OW), adding ``bias[o]`` unless bias is None: the layout change
    (one whole OH*OW plane at a time) that turns the convolution's product into its output.
    Written into ``out``, a C-contiguous (N, O, OH, OW) array, if given; returns the result."""
    return _implementation("im2col", y_t).cnhw_to_nchw(y_t, bias, out)


def nchw_to_cnhw(grad_y, channel_sums):
    """(N, O, OH, OW) -> ``(grad_t, sums)``: grad_t (O, N, OH, OW) contiguous, the layout the
    backward products need, and, if ``channel_sums``, the sum over each channel (the bias
    gradient), else None."""
    return _implementation("im2col", grad_y).nchw_to_cnhw(grad_y, channel_sums)


def matmul(a, b):
    """a (M, K) @ b (K, N) -> (M, N): the products of ``Linear`` (inputs in any 2-D layout)."""
    return _implementation("matmul", a).matmul(a, b)


def matmul_tn(a, b):
    """a (K, M), b (K, N) -> a.T @ b (M, N): ``Linear``'s weight gradient, summed over the batch."""
    return _implementation("matmul", a).matmul_tn(a, b)


def matmul_transposed(a, b):
    """a (G, M, P), b (G, N, P) -> (G, M, N), each group's ``a @ b.T``: the convolution's weight
    gradient, a small result summed over every output position."""
    return _implementation("matmul", a).matmul_transposed(a, b)


# --- activations -------------------------------------------------------------
def relu_forward(x):
    """max(x, 0) element-wise, in x's shape and dtype; a NaN stays NaN."""
    return _implementation("activation", x).relu_forward(x)


def relu_backward(grad_y, y):
    """grad_y where y is not <= 0, else 0 (PyTorch's rule), given the forward's output y; both of
    one shape (never broadcast)."""
    # Layers check this already (Module._pop_cache); here it guards direct callers, since the
    # numba loop reads y at every index of grad_y.
    if grad_y.shape != y.shape:
        raise ValueError(f"ReLU backward: expected a gradient of the output's shape {y.shape}, got {grad_y.shape}")
    return _implementation("activation", grad_y).relu_backward(grad_y, y)


def erf(x):
    """The error function element-wise, in x's dtype (exact GELU needs it)."""
    return _implementation("activation", x).erf(x)


# --- pooling -----------------------------------------------------------------
def max_pool2d_forward(x, kernel_size, stride, padding):
    """x (N, C, H, W) -> (y (N, C, OH, OW), indices (N, C, OH, OW) int32).

    Each output is the largest input in its window (padding never wins); on a
    tie the first maximum in row-major order is chosen, and a NaN always wins
    (the last NaN), exactly as PyTorch's CPU kernel does.
    """
    return _implementation("pool", x).max_pool2d_forward(x, kernel_size, stride, padding)


def max_pool2d_values(x, kernel_size, stride, padding):
    """Only the ``y`` of ``max_pool2d_forward``: faster when no backward pass needs the indices."""
    return _implementation("pool", x).max_pool2d_values(x, kernel_size, stride, padding)


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


# --- normalisation -------------------------------------------------------------
def normalize_forward(x, axes, eps, weight, bias, mean, var):
    """Normalise x over ``axes`` with the batch's statistics (``mean`` and ``var`` None) or the
    given ones, then scale by ``weight`` and shift by ``bias`` (each broadcastable against x, or
    None) -> ``(y, inv_std, batch_mean, batch_var)``; see ``norm_numpy.normalize_forward``."""
    return _implementation("norm", x).normalize_forward(x, axes, eps, weight, bias, mean, var)


def normalize_backward(grad_y, x, mean, inv_std, weight, axes, param_axes, batch_stats, need_param_grads):
    """``(grad_x, grad_weight, grad_bias)`` of ``normalize_forward``, given its input x and the mean
    and inv_std it used; the parameter gradients summed over ``param_axes`` (None unless
    ``need_param_grads``)."""
    return _implementation("norm", grad_y).normalize_backward(grad_y, x, mean, inv_std, weight, axes, param_axes,
                                                               batch_stats, need_param_grads)


# --- optimizers ----------------------------------------------------------------
def axpby(a, x, b, y):
    """Set ``y = a*x + b*y`` element-wise, in place, and return ``y``: the shape of every
    optimizer's update (``p - lr*g``, ``momentum*buf + (1 - dampening)*g``). a, b: Python floats;
    x, y: arrays of one shape and dtype."""
    return _implementation("optim", y).axpby(a, x, b, y)


def sgd_step(p, g, buf, scratch, weight_decay, momentum, dampening, nesterov, lr, first):
    """One SGD update of parameter ``p`` with gradient ``g``, in place on p and the momentum buffer
    ``buf`` (None without momentum; ``first``: the update is its first), ``scratch`` an array like
    p it may write; the formulas are in ``optim_numpy.sgd_step``."""
    _implementation("optim", p).sgd_step(p, g, buf, scratch, weight_decay, momentum, dampening, nesterov, lr, first)


def adam_step(p, g, m, v, v_max, decay, beta1, beta2, eps, step_size, bias_correction2_sqrt, shrink):
    """One Adam update of parameter ``p`` with gradient ``g``, in place on p, m, v and v_max
    (None without amsgrad); the formulas are in ``optim_numpy.adam_step``."""
    _implementation("optim", p).adam_step(p, g, m, v, v_max, decay, beta1, beta2, eps, step_size,
                                          bias_correction2_sqrt, shrink)
