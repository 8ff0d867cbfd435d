"""Helpers for comparing tinynet with PyTorch autograd on the same inputs and weights."""
import gzip

import numba
import numpy as np
import pytest
import torch

torch.set_num_threads(1)

# (rtol, atol) per dtype for forward values and gradients. float32's and float16's atol is per
# unit of the largest expected magnitude (see ``tolerance``); float64's is absolute. PyTorch
# computes float16 on the CPU in float32 and rounds once, tinynet rounds every operation.
TOLERANCES = {np.float64: (1e-7, 1e-9), np.float32: (1e-4, 1e-5), np.float16: (4e-3, 1e-3)}


def tolerance(dtype, expected=None, tolerances=TOLERANCES):
    """(rtol, atol) for comparing values of ``dtype`` with ``expected``.

    In float32 (and float16) the atol grows with max(1, largest finite |expected|): an entry that is a sum of
    large terms of both signs (a weight gradient whose other entries reach 28, say) carries their
    rounding, which depends on the summation order (thread count, library version), not on the
    entry's own small size. float64 stays tight and absolute."""
    rtol, atol = tolerances[np.dtype(dtype).type]
    if expected is not None and np.dtype(dtype) in (np.float32, np.float16):
        finite = np.abs(np.asarray(expected, dtype=np.float64))
        atol *= max(1.0, float(np.max(finite[np.isfinite(finite)], initial=0.0)))
    return rtol, atol


def assert_close(actual, expected, dtype, err_msg="", tolerances=TOLERANCES):
    """Assert ``actual`` matches ``expected`` within ``tolerance(dtype, expected, tolerances)``."""
    rtol, atol = tolerance(dtype, expected, tolerances)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=err_msg)


def load_weights(torch_module, tn_module):
    """Copy tinynet's parameters into the PyTorch module by state-dict key."""
    state = {k: torch.from_numpy(np.array(v)) for k, v in tn_module.state_dict().items()}
    torch_module.load_state_dict(state, strict=True)
    return torch_module


def compare_module(tn_module, torch_module, x, rng=None, dtype=np.float64):
    """Run both modules forward and backward on ``x`` with the same random upstream gradient
    and assert outputs, input gradients and parameter gradients agree (by state-dict key)
    and keep ``dtype`` (tinynet never silently changes an array's dtype)."""
    rng = rng or np.random.default_rng(0)
    x = np.asarray(x, dtype=dtype)
    torch_module = torch_module.to(getattr(torch, np.dtype(dtype).name))
    load_weights(torch_module, tn_module)

    y = tn_module(x)
    grad_y = rng.standard_normal(y.shape).astype(dtype)
    grad_x = tn_module.backward(grad_y)

    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    yt = torch_module(xt)
    yt.backward(torch.from_numpy(grad_y))

    for what, array in [("forward output", y), ("input gradient", grad_x)] + [
        (f"gradient of {name}", param.grad) for name, param in tn_module.named_parameters()
    ]:
        assert array.dtype == dtype, f"{what} has dtype {array.dtype}, expected {np.dtype(dtype)}"
    assert_close(y, yt.detach().numpy(), dtype, "forward output")
    assert_close(grad_x, xt.grad.numpy(), dtype, "input gradient")
    torch_params = dict(torch_module.named_parameters())
    for name, param in tn_module.named_parameters():
        assert_close(param.grad, torch_params[name].grad.numpy(), dtype, f"gradient of {name}")
    return y


def train_both(model, optimizer, torch_model, torch_optimizer, batches):
    """Take one cross-entropy training step per ``(x, y)`` batch in each library; returns the two
    lists of losses (Python floats), tinynet's first."""
    import tinynet as tn

    loss_fn, torch_loss_fn = tn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    losses, torch_losses = [], []
    for x, y in batches:
        losses.append(loss_fn(model(x), y))
        model.backward(loss_fn.backward())
        optimizer.step()
        optimizer.zero_grad()

        torch_optimizer.zero_grad()
        loss = torch_loss_fn(torch_model(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        torch_optimizer.step()
        torch_losses.append(loss.item())
    return losses, torch_losses


def too_slow_as_python(what):
    """Skip a test under NUMBA_DISABLE_JIT=1, where every kernel runs as Python: ``what`` it runs
    (a training run) would take too long that way."""
    return pytest.mark.skipif(numba.config.DISABLE_JIT, reason=f"NUMBA_DISABLE_JIT=1: {what} as Python")


def write_idx(path, array, compress=False):
    """Write a uint8 array as an IDX file (big-endian header: 0, 0, type 0x08, ndim, sizes)."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        payload = gzip.compress(payload)
    path.write_bytes(payload)
    return path
