"""Loss functions with PyTorch's semantics and an explicit backward.

    loss_fn = CrossEntropyLoss()
    loss = loss_fn(logits, labels)   # a Python float
    grad = loss_fn.backward()        # d(loss)/d(logits): logits' shape and dtype
    model.backward(grad)

Each loss checks its inputs (every message names the loss and what it
expected), calls the pure functions in ``tinynet.functional.losses`` and keeps
their cache for one ``backward``. ``reduction`` is ``"mean"`` (the default) or
``"sum"``; PyTorch's ``"none"`` is not supported because the loss here is a number.

A NaN or inf that reaches a loss makes the loss itself NaN or inf, so one check
of the scalar result catches it (a ValueError naming the loss) without another
pass over the output. A ``-inf`` logit for a class that is not the target is
harmless to cross-entropy (it only means probability 0) and is accepted, as in PyTorch.
An empty batch raises ValueError: the mean over no samples is undefined.
"""
import math

from ._checks import check_float, check_ndim
from .backend import check_same_device, get_array_module
from .functional import losses as F
from .nn.module import NO_FORWARD


class LossNotFiniteError(ValueError):
    """The loss of finite-checked inputs came out NaN or inf (a NaN/inf input, target or an
    overflow); ``fit`` turns it into ``NonFiniteLossError`` naming the epoch and step."""


class Loss:
    """Base class: input checks, the finite check, and the cache between forward and backward.

    A subclass names its pure functions in ``_functions = (forward, backward)``
    and implements ``_check_shapes(output, target)`` (and ``_check_values`` where
    the values have a range to check).
    """

    _functions = None

    def __init__(self, reduction="mean"):
        F.check_reduction(type(self).__name__, reduction)
        self.reduction = reduction
        self._cache = NO_FORWARD

    def forward(self, output, target):
        """Return the loss as a Python float and remember what ``backward`` needs."""
        name = type(self).__name__
        self._cache = NO_FORWARD  # a failed call must not leave the previous batch's cache behind
        check_same_device(name, input=output, target=target)
        self._check_shapes(output, target)
        if output.size == 0:
            raise ValueError(f"{name}: got an empty input of shape {output.shape}; a loss needs at least one sample")
        self._check_values(output, target)
        forward, _ = self._functions
        value, cache = forward(output, target, self.reduction, **self._options())
        value = float(value)  # on the GPU this waits for the result; a Python float is what callers log
        if not math.isfinite(value):
            raise self._not_finite_error(output, value)
        self._cache = cache
        return value

    def __call__(self, output, target):
        return self.forward(output, target)

    def backward(self):
        """Return d(loss)/d(output) for the last forward call (once per forward call)."""
        if self._cache is NO_FORWARD:
            raise RuntimeError(
                f"{type(self).__name__}.backward called before a forward call (or twice for one): "
                "compute loss = loss_fn(output, target) first"
            )
        cache, self._cache = self._cache, NO_FORWARD
        _, backward = self._functions
        return backward(cache)

    def _check_shapes(self, output, target):
        """Check ndim, shapes and dtypes (cheap: no pass over the data)."""
        raise NotImplementedError

    def _options(self):
        """The loss's own arguments for its forward function, e.g. ``{"delta": 1.0}``."""
        return {}

    def _check_values(self, output, target):
        """Check value ranges of a non-empty input (a pass over the data; only where needed)."""

    def _not_finite_error(self, output, value):
        """Explain a NaN/inf loss; runs only on this error path, so it may scan the whole output."""
        name = type(self).__name__
        xp = get_array_module(output)
        bad = int((~xp.isfinite(output)).sum())
        if bad:
            return LossNotFiniteError(
                f"{name}: the loss is {value} because the input holds {bad} NaN or inf value(s) "
                "(a diverging model? try a smaller learning rate)"
            )
        return LossNotFiniteError(
            f"{name}: the loss is {value} although the input is finite: the target holds NaN or inf "
            f"values, or the loss overflowed {output.dtype}"
        )

    def extra_repr(self):
        return f"reduction={self.reduction!r}"

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"


