"""Input checks shared by layers, losses, optimizers and loaders: every message names the layer,
what it expected and what it got."""
import numbers

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


def is_int(value):
    """True for a Python or NumPy integer; False for a bool, which would otherwise pass as 0 or 1."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def positive_int(where, name, value):
    """``value`` as a Python int, or ValueError unless it is an integer >= 1 (not a bool)."""
    if not is_int(value) or value <= 0:
        raise ValueError(f"{where}: {name} must be a positive integer, got {value!r}")
    return int(value)


def integer(where, name, value):
    """``value`` as a Python int, or TypeError unless it is an integer (not a bool, not a float)."""
    if not is_int(value):
        raise TypeError(f"{where}: {name} must be an integer, got {value!r}")
    return int(value)


def _check_real(where, name, value):
    """TypeError unless ``value`` is a real number (not a bool, not a string)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: {name} must be a real number, got {value!r}")


def real_number(where, name, value):
    """``value`` as a Python float: TypeError unless it is a real number (not a bool, not a
    string), ValueError if it is NaN or infinite."""
    _check_real(where, name, value)
    if not np.isfinite(value):
        raise ValueError(f"{where}: {name} must be a finite real number, got {value!r}")
    return float(value)


def int_pair(where, name, value, minimum, adjective):
    """Normalise an int or a pair of ints to a (height, width) tuple, checking each is >= ``minimum``.

    ``adjective`` words the error, as PyTorch does: "non-positive stride is not supported".
    """
    if is_int(value):
        pair = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(is_int(v) for v in value):
        pair = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{where}: {name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{where}: {adjective} {name} is not supported, got {name}={value!r}")
    return pair


def float_dtype(where, dtype):
    """``dtype`` as a NumPy floating-point dtype, or TypeError: parameters are never integers or complex."""
    try:
        checked = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{where}: dtype must be a floating-point dtype such as np.float32, got {dtype!r}") from None
    if checked.kind != "f":
        raise TypeError(f"{where}: dtype must be a floating-point dtype such as np.float32, got {checked}")
    return checked


def probability(where, name, value):
    """``value`` as a Python float in [0, 1], or TypeError/ValueError naming it (PyTorch's wording)."""
    _check_real(where, name, value)
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise ValueError(f"{where}: dropout probability has to be between 0 and 1, but got {value}")
    return float(value)


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
