"""Weight initialisation, with PyTorch's formulas (``torch.nn.init``).

Each function fills a ``Parameter`` in place, keeping its dtype and device,
draws from ``rng`` (default: tinynet's generator, see ``tinynet.manual_seed``)
and returns the parameter.
"""
import math

import numpy as np

from .backend import device_of, to_device
from .rng import default_generator


def calculate_fan_in_and_fan_out(shape):
    """fan_in = shape[1] * receptive field, fan_out = shape[0] * receptive field (receptive field = prod(shape[2:]))."""
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need a shape of at least 2 dimensions, got {tuple(shape)}")
    receptive_field = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive_field, shape[0] * receptive_field


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity: 1 for linear/sigmoid, 5/3 for tanh, sqrt(2) for relu,
    sqrt(2 / (1 + slope**2)) for leaky_relu (slope defaults to 0.01)."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _fill(param, values):
    param.data = to_device(values.astype(param.dtype), device_of(param.data))
    return param


def _fan(shape, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(param, a=0.0, b=1.0, rng=None):
    """Fill with U(a, b)."""
    rng = rng or default_generator()
    return _fill(param, rng.uniform(a, b, size=param.shape))


def normal_(param, mean=0.0, std=1.0, rng=None):
    """Fill with N(mean, std**2)."""
    rng = rng or default_generator()
    return _fill(param, rng.normal(mean, std, size=param.shape))


def constant_(param, value):
    return _fill(param, np.full(param.shape, value))


def zeros_(param):
    return constant_(param, 0.0)


def ones_(param):
    return constant_(param, 1.0)


def kaiming_uniform_(param, a=0.0, mode="fan_in", nonlinearity="leaky_relu", rng=None):
    """U(-bound, bound) with bound = gain * sqrt(3 / fan) (He et al., 2015)."""
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(param.shape, mode))
    return uniform_(param, -bound, bound, rng)


def kaiming_normal_(param, a=0.0, mode="fan_in", nonlinearity="leaky_relu", rng=None):
    """N(0, std**2) with std = gain / sqrt(fan) (He et al., 2015)."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(param.shape, mode))
    return normal_(param, 0.0, std, rng)


def xavier_uniform_(param, gain=1.0, rng=None):
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio, 2010)."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(param.shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(param, -bound, bound, rng)


def xavier_normal_(param, gain=1.0, rng=None):
    """N(0, std**2) with std = gain * sqrt(2 / (fan_in + fan_out)) (Glorot and Bengio, 2010)."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(param.shape)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return normal_(param, 0.0, std, rng)


def default_layer_init_(weight, bias, rng=None):
    """PyTorch's default for Linear and Conv layers: kaiming_uniform_(a=sqrt(5)) for the weight,
    which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias."""
    kaiming_uniform_(weight, a=math.sqrt(5), rng=rng)
    if bias is not None:
        fan_in, _ = calculate_fan_in_and_fan_out(weight.shape)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        uniform_(bias, -bound, bound, rng)
