"""Convert models between tinynet and PyTorch, weights included.

    torch_model = to_torch(model)          # a torch.nn.Sequential on the CPU
    model = from_torch(torch_model)        # a tinynet Sequential

Layers map one to one, with the same constructor arguments and the same weight
layouts and state-dict keys (``"0.weight"``), so a converted model computes the
same function. Supported: Linear, Conv2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d,
BatchNorm1d, BatchNorm2d, LayerNorm, ReLU, LeakyReLU, Sigmoid, Tanh, Softmax, LogSoftmax,
GELU, SiLU, ELU, Softplus, Hardtanh, Identity, Flatten, Dropout, Dropout2d, Sequential (nested too) and Residual, which maps to the small torch module
``torch_residual_class()`` defines. Buffers (BatchNorm's running statistics) are copied
like the weights. Anything
else, or a PyTorch option tinynet does not have (``ceil_mode=True``, a padding
mode other than zeros, ...), raises an error naming the layer and the option.

PyTorch is imported only inside these functions. Weights are copied (never
shared), onto the CPU, keeping their dtype. A model's train/eval mode is carried over.
"""
import numpy as np

from . import nn
from .backend import to_numpy

SUPPORTED = ("Sequential", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "ReLU", "LeakyReLU", "Sigmoid", "Tanh",
             "Softmax", "Flatten", "Dropout", "AdaptiveAvgPool2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm",
             "Residual", "GELU", "SiLU", "ELU", "Softplus", "Hardtanh", "LogSoftmax", "Identity", "Dropout2d")

_torch_residual = None


def _import_torch(where):
    try:
        import torch
    except ImportError as err:
        raise ImportError(f"{where} needs PyTorch, which is not installed: `pip install torch`") from err
    return torch


def _child(path, name):
    """The dotted path of a sub-module, for error messages."""
    return f"{path}.{name}" if path else name


def _unsupported(where, path, module, reason=None):
    name = type(module).__name__
    at = f" at {path!r}" if path else ""
    if reason is None:
        reason = f"it is not supported; supported layers: {', '.join(SUPPORTED)}"
    return TypeError(f"{where}: cannot convert layer {name}{at}: {reason}")


def torch_residual_class():
    """The ``torch.nn.Module`` class a tinynet ``Residual`` converts to: ``block(x) + shortcut(x)``,
    the shortcut the identity when None, with the same sub-module names (state-dict keys)."""
    global _torch_residual
    if _torch_residual is None:
        torch = _import_torch("torch_residual_class")

        class Residual(torch.nn.Module):
            def __init__(self, block, shortcut=None):
                super().__init__()
                self.block = block
                self.shortcut = shortcut

            def forward(self, x):
                return self.block(x) + (x if self.shortcut is None else self.shortcut(x))

        _torch_residual = Residual
    return _torch_residual


# Layers that convert both ways to the class of the same name in the other library, built from the
# same constructor arguments, read off the layer: name -> the arguments' names (both libraries'
# spelling). ``from_torch`` checks PyTorch options tinynet lacks before it comes to this table.
_SAME_ARGUMENTS = {
    "MaxPool2d": ("kernel_size", "stride", "padding"), "AvgPool2d": ("kernel_size", "stride", "padding"),
    "AdaptiveAvgPool2d": ("output_size",), "Softmax": ("dim",), "LogSoftmax": ("dim",), "Flatten": (),
    "ReLU": (), "LeakyReLU": ("negative_slope",), "Sigmoid": (), "Tanh": (), "Dropout": ("p",),
    "Dropout2d": ("p",), "GELU": ("approximate",), "SiLU": (), "ELU": ("alpha",),
    "Softplus": ("beta", "threshold"), "Hardtanh": ("min_val", "max_val"), "Identity": (),
}


def _same_arguments_layer(where, path, module, source, target):
    """``module`` (a layer of library ``source``, tinynet.nn or torch.nn) as the layer of the same
    name in ``target``, with the same arguments; TypeError unless ``_SAME_ARGUMENTS`` lists it."""
    name = type(module).__name__
    if name not in _SAME_ARGUMENTS or getattr(source, name, None) is not type(module):
        raise _unsupported(where, path, module)
    return getattr(target, name)(**{argument: getattr(module, argument) for argument in _SAME_ARGUMENTS[name]})


