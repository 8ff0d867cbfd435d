"""Input checks shared by layers and losses: every message names the layer,
what it expected and what it got."""


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
