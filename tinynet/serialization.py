"""Saving and loading state dicts and checkpoints as ``.npz`` archives.

``save(obj, path)`` writes a mapping ``{str: array | int | float | bool | mapping}``
(a model's ``state_dict()``, an optimizer's, or a checkpoint such as
``{"model": ..., "optimizer": ..., "epoch": 3}``); ``load(path)`` gives it back
as an ``OrderedDict`` in the same key order, with NumPy arrays and Python scalars.

Design choices:

* **No pickle.** The file is a plain NumPy ``.npz`` (a zip of ``.npy`` files) and is
  read with ``allow_pickle=False``, so loading a file from elsewhere cannot run
  code (unlike ``pickle``/old ``torch.load``, CVE-2025-32434). Object arrays,
  which would need pickle, are refused on save.
* **Nested mappings are flattened** with ``"/"`` (``{"model": {"0.weight": w}}`` is
  stored as ``"model/0.weight"``), so keys may not contain ``"/"``. One extra entry,
  ``"__tinynet__"``, holds a JSON list of the entries in order and marks which were
  Python scalars (stored as 0-d arrays, returned as ``int``/``float``/``bool``) and
  which were empty mappings. An ``.npz`` written by anything else (``np.savez``)
  loads too: every entry is an array, nested by ``"/"``.
* **Atomic write.** The archive goes to a temporary file in the target's folder,
  which is flushed and ``os.fsync``'d before ``os.replace`` moves it onto ``path``:
  a crash leaves either the old file or the new one, never half of one.
* CuPy arrays are copied to the host; ``Module.load_state_dict`` moves values to
  the model's device and dtype and checks keys and shapes.
"""
import hashlib
import json
import os
import secrets
import zipfile
import zlib
from collections import OrderedDict
import math
from collections.abc import Mapping

import numpy as np

from .backend import is_cupy_array, to_numpy

SEPARATOR = "/"
_META_KEY = "__tinynet__"
# The first bytes of a zip archive (and so of an .npz) and of a .npy file.
_ZIP_SIGNATURE, _NPY_SIGNATURE = b"PK\x03\x04", b"\x93NUM"
_FORMAT_VERSION = 1
# Entry kinds recorded in the metadata.
_ARRAY, _SCALAR, _MAPPING = "array", "scalar", "mapping"


def _flatten(obj, prefix, entries):
    """Append ``(flat_key, kind, value)`` for every leaf of ``obj`` (depth first, in order)."""
    if not isinstance(obj, Mapping):
        raise TypeError(f"tinynet.save: expected a mapping (e.g. a state_dict), got {type(obj).__name__}")
    for key, value in obj.items():
        if not isinstance(key, str) or not key or SEPARATOR in key:
            raise ValueError(
                f"tinynet.save: keys must be non-empty strings without {SEPARATOR!r} "
                f"(it separates nested keys), got {key!r} under {prefix.rstrip(SEPARATOR) or 'the top level'!r}"
            )
        if not prefix and key == _META_KEY:
            raise ValueError(f"tinynet.save: the key {_META_KEY!r} is reserved for the file's metadata")
        name = prefix + key
        if isinstance(value, Mapping):
            if value:
                _flatten(value, name + SEPARATOR, entries)
            else:
                entries.append((name, _MAPPING, None))
        elif isinstance(value, (bool, int, float)):
            scalar = np.asarray(value)
            if scalar.dtype.hasobject:  # an int beyond 64 bits
                raise TypeError(f"tinynet.save: {name!r} is the int {value}, which does not fit in 64 bits")
            entries.append((name, _SCALAR, scalar))
        elif isinstance(value, (np.ndarray, np.generic)) or is_cupy_array(value):
            array = to_numpy(value)
            if array.dtype.hasobject:
                raise TypeError(
                    f"tinynet.save: {name!r} is an array of dtype {array.dtype}, which holds Python "
                    "objects and could only be stored with pickle; convert it to a numeric array"
                )
            entries.append((name, _ARRAY, array))
        else:
            raise TypeError(
                f"tinynet.save: {name!r} is a {type(value).__name__}; values must be NumPy/CuPy arrays, "
                "Python int/float/bool or nested mappings (convert torch tensors with .numpy())"
            )
    return entries


