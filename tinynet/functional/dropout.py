"""Inverted dropout: zero each element with probability p and scale the rest by 1/(1-p),
so the expected activation is unchanged and evaluation needs no rescaling."""
from typing import Any, NamedTuple

from ..backend import get_array_module
from ..rng import cuda_generator, default_generator


class DropoutCache(NamedTuple):
    """The mask the output was multiplied by, or None when nothing was dropped."""
    mask: Any


def dropout_forward(x, p, training, rng=None):
    """Return ``(y, DropoutCache(mask))``; ``mask`` is None when nothing was dropped (eval mode or p == 0).

    The mask holds 0 or 1/(1-p) in x's dtype, so backward is one multiplication.
    ``rng`` is a ``numpy.random.Generator`` (CuPy's for GPU arrays); default: tinynet's.
    """
    if not training or p == 0:
        return x, DropoutCache(None)
    xp = get_array_module(x)
    if p == 1:
        return xp.zeros_like(x), DropoutCache(xp.zeros_like(x))
    if rng is None:
        rng = default_generator() if xp.__name__ == "numpy" else cuda_generator()
    keep = 1.0 - p
    mask = (rng.random(x.shape, dtype=x.dtype) < keep).astype(x.dtype)
    mask *= x.dtype.type(1.0 / keep)
    return x * mask, DropoutCache(mask)


def dropout_backward(grad_y, cache):
    return grad_y if cache.mask is None else grad_y * cache.mask
