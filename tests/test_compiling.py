"""Compiling the numba kernels (``tinynet.kernels.compiling``): the cache is keyed to every kernel
source, the reference kernels serve while numba compiles in the background, ``warm_up`` and
``tinynet warm-up``, and the kernels run as plain Python under ``NUMBA_DISABLE_JIT=1``."""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numba
import numpy as np
import pytest

import tinynet
from tinynet import cli, kernels
from tinynet.kernels import compiling, conv_numba, conv_numpy

KERNELS = Path(compiling.__file__).parent
_CACHE_MARKER = compiling._marker  # the real one: the tests below replace it
# Tests of compiling and caching itself: with NUMBA_DISABLE_JIT=1 there is nothing to compile.
needs_the_jit = pytest.mark.skipif(numba.config.DISABLE_JIT, reason="NUMBA_DISABLE_JIT=1: nothing is compiled or cached")


def test_the_cache_stamp_covers_every_kernel_source(tmp_path):
    for name in compiling.SOURCES:
        shutil.copy(KERNELS / name, tmp_path / name)
    assert compiling.sources_stamp(str(tmp_path)) == compiling.sources_stamp()
    for name in compiling.SOURCES:
        original = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(original + b"\n")
        assert compiling.sources_stamp(str(tmp_path)) != compiling.sources_stamp(), name
        (tmp_path / name).write_bytes(original)


def test_every_numba_module_is_in_the_stamped_sources():
    numba_modules = {path.name for path in KERNELS.glob("*_numba.py")}
    assert numba_modules | {"blas.py", "threads.py"} == set(compiling.SOURCES)


@needs_the_jit
def test_an_edited_callee_in_another_file_is_compiled_again(tmp_path):
    """numba's own cache would load matmul's kernel with the old gemm inside: matmul_numba.py did not change."""
    shutil.copytree(KERNELS.parent, tmp_path / "tinynet", ignore=shutil.ignore_patterns("__pycache__"))
    script = textwrap.dedent("""
        import numpy as np
        import tinynet
        from tinynet.kernels import matmul_numba
        tinynet.kernels.warm_up([np.float64], families=[])  # compile only what is called
        print(matmul_numba.matmul(np.ones((2, 3)), np.ones((3, 2))).tolist())
    """)
    env = dict(os.environ, PYTHONPATH=str(tmp_path), NUMBA_CACHE_DIR=str(tmp_path / "cache"))

    def product():
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=600)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert product() == "[[3.0, 3.0], [3.0, 3.0]]"
    blas = tmp_path / "tinynet" / "kernels" / "blas.py"
    source = blas.read_text()
    assert source.count("np.float32(1), a.ctypes") == 1 and source.count("1.0, a.ctypes") == 1
    blas.write_text(source.replace("np.float32(1), a.ctypes", "np.float32(2), a.ctypes")
                    .replace("1.0, a.ctypes", "2.0, a.ctypes"))  # gemm now doubles its product
    assert product() == "[[6.0, 6.0], [6.0, 6.0]]"


@pytest.fixture
def nothing_compiled(monkeypatch):
    """The compilation state of a new process with an empty cache (the kernels stay compiled in this one)."""
    monkeypatch.setattr(compiling, "_compiled", set())
    monkeypatch.setattr(compiling, "_compilers", {})
    monkeypatch.setattr(compiling, "_marker", lambda dtype: None)
    with kernels.use("numba"):  # these tests are about the numba kernels, whatever TINYNET_KERNELS says
        yield


class _FakeCompiler:
    """Stands in for ``Popen``: a compiling process that ends when told to (``wait``)."""
    started = []

    def __init__(self, command, **options):
        self.command, self.returncode = command, None
        _FakeCompiler.started.append(self)

    def poll(self):
        return self.returncode

    def wait(self):
        self.returncode = 0
        return 0


@pytest.fixture
def fake_compilers(monkeypatch):
    monkeypatch.setattr(compiling, "Popen", _FakeCompiler)
    monkeypatch.setattr(_FakeCompiler, "started", [])
    return _FakeCompiler.started


def _blas_threads():
    """The threads of every BLAS loaded here but tinynet's own (NumPy's, SciPy's): one number."""
    from threadpoolctl import threadpool_info

    threads = {pool["num_threads"] for pool in threadpool_info()
               if pool["user_api"] == "blas" and "scipy_openblas32" not in pool["filepath"]}
    assert len(threads) == 1, threads
    return threads.pop()


@needs_the_jit
def test_the_reference_serves_until_the_compiling_process_ends(nothing_compiled, fake_compilers, capsys):
    x = np.zeros((1, 1, 4, 4), np.float32)
    threads_before = _blas_threads()
    assert kernels._implementation("conv", x) is conv_numpy
    assert kernels._implementation("conv", x) is conv_numpy
    assert len(fake_compilers) == 1  # one process, started by the first ask
    assert fake_compilers[0].command[-1].endswith("compiling._compile('float32')")
    assert _blas_threads() == max(1, len(os.sched_getaffinity(0)) - 1)  # a core left to the compiler
    assert capsys.readouterr().err == ("tinynet: compiling CPU kernels for float32 in the background, first run only; "
                                       "the NumPy reference kernels run meanwhile\n")
    fake_compilers[0].wait()  # the process ends: numba's kernels serve from the next ask on
    assert kernels._implementation("conv", x) is conv_numba
    assert compiling._compilers == {} and compiling._compiled == {np.float32}
    assert _blas_threads() == threads_before  # given back
    assert kernels._implementation("conv", x.astype(np.float64)) is conv_numpy  # float64's compilation starts
    assert kernels._implementation("conv", x) is conv_numba  # while float32's kernels keep serving
    assert len(fake_compilers) == 2 and fake_compilers[1].command[-1].endswith("compiling._compile('float64')")
    assert capsys.readouterr().err.count("compiling CPU kernels for float64") == 1


