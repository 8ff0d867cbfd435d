"""RMSprop and Adagrad against torch.optim (a small network trained from the same weights, hypothesis-
drawn hyperparameters), their state dicts, bad hyperparameters, and gradient clipping against
torch.nn.utils."""
import math
import re

import numpy as np
import pytest
import torch
from helpers import load_weights
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet.optim import Adagrad, RMSprop
from tinynet.utils import clip_grad_norm_, clip_grad_value_

STEPS = 5
TORCH_CLASSES = {RMSprop: torch.optim.RMSprop, Adagrad: torch.optim.Adagrad}
# Parameters after several steps. Both optimizers divide the gradient by its own running size, so
# a near-zero gradient's float32 rounding (which differs between the libraries' sums) can move a
# weight by a fraction of a step, lr: float32 gets an absolute tolerance of a hundredth of lr
# and two steps (more compound into chaos); float64 checks five steps within 1e-9.
PARAM_TOLERANCES = {np.float64: (1e-9, 1e-11), np.float32: (1e-4, 1e-5)}
FLOAT32_LR_TOLERANCE, FLOAT32_STEPS = 1e-2, 2


def make_models(dtype, seed=0):
    """A smooth Linear-Tanh-Linear network in both libraries, with the same weights."""
    rng = np.random.default_rng(seed)
    model = tn.Sequential(tn.Linear(5, 8, dtype=dtype, rng=rng), tn.Tanh(), tn.Linear(8, 3, dtype=dtype, rng=rng))
    torch_model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    return model, load_weights(torch_model.to(getattr(torch, np.dtype(dtype).name)), model)


def train_both(cls, kwargs, dtype, steps=STEPS):
    """``steps`` mean-squared-error steps in both libraries; parameters compared after each."""
    model, torch_model = make_models(dtype)
    optimizer, torch_optimizer = cls(model.parameters(), **kwargs), TORCH_CLASSES[cls](torch_model.parameters(), **kwargs)
    rng = np.random.default_rng(1)
    rtol, atol = PARAM_TOLERANCES[np.dtype(dtype).type]
    if dtype == np.float32:
        # Large float32 steps (lr 0.1 moves weights by about 1 per step, more with momentum) turn
        # rounding into chaos over several steps; float64 covers the whole lr range.
        kwargs = dict(kwargs, lr=min(kwargs["lr"], 0.01))
        atol = max(atol, FLOAT32_LR_TOLERANCE * kwargs["lr"])
        steps = min(steps, FLOAT32_STEPS)
    for step in range(steps):
        x, target = rng.standard_normal((12, 5)).astype(dtype), rng.standard_normal((12, 3)).astype(dtype)
        y = model(x)
        model.backward(2.0 * (y - target) / y.size)
        optimizer.step()
        optimizer.zero_grad()
        torch_optimizer.zero_grad()
        ((torch_model(torch.from_numpy(x)) - torch.from_numpy(target)) ** 2).mean().backward()
        torch_optimizer.step()
        theirs = dict(torch_model.named_parameters())
        for name, param in model.named_parameters():
            assert param.data.dtype == dtype
            np.testing.assert_allclose(param.data, theirs[name].detach().numpy(), rtol=rtol, atol=atol,
                                       err_msg=f"{name} after step {step + 1}")
    return optimizer


def zero_or(strategy):
    return st.one_of(st.just(0.0), strategy)


@st.composite
def rmsprop_kwargs(draw):
    """alpha = 0 is left out: centered, the variance g*g - g*g is then 0 up to rounding, whose sign
    decides between a huge step and NaN in either library."""
    return dict(lr=draw(st.floats(1e-4, 0.1)), alpha=draw(st.sampled_from([0.5, 0.9, 0.99])),
                eps=draw(st.sampled_from([1e-8, 1e-3])), weight_decay=draw(zero_or(st.floats(1e-4, 0.1))),
                momentum=draw(zero_or(st.floats(0.1, 0.95))), centered=draw(st.booleans()))


@st.composite
def adagrad_kwargs(draw):
    return dict(lr=draw(st.floats(1e-4, 0.5)), lr_decay=draw(zero_or(st.floats(1e-3, 0.5))),
                weight_decay=draw(zero_or(st.floats(1e-4, 0.1))),
                initial_accumulator_value=draw(zero_or(st.floats(0.01, 1.0))), eps=draw(st.sampled_from([1e-10, 1e-3])))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@settings(max_examples=100)
