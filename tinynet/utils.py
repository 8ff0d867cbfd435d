"""Gradient clipping with ``torch.nn.utils``' semantics: call between ``backward`` and ``optimizer.step()``.

    model.backward(loss_fn.backward())
    tinynet.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    optimizer.step()
"""
import math

from .backend import get_array_module
from .nn.module import Parameter


def _gradients(where, parameters):
    """The gradients (not None) of a Parameter or an iterable of them."""
    if isinstance(parameters, Parameter):
        parameters = [parameters]
    grads = []
    for index, param in enumerate(parameters):
        if not isinstance(param, Parameter):
            raise TypeError(f"{where}: parameters[{index}] is a {type(param).__name__}, not a tinynet Parameter")
        if param.grad is not None:
            grads.append(param.grad)
    return grads


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients together, in place, so that their joint norm is at most ``max_norm``.

    The joint norm is the ``norm_type``-norm of all gradients as one vector (``inf``: the largest
    absolute value). Every gradient is multiplied by min(1, max_norm / (norm + 1e-6)), as in PyTorch.

    Args:
        parameters: a Parameter or an iterable of them; those without a gradient are skipped.
        max_norm: the largest norm allowed.
        norm_type: p of the p-norm (a positive float, or ``inf``).
        error_if_nonfinite: raise RuntimeError when the norm is NaN or inf (else the gradients
            become NaN, as in PyTorch).

    Returns:
        The joint norm before clipping, a Python float.
    """
    where = "clip_grad_norm_"
    grads = _gradients(where, parameters)
    max_norm, norm_type = float(max_norm), float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"{where}: norm_type must be positive or inf, got {norm_type}")
    if not grads:
        return 0.0
    xp = get_array_module(grads[0])
    if norm_type == math.inf:
        norms = [xp.abs(g).max() if g.size else xp.zeros((), g.dtype) for g in grads]
        total = max(float(n) for n in norms)
    else:
        norms = [float((xp.abs(g) ** norm_type).sum()) for g in grads]
        total = math.fsum(norms) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"{where}: the total norm of order {norm_type} of the gradients is {total}, so they cannot be "
            "clipped; set error_if_nonfinite=False to let them become NaN"
        )
    coefficient = min(max_norm / (total + 1e-6), 1.0)
    for g in grads:
        g *= g.dtype.type(coefficient)
    return total


def clip_grad_value_(parameters, clip_value):
    """Clip every gradient, in place, to [-clip_value, clip_value].

    Args:
        parameters: a Parameter or an iterable of them; those without a gradient are skipped.
        clip_value: the largest absolute value allowed (>= 0).
    """
    where = "clip_grad_value_"
    clip_value = float(clip_value)
    if not clip_value >= 0:
        raise ValueError(f"{where}: clip_value must be non-negative, got {clip_value}")
    for g in _gradients(where, parameters):
        xp = get_array_module(g)
        xp.clip(g, -clip_value, clip_value, out=g)


__all__ = ["clip_grad_norm_", "clip_grad_value_"]
