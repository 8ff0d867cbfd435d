"""Compiling the numba kernels: keyed to their sources, ahead of time, or in the background.

numba compiles a kernel the first time it is called with new argument types, and keeps the
machine code in an on-disk cache (``cache=True``), so only the first process pays. Three things
here make that first process and that cache behave:

* ``jit(**options)``: ``numba.njit`` with the cache keyed to every source the kernels depend
  on. numba checks only the file of the function it compiles; a kernel that calls ``blas.gemm``
  or inlines ``threads.rows`` kept its old machine code after either was edited. Here every
  kernel's cache entry also carries a hash of all the numba kernel sources (``SOURCES``: blas.py,
  threads.py and every ``*_numba.py``, which hold the compile options too) and of numba's
  version and code-generation settings, so any edit to them makes numba compile again.
* ``ready(dtype)``: asked by the dispatcher (``tinynet.kernels._implementation``) before each
  numba call. When numba's cache holds the kernels for that dtype, it answers True at once (each
  kernel is loaded at its first call, as numba does). Otherwise it starts a Python process that
  compiles them into numba's cache, and prints one line, "tinynet: compiling CPU kernels ...
  in the background, first run only"; until that process ends, the NumPy reference kernels
  serve (their results agree to rounding, see ``tinynet.kernels``), then numba's kernels load
  from the cache. So a first training step is never blocked by compilation, and a progress
  bar's time estimate never counts it; but such a first run is not repeatable bit for bit (how
  many steps the reference takes depends on the machine): call ``warm_up()`` first for that.
  A process, not a thread, so that numba's compiler (Python code) holds no GIL of the training's;
  while it runs, NumPy's BLAS, which the reference kernels' products use, runs on one thread
  fewer (threadpoolctl), leaving the compiler a core. A process that ends before the compilation
  waits for it, so that the next one finds the kernels in the cache.
* ``warm_up()``: compiles (or loads) every kernel for float32 and float64, side by side (float64
  in a process of its own), and returns when they are ready: for container images, CI, benchmarks
  and tests.
  ``python -m tinynet warm-up`` runs it.

With ``NUMBA_DISABLE_JIT=1`` nothing is compiled: ``jit`` returns the plain Python function,
every kernel runs as Python (``blas.gemm`` multiplies with NumPy), and ``ready`` is always True.
"""
import atexit
import hashlib
import importlib
import os
import sys
import threading
from subprocess import DEVNULL, Popen

import numpy as np

#: The families ``warm_up`` compiles, in the order a training step first calls them.
FAMILIES = ("conv", "norm", "activation", "pool", "matmul", "im2col", "optim")
#: The kernel sources every compiled kernel's cache entry depends on (besides its own file).
SOURCES = ("blas.py", "threads.py") + tuple(f"{family}_numba.py" for family in FAMILIES)


def _jit_disabled():
    from numba.core import config

    return bool(config.DISABLE_JIT)


# --- the cache keyed to the sources ----------------------------------------------------------
def sources_stamp(folder=os.path.dirname(__file__)):
    """A hex digest of the ``SOURCES`` in ``folder``, numba's and llvmlite's versions and numba's
    code-generation settings: what a cached kernel is valid for."""
    import llvmlite
    import numba
    from numba.core import config

    settings = (numba.__version__, llvmlite.__version__, str(config.OPT), config.BOUNDSCHECK, config.LOOP_VECTORIZE,
                config.SLP_VECTORIZE, config.DEBUGINFO_DEFAULT)
    digest = hashlib.sha256(repr(settings).encode())
    for name in SOURCES:
        with open(os.path.join(folder, name), "rb") as source:
            digest.update(hashlib.sha256(source.read()).digest())
    return digest.hexdigest()


_cache_class = None  # built on first use: numba is imported only by the kernels that need it
_cache_folder = None  # where numba keeps tinynet's compiled kernels
_stamp = None  # sources_stamp() of this package's kernels


def _kernel_cache_class():
    """numba's ``FunctionCache`` with each entry's source stamp extended by ``sources_stamp()``."""
    global _cache_class, _stamp
    if _cache_class is None:
        from numba.core.caching import CompileResultCacheImpl, FunctionCache

        _stamp = stamp = sources_stamp()

        class KeyedLocator:
            """numba's own choice of cache location, with a source stamp that covers ``SOURCES``."""

            def __init__(self, locator):
                self._locator = locator

            def __getattr__(self, name):
                return getattr(self._locator, name)

            def get_source_stamp(self):
                return self._locator.get_source_stamp(), stamp

        class KeyedCacheImpl(CompileResultCacheImpl):
            def __init__(self, py_func):
                super().__init__(py_func)
                self._locator = KeyedLocator(self._locator)

        class KeyedFunctionCache(FunctionCache):
            _impl_class = KeyedCacheImpl

        _cache_class = KeyedFunctionCache
    return _cache_class


