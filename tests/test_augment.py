"""Augmentation: exact identities, shifts against np.roll, quarter turns against np.rot90,
general warps against scipy.ndimage, ranges and dtypes, and use as a DataLoader transform."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from tinynet import augment
from tinynet.data import DataLoader

shapes = st.tuples(st.integers(1, 3), st.integers(1, 2), st.integers(1, 7), st.integers(1, 7))


def images(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).random(shape).astype(dtype)


def roll_with_fill(x, dx, dy, fill=0.0):
    """np.roll along W and H, with the pixels that wrapped around set to ``fill``."""
    out = np.roll(x, (dy, dx), axis=(-2, -1))
    h, w = x.shape[-2:]
    if dy > 0:
        out[..., :min(dy, h), :] = fill
    elif dy < 0:
        out[..., max(h + dy, 0):, :] = fill
    if dx > 0:
        out[..., :, :min(dx, w)] = fill
    elif dx < 0:
        out[..., :, max(w + dx, 0):] = fill
    return out


@settings(max_examples=30)
@given(shape=shapes, order=st.sampled_from(augment.ORDERS))
def test_identity_gives_the_input_back_exactly(shape, order):
    x = images(shape)
    identity = augment.affine_matrices(n=shape[0])
    np.testing.assert_array_equal(augment.affine(x, identity, order), x)
    np.testing.assert_array_equal(augment.RandomAffine(order=order)((x,), np.random.default_rng(0))[0], x)


@settings(max_examples=50)
@given(shape=shapes, dx=st.integers(-8, 8), dy=st.integers(-8, 8), order=st.sampled_from(augment.ORDERS))
def test_integer_shift_equals_roll_with_zero_fill(shape, dx, dy, order):
    x = images(shape)
    expected = roll_with_fill(x, dx, dy)
    np.testing.assert_array_equal(augment.shift(x, dx, dy), expected)
    np.testing.assert_array_equal(augment.affine(x, augment.affine_matrices(translate=(dx, dy), n=shape[0]), order), expected)


def test_shift_per_image_and_fill():
    x = images((3, 1, 5, 5))
    out = augment.shift(x, np.array([1, 0, -2]), np.array([0, 2, 1]), fill=0.5)
    for k, (dx, dy) in enumerate([(1, 0), (0, 2), (-2, 1)]):
        np.testing.assert_array_equal(out[k], roll_with_fill(x[k], dx, dy, fill=0.5))


@settings(max_examples=20)
@given(n=st.integers(1, 3), c=st.integers(1, 2), size=st.integers(1, 8), turns=st.integers(-2, 3))
def test_quarter_turns_equal_rot90(n, c, size, turns):
    x = images((n, c, size, size))
    expected = np.rot90(x, turns, axes=(2, 3))  # counter-clockwise, as displayed
    np.testing.assert_array_equal(augment.rotate(x, 90 * turns, order="nearest"), expected)
    # cos(pi/2) is 6e-17, not 0, so bilinear reads a neighbour with a weight ~1e-16.
    np.testing.assert_allclose(augment.rotate(x, 90 * turns), expected, rtol=0, atol=1e-6)


def test_half_pixel_shift_averages_neighbours():
    x = np.array([[[[0.0, 2.0, 4.0]]]], np.float32)
    out = augment.affine(x, augment.affine_matrices(translate=(0.5, 0.0)))
    np.testing.assert_allclose(out[0, 0, 0], [0.0, 1.0, 3.0])  # the first pixel reads half of fill 0


@settings(max_examples=25)
@given(shape=st.tuples(st.integers(1, 2), st.integers(3, 9), st.integers(3, 9)),
       degrees=st.floats(-45, 45), scale=st.floats(0.7, 1.4), shear=st.floats(-20, 20),
       tx=st.floats(-2, 2), ty=st.floats(-2, 2))
def test_bilinear_warp_matches_scipy(shape, degrees, scale, shear, tx, ty):
    """scipy.ndimage.affine_transform maps output (row, col) to input (row, col); order 1 is bilinear."""
    c, h, w = shape
    x = images((1, c, h, w), dtype=np.float64)
    matrix = augment.affine_matrices(degrees, (tx, ty), scale, shear, n=1)[0]
    out = augment.affine(x, matrix[None])

    inverse = np.linalg.inv(matrix[:, :2])  # in (x, y) order
    swap = np.array([[0, 1], [1, 0]])
    inverse_rc = swap @ inverse @ swap  # in (row, col) order
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    offset = centre - inverse_rc @ (centre + matrix[::-1, 2])
    for channel in range(c):
        expected = ndimage.affine_transform(x[0, channel], inverse_rc, offset, order=1, mode="grid-constant", cval=0.0)
        np.testing.assert_allclose(out[0, channel], expected, rtol=1e-9, atol=1e-12)


def test_batch_warp_equals_warping_each_image():
    x = images((4, 2, 6, 5))
    matrices = augment.RandomAffine(degrees=30, translate=1, scale=(0.8, 1.2), shear=10).matrices(4, np.random.default_rng(1))
    out = augment.affine(x, matrices)
    for k in range(4):
        np.testing.assert_array_equal(out[k:k + 1], augment.affine(x[k:k + 1], matrices[k:k + 1]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", augment.ORDERS)
def test_random_output_keeps_dtype_and_range(dtype, order):
    x = images((64, 1, 12, 12), dtype=dtype)
    x[:, :, 4:8, 4:8] = 1.0  # saturated pixels: rounding must not push the result above 1
    out = augment.RandomAffine(degrees=15, translate=2, scale=(0.9, 1.1), shear=10, order=order)(
        (x,), np.random.default_rng(0))[0]
    assert out.dtype == dtype and out.shape == x.shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not np.array_equal(out, x)


def test_as_dataloader_transform():
    x = images((10, 1, 8, 8))
    y = np.arange(10)
    x_before = x.copy()
    augment_fn = augment.RandomAffine(degrees=10, translate=2)
    batches = [[tuple(a.copy() for a in b) for b in DataLoader(x, y, batch_size=4, shuffle=True, seed=3, transform=augment_fn)]
               for _ in range(2)]
    np.testing.assert_array_equal(x, x_before)  # the data set itself is untouched
    for (bx, by), (cx, cy) in zip(*batches):
        np.testing.assert_array_equal(bx, cx)  # same seed, same augmented batches
        np.testing.assert_array_equal(by, cy)
        assert bx.dtype == np.float32 and not np.array_equal(bx, x[by])  # labels pass through, images move
    assert repr(augment_fn).startswith("RandomAffine(degrees=10.0, translate=2")


def test_bad_arguments_are_named():
    x = images((2, 1, 4, 4))
    with pytest.raises(ValueError, match=r"augment.affine: expected a 4-D input of shape \(N, C, H, W\), got shape \(4, 4\)"):
        augment.affine(x[0, 0], np.eye(2, 3))
    with pytest.raises(TypeError, match=r"augment.rotate: expected a floating-point array, got uint8"):
        augment.rotate(x.astype(np.uint8), 10)
    with pytest.raises(ValueError, match=r"expected matrices of shape \(2, 2, 3\) or \(2, 3\) for 2 images, got \(3, 2, 3\)"):
        augment.affine(x, np.zeros((3, 2, 3)))
    with pytest.raises(ValueError, match=r"matrix 0 is not invertible \(determinant 0.0\)"):
        augment.affine(x, np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"order must be one of \('bilinear', 'nearest'\), got 'cubic'"):
        augment.affine(x, np.eye(2, 3), order="cubic")
    with pytest.raises(TypeError, match=r"augment.shift: dx must be whole pixels \(integers\), got float64"):
        augment.shift(x, 0.5, 0)
    with pytest.raises(ValueError, match=r"RandomAffine: degrees must be in \[0, 90\), got -5"):
        augment.RandomAffine(degrees=-5)
    with pytest.raises(ValueError, match=r"RandomAffine: translate must be a non-negative whole number of pixels, got 1.5"):
        augment.RandomAffine(translate=1.5)
    with pytest.raises(ValueError, match=r"RandomAffine: scale must be a range \(low, high\) with 0 < low <= high, got \(1.2, 0.8\)"):
        augment.RandomAffine(scale=(1.2, 0.8))
