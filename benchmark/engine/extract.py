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
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from benchmark.core.errors import OutOfMemoryError, PipelineError
from benchmark.core.provenance import git_commit, library_versions, utc_now
from benchmark.core.schema import LatentsManifest, ProbeSet, Provenance, Sample
from benchmark.engine.cache import LatentCache, MemoryEncoderCache, latent_key
from benchmark.engine.memory import CPU_BATCH, plan_batches
from benchmark.models.base import Batch, ModelAdapter, PreparedInput

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


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
    """What an extraction did: counts that tests and benchmarks assert on."""

    samples: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    forward_passes: int = 0
    batches: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0
    seconds: float = 0.0
    corrupt_entries: int = 0
    memory_plan: str = ""
    skipped: dict[str, str] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class LatentSet:
    """Latents ``[n, layers, d]`` (float32) with the manifest that says what rows and columns are."""

    latents: np.ndarray
    manifest: LatentsManifest

    def layer(self, name: str) -> np.ndarray:
        return self.latents[:, self.manifest.layers.index(name)]

    @property
    def sample_ids(self) -> list[str]:
        return self.manifest.sample_ids

    def save(self, path: Path | str) -> Path:
        """One safetensors file; the manifest travels inside its metadata (for export/import)."""
        from safetensors.numpy import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(path.suffix + ".tmp")
        save_file(
            {"latents": np.ascontiguousarray(self.latents)},
            str(temp),
            metadata={"manifest": self.manifest.model_dump_json()},
        )
        temp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path | str) -> LatentSet:
        """Load and verify shape and checksum against the embedded manifest."""
        from safetensors import safe_open

        path = Path(path)
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
            if "manifest" not in metadata:
                raise PipelineError(f"{path}: not a lalm-bench latents file (no manifest in its metadata)")
            latents = handle.get_tensor("latents")
        manifest = LatentsManifest.model_validate_json(metadata["manifest"])
        if list(latents.shape) != manifest.shape:
            raise PipelineError(
                f"{path}: tensor shape {list(latents.shape)} != manifest shape {manifest.shape}"
            )
        if _tensor_sha(latents) != manifest.tensor_sha256:
            raise PipelineError(
                f"{path}: latents checksum differs from its manifest (file corrupt or edited)"
            )
        return cls(latents=latents, manifest=manifest)