def jit(**options):
    """A decorator: ``numba.njit(**options)`` with the on-disk cache keyed to ``SOURCES`` (see
    above). Under ``NUMBA_DISABLE_JIT=1`` it returns the function unchanged."""
    from numba import njit

    def compile_later(function):
        global _cache_folder
        dispatcher = njit(**options)(function)
        if _jit_disabled():
            return dispatcher
        # What njit(cache=True) does (Dispatcher.enable_caching), with the keyed cache.
        dispatcher._cache = _kernel_cache_class()(function)
        _cache_folder = dispatcher._cache.cache_path
        return dispatcher

    return compile_later


# --- compiling ahead, and in the background ----------------------------------------------------
_compiled = set()   # dtypes whose kernels are all compiled (or in numba's cache): the dispatcher may run them
_compilers = {}     # dtype -> the process compiling its kernels into numba's cache
_blas_limit = None  # while they run: threadpoolctl's limit on NumPy's BLAS threads
_lock = threading.Lock()


def ready(dtype):
    """Whether the numba kernels for ``dtype`` (float32 or float64) may run now. The first ask
    starts a process that compiles them into numba's on-disk cache; False until it has ended."""
    if dtype in _compiled:
        return True
    with _lock:
        if dtype in _compiled:
            return True
        if _jit_disabled() or os.path.exists(_marker(dtype) or ""):
            _compiled.add(dtype)  # numba's cache holds them all: each loads at its first call, and the run is repeatable
            return True
        compiler = _compilers.get(dtype)
        if compiler is None:
            try:
                _compilers[dtype] = _start_compiler(dtype)
            except OSError:  # no Python to start (an embedded interpreter): numba compiles here, at each first call
                _compiled.add(dtype)
                return True
            _leave_a_core_to_the_compilers()
            return False
        if compiler.poll() is None:
            return False
        # Ended: the kernels load from numba's cache at their first call here. Had the process
        # failed, they compile here instead, and any error is raised in the caller.
        del _compilers[dtype]
        _compiled.add(dtype)
        if not _compilers:
            _give_the_core_back()
        return True


def _leave_a_core_to_the_compilers():
    """Run NumPy's BLAS (the reference kernels' products) on one thread fewer while a compiler
    runs. Its threads wait for each other: with one of them sharing a core with the compiler, a
    first epoch on the reference kernels ran several times slower (see benchmarks/HISTORY.md)."""
    global _blas_limit
    if _blas_limit is None:
        from threadpoolctl import threadpool_limits

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        _blas_limit = threadpool_limits(max(1, cores - 1), user_api="blas")


def _give_the_core_back():
    """Restore the BLAS threads ``_leave_a_core_to_the_compilers`` took."""
    global _blas_limit
    if _blas_limit is not None:
        _blas_limit.restore_original_limits()
        _blas_limit = None


def _start_compiler(dtype, background=True):
    """A new Python process running ``_compile(dtype)`` on this tinynet package; in the
    ``background`` (of a training run), announced on stderr and waited for at exit."""
    name = np.dtype(dtype).name
    # The child imports exactly what this process would: the same sys.path, so the same tinynet.
    code = f"import sys; sys.path[:] = {sys.path!r}; from {__package__} import compiling; compiling._compile({name!r})"
    compiler = Popen([sys.executable or "python", "-c", code], stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL)
    if background:
        if not _compilers:
            atexit.register(_wait_for_compilers)
        print(f"tinynet: compiling CPU kernels for {name} in the background, first run only; the NumPy reference "
              f"kernels run meanwhile", file=sys.stderr, flush=True)
    return compiler


def _wait_for_compilers():
    """At exit: let the compilations finish, so that the next process finds the kernels in the cache."""
    for compiler in list(_compilers.values()):
        compiler.wait()


def warm_up(dtypes=(np.float32, np.float64), families=FAMILIES):
    """Compile the numba kernels of ``families`` for each of ``dtypes`` now (or load them from
    numba's on-disk cache), and let the dispatcher use numba's kernels for those dtypes from the
    next call on (a kernel of another family is then compiled when first called). Returns when
    they are ready. Whole dtypes missing from the cache compile side by side: the first in this
    thread, each other in a process of its own; one compiling in the background is waited for.

    Example::

        import tinynet
        tinynet.kernels.warm_up()           # or, in a shell: python -m tinynet warm-up
    """
    dtypes = [np.dtype(dtype).type for dtype in dtypes]
    with _lock:  # a compilation already in the background for one of them: let it end first
        for dtype in dtypes:
            if dtype in _compilers:
                _compilers.pop(dtype).wait()
        if not _compilers:
            _give_the_core_back()
    if not _jit_disabled():
        _numba_modules(families)  # numba's cache folder is known from here on
        whole = set(families) == set(FAMILIES)
        missing = [dtype for dtype in dtypes[1:] if whole and not os.path.exists(_marker(dtype) or "")]
        compilers = [_start_compiler(dtype, background=False) for dtype in missing]
        for dtype in dtypes:
            if dtype in missing:
                compilers.pop(0).wait()  # its kernels now load from the cache
            _compile(dtype, families)
    _compiled.update(dtypes)


