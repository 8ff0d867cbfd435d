"""DataLoader: batch boundaries, alignment, per-epoch shuffling, repeatability, transforms, errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet
from tinynet.data import DataLoader


def make_data(n=10):
    """Images whose every pixel equals the sample index, and labels equal to the index, so
    any batch can be checked for alignment and origin."""
    images = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None, None], (n, 1, 2, 3)).copy()
    labels = np.arange(n, dtype=np.int64)
    return images, labels


def epoch(loader):
    return [tuple(array.copy() for array in batch) for batch in loader]


def assert_epochs_equal(a, b):
    assert len(a) == len(b)
    for batch_a, batch_b in zip(a, b):
        for x, y in zip(batch_a, batch_b):
            np.testing.assert_array_equal(x, y)


@settings(max_examples=60)
@given(n=st.integers(1, 40), batch_size=st.integers(1, 45), shuffle=st.booleans(), drop_last=st.booleans())
def test_batches_cover_each_sample_once_aligned(n, batch_size, shuffle, drop_last):
    images, labels = make_data(n)
    loader = DataLoader(images, labels, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=0)
    batches = list(loader)

    expected_len = n // batch_size if drop_last else -(-n // batch_size)
    assert len(loader) == len(batches) == expected_len
    sizes = [len(y) for _, y in batches]
    assert all(size == batch_size for size in sizes[:-1])
    if drop_last and batches:
        assert sizes[-1] == batch_size
    seen = np.concatenate([y for _, y in batches]) if batches else np.empty(0, np.int64)
    assert len(np.unique(seen)) == len(seen) == (len(loader) * batch_size if drop_last else n)
    if not shuffle:
        np.testing.assert_array_equal(seen, np.arange(len(seen)))
    for x, y in batches:
        assert x.shape == (len(y), 1, 2, 3) and x.dtype == np.float32 and y.dtype == np.int64
        np.testing.assert_array_equal(x[:, 0, 0, 0], y)  # images and labels stay aligned
        assert x.flags.c_contiguous and y.flags.c_contiguous


def test_each_epoch_reshuffles_and_a_seed_repeats_the_sequence_of_epochs():
    images, labels = make_data(50)
    first = DataLoader(images, labels, batch_size=7, shuffle=True, seed=123)
    second = DataLoader(images, labels, batch_size=7, shuffle=True, seed=123)
    epochs_first = [epoch(first) for _ in range(3)]
    epochs_second = [epoch(second) for _ in range(3)]
    for a, b in zip(epochs_first, epochs_second):
        assert_epochs_equal(a, b)
    orders = [np.concatenate([y for _, y in e]) for e in epochs_first]
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    other_seed = np.concatenate([y for _, y in DataLoader(images, labels, batch_size=7, shuffle=True, seed=124)])
    assert not np.array_equal(orders[0], other_seed)


def test_explicit_generator_gives_the_same_batches_as_its_seed():
    images, labels = make_data(30)
    by_seed = DataLoader(images, labels, batch_size=4, shuffle=True, seed=5)
    by_rng = DataLoader(images, labels, batch_size=4, shuffle=True, rng=np.random.default_rng(5))
    for _ in range(2):
        assert_epochs_equal(epoch(by_seed), epoch(by_rng))


def test_default_generator_follows_manual_seed_even_after_construction():
    images, labels = make_data(30)
    loader = DataLoader(images, labels, batch_size=4, shuffle=True)
    tinynet.manual_seed(7)
    run_one = [epoch(loader) for _ in range(2)]
    tinynet.manual_seed(7)
    run_two = [epoch(loader) for _ in range(2)]
    for a, b in zip(run_one, run_two):
        assert_epochs_equal(a, b)
    tinynet.manual_seed(7)
    expected = np.random.default_rng(7).permutation(30)
    np.testing.assert_array_equal(np.concatenate([y for _, y in loader]), expected)


def test_each_iter_draws_its_permutation_at_iter_time():
    images, labels = make_data(20)
    loader = DataLoader(images, labels, batch_size=20, shuffle=True, seed=1)
    first_iter, second_iter = iter(loader), iter(loader)  # consumed in the opposite order
    (_, second), (_, first) = next(second_iter), next(first_iter)
    rng = np.random.default_rng(1)
    np.testing.assert_array_equal(first, rng.permutation(20))
    np.testing.assert_array_equal(second, rng.permutation(20))


def test_transform_receives_each_batch_and_the_loaders_generator():
    images, labels = make_data(12)

    def add_noise(batch, rng):
        x, y = batch
        return x + rng.standard_normal(x.shape, dtype=x.dtype), y

    noisy = epoch(DataLoader(images, labels, batch_size=5, shuffle=True, seed=3, transform=add_noise))
    # Replay: the same generator draws the permutation first, then the noise batch by batch.
    rng = np.random.default_rng(3)
    order = rng.permutation(12)
    for start, (x, y) in zip(range(0, 12, 5), noisy):
        index = order[start:start + 5]
        np.testing.assert_array_equal(y, labels[index])
        np.testing.assert_array_equal(x, images[index] + rng.standard_normal(x.shape, dtype=np.float32))


def test_unshuffled_batches_are_views_and_non_contiguous_input_gives_contiguous_batches():
    images, labels = make_data(8)
    x, _ = next(iter(DataLoader(images, labels, batch_size=3)))
    assert np.shares_memory(x, images)  # no copy when the input is already contiguous

    columns = np.arange(24, dtype=np.float64).reshape(3, 8).T  # (8, 3), Fortran-ordered
    for shuffle in (False, True):
        for (batch,) in DataLoader(columns, batch_size=3, shuffle=shuffle, seed=0):
            assert batch.flags.c_contiguous
            np.testing.assert_array_equal(batch[:, 1] - batch[:, 0], 8.0)


def test_single_array_yields_one_tuples_and_repr():
    loader = DataLoader(np.arange(5), batch_size=2)
    assert [batch for (batch,) in loader][-1].tolist() == [4]
    assert loader.num_samples == 5
    assert repr(loader) == "DataLoader(num_samples=5, batch_size=2, shuffle=False, drop_last=False)"


@pytest.mark.parametrize(
    "args, kwargs, error, message",
    [
        ((), {}, ValueError, "DataLoader: expected at least one array, got none"),
        ((np.zeros((60, 3)), np.zeros(10)), {}, ValueError, "array 0 has 60 and array 1 has 10"),
        ((np.float32(1.0),), {}, TypeError, r"array 0 must be an array with at least one dimension, got shape \(\)"),
        (([1, 2, 3],), {}, TypeError, "array 0 must be an array .* got a list"),
        ((np.zeros(4),), {"batch_size": 0}, ValueError, "batch_size must be a positive integer, got 0"),
        ((np.zeros(4),), {"batch_size": -2}, ValueError, "batch_size must be a positive integer, got -2"),
        ((np.zeros(4),), {"batch_size": 2.0}, TypeError, "batch_size must be a positive integer, got 2.0"),
        ((np.zeros(4),), {"batch_size": True}, TypeError, "batch_size must be a positive integer, got True"),
        ((np.zeros(4),), {"seed": 0, "rng": np.random.default_rng(0)}, ValueError, "either seed or rng, not both"),
        ((np.zeros(4),), {"rng": 0}, TypeError, "rng must be a numpy.random.Generator, got int"),
        ((np.zeros(4),), {"transform": "flip"}, TypeError, "transform must be callable, got str"),
    ],
)
def test_bad_arguments_raise_clear_errors(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        DataLoader(*args, **kwargs)


def test_transform_must_return_a_tuple():
    loader = DataLoader(np.zeros(4), batch_size=2, transform=lambda batch, rng: batch[0])
    with pytest.raises(TypeError, match="DataLoader: transform must return a tuple of arrays, got ndarray"):
        next(iter(loader))


@pytest.mark.gpu
def test_cupy_arrays_give_cupy_batches_in_the_same_order_as_numpy():
    import cupy

    images, labels = make_data(25)
    cpu = DataLoader(images, labels, batch_size=6, shuffle=True, seed=9)
    gpu = DataLoader(cupy.asarray(images), cupy.asarray(labels), batch_size=6, shuffle=True, seed=9)
    for _ in range(2):
        for (x_cpu, y_cpu), (x_gpu, y_gpu) in zip(cpu, gpu):
            assert isinstance(x_gpu, cupy.ndarray) and x_gpu.flags.c_contiguous
            np.testing.assert_array_equal(x_gpu.get(), x_cpu)
            np.testing.assert_array_equal(y_gpu.get(), y_cpu)


@pytest.mark.gpu
def test_arrays_on_different_devices_are_refused():
    import cupy

    with pytest.raises(RuntimeError, match="DataLoader: expected all arrays on the same device"):
        DataLoader(cupy.zeros(4), np.zeros(4))
