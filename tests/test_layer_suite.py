"""One suite over every layer of the registry (``layer_registry.LAYER_CASES``) x CPU kernel
implementation x dtype: forward, input gradient and every parameter gradient against PyTorch,
finite differences, wrong gradients refused, the state dict's round trip, and the repr."""
import copy
import os
import re
import tempfile

import numpy as np
import pytest
from helpers import compare_module
from hypothesis import given, settings
from hypothesis import strategies as st
from layer_registry import BACKENDS, DTYPES, LAYER_CASES

import tinynet as tn
from tinynet import kernels
from tinynet.testing import gradcheck

every_layer = pytest.mark.parametrize("case", LAYER_CASES)
every_backend = pytest.mark.parametrize("backend", BACKENDS)
every_dtype = pytest.mark.parametrize("dtype", DTYPES)


@every_dtype
@every_backend
@every_layer
@settings(max_examples=30)
@given(data=st.data())
def test_layer_matches_pytorch(case, backend, dtype, data):
    layer, twin, x = LAYER_CASES[case](data, dtype)
    if data.draw(st.booleans(), label="zeros at the kink"):
        # PyTorch takes the slope of the negative side at exactly 0.0 and -0.0 (x > 0 is false).
        x.flat[::3] = 0.0
        x.flat[1::3] = -0.0
    with kernels.use(backend):
        compare_module(layer, twin, x, dtype=dtype)


@every_backend
@every_layer
@settings(max_examples=20)
@given(data=st.data())
def test_layer_passes_gradcheck(case, backend, data):
    # Layers built in float32 too: gradcheck must do its own float64 copy.
    layer, _, x = LAYER_CASES[case](data, data.draw(st.sampled_from(DTYPES), label="dtype"))
    with kernels.use(backend):
        assert gradcheck(layer, x)


@every_dtype
@every_backend
@every_layer
@settings(max_examples=5)
@given(data=st.data())
def test_layer_refuses_a_gradient_of_another_shape_or_dtype_and_changes_nothing(case, backend, dtype, data):
    """A (B+1, ...) or (..., 1) gradient would broadcast or reshape silently, one of another dtype
    would be cast: each is refused by name, and the layer keeps what forward saved, so the right
    gradient afterwards gives what it gives on a fresh forward."""
    layer, _, x = LAYER_CASES[case](data, dtype)
    twin = copy.deepcopy(layer)
    name = type(layer).__name__
    other = np.float32 if dtype == np.float64 else np.float64
    with kernels.use(backend):
        y = layer(x)
        grad_y = np.random.default_rng(0).standard_normal(y.shape).astype(dtype)
        for wrong in (np.ones((y.shape[0] + 1,) + y.shape[1:], dtype), np.ones(y.shape + (1,), dtype)):
            message = f"{name}.backward: expected a gradient of the output's shape {y.shape}, got {wrong.shape}"
            with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
                layer.backward(wrong)
        message = f"{name}.backward: expected a gradient of the output's dtype {np.dtype(dtype)}, got {np.dtype(other)}"
        with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
            layer.backward(grad_y.astype(other))
        assert all(param.grad is None for param in layer.parameters())
        twin(x)
        np.testing.assert_array_equal(layer.backward(grad_y), twin.backward(grad_y))
    for param, twin_param in zip(layer.parameters(), twin.parameters()):
        np.testing.assert_array_equal(param.grad, twin_param.grad)


@every_dtype
@every_layer
@settings(max_examples=5)
@given(data=st.data())
def test_state_dict_round_trip_and_torch_keys(case, dtype, data):
    """The state dict has PyTorch's keys and shapes; saved, loaded into a changed copy of the layer,
    it restores every parameter bit for bit in its dtype."""
    layer, twin, x = LAYER_CASES[case](data, dtype)
    state = layer.state_dict()
    assert {key: tuple(value.shape) for key, value in state.items()} == {
        key: tuple(value.shape) for key, value in twin.state_dict().items()}
    changed = copy.deepcopy(layer)
    for param in changed.parameters():
        param.data = param.data * 2 + 1
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "layer.npz")
        tn.save(state, path)
        changed.load_state_dict(tn.load(path))
    for (key, param), (_, expected) in zip(changed.named_parameters(), layer.named_parameters()):
        assert param.data.dtype == dtype, key
        np.testing.assert_array_equal(param.data, expected.data, err_msg=key)
    np.testing.assert_array_equal(changed.eval()(x), copy.deepcopy(layer).eval()(x))


@every_layer
@settings(max_examples=5)
@given(data=st.data())
def test_repr_is_one_line_with_pytorch_s_argument_names(case, data):
    layer, twin, _ = LAYER_CASES[case](data, np.float32)
    text = repr(layer)
    assert "\n" not in text and text.startswith(f"{type(layer).__name__}(") and text.endswith(")")
    assert set(re.findall(r"(\w+)=", text)) <= set(re.findall(r"(\w+)=", repr(twin)))
