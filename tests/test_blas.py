"""tinynet's private BLAS (``tinynet.kernels.blas``): products equal NumPy's in every layout, bad
arguments are refused, the library runs on one thread and leaves NumPy's and SciPy's alone, and
compiled kernels that call it work from numba's on-disk cache in a new process."""
import json
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet.kernels import blas


def _c_and_f(a):
    return [np.ascontiguousarray(a), np.asfortranarray(a)]


sizes = st.one_of(st.integers(0, 9), st.integers(30, 80))


@settings(max_examples=80, deadline=None)
@given(m=sizes, k=sizes, n=sizes,
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**32 - 1))
def test_gemm_equals_numpy_for_c_and_f_ordered_operands(m, k, n, dtype, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for left in _c_and_f(a):
        for right in _c_and_f(b):
            out = np.full((m, n), np.nan, dtype)  # every entry must be written, also for k == 0
            blas.gemm(left, right, out)
            np.testing.assert_allclose(out, a @ b, rtol=tol, atol=tol)


@settings(max_examples=60, deadline=None)
@given(m=sizes, k=sizes, n=sizes, margins=st.tuples(*[st.integers(0, 3)] * 6), accumulate=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**32 - 1))
def test_gemm_reads_and_writes_blocks_of_wider_matrices(m, k, n, margins, accumulate, dtype, seed):
    """Blocks such as ``wide[:, i:j]`` (rows of contiguous values, a leading dimension larger than
    the block's width) and their transposes are read in place, and out may be such a block: the
    entries around it stay as they were. With ``accumulate`` the product is added to out."""
    rng = np.random.default_rng(seed)
    left, right, top, bottom, before, after = margins

    def block(rows, cols):  # rows x cols inside a larger C-ordered matrix
        wide = rng.standard_normal((rows + top + bottom, cols + left + right)).astype(dtype)
        return wide, wide[top:top + rows, left:left + cols]

    _, a = block(m, k)
    _, b_t = block(n, k)  # b read through its transpose: contiguous columns
    out_wide, out = block(m, n)
    expected = out_wide.copy()
    expected[top:top + m, left:left + n] = (out if accumulate else 0) + a @ b_t.T
    blas.gemm(a, b_t.T, out, accumulate)
    tol = 1e-12 if dtype == np.float64 else 1e-5 * max(1, k)
    np.testing.assert_allclose(out_wide, expected, rtol=tol, atol=tol)


def test_gemm_takes_a_single_row_or_column_whatever_its_other_stride():
    """NumPy calls (1, N) arrays with any row stride C-contiguous (``x[None]`` has stride 0), and
    so does gemm: one row is one run."""
    x = np.arange(4.0)
    out = np.empty((4, 1)).T  # strides (8, 8)
    blas.gemm(x[None], np.eye(4), out)
    np.testing.assert_array_equal(out, x[None])
    column = np.empty((1, 3))
    blas.gemm(np.ones((1, 2)), np.arange(6.0).reshape(3, 2).T, column)  # b: (2, 3), read by columns
    np.testing.assert_array_equal(column, [[1.0, 5.0, 9.0]])


def test_gemm_refuses_leading_dimensions_the_32_bit_blas_cannot_take():
    buffer = np.zeros(8)
    far_rows = np.lib.stride_tricks.as_strided(buffer, (2, 3), strides=((2**32 + 3) * 8, 8))
    with pytest.raises(ValueError, match=r"^blas.gemm: the 32-bit BLAS takes leading dimensions \(row or column "
                                         r"steps\) below 2\*\*31$"):
        blas.gemm(far_rows, np.ones((3, 2)), np.empty((2, 2)))


def test_gemm_writes_into_a_view_of_rows():
    a, b = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)
    out = np.zeros((4, 4))
    blas.gemm(a, b, out[1:3])
    np.testing.assert_array_equal(out, np.vstack([np.zeros((1, 4)), a @ b, np.zeros((1, 4))]))


@pytest.mark.parametrize("a, b, out, message", [
    (np.ones((2, 3), np.float32), np.ones((3, 2)), np.ones((2, 2), np.float32), "a, b and out must have one dtype"),
    (np.ones((2, 3), np.float32), np.ones((3, 2), np.int32), np.ones((2, 2), np.float32),
     "a, b and out must have one dtype"),  # the same item size is not enough
    (np.ones((2, 3), np.int64), np.ones((3, 2), np.int64), np.ones((2, 2), np.int64), "one dtype, float32 or float64"),
    (np.ones((2, 3)), np.ones((4, 2)), np.ones((2, 2)), "shapes must be a (M, K), b (K, N) and out (M, N)"),
    (np.ones((2, 3)), np.ones((3, 2)), np.ones((2, 3)), "shapes must be a (M, K), b (K, N) and out (M, N)"),
    (np.ones((2, 3)), np.ones((3, 2)), np.ones((2, 2), order="F"), "out must have contiguous rows"),
    (np.ones((4, 6))[:, ::2], np.ones((3, 2)), np.ones((4, 2)), "a and b must each have contiguous rows or "
                                                                  "contiguous columns"),
    (np.ones((3, 3)), np.ones((6, 6))[::2, ::2], np.ones((3, 3)), "a and b must each have contiguous rows or "
                                                                    "contiguous columns"),
])
def test_gemm_refuses_mismatched_or_strided_arguments(a, b, out, message):
    with pytest.raises(ValueError, match=f"^blas.gemm: .*{message.replace('(', '[(]').replace(')', '[)]')}"):
        blas.gemm(a, b, out)


