"""The convolution and pooling kernels: every implementation against PyTorch and against each other,
the pure-Python versions of the numba loops, and the dispatcher that picks an implementation."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from helpers import tolerance
from layer_registry import BACKENDS

import tinynet as tn
from tinynet import kernels
from tinynet.kernels import (activation_numba, activation_numpy, im2col_numba, im2col_numpy, matmul_numba, matmul_numpy,
                             norm_numba, norm_numpy, pool_numba, pool_numpy)



@st.composite
def im2col_cases(draw):
    """(x, kernel_size, stride, padding, dilation) with at least one output position."""
    pair = lambda lo, hi: (draw(st.integers(lo, hi)), draw(st.integers(lo, hi)))  # noqa: E731
    kernel, stride, padding, dilation = pair(1, 4), pair(1, 3), pair(0, 2), pair(1, 2)
    extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    h, w = (draw(st.integers(max(1, e - 2 * p), e - 2 * p + 5)) for e, p in zip(extent, padding))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w)
    x = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).standard_normal(shape)
    return x, kernel, stride, padding, dilation


@st.composite
def pool_cases(draw):
    """(x, kernel_size, stride, padding) as nn.MaxPool2d accepts them; half the inputs are full of ties."""
    pair = lambda lo, hi: (draw(st.integers(lo, hi)), draw(st.integers(lo, hi)))  # noqa: E731
    kernel, stride = pair(1, 4), pair(1, 5)
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    h, w = (draw(st.integers(max(1, k - 2 * p), k - 2 * p + 6)) for k, p in zip(kernel, padding))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(-1, 2, shape).astype(float) if draw(st.booleans()) else rng.standard_normal(shape)
    return x, kernel, stride, padding


def torch_unfold(x, kernel, stride, padding, dilation):
    """PyTorch's im2col, (N, C*KH*KW, L), rearranged into tinynet's (C*KH*KW, N*L)."""
    cols = TF.unfold(torch.from_numpy(x), kernel, dilation=dilation, padding=padding, stride=stride).numpy()
    return cols.transpose(1, 0, 2).reshape(cols.shape[1], -1)


# --- im2col / col2im -----------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=60)
@given(case=im2col_cases())
def test_im2col_is_pytorch_unfold_and_col2im_is_fold(backend, case):
    x, kernel, stride, padding, dilation = case
    with kernels.use(backend):
        cols = kernels.im2col(x, kernel, stride, padding, dilation)
        np.testing.assert_array_equal(cols, torch_unfold(x, kernel, stride, padding, dilation))
        grad_cols = np.random.default_rng(1).standard_normal(cols.shape)
        grad_x = kernels.col2im(grad_cols, x.shape, kernel, stride, padding, dilation)
    n, _, h, w = x.shape
    folded = TF.fold(
        torch.from_numpy(grad_cols.reshape(grad_cols.shape[0], n, -1).transpose(1, 0, 2).copy()),
        (h, w), kernel, dilation=dilation, padding=padding, stride=stride,
    ).numpy()
    np.testing.assert_allclose(grad_x, folded, rtol=1e-12, atol=1e-12)


@settings(max_examples=60)
@given(case=im2col_cases(), float32=st.booleans())
def test_im2col_numba_equals_numpy_bit_for_bit(case, float32):
    x, *geometry = case
    x = x.astype(np.float32) if float32 else x
    cols = im2col_numpy.im2col(x, *geometry)
    np.testing.assert_array_equal(im2col_numba.im2col(x, *geometry), cols)
    assert im2col_numba.im2col(x, *geometry).dtype == x.dtype
    grad_cols = np.random.default_rng(2).standard_normal(cols.shape).astype(x.dtype)
    # Both add each pixel's contributions in the same (i, j) order, so even the rounding agrees.
    expected = im2col_numpy.col2im(grad_cols, x.shape, *geometry)
    np.testing.assert_array_equal(im2col_numba.col2im(grad_cols, x.shape, *geometry), expected)


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # inf - inf in the reference's padded border
@settings(max_examples=60)
@given(kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)), dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       shape=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 7), st.integers(1, 7)),
       float32=st.booleans(), seed=st.integers(0, 99))
def test_same_padding_runs_equal_numpy_and_drop_what_falls_on_padding(kernel, dilation, shape, float32, seed):
    """Stride 1 with rows as wide as the input's takes the one-run paths (im2col's copy, col2im's
    masked add). Gradient entries that fall on padding, here NaN and inf, must never reach a pixel."""
    kernel = tuple(2 * k - 1 for k in kernel)  # odd, so that "same" padding exists
    padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    geometry = (kernel, (1, 1), padding, dilation)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32 if float32 else np.float64)
    cols = im2col_numpy.im2col(x, *geometry)
    np.testing.assert_array_equal(im2col_numba.im2col(x, *geometry), cols)
    grad_cols = rng.standard_normal(cols.shape).astype(x.dtype)
    on_padding = im2col_numpy.im2col(np.ones_like(x), *geometry) == 0
    grad_cols[on_padding] = rng.choice([np.nan, np.inf, -np.inf], on_padding.sum())
    expected = im2col_numpy.col2im(grad_cols, x.shape, *geometry)
    assert np.isfinite(expected).all()
    np.testing.assert_array_equal(im2col_numba.col2im(grad_cols, x.shape, *geometry), expected)


def test_col2im_is_the_adjoint_of_im2col():
    """<im2col(x), c> == <x, col2im(c)> for every x and c: what makes col2im the right backward."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6))
    geometry = ((3, 2), (2, 1), (1, 2), (2, 1))
    for module in (im2col_numpy, im2col_numba):
        cols = module.im2col(x, *geometry)
        c = rng.standard_normal(cols.shape)
        np.testing.assert_allclose(np.sum(cols * c), np.sum(x * module.col2im(c, x.shape, *geometry)), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("with_bias", [True, False])
def test_layout_changes_of_the_convolution(backend, dtype, with_bias):
    """cnhw_to_nchw adds the bias while swapping the first two axes; nchw_to_cnhw swaps them back
    and sums each channel (the bias gradient)."""
    rng = np.random.default_rng(6)
    y_t = rng.standard_normal((3, 4, 5, 2)).astype(dtype)
    bias = rng.standard_normal(3).astype(dtype) if with_bias else None
    with kernels.use(backend):
        y = kernels.cnhw_to_nchw(y_t, bias)
        grad_t, sums = kernels.nchw_to_cnhw(y, with_bias)
    expected = y_t.transpose(1, 0, 2, 3) + (bias.reshape(-1, 1, 1) if with_bias else 0)
    assert y.dtype == dtype and y.flags.c_contiguous and grad_t.flags.c_contiguous
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(grad_t, expected.transpose(1, 0, 2, 3))
    if with_bias:
        assert sums.dtype == dtype
        np.testing.assert_allclose(sums, expected.sum(axis=(0, 2, 3)), rtol=1e-6)
    else:
        assert sums is None


# --- the weight gradient's product ------------------------------------------------
@settings(max_examples=100, deadline=None)
@given(groups=st.integers(1, 3), m_rows=st.integers(1, 9), n_rows=st.integers(1, 9),
       inner=st.one_of(st.integers(0, 40), st.integers(2000, 4500)), float32=st.booleans(), seed=st.integers(0, 99))
def test_matmul_transposed_equals_the_exact_product_up_to_rounding(groups, m_rows, n_rows, inner, float32, seed):
    """Both implementations, in both dtypes, for short, long and empty sums."""
    dtype = np.float32 if float32 else np.float64
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((groups, m_rows, inner)).astype(dtype), rng.standard_normal((groups, n_rows, inner)).astype(dtype)
    exact = np.matmul(a.astype(np.float64), b.astype(np.float64).transpose(0, 2, 1))
    # a sum of `inner` products, each term and each partial sum rounded once
    bound = 2 * inner * np.finfo(dtype).eps * np.matmul(np.abs(a), np.abs(b).transpose(0, 2, 1))
    for module in (matmul_numba, matmul_numpy):
        product = module.matmul_transposed(a, b)
        assert product.shape == (groups, m_rows, n_rows) and product.dtype == dtype
        assert np.all(np.abs(product - exact) <= bound)


def test_matmul_transposed_propagates_nan_and_inf():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((1, 5, 300)), rng.standard_normal((1, 7, 300))
    a[0, 1, 17], b[0, 4, 3] = np.nan, np.inf
    for module in (matmul_numba, matmul_numpy):
        product = module.matmul_transposed(a, b)
        np.testing.assert_array_equal(np.isnan(product), np.isnan(a @ b.transpose(0, 2, 1)))
        assert np.isnan(product[0, 1]).all() and np.isinf(product[0, [0, 2, 3, 4], 4]).all()


# --- pooling -------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=60)
@given(case=pool_cases())
def test_max_pool_indices_are_pytorchs(backend, case):
    """Same maxima and the same chosen element (first maximum on ties) as PyTorch's return_indices."""
    x, kernel, stride, padding = case
    with kernels.use(backend):
        y, indices = kernels.max_pool2d_forward(x, kernel, stride, padding)
        grad_y = np.random.default_rng(3).standard_normal(y.shape)
        grad_x = kernels.max_pool2d_backward(grad_y, indices, x.shape)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt, it = TF.max_pool2d(xt, kernel, stride, padding, return_indices=True)
    yt.backward(torch.from_numpy(grad_y))
    assert indices.dtype == np.int32
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(indices, it.numpy())
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=1e-12, atol=1e-12)


