"""Content-keyed caches: one latent entry per sample, and audio-encoder outputs per clip.

The key hashes what the model *receives* (token ids, resampled waveform, processor config, template) plus
the adapter's source, the library versions, dtype, device type and layer list, never a sample id: renaming a
sample reuses its entry, changing a comma or a library version does not. Entries are written to a temporary
file and renamed into place, and carry a checksum of their tensor, so a torn or corrupt entry is detected,
removed and recomputed instead of being read back as latents.
"""

from __future__ import annotations

import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.core.hashing import sha256_bytes, sha256_json
from benchmark.core.provenance import library_versions
from benchmark.core.schema import CONTROL_NAMES
from benchmark.models.base import EncoderCache, ModelAdapter, PreparedInput

if TYPE_CHECKING:
    import torch

CACHE_FORMAT = "1"


def default_cache_dir() -> Path:
    """``$LALM_BENCH_CACHE`` or ``~/.cache/lalm-bench/latents``."""
    env = os.environ.get("LALM_BENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "lalm-bench" / "latents"


def latent_key(
    adapter: ModelAdapter,
    item: PreparedInput,
    *,
    dtype: str,
    device_type: str,
    layers: list[str],
) -> str:
    """The cache key of one sample's latents under one model configuration."""
    versions = library_versions()
    material = {
        "format": CACHE_FORMAT,
        "model": adapter.spec.name,
        "revision": adapter.spec.revision,
        "adapter_source": adapter.source_sha256(),
        "processor": sha256_json(adapter.processor_config()),
        "torch": versions.get("torch", ""),
        "transformers": versions.get("transformers", ""),
        "dtype": dtype,
        "device_type": device_type,
        "layers": layers,
        "inputs": dict(sorted(item.key_material.items())),
    }
    return sha256_json(material)


@dataclass
class CachedLatents:
    """One sample's entry: latents ``[layers, d]`` and its token-identity controls ``[2, d]`` (NaN rows where
    the adapter gives no content span), both float32."""

    latents: np.ndarray
    controls: np.ndarray


class LatentCache:
    """Directory of per-sample latent entries (``<root>/<model>/<key[:2]>/<key>.npz``).

    An entry holds the latents and the controls, each with its own checksum (``sha256`` covers the latents
    alone, as in entries written before controls existed, so older readers still read newer entries). An
    entry without controls is a miss, not corruption: it is recomputed and overwritten.
    """

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.corrupt_entries: list[Path] = []
        self.without_controls = 0

    def _path(self, model: str, key: str) -> Path:
        return self.root / model.replace("/", "__") / key[:2] / f"{key}.npz"

    def get(self, model: str, key: str) -> CachedLatents | None:
        """The cached entry, or None when missing, without controls, or corrupt (then it is deleted)."""
        path = self._path(model, key)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as entry:
                if "controls" not in entry.files:
                    self.without_controls += 1
                    return None
                latents, controls = entry["latents"], entry["controls"]
                stored_key = str(entry["key"])
                checks = (str(entry["sha256"]), str(entry["controls_sha256"]))
            if stored_key != key:
                raise ValueError("key mismatch")
            if checks != (_sha(latents), _sha(controls)):
                raise ValueError("checksum mismatch")
            if latents.ndim != 2 or controls.shape != (len(CONTROL_NAMES), latents.shape[1]):
                raise ValueError(f"shapes {latents.shape} and {controls.shape} do not fit")
        except Exception:  # any unreadable entry is treated as absent and recomputed
            self.corrupt_entries.append(path)
            path.unlink(missing_ok=True)
            return None
        return CachedLatents(latents, controls)

    def put(self, model: str, key: str, latents: np.ndarray, controls: np.ndarray) -> None:
        """Write atomically: a temp file in the same folder, then ``os.replace``."""
        latents = np.ascontiguousarray(latents, dtype=np.float32)
        controls = np.ascontiguousarray(controls, dtype=np.float32)
        if latents.ndim != 2 or controls.shape != (len(CONTROL_NAMES), latents.shape[1]):
            raise ValueError(
                f"cache entry {key[:12]} of {model!r}: latents {latents.shape} need controls "
                f"({len(CONTROL_NAMES)}, {latents.shape[-1]}), got {controls.shape}"
            )
        path = self._path(model, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                np.savez(
                    stream,
                    latents=latents,
                    controls=controls,
                    key=np.array(key),
                    sha256=np.array(_sha(latents)),
                    controls_sha256=np.array(_sha(controls)),
                )
            os.replace(temp_name, path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise


def _sha(array: np.ndarray) -> str:
    return sha256_bytes(np.ascontiguousarray(array).tobytes())


#: Environment variable naming a folder for encoder outputs kept across runs (off when unset).
ENCODER_CACHE_ENV = "LALM_BENCH_ENCODER_CACHE"

#: Environment variable that turns off the sharing of a clip's encoder output between templates when set to
#: ``0``: each template's decoder pass then encodes its clips again, as before the sharing existed. A
#: measurement switch (``benchmarks/bench_main_job.py`` times the main job both ways); latents are the same.
ENCODER_SHARING_ENV = "LALM_BENCH_SHARE_ENCODER"


class DiskEncoderStore:
    """Raw audio-encoder outputs on disk, across runs: ``<root>/<fingerprint[:32]>/<sha[:2]>/<sha>.safetensors``.

    It pays where latents must be recomputed for audio whose encoder output cannot have changed (a prompt, a
    template or decoder-side code changed; the adapter's ``encoder_fingerprint`` covers what can change it):
    measured on whisper-base here, a clip costs ~2 s to encode and ~2 ms to read back or to write, 3 MB in
    float32 (``benchmarks/bench_templates.py``). It costs disk (~2.7 GiB for 960 clips), so it is opt-in:
    ``extract_templates(..., encoder_cache_dir=...)`` or ``$LALM_BENCH_ENCODER_CACHE``. Entries are written
    atomically with the key and a checksum; an unreadable or mismatched entry is deleted and recomputed.
    """

    def __init__(self, root: Path | str, fingerprint: str) -> None:
        self.folder = Path(root) / fingerprint[:32]
        self.reads = 0
        self.writes = 0
        self.corrupt_entries: list[Path] = []

    def _path(self, key: str) -> Path:
        digest = sha256_bytes(key.encode())
        return self.folder / digest[:2] / f"{digest}.safetensors"

    def get_or_compute(self, key: str, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        from safetensors.torch import load_file, save_file

        path = self._path(key)
        if path.exists():
            try:
                from safetensors import safe_open

                with safe_open(str(path), framework="pt") as handle:
                    metadata = handle.metadata() or {}
                value = load_file(str(path))["output"]
                if metadata.get("key") != key or metadata.get("sha256") != _tensor_digest(value):
                    raise ValueError("key or checksum mismatch")
                self.reads += 1
                return value
            except Exception:  # any unreadable entry is treated as absent and recomputed
                self.corrupt_entries.append(path)
                path.unlink(missing_ok=True)
        value = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(handle)
        try:
            tensor = value.detach().contiguous().cpu()
            save_file({"output": tensor}, temp_name, metadata={"key": key, "sha256": _tensor_digest(tensor)})
            os.replace(temp_name, path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        self.writes += 1
        return value


def _tensor_digest(tensor: torch.Tensor) -> str:
    """sha256 of a tensor's bytes whatever its dtype (bfloat16 has no numpy type: viewed as int16)."""
    import torch

    flat = tensor.detach().contiguous().cpu().reshape(-1)
    if flat.dtype in (torch.bfloat16, torch.float16):
        flat = flat.view(torch.int16)
    return sha256_bytes(f"{tensor.dtype}{tuple(tensor.shape)}".encode() + flat.numpy().tobytes())


class MemoryEncoderCache(EncoderCache):
    """In-memory store of audio-encoder outputs (keyed by the adapter, by waveform hash), scoped to batches.

    The engine runs every template's decoder pass of a batch before the next batch, and calls ``end_batch``
    in between: entries the next batch does not need are dropped, so the cache holds what one batch needs
    (two batches' worth only while a clip's rows straddle a batch boundary), however large the probe set.
    A global LRU bound thrashed instead: a 1 GiB cache held ~340 Whisper outputs, fewer than a full profile's
    960-1,216 clips, so a clip's second template could find it evicted. ``max_bytes`` (default: no bound) is
    a safety net for callers that never end batches; ``peak_bytes`` records the most ever held.
    """

    def __init__(self, max_bytes: int | None = None, disk: DiskEncoderStore | None = None) -> None:
        self.max_bytes = max_bytes
        #: where ``stored`` outputs go across runs (None: nowhere; set by the engine when asked)
        self.disk = disk
        self._entries: OrderedDict[str, Any] = OrderedDict()
        self._touched: set[str] = set()
        self._bytes = 0
        self.peak_bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def held_bytes(self) -> int:
        return self._bytes

    def get_or_compute(self, key: str, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        self._touched.add(key)
        if key in self._entries:
            self._entries.move_to_end(key)
            self.hits += 1
            return self._entries[key]
        self.misses += 1
        value = compute()
        size = _nbytes(value)
        if self.max_bytes is None or size <= self.max_bytes:
            self._entries[key] = value
            self._bytes += size
            self.peak_bytes = max(self.peak_bytes, self._bytes)
            while self.max_bytes is not None and self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= _nbytes(evicted)
        return value

    def stored(self, key: str, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """A raw encoder output through the disk store when there is one, else computed."""
        return compute() if self.disk is None else self.disk.get_or_compute(key, compute)

    def end_batch(self, *, carry: bool) -> None:
        """Drop every entry (``carry=False``), or every entry this batch did not use (``carry=True``: the next
        batch shares a clip with this one)."""
        for key in list(self._entries):
            if not carry or key not in self._touched:
                self._bytes -= _nbytes(self._entries.pop(key))
        self._touched.clear()


def _nbytes(value: torch.Tensor) -> int:
    return value.element_size() * value.nelement()