@pytest.mark.parametrize("files, expected", [
    (["libscipy_openblas.so"], "libscipy_openblas.so"),
    (["libgfortran-daac5196.so.5.0.0", "libscipy_openblas.so"], "libscipy_openblas.so"),  # Linux aarch64
    (["libscipy_openblas.dylib"], "libscipy_openblas.dylib"),
    (["libscipy_openblas.lib", "libscipy_openblas.dll"], "libscipy_openblas.dll"),  # Windows: not the .lib
])
def test_library_path_finds_the_shared_library_of_each_platforms_wheel(tmp_path, files, expected):
    for name in files + ["cmake", "pkgconfig"]:
        (tmp_path / name).touch()
    assert blas.library_path(str(tmp_path)) == str(tmp_path / expected)


def test_library_path_without_a_library_says_what_to_reinstall(tmp_path):
    (tmp_path / "libscipy_openblas.lib").touch()
    with pytest.raises(ImportError, match="^tinynet: no OpenBLAS library .* in .*; reinstall it: pip install "
                                          "--force-reinstall scipy-openblas32$"):
        blas.library_path(str(tmp_path))


def _run(script, env=None):
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                            env=env, check=True)
    return json.loads(result.stdout)


def test_the_private_blas_runs_on_one_thread_and_numpys_and_scipys_keep_theirs():
    env = {name: value for name, value in os.environ.items()
           if name not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    before, after, ours = _run("""
        import json
        from threadpoolctl import threadpool_info
        import numpy, scipy.linalg
        before = {lib["filepath"]: lib["num_threads"] for lib in threadpool_info()}
        from tinynet.kernels import blas
        after = {lib["filepath"]: lib["num_threads"] for lib in threadpool_info()}
        print(json.dumps([before, after, blas.LIBRARY._name]))
    """, env)
    assert {path: after[path] for path in before} == before
    assert max(before.values()) > 1 or os.cpu_count() == 1  # so that keeping them means something
    assert set(after) - set(before) == {os.path.realpath(ours)}
    assert after[os.path.realpath(ours)] == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads glibc's LD_DEBUG output")
def test_scipy_imported_after_tinynet_binds_to_its_own_blas():
    """The private library's symbols are local: SciPy's BLAS calls must not land in it."""
    ours = os.path.realpath(blas.library_path())
    script = "import tinynet.kernels.blas, scipy.linalg; scipy.linalg.blas.dgemm(1.0, [[1.0]], [[2.0]])"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          env=dict(os.environ, LD_DEBUG="bindings"))
    scipy_bindings = [line for line in done.stderr.splitlines() if "binding file" in line and "scipy" in line
                      and "scipy_openblas32" not in line.split(" to ")[0]]
    assert any("scipy_dgemm_" in line for line in scipy_bindings)  # the check sees SciPy's own bindings
    assert not [line for line in scipy_bindings if ours in line]


def test_without_its_blas_the_numba_kernels_give_way_to_the_reference_with_one_warning(tmp_path):
    (tmp_path / "scipy_openblas32" / "lib").mkdir(parents=True)  # an installation without its library
    (tmp_path / "scipy_openblas32" / "__init__.py").touch()
    script = """
        import json, warnings
        import numpy as np
        import tinynet as tn
        x = np.random.default_rng(0).standard_normal((3, 2, 6, 6)).astype(np.float32)
        model = tn.Sequential(tn.Conv2d(2, 4, 3), tn.MaxPool2d(2), tn.Flatten(), tn.Linear(16, 3))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            y, y_again = model(x), model(x)
        with tn.kernels.use("numpy"):
            expected = model(x)
        print(json.dumps({"warnings": [str(w.message) for w in caught], "equal": bool(np.array_equal(y, expected)),
                          "missing": sorted(tn.kernels._numba_missing)}))
    """
    result = _run(script, dict(os.environ, TINYNET_KERNELS="numba", PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])))
    assert result["missing"] == ["conv", "matmul"] and result["equal"]
    assert result["warnings"] == [
        f"tinynet: the numba conv kernels cannot be loaded (tinynet: no OpenBLAS library (libscipy_openblas.so, "
        f".dylib or .dll) in {tmp_path / 'scipy_openblas32' / 'lib'}; reinstall it: pip install --force-reinstall "
        f"scipy-openblas32); using the NumPy reference kernels, which are much slower"]


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="NUMBA_DISABLE_JIT=1: nothing is compiled or cached")
def test_kernels_that_call_it_load_from_the_disk_cache_in_a_new_process(tmp_path):
    """The library's address differs in every process; the cached code must find it by name."""
    script = """
        import json
        import numpy as np
        import tinynet as tn
        from tinynet.kernels import blas, conv_numba
        tn.kernels.warm_up([np.float32], families=[])  # no compiling in the background: conv(x) compiles what it runs
        x = np.random.default_rng(0).standard_normal((5, 2, 6, 7)).astype(np.float32)
        conv = tn.Conv2d(2, 3, 3, padding=1, dtype=np.float32)
        y = conv(x)
        with tn.kernels.use("numpy"):
            expected = conv(x)
        a, b, out = np.ones((2, 3)), np.ones((3, 4)), np.empty((2, 4))
        blas.gemm(a, b, out)
        print(json.dumps({"hits": conv_numba._forward_jit.stats.cache_hits and blas.gemm.stats.cache_hits and 1,
                          "misses": len(conv_numba._forward_jit.stats.cache_misses),
                          "close": bool(np.allclose(y, expected, atol=1e-5)), "gemm": out.tolist()}))
    """
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), TINYNET_KERNELS="numba")
    first, second = _run(script, env), _run(script, env)
    assert first["misses"] > 0 and not first["hits"]
    assert second["misses"] == 0 and second["hits"]
    for result in (first, second):
        assert result["close"] and result["gemm"] == [[3.0] * 4] * 2
