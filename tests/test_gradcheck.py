"""tinynet.testing.gradcheck: passes on correct layers, fails (naming the gradient) on wrong ones."""
import re
import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet.testing import gradcheck, gradient_report


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


class Square(tn.Module):
    """A user-defined layer, y = x**2, to show gradcheck on code outside tinynet."""

    def forward(self, x):
        self._cache = x
        return x * x

    def backward(self, grad_out):
        return 2 * self._pop_cache() * grad_out


class ScaledGradLinear(tn.Linear):
    """Linear whose backward multiplies one gradient ("input", "weight" or "bias") by ``factor``: a planted bug."""

    def __init__(self, *args, wrong="weight", factor=1.01, **kwargs):
        super().__init__(*args, **kwargs)
        self.wrong, self.factor = wrong, factor

    def backward(self, grad_out):
        grad_x = super().backward(grad_out)
        if self.wrong == "input":
            return grad_x * self.factor
        getattr(self, self.wrong).grad *= self.factor
        return grad_x


class NoWeightGradLinear(tn.Linear):
    """Linear that forgets to fill the weight's gradient."""

    def backward(self, grad_out):
        grad_x, _, grad_b = tn.functional.linear.linear_backward(grad_out, self._pop_cache())
        self.bias.accumulate_grad(grad_b)
        return grad_x


def test_passes_on_correct_layers_including_user_layers_and_nested_models():
    assert gradcheck(Square(), randn(3, 4))
    model = tn.Sequential(tn.Linear(5, 4), tn.Tanh(), tn.Sequential(tn.Linear(4, 3), tn.Sigmoid()), tn.Softmax())
    assert gradcheck(model, randn(2, 5))


@pytest.mark.parametrize("max_elements", [512, 0], ids=["elementwise", "random directions"])
@pytest.mark.parametrize("wrong", ["input", "weight", "bias"])
def test_fails_naming_the_wrong_gradient(wrong, max_elements):
    layer = ScaledGradLinear(4, 3, wrong=wrong)
    assert gradcheck(tn.Linear(4, 3), randn(2, 4), max_elements=max_elements)
    with pytest.raises(AssertionError, match=rf"^gradcheck: the gradient of {wrong} does not match finite differences"):
        gradcheck(layer, randn(2, 4), max_elements=max_elements)


def test_failure_message_names_the_parameter_path_and_the_error():
    model = tn.Sequential(tn.Linear(3, 3), tn.ReLU(), ScaledGradLinear(3, 2, wrong="bias", factor=2.0))
    with pytest.raises(AssertionError, match=r"gradient of 2\.bias does not match .* in 2 of 2 elements; max error "):
        gradcheck(model, randn(4, 3))


@settings(max_examples=100)
@given(factor=st.one_of(st.floats(0.0, 0.99), st.floats(1.01, 100.0)), wrong=st.sampled_from(["input", "weight"]),
       seed=st.integers(0, 2**32 - 1))
def test_detects_any_gradient_off_by_more_than_one_percent(factor, wrong, seed):
    layer = ScaledGradLinear(3, 2, wrong=wrong, factor=factor)
    with pytest.raises(AssertionError, match=f"gradient of {wrong} does not match"):
        gradcheck(layer, randn(2, 3, seed=seed))


def test_large_tensors_are_checked_along_random_directions():
    x = randn(4, 60)  # 240 input and 1200 weight elements, over max_elements=100
    assert gradcheck(tn.Linear(60, 20), x, max_elements=100)
    with pytest.raises(AssertionError, match="gradient of weight does not match finite differences along a random direction"):
        gradcheck(ScaledGradLinear(60, 20), x, max_elements=100)


def test_missing_parameter_gradient_is_reported():
    with pytest.raises(AssertionError, match=re.escape("gradcheck: the gradient of weight was not computed by backward")):
        gradcheck(NoWeightGradLinear(3, 2), randn(2, 3))


def test_stochastic_layers_must_be_checked_in_eval_mode():
    model = tn.Sequential(tn.Linear(4, 4), tn.Dropout(0.5))
    with pytest.raises(ValueError, match=re.escape("stochastic layers such as Dropout must be checked in eval mode")):
        gradcheck(model, randn(3, 4))
    assert gradcheck(model.eval(), randn(3, 4))


def test_leaves_the_callers_module_and_input_untouched():
    layer = tn.Linear(3, 2)  # float32
    weight, x = layer.weight.data.copy(), randn(2, 3).astype(np.float32)
    x_before = x.copy()
    gradcheck(layer, x)
    assert layer.weight.dtype == np.float32 and layer.weight.grad is None
    np.testing.assert_array_equal(layer.weight.data, weight)
    np.testing.assert_array_equal(x, x_before)


# --- gradient_report: analytic vs finite differences vs PyTorch ---------------------------------

def planted(layer, backward):
    """``layer`` (a plain tinynet layer, so that it converts to PyTorch) with ``backward`` as its
    backward: a planted bug."""
    layer.backward = types.MethodType(backward, layer)
    return layer


