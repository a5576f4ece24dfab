"""sha256 of what the suite hashes: bytes, files, JSON-able objects, integer ids and waveforms.

One place, so that a cache key, a fixture hash and a weight check computed in different stages agree on how
a value becomes bytes (ids as little-endian int64, waveforms as float32).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hash of a file's bytes, read in 1 MiB blocks (weight files are gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def sha256_json(obj: Any) -> str:
    """Hash of an object's canonical JSON (sorted keys; unknown types by ``str``)."""
    return sha256_bytes(json.dumps(obj, sort_keys=True, default=str).encode())


def sha256_ints(values: Any) -> str:
    """Hash of integer ids as int64, whatever their container or dtype (list, numpy, CPU tensor)."""
    return sha256_bytes(np.ascontiguousarray(np.asarray(values), dtype=np.int64).tobytes())


def sha256_waveform(waveform: np.ndarray) -> str:
    """Hash of a waveform exactly as a processor receives it (mono float32)."""
    return sha256_bytes(np.ascontiguousarray(waveform, dtype=np.float32).tobytes())