def _check_batch_size(name, output, target):
    if target.shape[0] != output.shape[0]:
        raise ValueError(
            f"{name}: Expected input batch_size ({output.shape[0]}) to match target batch_size ({target.shape[0]})"
        )


def _check_unit_interval(name, what, array):
    """Raise ValueError unless every element of ``array`` is in [0, 1] (NaN and inf fail too)."""
    low, high = float(array.min()), float(array.max())
    if not 0.0 <= low <= high <= 1.0:  # False for NaN
        xp = get_array_module(array)
        if not bool(xp.isfinite(array).all()):
            raise ValueError(f"{name}: the {what} holds NaN or inf values")
        raise ValueError(f"{name}: all elements of the {what} should be between 0 and 1, got values in [{low}, {high}]")


class _ElementwiseLoss(Loss):
    """A loss comparing output and target element by element: both (N, *) of one shape and float dtype."""

    def _check_shapes(self, output, target):
        name = type(self).__name__
        check_float(name, output)
        if output.ndim == 0:
            raise ValueError(f"{name}: expected an input with a batch axis, shape (N, *), got a 0-D array")
        check_float(f"{name} target", target)
        if target.shape != output.shape:
            if target.ndim:
                _check_batch_size(name, output, target)
            raise ValueError(f"{name}: target shape {target.shape} does not match input shape {output.shape}")
        if target.dtype != output.dtype:
            raise TypeError(
                f"{name}: target dtype {target.dtype} does not match input dtype {output.dtype}; "
                f"convert it with target.astype({str(output.dtype)!r})"
            )


class MSELoss(_ElementwiseLoss):
    """Mean squared error: mean((output - target)**2), or the sum for ``reduction="sum"``.

    Shape: output (N, *) and target of the same shape and dtype -> a float.

    Example::

        loss = MSELoss()(np.zeros((4, 3), np.float32), np.ones((4, 3), np.float32))  # 1.0
    """

    _functions = (F.mse_loss_forward, F.mse_loss_backward)


class _ClassIndexLoss(Loss):
    """A loss of (N, C) scores against (N,) integer class indices: the checks CrossEntropyLoss and NLLLoss share."""

    def _check_shapes(self, logits, target):
        name = type(self).__name__
        check_ndim(name, logits, 2, "(N, C)")
        check_float(name, logits)
        if getattr(target, "dtype", None) is None or target.dtype.kind not in "iu":
            got = getattr(target, "dtype", type(target).__name__)
            raise TypeError(f"{name}: target must hold integer class indices, got {got}")
        if target.ndim != 1:
            raise ValueError(f"{name}: expected a 1-D target of class indices of shape (N,), got shape {target.shape}")
        _check_batch_size(name, logits, target)

    def _check_values(self, logits, target):
        classes = logits.shape[1]
        low, high = int(target.min()), int(target.max())
        if low < 0 or high >= classes:
            raise IndexError(
                f"{type(self).__name__}: Target {low if low < 0 else high} is out of bounds: "
                f"class indices must be in [0, {classes - 1}] for logits with {classes} classes"
            )


