"""What the layer suite (``layer_registry``) does not cover for GELU, SiLU, ELU, Softplus, Hardtanh,
LogSoftmax, Identity, AdaptiveAvgPool2d and Dropout2d: saturation, bad input, interop."""
import re

import numpy as np
import pytest
import torch
from helpers import compare_module, tolerance

import tinynet as tn
from tinynet import kernels
from tinynet.interop import from_torch, to_torch
from tinynet.kernels import activation_numba, activation_numpy

from hypothesis import given, settings
from hypothesis import strategies as st
from layer_registry import DTYPES


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


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (2, 3, 16, 16), (2, 3, 17, 16), (1, 2, 300, 300)])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_global_average_pool_of_small_and_large_planes(shape, dtype):
    """The global average pool sums small planes with einsum and larger ones, and float16, with
    mean: each within rounding of a float64 mean, also where a float16 sum would overflow (a
    300 x 300 plane of values near 16 sums to 1.4 million)."""
    x = (np.random.default_rng(0).random(shape) * 2 + 15).astype(dtype)
    y = tn.AdaptiveAvgPool2d(1)(x)
    assert y.shape == shape[:2] + (1, 1) and y.dtype == dtype
    np.testing.assert_allclose(y, x.astype(np.float64).mean(axis=(2, 3), keepdims=True),
                               rtol={np.float16: 2e-3, np.float32: 1e-6, np.float64: 1e-14}[dtype])


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
