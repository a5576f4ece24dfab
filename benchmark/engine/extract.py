"""The extraction engine: per-layer activations of the last real input token, batched and cached.

How it works, and why:
- Hooks on the decoder blocks keep only the last real token's vector of each row (gathered inside the hook,
  so the full ``[batch, seq, d]`` activations are never copied out). ``emb`` is the *input* of block 0,
  i.e. after any audio merge; ``final_norm`` is the final norm's output (transformers'
  ``hidden_states[-1]``), and ``block{L-1}`` is the raw last block, which differs from it.
- A ``StopForward`` raised right after the final norm ends the forward: the LM head (a 128k-262k vocabulary
  projection on most models) never runs and no logits are allocated.
- The last real token is read from the attention mask via the adapter's ``last_positions`` (right padding),
  never ``[:, -1]``; inputs are sorted by length so padding stays small; a sample's latents do not depend on
  batch size or neighbours (tested, batch 1 vs batch 8).
- One cache entry per sample, keyed by content: a warm rerun does no forward pass, an interrupted run
  resumes where it stopped, and shards can share one cache.
- Token-identity controls (CLAIMS.md) come from the same ``emb`` hook: per row, ``emb`` at the last position
  of the adapter's content span (``tok_last``) and its mean over the span (``tok_mean``), stored beside the
  latents; NaN with the reason where the adapter gives no span (Whisper speech: the audio is not in the
  decoder's input).
- Several templates run in one pass over the batches (``extract_templates``): each batch runs every
  template's decoder pass before the next, so a clip's encoder output, cached per batch by the adapter,
  serves all of them; the encoder runs once per clip per run.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import overload

import numpy as np
import torch

from benchmark.core.errors import OutOfMemoryError, PipelineError
from benchmark.core.provenance import cpu_info, git_commit, library_versions, utc_now
from benchmark.core.schema import CONTROL_NAMES, LatentsManifest, ProbeSet, Provenance, Sample
from benchmark.engine.cache import (
    ENCODER_CACHE_ENV,
    ENCODER_SHARING_ENV,
    CachedLatents,
    DiskEncoderStore,
    LatentCache,
    MemoryEncoderCache,
    latent_key,
)
from benchmark.engine.memory import CPU_BATCH, plan_batches
from benchmark.models.base import Batch, ModelAdapter, PreparedInput

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


#: Control reasons the engine gives when the adapter gives none.
NO_SPAN_REASON = "adapter gives no content span"
NO_BATCH_SPANS_REASON = "adapter's collate gives no content spans (Batch.content_spans is None)"


class StopForward(Exception):
    """Raised by the final-norm hook to end the forward pass before the LM head."""


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device, adapter: ModelAdapter) -> torch.dtype:
    """``auto`` means fp32 on CPU and the model's GPU dtype (bf16 where supported) on CUDA."""
    if dtype == "auto":
        dtype = adapter.spec.gpu_dtype if device.type == "cuda" else "float32"
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {sorted(_DTYPES)} or 'auto'")
    return _DTYPES[dtype]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


@dataclass
class ExtractionStats:
    """What an extraction did: counts that tests and benchmarks assert on.

    With several templates, ``samples`` counts samples once, ``cache_hits``/``cache_misses`` count
    (template, sample) entries, ``forward_passes`` counts decoder passes (one per template per batch),
    ``batches`` the batches of samples, and ``audio_encoded``/``audio_reused`` the encoder-cache misses and
    hits (each clip is encoded once per run, whatever the number of templates); ``audio_from_disk`` /
    ``audio_to_disk`` count raw encoder outputs read from and written to the opt-in disk store.
    """

    samples: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    forward_passes: int = 0
    batches: int = 0
    templates: list[str] = field(default_factory=list)
    audio_encoded: int = 0
    audio_reused: int = 0
    encoder_cache_peak_bytes: int = 0
    audio_from_disk: int = 0
    audio_to_disk: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0
    seconds: float = 0.0
    corrupt_entries: int = 0
    memory_plan: str = ""
    skipped: dict[str, str] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)


#: Why a latents file has no controls: it was written before they were recorded.
CONTROLS_NOT_RECORDED = "token-identity controls not recorded (latents written before controls existed)"


