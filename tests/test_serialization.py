"""save/load: exact round-trips, nesting and order, models, PyTorch weights, atomicity, clear errors."""
import os
import re
from collections import OrderedDict

import numpy as np
import pytest

import tinynet
from tinynet import load, save


def assert_same_state(loaded, expected):
    """Same keys in the same order, same nesting, same types, dtypes, shapes and values."""
    assert isinstance(loaded, OrderedDict)
    assert list(loaded) == list(expected)
    for key, value in expected.items():
        got = loaded[key]
        if isinstance(value, dict):
            assert_same_state(got, value)
        elif isinstance(value, np.ndarray):
            assert isinstance(got, np.ndarray) and got.dtype == value.dtype and got.shape == value.shape
            np.testing.assert_array_equal(got, value)
        else:
            assert type(got) is type(value) and got == value


def test_arrays_round_trip_exactly(tmp_path):
    rng = np.random.default_rng(0)
    state = OrderedDict(
        weight32=rng.standard_normal((3, 4)).astype(np.float32),
        weight64=rng.standard_normal((2, 3, 5)),
        counts=rng.integers(-(2**62), 2**62, size=7, dtype=np.int64),
        mask=rng.random(6) < 0.5,
        empty=np.empty((0, 3), np.float32),
        scalar_array=np.array(2.5, np.float32),
        extremes=np.array([np.inf, -np.inf, np.nan, -0.0, np.finfo(np.float64).tiny]),
    )
    path = tmp_path / "state.npz"
    save(state, path)
    assert_same_state(load(path), state)
    assert os.listdir(tmp_path) == ["state.npz"]  # written under the exact name, no temporary left


def test_nested_checkpoint_with_scalars_and_key_order(tmp_path):
    checkpoint = OrderedDict(
        model=OrderedDict([("2.weight", np.ones((2, 2), np.float32)), ("0.weight", np.zeros(3, np.float32))]),
        optimizer=OrderedDict(
            lr=0.05, step=3, nesterov=True, state=OrderedDict(),
            momentum=OrderedDict(z=np.arange(2.0), a=np.arange(1.0)),
        ),
        epoch=3,
        best=np.float32(0.25),  # a NumPy scalar keeps its dtype, as a 0-d array
    )
    save(checkpoint, str(tmp_path / "checkpoint.npz"))
    loaded = load(tmp_path / "checkpoint.npz")
    expected = dict(checkpoint, best=np.array(0.25, np.float32))
    assert_same_state(loaded, expected)
    assert type(loaded["epoch"]) is int and type(loaded["optimizer"]["lr"]) is float
    assert loaded["optimizer"]["nesterov"] is True


def test_linear_model_saved_and_loaded_gives_identical_outputs(tmp_path):
    model = tinynet.Sequential(tinynet.Linear(6, 5, rng=np.random.default_rng(1)), tinynet.ReLU(),
                               tinynet.Linear(5, 3, rng=np.random.default_rng(2)))
    save({"model": model.state_dict(), "epoch": 1}, tmp_path / "model.npz")
    fresh = tinynet.Sequential(tinynet.Linear(6, 5, rng=np.random.default_rng(3)), tinynet.ReLU(),
                               tinynet.Linear(5, 3, rng=np.random.default_rng(4)))
    fresh.load_state_dict(load(tmp_path / "model.npz")["model"])
    x = np.random.default_rng(5).standard_normal((4, 6)).astype(np.float32)
    np.testing.assert_array_equal(fresh(x), model(x))
    assert all(param.dtype == np.float32 for param in fresh.parameters())


def test_torch_state_dict_converted_to_numpy_loads_into_tinynet(tmp_path):
    torch = pytest.importorskip("torch")
    from helpers import assert_close

    torch.manual_seed(0)
    reference = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    save({key: value.detach().numpy() for key, value in reference.state_dict().items()}, tmp_path / "torch.npz")
    model = tinynet.Sequential(tinynet.Linear(6, 5), tinynet.ReLU(), tinynet.Linear(5, 3))
    model.load_state_dict(load(tmp_path / "torch.npz"))
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    assert_close(model(x), reference(torch.from_numpy(x)).detach().numpy(), np.float32)


def test_failed_replace_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.npz"
    save({"epoch": 1}, path)

    def crash(source, target):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        save({"epoch": 2, "weights": np.ones(1000)}, path)
    monkeypatch.undo()
    assert load(path) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["checkpoint.npz"]


def test_overwrite_replaces_the_file(tmp_path):
    path = tmp_path / "checkpoint.npz"
    save({"epoch": 1, "w": np.zeros(3)}, path)
    save({"epoch": 2}, path)
    assert load(path) == {"epoch": 2}


def test_npz_written_by_numpy_loads_nested_by_slash(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, **{"b": np.arange(3), "model/w": np.ones(2)})
    assert_same_state(load(path), OrderedDict(b=np.arange(3), model=OrderedDict(w=np.ones(2))))


@pytest.mark.parametrize(
    "keys, message",
    [(("a", "a/b"), "'a/b' lies under 'a', which is not a mapping"),
     (("a/b", "a"), "'a' is also the name of a nested mapping")],
)
def test_npz_with_an_entry_both_leaf_and_mapping_is_refused(tmp_path, keys, message):
    path = tmp_path / "clash.npz"
    np.savez(path, **{key: np.ones(1) for key in keys})
    with pytest.raises(ValueError, match=f"tinynet.load: {re.escape(str(path))} is inconsistent: {message}"):
        load(path)


def test_keys_that_clash_with_numpy_savez_arguments_are_fine(tmp_path):
    state = OrderedDict(file=np.ones(2), allow_pickle=np.zeros(1))
    save(state, tmp_path / "x.npz")
    assert_same_state(load(tmp_path / "x.npz"), state)


