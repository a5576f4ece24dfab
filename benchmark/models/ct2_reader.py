"""Reader of CTranslate2 (binary version 6) ``model.bin`` files: named numpy arrays, nothing model-specific.

Written here (no ``ctranslate2`` dependency) from the format facts in shared/OFFLINE.md; the Whisper converter
(``benchmark.models.whisper_convert``) maps the arrays onto a transformers model.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.core.errors import WeightsUnavailableError

#: CTranslate2 DataType ids -> numpy dtype (bfloat16 is read as raw uint16 and widened by hand).
_CT2_DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: np.dtype("<u2"),
}
_BFLOAT16_ID = 5


@dataclass
class CT2Checkpoint:
    """The named variables of a CTranslate2 model file (aliases resolved to their targets)."""

    spec_name: str
    spec_revision: int
    variables: dict[str, np.ndarray]


class _Cursor:
    """Sequential little-endian reads over the file's bytes, with errors that give the offset."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.offset = 0
        self.path = path

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        size = struct.calcsize(fmt)
        if self.offset + size > len(self.data):
            raise WeightsUnavailableError(
                f"CTranslate2 file {self.path} is truncated at byte {self.offset} (file has {len(self.data)})"
            )
        values = struct.unpack_from(fmt, self.data, self.offset)
        self.offset += size
        return values

    def string(self) -> str:
        (length,) = self.unpack("<H")
        raw = self.data[self.offset : self.offset + length]
        self.offset += length
        return raw.rstrip(b"\0").decode("utf-8")

    def take(self, length: int) -> memoryview:
        if self.offset + length > len(self.data):
            raise WeightsUnavailableError(
                f"CTranslate2 file {self.path}: a variable of {length} bytes at byte {self.offset} runs past "
                f"the end of the file ({len(self.data)} bytes)"
            )
        view = memoryview(self.data)[self.offset : self.offset + length]
        self.offset += length
        return view


def read_ct2(path: Path) -> CT2Checkpoint:
    """Parse a CTranslate2 (binary version 6) ``model.bin``.

    Layout: u32 version, str spec name, u32 spec revision, u32 n variables; each variable is str name,
    u8 rank, u32 x rank dims, u8 dtype id, u32 byte count, raw data; then u32 n aliases of (str alias,
    str target). Strings are u16 length + bytes with a trailing NUL.
    """
    data = path.read_bytes()
    cursor = _Cursor(data, path)
    (version,) = cursor.unpack("<I")
    if version != 6:
        raise WeightsUnavailableError(
            f"CTranslate2 file {path} has binary version {version}; this reader reads 6"
        )
    spec_name = cursor.string()
    (spec_revision,) = cursor.unpack("<I")
    (count,) = cursor.unpack("<I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(count):
        name = cursor.string()
        (rank,) = cursor.unpack("<B")
        dims = cursor.unpack("<" + "I" * rank) if rank else ()
        (dtype_id,) = cursor.unpack("<B")
        (num_bytes,) = cursor.unpack("<I")
        if dtype_id not in _CT2_DTYPES:
            raise WeightsUnavailableError(
                f"CTranslate2 file {path}: variable {name!r} has unknown dtype id {dtype_id}"
            )
        dtype = _CT2_DTYPES[dtype_id]
        numel = int(np.prod(dims)) if dims else 1
        if numel * dtype.itemsize != num_bytes:
            raise WeightsUnavailableError(
                f"CTranslate2 file {path}: variable {name!r} of shape {dims} and dtype id {dtype_id} should take "
                f"{numel * dtype.itemsize} bytes, the file says {num_bytes}"
            )
        array = np.frombuffer(cursor.take(num_bytes), dtype=dtype).reshape(dims)
        if dtype_id == _BFLOAT16_ID:
            array = (array.astype(np.uint32) << 16).view(np.float32)
        variables[name] = array
    (num_aliases,) = cursor.unpack("<I")
    for _ in range(num_aliases):
        alias, target = cursor.string(), cursor.string()
        if target not in variables:
            raise WeightsUnavailableError(
                f"CTranslate2 file {path}: alias {alias!r} points at unknown {target!r}"
            )
        variables[alias] = variables[target]
    if cursor.offset != len(data):
        raise WeightsUnavailableError(
            f"CTranslate2 file {path}: {len(data) - cursor.offset} unread bytes after the aliases"
        )
    return CT2Checkpoint(spec_name, spec_revision, variables)
