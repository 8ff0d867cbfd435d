"""Dropout layer."""
from .._checks import check_float
from ..functional.dropout import dropout_backward, dropout_forward
from .module import Module


class Dropout(Module):
    """Inverted dropout: in training mode zero each element with probability ``p``
    and scale the survivors by 1/(1-p); in eval mode the identity.

    Args:
        p: probability of zeroing an element, in [0, 1].
        rng: ``numpy.random.Generator`` for the masks (default: tinynet's, see ``manual_seed``).

    Shape: any -> the same.
    """

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: dropout probability has to be between 0 and 1, but got {p}")
        self.p = float(p)
        self.rng = rng

    def forward(self, x):
        check_float("Dropout", x)
        y, self._cache = dropout_forward(x, self.p, self.training, self.rng)
        return y

    def backward(self, grad_out):
        return dropout_backward(grad_out, self._pop_cache(grad_out))

    def extra_repr(self):
        return f"p={self.p}"
