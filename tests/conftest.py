"""Shared test set-up: hypothesis profiles, the MNIST location, the GPU marker."""
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# JIT compilation makes first examples slow: no deadline. "ci" is the default profile.
settings.register_profile(
    "ci", deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.register_profile("dev", parent=settings.get_profile("ci"), max_examples=20)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

_SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def mnist_root():
    """The MNIST root the loader reads: $TINYNET_DATA, else ../shared/data beside the checkout."""
    root = Path(os.environ.get("TINYNET_DATA", _SHARED_DATA))
    if not (root / "MNIST" / "raw").is_dir():
        pytest.skip(f"MNIST is not under {root} (set TINYNET_DATA to a folder holding MNIST/raw)")
    return str(root)


def pytest_collection_modifyitems(config, items):
    from tinynet.backend import has_cupy

    if has_cupy():
        return
    skip_gpu = pytest.mark.skip(reason="needs CuPy and an NVIDIA GPU; none found on this machine")
    for item in items:
        if item.get_closest_marker("gpu") is not None:  # not item.keywords: a parameter id "gpu" is a keyword too
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session", autouse=True)
def numba_kernels_compiled():
    """Compile the numba kernels before any test: the tests compare them with the reference, which
    would otherwise stand in for them while they compile in the background."""
    from tinynet import kernels

    kernels.warm_up()
