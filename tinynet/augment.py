"""Data augmentation for image batches (N, C, H, W): shifts, rotations and affine warps.

Every warp is one vectorised resampling of the whole batch (``affine``): the
source position of every output pixel is computed for all images at once, and
the pixels are gathered with ``take_along_axis``, with no Python loop over
images. The same code runs on NumPy and CuPy arrays.

``RandomAffine`` draws a random warp per image and plugs into a ``DataLoader``
as its ``transform``, so every epoch sees freshly augmented images::

    augment = RandomAffine(degrees=10, translate=2, scale=(0.9, 1.1))
    loader = DataLoader(images, labels, batch_size=60, shuffle=True, seed=0, transform=augment)

Geometry. Pixel (row i, column j) sits at x = j - (W - 1) / 2, y = i - (H - 1) / 2:
x to the right, y downwards, both measured from the image centre, so rotations
turn about the centre and a 90 degree turn of a square image maps the pixel
grid onto itself. A warp is given as its *forward* map, a (2, 3) matrix M
sending a point p of the input to ``M[:, :2] @ p + M[:, 2]`` in the output
(x first, then y). Each output pixel reads the input at the inverse image of its
centre; positions outside the input read ``fill``.
"""
import numpy as np

from ._checks import check_float, check_ndim
from .backend import device_of, get_array_module, to_device

ORDERS = ("bilinear", "nearest")


def affine_matrices(degrees=0.0, translate=(0.0, 0.0), scale=1.0, shear=0.0, n=None):
    """Forward (N, 2, 3) matrices: shear, then scale, then rotation about the centre, then translation.

    Args:
        degrees: rotation angle(s) in degrees, counter-clockwise as the image is displayed
            (row 0 at the top), as ``np.rot90`` and torchvision turn.
        translate: shift(s) ``(dx, dy)`` in pixels, right and down; shape (2,) or (N, 2).
        scale: zoom factor(s); above 1 enlarges the content.
        shear: horizontal shear angle(s) in degrees: x += tan(shear) * y.
        n: the batch size, when every argument is a scalar.

    Each argument is a scalar (the same for every image) or one value per image.

    Shape: -> (N, 2, 3) float64.
    """
    degrees, scale, shear = (np.asarray(a, dtype=np.float64) for a in (degrees, scale, shear))
    translate = np.asarray(translate, dtype=np.float64).reshape(-1, 2)
    if n is None:
        n = max(degrees.size, scale.size, shear.size, translate.shape[0])
    theta, shear_slope = np.deg2rad(degrees), np.tan(np.deg2rad(shear))
    cos, sin = np.cos(theta), np.sin(theta)
    # Counter-clockwise on screen with y pointing down: (1, 0) -> (cos, -sin).
    rotation = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], -2)  # (..., 2, 2)
    shear_scale = np.zeros(shear_slope.shape + (2, 2))
    shear_scale[..., 0, 0] = shear_scale[..., 1, 1] = 1.0
    shear_scale[..., 0, 1] = shear_slope
    linear = rotation @ (shear_scale * scale[..., None, None])
    matrices = np.empty((n, 2, 3))
    matrices[:, :, :2] = np.broadcast_to(linear, (n, 2, 2))
    matrices[:, :, 2] = np.broadcast_to(translate, (n, 2))
    return matrices


def _check_images(where, images):
    check_ndim(where, images, 4, "(N, C, H, W)")
    check_float(where, images)


