"""Losses against torch.nn (value and gradient, both reductions, float32 and float64,
extreme inputs) and their errors on bad input."""
import re

import numpy as np
import pytest
import torch
from helpers import assert_close
from layer_registry import DTYPES
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet.functional import losses as F

REDUCTIONS = ["mean", "sum"]
batch_sizes = st.integers(1, 8)
# Element-wise losses take (N, *): a batch axis and up to two more.
elementwise_shapes = st.tuples(batch_sizes, st.lists(st.integers(1, 4), max_size=2)).map(lambda t: (t[0], *t[1]))
# Scales up to 1e3: cross-entropy and BCE-with-logits must stay finite on such logits.
scales = st.sampled_from([0.1, 1.0, 10.0, 1e3])


def draw_rng(data):
    return np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))


def unit_interval(rng, shape, exact_ends, near_ends=False):
    """Values in [0, 1]; with ``exact_ends`` a third of them are exactly 0 or 1, with
    ``near_ends`` a third lie 1e-12 to 1e-4 inside 0 or 1 (log-uniformly), where BCE's
    gradient floor max(p (1 - p), 1e-12) begins to matter."""
    values = rng.random(shape)
    if near_ends:
        near = rng.random(shape) < 1 / 3
        offsets = 10.0 ** rng.uniform(-12, -4, size=shape)
        values[near] = np.where(rng.random(shape) < 0.5, offsets, 1 - offsets)[near]
    if exact_ends:
        ends = rng.random(shape) < 1 / 3
        values[ends] = rng.integers(0, 2, size=shape)[ends]
    return values


# Each case draws (output, target) as float64 NumPy arrays (integer labels for cross-entropy).
def mse_case(data):
    rng, shape = draw_rng(data), data.draw(elementwise_shapes)
    return rng.standard_normal(shape) * data.draw(scales), rng.standard_normal(shape)


def cross_entropy_case(data):
    rng, n, classes = draw_rng(data), data.draw(batch_sizes), data.draw(st.integers(1, 6))
    return rng.standard_normal((n, classes)) * data.draw(scales), rng.integers(0, classes, n)


def bce_case(data):
    rng, shape = draw_rng(data), data.draw(elementwise_shapes)
    return (unit_interval(rng, shape, data.draw(st.booleans(), label="exact 0 and 1 probabilities"),
                          data.draw(st.booleans(), label="probabilities near 0 and 1")),
            unit_interval(rng, shape, exact_ends=True))


def bce_with_logits_case(data):
    rng, shape = draw_rng(data), data.draw(elementwise_shapes)
    return rng.standard_normal(shape) * data.draw(scales), unit_interval(rng, shape, exact_ends=True)


LOSS_CASES = {
    "MSELoss": (tn.MSELoss, torch.nn.MSELoss, mse_case),
    "CrossEntropyLoss": (tn.CrossEntropyLoss, torch.nn.CrossEntropyLoss, cross_entropy_case),
    "BCELoss": (tn.BCELoss, torch.nn.BCELoss, bce_case),
    "BCEWithLogitsLoss": (tn.BCEWithLogitsLoss, torch.nn.BCEWithLogitsLoss, bce_with_logits_case),
}


def cast_target(target, dtype):
    return target if target.dtype.kind in "iu" else target.astype(dtype)


