"""Loss functions as pure forward/backward pairs.

Each ``*_forward(output, target, reduction)`` returns ``(value, cache)``: the
loss as a 0-d array (or array scalar) in the output's dtype, and what the
backward needs, a small named record per loss (``scale`` in each is the factor
the reduction multiplies the sum by). Each ``*_backward(cache)`` returns
d(loss)/d(output), an array of the output's shape and dtype: the loss starts the
backward pass, so there is no incoming gradient. ``reduction`` is ``"mean"`` (divide by the
number of terms, as PyTorch does) or ``"sum"``.

These functions trust their inputs; ``tinynet.losses`` checks shapes, dtypes
and ranges before calling them.
"""
from typing import Any, NamedTuple, Tuple

import numpy as np

from ..backend import get_array_module

REDUCTIONS = ("mean", "sum")

# PyTorch clamps log(p) and log(1 - p) at -100 in binary cross-entropy, so
# p = 0 or 1 gives a finite loss, and floors p * (1 - p) at 1e-12 in its gradient.
_BCE_LOG_FLOOR = -100.0
_BCE_GRAD_EPS = 1e-12


def check_reduction(where, reduction):
    """Raise ValueError unless ``reduction`` is one of ``REDUCTIONS``."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"{where}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _reduction_scale(reduction, count):
    """The factor that turns a sum of ``count`` terms into the reduced loss."""
    check_reduction("loss", reduction)
    return 1.0 / count if reduction == "mean" else 1.0


# --- mean squared error ------------------------------------------------------
class MSELossCache(NamedTuple):
    diff: Any  # (output - target), flattened
    shape: Tuple[int, ...]  # the output's
    scale: float


def mse_loss_forward(output, target, reduction="mean"):
    """sum((output - target)**2) * scale, scale = 1/numel for "mean".

    Shapes: output and target of the same shape -> a scalar.
    """
    xp = get_array_module(output)
    diff = (output - target).ravel()
    scale = _reduction_scale(reduction, diff.size)
    # One BLAS dot product: squares and sums without a temporary array.
    value = xp.dot(diff, diff) * output.dtype.type(scale)
    return value, MSELossCache(diff, output.shape, scale)


def mse_loss_backward(cache):
    """d/d(output) = 2 * (output - target) * scale."""
    return (cache.diff * (2.0 * cache.scale)).reshape(cache.shape)


# --- cross-entropy -----------------------------------------------------------
class CrossEntropyCache(NamedTuple):
    exp: Any  # exp(logits - row max), (N, C)
    sum_exp: Any  # its row sums, (N,)
    rows: Any  # arange(N)
    target: Any
    scale: float
    label_smoothing: float


def cross_entropy_forward(logits, target, reduction="mean", label_smoothing=0.0):
    """Cross-entropy of softmax(logits) against integer class labels.

    loss_i = logsumexp(logits_i) - logits_i[target_i], computed after
    subtracting each row's maximum so exp never overflows (logits of +-1e3 are fine).
    With label smoothing e the target is (1 - e) * one_hot + e / C, and
    loss_i = logsumexp(logits_i) - (1 - e) * logits_i[target_i] - e * mean_c(logits_ic).

    Shapes: logits (N, C), target (N,) integers in [0, C) -> a scalar.
    The cache keeps exp(logits - max) and its row sums: the softmax the
    backward needs, without computing it twice.
    """
    xp = get_array_module(logits)
    rows = xp.arange(logits.shape[0])
    shifted = logits - logits.max(axis=1, keepdims=True)
    picked = shifted[rows, target]          # logit of the true class, minus the row max
    scale = _reduction_scale(reduction, logits.shape[0])
    smoothing = float(label_smoothing)
    if smoothing:
        # The shifted logits' mean, taken before exp overwrites them.
        picked = (1 - smoothing) * picked + smoothing * shifted.mean(axis=1)
    exp = xp.exp(shifted, out=shifted)      # shifted is no longer needed: reuse its memory
    sum_exp = exp.sum(axis=1)               # >= 1, so its log is finite
    value = (xp.log(sum_exp).sum() - picked.sum()) * logits.dtype.type(scale)
    return value, CrossEntropyCache(exp, sum_exp, rows, target, scale, smoothing)


def cross_entropy_backward(cache):
    """d/d(logits) = (softmax(logits) - smoothed one_hot(target)) * scale."""
    scale, smoothing = cache.scale, cache.label_smoothing
    grad = cache.exp * (scale / cache.sum_exp)[:, None]  # softmax * scale, one pass over (N, C)
    if smoothing:
        grad -= grad.dtype.type(scale * smoothing / grad.shape[1])
    grad[cache.rows, cache.target] -= grad.dtype.type(scale * (1 - smoothing))
    return grad


class NLLLossCache(NamedTuple):
    shape: Tuple[int, ...]  # the log-probabilities'
    dtype: Any
    rows: Any  # arange(N)
    target: Any
    scale: float


def nll_loss_forward(log_probs, target, reduction="mean"):
    """-log_probs[i, target_i], summed or averaged over the batch.

    Shapes: log_probs (N, C) (e.g. from LogSoftmax), target (N,) integers in [0, C) -> a scalar.
    """
    xp = get_array_module(log_probs)
    rows = xp.arange(log_probs.shape[0])
    scale = _reduction_scale(reduction, log_probs.shape[0])
    value = -log_probs[rows, target].sum() * log_probs.dtype.type(scale)
    return value, NLLLossCache(log_probs.shape, log_probs.dtype, rows, target, scale)


def nll_loss_backward(cache):
    """-scale at each sample's target class, 0 elsewhere."""
    grad = get_array_module(cache.target).zeros(cache.shape, dtype=cache.dtype)
    grad[cache.rows, cache.target] = -cache.scale
    return grad