def test_the_end_of_the_process_waits_for_the_compilations(fake_compilers):
    running = [_FakeCompiler(["python"]), _FakeCompiler(["python"])]
    compiling._compilers.update(enumerate(running))
    try:
        compiling._wait_for_compilers()
    finally:
        compiling._compilers.clear()
    assert [compiler.returncode for compiler in running] == [0, 0]


@needs_the_jit
def test_without_a_python_to_start_numba_compiles_in_this_process(nothing_compiled, monkeypatch, capsys):
    def no_python(command, **options):
        raise FileNotFoundError(command[0])

    monkeypatch.setattr(compiling, "Popen", no_python)
    assert compiling.ready(np.float32)
    assert compiling._compiled == {np.float32} and capsys.readouterr().err == ""


@needs_the_jit
def test_the_compiling_process_fills_this_package_cache(nothing_compiled, monkeypatch):
    """A real process: it imports this tinynet (the same sys.path) and marks numba's cache of these kernels."""
    marker = Path(_CACHE_MARKER(np.float64))
    marker.unlink(missing_ok=True)  # written again by the process, from the kernels already in the cache
    assert not compiling.ready(np.float64)
    process = compiling._compilers[np.float64]
    assert process.wait(timeout=600) == 0
    assert compiling.ready(np.float64) and compiling._compiled == {np.float64}
    assert marker.exists()


def test_kernels_in_the_cache_serve_from_the_first_ask(nothing_compiled, monkeypatch, tmp_path):
    (tmp_path / "float32.compiled").touch()
    monkeypatch.setattr(compiling, "_marker", lambda dtype: str(tmp_path / f"{np.dtype(dtype).name}.compiled"))
    assert compiling.ready(np.float32)
    assert compiling._compilers == {} and compiling._compiled == {np.float32}


def test_warm_up_makes_the_dispatcher_use_numba_at_once(nothing_compiled):
    x = np.zeros((1, 1, 4, 4), np.float64)
    kernels.warm_up([np.float64])
    assert kernels._implementation("conv", x) is conv_numba
    assert compiling._compilers == {}


@needs_the_jit
def test_warm_up_compiles_a_second_missing_dtype_in_a_process_beside_it(nothing_compiled, fake_compilers, monkeypatch,
                                                                        tmp_path, capsys):
    monkeypatch.setattr(compiling, "_marker", lambda dtype: str(tmp_path / f"{np.dtype(dtype).name}.compiled"))
    kernels.warm_up()
    assert len(fake_compilers) == 1 and fake_compilers[0].returncode == 0  # started, then waited for
    code = fake_compilers[0].command[-1]
    assert code.endswith("compiling._compile('float64')")
    assert compiling._compiled == {np.float32, np.float64} and compiling._compilers == {}
    assert capsys.readouterr().err == ""
    kernels.warm_up()  # both are in the cache now (the markers are written): no process
    assert len(fake_compilers) == 1


@needs_the_jit
def test_warm_up_waits_for_a_background_compilation_and_gives_the_core_back(nothing_compiled, fake_compilers):
    threads_before = _blas_threads()
    assert not compiling.ready(np.float32)  # the background compilation starts
    assert _blas_threads() == max(1, len(os.sched_getaffinity(0)) - 1)
    kernels.warm_up([np.float32])
    assert fake_compilers[0].returncode == 0 and compiling._compilers == {}
    assert _blas_threads() == threads_before and compiling.ready(np.float32)


def test_the_warm_up_command(nothing_compiled):
    assert cli.main(["warm-up"]) == 0
    assert compiling._compiled == {np.float32, np.float64}


# The tests that run under NUMBA_DISABLE_JIT=1: every numba kernel family as Python, against the
# reference and PyTorch (kept small: Python loops are slow). The layer suite's cases on the numba
# kernels run Linear (matmul, gemm), ReLU (activation), Conv2d (conv, im2col) and the pools as Python;
# the convolution's shifted products, which those small layers do not take, run forced.
_NUMBA_LAYER_CASES = [f"tests/test_layer_suite.py::test_layer_matches_pytorch[{layer}-numba-float32]"
                      for layer in ("Linear", "ReLU", "Conv2d", "MaxPool2d", "AvgPool2d")]
DISABLED_JIT_TESTS = ["tests/test_threads.py",
                      "tests/test_blas.py::test_gemm_equals_numpy_for_c_and_f_ordered_operands",
                      "tests/test_blas.py::test_gemm_refuses_mismatched_or_strided_arguments",
                      *_NUMBA_LAYER_CASES,
                      "tests/test_layer_suite.py::test_layer_passes_gradcheck[Conv2d-numba]",
                      "tests/test_conv.py::test_shifted_products_of_the_numba_kernel_match_pytorch",
                      "tests/test_layer_suite.py::test_layer_passes_gradcheck[MaxPool2d-numba]",
                      "tests/test_optim.py::test_adam_loop_and_array_code_give_the_same_bits"]


def test_the_kernels_run_as_python_with_the_jit_disabled():
    root = Path(tinynet.__file__).parents[1]
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", HYPOTHESIS_PROFILE="dev")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *DISABLED_JIT_TESTS],
                          capture_output=True, text=True, env=env, cwd=root, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
