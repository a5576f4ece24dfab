"""The adapter conformance kit: what every LALM adapter must do, checked on a loaded adapter.

The suite runs it on a tiny random build of every catalogue LALM's real transformers class
(``tests/test_lalm_conformance.py``); a third party runs it on its own adapter (registered through the
``lalm_bench.models`` entry point) the same way, on a tiny build or on the real checkpoint:

    from benchmark.engine.conformance import assert_conformance
    assert_conformance(adapter, expected_blocks=config.num_hidden_layers, texts=[...], clips=[...])

Each check returns a ``ConformanceResult``; ``assert_conformance`` raises one ``AssertionError`` naming every
failed check. What is checked, and why:

``layers``
    the hooked layer names are ``emb``, one per decoder block of the config, ``final_norm`` (a wrong count means
    the wrong module list was hooked);
``placeholders``
    every speech input's audio placeholder is expanded and each position carries an audio embedding after the
    merge (``emb`` differs from the placeholder token's own embedding there);
``audio_reaches_model``
    distinct clips of one length give distinct latents after ``emb``, and the same clips replaced by zeros give
    identical latents: the pipeline gate's ``identical_latents`` trips exactly when the audio is gone;
``batch_invariance``
    batch 1 equals one batch of all inputs (mixed lengths and modalities, right padding);
``content_spans``
    ``content_span`` points at the input's own text tokens (they decode to the text) or at the expanded audio
    placeholder, in the batch's padded coordinates too;
``bare_ends_on_input``
    under ``bare`` a text input's last token is the text's own last token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from benchmark.core.schema import Sample
from benchmark.engine.check import CheckSkipped, placeholder_counts
from benchmark.engine.extract import LastTokenCapture
from benchmark.models.base import ModelAdapter, PreparedInput

#: fp32 tolerance of ``batch_invariance``, relative to the latent's norm (as ``lalm-bench check``)
TOLERANCE = 1e-4
#: two latents closer than this (relative) count as identical
IDENTICAL = 1e-6


@dataclass
class ConformanceResult:
    """One check: its name, whether it passed, a one-line reason and the numbers behind it."""

    name: str
    passed: bool
    detail: str
    numbers: dict[str, Any] = field(default_factory=dict)


def latents(adapter: ModelAdapter, items: list[PreparedInput]) -> np.ndarray:
    """``[n, layers, d]`` latents of ``items`` in one batch, taken by the engine's own capture."""
    batch = adapter.collate(items)
    with LastTokenCapture(adapter) as capture:
        return capture.run(batch).numpy()


def _relative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``|a - b|_max / |b|`` over the last axis."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a64 - b64).max(axis=-1) / np.maximum(np.linalg.norm(b64, axis=-1), 1e-300)


def check_layers(
    adapter: ModelAdapter, expected_blocks: int, sample: tuple[Sample, Any]
) -> ConformanceResult:
    names = adapter.layer_names()
    expected = ["emb", *[f"block{i}" for i in range(expected_blocks)], "final_norm"]
    got = latents(adapter, [adapter.prepare(sample[0], sample[1], "shared-suffix")])
    ok = names == expected and got.shape[1] == len(expected)
    return ConformanceResult(
        "layers",
        ok,
        f"{len(names)} hooked layers (config: {expected_blocks} blocks + emb + final_norm)",
        {"layer_names": names, "captured": int(got.shape[1])},
    )


def check_placeholders(adapter: ModelAdapter, clips: Sequence[tuple[Sample, Any]]) -> ConformanceResult:
    per_clip: dict[str, dict[str, int]] = {}
    try:
        for sample, wave in clips:
            per_clip[sample.id] = placeholder_counts(adapter, adapter.prepare(sample, wave, "shared-suffix"))
    except CheckSkipped as reason:
        return ConformanceResult("placeholders", False, f"cannot count placeholders: {reason}")
    bad = {
        k: v
        for k, v in per_clip.items()
        if v["placeholders"] < 1 or v["placeholders"] != v["audio_embeddings"]
    }
    return ConformanceResult(
        "placeholders",
        not bad,
        f"{len(per_clip)} clips; mismatched: {bad}"
        if bad
        else f"{len(per_clip)} clips, every placeholder filled",
        {"per_clip": per_clip},
    )


def _min_distance(values: np.ndarray) -> np.ndarray:
    """Per layer, the smallest relative distance between any two rows."""
    n = values.shape[0]
    best = np.full(values.shape[1], np.inf)
    for i in range(n):
        for j in range(i + 1, n):
            best = np.minimum(best, _relative(values[i], values[j]))
    return best


def check_audio_reaches_model(
    adapter: ModelAdapter, clips: Sequence[tuple[Sample, Any]]
) -> ConformanceResult:
    """``clips`` must share one length (so that zeroed clips are identical inputs)."""
    lengths = {len(wave) for _, wave in clips}
    if len(clips) < 2 or len(lengths) != 1:
        return ConformanceResult(
            "audio_reaches_model", False, f"needs >= 2 clips of one length, got {lengths}"
        )
    real = latents(adapter, [adapter.prepare(s, w, "shared-suffix") for s, w in clips])
    zeroed = latents(adapter, [adapter.prepare(s, np.zeros_like(w), "shared-suffix") for s, w in clips])
    real_min, zero_min = _min_distance(real[:, 1:]), _min_distance(zeroed[:, 1:])
    ok = bool((real_min > IDENTICAL).all() and (zero_min <= IDENTICAL).all())
    return ConformanceResult(
        "audio_reaches_model",
        ok,
        f"distinct clips: smallest distance {real_min.min():.2e}; zeroed clips: largest {zero_min.max():.2e}",
        {"real": real, "zeroed": zeroed},
    )