@given(kwargs=rmsprop_kwargs())
def test_rmsprop_matches_torch(kwargs, dtype):
    train_both(RMSprop, kwargs, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@settings(max_examples=100)
@given(kwargs=adagrad_kwargs())
def test_adagrad_matches_torch(kwargs, dtype):
    train_both(Adagrad, kwargs, dtype)


@pytest.mark.parametrize("cls, kwargs", [(RMSprop, dict(momentum=0.9, centered=True, weight_decay=0.01)),
                                         (Adagrad, dict(lr_decay=0.1, initial_accumulator_value=0.5))])
def test_state_dict_through_save_resumes_bit_for_bit(cls, kwargs, tmp_path):
    optimizer = train_both(cls, kwargs, np.float64, steps=3)
    tn.save(optimizer.state_dict(), tmp_path / "opt.npz")
    restored = cls([tn.Parameter(p.data.copy()) for p in optimizer.params], **kwargs)
    restored.load_state_dict(tn.load(tmp_path / "opt.npz"))
    assert sorted(restored.state[0]) == sorted(optimizer.state[0]) and restored.state[0]["step"] == 3
    for param, copy in zip(optimizer.params, restored.params):
        param.grad = copy.grad = np.full_like(param.data, 0.5)
    optimizer.step()
    restored.step()
    for param, copy in zip(optimizer.params, restored.params):
        np.testing.assert_array_equal(copy.data, param.data)


@pytest.mark.parametrize("cls, kwargs, message", [
    (RMSprop, dict(alpha=1.0), "RMSprop: Invalid alpha value: 1.0"),
    (RMSprop, dict(momentum=-0.1), "RMSprop: Invalid momentum value: -0.1"),
    (RMSprop, dict(lr=-1), "RMSprop: Invalid learning rate: -1.0"),
    (Adagrad, dict(lr_decay=-1), "Adagrad: Invalid lr_decay value: -1.0"),
    (Adagrad, dict(eps=-1), "Adagrad: Invalid epsilon value: -1.0"),
])
def test_bad_hyperparameters_are_refused_with_their_value(cls, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        cls([tn.Parameter(np.zeros(2))], **kwargs)


# --- gradient clipping -----------------------------------------------------------------------
def gradients_pair(seed, shapes, scale, dtype):
    rng = np.random.default_rng(seed)
    params = [tn.Parameter(np.zeros(shape, dtype)) for shape in shapes]
    torch_params = []
    for param in params:
        param.grad = np.asarray(rng.standard_normal(param.shape) * scale, dtype=dtype)  # 0-d too
        torch_param = torch.zeros(param.shape, dtype=getattr(torch, np.dtype(dtype).name), requires_grad=True)
        torch_param.grad = torch.from_numpy(param.grad.copy())
        torch_params.append(torch_param)
    return params, torch_params


@settings(max_examples=200)
@given(seed=st.integers(0, 2**32 - 1), shapes=st.lists(st.lists(st.integers(1, 4), max_size=2).map(tuple), min_size=1, max_size=3),
       scale=st.sampled_from([1e-3, 1.0, 100.0]), max_norm=st.floats(0.01, 10.0),
       norm_type=st.sampled_from([1.0, 2.0, 3.0, math.inf]), dtype=st.sampled_from([np.float64, np.float32]))
def test_clip_grad_norm_matches_torch(seed, shapes, scale, max_norm, norm_type, dtype):
    params, torch_params = gradients_pair(seed, shapes, scale, dtype)
    total = clip_grad_norm_(params, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(torch_params, max_norm, norm_type)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    assert isinstance(total, float)
    np.testing.assert_allclose(total, expected.item(), rtol=rtol)
    for param, torch_param in zip(params, torch_params):
        assert param.grad.dtype == dtype
        np.testing.assert_allclose(param.grad, torch_param.grad.numpy(), rtol=rtol, atol=0)


@settings(max_examples=200)
@given(seed=st.integers(0, 2**32 - 1), clip=st.floats(0.0, 3.0), dtype=st.sampled_from([np.float64, np.float32]))
def test_clip_grad_value_matches_torch(seed, clip, dtype):
    params, torch_params = gradients_pair(seed, [(3, 4), (5,)], 2.0, dtype)
    clip_grad_value_(params, clip)
    torch.nn.utils.clip_grad_value_(torch_params, clip)
    for param, torch_param in zip(params, torch_params):
        np.testing.assert_array_equal(param.grad, torch_param.grad.numpy())


def test_clipping_skips_missing_gradients_and_refuses_bad_arguments():
    with_grad, without = tn.Parameter(np.zeros(2)), tn.Parameter(np.zeros(2))
    with_grad.grad = np.array([3.0, 4.0])
    assert clip_grad_norm_([with_grad, without], 1.0) == 5.0
    np.testing.assert_allclose(with_grad.grad, [0.6, 0.8], rtol=1e-6)
    assert without.grad is None
    with_grad.grad = np.array([np.inf, 1.0])
    with pytest.raises(RuntimeError, match=re.escape("clip_grad_norm_: the total norm of order 2.0 of the gradients is inf")):
        clip_grad_norm_(with_grad, 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match=re.escape("clip_grad_value_: clip_value must be non-negative, got -1.0")):
        clip_grad_value_([with_grad], -1)
    with pytest.raises(TypeError, match=re.escape("clip_grad_norm_: parameters[0] is a ndarray, not a tinynet Parameter")):
        clip_grad_norm_([np.zeros(2)], 1.0)
