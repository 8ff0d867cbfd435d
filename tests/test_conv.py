"""Conv2d against PyTorch (forward, input, weight and bias gradients) on both CPU kernel paths,
against finite differences, and on bad input."""
import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet import kernels
from tinynet.testing import gradcheck

from helpers import assert_close, compare_module
from layer_registry import BACKENDS, DTYPES



@st.composite
def conv_cases(draw, max_groups=3, max_stride=3):
    """Keyword arguments for Conv2d and an input shape they accept (small: the point is coverage).

    Each pair argument is passed as an int when both sides agree and a coin says so.
    """
    def pair(lo, hi):
        value = (draw(st.integers(lo, hi)), draw(st.integers(lo, hi)))
        return value[0] if value[0] == value[1] and draw(st.booleans()) else value

    groups = draw(st.integers(1, max_groups))
    args = dict(
        in_channels=groups * draw(st.integers(1, 2)), out_channels=groups * draw(st.integers(1, 3)),
        kernel_size=pair(1, 4), stride=pair(1, max_stride), padding=pair(0, 2), dilation=pair(1, 2),
        groups=groups, bias=draw(st.booleans()),
    )
    pairs = {k: v if isinstance(v, tuple) else (v, v) for k, v in args.items() if k in ("kernel_size", "padding", "dilation")}
    extent = [d * (k - 1) + 1 for k, d in zip(pairs["kernel_size"], pairs["dilation"])]
    h, w = (draw(st.integers(max(1, e - 2 * p), e - 2 * p + 5)) for e, p in zip(extent, pairs["padding"]))
    shape = (draw(st.integers(1, 3)), args["in_channels"], h, w)
    return args, shape, draw(st.integers(0, 2**32 - 1))


# The MNIST CNN's two layers, and a stride larger than the kernel with a batch of 1.
MNIST_FIRST = (dict(in_channels=1, out_channels=8, kernel_size=3, padding=1), (4, 1, 28, 28), 0)
MNIST_SECOND = (dict(in_channels=8, out_channels=16, kernel_size=3, padding=1), (4, 8, 14, 14), 1)
STRIDE_OVER_KERNEL = (dict(in_channels=2, out_channels=3, kernel_size=(2, 1), stride=(3, 4)), (1, 2, 9, 7), 2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=110)
@given(case=conv_cases())
@example(case=MNIST_FIRST)
@example(case=MNIST_SECOND)
@example(case=STRIDE_OVER_KERNEL)
def test_conv2d_matches_pytorch(backend, dtype, case):
    args, shape, seed = case
    rng = np.random.default_rng(seed)
    with kernels.use(backend):
        compare_module(
            tn.Conv2d(**args, dtype=dtype, rng=rng), torch.nn.Conv2d(**args), rng.standard_normal(shape), rng, dtype
        )


# Two of the MNIST ResNet's layers that take patches: 7 x 7, and 7 x 7 to 4 x 4 with stride 2; and
# its 16 -> 16 layer on 14 x 14, which takes shifted products.
RESNET_SAME = (dict(in_channels=32, out_channels=32, kernel_size=3, padding=1, bias=False), (2, 32, 7, 7), 3)
RESNET_DOWN = (dict(in_channels=32, out_channels=64, kernel_size=3, stride=2, padding=1, bias=False), (2, 32, 7, 7), 4)
RESNET_14 = (dict(in_channels=16, out_channels=16, kernel_size=3, padding=1, bias=False), (3, 16, 14, 14), 5)
DILATED_UNPADDED = (dict(in_channels=2, out_channels=3, kernel_size=(3, 2), dilation=(2, 3)), (2, 2, 8, 9), 6)


def check_layout(products, dtype, case):
    """The numba kernel forced to take ``products`` (``conv_numba.layout`` picks one by shape)
    gives PyTorch's output and gradients, in training mode and in eval mode, with the batch in
    as many parts as the threads make (one sample each, for these small batches and 2 or more
    threads) and in one part (several samples each, whatever the threads)."""
    from tinynet.kernels import conv_numba

    args, shape, seed = case
    rng = np.random.default_rng(seed)
    with pytest.MonkeyPatch.context() as patch, kernels.use("numba"):
        patch.setattr(conv_numba, "layout", lambda *shapes: products)
        for one_part in (False, True):
            if one_part:
                patch.setattr(conv_numba, "_parts", lambda *shapes: 1)
            for training in (True, False):
                conv = tn.Conv2d(**args, dtype=dtype, rng=rng).train(training)
                compare_module(conv, torch.nn.Conv2d(**args), rng.standard_normal(shape), rng, dtype)


