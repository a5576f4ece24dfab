"""``lalm-bench check MODEL``: the pre-flight that must pass on the real checkpoint before any claim is run.

A claim verdict is only as good as the latents under it, so the nightly runs this first and treats a failed
item as an *error* of the measurement (exit non-zero), never as a claim failure. Items (DESIGN.md):

(a) ``hidden_states``: the engine's hook outputs equal transformers' ``hidden_states`` (``emb`` =
    ``hidden_states[0]``, ``block{i}`` = ``hidden_states[i+1]`` for all but the last block, ``final_norm`` =
    ``hidden_states[-1]``), and the raw last block differs from ``final_norm``;
(b) ``audio_placeholders``: every audio placeholder position carries an audio embedding (LALMs only);
(c) ``distinct_inputs``: distinct inputs give distinct latents at every layer after ``emb``;
(d) ``batch_invariance``: batch 1 equals batch N in the run's dtype, inputs of different lengths mixed;
(e) ``dtype_drift``: bf16 versus fp32 relative drift per layer, which sets the bf16 tolerance of (d);
(f) ``template``: each template rendered per modality, and the last tokens the model actually receives;
(g) ``generation``: a greedy transcript of one clean shipped English clip (the LM head runs here only) and its word
    error rate; above ``GENERATION_WER_WARN`` the item is a warning, not a failure (a model may answer rather
    than transcribe), but a GPU user learns in minutes that the speech path is broken;
(h) ``parity`` (Ultravox only): the re-implementation's hidden states against the official code's, run in an
    environment where that code runs (``LALM_BENCH_ULTRAVOX_PYTHON``); skipped, saying how, where it is not set.

Every number is ``max|a - b| / ||b||`` per sample and layer (the latent's own norm), so tolerances are scale-free
across layers whose residual norms differ by orders of magnitude.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from benchmark.core.errors import PipelineError
from benchmark.core.schema import ProbeSet, Sample
from benchmark.engine.cache import MemoryEncoderCache
from benchmark.engine.extract import (
    LastTokenCapture,
    dtype_name,
    extract_latents,
    prepare_samples,
    resolve_device,
    resolve_dtype,
)
from benchmark.models.base import Batch, ModelAdapter, PreparedInput

CheckOutcome = Literal["pass", "warn", "fail", "skipped", "not applicable"]

#: fp32 tolerance of (a) and (d), relative to the latent's norm (DESIGN.md).
FP32_TOLERANCE = 1e-4
#: Two distinct inputs whose latents are closer than this (relative) count as collapsed onto one latent.
DISTINCT_MIN = 1e-6
#: Sanity ceiling of (e): a median bf16 drift above 20 % of the norm at ``final_norm`` means the low-precision
#: run does not measure the same model (overflow, a broken cast), whatever tolerance it would set.
DRIFT_CEILING = 0.2
#: Inputs in the default check set, split over the model's modalities: two batches of 8 (so batch N is
#: exercised with a partial batch too), small enough for CPU.
CHECK_INPUTS = 12
#: Tokens decoded at the end of each input for (f).
TAIL_TOKENS = 6

SCHEMA = "lalm-bench-check/1"
#: (g): a transcript with a word error rate above this is a warning (fixture clips are eSpeak NG speech, which
#: whisper-base transcribes exactly in English: shared/OFFLINE.md).
GENERATION_WER_WARN = 0.5
#: (g): tokens generated at most
GENERATION_TOKENS = 48
#: (h): python of an environment where the official Ultravox code runs (transformers 4.x), for the parity check
ULTRAVOX_PYTHON_ENV = "LALM_BENCH_ULTRAVOX_PYTHON"
#: (h): relative tolerance per layer
PARITY_RTOL = 1e-2


@dataclass
class CheckItem:
    """One item of the pre-flight: its status, a one-line detail and the numbers behind it."""

    key: str
    title: str
    status: CheckOutcome
    detail: str
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass
class CheckReport:
    """Everything ``lalm-bench check`` found; ``ok`` is false when any item failed."""

    model: str
    revision: str
    kind: str
    device: str
    dtype: str
    template: str
    probe_set: str
    samples: dict[str, int]
    items: list[CheckItem]
    tolerances: dict[str, Any]
    seconds: float
    schema: str = SCHEMA

    @property
    def ok(self) -> bool:
        return all(item.status != "fail" for item in self.items)

    @property
    def failed(self) -> list[CheckItem]:
        return [item for item in self.items if item.status == "fail"]

    def item(self, key: str) -> CheckItem:
        for item in self.items:
            if item.key == key:
                return item
        raise KeyError(f"no check item {key!r}; items: {[i.key for i in self.items]}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data

    def raise_for_failures(self) -> None:
        """For callers (the nightly's pytest session) that must stop before any claim runs."""
        if not self.ok:
            names = ", ".join(f"{item.key}: {item.detail}" for item in self.failed)
            raise PipelineError(f"lalm-bench check failed for {self.model!r}: {names}")


class CheckSkipped(Exception):
    """An item that cannot be evaluated for this adapter; the message is the recorded reason."""


class _StopReference(Exception):
    """Ends the reference forward once the decoder has returned its ``hidden_states`` (no LM head)."""


# ---- the check set -------------------------------------------------------------------------------------------


def _spread(samples: list[Sample], n: int) -> list[Sample]:
    """Up to ``n`` samples with distinct content, spread over the list (so lengths and labels vary)."""
    seen: set[str] = set()
    unique = []
    for sample in samples:
        content = sample.audio_sha256 or sample.text
        if content not in seen:
            seen.add(content)
            unique.append(sample)
    if len(unique) <= n:
        return unique
    step = len(unique) / n
    return [unique[int(i * step)] for i in range(n)]


def default_check_set(adapter: ModelAdapter, n_inputs: int = CHECK_INPUTS) -> ProbeSet:
    """A small mixed set from the shipped fixtures: parallel text and clean speech-grid clips.

    Text comes from ``text-parallel`` (several languages and lengths), speech from ``speech-grid`` (clean
    device, distinct sentences and speakers). Audio paths are made absolute so one set can hold both.
    """
    from benchmark.probes.catalog import resolve_probes

    chosen: list[Sample] = []
    per_modality = max(1, n_inputs // len(adapter.spec.modalities))
    if "text" in adapter.spec.modalities:
        text = resolve_probes("text-parallel", "ci")
        accepted = [s for s in text.samples if adapter.accepts(s.modality, s.language)]
        chosen += _spread(accepted, per_modality)
    if "speech" in adapter.spec.modalities:
        grid = resolve_probes("speech-grid", "ci")
        clean = [s for s in grid.samples if s.device == "clean" and adapter.accepts(s.modality, s.language)]
        clean.sort(key=lambda s: (s.speaker or "", s.group_id or ""))
        for sample in _spread(clean, per_modality):
            chosen.append(sample.model_copy(update={"audio_path": str(grid.audio_file(sample))}))
    if not chosen:
        raise PipelineError(
            f"model {adapter.spec.name!r}: the shipped fixtures hold no input it accepts "
            f"(modalities {adapter.spec.modalities}, languages {adapter.spec.languages})"
        )
    return ProbeSet(name="check", profile="custom", description="lalm-bench check inputs", samples=chosen)


# ---- helpers -------------------------------------------------------------------------------------------------


def relative_diff(value: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``max|value - reference| / ||reference||`` over the last axis (per sample and layer)."""
    value = np.asarray(value, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    norm = np.linalg.norm(reference, axis=-1)
    return np.abs(value - reference).max(axis=-1) / np.maximum(norm, np.finfo(np.float64).tiny)


def _per_layer_max(diffs: np.ndarray, layers: list[str]) -> dict[str, float]:
    return {name: float(diffs[:, index].max()) for index, name in enumerate(layers)}


def _token_ids(item: PreparedInput) -> list[int]:
    ids = item.tensors["input_ids"]
    return [int(i) for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids)]


def _tokenizer(adapter: ModelAdapter) -> Any:
    tokenizer = getattr(adapter, "tokenizer", None)
    if tokenizer is None:
        tokenizer = getattr(getattr(adapter, "processor", None), "tokenizer", None)
    return tokenizer


def _decode(adapter: ModelAdapter, ids: list[int]) -> list[str] | None:
    """Each id as text (special tokens kept); ``adapter.decode_tokens`` first, then its tokenizer."""
    method = getattr(adapter, "decode_tokens", None)
    if callable(method):
        return list(method(ids))
    tokenizer = _tokenizer(adapter)
    if tokenizer is None or not hasattr(tokenizer, "decode"):
        return None
    return [tokenizer.decode([i], skip_special_tokens=False) for i in ids]


def _decoder_module(adapter: ModelAdapter, blocks: list[torch.nn.Module]) -> torch.nn.Module | None:
    """The module whose ``layers`` list holds exactly the hooked blocks: it returns ``hidden_states``."""
    root = getattr(adapter, "model", None)
    if not isinstance(root, torch.nn.Module):
        return None
    for module in root.modules():
        layers = getattr(module, "layers", None)
        if (
            isinstance(layers, torch.nn.ModuleList)
            and len(layers) == len(blocks)
            and all(a is b for a, b in zip(layers, blocks, strict=True))
        ):
            return module
    return None


def reference_hidden_states(adapter: ModelAdapter, batch: Batch) -> tuple[torch.Tensor, ...]:
    """transformers' ``hidden_states`` for one batch, computed without the LM head.

    An adapter may provide ``hidden_states(batch) -> tuple[Tensor, ...]``; otherwise the decoder module that
    owns the hooked blocks is called through the adapter's own ``forward`` with ``output_hidden_states=True``
    forced in by a pre-hook, and its output is taken by a hook that then ends the forward.
    """
    method = getattr(adapter, "hidden_states", None)
    if callable(method):
        return tuple(method(batch))
    handles = adapter.layer_handles()
    decoder = _decoder_module(adapter, handles.blocks)
    if decoder is None:
        raise CheckSkipped(
            f"adapter {type(adapter).__name__} has no hidden_states(batch) method and no module under "
            "adapter.model owns its blocks as `.layers`"
        )
    captured: dict[str, Any] = {}

    def force(_module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        return args, {**kwargs, "output_hidden_states": True}

    def take(_module: torch.nn.Module, _args: tuple, _kwargs: dict, output: Any) -> None:
        captured["hidden_states"] = getattr(output, "hidden_states", None)
        raise _StopReference

    hooks = [
        decoder.register_forward_pre_hook(force, with_kwargs=True),
        decoder.register_forward_hook(take, with_kwargs=True),
    ]
    try:
        with torch.inference_mode():
            adapter.forward(batch)
    except _StopReference:
        pass
    finally:
        for hook in hooks:
            hook.remove()
    states = captured.get("hidden_states")
    if not states:
        raise CheckSkipped(
            f"{type(decoder).__name__} returned no hidden_states with output_hidden_states=True"
        )
    return tuple(states)


def _mixed_batch(items: list[PreparedInput], size: int) -> list[PreparedInput]:
    """Up to ``size`` items alternating modalities, so one batch holds several lengths and both kinds."""
    by_modality: dict[str, list[PreparedInput]] = {}
    for item in items:
        by_modality.setdefault(item.modality, []).append(item)
    mixed: list[PreparedInput] = []
    queues = list(by_modality.values())
    while len(mixed) < size and any(queues):
        for queue in queues:
            if queue and len(mixed) < size:
                mixed.append(queue.pop(0))
    return mixed


# ---- the items -----------------------------------------------------------------------------------------------


def _check_hidden_states(adapter: ModelAdapter, batch: Batch, tolerance: float) -> CheckItem:
    title = "hook outputs equal transformers' hidden_states"
    try:
        with LastTokenCapture(adapter) as capture:
            hooked = capture.run(batch).numpy()
        states = reference_hidden_states(adapter, batch)
    except CheckSkipped as reason:
        return CheckItem("hidden_states", title, "skipped", str(reason))
    layers = adapter.layer_names()
    n_blocks = len(layers) - 2
    if len(states) != n_blocks + 1:
        return CheckItem(
            "hidden_states",
            title,
            "fail",
            f"hidden_states has {len(states)} entries, expected {n_blocks + 1} (emb + {n_blocks} blocks)",
        )
    rows = torch.arange(len(batch.sample_ids))
    positions = batch.last_positions.cpu()
    pairs = {"emb": 0, **{f"block{i}": i + 1 for i in range(n_blocks - 1)}, "final_norm": n_blocks}
    worst: dict[str, float] = {}
    for name, index in pairs.items():
        reference = states[index][rows, positions.to(states[index].device)].detach().float().cpu().numpy()
        worst[name] = float(relative_diff(hooked[:, layers.index(name)], reference).max())
    last_block = f"block{n_blocks - 1}"
    raw_vs_norm = float(
        relative_diff(hooked[:, layers.index(last_block)], hooked[:, layers.index("final_norm")]).min()
    )
    bad = {name: value for name, value in worst.items() if not value <= tolerance}
    numbers = {
        "max_relative_diff": worst,
        "tolerance": tolerance,
        f"{last_block}_vs_final_norm_min": raw_vs_norm,
        "rows": len(batch.sample_ids),
    }
    if bad:
        return CheckItem(
            "hidden_states", title, "fail", f"layers over tolerance {tolerance:g}: {bad}", numbers
        )
    if raw_vs_norm <= DISTINCT_MIN:
        return CheckItem(
            "hidden_states",
            title,
            "fail",
            f"{last_block} equals final_norm: the final-norm hook sits on the last block, not after the norm",
            numbers,
        )
    return CheckItem(
        "hidden_states",
        title,
        "pass",
        f"emb, block0..block{n_blocks - 2} and final_norm within {tolerance:g} (worst "
        f"{max(worst.values()):.2e}); {last_block} differs from final_norm (min {raw_vs_norm:.2e})",
        numbers,
    )


def placeholder_counts(adapter: ModelAdapter, item: PreparedInput) -> dict[str, int]:
    """Placeholders in the input ids and the positions among them that carry an audio embedding.

    ``adapter.audio_embedding_counts(item) -> (placeholders, embeddings)`` is used when present. Otherwise the
    decoder's input (``emb``, after the merge) is compared with the plain token embedding of the input ids: a
    placeholder position still holding it received no audio embedding. Placeholders are the positions of
    ``adapter.audio_token_id`` or, for adapters without one (audio added to every position, Voxtral Realtime),
    the item's ``content_span``.
    """
    method = getattr(adapter, "audio_embedding_counts", None)
    if callable(method):
        placeholders, embeddings = method(item)
        return {"placeholders": int(placeholders), "audio_embeddings": int(embeddings)}
    token_id = getattr(adapter, "audio_token_id", None)
    model = getattr(adapter, "model", None)
    span = item.content_span
    if (token_id is None and span is None) or not hasattr(model, "get_input_embeddings"):
        raise CheckSkipped(
            f"adapter {type(adapter).__name__} exposes neither audio_embedding_counts(item) nor "
            "audio_token_id (or a content_span) with model.get_input_embeddings()"
        )
    ids = torch.as_tensor(_token_ids(item))
    if token_id is not None:
        mask = ids == int(token_id)
    else:
        assert span is not None
        mask = torch.zeros_like(ids, dtype=torch.bool)
        mask[span[0] : span[1]] = True
    batch = adapter.collate([item])
    block0 = adapter.layer_handles().blocks[0]
    captured: dict[str, torch.Tensor] = {}

    def take(_module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        hidden = args[0] if args else kwargs.get("hidden_states")
        captured["emb"] = hidden[0].detach().float().cpu()
        raise _StopReference

    hook = block0.register_forward_pre_hook(take, with_kwargs=True)
    try:
        with torch.inference_mode():
            adapter.forward(batch)
    except _StopReference:
        pass
    finally:
        hook.remove()
    with torch.inference_mode():
        embed = model.get_input_embeddings()
        plain = embed(ids[None].to(next(embed.parameters()).device))[0].float().cpu()
    emb = captured["emb"][: ids.shape[0]]
    changed = ~torch.isclose(emb, plain, rtol=1e-3, atol=1e-5).all(dim=-1)
    return {
        "placeholders": int(mask.sum()),
        "audio_embeddings": int((changed & mask).sum()),
        "other_positions_changed": int((changed & ~mask).sum()),
    }


def _check_placeholders(adapter: ModelAdapter, items: list[PreparedInput]) -> CheckItem:
    title = "audio placeholder count equals audio embeddings"
    if adapter.spec.kind != "lalm":
        reason = (
            "text-only model"
            if adapter.spec.kind == "text-lm"
            else "Whisper: audio enters through cross-attention, no placeholders in the decoder input"
        )
        return CheckItem("audio_placeholders", title, "not applicable", reason)
    speech = [item for item in items if item.modality == "speech"]
    if not speech:
        return CheckItem("audio_placeholders", title, "skipped", "the check set holds no speech input")
    per_clip: dict[str, dict[str, int]] = {}
    try:
        for item in speech:
            per_clip[item.sample_id] = placeholder_counts(adapter, item)
    except CheckSkipped as reason:
        return CheckItem("audio_placeholders", title, "skipped", str(reason))
    bad = {
        sid: c
        for sid, c in per_clip.items()
        if c["placeholders"] < 1 or c["placeholders"] != c["audio_embeddings"]
    }
    numbers = {"per_clip": per_clip}
    if bad:
        return CheckItem("audio_placeholders", title, "fail", f"mismatch on {len(bad)} clips: {bad}", numbers)
    counts = sorted(c["placeholders"] for c in per_clip.values())
    return CheckItem(
        "audio_placeholders",
        title,
        "pass",
        f"{len(per_clip)} clips, placeholders = audio embeddings ({counts[0]}..{counts[-1]} per clip)",
        numbers,
    )


def _check_distinct(latents: np.ndarray, layers: list[str], items: list[PreparedInput]) -> CheckItem:
    title = "distinct inputs give distinct latents (after emb)"
    content = [json.dumps(item.key_material, sort_keys=True) for item in items]
    minimum: dict[str, float] = {}
    collapsed: list[str] = []
    for index, name in enumerate(layers):
        if name == "emb":
            continue  # the last token's embedding is the shared suffix token: identical by design
        vectors = latents[:, index].astype(np.float64)
        norms = np.linalg.norm(vectors, axis=1)
        best = math.inf
        for i in range(len(items)):
            for j in range(i + 1, len(items)):
                if content[i] == content[j]:
                    continue
                scale = max(norms[i], norms[j], np.finfo(np.float64).tiny)
                distance = float(np.linalg.norm(vectors[i] - vectors[j]) / scale)
                best = min(best, distance)
                if distance <= DISTINCT_MIN:
                    collapsed.append(f"{name}: {items[i].sample_id} == {items[j].sample_id}")
        minimum[name] = best
    numbers = {"min_relative_distance": minimum, "threshold": DISTINCT_MIN, "inputs": len(items)}
    if len(items) < 2:
        return CheckItem("distinct_inputs", title, "skipped", "fewer than two inputs", numbers)
    if collapsed:
        return CheckItem(
            "distinct_inputs", title, "fail", f"{len(collapsed)} collapsed pairs: {collapsed[:5]}", numbers
        )
    return CheckItem(
        "distinct_inputs",
        title,
        "pass",
        f"{len(items)} inputs; smallest relative distance {min(minimum.values()):.2e} (at "
        f"{min(minimum, key=minimum.get)})",  # type: ignore[arg-type]
        numbers,
    )


def _check_batch(
    single: np.ndarray,
    batched: np.ndarray,
    layers: list[str],
    tolerance: dict[str, float],
    batch_size: int,
    lengths: list[int],
) -> CheckItem:
    title = f"batch 1 equals batch {batch_size} (inputs of different lengths)"
    diffs = relative_diff(batched, single)
    worst = _per_layer_max(diffs, layers)
    bad = {name: value for name, value in worst.items() if not value <= tolerance[name]}
    numbers = {"max_relative_diff": worst, "tolerance": tolerance, "lengths": sorted(set(lengths))}
    if len(set(lengths)) < 2:
        numbers["note"] = "all inputs had one length: padding was not exercised"
    if bad:
        return CheckItem(
            "batch_invariance",
            title,
            "fail",
            f"layers over tolerance: { {k: f'{v:.2e}' for k, v in bad.items()} }",
            numbers,
        )
    return CheckItem(
        "batch_invariance",
        title,
        "pass",
        f"worst {max(worst.values()):.2e} at {max(worst, key=worst.get)}; "  # type: ignore[arg-type]
        f"lengths {min(lengths)}..{max(lengths)} tokens",
        numbers,
    )


def _check_drift(low: np.ndarray, full: np.ndarray, layers: list[str], low_name: str) -> CheckItem:
    title = f"{low_name} versus float32 drift (relative)"
    diffs = relative_diff(low, full)
    l2 = np.linalg.norm(low.astype(np.float64) - full, axis=-1) / np.maximum(
        np.linalg.norm(full, axis=-1), 1e-300
    )
    worst = _per_layer_max(diffs, layers)
    median_l2 = {name: float(np.median(l2[:, i])) for i, name in enumerate(layers)}
    numbers = {"max_relative_diff": worst, "median_relative_l2": median_l2, "ceiling": DRIFT_CEILING}
    if not np.isfinite(low).all():
        return CheckItem("dtype_drift", title, "fail", f"{low_name} latents contain NaN or inf", numbers)
    if median_l2["final_norm"] > DRIFT_CEILING:
        return CheckItem(
            "dtype_drift",
            title,
            "fail",
            f"median drift at final_norm {median_l2['final_norm']:.2e} exceeds {DRIFT_CEILING}",
            numbers,
        )
    return CheckItem(
        "dtype_drift",
        title,
        "pass",
        f"median relative L2 at final_norm {median_l2['final_norm']:.2e}; worst max-abs "
        f"{max(worst.values()):.2e} at {max(worst, key=worst.get)}",  # type: ignore[arg-type]
        numbers,
    )


def _check_template(adapter: ModelAdapter, template: str, items: list[PreparedInput]) -> CheckItem:
    title = "template printed (rendered, and the last tokens received)"
    rendered = {
        name: {modality: t.rendered for modality, t in by_modality.items()}
        for name, by_modality in adapter.templates.items()
    }
    tails: dict[str, dict[str, Any]] = {}
    for item in items:
        if item.modality in tails:
            continue
        ids = _token_ids(item)[-TAIL_TOKENS:]
        tails[item.modality] = {
            "sample": item.sample_id,
            "ids": ids,
            "tokens": _decode(adapter, ids),
            "last_token_id": item.last_token_id,
        }
    numbers = {"rendered": rendered, "last_tokens": tails, "template": template}
    last_ids = {modality: tail["last_token_id"] for modality, tail in tails.items()}
    if template == "shared-suffix" and len(set(last_ids.values())) > 1:
        return CheckItem(
            "template",
            title,
            "fail",
            f"shared-suffix but the modalities end on different tokens: {last_ids}",
            numbers,
        )
    shown = "; ".join(
        f"{m}: {t['tokens'] if t['tokens'] is not None else t['ids']}" for m, t in tails.items()
    )
    return CheckItem("template", title, "pass", f"last tokens {shown}", numbers)


def _not_run(key: str) -> CheckItem:
    return CheckItem(key, key, "skipped", "not requested")


def _clean_english_clip(probe_set: ProbeSet) -> tuple[Sample, np.ndarray] | None:
    """The first English speech sample of the set on the clean device (or without one), with its waveform."""
    from benchmark.probes.io import read_waveform

    for sample in probe_set.samples:
        if sample.modality == "speech" and sample.language == "en" and sample.device in (None, "clean"):
            waveform, _notes = read_waveform(probe_set.audio_file(sample))
            return sample, waveform
    return None


def _check_generation(adapter: ModelAdapter, probe_set: ProbeSet) -> CheckItem:
    """(g): greedy transcript of one clean English clip, its WER; a warning above ``GENERATION_WER_WARN``."""
    from benchmark.engine.wer import normalise, wer

    title = "greedy transcript of a clean clip (word error rate)"
    if "speech" not in adapter.spec.modalities:
        return CheckItem("generation", title, "not applicable", "the model takes no speech")
    transcribe = getattr(adapter, "transcribe", None)
    if not callable(transcribe):
        return CheckItem("generation", title, "skipped", f"{type(adapter).__name__} has no transcribe()")
    found = _clean_english_clip(probe_set)
    if found is None:
        return CheckItem("generation", title, "skipped", "the check set holds no clean English clip")
    sample, waveform = found
    hypothesis = str(transcribe(waveform, language="en", max_new_tokens=GENERATION_TOKENS))
    rate = wer([sample.text], [hypothesis]) if normalise(sample.text) else float("nan")
    numbers = {
        "sample": sample.id,
        "reference": sample.text,
        "hypothesis": hypothesis,
        "wer": rate,
        "warn_above": GENERATION_WER_WARN,
    }
    status: CheckOutcome = "pass" if rate <= GENERATION_WER_WARN else "warn"
    detail = f"WER {rate:.2f} on {sample.id} (reference {sample.text!r}, transcript {hypothesis!r})"
    if status == "warn":
        detail += f"; above {GENERATION_WER_WARN}: check the speech path before running claims"
    return CheckItem("generation", title, status, detail, numbers)


def _check_parity(adapter: ModelAdapter, probe_set: ProbeSet) -> CheckItem:
    """(h): Ultravox against the official code, run by ``LALM_BENCH_ULTRAVOX_PYTHON`` in its own environment."""
    import os
    import subprocess
    import tempfile
    from pathlib import Path

    title = "Ultravox re-implementation against the official code (hidden states)"
    if adapter.spec.family != "ultravox":
        return CheckItem("parity", title, "not applicable", "only the Ultravox re-implementation has one")
    python = os.environ.get(ULTRAVOX_PYTHON_ENV, "")
    if not python:
        return CheckItem(
            "parity",
            title,
            "skipped",
            f"set {ULTRAVOX_PYTHON_ENV} to the python of an environment where the official Ultravox code runs "
            "(transformers 4.x with hub access, or its checkpoint cached) to compare",
        )
    found = _clean_english_clip(probe_set)
    if found is None:
        return CheckItem("parity", title, "skipped", "the check set holds no clean English clip")
    from benchmark.models.chat_templates import PINNED_DATE
    from benchmark.models.hf_common import INSTRUCTION
    from benchmark.models.ultravox import PARITY_REFERENCE_SCRIPT, PLACEHOLDER, parity_check

    sample, waveform = found
    content = PLACEHOLDER + INSTRUCTION  # the user message of the shared-suffix template
    with tempfile.TemporaryDirectory() as tmp:
        audio, out, script = Path(tmp) / "audio.npy", Path(tmp) / "reference.npz", Path(tmp) / "reference.py"
        np.save(audio, waveform.astype(np.float32))
        script.write_text(PARITY_REFERENCE_SCRIPT, encoding="utf-8")
        args = [
            python,
            str(script),
            adapter.spec.hub_id or "",
            adapter.spec.revision,
            content,
            str(audio),
            PINNED_DATE,
            str(out),
        ]
        run = subprocess.run(args, capture_output=True, text=True, timeout=3600, check=False)
        if run.returncode != 0 or not out.is_file():
            return CheckItem(
                "parity",
                title,
                "fail",
                f"the reference run failed ({run.returncode}): {(run.stderr or run.stdout).strip()[-400:]}",
            )
        try:
            errors = parity_check(adapter, out, sample, waveform, rtol=PARITY_RTOL)  # type: ignore[arg-type]
        except PipelineError as exc:
            return CheckItem("parity", title, "fail", str(exc))
    worst = max(errors, key=errors.get)  # type: ignore[arg-type]
    return CheckItem(
        "parity",
        title,
        "pass",
        f"{len(errors)} layers within {PARITY_RTOL:g} (worst {worst} {errors[worst]:.2e})",
        {"relative_error": errors},
    )


# ---- the run -------------------------------------------------------------------------------------------------


def _extract(adapter: ModelAdapter, probe_set: ProbeSet, **kwargs: Any) -> np.ndarray:
    latent_set, _stats = extract_latents(adapter, probe_set, cache=None, progress=False, **kwargs)
    return latent_set.latents


def run_check(
    adapter: ModelAdapter,
    *,
    device: str = "auto",
    dtype: str = "auto",
    probe_set: ProbeSet | None = None,
    batch_size: int = 8,
    template: str = "shared-suffix",
    generation: bool = True,
) -> CheckReport:
    """Run items (a)-(f) on ``adapter`` and return the report (``report.ok`` false when an item failed).

    The adapter is (re)loaded in the run's dtype and once in the other of fp32/bf16 for (e); no latent cache
    is read or written, and the encoder cache is reset at every reload so outputs of one dtype never feed
    another. Raises (weights unavailable, a broken forward) rather than reporting when nothing can run.
    """
    if batch_size < 2:
        raise ValueError(f"batch_size must be at least 2 to compare against batch 1, got {batch_size}")
    started = time.perf_counter()
    torch_device = resolve_device(device)
    run_dtype = resolve_dtype(dtype, torch_device, adapter)
    check_set = probe_set if probe_set is not None else default_check_set(adapter)
    check_set = check_set.subset(lambda s: adapter.accepts(s.modality, s.language))
    opts = {"template": template, "device": str(torch_device)}

    adapter.load(torch_device, run_dtype)
    adapter.encoder_cache = MemoryEncoderCache()
    layers = adapter.layer_names()
    items, _notes = prepare_samples(adapter, check_set, check_set.samples, template)
    by_id = {item.sample_id: item for item in items}

    items_out: list[CheckItem] = []
    run_tolerance = FP32_TOLERANCE
    batched = _extract(adapter, check_set, batch_size=batch_size, dtype=dtype_name(run_dtype), **opts)
    single = _extract(adapter, check_set, batch_size=1, dtype=dtype_name(run_dtype), **opts)
    ordered = [by_id[s.id] for s in check_set.samples]
    hs_batch = adapter.collate(_mixed_batch(ordered, batch_size))

    # (e) first in the report's logic: it sets the low-precision tolerance of (a) and (d).
    low_dtype = torch.bfloat16 if run_dtype == torch.float32 else run_dtype
    other = torch.float32 if run_dtype != torch.float32 else torch.bfloat16
    adapter.load(torch_device, other)
    adapter.encoder_cache = MemoryEncoderCache()
    other_latents = _extract(adapter, check_set, batch_size=batch_size, dtype=dtype_name(other), **opts)
    full, low = (batched, other_latents) if run_dtype == torch.float32 else (other_latents, batched)
    drift = _check_drift(low, full, layers, dtype_name(low_dtype))
    adapter.load(torch_device, run_dtype)
    adapter.encoder_cache = MemoryEncoderCache()

    if run_dtype == torch.float32:
        tolerance = dict.fromkeys(layers, FP32_TOLERANCE)
    else:
        # A batch-size effect may not exceed the low precision's own error on that layer.
        tolerance = {
            name: max(FP32_TOLERANCE, value) for name, value in drift.numbers["max_relative_diff"].items()
        }
        run_tolerance = max(tolerance.values())

    items_out.append(_check_hidden_states(adapter, hs_batch, run_tolerance))
    items_out.append(_check_placeholders(adapter, ordered))
    items_out.append(_check_distinct(batched, layers, ordered))
    items_out.append(
        _check_batch(single, batched, layers, tolerance, batch_size, [i.length for i in ordered])
    )
    items_out.append(drift)
    items_out.append(_check_template(adapter, template, ordered))
    items_out.append(_check_generation(adapter, check_set) if generation else _not_run("generation"))
    items_out.append(_check_parity(adapter, check_set))

    counts: dict[str, int] = {}
    for sample in check_set.samples:
        counts[sample.modality] = counts.get(sample.modality, 0) + 1
    return CheckReport(
        model=adapter.spec.name,
        revision=adapter.spec.revision,
        kind=adapter.spec.kind,
        device=str(torch_device),
        dtype=dtype_name(run_dtype),
        template=template,
        probe_set=check_set.name,
        samples=counts,
        items=items_out,
        tolerances={
            "fp32": FP32_TOLERANCE,
            "run": tolerance,
            "distinct_min": DISTINCT_MIN,
            "drift_ceiling": DRIFT_CEILING,
        },
        seconds=round(time.perf_counter() - started, 2),
    )


# ---- output --------------------------------------------------------------------------------------------------


def format_report(report: CheckReport) -> str:
    """Human-readable report: one line per item, then the templates and the decoded last tokens."""
    verdict = "OK" if report.ok else f"FAILED ({', '.join(i.key for i in report.failed)})"
    lines = [
        f"lalm-bench check {report.model}  [{verdict}]",
        f"  revision {report.revision}  kind {report.kind}  device {report.device}  dtype {report.dtype}",
        f"  template {report.template}  inputs {report.samples}  {report.seconds:.1f} s",
        "",
    ]
    marks = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skipped": "SKIP", "not applicable": "n/a "}
    for letter, item in zip("abcdefgh", report.items, strict=False):
        lines.append(f"  ({letter}) {marks[item.status]}  {item.title}")
        lines.append(f"            {item.detail}")
    template = report.item("template").numbers
    lines += ["", "  templates:"]
    for name, by_modality in template.get("rendered", {}).items():
        for modality, text in by_modality.items():
            lines.append(f"    {name:>13} {modality:>6}: {text!r}")
    lines.append(f"  last {TAIL_TOKENS} tokens under {report.template!r}:")
    for modality, tail in template.get("last_tokens", {}).items():
        lines.append(f"    {modality:>6} ({tail['sample']}): {tail['tokens']} ids {tail['ids']}")
    return "\n".join(lines)


def report_json(report: CheckReport) -> str:
    return json.dumps(report.to_dict(), indent=2, default=str)


def main_check(args: argparse.Namespace) -> int:
    """``lalm-bench check MODEL [--device] [--dtype] [--batch-size] [--json]``: 0 when every item passed, 1 if not.

    Errors that stop the check from running (unknown model, weights unavailable) propagate as ``BenchError``,
    which the CLI turns into exit status 2.
    """
    from benchmark.models.catalog import get_adapter

    adapter = get_adapter(args.model)
    report = run_check(
        adapter,
        device=getattr(args, "device", "auto"),
        dtype=getattr(args, "dtype", "auto"),
        batch_size=getattr(args, "batch_size", 8),
    )
    print(report_json(report) if getattr(args, "json", False) else format_report(report))
    if not report.ok:
        print(
            f"lalm-bench check: {report.model}: failed items {[i.key for i in report.failed]}",
            file=sys.stderr,
        )
        return 1
    return 0
