"""Safe checkpoints: ``chainrule.save(obj, path)`` and ``chainrule.load(path)``.

The file is a safetensors file (the ``io`` extra: ``pip install 'chainrule[io]'``).
Every tensor and NumPy array in ``obj`` is a safetensors entry named by its path
(``"model.fc1.weight"``, ``"optim.state.0.exp_avg"``); the structure and every other leaf
(numbers, strings, None, e.g. RNG states with 128-bit ints, hyperparameters, epoch
counters) is JSON in the header's metadata. Loading parses JSON and raw arrays only:
it never runs code, unlike pickle.

Writes are atomic: the bytes go to a temporary file in the target's directory, which is
flushed to disk and renamed over the target, so a crash or a full disk leaves the
previous checkpoint as it was. A truncated, corrupted or foreign file raises
``CheckpointError`` naming the file and what is wrong with it. A safetensors file
without chainrule metadata (weights saved by other tools) loads as a flat dict of
tensors.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
from typing import Any, BinaryIO

import numpy as np

from .core.tensor import Tensor

FORMAT_KEY = "chainrule.format"
TREE_KEY = "chainrule.tree"
FORMAT_VERSION = 1
_MAX_HEADER = 100_000_000  # the safetensors limit on the JSON header, in bytes
_DTYPES = {np.dtype(t) for t in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16",
                                 "uint32", "uint64", "float16", "float32", "float64")}
_FILE_DTYPES = {"BOOL", "I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64", "F16", "F32", "F64"}
_WRITE_CHUNK = 1 << 26


class CheckpointError(ValueError):
    """A checkpoint file is truncated, corrupted or not a checkpoint."""


def _safetensors():
    try:
        import safetensors.numpy
    except ImportError as exc:
        raise ImportError("chainrule.save/load store checkpoints in the safetensors format, "
                          "and safetensors is not installed: pip install 'chainrule[io]'"
                          ) from exc
    return safetensors.numpy

# ---------------------------------------------------------------- encoding
# The tree is JSON. None, bools, ints, strings and finite floats are themselves; every
# other node is a list that starts with a tag: ["dict", [[key, node], ...]],
# ["list", [...]], ["tuple", [...]], ["float", "nan"], ["tensor", name, requires_grad],
# ["ndarray", name], ["scalar", name] (a NumPy scalar). A tensor that appears twice is
# stored once and comes back as one object.


class _Encoder:
    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}
        self.names: dict[int, str] = {}  # id(tensor or array) -> entry name
        self.keep: list = []             # keeps those ids alive while saving

    def entry(self, value, path: list, array: np.ndarray) -> str:
        name = self.names.get(id(value))
        if name is not None:
            return name
        where = ".".join(map(str, path)) or "tensor"
        if array.dtype.newbyteorder("=") not in _DTYPES:
            raise TypeError(f"save: {where!r} has dtype {array.dtype}; checkpoints store bool, "
                            f"int, uint and float arrays")
        name, k = where, 1
        while name in self.arrays or name == "__metadata__":
            k += 1
            name = f"{where}#{k}"
        # contiguous, little-endian: safetensors writes the raw buffer as it is
        self.arrays[name] = array.astype(array.dtype.newbyteorder("<"), order="C", copy=False)
        self.names[id(value)] = name
        self.keep.append(value)
        return name

    def encode(self, obj, path: list):
        if isinstance(obj, np.generic):  # before float: np.float64 is a float subclass
            return ["scalar", self.entry(obj, path, np.asarray(obj))]
        if obj is None or isinstance(obj, (bool, int, str)):
            return obj
        if isinstance(obj, float):
            return obj if math.isfinite(obj) else ["float", repr(obj)]
        if isinstance(obj, Tensor):
            return ["tensor", self.entry(obj, path, obj.data), bool(obj.requires_grad)]
        if isinstance(obj, np.ndarray):
            return ["ndarray", self.entry(obj, path, obj)]
        if isinstance(obj, dict):
            items = []
            for key, value in obj.items():
                if not isinstance(key, (str, int)) or isinstance(key, bool):
                    raise TypeError(f"save: dict keys must be str or int, got {key!r} at "
                                    f"{'.'.join(map(str, path)) or 'the top level'!r}")
                items.append([key, self.encode(value, path + [key])])
            return ["dict", items]
        if isinstance(obj, (list, tuple)):
            tag = "tuple" if isinstance(obj, tuple) else "list"
            return [tag, [self.encode(v, path + [i]) for i, v in enumerate(obj)]]
        raise TypeError(f"save: cannot store a {type(obj).__name__} at "
                        f"{'.'.join(map(str, path)) or 'the top level'!r}; checkpoints hold "
                        f"tensors, NumPy arrays, numbers, strings and None in dicts, lists "
                        f"and tuples (no pickle)")


def _decode(node, arrays: dict, memo: dict, where: str):
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if not isinstance(node, list) or not node or not isinstance(node[0], str):
        raise CheckpointError(f"{where}: corrupted checkpoint: unexpected node {node!r:.60}")
    tag, args = node[0], node[1:]
    if tag == "dict":
        return {k: _decode(v, arrays, memo, where) for k, v in args[0]}
    if tag == "list":
        return [_decode(v, arrays, memo, where) for v in args[0]]
    if tag == "tuple":
        return tuple(_decode(v, arrays, memo, where) for v in args[0])
    if tag == "float":
        return float(args[0])
    if tag in ("tensor", "ndarray", "scalar"):
        name = args[0]
        if name not in arrays:
            raise CheckpointError(f"{where}: corrupted checkpoint: the metadata refers to "
                                  f"tensor {name!r}, which is not in the file")
        if name not in memo:
            arr = arrays[name]
            if tag == "tensor":
                memo[name] = Tensor(arr, requires_grad=bool(args[1]))
            else:
                memo[name] = arr if tag == "ndarray" else arr[()]
        return memo[name]
    raise CheckpointError(f"{where}: corrupted checkpoint: unknown node tag {tag!r}")

# ---------------------------------------------------------------- files


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view[:_WRITE_CHUNK]):]


def _atomic_write(path: str, data: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o666)  # the umask applies, as for open()
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is not None:
            raise OSError(exc.errno, f"save: writing {path} failed ({exc.strerror}); any "
                                     f"previous file there is unchanged") from exc
        raise
    if os.name == "posix":  # make the rename itself durable
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def save(obj: Any, f: str | os.PathLike | BinaryIO) -> None:
    """Save ``obj`` to the file ``f`` (a path, written atomically, or a binary file object).

    ``obj`` is a tensor, a NumPy array, or dicts (str or int keys), lists and tuples of
    them and of Python numbers, strings, bools and None. Dtypes, shapes (0-d and empty
    included) and ``requires_grad`` are kept; non-contiguous inputs are stored by value.
    """
    st = _safetensors()
    enc = _Encoder()
    tree = enc.encode(obj, [])
    metadata = {FORMAT_KEY: str(FORMAT_VERSION),
                TREE_KEY: json.dumps(tree, allow_nan=False, separators=(",", ":"))}
    data = st.save(enc.arrays, metadata=metadata)
    if hasattr(f, "write"):
        f.write(data)
    else:  # through symlinks: the link stays, the file it points to is replaced
        _atomic_write(os.path.realpath(os.fspath(f)), data)


def _check_header(data: bytes, where: str) -> dict:
    """The parsed safetensors header, after checking that the file holds all it claims."""
    size = len(data)
    if size < 8:
        raise CheckpointError(f"{where}: file is truncated: {size} bytes, fewer than the 8 "
                              f"of a safetensors header length")
    n = int.from_bytes(data[:8], "little")
    if n > _MAX_HEADER:
        raise CheckpointError(f"{where}: corrupted header: the first 8 bytes give a header "
                              f"length of {n} bytes; not a safetensors checkpoint")
    if n > size - 8:
        raise CheckpointError(f"{where}: file is truncated: header says {n} bytes of header, "
                              f"file has {size - 8}")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{where}: corrupted header: not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{where}: corrupted header: expected a JSON object, got "
                              f"{type(header).__name__}")
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            start, stop = entry["data_offsets"]
            end = max(end, int(stop))
            dtype = entry["dtype"]
        except (TypeError, KeyError, ValueError):
            raise CheckpointError(f"{where}: corrupted header: entry {name!r} has no valid "
                                  f"dtype and data_offsets") from None
        if dtype not in _FILE_DTYPES:
            raise CheckpointError(f"{where}: tensor {name!r} has dtype {dtype}, which NumPy "
                                  f"cannot hold (supported: {', '.join(sorted(_FILE_DTYPES))})")
    have = size - 8 - n
    if end > have:
        raise CheckpointError(f"{where}: file is truncated: header says {end} bytes of data, "
                              f"file has {have}")
    if end < have:
        raise CheckpointError(f"{where}: corrupted file: header says {end} bytes of data, "
                              f"file has {have} (extra bytes at the end)")
    return header


def load(f: str | os.PathLike | BinaryIO) -> Any:
    """Load what ``save`` wrote to ``f`` (a path or a binary file object): the same
    structure, with tensors as ``Tensor``s, NumPy arrays as arrays and Python values as
    themselves. Runs no code from the file.

    A safetensors file without chainrule metadata loads as a flat ``{name: Tensor}``
    dict. Raises ``CheckpointError`` for a truncated, corrupted or malformed file.
    """
    st = _safetensors()
    if hasattr(f, "read"):
        where, data = getattr(f, "name", repr(f)), f.read()
    else:
        where = os.fspath(f)
        with open(where, "rb") as fh:
            data = fh.read()
    header = _check_header(data, where)
    try:
        arrays = st.load(data)
    except Exception as exc:  # safetensors raises its own SafetensorError
        raise CheckpointError(f"{where}: corrupted file: {exc}") from None
    del data
    arrays = {k: a if a.flags.writeable else a.copy() for k, a in arrays.items()}
    meta = header.get("__metadata__") or {}
    if FORMAT_KEY not in meta and TREE_KEY not in meta:
        return {name: Tensor(arr) for name, arr in arrays.items()}
    for key in (FORMAT_KEY, TREE_KEY):
        if key not in meta:
            raise CheckpointError(f"{where}: not a chainrule checkpoint: metadata key {key!r} "
                                  f"missing")
    if meta[FORMAT_KEY] != str(FORMAT_VERSION):
        raise CheckpointError(f"{where}: checkpoint format {meta[FORMAT_KEY]!r} is not one "
                              f"this chainrule reads (format {FORMAT_VERSION})")
    try:
        tree = json.loads(meta[TREE_KEY])
    except ValueError as exc:
        raise CheckpointError(f"{where}: corrupted checkpoint: metadata {TREE_KEY!r} is not "
                              f"valid JSON ({exc})") from None
    try:
        return _decode(tree, arrays, {}, where)
    except (TypeError, ValueError, IndexError, RuntimeError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{where}: corrupted checkpoint: {exc}") from None
