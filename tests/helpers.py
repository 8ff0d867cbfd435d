"""Helpers for comparing tinynet with PyTorch autograd on the same inputs and weights."""
import numpy as np
import torch

torch.set_num_threads(1)

# (rtol, atol) per dtype for forward values and gradients.
TOLERANCES = {np.float64: (1e-7, 1e-9), np.float32: (1e-4, 1e-5)}


def tolerance(dtype):
    return TOLERANCES[np.dtype(dtype).type]


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
    rtol, atol = tolerance(dtype)
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
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=rtol, atol=atol, err_msg="forward output")
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=rtol, atol=atol, err_msg="input gradient")
    torch_params = dict(torch_module.named_parameters())
    for name, param in tn_module.named_parameters():
        np.testing.assert_allclose(
            param.grad, torch_params[name].grad.numpy(), rtol=rtol, atol=atol, err_msg=f"gradient of {name}"
        )
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
