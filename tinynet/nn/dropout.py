"""Dropout layer."""
from .._checks import check_float, probability
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
        self.p = probability("Dropout", "p", p)
        self.rng = rng

    def forward(self, x):
        check_float("Dropout", x)
        p = probability("Dropout", "p", self.p)  # again: it is a plain attribute, which anyone may set
        y, self._cache = dropout_forward(x, p, self.training, self.rng)
        # The mask may be None (eval mode); wrap it so backward can still tell
        # "forward ran" from "forward never ran".
        self._cache = (self._cache,)
        return y

    def backward(self, grad_out):
        (mask,) = self._pop_cache(grad_out)
        return dropout_backward(grad_out, mask)

    def extra_repr(self):
        return f"p={self.p}"
