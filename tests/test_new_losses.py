"""NLLLoss, HuberLoss, SmoothL1Loss and CrossEntropyLoss's label_smoothing against torch.nn, values and
gradients, with hypothesis-drawn shapes and arguments; their bad arguments."""
import re

import numpy as np
import pytest
import torch
from helpers import tolerance
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn

DTYPES = [np.float64, np.float32]
REDUCTIONS = st.sampled_from(["mean", "sum"])


def draw_values(data, shape, dtype, label):
    seed = data.draw(st.integers(0, 2**32 - 1), label=f"{label} seed")
    scale = data.draw(st.sampled_from([0.1, 1.0, 5.0]), label=f"{label} scale")
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def class_index_inputs(data, dtype):
    n, c = data.draw(st.integers(1, 6), label="N"), data.draw(st.integers(1, 6), label="C")
    target = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n), label="target"))
    return draw_values(data, (n, c), dtype, "input"), target


# Each case returns (tinynet loss, torch loss, output, target).
def cross_entropy_case(data, dtype):
    reduction = data.draw(REDUCTIONS, label="reduction")
    smoothing = data.draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]) | st.floats(0.0, 1.0), label="label_smoothing")
    return (tn.CrossEntropyLoss(reduction, label_smoothing=smoothing),
            torch.nn.CrossEntropyLoss(reduction=reduction, label_smoothing=smoothing), *class_index_inputs(data, dtype))


def nll_case(data, dtype):
    reduction = data.draw(REDUCTIONS, label="reduction")
    return tn.NLLLoss(reduction), torch.nn.NLLLoss(reduction=reduction), *class_index_inputs(data, dtype)


def elementwise_inputs(data, dtype):
    shape = tuple(data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=3), label="shape"))
    return draw_values(data, shape, dtype, "input"), draw_values(data, shape, dtype, "target")


def huber_case(data, dtype):
    reduction = data.draw(REDUCTIONS, label="reduction")
    delta = data.draw(st.sampled_from([0.1, 1.0, 3.0]), label="delta")
    return tn.HuberLoss(reduction, delta), torch.nn.HuberLoss(reduction=reduction, delta=delta), *elementwise_inputs(data, dtype)


def smooth_l1_case(data, dtype):
    reduction = data.draw(REDUCTIONS, label="reduction")
    beta = data.draw(st.sampled_from([0.0, 0.1, 1.0, 3.0]), label="beta")
    return tn.SmoothL1Loss(reduction, beta), torch.nn.SmoothL1Loss(reduction=reduction, beta=beta), *elementwise_inputs(data, dtype)


LOSS_CASES = {"CrossEntropyLoss": cross_entropy_case, "NLLLoss": nll_case, "HuberLoss": huber_case,
              "SmoothL1Loss": smooth_l1_case}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", LOSS_CASES)
@settings(max_examples=100)
@given(data=st.data())
def test_loss_matches_torch(case, dtype, data):
    loss_fn, reference, output, target = LOSS_CASES[case](data, dtype)
    rtol, atol = tolerance(dtype)
    value = loss_fn(output, target)
    grad = loss_fn.backward()
    output_t = torch.from_numpy(output.copy()).requires_grad_(True)
    expected = reference(output_t, torch.from_numpy(target))
    expected.backward()
    assert isinstance(value, float) and grad.dtype == dtype and grad.shape == output.shape
    np.testing.assert_allclose(value, expected.item(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(grad, output_t.grad.numpy(), rtol=rtol, atol=atol)


def test_nll_of_log_softmax_is_cross_entropy():
    logits = np.random.default_rng(0).standard_normal((5, 4))
    target = np.array([0, 3, 1, 1, 2])
    log_softmax, nll, cross_entropy = tn.LogSoftmax(1), tn.NLLLoss(), tn.CrossEntropyLoss()
    np.testing.assert_allclose(nll(log_softmax(logits), target), cross_entropy(logits, target), rtol=1e-14)
    np.testing.assert_allclose(log_softmax.backward(nll.backward()), cross_entropy.backward(), rtol=1e-12, atol=1e-15)


def test_bad_arguments_and_targets_are_named():
    with pytest.raises(ValueError, match=re.escape("CrossEntropyLoss: label_smoothing must be between 0.0 and 1.0, got 1.5")):
        tn.CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(ValueError, match=re.escape("HuberLoss: delta must be positive, got 0")):
        tn.HuberLoss(delta=0)
    with pytest.raises(ValueError, match=re.escape("SmoothL1Loss: beta must be non-negative, got -1")):
        tn.SmoothL1Loss(beta=-1)
    with pytest.raises(IndexError, match=re.escape("NLLLoss: Target 4 is out of bounds")):
        tn.NLLLoss()(np.zeros((2, 4)), np.array([0, 4]))
    with pytest.raises(ValueError, match=re.escape("HuberLoss: target shape (2, 3) does not match input shape (2, 4)")):
        tn.HuberLoss()(np.zeros((2, 4)), np.zeros((2, 3)))
    assert repr(tn.CrossEntropyLoss(label_smoothing=0.1)) == "CrossEntropyLoss(reduction='mean', label_smoothing=0.1)"