def _marker(dtype):
    """A file beside numba's cache of the kernels saying they were compiled for ``dtype`` from
    these sources (None when numba has no cache folder for them)."""
    if _cache_folder is None:
        return None
    return os.path.join(_cache_folder, f"tinynet-kernels-{_stamp[:16]}-{np.dtype(dtype).name}.compiled")


def _numba_modules(families):
    """{family: its numba module} for each of ``families`` that imports (the dispatcher warns
    about the others and uses the reference)."""
    modules = {}
    for family in families:
        try:
            modules[family] = importlib.import_module(f"{__package__}.{family}_numba")
        except ImportError:
            pass
    return modules


def _compile(dtype, families=FAMILIES):
    """Run every kernel of ``families`` once on small arrays of ``dtype`` (compiling what numba's
    cache lacks), then mark the cache as holding them all."""
    dtype = np.dtype(dtype).type
    rng = np.random.default_rng(0)
    for family, module in _numba_modules(families).items():
        _RUN[family](module, lambda *shape: rng.standard_normal(shape).astype(dtype))
    marker = _marker(dtype)
    if marker is not None and set(families) == set(FAMILIES):
        open(marker, "a").close()


# Each family's kernels, called on arrays that take every compiled path (``random(*shape)`` makes one).
def _run_conv(module, random):
    one, pad = (1, 1), (1, 1)
    # The numba kernel's three layouts (rows of taps, patches, shifted products), all three run.
    for x, weight in ((random(3, 2, 6, 6), random(4, 2, 3, 3)), (random(2, 4, 4, 4), random(2, 4, 3, 3)),
                      (random(2, 16, 9, 9), random(2, 16, 3, 3))):
        for keep_columns in (True, False):
            y, columns = module.conv2d_forward(x, weight, random(len(weight)), one, pad, one, 1, keep_columns)
            module.conv2d_backward(y, x, columns, weight, one, pad, one, 1, True, True)


def _run_im2col(module, random):
    x, geometry = random(2, 2, 5, 5), ((3, 3), (1, 1), (1, 1), (1, 1))
    cols = module.im2col(x, *geometry)
    module.col2im(cols, x.shape, *geometry)
    y, _ = module.nchw_to_cnhw(x, True)
    module.cnhw_to_nchw(y, random(2))


def _run_norm(module, random):
    x, axes, shape = random(3, 2, 4), (0, 2), (1, 2, 1)
    for mean, var in ((None, None), (random(*shape), random(*shape) ** 2)):  # the batch's statistics, given ones
        y, inv_std, batch_mean, _ = module.normalize_forward(x, axes, 1e-5, random(*shape), random(*shape), mean, var)
        for need_param_grads in (True, False):
            module.normalize_backward(y, x, batch_mean if mean is None else mean, inv_std, random(*shape), axes, axes,
                                      mean is None, need_param_grads)


def _run_activation(module, random):
    for size in (8, module.PARALLEL_SIZE):  # on the calling thread, and split over numba's
        y = module.relu_forward(random(size))
        module.relu_backward(random(size), y)
    module.erf(random(8))


def _run_pool(module, random):
    x = random(2, 2, 6, 6)
    for window in (((2, 2), (2, 2), (0, 0)), ((3, 3), (1, 1), (1, 1))):  # MaxPool2d(2)'s own path, the general one
        y, indices = module.max_pool2d_forward(x, *window)
        module.max_pool2d_values(x, *window)
        module.max_pool2d_backward(y, indices, x.shape)
        module.avg_pool2d_backward(module.avg_pool2d_forward(x, *window), x.shape, *window)


def _run_matmul(module, random):
    # Products big enough to be split between threads (PARALLEL_WORK multiply-adds): by rows (many
    # rows), by columns or by the summed axis (few rows); b C- and F-ordered, as Linear passes it.
    import numba

    few, many = 16, max(module.PARALLEL_WORK // 128, module.MIN_PART_ROWS * numba.get_num_threads())
    for rows, inner in ((few, module.PARALLEL_WORK // few), (many, 16), (2, 3)):
        a, b = random(rows, inner), random(inner, 8)
        module.matmul(a, b)
        module.matmul(a, np.asfortranarray(b))
        module.matmul_tn(a, random(rows, 8))
    module.matmul_transposed(random(2, 3, 4), random(2, 5, 4))


def _run_optim(module, random):
    module.axpby(0.5, random(8), 2.0, random(8))
    for buf in (None, random(8)):  # without and with momentum
        module.sgd_step(random(8), random(8), buf, random(8), 0.1, 0.9, 0.0, buf is not None, 0.1, False)
    for v_max in (None, random(8) ** 2):  # with and without amsgrad; second moments are >= 0
        for decay in (0.0, 0.1):
            module.adam_step(random(8), random(8), random(8), random(8) ** 2, v_max, decay, 0.9, 0.999, 1e-8, -1e-3,
                             0.5, 1.0)


_RUN = {"conv": _run_conv, "norm": _run_norm, "im2col": _run_im2col, "activation": _run_activation, "pool": _run_pool,
        "matmul": _run_matmul, "optim": _run_optim}
