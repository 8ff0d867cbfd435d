"""The default random generator behind initialisation, dropout and shuffling.

``manual_seed(s)`` replaces it, so a script that seeds once at the top gets
the same weights, the same dropout masks and the same batches on every run.
Everything that draws random numbers also accepts an explicit
``numpy.random.Generator`` for callers who want independent streams.
"""
import numpy as np

_generator = np.random.default_rng()
_seed = None


def manual_seed(seed):
    """Seed tinynet's default generator (and CuPy's, for GPU dropout masks)."""
    global _generator, _seed
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"manual_seed expects a non-negative integer, got {seed!r}")
    _seed = int(seed)
    _generator = np.random.default_rng(_seed)
    _cuda_generators.clear()
    return _generator


def default_generator():
    """Return the ``numpy.random.Generator`` used when no ``rng`` is passed."""
    return _generator


_cuda_generators = {}


def cuda_generator():
    """Return the CuPy generator used for GPU dropout masks, seeded from ``manual_seed``."""
    from .backend import import_cupy

    cupy = import_cupy()
    device = cupy.cuda.Device().id
    if device not in _cuda_generators:
        seed = _seed if _seed is not None else int(_generator.integers(2**63))
        _cuda_generators[device] = cupy.random.default_rng(seed)
    return _cuda_generators[device]