@settings(max_examples=100)
@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(2, 9), st.integers(2, 12)),
       float32=st.booleans(), values=st.sampled_from(["normal", "ties", "nan"]), seed=st.integers(0, 99))
def test_max_pool_2x2_path_is_pytorchs(shape, float32, values, seed):
    """MaxPool2d(2) without padding has a two-pass path of its own (even widths; odd ones take the
    general loop): same maxima, indices and gradient as PyTorch, with ties and NaNs."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-1, 2, shape).astype(float) if values == "ties" else rng.standard_normal(shape)
    if values == "nan":
        x[rng.random(shape) < 0.2] = np.nan
    x = x.astype(np.float32 if float32 else np.float64)
    y, indices = pool_numba.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0))
    yt, it = TF.max_pool2d(torch.from_numpy(x), 2, return_indices=True)
    np.testing.assert_array_equal(y, yt.numpy())  # NaNs in the same places
    np.testing.assert_array_equal(indices, it.numpy())
    np.testing.assert_array_equal(pool_numba.max_pool2d_values(x, (2, 2), (2, 2), (0, 0)), y)


@settings(max_examples=60)
@given(case=pool_cases(), float32=st.booleans())
def test_pool_numba_equals_numpy_bit_for_bit(case, float32):
    x, *geometry = case
    x = x.astype(np.float32) if float32 else x
    y, indices = pool_numpy.max_pool2d_forward(x, *geometry)
    y_numba, indices_numba = pool_numba.max_pool2d_forward(x, *geometry)
    np.testing.assert_array_equal(y_numba, y)
    np.testing.assert_array_equal(indices_numba, indices)
    np.testing.assert_array_equal(pool_numba.max_pool2d_values(x, *geometry), y)
    np.testing.assert_array_equal(pool_numpy.max_pool2d_values(x, *geometry), y)
    grad_y = np.random.default_rng(4).standard_normal(y.shape).astype(x.dtype)
    np.testing.assert_array_equal(
        pool_numba.max_pool2d_backward(grad_y, indices, x.shape), pool_numpy.max_pool2d_backward(grad_y, indices, x.shape)
    )
    average = pool_numpy.avg_pool2d_forward(x, *geometry)
    assert average.dtype == x.dtype
    np.testing.assert_array_equal(pool_numba.avg_pool2d_forward(x, *geometry), average)
    np.testing.assert_array_equal(
        pool_numba.avg_pool2d_backward(grad_y, x.shape, *geometry), pool_numpy.avg_pool2d_backward(grad_y, x.shape, *geometry)
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_pool_special_values_follow_pytorch(backend):
    """NaN wins its window (the last NaN); a window of -inf picks its first real pixel, never padding."""
    x = np.zeros((1, 2, 4, 4))
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = np.nan
    x[0, 1] = -np.inf
    with kernels.use(backend):
        y, indices = kernels.max_pool2d_forward(x, (3, 3), (2, 2), (1, 1))
    yt, it = TF.max_pool2d(torch.from_numpy(x), 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(y, yt.numpy())
    np.testing.assert_array_equal(indices, it.numpy())


# --- ReLU --------------------------------------------------------------------
SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 3.0, -3.0])


def with_special_values(rng, shape, dtype):
    """Normal values with NaN, infinities, signed zeros and subnormals scattered in."""
    x = rng.standard_normal(shape)
    x.flat[rng.integers(0, x.size, x.size // 3)] = rng.choice(SPECIAL, x.size // 3)
    return x.astype(dtype)


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # inf * 0, as intended
@settings(max_examples=60)
@given(shape=st.lists(st.integers(0, 7), min_size=0, max_size=4), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**32 - 1), transposed=st.booleans())
def test_relu_numba_equals_numpy_bit_for_bit(shape, dtype, seed, transposed):
    rng = np.random.default_rng(seed)
    x, grad_y = with_special_values(rng, shape, dtype), with_special_values(rng, shape, dtype)
    if transposed:  # a non-contiguous view
        x, grad_y = x.T, grad_y.T
    y = activation_numba.relu_forward(x)
    assert y.dtype == dtype and y.shape == x.shape
    # Bit patterns, so that NaN == NaN and -0.0 != 0.0 where the two differ.
    assert np.array_equal(y, activation_numpy.relu_forward(x), equal_nan=True)
    grad_x = activation_numba.relu_backward(grad_y, y)
    expected = activation_numpy.relu_backward(grad_y, y)
    assert grad_x.dtype == dtype and grad_x.shape == expected.shape
    assert grad_x.tobytes() == expected.tobytes()  # bit for bit, signed zeros and NaNs included


@pytest.mark.parametrize("backend", BACKENDS)
def test_relu_special_values_follow_pytorch(backend):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 2.0, -2.0], np.float32)
    grad_y = np.full(x.shape, 5.0, np.float32)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    yt = torch.relu(xt)
    yt.backward(torch.from_numpy(grad_y))
    with kernels.use(backend):
        y = kernels.relu_forward(x)
        np.testing.assert_array_equal(y, yt.detach().numpy())
        np.testing.assert_array_equal(kernels.relu_backward(grad_y, y), xt.grad.numpy())


@pytest.mark.parametrize("backend", BACKENDS)
def test_relu_backward_refuses_a_gradient_of_another_shape(backend):
    y = np.ones((4, 3), np.float32)
    with kernels.use(backend), pytest.raises(
        ValueError, match=r"^ReLU backward: expected a gradient of the output's shape \(4, 3\), got \(1, 3\)$"
    ):
        kernels.relu_backward(np.ones((1, 3), np.float32), y)


# --- BatchNorm's normalisation -------------------------------------------------
@st.composite
def channel_norm_cases(draw):
    """BatchNorm's arguments to ``normalize_forward``: x (N, C, ...) of rank 2 to 4, at a drawn scale
    and (in float64) offset, possibly a strided view; per-channel weight, bias and statistics
    (shaped (1, C, 1, ...), or None); eps; and a gradient for the backward."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = (draw(st.integers(1, 5)), draw(st.integers(1, 4))) + tuple(
        draw(st.lists(st.integers(1, 5), min_size=0, max_size=2)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([0.1, 1.0, 10.0]))
    offset = draw(st.sampled_from([0.0, 3.0, -50.0] if dtype == np.float64 else [0.0]))  # see test_normalization
    x = (rng.standard_normal(shape) * scale + offset).astype(dtype)
    if draw(st.booleans()):  # a non-contiguous view of the same values
        x = np.asfortranarray(x)
    per_channel = (1, shape[1]) + (1,) * (len(shape) - 2)
    weight, bias = (rng.standard_normal(per_channel).astype(dtype) if draw(st.booleans()) else None for _ in "wb")
    mean = var = None
    if draw(st.booleans()):  # running statistics, as in evaluation
        mean = rng.standard_normal(per_channel).astype(dtype)
        var = rng.uniform(0.1, 3.0, per_channel).astype(dtype)
    eps = draw(st.sampled_from([1e-5, 0.1]))
    return x, (0,) + tuple(range(2, len(shape))), eps, weight, bias, mean, var, rng.standard_normal(shape).astype(dtype)


