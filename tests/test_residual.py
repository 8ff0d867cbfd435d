"""Residual against PyTorch and finite differences, the composite-module pattern of the README, and a
residual network with BatchNorm trained for 20 steps beside PyTorch (float64, within 1e-9)."""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compare_module, too_slow_as_python, train_both
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet.interop import from_torch, to_torch, torch_residual_class
from tinynet.testing import gradcheck

DTYPES = [np.float64, np.float32]


def residual_case(data, dtype):
    """A Residual of conv-BN-Tanh with an identity or a 1x1-conv shortcut, and its torch twin. The conv
    has no bias: BatchNorm cancels it, so its gradient is 0 plus rounding noise in either library."""
    channels, out_channels = data.draw(st.integers(1, 3), label="channels"), data.draw(st.integers(1, 3), label="out")
    stride = data.draw(st.sampled_from([1, 2]), label="stride")
    identity = channels == out_channels and stride == 1 and data.draw(st.booleans(), label="identity")
    size = data.draw(st.integers(2, 5), label="size")
    n = data.draw(st.integers(2, 3), label="batch")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    t = torch.nn
    block = tn.Sequential(tn.Conv2d(channels, out_channels, 3, stride=stride, padding=1, bias=False, dtype=dtype,
                                    rng=rng),
                          tn.BatchNorm2d(out_channels, dtype=dtype), tn.Tanh())
    twin = t.Sequential(t.Conv2d(channels, out_channels, 3, stride=stride, padding=1, bias=False),
                        t.BatchNorm2d(out_channels), t.Tanh())
    shortcut = twin_shortcut = None
    if not identity:
        shortcut = tn.Conv2d(channels, out_channels, 1, stride=stride, bias=False, dtype=dtype, rng=rng)
        twin_shortcut = t.Conv2d(channels, out_channels, 1, stride=stride, bias=False)
    x = rng.standard_normal((n, channels, size, size)).astype(dtype)
    return tn.Residual(block, shortcut), torch_residual_class()(twin, twin_shortcut), x


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=100)
@given(data=st.data())
def test_residual_matches_torch(dtype, data):
    layer, reference, x = residual_case(data, dtype)
    compare_module(layer, reference, x, dtype=dtype)


@settings(max_examples=10)  # finite differences cost two forward passes per weight and input element
@given(data=st.data())
def test_residual_passes_gradcheck_and_backward_parameters_agrees(data):
    layer, _, x = residual_case(data, np.float64)
    assert gradcheck(layer, x)
    grad_y = np.random.default_rng(0).standard_normal(layer(x).shape)
    layer.backward(grad_y)
    expected = {name: param.grad for name, param in layer.named_parameters()}
    layer.zero_grad()
    layer(x)
    layer.backward_parameters(grad_y)
    for name, param in layer.named_parameters():
        np.testing.assert_array_equal(param.grad, expected[name], err_msg=name)


def test_identity_branches_leave_the_callers_gradient_alone():
    layer = tn.Residual(tn.Dropout(0.5).eval())  # both branches return the gradient they are given
    x = np.ones((2, 3))
    np.testing.assert_array_equal(layer(x), 2 * x)
    grad = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(layer.backward(grad), 2 * grad)
    np.testing.assert_array_equal(grad, np.arange(6.0).reshape(2, 3))


def test_residual_refuses_mismatched_branches_and_non_modules():
    layer = tn.Residual(tn.Linear(3, 2))
    with pytest.raises(ValueError, match=re.escape(
            "Residual: the block's output shape (4, 2) does not match the shortcut's (4, 3) (input shape (4, 3))")):
        layer(np.zeros((4, 3), np.float32))
    with pytest.raises(RuntimeError, match="Residual.backward called before forward"):
        layer.backward(np.zeros((4, 2), np.float32))
    with pytest.raises(TypeError, match=re.escape("Residual: block must be a tinynet Module, got a function")):
        tn.Residual(lambda x: x)
    with pytest.raises(TypeError, match=re.escape("Residual: shortcut must be a tinynet Module or None, got a str")):
        tn.Residual(tn.ReLU(), "identity")