def _write_npz(file, arrays):
    """Write ``{name: array}`` to the open binary ``file`` as an uncompressed ``.npz``.

    The same zip layout as ``np.savez``, written directly so that a key such as
    ``"file"`` cannot collide with one of ``np.savez``'s own keyword arguments.
    """
    with zipfile.ZipFile(file, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(name + ".npy", mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def save(obj, path):
    """Save a (nested) mapping of arrays and scalars to ``path`` as an ``.npz`` archive, atomically.

    Args:
        obj: ``{str: array | int | float | bool | mapping}``, e.g. ``model.state_dict()``
            or ``{"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}``.
            NumPy scalars (``np.float32(1.5)``) are kept as 0-d arrays of their dtype.
        path: the file to write (used as given: no ``.npz`` suffix is added).
            An existing file is replaced only once the new one is complete on disk.

    Raises:
        TypeError: ``obj`` is not a mapping, or a value is of an unsupported type
            (the message names its key), or an array has dtype object.
        ValueError: a key is not a non-empty string or contains ``"/"``.
        FileNotFoundError: the target folder does not exist.

    Example::

        tinynet.save({"model": model.state_dict(), "epoch": 3}, "checkpoint.npz")
    """
    entries = _flatten(obj, "", [])
    arrays = OrderedDict((name, value) for name, kind, value in entries if kind != _MAPPING)
    meta = {"format": "tinynet", "version": _FORMAT_VERSION, "entries": [[name, kind] for name, kind, _ in entries]}
    arrays[_META_KEY] = np.array(json.dumps(meta))

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"tinynet.save: cannot write {path}: folder {folder} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"tinynet.save: cannot write {path}: it is a folder")
    stem = _temporary_stem(path)
    temporary = f"{stem}{secrets.token_hex(4)}.tmp"
    # O_EXCL: never reuse someone else's file; mode 0o666 lets the umask decide, as open() would.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            _write_npz(file, arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.remove(temporary)
        except FileNotFoundError:
            pass
        raise
    _remove_leftovers(stem)


def _temporary_stem(path):
    """The start of the temporary names of saves to ``path``: hidden, in the same folder (so
    ``os.replace`` is a rename within one file system), at most 64 characters of the target's name
    (so a legal 255-character name still has a legal temporary one) and a hash of the whole name."""
    name = os.path.basename(path)
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return os.path.join(os.path.dirname(os.path.abspath(path)), f".{name[:64]}.{digest}.")


def _remove_leftovers(stem):
    """Remove temporary files of earlier saves to the same path that were killed before they
    finished (``<stem><8 hex digits>.tmp``); this save has just replaced the target."""
    folder, prefix = os.path.split(stem)
    for entry in os.scandir(folder):
        token = entry.name[len(prefix):-len(".tmp")]
        if (entry.name.startswith(prefix) and entry.name.endswith(".tmp") and len(token) == 8
                and all(c in "0123456789abcdef" for c in token) and entry.is_file(follow_symlinks=False)):
            try:
                os.remove(entry.path)
            except FileNotFoundError:  # another save removed it first
                pass


def _unflatten(entries, path):
    """Build nested OrderedDicts from ``(flat_key, value)`` pairs, in order."""
    result = OrderedDict()
    inconsistent = f"tinynet.load: {path} is inconsistent:"
    for name, value in entries:
        *parents, leaf = name.split(SEPARATOR)
        node = result
        for part in parents:
            node = node.setdefault(part, OrderedDict())
            if not isinstance(node, OrderedDict):
                raise ValueError(f"{inconsistent} {name!r} lies under {part!r}, which is not a mapping")
        if leaf in node:  # only a foreign file can hold both "a/b" and "a"
            raise ValueError(f"{inconsistent} {name!r} is also the name of a nested mapping")
        node[leaf] = value
    return result


_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _declared_member_count(path):
    """The number of members the end-of-central-directory record of the zip archive at ``path``
    declares, the record found as zipfile finds it (in the file's last 22 bytes, else the last
    signature in its final 64 KiB and 22 bytes); None when the 16-bit count reads 0xFFFF, the
    mark of a ZIP64 archive's count, which another record holds."""
    with open(path, "rb") as file:
        size = file.seek(0, os.SEEK_END)
        file.seek(max(0, size - (1 << 16) - 22))
        tail = file.read()
    at = len(tail) - 22 if tail[-22:-18] == b"PK\x05\x06" else tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        return None  # zipfile refuses such a file itself
    count = int.from_bytes(tail[at + 10:at + 12], "little")
    return None if count == 0xFFFF else count


def _read_npz(path):
    """``{name: array}`` of the ``.npy`` members of the zip archive at ``path``, in order.

    Each member's header is read first and its shape checked against the member's size, so a
    damaged or hostile header announcing a huge array is refused instead of allocated; a
    member's error names it. The members zipfile lists must be as many as the archive declares:
    a damaged length in the central directory (a file comment's, say) makes zipfile skip the
    entries after it without a word, and the file would load with entries missing."""
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        declared, listed = _declared_member_count(path), len(archive.infolist())
        if declared is not None and declared != listed:
            raise ValueError(f"its end record declares {declared} members, its central directory lists {listed}")
        for info in archive.infolist():
            name = info.filename[:-len(".npy")] if info.filename.endswith(".npy") else info.filename
            try:
                if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    # zipfile would raise RuntimeError or NotImplementedError: neither is ever written by
                    # tinynet.save (stored) or np.savez_compressed (deflated).
                    raise ValueError("it is encrypted or compressed with a method .npz files do not use")
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read_header = _HEADER_READERS.get(version)
                    if read_header is None:
                        raise ValueError(f".npy format version {version} is not supported")
                    shape, _, dtype = read_header(member)
                    if dtype.hasobject:
                        raise ValueError("it holds Python objects, which only pickle could load")
                    needed = math.prod(shape) * dtype.itemsize
                    if needed > info.file_size - member.tell():
                        raise ValueError(f"its header announces shape {shape} of {dtype} ({needed} bytes), "
                                         f"more than the {info.file_size - member.tell()} bytes stored")
                with archive.open(info) as member:
                    arrays[name] = np.lib.format.read_array(member, allow_pickle=False)
            # NotImplementedError: zipfile's, for a member flag it does not support (patched data).
            except (ValueError, OSError, EOFError, NotImplementedError, zipfile.BadZipFile, zlib.error) as err:
                raise ValueError(f"member {name!r}: {err}") from err
    return arrays


def load(path):
    """Load what ``save`` wrote: an ``OrderedDict`` in the saved key order.

    Arrays come back as NumPy arrays with their saved dtype and shape, Python
    scalars as ``int``/``float``/``bool``, nested mappings as nested ``OrderedDict``s.
    A ``.npz`` written by ``np.savez`` loads as well (all entries arrays).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not a readable ``.npz`` archive (corrupt,
            truncated, another format, or holding pickled objects); the message
            names the file.

    Example::

        model.load_state_dict(tinynet.load("checkpoint.npz")["model"])
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"tinynet.load: no such file: {path}")
    if not os.path.isfile(path):
        kind = "a folder" if os.path.isdir(path) else "not a regular file (a device, a pipe or a socket)"
        raise ValueError(f"tinynet.load: {path} is {kind}, not an .npz file")
    try:
        # Check the signature first: np.load would take any other file for a pickle and
        # suggest allow_pickle=True, which is the wrong advice for an untrusted file.
        with open(path, "rb") as file:
            signature = file.read(len(_ZIP_SIGNATURE))
        if signature != _ZIP_SIGNATURE:
            if signature == _NPY_SIGNATURE:
                raise ValueError("it is a single .npy array, not an .npz archive of named arrays")
            raise ValueError(f"it starts with {signature!r}, not the zip signature of an .npz archive")
        arrays = _read_npz(path)
        if _META_KEY in arrays:
            meta = json.loads(arrays.pop(_META_KEY).item())
            entries = [(name, kind) for name, kind in meta["entries"]]
        else:
            entries = [(name, _ARRAY) for name in arrays]
        values = []
        for name, kind in entries:
            if kind == _MAPPING:
                values.append((name, OrderedDict()))
            else:
                value = arrays.pop(name)  # KeyError if the metadata lists an entry the archive lacks
                values.append((name, value.item() if kind == _SCALAR else value))
        if arrays:
            raise ValueError(f"entries {sorted(arrays)} are not listed in its metadata")
    except (OSError, ValueError, KeyError, EOFError, TypeError, NotImplementedError, zipfile.BadZipFile) as err:
        # np.load raises OSError for an unknown format, ValueError for pickled data,
        # BadZipFile/EOFError/ValueError for a damaged archive or member; zipfile raises
        # NotImplementedError for a directory entry made by a zip version it does not know.
        raise ValueError(f"tinynet.load: {path} is not a valid tinynet .npz file: {err}") from err
    return _unflatten(values, path)
