"""MNIST as NumPy arrays.

``mnist(train=True)`` returns ``(images, labels)``: images float32 in [0, 1] of
shape (N, 1, 28, 28), labels int64 of shape (N,), N = 60,000 (train) or 10,000 (test).

Where the data comes from, and why:

* The files are looked for in ``<root>/MNIST/raw/``, the layout
  ``torchvision.datasets.MNIST`` uses, so one copy on disk serves both libraries.
  ``root`` is the argument, else the ``TINYNET_DATA`` environment variable, else
  ``./data``.
* When a split's two IDX files are there (uncompressed, or gzip'd with a ``.gz``
  suffix), they are parsed here with NumPy: a 16-byte (images) or 8-byte (labels)
  big-endian header, then raw uint8 pixels. That takes a fraction of a second and
  keeps torch out of the process: importing torch costs seconds of start-up and
  hundreds of MB of resident memory, which a NumPy training run should not pay.
* Only when they are absent (and ``download=True``) is torchvision asked to fetch
  them (``torchvision.datasets.MNIST(root, train, download=True)``, imported inside
  the function); the files it writes are then parsed the same way. Without
  torchvision or without network access, a ``RuntimeError`` says where the files
  were expected and how to point tinynet at them.

Nothing is cached between calls: the caller holds the arrays, and a module-level
cache would keep a second 188 MB copy of the training images alive (and hand out
arrays that one caller could modify under another).
"""
import gzip
import os
from pathlib import Path

import numpy as np

#: Environment variable naming the data root (the folder that holds ``MNIST/raw/``).
DATA_ENV = "TINYNET_DATA"

_IMAGE_SIZE = 28
_UINT8 = 0x08  # IDX type code of unsigned bytes, the only type MNIST uses


def data_root(root=None):
    """Return the data root as a Path: ``root`` if given, else ``$TINYNET_DATA``, else ``./data``."""
    if root is None:
        root = os.environ.get(DATA_ENV) or "data"
    return Path(root)


def _split_files(train):
    prefix = "train" if train else "t10k"
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def _find(raw_folder, name):
    """Return the path of ``name`` or ``name.gz`` in ``raw_folder``, or None if neither exists."""
    for candidate in (raw_folder / name, raw_folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path, ndim):
    """Read an IDX file of unsigned bytes (gzip'd if the name ends in ``.gz``) into a uint8 array.

    The format (http://yann.lecun.com/exdb/mnist/): a big-endian header of two zero
    bytes, the type code (0x08 = uint8), the number of dimensions, then one 4-byte
    size per dimension, followed by the data in C order.

    Raises ValueError naming the file when the header is wrong (not an IDX file,
    not uint8, not ``ndim`` dimensions) or the data is truncated or too long.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError; a cut-off .gz raises EOFError
        raise ValueError(f"MNIST file {path} is corrupt ({err}); delete it and download it again") from err

    def corrupt(problem):
        return ValueError(f"MNIST file {path} is corrupt or truncated: {problem}; delete it and download it again")

    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise corrupt(f"{len(data)} bytes is shorter than the {header_size}-byte IDX header")
    if data[0] != 0 or data[1] != 0 or data[2] != _UINT8 or data[3] != ndim:
        raise corrupt(
            f"magic number {data[:4].hex()} is not that of a {ndim}-D uint8 IDX file (expected 000008{ndim:02x})"
        )
    shape = tuple(int(size) for size in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header_size + int(np.prod(shape))
    if len(data) != expected:
        raise corrupt(f"a header of dimensions {shape} implies {expected} bytes, but the file has {len(data)}")
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


def _download(root, train):
    """Fetch MNIST into ``root/MNIST/raw`` with torchvision; raise RuntimeError(advice) on failure."""
    try:
        from torchvision.datasets import MNIST
    except ImportError as err:
        raise RuntimeError(f"torchvision is not installed ({err}), so MNIST cannot be downloaded") from err
    try:
        MNIST(str(root), train=train, download=True)
    except Exception as err:  # network errors arrive as RuntimeError, URLError or OSError
        raise RuntimeError(f"downloading MNIST with torchvision failed: {err}") from err


def mnist(root=None, train=True, download=True):
    """Load the MNIST training (``train=True``) or test split as NumPy arrays.

    Args:
        root: folder holding ``MNIST/raw/``; default ``$TINYNET_DATA``, else ``./data``.
        train: the 60,000 training images if True, else the 10,000 test images.
        download: fetch the files with torchvision when they are not under ``root``.

    Returns:
        ``(images, labels)``: images float32 in [0, 1] of shape (N, 1, 28, 28),
        C-contiguous (pixel / 255, exactly as torchvision's ``ToTensor``), and
        labels int64 in 0..9 of shape (N,).

    Raises:
        RuntimeError: the files are missing and could not be downloaded; the
            message names the folder, the files and how to point tinynet at them.
        ValueError: a file is corrupt or truncated (the message names it), the image and
            label files do not match, or a label is outside 0..9.

    Example::

        images, labels = mnist(train=False)      # (10000, 1, 28, 28), (10000,)
    """
    root = data_root(root)
    raw_folder = root / "MNIST" / "raw"
    names = _split_files(train)
    paths = [_find(raw_folder, name) for name in names]
    if None in paths:
        missing = [name for name, path in zip(names, paths) if path is None]
        advice = (
            f"MNIST {'training' if train else 'test'} files {missing} were not found in {raw_folder} "
            "(uncompressed or .gz). Put them there, or point tinynet at the folder that "
            f"holds MNIST/raw/ with mnist(root=...) or the {DATA_ENV} environment variable"
        )
        if not download:
            raise RuntimeError(f"{advice}, or pass download=True.")
        try:
            _download(root, train)
        except RuntimeError as err:
            raise RuntimeError(f"{advice}. ({err})") from err
        paths = [_find(raw_folder, name) for name in names]
        if None in paths:
            raise RuntimeError(f"{advice}. (torchvision's download did not produce them)")

    pixels = read_idx(paths[0], ndim=3)
    digits = read_idx(paths[1], ndim=1)
    if pixels.shape[1:] != (_IMAGE_SIZE, _IMAGE_SIZE):
        raise ValueError(f"MNIST file {paths[0]} holds images of size {pixels.shape[1:]}, expected (28, 28)")
    if len(pixels) != len(digits):
        raise ValueError(
            f"MNIST files do not match: {paths[0]} holds {len(pixels)} images but {paths[1]} {len(digits)} labels"
        )
    out_of_range = np.flatnonzero((digits < 0) | (digits > 9))
    if out_of_range.size:
        first = int(out_of_range[0])
        raise ValueError(
            f"MNIST file {paths[1]} holds {out_of_range.size} label(s) outside 0..9, "
            f"the first {digits[first]} at index {first}"
        )
    # Divide in float32, as torchvision's ToTensor does (img.float().div(255)), so the
    # values match it bit for bit; writing into the final array avoids a temporary.
    images = np.empty((len(pixels), 1, _IMAGE_SIZE, _IMAGE_SIZE), dtype=np.float32)
    np.divide(pixels[:, None], np.float32(255), out=images)
    return images, digits.astype(np.int64)