def affine(images, matrices, order="bilinear", fill=0.0):
    """Warp each image by its forward affine matrix, resampling the whole batch at once.

    Args:
        images: (N, C, H, W) floating-point array (NumPy or CuPy).
        matrices: (N, 2, 3) or (2, 3) forward maps (see the module docstring and
            ``affine_matrices``); the same matrix for every image when (2, 3).
        order: ``"bilinear"`` (weighted mean of the 4 nearest input pixels) or
            ``"nearest"`` (the closest one).
        fill: the value read outside the input image.

    Returns a new array of the input's shape, dtype and device. Integer translations,
    the identity and (up to rounding of cos and sin) quarter turns of square images
    move pixels exactly. Bilinear values are convex combinations of input pixels and
    ``fill``; the result is clipped to their range, so float rounding cannot leave it.
    Source positions are computed in the images' dtype.
    """
    where = "augment.affine"
    _check_images(where, images)
    if order not in ORDERS:
        raise ValueError(f"{where}: order must be one of {ORDERS}, got {order!r}")
    n, channels, height, width = images.shape
    matrices = np.asarray(to_device(matrices, "cpu"), dtype=np.float64)
    if matrices.shape == (2, 3):
        matrices = np.broadcast_to(matrices, (n, 2, 3))
    if matrices.shape != (n, 2, 3):
        raise ValueError(f"{where}: expected matrices of shape ({n}, 2, 3) or (2, 3) for {n} images, got {matrices.shape}")
    xp = get_array_module(images)

    # Inverse maps, by the 2x2 inverse formula (exact for the identity and integer shifts).
    a, b, c, d = (matrices[:, i, j] for i, j in ((0, 0), (0, 1), (1, 0), (1, 1)))
    det = a * d - b * c
    singular = np.flatnonzero(~(np.isfinite(det) & (det != 0)))
    if singular.size:
        raise ValueError(f"{where}: matrix {singular[0]} is not invertible (determinant {det[singular[0]]})")
    dtype = images.dtype.type
    # Coordinates are computed in the images' dtype: float32 is plenty for positions within an
    # image, and integer shifts and the identity stay exact in it.
    inverse = to_device((np.stack([d, -b, -c, a], axis=-1) / det[:, None]).astype(dtype), device_of(images))
    shift = to_device(matrices[:, :, 2].astype(dtype), device_of(images))

    # Source position of every output pixel centre, (N, H, W) each. The batch-sized arrays
    # are few and updated in place: at MNIST sizes, fresh allocations cost more than arithmetic.
    centre_x, centre_y = dtype((width - 1) / 2), dtype((height - 1) / 2)
    dx = (xp.arange(width, dtype=dtype) - centre_x)[None, None, :] - shift[:, 0, None, None]  # (N, 1, W)
    dy = (xp.arange(height, dtype=dtype) - centre_y)[None, :, None] - shift[:, 1, None, None]  # (N, H, 1)
    src_x = xp.add(inverse[:, 0, None, None] * dx + centre_x, inverse[:, 1, None, None] * dy)
    src_y = xp.add(inverse[:, 2, None, None] * dx, inverse[:, 3, None, None] * dy + centre_y)
    if order == "nearest":
        src_x += dtype(0.5)
        src_y += dtype(0.5)

    # Clamp positions to one pixel beyond the border and pad the images with ``fill`` (1 pixel
    # before, 2 after): every corner read below then lies inside the padded image, and positions
    # farther out read only fill, as they should. No masks, no bounds checks per corner.
    xp.clip(src_x, -1, width, out=src_x)
    xp.clip(src_y, -1, height, out=src_y)
    fill = dtype(fill)
    row_stride = width + 3
    plane = (height + 3) * row_stride
    padded = xp.full((n, channels, height + 3, row_stride), fill, dtype=dtype)
    padded[:, :, 1:height + 1, 1:width + 1] = images
    flat = padded.reshape(-1)

    # Flat index of the top-left corner in padded.ravel(): plane (n, c), row, column. The
    # float sum is exact (integers far below 2**24); the planes are added as integers.
    col0, row0 = xp.floor(src_x), xp.floor(src_y)
    frac_x, frac_y = src_x, src_y  # the positions are not needed after this: reuse their memory
    frac_x -= col0
    frac_y -= row0
    row0 *= row_stride
    row0 += col0
    row0 += row_stride + 1
    corner = row0.astype(xp.intp).reshape(n, 1, -1)
    planes = (xp.arange(n * channels, dtype=xp.intp) * plane).reshape(n, channels, 1)
    if channels == 1:
        corner += planes
    else:
        corner = corner + planes  # (N, C, H*W)
    if order == "nearest":
        out = xp.take(flat, corner)
    else:
        frac_x, frac_y = frac_x.reshape(n, 1, -1), frac_y.reshape(n, 1, -1)
        # The other three corners: the same indices into views shifted by 1, a row, a row + 1.
        # Linear interpolation a + t (b - a) gives exactly a at t = 0 (the identity, integer shifts).
        top_left, top = xp.take(flat, corner), xp.take(flat[1:], corner)
        top -= top_left
        top *= frac_x
        top += top_left
        bottom_left, out = xp.take(flat[row_stride:], corner), xp.take(flat[row_stride + 1:], corner)
        out -= bottom_left
        out *= frac_x
        out += bottom_left
        out -= top
        out *= frac_y
        out += top
        # Rounding could step just outside the range of the pixels and fill; clip it back.
        # The bounds are 0-d arrays, not floats: no device-to-host copy on a GPU.
        xp.clip(out, xp.minimum(images.min(), fill), xp.maximum(images.max(), fill), out=out)
    return out.reshape(images.shape)


