"""The optimizers' element-wise updates in plain array code: the reference the compiled loops
match bit for bit, and, written with its arrays' module, the CuPy implementation too.

Each product and each sum is rounded to the arrays' dtype (Python floats are weak scalars
under NEP 50, so float32 stays float32): the compiled loops round the same way.
"""
from ..backend import get_array_module


def axpby(a, x, b, y):
    """Set ``y = a*x + b*y`` element-wise, in place, and return ``y`` (BLAS's axpby).

    Args:
        a, b: Python floats.
        x, y: arrays of one shape and dtype.
    """
    if b != 1.0:
        y *= b
    y += a * x
    return y


def sgd_step(p, g, buf, scratch, weight_decay, momentum, dampening, nesterov, lr, first):
    """One SGD update of parameter ``p`` with gradient ``g`` (PyTorch's rule), in place on p and
    the momentum buffer ``buf``::

        g = g + weight_decay * p                     (if weight_decay != 0; the caller's g is not written)
        buf = g if first, else momentum * buf + (1 - dampening) * g      (unless buf is None)
        g = g + momentum * buf if nesterov, else buf                     (unless buf is None)
        p = p - lr * g

    ``buf`` is None without momentum; ``first`` says the step is its first (PyTorch sets the
    buffer to the gradient then, without dampening). ``scratch``, an array like p whose contents
    do not matter, holds the decayed or the Nesterov gradient, so that a step allocates nothing
    (the optimizer keeps one for all its parameters; the compiled loop needs none). Arrays of one
    shape and dtype; the scalars are Python floats.
    """
    if weight_decay != 0:
        scratch[...] = g
        g = axpby(weight_decay, p, 1.0, scratch)
    if buf is not None:
        if first:
            buf[...] = g
        else:
            axpby(1.0 - dampening, g, momentum, buf)
        if nesterov:
            if g is not scratch:
                scratch[...] = g
            g = axpby(momentum, buf, 1.0, scratch)
        else:
            g = buf
    axpby(-lr, g, 1.0, p)


def adam_step(p, g, m, v, v_max, decay, beta1, beta2, eps, step_size, bias_correction2_sqrt, shrink):
    """One Adam update of parameter ``p`` with gradient ``g``, in place on p, m, v (and v_max)::

        g = g + decay * p                       (if decay != 0; the caller's g is not written)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v), used as v below  (unless v_max is None; a NaN wins, as np.maximum)
        p = shrink * p + step_size * m / (sqrt(v) / bias_correction2_sqrt + eps)

    ``step_size`` is ``-lr / (1 - beta1**t)``, ``shrink`` AdamW's ``1 - lr * weight_decay`` (else 1).
    Arrays of one shape and dtype; the scalars are Python floats.
    """
    xp = get_array_module(p)
    if decay != 0:
        g = axpby(decay, p, 1.0, g.copy())
    axpby(1.0 - beta1, g, beta1, m)
    work = xp.multiply(g, g, out=xp.empty_like(g))  # then the denominator, then the step (an array, also 0-d)
    axpby(1.0 - beta2, work, beta2, v)
    if v_max is not None:
        v = xp.maximum(v_max, v, out=v_max)
    xp.sqrt(v, out=work)
    work /= bias_correction2_sqrt
    work += eps
    xp.divide(m, work, out=work)
    axpby(step_size, work, shrink, p)
