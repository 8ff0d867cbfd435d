"""Normalisation layers: BatchNorm1d, BatchNorm2d and LayerNorm (PyTorch's arguments and state-dict keys)."""
import numbers

import numpy as np

from .._checks import check_float, check_size
from ..backend import check_same_device
from ..functional.normalization import normalize_backward, normalize_forward
from .module import Module, Parameter


class _BatchNorm(Module):
    """What BatchNorm1d and BatchNorm2d share; they differ only in the input ranks they accept.

    Args:
        num_features: C, the channels (axis 1 of the input).
        eps: added to the variance before its square root.
        momentum: weight of the new batch in the running estimates,
            ``running = (1 - momentum) * running + momentum * batch``; ``None`` makes them the
            cumulative average of all batches seen (momentum 1/num_batches_tracked).
        affine: learn a per-channel ``weight`` (ones) and ``bias`` (zeros); without it both are None.
        track_running_stats: keep ``running_mean`` (zeros), ``running_var`` (ones) and
            ``num_batches_tracked`` (an int64 0-d array) as buffers and normalise with them in
            evaluation mode; without it the layer always uses the batch's statistics.
        dtype: parameter and buffer dtype, float32 by default.

    In training mode each channel is normalised with the mean and biased variance of the batch
    (over N and the spatial axes), and the running variance is updated with the unbiased one
    (times n / (n - 1)), as in PyTorch.
    """

    #: the input ranks accepted, and how the error message names them
    ranks = ()
    layout = ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 dtype=np.float32):
        super().__init__()
        where = type(self).__name__
        if not isinstance(num_features, (int, np.integer)) or isinstance(num_features, bool) or num_features <= 0:
            raise ValueError(f"{where}: num_features must be a positive integer, got {num_features!r}")
        if not (isinstance(eps, numbers.Real) and eps > 0):
            raise ValueError(f"{where}: eps must be a positive number, got {eps!r}")
        if momentum is not None and not (isinstance(momentum, numbers.Real) and 0.0 <= momentum <= 1.0):
            raise ValueError(f"{where}: momentum must be None or a number in [0, 1], got {momentum!r}")
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        self.weight = Parameter(np.ones(num_features, dtype)) if affine else None
        self.bias = Parameter(np.zeros(num_features, dtype)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype))
            self.register_buffer("num_batches_tracked", np.array(0, np.int64))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def _check_input(self, x):
        where = type(self).__name__
        if getattr(x, "ndim", None) not in self.ranks:
            raise ValueError(f"{where}: expected a {self.layout} input, got shape {getattr(x, 'shape', type(x).__name__)}")
        check_size(where, x, 1, self.num_features, "channels")
        reference = self.weight.data if self.affine else self.running_mean
        check_float(where, x, None if reference is None else reference.dtype)
        if reference is not None:
            check_same_device(where, input=x, parameters=reference)

    def forward(self, x):
        self._check_input(x)
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)  # a per-channel array against x
        use_batch_stats = self.training or self.running_mean is None
        count = x.size // self.num_features
        if use_batch_stats and count <= 1:
            raise ValueError(
                f"{type(self).__name__}: Expected more than 1 value per channel when training, "
                f"got input size {tuple(x.shape)}"
            )
        weight = None if self.weight is None else self.weight.data.reshape(shape)
        bias = None if self.bias is None else self.bias.data.reshape(shape)
        if use_batch_stats:
            y, self._cache, mean, var = normalize_forward(x, axes, self.eps, weight, bias)
            if self.training and self.running_mean is not None:
                self._update_running_stats(mean.reshape(-1), var.reshape(-1), count)
        else:
            y, self._cache, _, _ = normalize_forward(
                x, axes, self.eps, weight, bias, self.running_mean.reshape(shape), self.running_var.reshape(shape)
            )
        return y

    def _update_running_stats(self, mean, var, count):
        """Blend the batch's mean and unbiased variance into the running estimates, in place."""
        self.num_batches_tracked += 1
        momentum = 1.0 / int(self.num_batches_tracked) if self.momentum is None else self.momentum
        keep = self.running_mean.dtype.type(1.0 - momentum)
        new = self.running_mean.dtype.type(momentum)
        self.running_mean *= keep
        self.running_mean += new * mean
        self.running_var *= keep
        self.running_var += (new * self.running_var.dtype.type(count / (count - 1))) * var

    def backward(self, grad_out):
        grad_x, grad_w, grad_b = normalize_backward(grad_out, self._pop_cache(grad_out), self.affine)
        if self.affine:
            self.weight.accumulate_grad(grad_w)
            self.bias.accumulate_grad(grad_b)
        return grad_x

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of features (Ioffe and Szegedy, 2015), per channel C.

    Shape: input (N, C) or (N, C, L) -> output of the same shape.
    See ``_BatchNorm`` for the arguments; PyTorch's ``torch.nn.BatchNorm1d`` computes the same.

    Example::

        bn = BatchNorm1d(64)
        y = bn(np.random.randn(32, 64).astype(np.float32))    # (32, 64), each column mean 0, variance 1
    """

    ranks = (2, 3)
    layout = "2-D or 3-D (N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of images (Ioffe and Szegedy, 2015), per channel C over N, H and W.

    y = (x - mean) / sqrt(var + eps) * weight + bias, with the batch's mean and biased variance in
    training mode and ``running_mean``/``running_var`` in evaluation mode.

    Shape: input (N, C, H, W) -> output of the same shape.
    See ``_BatchNorm`` for the arguments; PyTorch's ``torch.nn.BatchNorm2d`` computes the same.

    Example::

        bn = BatchNorm2d(16)
        y = bn(np.random.randn(8, 16, 14, 14).astype(np.float32))   # (8, 16, 14, 14)
    """

    ranks = (4,)
    layout = "4-D (N, C, H, W)"