@settings(max_examples=100)
@given(case=channel_norm_cases(), need_param_grads=st.booleans())
def test_norm_numba_equals_numpy_to_rounding(case, need_param_grads):
    """BatchNorm's compiled loops against the reference, forward and backward, float32 and float64."""
    x, axes, eps, weight, bias, mean, var, grad_y = case
    dtype = x.dtype
    ours = norm_numba.normalize_forward(x, axes, eps, weight, bias, mean, var)
    expected = norm_numpy.normalize_forward(x, axes, eps, weight, bias, mean, var)
    for name, actual, reference in zip(["y", "inv_std", "batch_mean", "batch_var"], ours, expected):
        if reference is None:
            assert actual is None, name
            continue
        assert actual.shape == reference.shape and actual.dtype == dtype, name
        # y is x - mean times inv_std (times weight): the mean's rounding (relative to |x|) is multiplied by inv_std
        size = float(np.max(np.abs(x))) * float(np.max(expected[1])) if name == "y" else reference
        if name == "y" and weight is not None:
            size *= float(np.max(np.abs(weight)))
        rtol, atol = tolerance(dtype, expected=[size] if name == "y" else reference)
        np.testing.assert_allclose(actual, reference, rtol=rtol, atol=atol, err_msg=name)
    _, inv_std, batch_mean, _ = expected
    batch_stats = mean is None
    used_mean = batch_mean if batch_stats else mean
    x_hat = (x - used_mean) * inv_std
    ours = norm_numba.normalize_backward(grad_y, x, used_mean, inv_std, weight, axes, axes, batch_stats,
                                         need_param_grads)
    expected = norm_numpy.normalize_backward(grad_y, x, used_mean, inv_std, weight, axes, axes, batch_stats,
                                             need_param_grads)
    gamma = 1.0 if weight is None else float(np.max(np.abs(weight)))
    # Every term of the gradients is at most |grad_y| * |x_hat| (times |weight| * inv_std for grad_x).
    term = float(np.max(np.abs(grad_y))) * max(1.0, float(np.max(np.abs(x_hat)))) * x_hat.size
    for name, actual, reference in zip(["grad_x", "grad_weight", "grad_bias"], ours, expected):
        if reference is None:
            assert actual is None, name
            continue
        assert actual.shape == reference.shape and actual.dtype == dtype, name
        size = term * gamma * float(np.max(inv_std)) if name == "grad_x" else term
        rtol, atol = tolerance(dtype, expected=[size])
        np.testing.assert_allclose(actual, reference, rtol=rtol, atol=atol, err_msg=name)


