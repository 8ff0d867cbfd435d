"""The activations GELU, SiLU, ELU, Softplus, Hardtanh, LogSoftmax, Identity, AdaptiveAvgPool2d and
Dropout2d against torch.nn and finite differences, their bad input, and interop.

Each case is a factory ``case(data, dtype) -> (tinynet layer, torch layer, x)``, drawing arguments
and shapes with hypothesis, in the form of ``test_layers.LAYER_CASES``."""
import re

import numpy as np
import pytest
import torch
from helpers import compare_module, tolerance
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet import kernels
from tinynet.interop import from_torch, to_torch
from tinynet.kernels import activation_numba, activation_numpy
from tinynet.testing import gradcheck

DTYPES = [np.float64, np.float32]
shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)


def draw_input(data, shape, dtype, kinks=()):
    """Normal values at a drawn scale, kept 0.01 away from each of ``kinks`` (where a derivative jumps)."""
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    scale = data.draw(st.sampled_from([0.1, 1.0, 3.0, 30.0]), label="scale")
    x = np.random.default_rng(seed).standard_normal(shape) * scale
    for kink in kinks:
        x = np.where(np.abs(x - kink) < 0.01, kink + np.copysign(0.01, x - kink), x)
    return x.astype(dtype)


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
    "GELU": gelu_case, "SiLU": silu_case, "ELU": elu_case, "Softplus": softplus_case, "Hardtanh": hardtanh_case,
    "LogSoftmax": log_softmax_case, "Identity": identity_case, "AdaptiveAvgPool2d": adaptive_avg_pool_case,
    "Dropout2d": dropout2d_case,
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", LAYER_CASES)
@settings(max_examples=100)
@given(data=st.data())
def test_layer_matches_torch(case, dtype, data):
    layer, reference, x = LAYER_CASES[case](data, dtype)
    compare_module(layer, reference, x, dtype=dtype)


@pytest.mark.parametrize("case", LAYER_CASES)
@settings(max_examples=30)
@given(data=st.data())
def test_layer_passes_gradcheck(case, data):
    layer, _, x = LAYER_CASES[case](data, np.float64)
    assert gradcheck(layer, x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_activations_saturate_without_overflow(dtype):
    x = np.array([[-1e4, -800.0, -100.0, -30.0, 0.5, 30.0, 100.0, 800.0, 1e4]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise"):
        for layer, reference in [(tn.SiLU(), torch.nn.SiLU()), (tn.ELU(), torch.nn.ELU()),
                                 (tn.Softplus(beta=0.5), torch.nn.Softplus(beta=0.5)),
                                 (tn.LogSoftmax(), torch.nn.LogSoftmax(-1)), (tn.GELU(), torch.nn.GELU())]:
            assert np.isfinite(compare_module(layer, reference, x, dtype=dtype)).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_erf_kernels_agree_bit_for_bit(dtype):
    x = (np.random.default_rng(0).standard_normal(1000) * 3).astype(dtype)
    expected = activation_numpy.erf(x)
    assert expected.dtype == dtype
    np.testing.assert_array_equal(activation_numba.erf(x), expected)
    np.testing.assert_allclose(kernels.erf(x), torch.erf(torch.from_numpy(x)).numpy(), *tolerance(dtype))


@settings(max_examples=100)
@given(p=st.floats(0.05, 0.95), seed=st.integers(0, 2**32 - 1))
def test_dropout2d_zeros_whole_channels_and_scales_the_rest(p, seed):
    rng = np.random.default_rng(seed)
    x = rng.random((20, 30, 3, 2)) + 0.5  # no zeros, so y == 0 marks a dropped element
    layer = tn.Dropout2d(p, rng=rng)
    y = layer(x)
    dropped = (y == 0).all(axis=(2, 3))
    np.testing.assert_array_equal((y == 0).any(axis=(2, 3)), dropped)  # a channel goes whole or not at all
    n = dropped.size
    assert abs(dropped.sum() - n * p) <= 5 * np.sqrt(n * p * (1 - p))
    np.testing.assert_array_equal(y[~dropped], x[~dropped] * (1 / (1 - p)))
    grad = rng.standard_normal(x.shape)
    grad_x = layer.backward(grad)
    np.testing.assert_array_equal(grad_x[dropped], 0)
    np.testing.assert_array_equal(grad_x[~dropped], grad[~dropped] * (1 / (1 - p)))


def test_bad_arguments_and_input_are_named():
    with pytest.raises(ValueError, match=re.escape("GELU: approximate must be 'none' or 'tanh', got 'erf'")):
        tn.GELU("erf")
    with pytest.raises(ValueError, match=re.escape("Hardtanh: min_val must be less than max_val, got min_val=1 and max_val=1")):
        tn.Hardtanh(1, 1)
    with pytest.raises(ValueError, match=re.escape("Dropout2d: dropout probability has to be between 0 and 1, but got 2")):
        tn.Dropout2d(2)
    with pytest.raises(ValueError, match=re.escape("Dropout2d: expected a 4-D input of shape (N, C, H, W), got shape (2, 3)")):
        tn.Dropout2d(0.5)(np.ones((2, 3)))
    with pytest.raises(ValueError, match=re.escape("LogSoftmax: dim 2 is out of range for an input of shape (2, 3)")):
        tn.LogSoftmax(2)(np.ones((2, 3)))
    with pytest.raises(TypeError, match=re.escape("SiLU: expected a floating-point array, got int64")):
        tn.SiLU()(np.ones((2, 3), np.int64))
    with pytest.raises(ValueError, match=re.escape("AdaptiveAvgPool2d: non-positive output_size is not supported, got output_size=0")):
        tn.AdaptiveAvgPool2d(0)
    with pytest.raises(ValueError, match=re.escape("AdaptiveAvgPool2d: expected a 4-D input of shape (N, C, H, W), got shape (2, 3)")):
        tn.AdaptiveAvgPool2d(1)(np.ones((2, 3)))


def test_interop_carries_every_new_layer_both_ways():
    model = tn.Sequential(tn.Identity(), tn.Dropout2d(0.3), tn.AdaptiveAvgPool2d((2, 1)), tn.Flatten(),
                          tn.GELU("tanh"), tn.GELU(), tn.SiLU(), tn.ELU(0.5), tn.Softplus(2.0, 5.0),
                          tn.Hardtanh(-0.5, 2.0), tn.LogSoftmax(1)).eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 4))
    theirs = to_torch(model)
    with torch.no_grad():
        np.testing.assert_allclose(theirs(torch.from_numpy(x)).numpy(), model(x), *tolerance(np.float64))
    back = from_torch(theirs)
    assert repr(back) == repr(model) and not back.training
    np.testing.assert_array_equal(back(x), model(x))
