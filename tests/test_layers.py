"""Every layer in tinynet.nn against torch.nn and against finite differences,
plus Dropout's statistics, bad input, state dicts, Module bookkeeping and the GPU."""
import copy
import re

import numpy as np
import pytest
import torch
from helpers import assert_close, compare_module
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet.nn.module import NO_FORWARD
from tinynet.rng import default_generator
from layer_registry import DTYPES, LAYER_CASES, shapes


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ours, theirs, slope_at_zero", [
    (tn.ReLU(), torch.nn.ReLU(), 0.0), (tn.LeakyReLU(0.1), torch.nn.LeakyReLU(0.1), 0.1),
], ids=["ReLU", "LeakyReLU"])
def test_kinks_take_pytorchs_side_at_zero(ours, theirs, slope_at_zero, dtype):
    x = np.array([[0.0, -0.0, 1e-30, -1e-30, 2.0, -2.0]], dtype=dtype)
    compare_module(ours, theirs, x, dtype=dtype)
    ours(x)
    grad_x = ours.backward(np.ones_like(x))
    np.testing.assert_array_equal(grad_x[0, :2], np.array([slope_at_zero] * 2, dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_tanh_softmax_saturate_without_overflow(dtype):
    x = np.array([[-1e4, -800.0, -100.0, -30.0, 0.0, 30.0, 100.0, 800.0, 1e4]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise"):  # overflow in exp (or inf - inf) would raise here
        for layer, reference in [(tn.Sigmoid(), torch.nn.Sigmoid()), (tn.Tanh(), torch.nn.Tanh()),
                                 (tn.Softmax(), torch.nn.Softmax(-1))]:
            y = compare_module(layer, reference, x, dtype=dtype)
            assert np.isfinite(y).all()


@pytest.mark.parametrize("layer", [tn.Linear(4, 3), tn.ReLU(), tn.LeakyReLU(), tn.Sigmoid(), tn.Tanh(),
                                   tn.Softmax(), tn.Flatten(), tn.Dropout(0.5)], ids=repr)
def test_empty_batch_passes_through(layer):
    x = np.zeros((0, 4), np.float32)
    y = layer(x)
    assert y.shape[0] == 0 and y.dtype == np.float32
    assert layer.backward(np.zeros_like(y)).shape == x.shape


# --- Dropout ---------------------------------------------------------------------------------
@settings(max_examples=100)
@given(p=st.floats(0.0, 1.0), shape=shapes, dtype=st.sampled_from(DTYPES))
def test_dropout_eval_mode_is_identity(p, shape, dtype):
    layer = tn.Dropout(p).eval()
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    np.testing.assert_array_equal(layer(x), x)
    grad = np.ones_like(x)
    np.testing.assert_array_equal(layer.backward(grad), grad)


@settings(max_examples=100)
@given(p=st.floats(0.05, 0.95), seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from(DTYPES))
def test_dropout_zeros_p_of_the_elements_and_scales_the_rest_exactly(p, seed, dtype):
    rng = np.random.default_rng(seed)
    x = (rng.random((40, 50)) + 0.5).astype(dtype)  # no zeros, so y == 0 marks a dropped element
    layer = tn.Dropout(p, rng=rng)
    y = layer(x)
    assert y.dtype == dtype
    dropped = y == 0
    # The number dropped is Binomial(n, p): allow 5 standard deviations.
    n = x.size
    assert abs(dropped.sum() - n * p) <= 5 * np.sqrt(n * p * (1 - p))
    scale = dtype(1 / (1 - p))
    np.testing.assert_array_equal(y[~dropped], x[~dropped] * scale)
    # Backward applies the same mask and the same scale.
    grad_y = rng.standard_normal(x.shape).astype(dtype)
    grad_x = layer.backward(grad_y)
    assert grad_x.dtype == dtype
    np.testing.assert_array_equal(grad_x[dropped], 0)
    np.testing.assert_array_equal(grad_x[~dropped], grad_y[~dropped] * scale)


def test_dropout_p0_is_identity_and_p1_drops_everything():
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    grad = np.ones_like(x)
    keep_all, drop_all = tn.Dropout(0.0), tn.Dropout(1.0)
    np.testing.assert_array_equal(keep_all(x), x)
    np.testing.assert_array_equal(keep_all.backward(grad), grad)
    np.testing.assert_array_equal(drop_all(x), np.zeros_like(x))
    np.testing.assert_array_equal(drop_all.backward(grad), np.zeros_like(x))


def test_dropout_masks_reproduce_with_manual_seed_and_with_an_explicit_rng():
    x = np.ones((8, 16), np.float32)
    tn.manual_seed(123)
    first = tn.Dropout(0.5)(x)
    tn.manual_seed(123)
    np.testing.assert_array_equal(tn.Dropout(0.5)(x), first)
    tn.manual_seed(124)
    assert not np.array_equal(tn.Dropout(0.5)(x), first)

    state = default_generator().bit_generator.state
    a = tn.Dropout(0.5, rng=np.random.default_rng(7))(x)
    b = tn.Dropout(0.5, rng=np.random.default_rng(7))(x)
    np.testing.assert_array_equal(a, b)
    assert default_generator().bit_generator.state == state, "an explicit rng must not draw from tinynet's"


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_dropout_rejects_bad_p(p):
    with pytest.raises(ValueError, match=re.escape(f"Dropout: dropout probability has to be between 0 and 1, but got {p}")):
        tn.Dropout(p)


# --- bad input ---------------------------------------------------------------------------------
def test_linear_rejects_wrong_feature_size_ndim_and_dtype():
    layer = tn.Linear(4, 3)
    with pytest.raises(ValueError, match=re.escape("Linear: expected input with 4 features, got 3 (input shape (2, 3))")):
        layer(np.zeros((2, 3), np.float32))
    for shape in [(4,), (2, 1, 4)]:
        message = f"Linear: expected a 2-D input of shape (N, in_features), got shape {shape}"
        with pytest.raises(ValueError, match=re.escape(message)):
            layer(np.zeros(shape, np.float32))
    with pytest.raises(TypeError, match=re.escape("Linear: input dtype float64 does not match the parameters' dtype float32")):
        layer(np.zeros((2, 4), np.float64))
    with pytest.raises(TypeError, match=re.escape("Linear: expected a floating-point array, got int64")):
        layer(np.zeros((2, 4), np.int64))


@pytest.mark.parametrize("arg", [0, -3, 2.5])
def test_linear_rejects_bad_sizes(arg):
    with pytest.raises(ValueError, match=re.escape(f"Linear: in_features must be a positive integer, got {arg!r}")):
        tn.Linear(arg, 3)


@pytest.mark.parametrize("layer", [tn.ReLU(), tn.LeakyReLU(), tn.Sigmoid(), tn.Tanh(), tn.Softmax(), tn.Dropout()],
                         ids=repr)
def test_activations_reject_integer_input(layer):
    name = type(layer).__name__
    with pytest.raises(TypeError, match=re.escape(f"{name}: expected a floating-point array, got int64")):
        layer(np.zeros((2, 3), np.int64))


def test_softmax_and_flatten_reject_bad_shapes():
    with pytest.raises(ValueError, match=re.escape("Softmax: dim 2 is out of range for an input of shape (2, 3)")):
        tn.Softmax(dim=2)(np.zeros((2, 3)))
    message = "Flatten: expected an input of shape (N, ...) with at least 2 dimensions, got shape (3,)"
    with pytest.raises(ValueError, match=re.escape(message)):
        tn.Flatten()(np.zeros(3))


@pytest.mark.parametrize("layer", [tn.Linear(3, 2), tn.ReLU(), tn.LeakyReLU(), tn.Sigmoid(), tn.Tanh(), tn.Softmax(),
                                   tn.Flatten(), tn.Dropout(), tn.Dropout().eval()], ids=repr)
def test_backward_before_forward_and_twice_raise(layer):
    name = type(layer).__name__
    with pytest.raises(RuntimeError, match=re.escape(f"{name}.backward called before forward")):
        layer.backward(np.ones((2, 2)))
    y = layer(np.ones((2, 3)).astype(np.float32))
    layer.backward(np.ones_like(y))
    with pytest.raises(RuntimeError, match=re.escape(f"{name}.backward called before forward (or twice for one forward)")):
        layer.backward(np.ones_like(y))


LAYERS_AND_INPUTS = [
    (tn.Linear(3, 2), (2, 3)), (tn.ReLU(), (2, 3)), (tn.LeakyReLU(), (2, 3)), (tn.Sigmoid(), (2, 3)),
    (tn.Tanh(), (2, 3)), (tn.Softmax(), (2, 3)), (tn.Flatten(), (2, 3, 2)), (tn.Dropout(), (2, 3)),
    (tn.Dropout().eval(), (2, 3)), (tn.Conv2d(1, 2, 2), (2, 1, 4, 4)), (tn.MaxPool2d(2), (2, 1, 4, 4)),
    (tn.AvgPool2d(2), (2, 1, 4, 4)),
]


@pytest.mark.parametrize("layer, shape", LAYERS_AND_INPUTS, ids=lambda v: repr(v) if isinstance(v, tn.Module) else "")
def test_backward_refuses_a_gradient_of_another_shape_than_the_output(layer, shape):
    """A (1, ...) or (..., 1) gradient would broadcast or reshape silently; it is refused by name,
    and the layer keeps what forward saved, so a right gradient still works afterwards."""
    y = layer(np.ones(shape, np.float32))
    for wrong in (np.ones((1,) + y.shape[1:], np.float32), np.ones(y.shape + (1,), np.float32)):
        message = (f"{type(layer).__name__}.backward: expected a gradient of the output's shape {y.shape}, "
                   f"got {wrong.shape}")
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            layer.backward(wrong)
    assert layer.backward(np.ones_like(y)).shape == shape


def test_sequential_refuses_a_wrong_gradient_at_its_last_layer():
    model = tn.Sequential(tn.Linear(4, 3), tn.ReLU(), tn.Linear(3, 2))
    model(np.ones((5, 4), np.float32))
    with pytest.raises(ValueError, match=re.escape("Linear.backward: expected a gradient of the output's shape (5, 2), got (5, 3)")):
        model.backward(np.ones((5, 3), np.float32))


# --- state dicts -------------------------------------------------------------------------------
def make_models():
    """The same architecture in both libraries."""
    model = tn.Sequential(
        tn.Flatten(), tn.Linear(12, 8), tn.ReLU(), tn.Dropout(0.5),
        tn.Sequential(tn.Linear(8, 5, bias=False), tn.Tanh()), tn.Linear(5, 3), tn.Softmax(),
    )
    reference = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(12, 8), torch.nn.ReLU(), torch.nn.Dropout(0.5),
        torch.nn.Sequential(torch.nn.Linear(8, 5, bias=False), torch.nn.Tanh()), torch.nn.Linear(5, 3),
        torch.nn.Softmax(-1),
    )
    return model, reference


# Models whose first layer does (Linear, Conv2d), may (nested Sequential) or cannot (ReLU) skip the
# input gradient, with an input shape each.
PARAMETER_BACKWARD_CASES = {
    "Linear": (lambda: tn.Linear(5, 3), (4, 5)),
    "Linear without bias": (lambda: tn.Linear(5, 3, bias=False), (4, 5)),
    "Conv2d, groups": (lambda: tn.Conv2d(2, 4, 3, padding=1, groups=2), (2, 2, 6, 5)),
    "Conv2d without bias": (lambda: tn.Conv2d(1, 2, (2, 3), stride=2, bias=False), (3, 1, 7, 6)),
    "ReLU first": (lambda: tn.Sequential(tn.ReLU(), tn.Linear(5, 3)), (4, 5)),
    "nested Sequential": (lambda: tn.Sequential(
        tn.Sequential(tn.Conv2d(1, 2, 3), tn.ReLU()), tn.MaxPool2d(2), tn.Flatten(), tn.Linear(8, 3)), (2, 1, 6, 6)),
    "empty Sequential": (lambda: tn.Sequential(), (2, 3)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", PARAMETER_BACKWARD_CASES)
def test_backward_parameters_gives_backward_s_parameter_gradients(case, dtype):
    build, shape = PARAMETER_BACKWARD_CASES[case]
    rng = np.random.default_rng(0)
    model = build().to(dtype)
    twin = copy.deepcopy(model)
    x = rng.standard_normal(shape).astype(dtype)
    y = model(x)
    np.testing.assert_array_equal(twin(x), y)
    grad_y = rng.standard_normal(y.shape).astype(dtype)
    model.backward(grad_y)
    assert twin.backward_parameters(grad_y) is None
    for (name, param), (_, twin_param) in zip(model.named_parameters(), twin.named_parameters()):
        assert twin_param.grad.dtype == dtype
        np.testing.assert_array_equal(twin_param.grad, param.grad, err_msg=name)
    for layer in twin.modules():  # every saved activation was used up, as by backward
        assert layer._cache is NO_FORWARD, type(layer).__name__


def test_state_dict_keys_and_shapes_equal_torch():
    model, reference = make_models()
    ours = {key: value.shape for key, value in model.state_dict().items()}
    theirs = {key: tuple(value.shape) for key, value in reference.state_dict().items()}
    assert list(ours) == list(theirs) == ["1.weight", "1.bias", "4.0.weight", "5.weight", "5.bias"]
    assert ours == theirs


def test_torch_weights_load_into_tinynet():
    model, reference = make_models()
    model.eval(), reference.eval()
    model.load_state_dict(reference.state_dict())
    assert all(param.dtype == np.float32 for param in model.parameters())
    x = np.random.default_rng(0).standard_normal((4, 3, 4)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    assert_close(model(x), expected, np.float32)


def test_load_state_dict_reports_missing_extra_keys_and_wrong_shapes():
    model, _ = make_models()
    state = model.state_dict()
    before = [value.copy() for value in state.values()]

    missing = {key: value for key, value in state.items() if key != "5.bias"}
    message = "Error loading state_dict into Sequential: missing keys ['5.bias'], unexpected keys []"
    with pytest.raises(KeyError, match=re.escape(message)):
        model.load_state_dict(missing)

    extra = dict(state, **{"6.weight": np.zeros(3)})
    message = "Error loading state_dict into Sequential: missing keys [], unexpected keys ['6.weight']"
    with pytest.raises(KeyError, match=re.escape(message)):
        model.load_state_dict(extra)

    wrong = dict(state, **{"1.weight": np.zeros((8, 13), np.float32)})
    message = ("Error loading state_dict into Sequential: size mismatch for 1.weight: copying an array of shape "
               "(8, 13) into one of shape (8, 12)")
    with pytest.raises(ValueError, match=re.escape(message)):
        model.load_state_dict(wrong)
    for value, old in zip(model.state_dict().values(), before):
        np.testing.assert_array_equal(value, old)  # a failed load changes nothing


# --- Module bookkeeping --------------------------------------------------------------------------
def test_named_parameters_follow_assignment_order():
    model, _ = make_models()
    names = [name for name, _ in model.named_parameters()]
    assert names == ["1.weight", "1.bias", "4.0.weight", "5.weight", "5.bias"]
    assert [p.shape for p in model.parameters()] == [(8, 12), (8,), (5, 8), (3, 5), (3,)]


def test_train_and_eval_recurse_into_every_module():
    model, _ = make_models()
    assert all(module.training for module in model.modules())
    assert model.eval() is model
    assert not any(module.training for module in model.modules())
    x = np.ones((2, 12), np.float32)
    np.testing.assert_array_equal(model(x), model(x))  # Dropout is off
    model.train()
    assert all(module.training for module in model.modules())


def forward_backward(model, x, seed=0):
    y = model(x)
    model.backward(np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype))


def test_zero_grad_and_gradient_accumulation():
    model, _ = make_models()
    model.eval()
    x = np.random.default_rng(0).standard_normal((4, 12)).astype(np.float32)
    forward_backward(model, x)
    once = [param.grad.copy() for param in model.parameters()]
    forward_backward(model, x)  # a second backward adds to .grad
    for param, grad in zip(model.parameters(), once):
        np.testing.assert_allclose(param.grad, 2 * grad, rtol=1e-6)
    model.zero_grad()
    assert all(param.grad is None for param in model.parameters())
    forward_backward(model, x)
    for param, grad in zip(model.parameters(), once):
        np.testing.assert_array_equal(param.grad, grad)


def test_model_to_float64_keeps_working():
    model, _ = make_models()
    model.eval()
    x = np.random.default_rng(0).standard_normal((4, 12))
    y32 = model(x.astype(np.float32))
    assert model.to(np.float64) is model
    assert all(param.dtype == np.float64 for param in model.parameters())
    y64 = model(x)
    assert y64.dtype == np.float64
    assert_close(y32, y64, np.float32)
    forward_backward(model, x)
    assert all(param.grad.dtype == np.float64 for param in model.parameters())
    with pytest.raises(TypeError, match="input dtype float32 does not match the parameters' dtype float64"):
        model(x.astype(np.float32))
    model.to("float32")
    assert model(x.astype(np.float32)).dtype == np.float32


# --- GPU -----------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("case", LAYER_CASES)
@settings(max_examples=10)
@given(data=st.data())
def test_layer_on_gpu_matches_cpu(case, data):
    import cupy

    layer, _, x = LAYER_CASES[case](data, np.float32)
    gpu_layer = copy.deepcopy(layer).to("cuda")
    y = layer(x)
    grad_y = np.random.default_rng(0).standard_normal(y.shape).astype(np.float32)
    grad_x = layer.backward(grad_y)
    y_gpu = gpu_layer(cupy.asarray(x))
    grad_x_gpu = gpu_layer.backward(cupy.asarray(grad_y))
    for expected, got in [(y, y_gpu), (grad_x, grad_x_gpu)] + [
        (p.grad, q.grad) for p, q in zip(layer.parameters(), gpu_layer.parameters())
    ]:
        assert isinstance(got, cupy.ndarray) and got.dtype == np.float32
        np.testing.assert_allclose(got.get(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
def test_dropout_on_gpu_reproduces_with_manual_seed():
    import cupy

    x = cupy.ones((100, 100), np.float32)
    tn.manual_seed(5)
    first = tn.Dropout(0.3)(x)
    tn.manual_seed(5)
    np.testing.assert_array_equal(tn.Dropout(0.3)(x).get(), first.get())
    values = first.get()
    assert set(np.unique(values)) == {0.0, np.float32(1 / (1 - 0.3))}
    assert abs((values == 0).mean() - 0.3) < 5 * np.sqrt(0.3 * 0.7 / values.size)


def test_conv2d_backward_parameters_skips_col2im(monkeypatch):
    """Observable on the reference path, which calls ``kernels.col2im``; the numba kernel skips it
    by the same flag, inside compiled code."""
    conv = tn.Conv2d(1, 2, 3)

    def refuse(*args):
        raise AssertionError("col2im ran, but no input gradient was asked for")

    with tn.kernels.use("numpy"):
        conv(np.ones((1, 1, 5, 5), np.float32))
        monkeypatch.setattr(tn.kernels, "col2im", refuse)
        conv.backward_parameters(np.ones((1, 2, 3, 3), np.float32))
    assert conv.weight.grad is not None