@pytest.mark.parametrize("products", ["PATCHES", "ROWS_OF_TAPS"])
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=60)
@given(case=conv_cases(max_groups=1))
@example(case=RESNET_SAME)
@example(case=RESNET_DOWN)
def test_both_column_layouts_of_the_numba_kernel_match_pytorch(products, dtype, case):
    """Ungrouped columns in either layout, any stride."""
    from tinynet.kernels import conv_numba

    check_layout(getattr(conv_numba, products), dtype, case)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=60)
@given(case=conv_cases(max_groups=1, max_stride=1))
@example(case=RESNET_14)
@example(case=DILATED_UNPADDED)
def test_shifted_products_of_the_numba_kernel_match_pytorch(dtype, case):
    """Shifted products, which take stride 1 only, with any kernel, padding and dilation: one tap
    shifts by nothing, padding 0 leaves no border."""
    from tinynet.kernels import conv_numba

    check_layout(conv_numba.SHIFTED, dtype, case)


def test_the_layout_follows_the_shapes():
    """Patches for short output rows (OW <= 8) shorter than a patch's kernel row (KW*C), a kernel
    of more than one tap and one group: the MNIST ResNet's 7 x 7 and 4 x 4 layers. Else shifted
    products for ungrouped stride-1 convolutions of more than one tap and 16 channels or more:
    its 16 -> 16 layer on 14 x 14. Else rows of taps: the MNIST CNN's layers (1 and 8 channels)."""
    from tinynet.kernels.conv_numba import PATCHES, ROWS_OF_TAPS, SHIFTED, layout, uses_patches

    assert uses_patches((128, 16, 14, 14), (3, 3), 7, 1) and uses_patches((128, 64, 4, 4), (3, 3), 4, 1)
    assert uses_patches((128, 64, 8, 8), (3, 3), 8, 1) and not uses_patches((128, 64, 9, 9), (3, 3), 9, 1)
    assert not uses_patches((128, 16, 14, 14), (3, 3), 14, 1)     # rows of 14
    assert not uses_patches((128, 1, 28, 28), (3, 3), 28, 1)      # the first layer
    assert not uses_patches((128, 32, 14, 14), (1, 1), 7, 1)      # a 1 x 1 kernel's taps are the planes
    assert not uses_patches((128, 32, 7, 7), (3, 3), 7, 2)        # grouped
    assert uses_patches((1, 3, 6, 6), (3, 3), 6, 1) and not uses_patches((1, 2, 6, 6), (3, 3), 6, 1)  # 9 > 6 >= 6
    assert layout((128, 64, 4, 4), (3, 3), (1, 1), 4, 1) == PATCHES  # patches first, also at stride 1
    assert layout((128, 16, 14, 14), (3, 3), (1, 1), 14, 1) == SHIFTED
    assert layout((32, 64, 32, 32), (3, 3), (1, 1), 32, 1) == SHIFTED
    assert layout((128, 16, 14, 14), (3, 1), (1, 1), 12, 1) == SHIFTED
    assert layout((60, 8, 14, 14), (3, 3), (1, 1), 14, 1) == ROWS_OF_TAPS     # fewer than 16 channels
    assert layout((60, 1, 28, 28), (3, 3), (1, 1), 28, 1) == ROWS_OF_TAPS
    assert layout((128, 16, 28, 28), (3, 3), (2, 1), 28, 1) == ROWS_OF_TAPS   # stride 2
    assert layout((128, 16, 14, 14), (1, 1), (1, 1), 14, 1) == ROWS_OF_TAPS   # one tap
    assert layout((128, 16, 14, 14), (3, 3), (1, 1), 14, 2) == ROWS_OF_TAPS   # grouped


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("args, shape", [
    (dict(in_channels=2, out_channels=3, kernel_size=(3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2)), (2, 2, 5, 4)),
    (dict(in_channels=4, out_channels=2, kernel_size=2, groups=2, bias=False), (1, 4, 3, 3)),
])
def test_conv2d_gradients_match_finite_differences(backend, args, shape):
    rng = np.random.default_rng(0)
    with kernels.use(backend):
        assert gradcheck(tn.Conv2d(**args, dtype=np.float64, rng=rng), rng.standard_normal(shape))


