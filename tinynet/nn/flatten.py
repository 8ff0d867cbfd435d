"""Flatten layer."""
from .._checks import check_ndim
from .module import Module


class Flatten(Module):
    """Flatten every axis after the batch axis: (N, d1, d2, ...) -> (N, d1 * d2 * ...).

    Like PyTorch's default ``nn.Flatten()`` (start_dim=1, end_dim=-1); the
    backward pass reshapes the gradient back. No data is copied for
    C-contiguous input.
    """

    def forward(self, x):
        if getattr(x, "ndim", 0) < 2:
            check_ndim("Flatten", x, 2, "(N, ...)")
        self._cache = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_out):
        return grad_out.reshape(self._pop_cache())