# --- Huber and smooth L1 -------------------------------------------------------
class HuberLossCache(NamedTuple):
    diff: Any  # output - target
    delta: float
    scale: float  # the reduction's, times the factor


def huber_loss_forward(output, target, reduction="mean", delta=1.0, factor=1.0):
    """factor * (0.5 * d**2 where |d| <= delta, else delta * (|d| - 0.5 * delta)), d = output - target.

    Written as 0.5 * q**2 + delta * (|d| - q) with q = min(|d|, delta), one formula for both
    pieces. ``SmoothL1Loss`` with beta > 0 is this with delta = beta and factor = 1 / beta;
    delta = 0 is the L1 loss |d| (what ``SmoothL1Loss(beta=0)`` computes).
    Shapes: output and target of the same shape -> a scalar.
    """
    xp = get_array_module(output)
    diff = output - target
    abs_diff = xp.abs(diff)
    scale = _reduction_scale(reduction, diff.size) * factor
    if delta == 0:
        total = abs_diff.sum()
    else:
        quadratic = xp.minimum(abs_diff, output.dtype.type(delta))
        total = (quadratic * quadratic * output.dtype.type(0.5) + output.dtype.type(delta) * (abs_diff - quadratic)).sum()
    return total * output.dtype.type(scale), HuberLossCache(diff, delta, scale)


def huber_loss_backward(cache):
    """d clipped to [-delta, delta] (its sign for delta = 0), times the scale."""
    diff, delta = cache.diff, cache.delta
    xp = get_array_module(diff)
    clipped = xp.sign(diff) if delta == 0 else xp.clip(diff, -diff.dtype.type(delta), diff.dtype.type(delta))
    return clipped * diff.dtype.type(cache.scale)


# --- binary cross-entropy ----------------------------------------------------
class BCELossCache(NamedTuple):
    probs: Any
    target: Any
    scale: float


def bce_loss_forward(probs, target, reduction="mean"):
    """-(t * log(p) + (1 - t) * log(1 - p)), each log clamped at -100 as in PyTorch.

    Shapes: probs and target of the same shape, values in [0, 1] -> a scalar.
    """
    xp = get_array_module(probs)
    with np.errstate(divide="ignore"):  # log(0) = -inf is expected; the clamp handles it
        log_p = xp.maximum(xp.log(probs), _BCE_LOG_FLOOR)
        log_1mp = xp.maximum(xp.log1p(-probs), _BCE_LOG_FLOOR)
    scale = _reduction_scale(reduction, probs.size)
    # t * log_p + (1 - t) * log_1mp, rearranged to save one multiplication.
    total = (log_1mp + target * (log_p - log_1mp)).sum()
    return -total * probs.dtype.type(scale), BCELossCache(probs, target, scale)


def bce_loss_backward(cache):
    """d/d(p) = (p - t) / max(p * (1 - p), 1e-12) * scale (PyTorch's formula, finite at p = 0 or 1)."""
    probs = cache.probs
    xp = get_array_module(probs)
    return (probs - cache.target) * cache.scale / xp.maximum(probs * (1 - probs), _BCE_GRAD_EPS)


class BCEWithLogitsCache(NamedTuple):
    logits: Any
    target: Any
    exp_neg_abs: Any  # exp(-|logits|)
    scale: float


def bce_with_logits_forward(logits, target, reduction="mean"):
    """Binary cross-entropy of sigmoid(x) against t, fused and stable for any x:

        loss = max(x, 0) - x * t + log1p(exp(-|x|))

    Shapes: logits and target of the same shape, target in [0, 1] -> a scalar.
    The cache keeps exp(-|x|), from which backward gets sigmoid(x) without another exp.
    """
    xp = get_array_module(logits)
    e = xp.exp(-xp.abs(logits))
    scale = _reduction_scale(reduction, logits.size)
    total = (xp.maximum(logits, 0) - logits * target + xp.log1p(e)).sum()
    return total * logits.dtype.type(scale), BCEWithLogitsCache(logits, target, e, scale)


def bce_with_logits_backward(cache):
    """d/d(x) = (sigmoid(x) - t) * scale, with sigmoid(x) = 1/(1+e) for x >= 0 and e/(1+e) otherwise."""
    logits, e = cache.logits, cache.exp_neg_abs
    xp = get_array_module(logits)
    inverse = 1 / (1 + e)
    sigmoid = xp.where(logits >= 0, inverse, e * inverse)
    return (sigmoid - cache.target) * cache.scale