class LayerNorm(Module):
    """Layer normalisation (Ba et al., 2016): each sample normalised over its last axes.

    y = (x - mean) / sqrt(var + eps) * weight + bias, mean and biased variance over the last
    ``len(normalized_shape)`` axes of each sample.

    Args:
        normalized_shape: the shape of those last axes (an int for one axis).
        eps: added to the variance before its square root.
        elementwise_affine: learn ``weight`` (ones) and ``bias`` (zeros) of shape ``normalized_shape``.
        bias: learn the bias (with elementwise_affine); without it ``self.bias`` is None.
        dtype: parameter dtype, float32 by default.

    Shape: input (*, *normalized_shape) -> output of the same shape.

    Example::

        ln = LayerNorm(64)
        y = ln(np.random.randn(32, 64).astype(np.float32))    # each row mean 0, variance 1
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, dtype=np.float32):
        super().__init__()
        if isinstance(normalized_shape, (int, np.integer)):
            normalized_shape = (normalized_shape,)
        normalized_shape = tuple(normalized_shape)
        if not normalized_shape or not all(isinstance(n, (int, np.integer)) and n > 0 for n in normalized_shape):
            raise ValueError(f"LayerNorm: normalized_shape must be positive integers, got {normalized_shape!r}")
        if not (isinstance(eps, numbers.Real) and eps > 0):
            raise ValueError(f"LayerNorm: eps must be a positive number, got {eps!r}")
        self.normalized_shape = tuple(int(n) for n in normalized_shape)
        self.eps = float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        self.weight = Parameter(np.ones(self.normalized_shape, dtype)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(self.normalized_shape, dtype)) if elementwise_affine and bias else None

    def forward(self, x):
        k = len(self.normalized_shape)
        if getattr(x, "ndim", 0) < k or tuple(x.shape[x.ndim - k:]) != self.normalized_shape:
            raise ValueError(
                f"LayerNorm: expected an input of shape (*, {', '.join(map(str, self.normalized_shape))}), "
                f"got shape {getattr(x, 'shape', type(x).__name__)}"
            )
        check_float("LayerNorm", x, None if self.weight is None else self.weight.dtype)
        axes = tuple(range(x.ndim - k, x.ndim))
        y, self._cache, _, _ = normalize_forward(
            x, axes, self.eps, None if self.weight is None else self.weight.data,
            None if self.bias is None else self.bias.data, param_axes=tuple(range(x.ndim - k)),
        )
        return y

    def backward(self, grad_out):
        grad_x, grad_w, grad_b = normalize_backward(grad_out, self._pop_cache(grad_out), self.weight is not None)
        if self.weight is not None:
            self.weight.accumulate_grad(grad_w)
        if self.bias is not None:
            self.bias.accumulate_grad(grad_b)
        return grad_x

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