def shift(images, dx, dy, fill=0.0):
    """Move every image ``dx`` pixels right and ``dy`` down (integers, scalars or one per image), filling with ``fill``.

    Equals ``np.roll`` along W and H with the wrapped-around pixels set to ``fill``.
    """
    _check_images("augment.shift", images)
    dx, dy = np.broadcast_arrays(np.asarray(dx), np.asarray(dy))
    for name, value in (("dx", dx), ("dy", dy)):
        if value.dtype.kind not in "iu":
            raise TypeError(f"augment.shift: {name} must be whole pixels (integers), got {value.dtype}")
    translate = np.stack([dx, dy], axis=-1)
    return affine(images, affine_matrices(translate=translate, n=images.shape[0]), "nearest", fill)


def rotate(images, degrees, order="bilinear", fill=0.0):
    """Rotate every image counter-clockwise by ``degrees`` (a scalar or one angle per image) about its centre."""
    _check_images("augment.rotate", images)
    return affine(images, affine_matrices(degrees=degrees, n=images.shape[0]), order, fill)


class RandomAffine:
    """A ``DataLoader`` transform warping each image of a batch by its own random affine map.

    For each image, independently and uniformly: an angle in [-degrees, degrees], a
    shift of a whole number of pixels in [-translate, translate] along x and along y
    (whole pixels keep an otherwise unwarped image sharp), a zoom in [scale[0], scale[1]]
    and a shear angle in [-shear, shear]. Only the first array of the batch (the images)
    is changed; the others (labels) pass through.

    Args:
        degrees: largest rotation, in degrees.
        translate: largest shift, in whole pixels.
        scale: (low, high) range of the zoom factor.
        shear: largest horizontal shear angle, in degrees.
        order, fill: as in ``affine``.

    Example::

        loader = DataLoader(x, y, batch_size=60, shuffle=True, seed=0,
                            transform=RandomAffine(degrees=10, translate=2, scale=(0.9, 1.1)))
    """

    def __init__(self, degrees=0.0, translate=0, scale=(1.0, 1.0), shear=0.0, order="bilinear", fill=0.0):
        where = "RandomAffine"
        for name, value in (("degrees", degrees), ("shear", shear)):
            if not 0 <= value < 90:
                raise ValueError(f"{where}: {name} must be in [0, 90), got {value!r}")
        if isinstance(translate, bool) or not isinstance(translate, (int, np.integer)) or translate < 0:
            raise ValueError(f"{where}: translate must be a non-negative whole number of pixels, got {translate!r}")
        low, high = scale
        if not 0 < low <= high:
            raise ValueError(f"{where}: scale must be a range (low, high) with 0 < low <= high, got {scale!r}")
        if order not in ORDERS:
            raise ValueError(f"{where}: order must be one of {ORDERS}, got {order!r}")
        self.degrees, self.translate, self.scale, self.shear = float(degrees), int(translate), (float(low), float(high)), float(shear)
        self.order, self.fill = order, float(fill)

    def matrices(self, n, rng):
        """Draw ``n`` random forward matrices from ``rng``: (n, 2, 3) float64."""
        degrees = rng.uniform(-self.degrees, self.degrees, n)
        translate = rng.integers(-self.translate, self.translate, size=(n, 2), endpoint=True)
        scale = rng.uniform(*self.scale, n)
        shear = rng.uniform(-self.shear, self.shear, n)
        return affine_matrices(degrees, translate, scale, shear, n)

    def __call__(self, batch, rng):
        images, *rest = batch
        return (affine(images, self.matrices(len(images), rng), self.order, self.fill), *rest)

    def __repr__(self):
        return (
            f"RandomAffine(degrees={self.degrees}, translate={self.translate}, scale={self.scale}, "
            f"shear={self.shear}, order={self.order!r}, fill={self.fill})"
        )


__all__ = ["affine_matrices", "affine", "shift", "rotate", "RandomAffine", "ORDERS"]
