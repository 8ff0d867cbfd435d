"""MNIST loader: identical to torchvision, root precedence, .gz files, clear errors, no torch import."""
import re
import subprocess
import sys

import numpy as np
import pytest
from helpers import write_idx

from tinynet.datasets import DATA_ENV, mnist, read_idx

FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def fake_mnist(root, train=True, n=3, seed=0, compress=False):
    """Write a small MNIST split under ``root/MNIST/raw``; return its (pixels, labels)."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    image_name, label_name = FILES[train]
    write_idx(raw / image_name, pixels, compress)
    write_idx(raw / label_name, labels, compress)
    return pixels, labels


def assert_loaded(result, pixels, labels):
    images, targets = result
    assert images.dtype == np.float32 and images.shape == (len(pixels), 1, 28, 28) and images.flags.c_contiguous
    assert targets.dtype == np.int64 and targets.shape == (len(labels),)
    np.testing.assert_array_equal(images[:, 0], pixels.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(targets, labels)


@pytest.fixture
def offline(monkeypatch):
    """Make torchvision's MNIST download fail the way it does without network access."""
    torchvision = pytest.importorskip("torchvision")

    def fail(self):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://..., got:\n<urlopen error>")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", fail)


@pytest.mark.parametrize("train", [True, False], ids=["train", "test"])
def test_matches_torchvision_exactly(mnist_root, train):
    torchvision = pytest.importorskip("torchvision")
    reference = torchvision.datasets.MNIST(mnist_root, train=train, download=False)
    images, labels = mnist(mnist_root, train=train)
    assert images.shape == ((60000 if train else 10000), 1, 28, 28)
    assert images.min() == 0.0 and images.max() == 1.0
    assert_loaded((images, labels), reference.data.numpy(), reference.targets.numpy())
    # torchvision's ToTensor scales by a float32 division, bit for bit the same.
    np.testing.assert_array_equal(images[0], torchvision.transforms.functional.to_tensor(reference[0][0]).numpy())


def test_gzipped_files_are_read(tmp_path):
    pixels, labels = fake_mnist(tmp_path, train=False, n=4, compress=True)
    assert_loaded(mnist(tmp_path, train=False, download=False), pixels, labels)


def test_root_argument_beats_environment_beats_default(tmp_path, monkeypatch):
    argument, environment, cwd = (tmp_path / name for name in ("argument", "environment", "cwd"))
    from_argument = fake_mnist(argument, n=2, seed=1)
    from_environment = fake_mnist(environment, n=3, seed=2)
    from_default = fake_mnist(cwd / "data", n=4, seed=3)
    monkeypatch.chdir(cwd)

    monkeypatch.setenv(DATA_ENV, str(environment))
    assert_loaded(mnist(str(argument), download=False), *from_argument)
    assert_loaded(mnist(download=False), *from_environment)
    monkeypatch.delenv(DATA_ENV)
    assert_loaded(mnist(download=False), *from_default)


def test_missing_files_without_download_say_where_and_how(tmp_path):
    with pytest.raises(RuntimeError) as info:
        mnist(tmp_path, train=False, download=False)
    message = str(info.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    assert "t10k-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message
    assert "root=" in message and DATA_ENV in message and "download=True" in message


def test_missing_files_offline_raise_a_clear_runtime_error(tmp_path, offline):
    expected = f"not found in {re.escape(str(tmp_path))}.*{DATA_ENV}.*Error downloading"
    with pytest.raises(RuntimeError, match=expected) as info:
        mnist(tmp_path, train=True)
    assert "train-images-idx3-ubyte" in str(info.value)


def test_missing_files_without_torchvision_raise_a_clear_runtime_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # makes `import torchvision` fail
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(RuntimeError, match=f"not found in {re.escape(str(tmp_path))}.*torchvision is not installed"):
        mnist(tmp_path)


def test_download_fallback_parses_what_torchvision_fetched(tmp_path, monkeypatch):
    torchvision = pytest.importorskip("torchvision")
    fetched = {}

    def fake_download(self):  # stands in for the network: writes all four raw files where torchvision would
        fetched[True] = fake_mnist(tmp_path, train=True, n=5, seed=1)
        fetched[False] = fake_mnist(tmp_path, train=False, n=2, seed=2)

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", fake_download)
    assert_loaded(mnist(tmp_path, train=False), *fetched[False])


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda data: data[:-100], r"dimensions \(3, 28, 28\) implies 2368 bytes, but the file has 2268"),
        (lambda data: data + b"\0", "implies 2368 bytes, but the file has 2369"),
        (lambda data: data[:10], "10 bytes is shorter than the 16-byte IDX header"),
        (lambda data: b"\x00\x00\x0d\x03" + data[4:], "magic number 00000d03 is not that of a 3-D uint8 IDX file"),
        (lambda data: b"PK\x03\x04" + data[4:], "magic number 504b0304"),
    ],
    ids=["truncated", "too-long", "no-header", "float-type", "not-idx"],
)
def test_corrupt_file_is_named(tmp_path, damage, message):
    fake_mnist(tmp_path, n=3)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError, match=f"MNIST file {re.escape(str(path))} is corrupt or truncated: .*{message}"):
        mnist(tmp_path, download=False)


def test_corrupt_gzip_file_is_named(tmp_path):
    fake_mnist(tmp_path, n=3, compress=True)
    path = tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-8])  # cut off the gzip trailer
    with pytest.raises(ValueError, match=f"MNIST file {re.escape(str(path))} is corrupt"):
        mnist(tmp_path, download=False)


def test_image_and_label_counts_must_match(tmp_path):
    fake_mnist(tmp_path, n=3)
    write_idx(tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte", np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="holds 3 images but .*train-labels-idx1-ubyte 2 labels"):
        mnist(tmp_path, download=False)


@pytest.mark.parametrize("labels, message", [
    ([3, 10, 255], r"holds 2 label\(s\) outside 0..9, the first 10 at index 1"),
    ([12, 0, 9], r"holds 1 label\(s\) outside 0..9, the first 12 at index 0"),
])
def test_labels_outside_0_to_9_are_refused(tmp_path, labels, message):
    fake_mnist(tmp_path, n=3)
    path = write_idx(tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte", np.array(labels, np.uint8))
    with pytest.raises(ValueError, match=f"MNIST file {re.escape(str(path))} {message}"):
        mnist(tmp_path, download=False)


def test_read_idx_returns_the_stored_array(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "x", array), ndim=3), array)
    with pytest.raises(ValueError, match="not that of a 2-D uint8 IDX file"):
        read_idx(tmp_path / "x", ndim=2)


def test_loading_mnist_does_not_import_torch(tmp_path):
    fake_mnist(tmp_path)
    code = (
        "import sys, tinynet; "
        f"images, labels = tinynet.datasets.mnist({str(tmp_path)!r}, download=False); "
        "assert images.shape == (3, 1, 28, 28); "
        "assert 'torch' not in sys.modules and 'torchvision' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
