"""The fully connected layer."""
import numpy as np

from .. import init
from .._checks import check_float, check_ndim, check_size, float_dtype, positive_int
from ..backend import check_same_device
from ..functional.linear import linear_backward, linear_forward
from .module import Parameter
from .weighted import WeightedLayer


class Linear(WeightedLayer):
    """y = x @ weight.T + bias.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        bias: learn an additive bias (default True); without it ``self.bias`` is None.
        dtype: parameter dtype, float32 by default (float64 works end to end).
        rng: ``numpy.random.Generator`` for the initial weights (default: tinynet's).

    Shape:
        input (N, in_features) -> output (N, out_features).
        ``weight`` is (out_features, in_features), as in PyTorch, so weights load both ways.

    Example::

        layer = Linear(784, 10)
        y = layer(np.zeros((16, 784), np.float32))   # (16, 10)
    """

    _functional_backward = staticmethod(linear_backward)  # used by WeightedLayer.backward

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32, rng=None):
        super().__init__()
        self.in_features = positive_int("Linear", "in_features", in_features)
        self.out_features = positive_int("Linear", "out_features", out_features)
        dtype = float_dtype("Linear", dtype)
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        self.bias = Parameter(np.empty(out_features, dtype=dtype)) if bias else None
        init.default_layer_init_(self.weight, self.bias, rng)

    def forward(self, x):
        check_ndim("Linear", x, 2, "(N, in_features)")
        check_size("Linear", x, 1, self.in_features, "features")
        check_float("Linear", x, self.weight.dtype)
        check_same_device("Linear", input=x, weight=self.weight.data)
        y, self._cache = linear_forward(x, self.weight.data, None if self.bias is None else self.bias.data)
        return y

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