def _tensor_sha(array: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float32).tobytes()).hexdigest()


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
        self._captured: list[torch.Tensor | None] = []
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

    def __enter__(self) -> LastTokenCapture:
        def emb_hook(_module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
            hidden = args[0] if args else kwargs.get("hidden_states")
            self._take(0, hidden)

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
        self._positions = batch.last_positions
        self._captured = [None] * self.num_layers
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
        return stacked.float().cpu()


def _batches(items: list[PreparedInput], batch_size: int) -> Iterator[list[PreparedInput]]:
    ordered = sorted(items, key=lambda item: item.length, reverse=True)
    for start in range(0, len(ordered), batch_size):
        yield ordered[start : start + batch_size]


def prepare_samples(
    adapter: ModelAdapter, probe_set: ProbeSet, samples: list[Sample], template: str
) -> tuple[list[PreparedInput], dict[str, list[str]]]:
    """Read audio (resampled to 16 kHz mono, with notes) and prepare every sample for the model."""
    from benchmark.probes.io import read_waveform

    prepared: list[PreparedInput] = []
    notes: dict[str, list[str]] = {}
    for sample in samples:
        waveform = None
        if sample.modality == "speech":
            waveform, sample_notes = read_waveform(probe_set.audio_file(sample))
            if sample_notes:
                notes[sample.id] = [str(note) for note in sample_notes]
        prepared.append(adapter.prepare(sample, waveform, template))
    return prepared, notes


def _load_if_needed(adapter: ModelAdapter, device: torch.device, dtype: torch.dtype) -> None:
    """Load ``adapter`` on ``device``/``dtype`` unless it is already there, with a fresh encoder cache: the
    cache's keys name the clip, not the device or dtype its outputs were computed in."""
    if adapter.device != device or adapter.dtype != dtype:
        adapter.load(device, dtype)
        adapter.encoder_cache = MemoryEncoderCache()


def extract_latents(
    adapter: ModelAdapter,
    probe_set: ProbeSet,
    *,
    template: str = "shared-suffix",
    batch_size: int | None = None,
    device: str = "auto",
    dtype: str = "auto",
    cache: LatentCache | None = None,
    progress: bool = False,
) -> tuple[LatentSet, ExtractionStats]:
    """Latents of every sample of ``probe_set`` that the model accepts, in probe-set order.

    Samples whose modality or language the model does not take are listed in ``stats.skipped`` with the
    reason (claims turn that into ``n/a``), never dropped silently. Before the first batch the memory plan
    (``benchmark.engine.memory.plan_batches``: weights plus activations, the batch size, the free memory) is put in
    ``stats.memory_plan`` and printed to stderr on a GPU or with ``progress``; ``batch_size=None`` chooses it
    from free memory on a GPU. Raises ``OutOfMemoryError`` when the plan does not fit, or with the batch size
    and what to try when a batch runs out; already computed entries stay in the cache, so a rerun resumes.
    """
    started = time.perf_counter()
    stats = ExtractionStats()
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
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device, adapter)
    if not adapter.prepares_without_weights:
        _load_if_needed(adapter, torch_device, torch_dtype)
    layers = adapter.layer_names()
    prepared, stats.notes = prepare_samples(adapter, probe_set, accepted, template)

    keys = {
        item.sample_id: latent_key(
            adapter, item, dtype=dtype_name(torch_dtype), device_type=torch_device.type, layers=layers
        )
        for item in prepared
    }
    results: dict[str, np.ndarray] = {}
    misses: list[PreparedInput] = []
    for item in prepared:
        cached = cache.get(adapter.spec.name, keys[item.sample_id]) if cache is not None else None
        if cached is not None and cached.shape[0] == len(layers):
            results[item.sample_id] = cached
        else:
            misses.append(item)
    stats.cache_hits = len(prepared) - len(misses)
    stats.cache_misses = len(misses)
    stats.corrupt_entries = len(cache.corrupt_entries) if cache is not None else 0

    if misses:  # weights load only when something must be computed
        _load_if_needed(adapter, torch_device, torch_dtype)
        batch_size, stats.memory_plan = _plan(adapter, misses, batch_size, torch_device, torch_dtype)
        if progress or torch_device.type == "cuda":
            print(f"{adapter.spec.name}: {stats.memory_plan}", file=sys.stderr)
    if not isinstance(adapter.encoder_cache, MemoryEncoderCache):
        adapter.encoder_cache = MemoryEncoderCache()

    batches = list(_batches(misses, batch_size)) if misses else []  # batch_size is planned only for misses
    bar = _progress(len(misses), adapter.spec.name, enabled=progress)
    with LastTokenCapture(adapter) if batches else contextlib.nullcontext() as capture:
        for group in batches:
            batch = adapter.collate(group)
            try:
                vectors = capture.run(batch)
            except torch.OutOfMemoryError as error:
                raise OutOfMemoryError(
                    f"out of memory extracting {adapter.spec.name!r} with batch size {len(group)} on "
                    f"{torch_device}; {stats.batches} batches were cached. Try --batch-size {max(1, len(group) // 2)}"
                    " or a lower-precision --dtype; the rerun resumes from the cache."
                ) from error
            stats.forward_passes += 1
            stats.batches += 1
            longest = max(item.length for item in group)
            stats.real_tokens += sum(item.length for item in group)
            stats.padded_tokens += longest * len(group)
            for row, item in enumerate(group):
                array = vectors[row].numpy()
                results[item.sample_id] = array
                if cache is not None:
                    cache.put(adapter.spec.name, keys[item.sample_id], array)
            bar.update(len(group))
    bar.close()

    order = [item.sample_id for item in prepared]
    latents = np.stack([results[sample_id] for sample_id in order]).astype(np.float32, copy=False)
    positions = {item.sample_id: item.length - 1 for item in prepared}
    manifest = LatentsManifest(
        provenance=build_provenance(adapter, probe_set, torch_device, torch_dtype),
        template=template,
        layers=layers,
        sample_ids=order,
        modalities=[item.modality for item in prepared],
        last_token_ids=[item.last_token_id for item in prepared],
        positions=[positions[sample_id] for sample_id in order],
        shape=list(latents.shape),
        tensor_sha256=_tensor_sha(latents),
    )
    stats.samples = len(order)
    stats.seconds = time.perf_counter() - started
    return LatentSet(latents=latents, manifest=manifest), stats


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
