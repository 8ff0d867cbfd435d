"""Buffers in Module, BatchNorm1d/2d and LayerNorm against PyTorch (outputs, gradients, running
statistics over several steps), finite differences, bad input, state dicts and interop."""
import re

import numpy as np
import pytest
import torch
from helpers import load_weights, tolerance
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet.interop import from_torch, to_torch
from tinynet.testing import gradcheck

DTYPES = [np.float64, np.float32]


def draw_values(data, shape, dtype):
    """Normal values at a drawn scale and, in float64, offset (statistics far from 0 and 1 test the
    normalisation). Float32 keeps offset 0: data far from 0 relative to its spread loses digits in
    x - mean, in both libraries differently, and the three-term gradient cancels what is left."""
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    scale = data.draw(st.sampled_from([0.1, 1.0, 10.0]), label="scale")
    offset = data.draw(st.sampled_from([0.0, 3.0, -50.0] if dtype == np.float64 else [0.0]), label="offset")
    return (np.random.default_rng(seed).standard_normal(shape) * scale + offset).astype(dtype)


def randomize_affine(layer, seed=1):
    """Weights other than ones and zeros, so that a wrong scale or shift cannot pass."""
    rng = np.random.default_rng(seed)
    for param in layer.parameters():
        param.data[...] = rng.standard_normal(param.shape)
    return layer


# Each case draws arguments and returns (tinynet layer, torch layer, list of inputs for successive steps).
def batch_norm_case(data, dtype):
    rank = data.draw(st.sampled_from([2, 3, 4]), label="rank")
    channels = data.draw(st.integers(1, 4), label="channels")
    spatial = tuple(data.draw(st.lists(st.integers(1, 4), min_size=rank - 2, max_size=rank - 2), label="spatial"))
    n = data.draw(st.integers(2 if rank == 2 else 1, 5), label="batch")
    if n * int(np.prod(spatial)) < 2:
        n = 2
    kwargs = dict(
        eps=data.draw(st.sampled_from([1e-5, 1e-3, 0.1]), label="eps"),
        momentum=data.draw(st.sampled_from([0.1, 0.5, 1.0, 0.0, None]), label="momentum"),
        affine=data.draw(st.booleans(), label="affine"),
        track_running_stats=data.draw(st.booleans(), label="track_running_stats"),
    )
    name = "BatchNorm2d" if rank == 4 else "BatchNorm1d"
    layer = randomize_affine(getattr(tn, name)(channels, dtype=dtype, **kwargs))
    steps = data.draw(st.integers(1, 4), label="steps")
    xs = [draw_values(data, (n, channels) + spatial, dtype) for _ in range(steps)]
    return layer, getattr(torch.nn, name)(channels, **kwargs), xs


def layer_norm_case(data, dtype):
    shape = tuple(data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=4), label="shape"))
    k = data.draw(st.integers(1, len(shape)), label="normalized axes")
    normalized = shape[len(shape) - k:]
    kwargs = dict(eps=data.draw(st.sampled_from([1e-5, 0.1]), label="eps"),
                  elementwise_affine=data.draw(st.booleans(), label="elementwise_affine"),
                  bias=data.draw(st.booleans(), label="bias"))
    layer = randomize_affine(tn.LayerNorm(normalized, dtype=dtype, **kwargs))
    return layer, torch.nn.LayerNorm(normalized, **kwargs), [draw_values(data, shape, dtype)]


CASES = {"BatchNorm": batch_norm_case, "LayerNorm": layer_norm_case}