def check_batch_invariance(adapter: ModelAdapter, inputs: Sequence[tuple[Sample, Any]]) -> ConformanceResult:
    items = [adapter.prepare(s, w, "shared-suffix") for s, w in inputs]
    together = latents(adapter, items)
    alone = np.stack([latents(adapter, [item])[0] for item in items])
    worst = float(_relative(together, alone).max())
    return ConformanceResult(
        "batch_invariance",
        worst <= TOLERANCE,
        f"batch 1 vs batch {len(items)}: worst relative difference {worst:.2e} (tolerance {TOLERANCE:g}); "
        f"lengths {sorted({it.length for it in items})}",
        {"worst": worst},
    )


def _tokenizer(adapter: ModelAdapter) -> Any:
    return getattr(adapter, "tokenizer", None) or getattr(
        getattr(adapter, "processor", None), "tokenizer", None
    )


def check_content_spans(adapter: ModelAdapter, inputs: Sequence[tuple[Sample, Any]]) -> ConformanceResult:
    items = [adapter.prepare(s, w, template) for s, w in inputs for template in ("shared-suffix", "bare")]
    samples = [s for s, _ in inputs for _ in ("shared-suffix", "bare")]
    tok = _tokenizer(adapter)
    problems: list[str] = []
    for sample, item in zip(samples, items, strict=True):
        span = item.content_span
        ids = item.tensors["input_ids"]
        if span is None or not 0 <= span[0] < span[1] <= int(ids.shape[0]):
            problems.append(f"{sample.id}: span {span} outside the {int(ids.shape[0])} ids")
            continue
        inside = ids[span[0] : span[1]].tolist()
        if sample.modality == "text":
            text = tok.decode(inside, skip_special_tokens=False) if tok is not None else None
            if text is None or text.strip() != sample.text.strip():
                problems.append(f"{sample.id}: span decodes to {text!r}, not {sample.text!r}")
        else:
            audio_id = getattr(adapter, "audio_token_id", None) or getattr(adapter, "placeholder_id", None)
            if audio_id is not None and any(i != audio_id for i in inside):
                problems.append(f"{sample.id}: span holds ids other than the audio placeholder {audio_id}")
    batch = adapter.collate(items)
    if batch.content_spans != [it.content_span for it in items]:
        problems.append(
            f"collate carried spans {batch.content_spans}, items had {[i.content_span for i in items]}"
        )
    return ConformanceResult(
        "content_spans", not problems, "; ".join(problems) or f"{len(items)} spans point at the content"
    )


def check_bare_ends_on_input(adapter: ModelAdapter, texts: Sequence[Sample]) -> ConformanceResult:
    bad = []
    for sample in texts:
        item = adapter.prepare(sample, None, "bare")
        if item.content_span is None or item.content_span[1] != item.length:
            bad.append(f"{sample.id}: span {item.content_span}, length {item.length}")
    return ConformanceResult(
        "bare_ends_on_input", not bad, "; ".join(bad) or f"{len(texts)} texts end on their own token"
    )


def run_conformance(
    adapter: ModelAdapter,
    *,
    expected_blocks: int,
    texts: Sequence[Sample],
    clips: Sequence[tuple[Sample, Any]],
    same_length_clips: Sequence[tuple[Sample, Any]] | None = None,
) -> list[ConformanceResult]:
    """Every check on a loaded adapter. ``clips`` of different lengths; ``same_length_clips`` (default: the first
    two ``clips`` cut to the shorter one's length) for ``audio_reaches_model``."""
    text_inputs = [(s, None) for s in texts] if "text" in adapter.spec.modalities else []
    clip_inputs = list(clips) if "speech" in adapter.spec.modalities else []
    mixed = [*clip_inputs, *text_inputs]
    results = [check_layers(adapter, expected_blocks, mixed[0])]
    if clip_inputs:
        if same_length_clips is None:
            n = min(len(w) for _, w in clip_inputs[:2])
            same_length_clips = [(s, w[:n]) for s, w in clip_inputs[:2]]
        results += [
            check_placeholders(adapter, clip_inputs),
            check_audio_reaches_model(adapter, same_length_clips),
        ]
    results += [check_batch_invariance(adapter, mixed), check_content_spans(adapter, mixed)]
    if text_inputs:
        results.append(check_bare_ends_on_input(adapter, [s for s, _ in text_inputs]))
    return results


def assert_conformance(adapter: ModelAdapter, **kwargs: Any) -> list[ConformanceResult]:
    """``run_conformance``, raising one ``AssertionError`` that names every failed check."""
    results = run_conformance(adapter, **kwargs)
    failed = [r for r in results if not r.passed]
    if failed:
        raise AssertionError(
            f"{adapter.spec.name}: conformance failed: " + "; ".join(f"{r.name}: {r.detail}" for r in failed)
        )
    return results


def tokens_of(adapter: ModelAdapter, ids: torch.Tensor | list[int]) -> list[str]:
    """Each id decoded alone (special tokens kept), for messages."""
    tok = _tokenizer(adapter)
    values = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
    return (
        [tok.decode([i], skip_special_tokens=False) for i in values]
        if tok is not None
        else [str(i) for i in values]
    )