def compare_loss(tn_loss, torch_loss, output, target, dtype):
    """Assert value and gradient agree with PyTorch; return (value, gradient)."""
    output, target = output.astype(dtype), cast_target(target, dtype)
    value = tn_loss(output, target)
    grad = tn_loss.backward()

    output_t = torch.from_numpy(output.copy()).requires_grad_(True)
    expected = torch_loss(output_t, torch.from_numpy(target))
    expected.backward()

    assert isinstance(value, float)
    assert grad.shape == output.shape and grad.dtype == dtype
    assert_close(value, expected.item(), dtype, "loss value")
    assert_close(grad, output_t.grad.numpy(), dtype, "gradient")
    return value, grad


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", LOSS_CASES)
@settings(max_examples=100)
@given(data=st.data())
def test_loss_matches_torch(case, dtype, reduction, data):
    tn_cls, torch_cls, draw = LOSS_CASES[case]
    output, target = draw(data)
    compare_loss(tn_cls(reduction), torch_cls(reduction=reduction), output, target, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_logits_give_finite_loss_and_gradient(dtype):
    logits = np.array([[1e3, -1e3, 0.0], [-1e3, 1e3, -1e3], [1e3, 1e3, -1e3]])
    labels = np.array([1, 1, 2])
    with np.errstate(over="raise", invalid="raise"):
        value, grad = compare_loss(tn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss(), logits, labels, dtype)
        assert np.isfinite(value) and np.isfinite(grad).all()
        targets = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
        value, grad = compare_loss(tn.BCEWithLogitsLoss(), torch.nn.BCEWithLogitsLoss(), logits, targets, dtype)
        assert np.isfinite(value) and np.isfinite(grad).all()


def test_bce_clamps_log_at_minus_100_like_torch():
    probs, targets = np.array([[0.0, 1.0, 0.0, 1.0]]), np.array([[1.0, 0.0, 0.0, 1.0]])
    value, _ = compare_loss(tn.BCELoss("sum"), torch.nn.BCELoss(reduction="sum"), probs, targets, np.float64)
    assert value == 200.0


def test_minus_inf_logit_of_another_class_is_accepted():
    logits, labels = np.array([[0.0, -np.inf, 1.0]]), np.array([2])
    compare_loss(tn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss(), logits, labels, np.float64)


def test_functional_backward_is_pure():
    logits, labels = np.random.default_rng(0).standard_normal((4, 3)), np.array([0, 2, 1, 2])
    _, cache = F.cross_entropy_forward(logits, labels)
    np.testing.assert_array_equal(F.cross_entropy_backward(cache), F.cross_entropy_backward(cache))


# --- errors -------------------------------------------------------------------------------------
def raises(exception, message):
    return pytest.raises(exception, match=re.escape(message))


def test_cross_entropy_rejects_wrong_ndim_batch_labels_and_dtypes():
    loss = tn.CrossEntropyLoss()
    logits = np.zeros((60, 10), np.float32)
    with raises(ValueError, "CrossEntropyLoss: expected a 2-D input of shape (N, C), got shape (10,)"):
        loss(np.zeros(10, np.float32), np.zeros(10, np.int64))
    with raises(ValueError, "CrossEntropyLoss: Expected input batch_size (60) to match target batch_size (10)"):
        loss(logits, np.zeros(10, np.int64))
    with raises(ValueError, "CrossEntropyLoss: expected a 1-D target of class indices of shape (N,), got shape (60, 1)"):
        loss(logits, np.zeros((60, 1), np.int64))
    with raises(TypeError, "CrossEntropyLoss: target must hold integer class indices, got float32"):
        loss(logits, np.zeros(60, np.float32))
    with raises(TypeError, "CrossEntropyLoss: expected a floating-point array, got int64"):
        loss(np.zeros((60, 10), np.int64), np.zeros(60, np.int64))


@pytest.mark.parametrize("label", [5, -1])
def test_cross_entropy_rejects_labels_out_of_range(label):
    labels = np.array([0, label, 4])
    message = (f"CrossEntropyLoss: Target {label} is out of bounds: "
               "class indices must be in [0, 4] for logits with 5 classes")
    with raises(IndexError, message):
        tn.CrossEntropyLoss()(np.zeros((3, 5), np.float32), labels)


@pytest.mark.parametrize("cls", [tn.MSELoss, tn.BCELoss, tn.BCEWithLogitsLoss])
def test_elementwise_losses_reject_mismatched_shapes_and_dtypes(cls):
    name, loss = cls.__name__, cls()
    output = np.full((60, 1), 0.5, np.float32)
    with raises(ValueError, f"{name}: Expected input batch_size (60) to match target batch_size (10)"):
        loss(output, np.zeros((10, 1), np.float32))
    with raises(ValueError, f"{name}: target shape (60, 2) does not match input shape (60, 1)"):
        loss(output, np.zeros((60, 2), np.float32))
    with raises(ValueError, f"{name}: target shape () does not match input shape (60, 1)"):
        loss(output, np.zeros((), np.float32))
    with raises(ValueError, f"{name}: expected an input with a batch axis, shape (N, *), got a 0-D array"):
        loss(np.zeros((), np.float32), np.zeros((), np.float32))
    with raises(TypeError, f"{name}: target dtype float64 does not match input dtype float32"):
        loss(output, np.zeros((60, 1), np.float64))
    with raises(TypeError, f"{name} target: expected a floating-point array, got int64"):
        loss(output, np.zeros((60, 1), np.int64))


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("case", ["MSELoss", "CrossEntropyLoss", "BCEWithLogitsLoss"])
def test_nan_or_inf_output_raises_naming_the_loss(case, bad):
    tn_cls, _, _ = LOSS_CASES[case]
    output = np.zeros((3, 4), np.float32)
    output[1, 2] = bad
    # Row 1's label is class 2, so a -inf logit there is a log-probability of -inf for the true class.
    target = np.array([0, 2, 3]) if case == "CrossEntropyLoss" else np.full((3, 4), 0.5, np.float32)
    with pytest.raises(ValueError, match=rf"^{case}: the loss is (nan|inf) because the input holds 1 NaN or inf value"):
        tn_cls()(output, target)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_bce_rejects_nan_or_inf_probabilities(bad):
    probs = np.full((2, 2), 0.5, np.float32)
    probs[0, 1] = bad
    with raises(ValueError, "BCELoss: the input holds NaN or inf values"):
        tn.BCELoss()(probs, np.zeros((2, 2), np.float32))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_mse_overflow_is_reported_as_such():
    output = np.full((2, 2), 1e30, np.float32)
    message = "MSELoss: the loss is inf although the input is finite: the target holds NaN or inf values, or the loss overflowed float32"
    with raises(ValueError, message):
        tn.MSELoss()(output, np.zeros_like(output))


def test_bce_rejects_values_outside_the_unit_interval():
    good = np.full((2, 2), 0.5, np.float32)
    bad = np.array([[0.5, 1.5], [-0.25, 0.0]], np.float32)
    with raises(ValueError, "BCELoss: all elements of the input should be between 0 and 1, got values in [-0.25, 1.5]"):
        tn.BCELoss()(bad, good)
    with raises(ValueError, "BCELoss: all elements of the target should be between 0 and 1, got values in [-0.25, 1.5]"):
        tn.BCELoss()(good, bad)
    with raises(ValueError, "BCEWithLogitsLoss: all elements of the target should be between 0 and 1, got values in [-0.25, 1.5]"):
        tn.BCEWithLogitsLoss()(good, bad)


@pytest.mark.parametrize("cls", [tn.MSELoss, tn.CrossEntropyLoss, tn.BCELoss, tn.BCEWithLogitsLoss])
def test_bad_reduction_backward_before_forward_and_empty_batch(cls):
    name = cls.__name__
    with raises(ValueError, f"{name}: reduction must be one of ('mean', 'sum'), got 'none'"):
        cls(reduction="none")
    loss = cls()
    with raises(RuntimeError, f"{name}.backward called before a forward call"):
        loss.backward()

    output = np.zeros((0, 3), np.float32)
    target = np.zeros(0, np.int64) if cls is tn.CrossEntropyLoss else np.zeros((0, 3), np.float32)
    with raises(ValueError, f"{name}: got an empty input of shape (0, 3); a loss needs at least one sample"):
        loss(output, target)


def test_backward_once_per_forward_and_failed_forward_forgets_the_last_batch():
    loss = tn.MSELoss()
    output = np.ones((2, 3), np.float32)
    loss(output, np.zeros_like(output))
    loss.backward()
    with raises(RuntimeError, "MSELoss.backward called before a forward call (or twice for one)"):
        loss.backward()
    loss(output, np.zeros_like(output))
    with pytest.raises(ValueError):
        loss(output, np.zeros((3, 3), np.float32))
    with raises(RuntimeError, "MSELoss.backward called before a forward call"):
        loss.backward()


def test_loss_trains_a_model_end_to_end():
    """loss -> backward -> model.backward: gradients reach the parameters with the right dtype."""
    model = tn.Sequential(tn.Linear(4, 8, rng=np.random.default_rng(0)), tn.ReLU(), tn.Linear(8, 3))
    loss_fn = tn.CrossEntropyLoss()
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((16, 4)).astype(np.float32), rng.integers(0, 3, 16)
    losses = []
    for _ in range(50):
        losses.append(loss_fn(model(x), y))
        model.zero_grad()
        model.backward(loss_fn.backward())
        for param in model.parameters():
            assert param.grad.dtype == np.float32
            param.data -= 0.5 * param.grad
    assert losses[-1] < 0.5 * losses[0]


# --- GPU -----------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", LOSS_CASES)
@settings(max_examples=10)
@given(data=st.data())
def test_loss_on_gpu_matches_cpu(case, reduction, data):
    import cupy

    tn_cls, _, draw = LOSS_CASES[case]
    output, target = draw(data)
    output, target = output.astype(np.float32), cast_target(target, np.float32)
    cpu, gpu = tn_cls(reduction), tn_cls(reduction)
    value, grad = cpu(output, target), cpu.backward()
    value_gpu = gpu(cupy.asarray(output), cupy.asarray(target))
    grad_gpu = gpu.backward()
    assert isinstance(value_gpu, float)
    assert isinstance(grad_gpu, cupy.ndarray) and grad_gpu.dtype == np.float32
    np.testing.assert_allclose(value_gpu, value, rtol=1e-5)
    np.testing.assert_allclose(grad_gpu.get(), grad, rtol=1e-5, atol=1e-7)


@pytest.mark.gpu
def test_loss_rejects_arrays_on_different_devices():
    import cupy

    output = cupy.zeros((2, 3), np.float32)
    with raises(RuntimeError, "MSELoss: expected all arrays on the same device, got input on cuda, target on cpu"):
        tn.MSELoss()(output, np.zeros((2, 3), np.float32))
