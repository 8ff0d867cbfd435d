"""Keep freed array memory in the process, so the next step does not fault it in again.

Why: glibc's malloc hands a freed block larger than ``M_MMAP_THRESHOLD`` back to
the kernel (``munmap``), and trims free memory at the top of the heap beyond
``M_TRIM_THRESHOLD``. Both start small (128 KiB) and adapt only partly, so the
next allocation of an activation-sized array maps fresh pages, and the kernel
zeroes every 4 KiB page on first touch. A training step allocates tens of MB
of such arrays. Measured on the MNIST CNN (batch 60, 2 cores): about 2,200 page
faults per step by default, none with the thresholds below (the time this saved is in
``benchmarks/HISTORY.md``). PyTorch allocates through malloc too, so the CPU benchmarks time it
both as installed and with these thresholds.

What: ``tune_malloc()`` raises the mmap threshold to glibc's maximum (32 MiB) and
the trim threshold to 128 MiB. Memory freed by one step is then reused by the
next. Peak memory is unchanged; a process may hold up to 128 MiB of freed memory
for reuse instead of returning it at once.

When: importing tinynet changes nothing process-wide. The first CPU kernel call
(``tinynet.kernels`` runs ``tune_once()`` there) applies the thresholds, once per process;
call ``tune_malloc()`` yourself to apply them earlier. Neither does anything when the C
library is not glibc, when ``TINYNET_TUNE_MALLOC=0`` (the off switch), or when the user
already chose these settings (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or
``GLIBC_TUNABLES`` in the environment).
"""
import ctypes
import ctypes.util
import os

MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 128 * 1024 * 1024
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers from <malloc.h>
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")

#: Whether ``tune_once`` has run in this process (whatever it decided).
attempted = False


def tune_malloc():
    """Apply the thresholds above; return True if they were applied."""
    if os.environ.get("TINYNET_TUNE_MALLOC", "1") == "0" or any(name in os.environ for name in _USER_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # only glibc has mallopt with these meanings
    except (OSError, AttributeError):
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def tune_once():
    """``tune_malloc()`` the first time it is called in this process; later calls do nothing."""
    global attempted
    if not attempted:
        attempted = True
        tune_malloc()
