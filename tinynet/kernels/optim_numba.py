"""The optimizers' updates as compiled loops: one pass over memory where the array code makes
several, with a temporary array each.

Why in place: when the output is one of the inputs, LLVM vectorises the loop only if that
input is the one read at the same index it writes (``y`` in ``axpby``); with an output that
merely *may* alias an input it adds a runtime overlap check, which fails on an in-place call
and falls back to a scalar loop.

The loops are compiled with NumPy's error model: a division by zero gives inf or NaN, as in the
array code, instead of raising; Python's model adds a test to every division, which keeps LLVM
from vectorising the loop. The scalars are passed in the arrays' dtype and nothing is fused
(no fastmath), so the results equal ``optim_numpy``'s bit for bit. Arrays the flat loops cannot
take (strided views, or differing shapes or dtypes) get the reference.
"""
import numpy as np

from . import optim_numpy
from .compiling import jit


def _axpby_loop(a, x, b, y):
    """``y[i] = a*x[i] + b*y[i]`` over flat arrays."""
    for i in range(y.size):
        y[i] = a * x[i] + b * y[i]


def _sgd_loop(p, g, buf, decays, decay, first, momentum, one_minus_dampening, nesterov, negative_lr):
    """``optim_numpy.sgd_step`` as one loop over flat arrays (``buf`` empty without momentum;
    ``decays``: whether weight decay applies), rounding as the array code does."""
    for i in range(p.size):
        grad = g[i]
        if decays:
            grad = decay * p[i] + grad
        if buf.size:
            if first:
                buf[i] = grad
            else:
                buf[i] = one_minus_dampening * grad + momentum * buf[i]
            grad = momentum * buf[i] + grad if nesterov else buf[i]
        p[i] = negative_lr * grad + p[i]


def _adam_loop(p, g, m, v, v_max, decays, decay, one_minus_beta1, beta1, one_minus_beta2, beta2, eps, step_size,
               bias_correction2_sqrt, shrink):
    """``optim_numpy.adam_step`` as one loop over flat arrays (``v_max`` empty without amsgrad;
    ``decays``: whether L2 weight decay applies), rounding as the array code does."""
    for i in range(p.size):
        grad = g[i]
        if decays:
            grad = decay * p[i] + grad
        m[i] = one_minus_beta1 * grad + beta1 * m[i]
        v[i] = one_minus_beta2 * (grad * grad) + beta2 * v[i]
        second = v[i]
        if v_max.size:
            if second > v_max[i] or second != second:  # as np.maximum: a NaN wins
                v_max[i] = second
            second = v_max[i]
        p[i] = step_size * (m[i] / (np.sqrt(second) / bias_correction2_sqrt + eps)) + shrink * p[i]


_axpby_jit = jit(nogil=True, error_model="numpy")(_axpby_loop)
_sgd_jit = jit(nogil=True, error_model="numpy")(_sgd_loop)
_adam_jit = jit(nogil=True, error_model="numpy")(_adam_loop)


def _flat_loop_applies(*arrays):
    """Whether the flat loops can take these arrays: NumPy arrays of one shape and dtype, all C-contiguous."""
    first = arrays[0]
    return all(type(a) is np.ndarray and a.shape == first.shape and a.dtype == first.dtype and a.flags.c_contiguous
               for a in arrays)


def axpby(a, x, b, y):
    if not _flat_loop_applies(x, y):
        return optim_numpy.axpby(a, x, b, y)
    scalar = y.dtype.type
    _axpby_jit(scalar(a), x.reshape(-1), scalar(b), y.reshape(-1))
    return y


def sgd_step(p, g, buf, scratch, weight_decay, momentum, dampening, nesterov, lr, first):
    if not _flat_loop_applies(p, g, *([] if buf is None else [buf])):
        return optim_numpy.sgd_step(p, g, buf, scratch, weight_decay, momentum, dampening, nesterov, lr, first)
    scalar = p.dtype.type
    buf_flat = p.reshape(-1)[:0] if buf is None else buf.reshape(-1)  # empty: no momentum
    _sgd_jit(p.reshape(-1), g.reshape(-1), buf_flat, weight_decay != 0, scalar(weight_decay), first, scalar(momentum),
             scalar(1.0 - dampening), nesterov, scalar(-lr))


def adam_step(p, g, m, v, v_max, decay, beta1, beta2, eps, step_size, bias_correction2_sqrt, shrink):
    if not _flat_loop_applies(p, g, m, v, *([] if v_max is None else [v_max])):
        return optim_numpy.adam_step(p, g, m, v, v_max, decay, beta1, beta2, eps, step_size, bias_correction2_sqrt,
                                     shrink)
    scalar = p.dtype.type
    v_max_flat = p.reshape(-1)[:0] if v_max is None else v_max.reshape(-1)  # empty: no amsgrad
    _adam_jit(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), v_max_flat, decay != 0, scalar(decay),
              scalar(1.0 - beta1), scalar(beta1), scalar(1.0 - beta2), scalar(beta2), scalar(eps), scalar(step_size),
              scalar(bias_correction2_sqrt), scalar(shrink))