@dataclass
class LatentSet:
    """Latents ``[n, layers, d]`` and token-identity controls ``[n, 2, d]`` (float32) with the manifest that
    says what rows and columns are.

    ``controls[:, 0]`` is ``tok_last`` (``emb`` at the content's last position), ``controls[:, 1]`` is
    ``tok_mean`` (mean of ``emb`` over the content span); NaN rows where a sample has none
    (``control_available``/``control_reason``). Left ``None`` it becomes all NaN, as for files written
    before controls existed.
    """

    latents: np.ndarray
    manifest: LatentsManifest
    controls: np.ndarray | None = None

    def __post_init__(self) -> None:
        n, d = self.latents.shape[0], self.latents.shape[-1]
        width = len(self.manifest.control_layers)
        if self.controls is None:
            self.controls = np.full((n, width, d), np.nan, dtype=np.float32)
        if self.controls.shape != (n, width, d):
            raise PipelineError(
                f"latents of {self.manifest.provenance.model!r}: controls have shape {self.controls.shape}, "
                f"expected {(n, width, d)} for latents {self.latents.shape}"
            )

    def layer(self, name: str) -> np.ndarray:
        return self.latents[:, self.manifest.layers.index(name)]

    def control(self, name: str) -> np.ndarray:
        """``[n, d]`` control representation ``tok_last`` or ``tok_mean`` (NaN rows where unavailable)."""
        assert self.controls is not None
        if name not in self.manifest.control_layers:
            raise KeyError(f"no control {name!r}; recorded: {self.manifest.control_layers}")
        return self.controls[:, self.manifest.control_layers.index(name)]

    @property
    def control_available(self) -> list[bool]:
        """Per sample: whether its controls were computed (all False in files without controls)."""
        recorded = self.manifest.control_available
        return list(recorded) if recorded is not None else [False] * len(self.sample_ids)

    @property
    def control_reason(self) -> str:
        """Why some samples have no controls ('' when all have them)."""
        if self.manifest.control_available is None:
            return CONTROLS_NOT_RECORDED
        return self.manifest.control_reason

    @property
    def sample_ids(self) -> list[str]:
        return self.manifest.sample_ids

    def save(self, path: Path | str) -> Path:
        """One safetensors file; the manifest travels inside its metadata (for export/import)."""
        from safetensors.numpy import save_file

        assert self.controls is not None
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(path.suffix + ".tmp")
        tensors = {"latents": np.ascontiguousarray(self.latents)}
        if self.manifest.controls_sha256 is not None:
            tensors["controls"] = np.ascontiguousarray(self.controls, dtype=np.float32)
        save_file(tensors, str(temp), metadata={"manifest": self.manifest.model_dump_json()})
        temp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path | str) -> LatentSet:
        """Load and verify shapes and checksums against the embedded manifest."""
        from safetensors import safe_open

        path = Path(path)
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
            if "manifest" not in metadata:
                raise PipelineError(f"{path}: not a lalm-bench latents file (no manifest in its metadata)")
            latents = handle.get_tensor("latents")
            controls = handle.get_tensor("controls") if "controls" in handle.keys() else None  # noqa: SIM118
        manifest = LatentsManifest.model_validate_json(metadata["manifest"])
        if list(latents.shape) != manifest.shape:
            raise PipelineError(
                f"{path}: tensor shape {list(latents.shape)} != manifest shape {manifest.shape}"
            )
        if _tensor_sha(latents) != manifest.tensor_sha256:
            raise PipelineError(
                f"{path}: latents checksum differs from its manifest (file corrupt or edited)"
            )
        if (controls is None) != (manifest.controls_sha256 is None):
            raise PipelineError(
                f"{path}: the manifest {'lists' if controls is None else 'lacks'} controls the file "
                f"{'lacks' if controls is None else 'holds'}"
            )
        if controls is not None and _tensor_sha(controls) != manifest.controls_sha256:
            raise PipelineError(
                f"{path}: controls checksum differs from its manifest (file corrupt or edited)"
            )
        return cls(latents=latents, manifest=manifest, controls=controls)