class CrossEntropyLoss(_ClassIndexLoss):
    """Softmax cross-entropy of logits against integer class labels (log-softmax and NLL fused).

    loss = mean_i [ logsumexp(logits_i) - logits_i[target_i] ]   (or the sum)

    Args:
        reduction: ``"mean"`` or ``"sum"``.
        label_smoothing: e in [0, 1]: the target becomes (1 - e) * one_hot + e / C (Szegedy et
            al., 2016), which keeps the model from growing its logits without bound.

    Shape: logits (N, C) floats, target (N,) integers in [0, C) -> a float.
    The gradient is (softmax(logits) - target distribution) / N, from the softmax
    computed once in the forward pass.

    Example::

        loss_fn = CrossEntropyLoss()
        loss = loss_fn(model(x), y)           # x (N, 784), y (N,) in [0, 10)
        model.backward(loss_fn.backward())
    """

    _functions = (F.cross_entropy_forward, F.cross_entropy_backward)

    def __init__(self, reduction="mean", label_smoothing=0.0):
        super().__init__(reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be between 0.0 and 1.0, got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def _options(self):
        return {"label_smoothing": self.label_smoothing}

    def extra_repr(self):
        text = super().extra_repr()
        return text + f", label_smoothing={self.label_smoothing}" if self.label_smoothing else text


class NLLLoss(_ClassIndexLoss):
    """Negative log-likelihood of log-probabilities against integer class labels:
    loss = -mean_i log_probs[i, target_i] (or the sum).

    ``NLLLoss()(LogSoftmax(dim=1)(logits), y)`` equals ``CrossEntropyLoss()(logits, y)``.

    Shape: log_probs (N, C) floats, target (N,) integers in [0, C) -> a float.
    """

    _functions = (F.nll_loss_forward, F.nll_loss_backward)


class HuberLoss(_ElementwiseLoss):
    """Quadratic for small errors, linear for large ones: for d = output - target,
    0.5 * d**2 where |d| <= delta, else delta * (|d| - 0.5 * delta); averaged (or summed).

    Args:
        reduction: ``"mean"`` or ``"sum"``.
        delta: where the quadratic piece turns linear (> 0).

    Shape: output (N, *) and target of the same shape and dtype -> a float.
    """

    _functions = (F.huber_loss_forward, F.huber_loss_backward)

    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction)
        if not delta > 0:
            raise ValueError(f"HuberLoss: delta must be positive, got {delta!r}")
        self.delta = float(delta)

    def _options(self):
        return {"delta": self.delta}

    def extra_repr(self):
        return f"{super().extra_repr()}, delta={self.delta}"


class SmoothL1Loss(_ElementwiseLoss):
    """HuberLoss divided by its delta, called beta here: 0.5 * d**2 / beta where |d| < beta,
    else |d| - 0.5 * beta; beta = 0 is the L1 loss |d|.

    Args:
        reduction: ``"mean"`` or ``"sum"``.
        beta: where the quadratic piece turns linear (>= 0).

    Shape: output (N, *) and target of the same shape and dtype -> a float.
    """

    _functions = (F.huber_loss_forward, F.huber_loss_backward)

    def __init__(self, reduction="mean", beta=1.0):
        super().__init__(reduction)
        if not beta >= 0:
            raise ValueError(f"SmoothL1Loss: beta must be non-negative, got {beta!r}")
        self.beta = float(beta)

    def _options(self):
        return {"delta": self.beta, "factor": 1.0 / self.beta if self.beta else 1.0}

    def extra_repr(self):
        return f"{super().extra_repr()}, beta={self.beta}"


class BCELoss(_ElementwiseLoss):
    """Binary cross-entropy of probabilities: -mean(t * log(p) + (1 - t) * log(1 - p)).

    Each log is clamped at -100, as in PyTorch, so p = 0 or 1 gives a finite loss.
    Prefer ``BCEWithLogitsLoss`` on raw scores: it is stable without the clamp.

    Shape: probabilities (N, *) in [0, 1] and target of the same shape and dtype in [0, 1] -> a float.
    """

    _functions = (F.bce_loss_forward, F.bce_loss_backward)

    def _check_values(self, probs, target):
        _check_unit_interval("BCELoss", "input", probs)
        _check_unit_interval("BCELoss", "target", target)


class BCEWithLogitsLoss(_ElementwiseLoss):
    """Binary cross-entropy of sigmoid(x), computed stably from the logits x:

        loss = mean(max(x, 0) - x * t + log1p(exp(-|x|)))

    Shape: logits (N, *) and target of the same shape and dtype, target in [0, 1] -> a float.
    The gradient is (sigmoid(x) - t) / numel.
    """

    _functions = (F.bce_with_logits_forward, F.bce_with_logits_backward)

    def _check_values(self, logits, target):
        _check_unit_interval("BCEWithLogitsLoss", "target", target)
