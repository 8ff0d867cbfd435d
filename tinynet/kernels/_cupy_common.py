"""What the CuPy kernels share: compiling a CUDA C++ template for one geometry, and launching it.

Each GPU kernel is a C++ template whose parameters are the element type and
the layer's geometry (kernel size, stride, padding, input and output size).
Fixed at compile time, every ``/`` and ``%`` that turns a thread's flat index
into coordinates becomes a multiply and a shift rather than a slow integer
division. A training run sees a handful of geometries, so it pays a handful of
compilations (CuPy also caches them on disk, so only the first process pays).
Only the batch size and channel count stay run-time arguments.

Every kernel runs one thread per element of the array it writes, and each
thread writes only its own element, so no kernel needs atomics and results
do not depend on scheduling.
"""
import functools

import numpy as np

from ..backend import import_cupy

_C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
_THREADS_PER_BLOCK = 256
_INT32_MAX = 2**31 - 1


def c_type(where, dtype):
    """The C type of ``dtype`` (float32 -> ``float``, float64 -> ``double``), or a TypeError naming ``where``."""
    try:
        return _C_TYPES[np.dtype(dtype)]
    except KeyError:
        raise TypeError(f"{where}: the GPU kernels support float32 and float64 arrays, got {np.dtype(dtype)}") from None


@functools.lru_cache(maxsize=None)
def compiled(source, name, template_arguments):
    """The kernel ``name<template_arguments...>`` from ``source``, compiled once per process."""
    cupy = import_cupy()
    expression = f"{name}<{', '.join(str(argument) for argument in template_arguments)}>"
    module = cupy.RawModule(code=source, name_expressions=[expression])
    return module.get_function(expression)


def launch(where, kernel, total, *arguments):
    """Run ``kernel`` on ``total`` threads (one per output element) with ``arguments``;
    the kernel receives ``total`` as its last argument.

    Indices inside the kernels are 32-bit ints, which keeps the index arithmetic
    cheap; an array of 2**31 elements or more (8 GiB of float32) is refused.
    """
    largest = max([total] + [argument.size for argument in arguments if hasattr(argument, "size")])
    if largest > _INT32_MAX:
        raise ValueError(
            f"{where}: the GPU kernels index arrays with 32-bit integers, but this call has an array of "
            f"{largest} elements (at most {_INT32_MAX}); use a smaller batch"
        )
    if total == 0:
        return
    blocks = (total + _THREADS_PER_BLOCK - 1) // _THREADS_PER_BLOCK
    kernel((blocks,), (_THREADS_PER_BLOCK,), arguments + (np.int32(total),))