def test_norm_numba_gives_other_normalisations_to_the_reference():
    """LayerNorm's axes, a weight per element: the per-channel loops do not apply, the results are the reference's."""
    rng = np.random.default_rng(0)
    x, grad_y, weight = rng.standard_normal((4, 3, 5)), rng.standard_normal((4, 3, 5)), rng.standard_normal((3, 5))
    for axes, param_axes in (((1, 2), (0,)), ((0, 2), (0, 2))):
        per_element = weight if axes == (1, 2) else weight.reshape(1, 3, 5)
        ours = norm_numba.normalize_forward(x, axes, 1e-5, per_element, None, None, None)
        expected = norm_numpy.normalize_forward(x, axes, 1e-5, per_element, None, None, None)
        for actual, reference in zip(ours, expected):
            np.testing.assert_array_equal(actual, reference)
        backward = [module.normalize_backward(grad_y, x, expected[2], expected[1], per_element, axes, param_axes,
                                              True, True) for module in (norm_numba, norm_numpy)]
        for actual, reference in zip(*backward):
            np.testing.assert_array_equal(actual, reference)


@pytest.mark.parametrize("layer", [tn.Conv2d(2, 3, 3, padding=1, dtype=np.float16), tn.MaxPool2d(2), tn.AvgPool2d(2),
                                   tn.ReLU(), tn.BatchNorm2d(2, dtype=np.float16)], ids=repr)
