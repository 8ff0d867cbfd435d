"""The one registry of layers the layer suites run over (``tests/test_layer_suite.py``, the GPU suite).

Each entry of ``LAYER_CASES`` maps a name to a case function ``case(data, dtype)`` that draws, with
hypothesis's ``data``, the layer's arguments and an input, and returns three things:

* the tinynet layer, built in ``dtype`` (the factory),
* its PyTorch twin with the same arguments (``compare_module`` copies the weights across by
  state-dict key, so the twin's own initial weights do not matter),
* the input array x, in ``dtype`` (the input strategy).

Adding a layer means adding one entry here: write ``my_layer_case(data, dtype)`` after the
examples below and put it in ``LAYER_CASES``; every suite then checks it against PyTorch on every
kernel implementation and dtype, by finite differences, for refused wrong gradients, its state
dict and its repr. Inputs should keep away from kinks by more than gradcheck's step (``draw_input``
does, by 0.01).

``DTYPES`` and ``BACKENDS`` (the CPU kernel implementations) are defined here, once.
"""
import numpy as np
import torch
from hypothesis import strategies as st

import tinynet as tn
from tinynet import kernels

DTYPES = [np.float64, np.float32]
BACKENDS = kernels.CPU_BACKENDS

batch_sizes = st.integers(1, 5)
features = st.integers(1, 6)
# Small shapes of 1 to 4 axes: the first is the batch axis.
shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)


def draw_input(data, shape, dtype=np.float64, kinks=None):
    """Random normal values at a drawn scale (up to 30, so Sigmoid and Tanh saturate), kept 0.01
    away from each of ``kinks`` (where a derivative jumps) so finite differences never straddle
    one. By default the kink is 0 (ReLU's) and every value moves 0.01 away from it, which keeps
    distinct values distinct (no ties for max pooling); given kinks, only values nearer move."""
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    scale = data.draw(st.sampled_from([0.1, 1.0, 3.0, 30.0]), label="scale")
    x = np.random.default_rng(seed).standard_normal(shape) * scale
    if kinks is None:
        return np.where(x >= 0, x + 0.01, x - 0.01).astype(dtype)
    for kink in kinks:
        x = np.where(np.abs(x - kink) < 0.01, kink + np.copysign(0.01, x - kink), x)
    return x.astype(dtype)


def draw_pair(data, lo, hi, label):
    """A (height, width) pair, or one int when both sides agree and a coin says so."""
    value = (data.draw(st.integers(lo, hi), label=label), data.draw(st.integers(lo, hi), label=label))
    return value[0] if value[0] == value[1] and data.draw(st.booleans()) else value


def as_pair(value):
    return value if isinstance(value, tuple) else (value, value)


def linear_case(data, dtype):
    n, fan_in, fan_out = data.draw(batch_sizes), data.draw(features), data.draw(features)
    bias = data.draw(st.booleans(), label="bias")
    layer = tn.Linear(fan_in, fan_out, bias=bias, dtype=dtype, rng=np.random.default_rng(0))
    return layer, torch.nn.Linear(fan_in, fan_out, bias=bias), draw_input(data, (n, fan_in), dtype)


def elementwise_case(tn_cls, torch_cls, **kwargs):
    def case(data, dtype):
        return tn_cls(**kwargs), torch_cls(**kwargs), draw_input(data, data.draw(shapes), dtype)

    return case


def leaky_relu_case(data, dtype):
    slope = data.draw(st.floats(0.0, 1.0), label="negative_slope")
    x = draw_input(data, data.draw(shapes), dtype)
    return tn.LeakyReLU(slope), torch.nn.LeakyReLU(slope), x


def softmax_case(data, dtype):
    shape = data.draw(shapes)
    dim = data.draw(st.integers(-len(shape), len(shape) - 1), label="dim")
    return tn.Softmax(dim), torch.nn.Softmax(dim), draw_input(data, shape, dtype)


def flatten_case(data, dtype):
    shape = data.draw(st.lists(st.integers(1, 4), min_size=2, max_size=4).map(tuple))
    return tn.Flatten(), torch.nn.Flatten(), draw_input(data, shape, dtype)


def dropout_case(data, dtype):
    """Dropout is deterministic in eval mode, and in training mode with p = 0."""
    training = data.draw(st.booleans(), label="training")
    p = 0.0 if training else data.draw(st.floats(0.0, 1.0), label="p")
    layer, reference = tn.Dropout(p).train(training), torch.nn.Dropout(p).train(training)
    return layer, reference, draw_input(data, data.draw(shapes), dtype)


def conv2d_case(data, dtype):
    """Groups, non-square kernels, asymmetric stride, padding and dilation, with and without bias
    (after PyTorch's OpInfo samples for conv2d), in training or evaluation mode."""
    groups = data.draw(st.integers(1, 3), label="groups")
    args = dict(in_channels=groups * data.draw(st.integers(1, 2)), out_channels=groups * data.draw(st.integers(1, 3)),
                kernel_size=draw_pair(data, 1, 3, "kernel_size"), stride=draw_pair(data, 1, 3, "stride"),
                padding=draw_pair(data, 0, 2, "padding"), dilation=draw_pair(data, 1, 2, "dilation"), groups=groups,
                bias=data.draw(st.booleans(), label="bias"))
    kernel, padding, dilation = as_pair(args["kernel_size"]), as_pair(args["padding"]), as_pair(args["dilation"])
    smallest = [max(1, d * (k - 1) + 1 - 2 * p) for k, p, d in zip(kernel, padding, dilation)]  # one output
    h, w = (data.draw(st.integers(size, size + 3)) for size in smallest)
    shape = (data.draw(batch_sizes), args["in_channels"], h, w)
    layer = tn.Conv2d(**args, dtype=dtype, rng=np.random.default_rng(0)).train(data.draw(st.booleans()))
    return layer, torch.nn.Conv2d(**args), draw_input(data, shape, dtype)