def sign_flipped_input_gradient(self, grad_out):
    return -tn.Linear.backward(self, grad_out)


def transposed_weight_gradient(self, grad_out):
    grad_x = tn.Linear.backward(self, grad_out)
    self.weight.grad = np.ascontiguousarray(self.weight.grad.T)
    return grad_x


def zero_bias_gradient(self, grad_out):
    grad_x = tn.Linear.backward(self, grad_out)
    self.bias.grad = np.zeros_like(self.bias.grad)
    return grad_x


def test_report_agrees_three_ways_on_correct_layers():
    model = tn.Sequential(tn.Conv2d(2, 3, 3, padding=1, stride=2), tn.Tanh(), tn.Flatten(), tn.Linear(12, 4))
    report = gradient_report(model, randn(2, 2, 4, 4))
    assert report.passed and report.failed() == [] and report.torch_note is None
    assert list(report.comparisons) == ["input", "0.weight", "0.bias", "3.weight", "3.bias"]
    for c in report.comparisons.values():
        np.testing.assert_allclose(c.analytic, c.torch, rtol=1e-10, atol=1e-12, err_msg=c.name)
        np.testing.assert_allclose(c.numerical, c.torch, rtol=1e-6, atol=1e-8, err_msg=c.name)
        assert len(c.indices) == int(np.prod(c.shape))
    assert gradient_report(model, randn(2, 2, 4, 4), compare_torch=False).torch_note == "compare_torch=False"


def test_report_names_a_sign_error_in_the_input_gradient():
    report = gradient_report(tn.Sequential(tn.Tanh(), planted(tn.Linear(4, 3), sign_flipped_input_gradient)),
                             randn(2, 4))
    assert report.failed() == ["input"] and report.worst.name == "input"
    at = report.at_worst()
    assert at["analytic"] == pytest.approx(-at["numerical"], rel=1e-6)
    assert at["torch"] == pytest.approx(at["numerical"], rel=1e-6)
    assert at["relative_error_numerical"] == pytest.approx(2.0) and at["relative_error_torch"] == pytest.approx(2.0)
    assert re.search(r"^input\s+\(2, 4\)\s+8\s+\(\d, \d\)\s+\S+\s+\S+\s+\S+\s+2\s+2\s+FAIL$", str(report), re.M)
    assert "worst: input at index" in str(report)


def test_report_names_an_off_diagonal_index_of_a_transposed_weight_gradient():
    layer = planted(tn.Linear(4, 4), transposed_weight_gradient)
    report = gradient_report(layer, randn(3, 4, seed=1))  # seed 0 would make x the projection, and x.T @ x symmetric
    assert report.failed() == ["weight"]
    c = report.worst
    i, j = report.at_worst()["index"]
    assert i != j
    # what backward gave there is the true gradient of the mirrored entry
    true = dict(zip(c.indices, c.numerical))
    assert report.at_worst()["analytic"] == pytest.approx(true[j, i], rel=1e-6)
    assert report.at_worst()["torch"] == pytest.approx(true[i, j], rel=1e-6)


def test_report_names_a_missing_bias_gradient():
    report = gradient_report(planted(tn.Linear(3, 2), zero_bias_gradient), randn(4, 3))
    assert report.failed() == ["bias"]
    at = report.at_worst()
    assert at["analytic"] == 0 and abs(at["numerical"]) > 1e-3 and at["relative_error_numerical"] == 1.0
    report = gradient_report(NoWeightGradLinear(3, 2), randn(2, 3))
    assert report.failed() == ["weight"] and report.comparisons["weight"].analytic is None
    assert re.search(r"^weight\s+\(2, 3\)\s+6\s+not computed by backward\s+FAIL$", str(report), re.M)
    assert "PyTorch not compared: to_torch: cannot convert layer NoWeightGradLinear" in str(report)


def test_report_samples_large_tensors_and_still_names_the_wrong_entry():
    layer = planted(tn.Linear(30, 30), transposed_weight_gradient)  # 900 weights, 100 checked
    report = gradient_report(layer, randn(4, 30, seed=1), max_elements=100)
    c = report.comparisons["weight"]
    assert len(c.indices) == 100 == len(set(c.indices))
    i, j = report.at_worst()["index"]
    assert report.failed() == ["weight"] and i != j


def test_gradcheck_failure_message_ends_with_the_report():
    with pytest.raises(AssertionError) as caught:
        gradcheck(planted(tn.Linear(4, 4), transposed_weight_gradient), randn(3, 4, seed=1))
    message = str(caught.value)
    assert message.startswith("gradcheck: the gradient of weight does not match finite differences in ")
    assert re.search(r"^weight\s+\(4, 4\)\s+16\s+\(\d, \d\)\s+.*FAIL$", message, re.M)
    assert "PyTorch not compared: gradcheck compares finite differences only" in message
