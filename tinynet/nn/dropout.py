"""Dropout layer."""
from .._checks import check_float, check_ndim, probability
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
        self.p = probability(type(self).__name__, "p", p)
        self.rng = rng

    def forward(self, x):
        name = type(self).__name__
        check_float(name, x)
        p = probability(name, "p", self.p)  # again: it is a plain attribute, which anyone may set
        y, self._cache = dropout_forward(x, p, self.training, self.rng, self._mask_shape(x))
        return y

    def backward(self, grad_out):
        return dropout_backward(grad_out, self._pop_cache(grad_out))

    def _mask_shape(self, x):
        """One random draw per element."""
        return x.shape

    def extra_repr(self):
        return f"p={self.p}"


class Dropout2d(Dropout):
    """Channel dropout: in training mode zero each whole channel (feature map) with probability ``p``
    and scale the kept ones by 1/(1-p); in eval mode the identity. Neighbouring pixels of a feature
    map are strongly correlated, so dropping single pixels would hardly regularise a conv net.

    Args: as ``Dropout``.

    Shape: input (N, C, H, W) -> the same; the mask is (N, C, 1, 1).
    """

    def _mask_shape(self, x):
        check_ndim("Dropout2d", x, 4, "(N, C, H, W)")
        return x.shape[:2] + (1, 1)