def pool2d_case(tn_cls, torch_cls):
    def case(data, dtype):
        kernel = draw_pair(data, 1, 3, "kernel_size")
        padding = tuple(data.draw(st.integers(0, k // 2), label="padding") for k in as_pair(kernel))
        args = dict(kernel_size=kernel, stride=data.draw(st.none() | st.just(draw_pair(data, 1, 3, "stride"))),
                    padding=padding)
        h, w = (data.draw(st.integers(max(1, k - 2 * p), k - 2 * p + 4)) for k, p in zip(as_pair(kernel), padding))
        shape = (data.draw(batch_sizes), data.draw(st.integers(1, 3)), h, w)
        layer = tn_cls(**args).train(data.draw(st.booleans()))
        return layer, torch_cls(**args), draw_input(data, shape, dtype)

    return case


def gelu_case(data, dtype):
    approximate = data.draw(st.sampled_from(["none", "tanh"]), label="approximate")
    return tn.GELU(approximate), torch.nn.GELU(approximate), draw_input(data, data.draw(shapes), dtype)


def silu_case(data, dtype):
    return tn.SiLU(), torch.nn.SiLU(), draw_input(data, data.draw(shapes), dtype)


def elu_case(data, dtype):
    alpha = data.draw(st.floats(0.1, 3.0), label="alpha")
    return tn.ELU(alpha), torch.nn.ELU(alpha), draw_input(data, data.draw(shapes), dtype, kinks=(0.0,))


def softplus_case(data, dtype):
    beta = data.draw(st.sampled_from([0.5, 1.0, 2.0]), label="beta")
    threshold = data.draw(st.sampled_from([1.0, 20.0]), label="threshold")
    x = draw_input(data, data.draw(shapes), dtype, kinks=(threshold / beta,))
    return tn.Softplus(beta, threshold), torch.nn.Softplus(beta, threshold), x


def hardtanh_case(data, dtype):
    low = data.draw(st.floats(-3.0, 0.0), label="min_val")
    high = low + data.draw(st.floats(0.1, 3.0), label="width")
    x = draw_input(data, data.draw(shapes), dtype, kinks=(low, high))
    return tn.Hardtanh(low, high), torch.nn.Hardtanh(low, high), x


def log_softmax_case(data, dtype):
    shape = data.draw(shapes)
    dim = data.draw(st.integers(-len(shape), len(shape) - 1), label="dim")
    return tn.LogSoftmax(dim), torch.nn.LogSoftmax(dim), draw_input(data, shape, dtype)


def identity_case(data, dtype):
    return tn.Identity(), torch.nn.Identity(), draw_input(data, data.draw(shapes), dtype)


def adaptive_avg_pool_case(data, dtype):
    n, c = data.draw(st.integers(1, 3), label="batch"), data.draw(st.integers(1, 3), label="channels")
    h, w = data.draw(st.integers(1, 7), label="H"), data.draw(st.integers(1, 7), label="W")
    size = data.draw(st.one_of(st.integers(1, 8), st.tuples(st.integers(1, 8), st.integers(1, 8))), label="output_size")
    x = draw_input(data, (n, c, h, w), dtype)
    return tn.AdaptiveAvgPool2d(size), torch.nn.AdaptiveAvgPool2d(size), x


def dropout2d_case(data, dtype):
    """Deterministic in eval mode, and in training mode with p = 0."""
    training = data.draw(st.booleans(), label="training")
    p = 0.0 if training else data.draw(st.floats(0.0, 1.0), label="p")
    x = draw_input(data, data.draw(st.tuples(*[st.integers(1, 4)] * 4)), dtype)
    return tn.Dropout2d(p).train(training), torch.nn.Dropout2d(p).train(training), x


LAYER_CASES = {
    "Linear": linear_case,
    "ReLU": elementwise_case(tn.ReLU, torch.nn.ReLU),
    "LeakyReLU": leaky_relu_case,
    "Sigmoid": elementwise_case(tn.Sigmoid, torch.nn.Sigmoid),
    "Tanh": elementwise_case(tn.Tanh, torch.nn.Tanh),
    "Softmax": softmax_case,
    "Flatten": flatten_case,
    "Dropout": dropout_case,
    "Conv2d": conv2d_case,
    "MaxPool2d": pool2d_case(tn.MaxPool2d, torch.nn.MaxPool2d),
    "AvgPool2d": pool2d_case(tn.AvgPool2d, torch.nn.AvgPool2d),
    "GELU": gelu_case,
    "SiLU": silu_case,
    "ELU": elu_case,
    "Softplus": softplus_case,
    "Hardtanh": hardtanh_case,
    "LogSoftmax": log_softmax_case,
    "Identity": identity_case,
    "AdaptiveAvgPool2d": adaptive_avg_pool_case,
    "Dropout2d": dropout2d_case,
}
