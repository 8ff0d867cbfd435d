"""Convert models between tinynet and PyTorch, weights included.

    torch_model = to_torch(model)          # a torch.nn.Sequential on the CPU
    model = from_torch(torch_model)        # a tinynet Sequential

Layers map one to one, with the same constructor arguments and the same weight
layouts and state-dict keys (``"0.weight"``), so a converted model computes the
same function. Supported: Linear, Conv2d, MaxPool2d, AvgPool2d, ReLU, LeakyReLU,
Sigmoid, Tanh, Softmax, Flatten, Dropout, and Sequential (nested too). Anything
else, or a PyTorch option tinynet does not have (``ceil_mode=True``, a padding
mode other than zeros, ...), raises an error naming the layer and the option.

PyTorch is imported only inside these functions. Weights are copied (never
shared), onto the CPU, keeping their dtype. A model's train/eval mode is carried over.
"""
import numpy as np

from . import nn
from .backend import to_numpy

SUPPORTED = ("Sequential", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "ReLU", "LeakyReLU", "Sigmoid", "Tanh",
             "Softmax", "Flatten", "Dropout")


def _import_torch(where):
    try:
        import torch
    except ImportError as err:
        raise ImportError(f"{where} needs PyTorch, which is not installed: `pip install torch`") from err
    return torch


def _unsupported(where, path, module, reason=None):
    name = type(module).__name__
    at = f" at {path!r}" if path else ""
    if reason is None:
        reason = f"it is not supported; supported layers: {', '.join(SUPPORTED)}"
    return TypeError(f"{where}: cannot convert layer {name}{at}: {reason}")


# --- tinynet -> PyTorch ------------------------------------------------------------

def _copy_into_torch(torch, torch_module, module):
    """Replace the torch module's parameters by copies of the tinynet module's, in their dtype."""
    state = {key: torch.from_numpy(np.array(to_numpy(value), copy=True)) for key, value in module.state_dict().items()}
    dtype = next(iter(state.values())).dtype
    torch_module.to(dtype)
    torch_module.load_state_dict(state, strict=True)
    return torch_module


def _layer_to_torch(torch, module, path):
    t = torch.nn
    kind = type(module)
    if kind is nn.Sequential:
        return t.Sequential(*(_layer_to_torch(torch, child, f"{path}.{name}" if path else name)
                              for name, child in module.named_children()))
    if kind is nn.Linear:
        converted = t.Linear(module.in_features, module.out_features, bias=module.bias is not None)
        return _copy_into_torch(torch, converted, module)
    if kind is nn.Conv2d:
        converted = t.Conv2d(module.in_channels, module.out_channels, module.kernel_size, stride=module.stride,
                             padding=module.padding, dilation=module.dilation, groups=module.groups,
                             bias=module.bias is not None)
        return _copy_into_torch(torch, converted, module)
    simple = {
        nn.MaxPool2d: lambda: t.MaxPool2d(module.kernel_size, module.stride, module.padding),
        nn.AvgPool2d: lambda: t.AvgPool2d(module.kernel_size, module.stride, module.padding),
        nn.ReLU: t.ReLU,
        nn.LeakyReLU: lambda: t.LeakyReLU(module.negative_slope),
        nn.Sigmoid: t.Sigmoid,
        nn.Tanh: t.Tanh,
        nn.Softmax: lambda: t.Softmax(dim=module.dim),
        nn.Flatten: t.Flatten,
        nn.Dropout: lambda: t.Dropout(module.p),
    }
    if kind not in simple:
        raise _unsupported("to_torch", path, module)
    return simple[kind]()


def to_torch(model):
    """A ``torch.nn`` copy of a tinynet layer or ``Sequential``, with the same weights, on the CPU.

    Raises TypeError naming the first layer that has no PyTorch counterpart here.
    """
    torch = _import_torch("to_torch")
    converted = _layer_to_torch(torch, model, "")
    for (_, ours), theirs in zip(model.named_modules(), converted.modules()):
        theirs.train(ours.training)
    return converted


# --- PyTorch -> tinynet ------------------------------------------------------------

def _numpy_dtype(torch_module):
    return torch_module.weight.detach().cpu().numpy().dtype


def _require_defaults(path, module, **defaults):
    """Refuse PyTorch options tinynet's layer does not implement (with their non-default values)."""
    for name, default in defaults.items():
        value = getattr(module, name)
        if value != default:
            raise _unsupported(
                "from_torch", path, module, f"{name}={value!r} is not supported by tinynet (only {name}={default!r})"
            )


def _copy_from_torch(layer, torch_module):
    layer.load_state_dict({key: value.detach().cpu().numpy() for key, value in torch_module.state_dict().items()})
    return layer


def _layer_from_torch(torch, module, path):
    t = torch.nn
    kind = type(module)
    # A throwaway generator for the initial weights, which are overwritten at once:
    # converting a model must not advance tinynet's default random stream.
    rng = np.random.default_rng(0)
    if kind is t.Sequential:
        return nn.Sequential(*(_layer_from_torch(torch, child, f"{path}.{name}" if path else name)
                               for name, child in module.named_children()))
    if kind is t.Linear:
        layer = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None,
                          dtype=_numpy_dtype(module), rng=rng)
        return _copy_from_torch(layer, module)
    if kind is t.Conv2d:
        _require_defaults(path, module, padding_mode="zeros")
        if isinstance(module.padding, str):
            raise _unsupported("from_torch", path, module, f"padding={module.padding!r} is not supported; give it in pixels")
        layer = nn.Conv2d(module.in_channels, module.out_channels, module.kernel_size, stride=module.stride,
                          padding=module.padding, dilation=module.dilation, groups=module.groups,
                          bias=module.bias is not None, dtype=_numpy_dtype(module), rng=rng)
        return _copy_from_torch(layer, module)
    if kind is t.MaxPool2d:
        _require_defaults(path, module, dilation=1, ceil_mode=False, return_indices=False)
        return nn.MaxPool2d(module.kernel_size, module.stride, module.padding)
    if kind is t.AvgPool2d:
        _require_defaults(path, module, ceil_mode=False, count_include_pad=True, divisor_override=None)
        return nn.AvgPool2d(module.kernel_size, module.stride, module.padding)
    if kind is t.Softmax:
        if module.dim is None:
            raise _unsupported("from_torch", path, module, "dim=None is not supported; give the dim explicitly")
        return nn.Softmax(module.dim)
    if kind is t.Flatten:
        _require_defaults(path, module, start_dim=1, end_dim=-1)
        return nn.Flatten()
    simple = {
        t.ReLU: nn.ReLU,
        t.LeakyReLU: lambda: nn.LeakyReLU(module.negative_slope),
        t.Sigmoid: nn.Sigmoid,
        t.Tanh: nn.Tanh,
        t.Dropout: lambda: nn.Dropout(module.p),
    }
    if kind not in simple:
        raise _unsupported("from_torch", path, module)
    return simple[kind]()


def from_torch(module):
    """A tinynet copy of a ``torch.nn`` layer or ``nn.Sequential``, with the same weights (NumPy, same dtype).

    Raises TypeError naming the first layer (or PyTorch option) that tinynet does not support.
    """
    torch = _import_torch("from_torch")
    if not isinstance(module, torch.nn.Module):
        kind = type(module)
        raise TypeError(f"from_torch: expected a torch.nn.Module, got a {kind.__module__}.{kind.__qualname__}")
    converted = _layer_from_torch(torch, module, "")
    for theirs, (_, ours) in zip(module.modules(), converted.named_modules()):
        ours.training = theirs.training
    return converted


__all__ = ["to_torch", "from_torch", "SUPPORTED"]