def test_pytorch_weights_load_directly():
    torch.manual_seed(0)
    torch_conv = torch.nn.Conv2d(3, 4, (3, 2), padding=1, groups=1)
    conv = tn.Conv2d(3, 4, (3, 2), padding=1)
    conv.load_state_dict({name: value.detach().numpy() for name, value in torch_conv.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 5)).astype(np.float32)
    assert_close(conv(x), torch_conv(torch.from_numpy(x)).detach().numpy(), np.float32)


def test_default_init_is_pytorchs_bound_and_reproducible():
    first = tn.Conv2d(3, 8, 5, groups=1, rng=np.random.default_rng(7))
    second = tn.Conv2d(3, 8, 5, groups=1, rng=np.random.default_rng(7))
    bound = 1 / np.sqrt(3 * 5 * 5)  # 1 / sqrt(fan_in), fan_in = in_channels / groups * KH * KW
    assert first.weight.shape == (8, 3, 5, 5) and first.bias.shape == (8,)
    assert first.weight.dtype == np.float32 and first.bias.dtype == np.float32
    for param in (first.weight, first.bias):
        assert np.abs(param.data).max() <= bound
    np.testing.assert_array_equal(first.weight.data, second.weight.data)
    assert tn.Conv2d(4, 6, 3, groups=2).weight.shape == (6, 2, 3, 3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float64_end_to_end_and_noncontiguous_input(backend):
    x = np.random.default_rng(0).standard_normal((3, 5, 10, 8))[:, 1:4, ::2, ::-1]  # a strided view
    with kernels.use(backend):
        compare_module(tn.Conv2d(3, 2, 3, padding=1, dtype=np.float64), torch.nn.Conv2d(3, 2, 3, padding=1), x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_batch_gives_empty_output_and_zero_weight_gradient(backend):
    conv = tn.Conv2d(2, 3, 3)
    with kernels.use(backend):
        y = conv(np.zeros((0, 2, 5, 5), np.float32))
        grad_x = conv.backward(np.zeros_like(y))
    assert y.shape == (0, 3, 3, 3) and grad_x.shape == (0, 2, 5, 5)
    np.testing.assert_array_equal(conv.weight.grad, np.zeros((3, 2, 3, 3), np.float32))


def test_gradients_accumulate_over_backward_calls():
    conv = tn.Conv2d(1, 2, 2, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((2, 1, 4, 4)).astype(np.float32)
    grad_y = np.ones((2, 2, 3, 3), np.float32)
    conv(x)
    conv.backward(grad_y)
    once = conv.weight.grad.copy()
    conv(x)
    conv.backward(grad_y)
    np.testing.assert_allclose(conv.weight.grad, 2 * once, rtol=1e-6)


def test_repr_names_the_non_default_arguments():
    assert repr(tn.Conv2d(1, 8, 3, padding=1)) == "Conv2d(1, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"
    assert repr(tn.Conv2d(4, 8, (3, 1), stride=2, dilation=2, groups=4, bias=False)) == (
        "Conv2d(4, 8, kernel_size=(3, 1), stride=(2, 2), dilation=(2, 2), groups=4, bias=False)"
    )


# --- bad arguments and bad input ------------------------------------------------
@pytest.mark.parametrize("kwargs, error, message", [
    (dict(stride=0), ValueError, "Conv2d: non-positive stride is not supported, got stride=0"),
    (dict(stride=(1, -2)), ValueError, r"Conv2d: non-positive stride is not supported, got stride=\(1, -2\)"),
    (dict(kernel_size=0), ValueError, "Conv2d: non-positive kernel_size is not supported, got kernel_size=0"),
    (dict(dilation=(0, 1)), ValueError, r"Conv2d: non-positive dilation is not supported, got dilation=\(0, 1\)"),
    (dict(padding=-1), ValueError, "Conv2d: negative padding is not supported, got padding=-1"),
    (dict(padding="same"), TypeError, "Conv2d: padding must be an int or a pair of ints, got 'same'"),
    (dict(kernel_size=(3, 3, 3)), TypeError, r"Conv2d: kernel_size must be an int or a pair of ints, got \(3, 3, 3\)"),
    (dict(stride=1.5), TypeError, "Conv2d: stride must be an int or a pair of ints, got 1.5"),
    (dict(groups=4), ValueError, "Conv2d: in_channels must be divisible by groups, got in_channels=6 and groups=4"),
    (dict(groups=3, out_channels=4), ValueError,
     "Conv2d: out_channels must be divisible by groups, got out_channels=4 and groups=3"),
    (dict(groups=0), ValueError, "Conv2d: groups must be a positive integer, got 0"),
    (dict(in_channels=0), ValueError, "Conv2d: in_channels must be a positive integer, got 0"),
])
def test_bad_arguments_are_refused_with_the_value(kwargs, error, message):
    args = dict(in_channels=6, out_channels=6, kernel_size=3) | kwargs
    with pytest.raises(error, match=f"^{message}$"):
        tn.Conv2d(**args)


@pytest.mark.parametrize("conv, x, error, message", [
    (tn.Conv2d(1, 8, 3), np.zeros((60, 3, 28, 28), np.float32), ValueError,
     r"Conv2d: Given groups=1, weight of size \[8, 1, 3, 3\], expected input\[60, 3, 28, 28\] "
     r"to have 1 channels, but got 3 channels instead"),
    (tn.Conv2d(4, 2, 3, groups=2), np.zeros((1, 2, 5, 5), np.float32), ValueError,
     r"Conv2d: Given groups=2, weight of size \[2, 2, 3, 3\], expected input\[1, 2, 5, 5\] "
     r"to have 4 channels, but got 2 channels instead"),
    (tn.Conv2d(3, 8, 5), np.zeros((2, 3, 4, 6), np.float32), ValueError,
     r"Conv2d: Calculated padded input size per channel: \(4 x 6\). Kernel size: \(5 x 5\). "
     "Kernel size can't be greater than actual input size"),
    (tn.Conv2d(3, 8, 3, padding=(0, 1), dilation=2), np.zeros((2, 3, 4, 4), np.float32), ValueError,
     r"Conv2d: Calculated padded input size per channel: \(4 x 6\). Kernel size: \(5 x 5\)."),
    (tn.Conv2d(3, 8, 3), np.zeros((3, 8, 8), np.float32), ValueError,
     r"Conv2d: expected a 4-D input of shape \(N, C, H, W\), got shape \(3, 8, 8\)"),
    (tn.Conv2d(3, 8, 3), np.zeros((3, 8, 8), np.float32).tolist(), ValueError,
     r"Conv2d: expected a 4-D input of shape \(N, C, H, W\), got shape list"),
    (tn.Conv2d(3, 8, 3), np.zeros((2, 3, 8, 8), np.float64), TypeError,
     "Conv2d: input dtype float64 does not match the parameters' dtype float32"),
    (tn.Conv2d(3, 8, 3), np.zeros((2, 3, 8, 8), np.uint8), TypeError,
     "Conv2d: expected a floating-point array, got uint8"),
])
def test_bad_input_is_refused_with_both_shapes(conv, x, error, message):
    with pytest.raises(error, match=f"^{message}"):
        conv(x)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_eval_mode_convolves_in_chunks_and_backward_makes_the_columns_again(backend, dtype, monkeypatch):
    """In eval mode a large batch is convolved a few samples at a time and no columns are kept:
    the output and every gradient must be those of training mode."""
    from tinynet.kernels import conv_numba, conv_numpy

    for implementation in (conv_numba, conv_numpy):
        monkeypatch.setattr(implementation, "CHUNK_COLUMN_BYTES", 1)  # one sample per chunk
    rng = np.random.default_rng(0)
    x, grad_y = rng.standard_normal((5, 4, 7, 6)).astype(dtype), rng.standard_normal((5, 6, 4, 7)).astype(dtype)
    conv = tn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=1, groups=2, dtype=dtype, rng=rng)
    with kernels.use(backend):
        y_train = conv(x)
        grad_x_train = conv.backward(grad_y)
        grads_train = [p.grad for p in conv.parameters()]
        conv.zero_grad()
        conv.eval()
        y_eval = conv(x)
        assert conv._cache.columns is None  # no columns kept
        grad_x_eval = conv.backward(grad_y)
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(y_eval, y_train, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(grad_x_eval, grad_x_train, rtol=rtol, atol=rtol)
    for param, grad in zip(conv.parameters(), grads_train):
        np.testing.assert_allclose(param.grad, grad, rtol=rtol, atol=rtol)
