"""MaxPool2d and AvgPool2d against PyTorch on both CPU kernel paths (ties included), against
finite differences, and on bad input."""
import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet import kernels
from tinynet.testing import gradcheck

from helpers import compare_module
from layer_registry import BACKENDS, DTYPES

POOLS = {"max": (tn.MaxPool2d, torch.nn.MaxPool2d), "avg": (tn.AvgPool2d, torch.nn.AvgPool2d)}


@st.composite
def pool_cases(draw):
    """Keyword arguments for a pool and an input it accepts; half the inputs are full of ties
    (small integers, as after ReLU and rounding) to pin down which maximum takes the gradient."""
    def pair(lo, hi):
        value = (draw(st.integers(lo, hi)), draw(st.integers(lo, hi)))
        return value[0] if value[0] == value[1] and draw(st.booleans()) else value

    kernel = pair(1, 4)
    kernel_pair = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel_pair)
    args = dict(kernel_size=kernel, stride=draw(st.none() | st.just(pair(1, 5))), padding=padding)
    h, w = (draw(st.integers(max(1, k - 2 * p), k - 2 * p + 6)) for k, p in zip(kernel_pair, padding))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = np.maximum(rng.integers(-2, 3, shape), 0).astype(float) if draw(st.booleans()) else rng.standard_normal(shape)
    return args, x


MNIST_POOL = (dict(kernel_size=2, stride=None, padding=0), np.maximum(np.random.default_rng(0).standard_normal((2, 3, 28, 28)), 0))
STRIDE_OVER_KERNEL = (dict(kernel_size=(2, 1), stride=(3, 4), padding=(1, 0)), np.random.default_rng(1).standard_normal((1, 2, 9, 7)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", POOLS)
@settings(max_examples=110)
@given(case=pool_cases())
@example(case=MNIST_POOL)
@example(case=STRIDE_OVER_KERNEL)
def test_pool_matches_pytorch(kind, backend, dtype, case):
    args, x = case
    ours, theirs = POOLS[kind]
    with kernels.use(backend):
        compare_module(ours(**args), theirs(**args), x, dtype=dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_pool_gives_a_tied_window_s_gradient_to_its_first_element(backend):
    """After ReLU whole windows are 0: PyTorch sends the gradient to the first (top-left) one only."""
    x = np.zeros((1, 1, 4, 6), np.float32)
    x[0, 0, 2:, 2:4] = 5  # one window where the tie is between four 5s
    with kernels.use(backend):
        pool = tn.MaxPool2d(2)
        pool(x)
        grad_x = pool.backward(np.arange(1, 7, dtype=np.float32).reshape(1, 1, 2, 3))
    expected = np.zeros((4, 6), np.float32)
    expected[0, 0], expected[0, 2], expected[0, 4] = 1, 2, 3
    expected[2, 0], expected[2, 2], expected[2, 4] = 4, 5, 6
    np.testing.assert_array_equal(grad_x[0, 0], expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_pool_in_eval_mode_gives_the_same_output_and_gradient(backend):
    """Evaluation mode skips recording the maxima's positions; a backward pass finds them again."""
    x = np.random.default_rng(0).integers(-1, 3, (2, 3, 7, 6)).astype(np.float32)  # ties everywhere
    with kernels.use(backend):
        compare_module(tn.MaxPool2d(3, stride=2, padding=1).eval(), torch.nn.MaxPool2d(3, stride=2, padding=1), x,
                       dtype=np.float32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_relu_then_max_pool_matches_pytorch_on_overlapping_windows(backend):
    x = np.random.default_rng(0).integers(-3, 2, (2, 3, 9, 8)).astype(np.float32)
    model = tn.Sequential(tn.ReLU(), tn.MaxPool2d(3, stride=2, padding=1))
    torch_model = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.MaxPool2d(3, stride=2, padding=1))
    with kernels.use(backend):
        compare_module(model, torch_model, x, dtype=np.float32)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pool", [tn.MaxPool2d((3, 2), stride=(2, 1), padding=1), tn.AvgPool2d((3, 2), stride=(1, 3), padding=(1, 0))])
def test_pool_gradients_match_finite_differences(backend, pool):
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 6))  # distinct values: no ties, no kinks
    with kernels.use(backend):
        assert gradcheck(pool, x)


@pytest.mark.parametrize("kind", POOLS)
def test_stride_defaults_to_the_kernel_and_repr_shows_it(kind):
    pool = POOLS[kind][0]((3, 2))
    assert pool.stride == (3, 2)
    assert repr(pool) == f"{type(pool).__name__}(kernel_size=(3, 2), stride=(3, 2), padding=(0, 0))"


@pytest.mark.parametrize("kind", POOLS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_output_keeps_the_input_dtype(kind, dtype):
    pool = POOLS[kind][0](2)
    y = pool(np.ones((1, 1, 4, 4), dtype))
    assert y.dtype == dtype and pool.backward(np.ones_like(y)).dtype == dtype


# --- bad arguments and bad input ------------------------------------------------
@pytest.mark.parametrize("kind", POOLS)
@pytest.mark.parametrize("kwargs, error, message", [
    (dict(kernel_size=3, stride=0), ValueError, "non-positive stride is not supported, got stride=0"),
    (dict(kernel_size=(2, 0)), ValueError, r"non-positive kernel_size is not supported, got kernel_size=\(2, 0\)"),
    (dict(kernel_size=3, padding=-1), ValueError, "negative padding is not supported, got padding=-1"),
    (dict(kernel_size=3, padding=2), ValueError,
     r"pad should be at most half of effective kernel size, but got padding=\(2, 2\) and kernel_size=\(3, 3\)"),
    (dict(kernel_size=(4, 2), padding=(2, 2)), ValueError,
     r"pad should be at most half of effective kernel size, but got padding=\(2, 2\) and kernel_size=\(4, 2\)"),
    (dict(kernel_size=2.0), TypeError, "kernel_size must be an int or a pair of ints, got 2.0"),
])
def test_bad_arguments_are_refused_with_the_value(kind, kwargs, error, message):
    layer = POOLS[kind][0]
    with pytest.raises(error, match=f"^{layer.__name__}: {message}$"):
        layer(**kwargs)


@pytest.mark.parametrize("kind", POOLS)
@pytest.mark.parametrize("x, error, message", [
    (np.zeros((2, 3, 8, 8)), ValueError, r"Given input size: \(3x8x8\). Calculated output size: \(3x0x0\). Output size is too small"),
    (np.zeros((2, 3, 8, 9)), ValueError, r"Given input size: \(3x8x9\). Calculated output size: \(3x0x1\). Output size is too small"),
    (np.zeros((3, 8, 8)), ValueError, r"expected a 4-D input of shape \(N, C, H, W\), got shape \(3, 8, 8\)"),
    (np.zeros((1, 3, 8, 8), np.int64), TypeError, "expected a floating-point array, got int64"),
])
def test_bad_input_is_refused_with_the_shapes(kind, x, error, message):
    layer = POOLS[kind][0]
    with pytest.raises(error, match=f"^{layer.__name__}: {message}$"):
        layer(9, stride=(9, 1))(x)