# --- tinynet -> PyTorch ------------------------------------------------------------

def _copy_into_torch(torch, torch_module, module):
    """Replace the torch module's parameters and buffers by copies of the tinynet module's, in their dtype."""
    state = {key: torch.from_numpy(np.array(to_numpy(value), copy=True)) for key, value in module.state_dict().items()}
    floats = [value.dtype for value in state.values() if value.is_floating_point()]
    if floats:
        torch_module.to(floats[0])  # casts floating-point parameters and buffers only, as tinynet's to() does
    torch_module.load_state_dict(state, strict=True)
    return torch_module


def _layer_to_torch(torch, module, path):
    t = torch.nn
    kind = type(module)
    if kind is nn.Sequential:
        return t.Sequential(*(_layer_to_torch(torch, child, f"{path}.{name}" if path else name)
                              for name, child in module.named_children()))
    if kind is nn.Residual:
        block, shortcut = ((None if branch is None else _layer_to_torch(torch, branch, _child(path, name)))
                           for name, branch in (("block", module.block), ("shortcut", module.shortcut)))
        return torch_residual_class()(block, shortcut)
    if kind in (nn.BatchNorm1d, nn.BatchNorm2d):
        converted = getattr(t, kind.__name__)(module.num_features, module.eps, module.momentum, module.affine,
                                              module.track_running_stats)
        return _copy_into_torch(torch, converted, module)
    if kind is nn.LayerNorm:
        converted = t.LayerNorm(module.normalized_shape, module.eps, module.elementwise_affine,
                                bias=module.bias is not None)
        return _copy_into_torch(torch, converted, module)
    if kind is nn.Linear:
        converted = t.Linear(module.in_features, module.out_features, bias=module.bias is not None)
        return _copy_into_torch(torch, converted, module)
    if kind is nn.Conv2d:
        converted = t.Conv2d(module.in_channels, module.out_channels, module.kernel_size, stride=module.stride,
                             padding=module.padding, dilation=module.dilation, groups=module.groups,
                             bias=module.bias is not None)
        return _copy_into_torch(torch, converted, module)
    return _same_arguments_layer("to_torch", path, module, nn, t)


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
    """The NumPy dtype of the module's first floating-point parameter or buffer (float32 if none)."""
    for value in torch_module.state_dict().values():
        if value.is_floating_point():
            return value.detach().cpu().numpy().dtype
    return np.dtype(np.float32)


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
    if _torch_residual is not None and kind is _torch_residual:
        block, shortcut = ((None if branch is None else _layer_from_torch(torch, branch, _child(path, name)))
                           for name, branch in (("block", module.block), ("shortcut", module.shortcut)))
        return nn.Residual(block, shortcut)
    if kind in (t.BatchNorm1d, t.BatchNorm2d):
        layer = getattr(nn, kind.__name__)(module.num_features, module.eps, module.momentum, module.affine,
                                           module.track_running_stats, dtype=_numpy_dtype(module))
        return _copy_from_torch(layer, module)
    if kind is t.LayerNorm:
        layer = nn.LayerNorm(module.normalized_shape, module.eps, module.elementwise_affine,
                             bias=module.bias is not None, dtype=_numpy_dtype(module))
        return _copy_from_torch(layer, module)
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
    if kind is t.AvgPool2d:
        _require_defaults(path, module, ceil_mode=False, count_include_pad=True, divisor_override=None)
    if kind in (t.Softmax, t.LogSoftmax) and module.dim is None:
        raise _unsupported("from_torch", path, module, "dim=None is not supported; give the dim explicitly")
    if kind is t.Flatten:
        _require_defaults(path, module, start_dim=1, end_dim=-1)
    if kind is t.AdaptiveAvgPool2d and (
            module.output_size is None or (isinstance(module.output_size, tuple) and None in module.output_size)):
        raise _unsupported("from_torch", path, module, "an output size of None is not supported; give it in pixels")
    return _same_arguments_layer("from_torch", path, module, t, nn)


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


__all__ = ["to_torch", "from_torch", "torch_residual_class", "SUPPORTED"]