@pytest.mark.parametrize(
    "obj, error, message",
    [
        ({"names": np.array(["a", None], dtype=object)}, TypeError, "'names' is an array of dtype object"),
        ({"lr": None}, TypeError, "'lr' is a NoneType; values must be NumPy/CuPy arrays"),
        ({"model": {"w": [1.0, 2.0]}}, TypeError, "'model/w' is a list"),
        ({"a/b": np.ones(1)}, ValueError, "keys must be non-empty strings without '/'.* got 'a/b'"),
        ({"model": {3: np.ones(1)}}, ValueError, "got 3 under 'model'"),
        ({"": np.ones(1)}, ValueError, "got '' under 'the top level'"),
        ({"__tinynet__": 1}, ValueError, "'__tinynet__' is reserved"),
        ([np.ones(1)], TypeError, "expected a mapping .* got list"),
    ],
)
def test_unsupported_content_is_refused_and_nothing_is_written(tmp_path, obj, error, message):
    with pytest.raises(error, match=f"tinynet.save: .*{message}"):
        save(obj, tmp_path / "bad.npz")
    assert os.listdir(tmp_path) == []


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"folder {re.escape(str(tmp_path / 'nope'))} does not exist"):
        save({"a": 1}, tmp_path / "nope" / "x.npz")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"tinynet.load: no such file: {re.escape(str(tmp_path / 'x.npz'))}"):
        load(tmp_path / "x.npz")


def corrupt_files(tmp_path):
    """(file, detail) pairs: damaged or foreign files that load must refuse, naming the file."""
    valid = tmp_path / "valid.npz"
    save({"w": np.arange(1000.0), "epoch": 3}, valid)
    data = valid.read_bytes()
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, names=np.array(["a", None], dtype=object))
    cases = {
        "garbage.npz": (b"this is not an archive at all", "it starts with b'this', not the zip signature"),
        "truncated.npz": (data[: len(data) // 2], ""),
        "flipped.npz": (data[:200] + bytes(100) + data[300:], ""),
        "single.npy": (None, "is a single .npy array"),
    }
    for name, (content, detail) in cases.items():
        path = tmp_path / name
        if content is None:
            np.save(path, np.ones(3))
        else:
            path.write_bytes(content)
        yield path, detail
    yield pickled, "member 'names': it holds Python objects, which only pickle could load"

    # A member that is not a .npy file, and one whose header announces 10**12 elements.
    import zipfile
    header = np.lib.format.header_data_from_array_1_0(np.zeros(3))
    header["shape"] = (10**12,)
    for name, member in [("not_npy", b"plain text, no magic"), ("huge", None)]:
        path = tmp_path / f"{name}.npz"
        with zipfile.ZipFile(path, "w") as archive, archive.open("w.npy", "w") as file:
            if member is None:
                np.lib.format.write_array_header_1_0(file, header)
                file.write(bytes(24))
            else:
                file.write(member)
        detail = ("member 'w': .*magic" if member is not None else
                  r"member 'w': its header announces shape \(1000000000000,\) of float64 \(8000000000000 bytes\), "
                  r"more than the 24 bytes stored")
        yield path, detail


def test_corrupt_or_foreign_files_are_named(tmp_path):
    for path, detail in corrupt_files(tmp_path):
        expected = f"tinynet.load: {re.escape(str(path))} is not a valid tinynet .npz file: .*{detail}"
        with pytest.raises(ValueError, match=expected):
            load(path)


@pytest.mark.gpu
def test_cupy_arrays_are_saved_from_the_host(tmp_path):
    import cupy

    save({"w": cupy.arange(4, dtype=cupy.float32)}, tmp_path / "gpu.npz")
    loaded = load(tmp_path / "gpu.npz")["w"]
    assert isinstance(loaded, np.ndarray) and loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, np.arange(4, dtype=np.float32))


def test_a_folder_or_a_device_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match=f"tinynet.load: {re.escape(str(tmp_path))} is a folder, not an .npz file"):
        load(tmp_path)
    if os.path.exists("/dev/null"):
        with pytest.raises(ValueError, match="tinynet.load: /dev/null is not a regular file"):
            load("/dev/null")
    with pytest.raises(ValueError, match=f"tinynet.save: cannot write {re.escape(str(tmp_path))}: it is a folder"):
        save({"w": np.zeros(2)}, tmp_path)


def test_an_unsaveable_value_is_named_by_its_key(tmp_path):
    with pytest.raises(TypeError, match=r"tinynet.save: 'outer/big' is the int 1180591620717411303424, which does not fit"):
        save({"outer": {"big": 2**70}}, tmp_path / "x.npz")
    assert os.listdir(tmp_path) == []


def test_a_legal_long_name_saves_and_a_killed_saves_leftovers_are_removed(tmp_path):
    long_name = "w" * 246 + ".npz"  # 250 characters: legal on every common file system
    save({"w": np.arange(3.0)}, tmp_path / long_name)
    np.testing.assert_array_equal(load(tmp_path / long_name)["w"], np.arange(3.0))

    target = tmp_path / "model.npz"
    save({"w": np.zeros(2)}, target)
    from tinynet.serialization import _temporary_stem
    leftover = _temporary_stem(target) + "0123abcd.tmp"  # as a save killed before os.replace leaves it
    other = str(tmp_path / ".other.npz.12345678.0123abcd.tmp")  # another target's: not ours to remove
    for name in (leftover, other):
        with open(name, "wb") as file:
            file.write(b"half")
    save({"w": np.ones(2)}, target)
    assert sorted(os.listdir(tmp_path)) == sorted([".other.npz.12345678.0123abcd.tmp", "model.npz", long_name])