def _tensor_sha(array: np.ndarray) -> str:
    import hashlib

    # hash the array's own buffer: ``tobytes()`` made a full copy, the second copy of the latents at the peak
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float32).data).hexdigest()


class LastTokenCapture:
    """Context manager that hooks the decoder and keeps the last real token of every named layer.

    Hooks are removed on exit, also when the forward raised. Only ``StopForward`` is swallowed by
    ``run``; any other exception propagates.
    """

    def __init__(self, adapter: ModelAdapter) -> None:
        self.adapter = adapter
        handles = adapter.layer_handles()
        self.blocks = handles.blocks
        self.final_norm = handles.final_norm
        self._positions: torch.Tensor | None = None
        self._spans: list[tuple[int, int] | None] | None = None
        self._captured: list[torch.Tensor | None] = []
        self._controls: torch.Tensor | None = None
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []

    @property
    def num_layers(self) -> int:
        return len(self.blocks) + 2

    def _take(self, slot: int, hidden: object) -> None:
        if isinstance(hidden, tuple):
            hidden = hidden[0]
        if not isinstance(hidden, torch.Tensor) or hidden.dim() != 3:
            raise PipelineError(
                f"layer slot {slot}: expected a [batch, seq, d] tensor, got {type(hidden).__name__}"
                f"{getattr(hidden, 'shape', '')}"
            )
        positions = self._positions
        assert positions is not None
        if self._captured[slot] is not None:
            raise PipelineError(f"layer slot {slot} ran twice in one forward (a hooked module is reused)")
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        # Kept on the layer's device (advanced indexing copies): one transfer per batch in ``run``, not one
        # device synchronisation per layer.
        self._captured[slot] = hidden[rows, positions.to(hidden.device)].detach()

    def _take_controls(self, hidden: torch.Tensor) -> None:
        """Per row, ``emb`` at the content's last position and its mean over the content span (float32);
        NaN rows where the row has no span. Read inside the hook, like the latents: no copy of the sequence."""
        out = torch.full(
            (hidden.shape[0], len(CONTROL_NAMES), hidden.shape[-1]),
            float("nan"),
            dtype=torch.float32,
            device=hidden.device,
        )
        for row, span in enumerate(self._spans or []):
            if span is not None:
                window = hidden[row, span[0] : span[1]].float()
                out[row, 0] = window[-1]
                out[row, 1] = window.mean(dim=0)
        self._controls = out

    def __enter__(self) -> LastTokenCapture:
        def emb_hook(_module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
            hidden = args[0] if args else kwargs.get("hidden_states")
            self._take(0, hidden)
            self._take_controls(hidden)  # type: ignore[arg-type]  # _take checked it is a 3-D tensor

        def block_hook(index: int):
            def hook(_module: torch.nn.Module, _args: tuple, output: object) -> None:
                self._take(index + 1, output)

            return hook

        def norm_hook(_module: torch.nn.Module, _args: tuple, output: object) -> None:
            self._take(self.num_layers - 1, output)
            raise StopForward

        self._hooks.append(self.blocks[0].register_forward_pre_hook(emb_hook, with_kwargs=True))
        for index, block in enumerate(self.blocks):
            self._hooks.append(block.register_forward_hook(block_hook(index)))
        self._hooks.append(self.final_norm.register_forward_hook(norm_hook))
        return self

    def __exit__(self, *exc: object) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()

    def run(self, batch: Batch) -> torch.Tensor:
        """Forward one batch; return ``[batch, layers, d]`` float32 on CPU."""
        return self.run_with_controls(batch)[0]

    def run_with_controls(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward one batch; return latents ``[batch, layers, d]`` and controls ``[batch, 2, d]`` (float32, CPU;
        NaN control rows where ``batch.content_spans`` gives no span)."""
        self._positions = batch.last_positions
        self._spans = _checked_spans(self.adapter, batch)
        self._captured = [None] * self.num_layers
        self._controls = None
        with torch.inference_mode(), contextlib.suppress(StopForward):
            self.adapter.forward(batch)
        missing = [i for i, value in enumerate(self._captured) if value is None]
        if missing:
            names = self.adapter.layer_names()
            raise PipelineError(
                f"model {self.adapter.spec.name!r}: layers {[names[i] for i in missing]} produced no output; "
                "the adapter's layer_handles() do not match the modules its forward() runs"
            )
        captured: list[torch.Tensor] = self._captured  # type: ignore[assignment]
        first = captured[0].device  # with a device_map the blocks live on several devices
        stacked = torch.stack([row if row.device == first else row.to(first) for row in captured], dim=1)
        assert self._controls is not None  # set by the emb hook with slot 0
        return stacked.float().cpu(), self._controls.cpu()


def _checked_spans(adapter: ModelAdapter, batch: Batch) -> list[tuple[int, int] | None] | None:
    """``batch.content_spans`` after checking each span lies inside its row's real tokens."""
    spans = batch.content_spans
    if spans is None:
        return None
    if len(spans) != len(batch.sample_ids):
        raise PipelineError(
            f"model {adapter.spec.name!r}: collate gave {len(spans)} content spans for {len(batch.sample_ids)} rows"
        )
    last = batch.last_positions.tolist()
    for row, span in enumerate(spans):
        if span is not None and not 0 <= span[0] < span[1] <= last[row] + 1:
            raise PipelineError(
                f"model {adapter.spec.name!r}: sample {batch.sample_ids[row]!r} has content span {span}, "
                f"outside its real tokens (last real position {last[row]}) or empty"
            )
    return spans


def read_waveforms(
    probe_set: ProbeSet, samples: list[Sample]
) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Each speech sample's audio (resampled to 16 kHz mono), read once, and the notes on what was done."""
    from benchmark.probes.io import read_waveform

    waveforms: dict[str, np.ndarray] = {}
    notes: dict[str, list[str]] = {}
    for sample in samples:
        if sample.modality == "speech":
            waveforms[sample.id], sample_notes = read_waveform(probe_set.audio_file(sample))
            if sample_notes:
                notes[sample.id] = [str(note) for note in sample_notes]
    return waveforms, notes


def prepare_samples(
    adapter: ModelAdapter, probe_set: ProbeSet, samples: list[Sample], template: str
) -> tuple[list[PreparedInput], dict[str, list[str]]]:
    """Read audio (resampled to 16 kHz mono, with notes) and prepare every sample for the model."""
    waveforms, notes = read_waveforms(probe_set, samples)
    return [adapter.prepare(sample, waveforms.get(sample.id), template) for sample in samples], notes


def _load_if_needed(adapter: ModelAdapter, device: torch.device, dtype: torch.dtype) -> None:
    """Load ``adapter`` on ``device``/``dtype`` unless it is already there, with a fresh encoder cache: the
    cache's keys name the clip, not the device or dtype its outputs were computed in."""
    if adapter.device != device or adapter.dtype != dtype:
        adapter.load(device, dtype)
        adapter.encoder_cache = MemoryEncoderCache()


def order_for_batches(rows: list[list[PreparedInput]]) -> list[int]:
    """Indices of ``rows`` (one sample's items, one per template) in batching order.

    Longest first, so padding stays small, except that samples sharing a clip (``audio_key``) stay together,
    ordered by their group's longest item: a clip's encoder output is then needed by consecutive batches
    only, and the batch-scoped encoder cache keeps it exactly as long as it is needed.
    """
    longest = [max(item.length for item in items) for items in rows]
    group_longest: dict[str, int] = {}
    for index, items in enumerate(rows):
        key = items[0].audio_key
        if key is not None:
            group_longest[key] = max(group_longest.get(key, 0), longest[index])

    def sort_key(index: int) -> tuple[int, str, int]:
        key = rows[index][0].audio_key
        if key is None:
            return (-longest[index], "", -longest[index])
        return (-group_longest[key], key, -longest[index])

    return sorted(range(len(rows)), key=sort_key)


@overload
def extract_latents(
    adapter: ModelAdapter,
    probe_set: ProbeSet,
    *,
    template: str = ...,
    templates: None = ...,
    batch_size: int | None = ...,
    device: str = ...,
    dtype: str = ...,
    cache: LatentCache | None = ...,
    progress: bool = ...,
    encoder_cache_dir: Path | str | None = ...,
) -> tuple[LatentSet, ExtractionStats]: ...


@overload
def extract_latents(
    adapter: ModelAdapter,
    probe_set: ProbeSet,
    *,
    template: str = ...,
    templates: Sequence[str],
    batch_size: int | None = ...,
    device: str = ...,
    dtype: str = ...,
    cache: LatentCache | None = ...,
    progress: bool = ...,
    encoder_cache_dir: Path | str | None = ...,
) -> tuple[dict[str, LatentSet], ExtractionStats]: ...


def extract_latents(
    adapter: ModelAdapter,
    probe_set: ProbeSet,
    *,
    template: str = "shared-suffix",
    templates: Sequence[str] | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    dtype: str = "auto",
    cache: LatentCache | None = None,
    progress: bool = False,
    encoder_cache_dir: Path | str | None = None,
) -> tuple[LatentSet, ExtractionStats] | tuple[dict[str, LatentSet], ExtractionStats]:
    """Latents of every sample of ``probe_set`` that the model accepts, in probe-set order, under ``template``;
    with ``templates=(...)``, one ``LatentSet`` per template (a dict keyed by template name) from one run in
    which each clip is encoded once (see :func:`extract_templates`, which this calls)."""
    options = {
        "batch_size": batch_size,
        "device": device,
        "dtype": dtype,
        "cache": cache,
        "progress": progress,
        "encoder_cache_dir": encoder_cache_dir,
    }
    if templates is not None:
        return extract_templates(adapter, probe_set, templates, **options)  # type: ignore[arg-type]
    sets, stats = extract_templates(adapter, probe_set, (template,), **options)  # type: ignore[arg-type]
    return sets[template], stats


def extract_templates(
    adapter: ModelAdapter,
    probe_set: ProbeSet,
    templates: Sequence[str] = ("bare", "shared-suffix"),
    *,
    batch_size: int | None = None,
    device: str = "auto",
    dtype: str = "auto",
    cache: LatentCache | None = None,
    progress: bool = False,
    encoder_cache_dir: Path | str | None = None,
) -> tuple[dict[str, LatentSet], ExtractionStats]:
    """Latents of every accepted sample under each of ``templates``: ``{template: LatentSet}``.

    Samples are batched once; each batch runs every template's decoder pass before the next batch, so the
    audio encoder's output of a clip (cached by the adapter through ``adapter.encoder_cache``, scoped to the
    batch) feeds all of them: the encoder runs once per clip per run, and the cache holds one batch's clips.
    Only the (template, sample) pairs missing from ``cache`` are computed. ``encoder_cache_dir`` (default
    ``$LALM_BENCH_ENCODER_CACHE``, else off) keeps raw encoder outputs across runs for adapters that give an
    ``encoder_fingerprint`` (``benchmark.engine.cache.DiskEncoderStore``: when it pays, and what it costs).

    Samples whose modality or language the model does not take are listed in ``stats.skipped`` with the
    reason (claims turn that into ``n/a``), never dropped silently. Before the first batch the memory plan
    (``benchmark.engine.memory.plan_batches``: weights plus activations, the batch size, the free memory) is
    put in ``stats.memory_plan`` and printed to stderr on a GPU or with ``progress``; ``batch_size=None``
    chooses it from free memory on a GPU. Raises ``OutOfMemoryError`` when the plan does not fit, or with the
    batch size and what to try when a batch runs out; computed entries stay in the cache, so a rerun resumes.
    """
    started = time.perf_counter()
    names = list(dict.fromkeys(templates))
    if not names:
        raise ValueError("extract_templates needs at least one template name")
    stats = ExtractionStats(templates=names)
    accepted: list[Sample] = []
    for sample in probe_set.samples:
        if adapter.accepts(sample.modality, sample.language):
            accepted.append(sample)
        else:
            stats.skipped[sample.id] = (
                f"model {adapter.spec.name!r} does not take {sample.modality} in language {sample.language!r}"
            )
    if not accepted:
        raise PipelineError(
            f"model {adapter.spec.name!r} accepts none of the {len(probe_set.samples)} samples of probe set "
            f"{probe_set.name!r} (modalities {adapter.spec.modalities}, languages {adapter.spec.languages})"
        )
    for name in names:
        for modality in {sample.modality for sample in accepted}:
            adapter.template(name, modality)  # an unknown template fails before any work, naming the model
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device, adapter)
    if not adapter.prepares_without_weights:
        _load_if_needed(adapter, torch_device, torch_dtype)
    layers = adapter.layer_names()
    waveforms, stats.notes = read_waveforms(probe_set, accepted)
    # rows[i][t]: sample i prepared under template t
    rows = [
        [adapter.prepare(sample, waveforms.get(sample.id), name) for name in names] for sample in accepted
    ]

    keys = [
        [
            latent_key(
                adapter, item, dtype=dtype_name(torch_dtype), device_type=torch_device.type, layers=layers
            )
            for item in items
        ]
        for items in rows
    ]
    outputs = [_Rows(len(rows)) for _ in names]
    missing: list[list[int]] = [[] for _ in rows]  # per sample: indices of the templates to compute
    for index, items in enumerate(rows):
        for slot in range(len(items)):
            cached = cache.get(adapter.spec.name, keys[index][slot]) if cache is not None else None
            if cached is not None and cached.latents.shape[0] == len(layers):
                outputs[slot].put(index, cached)
            else:
                missing[index].append(slot)
    stats.cache_misses = sum(len(slots) for slots in missing)
    stats.cache_hits = len(rows) * len(names) - stats.cache_misses
    stats.corrupt_entries = len(cache.corrupt_entries) if cache is not None else 0

    todo = [index for index in order_for_batches(rows) if missing[index]]
    if todo:  # weights load only when something must be computed
        _load_if_needed(adapter, torch_device, torch_dtype)
        pending = [rows[index][slot] for index in todo for slot in missing[index]]
        batch_size, stats.memory_plan = _plan(adapter, pending, batch_size, torch_device, torch_dtype)
        if progress or torch_device.type == "cuda":
            print(f"{adapter.spec.name}: {stats.memory_plan}", file=sys.stderr)
    if not isinstance(adapter.encoder_cache, MemoryEncoderCache):
        adapter.encoder_cache = MemoryEncoderCache()
    encoder_cache = adapter.encoder_cache
    encoder_cache.disk = _disk_store(adapter, encoder_cache_dir) if todo else None
    encoder_cache.peak_bytes = encoder_cache.held_bytes
    hits_before, misses_before = encoder_cache.hits, encoder_cache.misses

    groups = [todo[start : start + batch_size] for start in range(0, len(todo), batch_size)] if todo else []
    share_encoder = os.environ.get(ENCODER_SHARING_ENV, "1") != "0"
    bar = _progress(len(todo), adapter.spec.name, enabled=progress)
    with (
        LastTokenCapture(adapter) if groups else contextlib.nullcontext() as capture,
        _released(encoder_cache, stats),
    ):
        for number, group in enumerate(groups):
            for slot, name in enumerate(names):
                chosen = [index for index in group if slot in missing[index]]
                if not chosen:
                    continue
                entries = _run_batch(
                    adapter, capture, [rows[i][slot] for i in chosen], name, torch_device, stats
                )
                for index, entry in zip(chosen, entries, strict=True):
                    outputs[slot].put(index, entry)
                    if cache is not None:
                        cache.put(adapter.spec.name, keys[index][slot], entry.latents, entry.controls)
                if not share_encoder:
                    encoder_cache.end_batch(carry=False)  # the next template encodes its clips again
            following = groups[number + 1] if number + 1 < len(groups) else []
            encoder_cache.end_batch(carry=_share_audio(rows, group, following))
            stats.batches += 1
            bar.update(len(group))
    bar.close()
    stats.audio_encoded = encoder_cache.misses - misses_before - stats.audio_from_disk
    stats.audio_reused = encoder_cache.hits - hits_before
    stats.encoder_cache_peak_bytes = encoder_cache.peak_bytes

    sets = {
        name: assemble(
            adapter,
            probe_set,
            name,
            [items[slot] for items in rows],
            outputs[slot],
            torch_device,
            torch_dtype,
        )
        for slot, name in enumerate(names)
    }
    stats.samples = len(rows)
    stats.seconds = time.perf_counter() - started
    return sets, stats


@contextlib.contextmanager
def _released(encoder_cache: MemoryEncoderCache, stats: ExtractionStats) -> Iterator[None]:
    """After the batches, also when one raised: empty the encoder cache and detach its disk store (counted)."""
    try:
        yield
    finally:
        encoder_cache.end_batch(carry=False)
        if encoder_cache.disk is not None:
            stats.audio_from_disk, stats.audio_to_disk = encoder_cache.disk.reads, encoder_cache.disk.writes
            encoder_cache.disk = None


def _disk_store(adapter: ModelAdapter, folder: Path | str | None) -> DiskEncoderStore | None:
    """The disk store of encoder outputs for this run, when asked for and the adapter gives a fingerprint."""
    folder = folder if folder is not None else os.environ.get(ENCODER_CACHE_ENV) or None
    fingerprint = adapter.encoder_fingerprint() if folder is not None else None
    if folder is None or fingerprint is None:
        return None
    return DiskEncoderStore(Path(folder) / adapter.spec.name.replace("/", "__"), fingerprint)


def _share_audio(rows: list[list[PreparedInput]], group: list[int], following: list[int]) -> bool:
    """Whether two batches of samples read a common clip (the encoder cache then keeps it across them)."""
    current = {rows[index][0].audio_key for index in group} - {None}
    return bool(current & {rows[index][0].audio_key for index in following})


def _run_batch(
    adapter: ModelAdapter,
    capture: LastTokenCapture,
    items: list[PreparedInput],
    template: str,
    device: torch.device,
    stats: ExtractionStats,
) -> list[CachedLatents]:
    """One decoder pass of one template over ``items`` (collated longest first): their latents and controls,
    in the order of ``items``."""
    ordered = sorted(items, key=lambda item: item.length, reverse=True)
    batch = adapter.collate(ordered)
    try:
        vectors, controls = capture.run_with_controls(batch)
    except torch.OutOfMemoryError as error:
        raise OutOfMemoryError(
            f"out of memory extracting {adapter.spec.name!r} ({template}) with batch size {len(items)} on "
            f"{device}; {stats.batches} batches were cached. Try --batch-size {max(1, len(items) // 2)} or a "
            "lower-precision --dtype; the rerun resumes from the cache."
        ) from error
    stats.forward_passes += 1
    stats.real_tokens += sum(item.length for item in items)
    stats.padded_tokens += max(item.length for item in items) * len(items)
    by_id = {
        item.sample_id: CachedLatents(vectors[row].numpy(), controls[row].numpy())
        for row, item in enumerate(ordered)
    }
    return [by_id[item.sample_id] for item in items]


def _control_reason(item: PreparedInput) -> str:
    """Why a sample's controls are NaN: the adapter's reason, or that it gives no span, or no batch spans."""
    if item.content_span is None:
        return item.no_content_reason or NO_SPAN_REASON
    return NO_BATCH_SPANS_REASON


class _Rows:
    """One template's output, ``[n, layers, d]`` latents and ``[n, 2, d]`` controls (float32), written row by
    row as entries arrive (cached or computed). Why not keep per-sample entries and stack them at the end: that
    held every latent twice at the peak (the entries and the stacked copy), the floor of the engine's memory
    above the model on small models (performance issue, item 7)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.latents: np.ndarray | None = None
        self.controls: np.ndarray | None = None
        self.filled = np.zeros(n, dtype=bool)

    def put(self, row: int, entry: CachedLatents) -> None:
        if self.latents is None or self.controls is None:
            self.latents = np.empty((self.n, *entry.latents.shape), dtype=np.float32)
            self.controls = np.empty((self.n, *entry.controls.shape), dtype=np.float32)
        self.latents[row] = entry.latents
        self.controls[row] = entry.controls
        self.filled[row] = True

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Both arrays; raises when a row was never written (an engine bug, never a silent zero row)."""
        if self.latents is None or self.controls is None or not self.filled.all():
            raise PipelineError(
                f"extraction left {int((~self.filled).sum())} of {self.n} rows unwritten (engine bug)"
            )
        return self.latents, self.controls


def assemble(
    adapter: ModelAdapter,
    probe_set: ProbeSet,
    template: str,
    prepared: list[PreparedInput],
    rows: _Rows,
    device: torch.device,
    dtype: torch.dtype,
) -> LatentSet:
    """One template's ``LatentSet`` in ``prepared`` order from its filled rows (computed or cached)."""
    order = [item.sample_id for item in prepared]
    latents, controls = rows.arrays()
    available, reasons = [], {}
    for row, item in enumerate(prepared):
        has = item.content_span is not None and not np.isnan(controls[row]).all()
        available.append(has)
        if not has:
            reason = _control_reason(item)
            key = (item.modality, reason)
            reasons[key] = reasons.get(key, 0) + 1
    manifest = LatentsManifest(
        provenance=build_provenance(adapter, probe_set, device, dtype),
        template=template,
        layers=adapter.layer_names(),
        sample_ids=order,
        modalities=[item.modality for item in prepared],
        last_token_ids=[item.last_token_id for item in prepared],
        positions=[item.length - 1 for item in prepared],
        shape=list(latents.shape),
        tensor_sha256=_tensor_sha(latents),
        control_available=available,
        control_reason="; ".join(
            f"{modality} ({count} samples): {reason}" for (modality, reason), count in sorted(reasons.items())
        ),
        content_spans=[None if item.content_span is None else list(item.content_span) for item in prepared],
        controls_sha256=_tensor_sha(controls),
    )
    return LatentSet(latents=latents, manifest=manifest, controls=controls)


def _plan(
    adapter: ModelAdapter,
    misses: list[PreparedInput],
    batch_size: int | None,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[int, str]:
    """The batch size to use and the memory plan's sentence; models without a decoder config get no estimate."""
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, or None to choose it; got {batch_size}")
    model = getattr(adapter, "model", None)
    longest = max(item.length for item in misses)
    try:
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"{type(model).__name__} is not a torch module")
        plan = plan_batches(model, longest, batch_size=batch_size, device=device, dtype=dtype)
    except ValueError as error:  # an estimate needs hidden size and layer count; say why there is none
        chosen = batch_size or CPU_BATCH
        return chosen, f"no memory estimate ({error}); batch size {chosen}"
    return plan.batch_size, plan.describe()


def build_provenance(
    adapter: ModelAdapter, probe_set: ProbeSet, device: torch.device, dtype: torch.dtype
) -> Provenance:
    templates = {
        name: {modality: template.rendered for modality, template in by_modality.items()}
        for name, by_modality in adapter.templates.items()
    }
    cpu_model, cpu_bf16 = cpu_info()
    return Provenance(
        model=adapter.spec.name,
        hub_id=adapter.spec.hub_id,
        revision=adapter.spec.revision,
        adapter_source_sha256=adapter.source_sha256(),
        kind=adapter.spec.kind,
        dtype=dtype_name(dtype),
        device=str(device),
        templates=templates,
        probe_set=probe_set.name,
        probe_set_hash=probe_set.content_hash(),
        versions=library_versions(),
        git_commit=git_commit(),
        created=utc_now(),
        cpu_model=cpu_model,
        cpu_bf16=cpu_bf16,
        accelerator=torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        torch_threads=torch.get_num_threads(),
    )


def _progress(total: int, label: str, *, enabled: object) -> object:
    from benchmark.engine.progress import stage_progress  # h3-cli: bars on a terminal, timed lines in logs

    return stage_progress(total, f"extract {label}", enabled)  # type: ignore[arg-type]


def describe(stats: ExtractionStats) -> str:
    """One line for logs and the CLI."""
    padding = 1 - stats.real_tokens / stats.padded_tokens if stats.padded_tokens else 0.0
    return json.dumps(
        {
            "samples": stats.samples,
            "cache_hits": stats.cache_hits,
            "forward_passes": stats.forward_passes,
            "skipped": len(stats.skipped),
            "padding_fraction": round(padding, 3),
            "seconds": round(stats.seconds, 2),
        }
    )