def gradient_term_size(layer, x, grad_y):
    """A bound on the terms summed into the gradients of a layer normalising with batch statistics:
    |g| * |gamma| * |x| / std, since the rounding of x - mean (relative to |x|) is divided by std."""
    if isinstance(layer, tn.LayerNorm):
        axes = tuple(range(x.ndim - len(layer.normalized_shape), x.ndim))
    else:
        axes = (0,) + tuple(range(2, x.ndim))
    weight = getattr(layer, "weight", None)
    gamma = 1.0 if weight is None else max(1.0, float(np.max(np.abs(weight.data))))
    smallest_std = np.sqrt(float(np.min(x.astype(np.float64).var(axis=axes))) + layer.eps)
    largest_x = max(1.0, float(np.max(np.abs(x))))
    return float(np.max(np.abs(grad_y))) * gamma * largest_x / smallest_std


def train_steps_both(layer, reference, xs, dtype, rng):
    """Forward and backward on each x in turn in both libraries, from the same weights and buffers,
    comparing outputs and gradients every step and the buffers after the last."""
    rtol, atol = tolerance(dtype)
    reference = load_weights(reference.to(getattr(torch, np.dtype(dtype).name)), layer)
    for step, x in enumerate(xs):
        layer.zero_grad()
        reference.zero_grad()
        y = layer(x)
        grad_y = rng.standard_normal(y.shape).astype(dtype)
        grad_x = layer.backward(grad_y)
        xt = torch.from_numpy(x.copy()).requires_grad_(True)
        yt = reference(xt)
        yt.backward(torch.from_numpy(grad_y))
        assert y.dtype == grad_x.dtype == dtype
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=rtol, atol=atol, err_msg=f"output, step {step}")
        # The gradients are gamma/std * (g - mean(g) - xhat * mean(g * xhat)) and sum(g * xhat): their
        # float32 rounding scales with those terms, which can cancel to far less than their size.
        _, atol_grad = tolerance(dtype, expected=[gradient_term_size(layer, x, grad_y)])
        np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=rtol, atol=atol_grad, err_msg=f"input gradient, step {step}")
        theirs = dict(reference.named_parameters())
        for name, param in layer.named_parameters():
            np.testing.assert_allclose(param.grad, theirs[name].grad.numpy(), rtol=rtol, atol=atol_grad,
                                       err_msg=f"gradient of {name}, step {step}")
    theirs = dict(reference.named_buffers())
    assert sorted(dict(layer.named_buffers())) == sorted(theirs)
    for name, buffer in layer.named_buffers():
        assert buffer.dtype == theirs[name].numpy().dtype, name
        np.testing.assert_allclose(buffer, theirs[name].numpy(), rtol=rtol, atol=atol, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
@settings(max_examples=100)
@given(data=st.data())
def test_layer_matches_torch_over_steps_in_training_and_evaluation(case, dtype, data):
    layer, reference, xs = CASES[case](data, dtype)
    training = data.draw(st.booleans(), label="training")
    train_steps_both(layer.train(training), reference.train(training), xs, dtype, np.random.default_rng(0))


@pytest.mark.parametrize("case", CASES)
@settings(max_examples=100)
@given(data=st.data())
def test_layer_passes_gradcheck(case, data):
    layer, _, xs = CASES[case](data, np.float64)
    layer.train(data.draw(st.booleans(), label="training"))
    assert gradcheck(layer, xs[0])


def test_batch_norm_running_var_uses_the_unbiased_variance_and_momentum_none_averages():
    x1 = np.array([[0.0], [2.0]])
    x2 = np.array([[10.0], [10.0], [16.0]])
    bn = tn.BatchNorm1d(1, momentum=None, dtype=np.float64)
    bn(x1)
    bn(x2)
    # Cumulative averages of the batch means (1, 12) and unbiased variances (2, 12), from 0 and 1.
    np.testing.assert_allclose(bn.running_mean, [6.5])
    np.testing.assert_allclose(bn.running_var, [7.0])
    assert bn.num_batches_tracked.dtype == np.int64 and int(bn.num_batches_tracked) == 2
    bn.eval()
    np.testing.assert_allclose(bn(np.array([[6.5]])), [[0.0]])  # eval mode: the running statistics


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
def test_eval_backward_uses_the_statistics_of_its_forward(kernels):
    """The running statistics may change between an evaluation forward and its backward (a
    training forward, a loaded state dict): the backward uses those the forward normalised with."""
    rng = np.random.default_rng(0)
    x, grad_y = rng.standard_normal((4, 3, 5, 5)), rng.standard_normal((4, 3, 5, 5))
    bn = randomize_affine(tn.BatchNorm2d(3, dtype=np.float64))
    bn.running_mean[...] = [0.5, -1.0, 2.0]
    bn.eval()
    with tn.kernels.use(kernels):
        bn(x)
        bn.backward(grad_y)
        expected = [p.grad.copy() for p in bn.parameters()]
        bn.zero_grad()
        bn(x)
        bn.running_mean += 10.0  # in place, as a training step or load_state_dict writes it
        bn.backward(grad_y)
    for param, grad in zip(bn.parameters(), expected):
        np.testing.assert_array_equal(param.grad, grad)


def test_batch_norm_refuses_one_value_per_channel_wrong_channels_and_rank():
    bn = tn.BatchNorm1d(3)
    message = "BatchNorm1d: Expected more than 1 value per channel when training, got input size (1, 3)"
    with pytest.raises(ValueError, match=re.escape(message)):
        bn(np.zeros((1, 3), np.float32))
    assert int(bn.num_batches_tracked) == 0 and not bn.running_mean.any(), "a refused call changes nothing"
    bn.eval()
    assert bn(np.zeros((1, 3), np.float32)).shape == (1, 3)  # evaluation mode uses the running statistics
    with pytest.raises(ValueError, match=re.escape("BatchNorm1d: expected input with 3 channels, got 4 (input shape (2, 4))")):
        bn(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=re.escape(
            "BatchNorm2d: expected a 4-D (N, C, H, W) input, got shape (2, 3, 4)")):
        tn.BatchNorm2d(3)(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(TypeError, match=re.escape("BatchNorm2d: input dtype float64 does not match the parameters' dtype float32")):
        tn.BatchNorm2d(3)(np.zeros((2, 3, 4, 4)))
    with pytest.raises(ValueError, match=re.escape("BatchNorm2d: momentum must be None or a number in [0, 1], got 2")):
        tn.BatchNorm2d(3, momentum=2)
    with pytest.raises(ValueError, match=re.escape("LayerNorm: expected an input of shape (*, 4, 5), got shape (2, 5, 4)")):
        tn.LayerNorm((4, 5))(np.zeros((2, 5, 4), np.float32))


# --- buffers -----------------------------------------------------------------------------
def small_cnn():
    return tn.Sequential(tn.Conv2d(1, 2, 3), tn.BatchNorm2d(2), tn.ReLU(), tn.Flatten(), tn.BatchNorm1d(8),
                         tn.Linear(8, 3))


def torch_small_cnn():
    t = torch.nn
    return t.Sequential(t.Conv2d(1, 2, 3), t.BatchNorm2d(2), t.ReLU(), t.Flatten(), t.BatchNorm1d(8), t.Linear(8, 3))


def test_state_dict_holds_buffers_under_pytorchs_keys_in_pytorchs_order():
    model = small_cnn()
    assert list(model.state_dict()) == list(torch_small_cnn().state_dict())
    assert [name for name, _ in model.named_buffers()] == [
        "1.running_mean", "1.running_var", "1.num_batches_tracked",
        "4.running_mean", "4.running_var", "4.num_batches_tracked"]
    assert len(model.buffers()) == 6 and len(model.parameters()) == 8
    assert "running_mean" not in dict(tn.BatchNorm2d(2, track_running_stats=False).state_dict())


def test_buffers_load_exactly_save_round_trip_and_a_bad_load_changes_nothing(tmp_path):
    model = small_cnn()
    model(np.random.default_rng(0).standard_normal((4, 1, 4, 4)).astype(np.float32))
    copy = small_cnn()
    copy.load_state_dict(model.state_dict())
    for (key, ours), (_, theirs) in zip(model.state_dict().items(), copy.state_dict().items()):
        np.testing.assert_array_equal(theirs, ours, err_msg=key)
        assert theirs.dtype == ours.dtype and theirs is not ours
    tn.save(model.state_dict(), tmp_path / "m.npz")
    loaded = small_cnn().load_state_dict(tn.load(tmp_path / "m.npz"))
    assert int(loaded[1].num_batches_tracked) == 1
    np.testing.assert_array_equal(loaded[4].running_var, model[4].running_var)

    state = dict(model.state_dict())
    state["4.running_var"] = np.ones(9, np.float32)
    fresh = small_cnn()
    before = {key: value.copy() for key, value in fresh.state_dict().items()}
    with pytest.raises(ValueError, match=re.escape("size mismatch for 4.running_var: copying an array of shape (9,)")):
        fresh.load_state_dict(state)
    del state["4.running_var"]
    with pytest.raises(KeyError, match=re.escape("missing keys ['4.running_var']")):
        fresh.load_state_dict(state)
    for key, value in fresh.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


def test_to_casts_float_buffers_only_and_optimizers_never_touch_buffers():
    model = small_cnn().to(np.float64)
    assert model[1].running_var.dtype == np.float64 and model[1].num_batches_tracked.dtype == np.int64
    ids = {id(buffer) for buffer in model.buffers()}
    optimizer = tn.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.1)
    assert not ids & {id(param.data) for param in optimizer.params}
    model.eval()
    model(np.ones((2, 1, 4, 4)))
    before = {key: value.copy() for key, value in model.named_buffers()}
    for param in model.parameters():
        param.grad = np.ones_like(param.data)
    optimizer.step()
    for key, value in model.named_buffers():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


def test_register_buffer_refuses_bad_names_and_values():
    module = tn.Module()
    module.register_buffer("scale", np.ones(3))
    assert module.state_dict()["scale"] is module.scale
    with pytest.raises(KeyError, match=re.escape("Module.register_buffer: buffer 'scale' already exists")):
        module.register_buffer("scale", np.ones(3))
    with pytest.raises(ValueError, match=re.escape("Module.register_buffer: buffer name must be a Python identifier, got 'a.b'")):
        module.register_buffer("a.b", np.ones(3))
    with pytest.raises(TypeError, match=re.escape("Module.register_buffer: buffer 'c' must be an array or None, got a list")):
        module.register_buffer("c", [1.0])
    with pytest.raises(KeyError, match=re.escape("Module.register_buffer: attribute 'training' already exists")):
        module.register_buffer("training", np.ones(1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_interop_carries_buffers_both_ways(dtype):
    model = small_cnn().to(dtype)
    for _ in range(3):
        model(np.random.default_rng(0).standard_normal((4, 1, 4, 4)).astype(dtype))
    model.eval()
    x = np.random.default_rng(1).standard_normal((3, 1, 4, 4)).astype(dtype)
    theirs = to_torch(model)
    assert not theirs.training
    rtol, atol = tolerance(dtype)
    with torch.no_grad():
        np.testing.assert_allclose(theirs(torch.from_numpy(x)).numpy(), model(x), rtol=rtol, atol=atol)
    for key, value in theirs.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), model.state_dict()[key], err_msg=key)
        assert value.numpy().dtype == model.state_dict()[key].dtype
    back = from_torch(theirs)
    assert repr(back) == repr(model)
    for key, value in back.state_dict().items():
        np.testing.assert_array_equal(value, model.state_dict()[key], err_msg=key)
        assert value.dtype == model.state_dict()[key].dtype
    for layer in (tn.BatchNorm1d(3, momentum=None, affine=False, track_running_stats=False), tn.LayerNorm((2, 3), bias=False)):
        assert repr(from_torch(to_torch(layer))) == repr(layer)