def test_float16_takes_the_reference_kernels_under_numba(layer):
    """numba's kernels are compiled for float32 and float64; float16 must not reach them."""
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 4)).astype(np.float16)
    results = {}
    for backend in BACKENDS:
        with kernels.use(backend):
            y = layer(x)
            grad_x = layer.backward(np.ones_like(y))
        assert y.dtype == grad_x.dtype == np.float16
        results[backend] = y, grad_x
    for ours, reference in zip(results["numba"], results["numpy"]):
        np.testing.assert_array_equal(ours, reference)


# --- the pure-Python loops behind the numba kernels ----------------------------
@pytest.mark.filterwarnings("ignore:invalid value encountered")  # ReLU's inf * 0
def test_pure_python_loops_agree_with_the_compiled_kernels():
    """The undecorated functions are what NUMBA_DISABLE_JIT=1 runs; they must compute the same thing."""
    rng = np.random.default_rng(5)
    x = rng.integers(-1, 2, (2, 2, 5, 4)).astype(np.float64)
    geometry = ((3, 2), (2, 1), (1, 1), (1, 2))
    out_h, out_w = kernels.output_hw(x.shape, *geometry[:3], geometry[3])
    cols = im2col_numpy.im2col(x, *geometry).reshape(2, 3, 2, 2, out_h, out_w)  # (C, KH, KW, N, OH, OW)
    out = np.empty_like(cols)
    im2col_numba._im2col_loops(x, out, 3, 2, 2, 1, 1, 1, 1, 2)
    np.testing.assert_array_equal(out, cols)
    grad_x = np.empty_like(x)
    im2col_numba._col2im_loops(cols, grad_x, 3, 2, 2, 1, 1, 1, 1, 2)
    np.testing.assert_array_equal(grad_x, im2col_numba.col2im(cols.reshape(12, -1), x.shape, *geometry))

    # The channels-last patches (dilation 2 across, so that a kernel row is KW runs of C values).
    padded = np.empty((2, 5 + 2, 4 + 2, 2))  # x (N, C, H, W) padded by 1, channels last
    im2col_numba._pad_channels_last_loops(x, padded, 1, 1)
    np.testing.assert_array_equal(padded, np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))).transpose(0, 2, 3, 1))
    patches = np.empty((2, out_h, out_w, 3, 2, 2))
    im2col_numba._patches_loops(padded, patches, 3, 2, 2, 1, 1, 2, False)
    np.testing.assert_array_equal(patches.transpose(5, 3, 4, 0, 1, 2), cols)  # (C, KH, KW, N, OH, OW)
    compiled = np.empty_like(patches)
    im2col_numba._patches_jit(padded, compiled, 3, 2, 2, 1, 1, 2, False)
    np.testing.assert_array_equal(compiled, patches)
    compiled = np.empty_like(padded)
    im2col_numba._patches_loops(padded, patches, 3, 2, 2, 1, 1, 2, True)  # added back
    im2col_numba._patches_jit(compiled, patches, 3, 2, 2, 1, 1, 2, True)
    np.testing.assert_array_equal(padded, compiled)
    unpadded = np.empty_like(x)
    im2col_numba._unpad_channels_first_loops(padded, unpadded, 1, 1)
    np.testing.assert_array_equal(unpadded, grad_x)  # col2im of the same columns
    # And the ResNet's case: one run of KW*C values per kernel row (dilation 1), padding (1, 2).
    wide = rng.integers(-1, 2, (2, 3, 4, 5)).astype(np.float64)
    taps = im2col_numpy.im2col(wide, (3, 3), (1, 1), (1, 2), (1, 1)).reshape(3, 3, 3, 2, 4, 7)
    padded = np.empty((2, 4 + 2, 5 + 4, 3))
    im2col_numba._pad_channels_last_loops(wide, padded, 1, 2)
    patches, compiled = np.empty((2, 4, 7, 3, 3, 3)), np.empty((2, 4, 7, 3, 3, 3))
    im2col_numba._patches_loops(padded, patches, 3, 3, 1, 1, 1, 1, False)
    im2col_numba._patches_jit(padded, compiled, 3, 3, 1, 1, 1, 1, False)
    np.testing.assert_array_equal(patches.transpose(5, 3, 4, 0, 1, 2), taps)
    np.testing.assert_array_equal(compiled, patches)
    im2col_numba._patches_loops(padded, patches, 3, 3, 1, 1, 1, 1, True)
    im2col_numba._unpad_channels_first_loops(padded, unpadded := np.empty_like(wide), 1, 2)
    np.testing.assert_array_equal(unpadded, im2col_numpy.col2im(taps.reshape(27, -1), wide.shape, (3, 3), (1, 1),
                                                                 (1, 2), (1, 1)))
    channels_last = rng.standard_normal((2, 4, 3))  # (N, L, O)
    first = np.empty((2, 3, 4))
    im2col_numba._channels_last_to_first_loops(channels_last, np.arange(3.0), first)
    np.testing.assert_array_equal(first, channels_last.transpose(0, 2, 1) + np.arange(3.0).reshape(3, 1))

    # Wide rows: sample n's (4, 5) plane of channel c at wide[c, 9 + n*42 + a*7 + b], in rows of 7.
    planes = rng.standard_normal((2, 3, 4, 5))
    wide, compiled, sums = np.full((3, 9 + 2 * 42), 0.5), np.full((3, 9 + 2 * 42), 0.5), np.empty(3)
    im2col_numba._to_wide_loops(planes, wide, 9, 42, 7, sums)
    im2col_numba._to_wide_jit(planes, compiled, 9, 42, 7, np.empty(0))
    expected = np.full((3, 9 + 2 * 42), 0.5)
    for n in range(2):
        expected[:, 9 + n * 42:9 + (n + 1) * 42].reshape(3, 6, 7)[:, :4, :5] = planes[n]
    np.testing.assert_array_equal(wide, expected)
    np.testing.assert_array_equal(compiled, expected)
    np.testing.assert_allclose(sums, planes.sum(axis=(0, 2, 3)), rtol=1e-12)
    back, back_compiled = np.empty_like(planes), np.empty_like(planes)
    im2col_numba._from_wide_loops(wide, 9, 42, 7, np.arange(3.0), back)
    im2col_numba._from_wide_jit(wide, 9, 42, 7, np.arange(3.0), back_compiled)
    np.testing.assert_array_equal(back, planes + np.arange(3.0).reshape(3, 1, 1))
    np.testing.assert_array_equal(back_compiled, back)

    y_t = rng.standard_normal((3, 2, 4))  # (O, N, L)
    y_py, sums = np.empty((2, 3, 4)), np.empty(3)
    im2col_numba._cnhw_to_nchw_loops(y_t, np.arange(3.0), y_py)
    np.testing.assert_array_equal(y_py, im2col_numba.cnhw_to_nchw(y_t.reshape(3, 2, 2, 2), np.arange(3.0)).reshape(2, 3, 4))
    grad_t = np.empty_like(y_t)
    im2col_numba._nchw_to_cnhw_loops(y_py, grad_t, sums)
    np.testing.assert_array_equal(grad_t, y_t + np.arange(3.0).reshape(3, 1, 1))
    np.testing.assert_allclose(sums, grad_t.sum(axis=(1, 2)), rtol=1e-12)

    pool = ((3, 2), (2, 1), (1, 1))
    y, indices = pool_numba.max_pool2d_forward(x, *pool)
    y_py, indices_py = np.empty_like(y), np.empty_like(indices)
    pool_numba._max_pool_loops(x, y_py, indices_py, 3, 2, 2, 1, 1, 1, True)
    np.testing.assert_array_equal(y_py, y)
    np.testing.assert_array_equal(indices_py, indices)
    grad_py = np.empty_like(x)
    pool_numba._max_pool_backward_loops(y, indices, grad_py)
    np.testing.assert_array_equal(grad_py, pool_numba.max_pool2d_backward(y, indices, x.shape))
    y2, indices2 = pool_numba.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0))  # x's width is even: the 2x2 path
    y2_py, indices2_py, pairs = np.empty_like(y2), np.empty_like(indices2), x.size // 2
    pool_numba._max_pool_2x2_loops(x, y2_py, indices2_py, np.empty(pairs), np.empty(pairs, np.int32), True)
    np.testing.assert_array_equal(y2_py, y2)
    np.testing.assert_array_equal(indices2_py, indices2)
    average = np.empty_like(y)
    pool_numba._avg_pool_loops(x, average, 3, 2, 2, 1, 1, 1)
    np.testing.assert_array_equal(average, pool_numba.avg_pool2d_forward(x, *pool))
    pool_numba._avg_pool_backward_loops(y, grad_py, 3, 2, 2, 1, 1, 1)
    np.testing.assert_array_equal(grad_py, pool_numba.avg_pool2d_backward(y, x.shape, *pool))

    channels = rng.standard_normal((3, 2, 4))  # (N, C, L)
    stats, y = np.empty((3, 2)), np.empty_like(channels)
    norm_numba._forward_loops(channels, 1e-5, np.array([2.0, -1.0]), np.array([0.5, 0.0]), *stats, y, True)
    expected = norm_numba.normalize_forward(channels, (0, 2), 1e-5, np.array([2.0, -1.0]).reshape(1, 2, 1),
                                            np.array([0.5, 0.0]).reshape(1, 2, 1), None, None)
    for actual, reference in zip([y, stats[2], stats[0], stats[1]], expected):
        np.testing.assert_allclose(actual, reference.reshape(actual.shape), rtol=1e-12)
    grad_py, sums = np.empty_like(channels), np.empty((2, 2))
    norm_numba._backward_loops(channels, channels, stats[0], stats[2], np.array([2.0, -1.0]), grad_py, *sums, True,
                               True)
    expected = norm_numba.normalize_backward(channels, channels, stats[0].reshape(1, 2, 1), stats[2].reshape(1, 2, 1),
                                             np.array([2.0, -1.0]).reshape(1, 2, 1), (0, 2), (0, 2), True, True)
    for actual, reference in zip([grad_py, *sums], expected):
        np.testing.assert_allclose(actual, reference, rtol=1e-12)

    flat = with_special_values(rng, 40, np.float64)
    relu_py, grad_py = np.empty_like(flat), np.empty_like(flat)
    activation_numba._relu_loops(flat, relu_py)
    assert np.array_equal(relu_py, activation_numba.relu_forward(flat), equal_nan=True)
    activation_numba._relu_backward_loops(flat, relu_py, grad_py)
    assert np.array_equal(grad_py, activation_numba.relu_backward(flat, relu_py), equal_nan=True)