# --- a residual network with BatchNorm, trained beside PyTorch -------------------------------
def small_resnet(dtype):
    def block(cin, cout, stride):
        body = tn.Sequential(tn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False, dtype=dtype),
                             tn.BatchNorm2d(cout, dtype=dtype), tn.ReLU(),
                             tn.Conv2d(cout, cout, 3, padding=1, bias=False, dtype=dtype),
                             tn.BatchNorm2d(cout, dtype=dtype))
        shortcut = None if cin == cout and stride == 1 else tn.Sequential(
            tn.Conv2d(cin, cout, 1, stride=stride, bias=False, dtype=dtype), tn.BatchNorm2d(cout, dtype=dtype))
        return tn.Sequential(tn.Residual(body, shortcut), tn.ReLU())

    return tn.Sequential(tn.Conv2d(1, 4, 3, padding=1, dtype=dtype), tn.BatchNorm2d(4, dtype=dtype), tn.ReLU(),
                         block(4, 4, 1), block(4, 8, 2), tn.AdaptiveAvgPool2d(1), tn.Flatten(),
                         tn.Linear(8, 3, dtype=dtype))


def test_residual_network_with_batch_norm_trains_like_pytorch_for_20_steps():
    tn.manual_seed(0)
    model = small_resnet(np.float64)
    torch_model = to_torch(model)
    assert torch_model[4][0].shortcut is not None and torch_model[3][0].shortcut is None
    rng = np.random.default_rng(0)
    data = [(rng.standard_normal((6, 1, 8, 8)) * 2 + 1, rng.integers(0, 3, 6)) for _ in range(4)]
    batches = data * 5  # four batches seen five times: something to learn
    optimizer = tn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    torch_optimizer = torch.optim.SGD(torch_model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    losses, torch_losses = train_both(model, optimizer, torch_model, torch_optimizer, batches)

    np.testing.assert_allclose(losses, torch_losses, rtol=0, atol=1e-9)
    assert losses[-1] < losses[0] - 0.3, "the network should have learnt something"
    theirs = torch_model.state_dict()
    assert list(model.state_dict()) == list(theirs)
    for key, value in model.state_dict().items():
        assert value.dtype == theirs[key].numpy().dtype, key
        np.testing.assert_allclose(value, theirs[key].numpy(), rtol=0, atol=1e-9, err_msg=key)
    assert int(model[1].num_batches_tracked) == 20
    model.eval()
    torch_model.eval()
    x = batches[0][0]
    with torch.no_grad():
        np.testing.assert_allclose(model(x), torch_model(torch.from_numpy(x)).numpy(), rtol=0, atol=1e-9)
    back = from_torch(torch_model)  # PyTorch's trained weights and running statistics, in tinynet
    assert repr(back) == repr(model) and not back.training
    np.testing.assert_allclose(back(x), model(x), rtol=0, atol=1e-9)


# --- the README's composite module -------------------------------------------------------------
README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_the_readme_s_composite_module_computes_what_residual_does():
    section = README.split("## Modules that call modules", 1)[1].split("\n## ", 1)[0]
    namespace = {}
    exec(compile(re.search(r"```python\n(.*?)```", section, re.S).group(1), "README.md", "exec"), namespace)
    block = namespace["BasicBlock"](3).to(np.float64)
    assert gradcheck(block, np.random.default_rng(1).standard_normal((2, 3, 3, 3)))
    # The same sub-modules (the same weights) composed with Residual, which is tested against PyTorch.
    same = tn.Sequential(tn.Residual(tn.Sequential(block.conv1, block.bn1, block.relu1, block.conv2, block.bn2)),
                         block.relu2)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4))
    grad_y = np.random.default_rng(2).standard_normal(x.shape)
    results = []
    for model in (block, same):
        model.zero_grad()
        y = model(x)
        results.append([y, model.backward(grad_y)] + [param.grad for param in block.parameters()])
    for ours, theirs in zip(*results):
        np.testing.assert_array_equal(ours, theirs)


@too_slow_as_python("two epochs of the ResNet example take several minutes")
def test_the_resnet_example_trains_and_reports_each_epoch(mnist_root):
    script = Path(__file__).resolve().parents[1] / "examples" / "mnist_resnet.py"
    done = subprocess.run([sys.executable, str(script), "--epochs", "2", "--train-samples", "512", "--test-samples", "200",
                           "--batch-size", "64", "--data-root", mnist_root], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "77,754 parameters; 2 epochs of 8 steps" in done.stdout
    losses = [float(loss) for loss in re.findall(r"epoch \d: train loss ([0-9.]+), test accuracy [0-9.]+%, \d+ s", done.stdout)]
    assert len(losses) == 2 and losses[1] < losses[0], done.stdout
