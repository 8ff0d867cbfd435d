"""Inverted dropout: zero each element with probability p and scale the rest by 1/(1-p),
so the expected activation is unchanged and evaluation needs no rescaling."""
from typing import Any, NamedTuple

from ..backend import get_array_module
from ..rng import cuda_generator, default_generator


class DropoutCache(NamedTuple):
    """The mask the output was multiplied by, or None when nothing was dropped."""
    mask: Any


def dropout_forward(x, p, training, rng=None, mask_shape=None):
    """Return ``(y, DropoutCache(mask))``; ``mask`` is None when nothing was dropped (eval mode or p == 0).

    The mask holds 0 or 1/(1-p) in x's dtype, so backward is one multiplication. It has
    ``mask_shape`` (default x's), broadcast against x: ``(N, C, 1, 1)`` drops whole channels.
    ``rng`` is a ``numpy.random.Generator`` (CuPy's for GPU arrays); default: tinynet's.
    """
    if not training or p == 0:
        return x, DropoutCache(None)
    xp = get_array_module(x)
    mask_shape = x.shape if mask_shape is None else mask_shape
    if p == 1:
        return xp.zeros_like(x), DropoutCache(xp.zeros(mask_shape, x.dtype))
    if rng is None:
        rng = default_generator() if xp.__name__ == "numpy" else cuda_generator()
    keep = 1.0 - p
    mask = (rng.random(mask_shape, dtype=x.dtype) < keep).astype(x.dtype)
    mask *= x.dtype.type(1.0 / keep)
    return x * mask, DropoutCache(mask)


def dropout_backward(grad_y, cache):
    return grad_y if cache.mask is None else grad_y * cache.mask