# --- choosing an implementation -------------------------------------------------
def test_use_switches_the_cpu_kernels_and_restores_them():
    x = np.zeros((1, 1, 2, 2))
    default = kernels.get_backend()
    with kernels.use("numpy"):
        assert kernels.get_backend() == "numpy"
        assert kernels._implementation("im2col", x) is im2col_numpy
        assert kernels._implementation("pool", x) is pool_numpy
        with kernels.use("numba"):
            assert kernels._implementation("pool", x) is pool_numba
        assert kernels.get_backend() == "numpy"
    assert kernels.get_backend() == default


def test_set_backend_changes_the_choice_until_changed_again():
    default = kernels.get_backend()
    try:
        kernels.set_backend("numpy")
        assert kernels._implementation("im2col", np.zeros(1)) is im2col_numpy
    finally:
        kernels.set_backend(default)


def test_an_unknown_backend_is_refused():
    refusal = r": the CPU kernels must be one of \('numba', 'numpy'\), got 'cuda'"
    with pytest.raises(ValueError, match=r"^tinynet.kernels.set_backend" + refusal):
        kernels.set_backend("cuda")
    with pytest.raises(ValueError, match=r"^tinynet.kernels.use" + refusal):
        with kernels.use("cuda"):
            pass


def _in_subprocess(code, **env):
    return subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )


def test_the_environment_variable_picks_the_default():
    done = _in_subprocess("import tinynet.kernels as k; print(k.get_backend())", TINYNET_KERNELS="numpy")
    assert done.stdout.strip() == "numpy", done.stderr
    done = _in_subprocess("import tinynet", TINYNET_KERNELS="fortran")
    assert done.returncode != 0
    assert "TINYNET_KERNELS: the CPU kernels must be one of ('numba', 'numpy'), got 'fortran'" in done.stderr


def test_importing_tinynet_loads_no_kernel_implementation_and_neither_torch_nor_cupy():
    done = _in_subprocess(
        "import sys, tinynet; "
        "print(sorted(m for m in sys.modules if m in ('torch', 'cupy') or m.endswith(('_numba', '_numpy', '_cupy'))))"
    )
    assert done.stdout.strip() == "[]", done.stderr


def test_malloc_is_tuned_at_the_first_cpu_kernel_call_not_on_import():
    """Importing tinynet (or only tinynet.metrics) calls no mallopt; the first CPU kernel call does, once."""
    code = (
        "import ctypes\n"
        "calls = []\n"
        "class Libc:\n"
        "    def __init__(self, name): self.gnu_get_libc_version = None\n"
        "    def mallopt(self, *args): calls.append(args); return 1\n"
        "ctypes.CDLL = Libc\n"
        "import numpy as np, tinynet.metrics, tinynet\n"
        "print(calls)\n"
        "tinynet.kernels.relu_forward(np.ones(3, np.float32)); tinynet.kernels.relu_forward(np.ones(3, np.float32))\n"
        "print(calls)\n"
    )
    done = _in_subprocess(code, TINYNET_KERNELS="numpy")
    assert done.stdout.splitlines() == ["[]", "[(-3, 33554432), (-1, 134217728)]"], done.stderr
    assert _in_subprocess(code, TINYNET_KERNELS="numpy", TINYNET_TUNE_MALLOC="0").stdout.splitlines() == ["[]", "[]"]


def test_malloc_tuning_is_applied_unless_the_user_opts_out():
    code = "import tinynet.kernels.malloc as m; print(m.tune_malloc())"
    assert _in_subprocess(code).stdout.strip() == "True"
    assert _in_subprocess(code, TINYNET_TUNE_MALLOC="0").stdout.strip() == "False"
    assert _in_subprocess(code, MALLOC_TRIM_THRESHOLD_="1000000").stdout.strip() == "False"
