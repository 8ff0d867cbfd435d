"""The numba kernels' split of the batch over threads (``tinynet.kernels.threads``): the helpers, the
same results for any number of parts, and the products of ``Linear``. (The single-threaded BLAS
the parts call: ``test_blas.py``.)"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet import kernels
from tinynet.kernels import activation_numba, conv_numba, matmul_numba, pool_numba, threads

SPLIT_MODULES = (activation_numba, conv_numba, matmul_numba, pool_numba)


@settings(max_examples=100)
@given(n=st.integers(0, 50), parts=st.integers(1, 9))
def test_parts_cover_the_batch_in_order_and_differ_by_at_most_one(n, parts):
    bounds = [threads.part(n, parts, p) for p in range(parts)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(hi == next_lo for (_, hi), (next_lo, _) in zip(bounds, bounds[1:]))
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= 1


@settings(max_examples=100)
@given(shape=st.tuples(st.integers(0, 6), st.integers(1, 4), st.integers(1, 3)), data=st.data())
def test_rows_is_the_slice_as_a_view(shape, data):
    a = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    lo = data.draw(st.integers(0, shape[0]))
    hi = data.draw(st.integers(lo, shape[0]))
    view = threads.rows(a, lo, hi)
    np.testing.assert_array_equal(view, a[lo:hi])
    assert view.shape == a[lo:hi].shape
    if view.size:
        assert np.shares_memory(view, a)


def test_batch_parts_is_one_per_thread_and_at_most_one_per_sample():
    import numba

    assert threads.batch_parts(1000) == numba.get_num_threads()
    assert threads.batch_parts(1) == 1
    assert threads.batch_parts(0) == 1


@pytest.fixture
def split_into(monkeypatch):
    """Make every numba kernel split its batch into ``parts`` parts, however small the work."""
    def split(parts):
        for module in SPLIT_MODULES:
            monkeypatch.setattr(module, "batch_parts", lambda n: max(1, min(n, parts)))
        monkeypatch.setattr(activation_numba, "PARALLEL_SIZE", 0)
        monkeypatch.setattr(matmul_numba, "PARALLEL_WORK", 0)
    return split


def _cnn_step_results(dtype, train=True):
    """Output, input gradient and parameter gradients of a small CNN with every kind of layer."""
    rng = np.random.default_rng(0)
    model = tn.Sequential(
        tn.Conv2d(2, 6, 3, padding=1, groups=2, dtype=dtype, rng=rng), tn.ReLU(), tn.MaxPool2d(2),
        tn.Conv2d(6, 4, (2, 3), stride=(1, 2), dtype=dtype, rng=rng), tn.ReLU(), tn.AvgPool2d(2, padding=1),
        tn.MaxPool2d(3, stride=1, padding=1), tn.Flatten(), tn.Linear(4 * 2 * 2, 5, dtype=dtype, rng=rng),
    )
    model.train(train)
    x = rng.standard_normal((7, 2, 9, 10)).astype(dtype)
    y = model(x)
    grad_x = model.backward(rng.standard_normal(y.shape).astype(dtype))
    return [y, grad_x] + [p.grad for p in model.parameters()]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("parts", [2, 3, 7])
@pytest.mark.parametrize("train", [True, False])
def test_any_split_of_the_batch_gives_the_results_of_one_part(split_into, dtype, parts, train):
    """Equal to rounding: weight and bias gradients sum the parts in another order, and BLAS may
    block a product of a few rows differently from one of many. The reference kernels agree too."""
    split_into(1)
    whole = _cnn_step_results(dtype, train)
    split_into(parts)
    split = _cnn_step_results(dtype, train)
    with kernels.use("numpy"):
        reference = _cnn_step_results(dtype, train)
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    for got, expected, ref in zip(split, whole, reference):
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(got, ref, rtol=10 * rtol, atol=10 * rtol)


def _layouts(a):
    """a as C-ordered, Fortran-ordered and non-contiguous (every other column of a wider array)."""
    wide = np.zeros((a.shape[0], 2 * a.shape[1]), a.dtype)
    wide[:, ::2] = a
    return [np.ascontiguousarray(a), np.asfortranarray(a), wide[:, ::2]]


@pytest.mark.parametrize("a_dtype, b_dtype", [(np.float64, np.int64), (np.float32, np.float64), (np.float32, np.int8)])
def test_matmul_and_matmul_tn_compute_mixed_dtypes_in_numpys_result_dtype(a_dtype, b_dtype):
    rng = np.random.default_rng(0)
    a, b = rng.integers(-3, 4, (5, 3)).astype(a_dtype), rng.integers(-3, 4, (3, 4)).astype(b_dtype)
    for product in (matmul_numba.matmul(a, b), matmul_numba.matmul_tn(np.ascontiguousarray(a.T), b)):
        assert product.dtype == np.result_type(a, b)
        np.testing.assert_array_equal(product, a @ b)  # small integers: exact in any float dtype


@settings(max_examples=60, deadline=None)
@given(m=st.integers(0, 9), k=st.integers(0, 9), n=st.integers(0, 9), split=st.booleans(),
       by_rows=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**32 - 1))
def test_matmul_and_matmul_tn_equal_numpy_in_every_layout(m, k, n, split, by_rows, dtype, seed):
    """Every way of splitting: by rows, by columns, by the summed axis, or not at all."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(matmul_numba, "PARALLEL_WORK", 0 if split else matmul_numba.PARALLEL_WORK)
        patch.setattr(matmul_numba, "MIN_PART_ROWS", 0 if by_rows else matmul_numba.MIN_PART_ROWS)
        for left in _layouts(a):
            for right in _layouts(b):
                product = matmul_numba.matmul(left, right)
                assert product.dtype == dtype and product.shape == (m, n)
                np.testing.assert_allclose(product, a @ b, rtol=tol, atol=tol)
        for left in _layouts(a.T.copy()):
            product = matmul_numba.matmul_tn(left, b)
            assert product.dtype == dtype and product.shape == (m, n)
            np.testing.assert_allclose(product, a @ b, rtol=tol, atol=tol)
