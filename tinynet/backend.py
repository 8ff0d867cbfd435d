"""Array backends: NumPy on the CPU, CuPy on an NVIDIA GPU.

Every piece of tinynet that touches arrays asks ``xp = get_array_module(x)``
once and then calls ``xp.*``, so the same code runs on either device
(the pattern of Chainer's ``backend.py``). CuPy is optional: it is imported
only when a caller asks for the GPU, and the import error is kept and
re-raised with advice the first time that happens.
"""
import sys

import numpy as np

CPU = "cpu"
CUDA = "cuda"
DEVICES = (CPU, CUDA)

_cupy_import_error = None


def _loaded_cupy():
    """Return the cupy module if this process already imported it, else None.

    An array can only be a CuPy array if cupy has been imported, so looking in
    ``sys.modules`` answers ``get_array_module`` without importing anything.
    """
    return sys.modules.get("cupy")


def import_cupy():
    """Import and return cupy, or raise an ImportError that says how to get it."""
    global _cupy_import_error
    if _cupy_import_error is None:
        try:
            import cupy
        except Exception as err:  # ImportError, or a CUDA driver/library error raised on import
            _cupy_import_error = err
        else:
            return cupy
    raise ImportError(
        "tinynet's 'cuda' device needs CuPy and an NVIDIA GPU: install it with "
        "`pip install tinynet[gpu]` (or the cupy-cudaXXx wheel for your CUDA version). "
        f"Importing cupy failed with: {_cupy_import_error!r}"
    ) from _cupy_import_error


def has_cupy():
    """True when CuPy imports and sees at least one GPU."""
    try:
        cupy = import_cupy()
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def has_numba():
    """True when numba imports (it is a core dependency, so normally always)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def is_cupy_array(array):
    cupy = _loaded_cupy()
    return cupy is not None and isinstance(array, cupy.ndarray)


def get_array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``."""
    cupy = _loaded_cupy()
    if cupy is not None:
        for array in arrays:
            if isinstance(array, cupy.ndarray):
                return cupy
    return np


def device_of(array):
    """``'cuda'`` for a CuPy array, ``'cpu'`` for anything else."""
    return CUDA if is_cupy_array(array) else CPU


def check_device(device):
    """Return ``device`` normalised ('cuda:0' -> 'cuda'), or raise ValueError."""
    name = str(device).split(":")[0].lower()
    if name not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    return name


def to_device(array, device):
    """Return ``array`` on ``device`` ('cpu' or 'cuda'); no copy if it is already there."""
    device = check_device(device)
    if device == CUDA:
        cupy = import_cupy()
        return cupy.asarray(array)
    if is_cupy_array(array):
        return array.get()
    return np.asarray(array)


def to_numpy(array):
    """Return a NumPy array for ``array`` (copying it to the host if it is on the GPU)."""
    return to_device(array, CPU)


def check_same_device(where, **arrays):
    """Raise a RuntimeError naming ``where`` if the named arrays live on different devices.

    Example: ``check_same_device("Linear", input=x, weight=w)``.
    """
    devices = {name: device_of(a) for name, a in arrays.items()}
    if len(set(devices.values())) > 1:
        listed = ", ".join(f"{name} on {dev}" for name, dev in devices.items())
        raise RuntimeError(
            f"{where}: expected all arrays on the same device, got {listed}; "
            "move the model with model.to(device) and the data with tinynet.to_device"
        )
