"""Flatten layer."""
import math

from .module import Module


class Flatten(Module):
    """Flatten every axis after the batch axis: (N, d1, d2, ...) -> (N, d1 * d2 * ...).

    Like PyTorch's default ``nn.Flatten()`` (start_dim=1, end_dim=-1); the
    backward pass reshapes the gradient back. No data is copied for
    C-contiguous input.
    """

    def forward(self, x):
        if getattr(x, "ndim", 0) < 2:
            got = getattr(x, "shape", type(x).__name__)
            raise ValueError(f"Flatten: expected an input of shape (N, ...) with at least 2 dimensions, got shape {got}")
        self._cache = x.shape
        # The size is spelled out rather than -1, which NumPy cannot infer for an empty batch.
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))

    def backward(self, grad_out):
        return grad_out.reshape(self._pop_cache(grad_out))
