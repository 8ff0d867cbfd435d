"""Input checks shared by layers, losses, optimizers and loaders: every message names the layer,
what it expected and what it got."""
import numpy as np

from .backend import device_of, get_array_module, is_cupy_array, to_device


def check_ndim(where, x, ndim, layout):
    """Raise ValueError unless ``x.ndim == ndim``; ``layout`` names the axes, e.g. ``"(N, C, H, W)"``."""
    if getattr(x, "ndim", None) != ndim:
        got = getattr(x, "shape", type(x).__name__)
        raise ValueError(f"{where}: expected a {ndim}-D input of shape {layout}, got shape {got}")


def check_float(where, x, dtype=None):
    """Raise TypeError unless ``x`` is a floating-point array (of ``dtype``, when given)."""
    if not hasattr(x, "dtype") or x.dtype.kind != "f":
        got = getattr(x, "dtype", type(x).__name__)
        raise TypeError(f"{where}: expected a floating-point array, got {got}")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(
            f"{where}: input dtype {x.dtype} does not match the parameters' dtype {dtype}; "
            f"convert the input with x.astype({str(dtype)!r}) or the model with model.to(x.dtype)"
        )


def check_size(where, x, axis, expected, what):
    """Raise ValueError unless ``x.shape[axis] == expected``; ``what`` names the axis."""
    if x.shape[axis] != expected:
        raise ValueError(f"{where}: expected input with {expected} {what}, got {x.shape[axis]} (input shape {x.shape})")


def loaded_array(where, key, value, like):
    """``value`` (an array, a PyTorch CPU tensor, a nested list) as a new array of ``like``'s
    shape, dtype and device, for copying into a state-dict entry named ``key``.

    Raises ValueError naming ``key`` and both shapes when the shapes differ, and TypeError naming
    ``key`` and both dtypes when the values are not real numbers (strings, objects, complex): a
    float entry is never filled from them. Nothing is written, so a caller can check every entry
    before it changes any."""
    if not is_cupy_array(value):
        try:
            value = np.asarray(value)
        except (TypeError, ValueError) as err:  # a ragged list, an unconvertible object
            raise TypeError(f"{where}: {key} cannot be read as an array ({err})") from None
    shape = tuple(value.shape)
    if shape != tuple(like.shape):
        raise ValueError(
            f"{where}: size mismatch for {key}: copying an array of shape {shape} into one of shape {tuple(like.shape)}"
        )
    if value.dtype.kind not in "biuf":
        raise TypeError(f"{where}: {key} has dtype {value.dtype}, which cannot be converted to {like.dtype}")
    return get_array_module(like).array(to_device(value, device_of(like)), dtype=like.dtype, copy=True)
