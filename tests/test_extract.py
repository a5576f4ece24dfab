"""The extraction engine on real and tiny models: batch independence, hook points, no LM head, the cache.

Cases: gemma-3-270m-q4km (text, real weights), whisper-base-ct2 (speech + text, real weights, clean clips of
the shipped speech-grid fixture), and the tiny random Qwen2-Audio and Ultravox of ``tests/tiny_lalms.py``
(SYNTHETIC tokenizers and processors, synthetic tone clips). Each model is loaded once per module and
extracted cold once; the other tests reuse that run and its cache, so the file stays within a few minutes on
two CPU cores.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from benchmark.core.audio import write_float_wav as write_wav
from benchmark.core.errors import PipelineError
from benchmark.core.schema import ProbeSet, Sample
from benchmark.engine.cache import LatentCache
from benchmark.engine.check import reference_hidden_states, relative_diff
from benchmark.engine.extract import (
    ExtractionStats,
    LastTokenCapture,
    LatentSet,
    extract_latents,
    prepare_samples,
)
from benchmark.models import offline_assets
from benchmark.models.base import ModelAdapter
from benchmark.probes.io import write_probe_set

CPU = torch.device("cpu")
TOLERANCE = 1e-4  # DESIGN.md: max diff <= 1e-4 of the latent's norm in fp32
RUN = {"device": "cpu", "dtype": "float32"}
CASES = ["gemma-3-270m-q4km", "whisper-base-ct2", "tiny-qwen2-audio", "tiny-ultravox"]


@dataclass
class Case:
    """One model with its probe set and the cold batch-8 extraction every test compares against."""

    name: str
    adapter: ModelAdapter
    probe_set: ProbeSet
    cache_root: Path
    cold: LatentSet
    cold_stats: ExtractionStats


def _spread(samples: list[Sample], n: int) -> list[Sample]:
    step = max(1, len(samples) // n)
    return samples[::step][:n]


def _texts(n: int, languages: tuple[str, ...] | None = None) -> list[Sample]:
    """Parallel sentences of several languages, with and without final punctuation: lengths differ."""
    from benchmark.probes.catalog import resolve_probes

    texts = [
        s
        for s in resolve_probes("text-parallel", "ci").samples
        if languages is None or s.language in languages
    ]
    return _spread(texts, n)


def _grid_clips(n: int) -> list[Sample]:
    """Clean speech-grid clips with absolute paths (so they can share a set with other samples)."""
    from benchmark.probes.catalog import resolve_probes

    grid = resolve_probes("speech-grid", "ci")
    if not grid.samples or not grid.audio_file(grid.samples[0]).is_file():
        pytest.skip(
            "fixtures/speech-grid/audio is missing: run `lalm-bench fixtures build --sets speech-grid`"
        )
    clean = sorted((s for s in grid.samples if s.device == "clean"), key=lambda s: (s.group_id, s.speaker))
    return [s.model_copy(update={"audio_path": str(grid.audio_file(s))}) for s in _spread(clean, n)]


def _tone_clips(folder: Path, n: int) -> list[Sample]:
    """Synthetic tone clips (tiny models take at most 1 s) written as WAV files; SYNTHETIC, not speech."""
    from tests.tiny_lalms import clip

    samples = []
    for i in range(n):
        path = write_wav(folder / f"tone{i}.wav", clip(100 + i, seconds=0.3 + 0.12 * i), 16_000)
        samples.append(
            Sample(
                id=f"tone{i}",
                modality="speech",
                text=f"tone {i}",
                audio_path=str(path),
                language="en",
                synthetic=True,
            )
        )
    return samples


def _build(name: str, folder: Path) -> tuple[ModelAdapter, ProbeSet]:
    if name in ("gemma-3-270m-q4km", "whisper-base-ct2"):
        status = offline_assets.availability(name)
        if not status.available:
            pytest.skip(status.detail)
        from benchmark.models.catalog import get_adapter

        adapter = get_adapter(name)
        adapter.load(CPU, torch.float32)
        # gemma: 6 texts plus 2 clips it cannot take (they must be listed as skipped)
        samples = _texts(6) + _grid_clips(2) if name == "gemma-3-270m-q4km" else _texts(4) + _grid_clips(3)
    elif name == "tiny-qwen2-audio":
        from benchmark.models.hub_factory import build_adapter
        from tests.tiny_lalms import tiny_qwen2_audio

        model, processor = tiny_qwen2_audio()
        adapter = build_adapter("qwen2-audio-7b-instruct")
        adapter.attach(model, processor, device=CPU, dtype=torch.float32)  # type: ignore[attr-defined]
        samples = _texts(5, ("en", "fr", "de")) + _tone_clips(folder, 5)
    else:
        from benchmark.models.hub_factory import build_adapter
        from tests.tiny_lalms import tiny_ultravox

        model, tok, fe = tiny_ultravox()
        adapter = build_adapter("ultravox-0.5-llama-3.2-1b")
        adapter.attach(model, tok, fe, stack_factor=2, device=CPU, dtype=torch.float32)  # type: ignore[attr-defined]
        samples = _texts(5, ("en", "fr", "de")) + _tone_clips(folder, 5)
    return adapter, ProbeSet(name=f"extract-test-{name}", samples=samples)


@pytest.fixture(scope="module", params=CASES)
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Case]:
    folder = tmp_path_factory.mktemp(request.param.replace(".", "_"))
    adapter, probe_set = _build(request.param, folder)
    cache_root = folder / "cache"
    cold, stats = extract_latents(adapter, probe_set, batch_size=8, cache=LatentCache(cache_root), **RUN)
    yield Case(request.param, adapter, probe_set, cache_root, cold, stats)
    adapter.unload()


def _accepted(case: Case) -> list[Sample]:
    return [s for s in case.probe_set.samples if case.adapter.accepts(s.modality, s.language)]


def _lm_head(adapter: ModelAdapter) -> torch.nn.Module:
    model: Any = getattr(adapter, "model", None)
    for owner in (model, getattr(model, "language_model", None)):
        getter = getattr(owner, "get_output_embeddings", None)
        head = getter() if callable(getter) else None
        if isinstance(head, torch.nn.Module):
            return head
    raise AssertionError(f"{adapter.spec.name}: no LM head found to watch")


# ---- latents ---------------------------------------------------------------------------------------------------


def test_batch1_equals_batch8_with_different_lengths(case: Case) -> None:
    lengths = {case.cold.manifest.positions[i] for i in range(len(case.cold.sample_ids))}
    assert len(lengths) > 1, "the inputs must differ in length for padding to matter"
    single, stats = extract_latents(case.adapter, case.probe_set, batch_size=1, cache=None, **RUN)
    assert stats.forward_passes == len(single.sample_ids)
    assert single.sample_ids == case.cold.sample_ids
    diffs = relative_diff(single.latents, case.cold.latents)
    assert diffs.max() <= TOLERANCE, (
        f"worst {diffs.max():.2e} at layer {case.cold.manifest.layers[diffs.max(0).argmax()]}"
    )


def test_hooks_equal_hidden_states_and_final_norm(case: Case) -> None:
    samples = _accepted(case)[:3] + _accepted(case)[-3:]  # both modalities, mixed lengths
    items, _ = prepare_samples(case.adapter, case.probe_set, samples, "shared-suffix")
    batch = case.adapter.collate(items)
    with LastTokenCapture(case.adapter) as capture:
        hooked = capture.run(batch).numpy()
    states = reference_hidden_states(case.adapter, batch)
    n_blocks = case.adapter.num_blocks
    assert len(states) == n_blocks + 1
    rows, positions = torch.arange(len(items)), batch.last_positions.cpu()

    def ref(index: int) -> np.ndarray:
        return states[index][rows, positions].float().numpy()

    assert relative_diff(hooked[:, 0], ref(0)).max() <= TOLERANCE  # emb
    for block in range(n_blocks - 1):  # every block but the last
        assert relative_diff(hooked[:, block + 1], ref(block + 1)).max() <= TOLERANCE, f"block{block}"
    assert relative_diff(hooked[:, -1], ref(n_blocks)).max() <= TOLERANCE  # final_norm == hidden_states[-1]
    assert relative_diff(hooked[:, -2], hooked[:, -1]).min() > 1e-3  # raw last block is not final_norm


def test_lm_head_never_runs(case: Case) -> None:
    head = _lm_head(case.adapter)
    calls: list[int] = []
    handle = head.register_forward_hook(lambda *_: calls.append(1))
    try:
        subset = case.probe_set.subset(lambda s: s in _accepted(case)[:3])
        _, stats = extract_latents(case.adapter, subset, batch_size=8, cache=None, **RUN)
        assert stats.forward_passes == 1 and calls == []
        with torch.inference_mode():  # the watch itself works
            head(torch.zeros(1, head.weight.shape[1]))
        assert calls == [1]
    finally:
        handle.remove()


def test_distinct_inputs_distinct_latents(case: Case) -> None:
    latents = case.cold.latents.astype(np.float64)
    for layer in range(
        1, latents.shape[1]
    ):  # after emb: emb at the shared suffix token is identical by design
        vectors = latents[:, layer]
        gaps = np.linalg.norm(vectors[:, None] - vectors[None], axis=-1)
        scale = np.linalg.norm(vectors, axis=-1)
        gaps /= np.maximum(scale[:, None], scale[None])
        np.fill_diagonal(gaps, np.inf)
        assert gaps.min() > 1e-6, f"layer {case.cold.manifest.layers[layer]}: two inputs share a latent"


def test_unaccepted_samples_listed_as_skipped(case: Case) -> None:
    refused = [s.id for s in case.probe_set.samples if not case.adapter.accepts(s.modality, s.language)]
    assert sorted(case.cold_stats.skipped) == sorted(refused)
    assert not set(refused) & set(case.cold.sample_ids)
    assert len(case.cold.sample_ids) + len(refused) == len(case.probe_set.samples)
    if case.name == "gemma-3-270m-q4km":
        assert len(refused) == 2
        assert all("does not take speech" in reason for reason in case.cold_stats.skipped.values())


# ---- the cache -------------------------------------------------------------------------------------------------


def test_warm_rerun_does_no_forward(case: Case) -> None:
    warm, stats = extract_latents(
        case.adapter, case.probe_set, batch_size=8, cache=LatentCache(case.cache_root), **RUN
    )
    n = len(case.cold.sample_ids)
    assert (stats.forward_passes, stats.cache_hits, stats.cache_misses) == (0, n, 0)
    np.testing.assert_array_equal(warm.latents, case.cold.latents)


def test_corrupt_entry_detected_and_recomputed(case: Case, tmp_path: Path) -> None:
    root = tmp_path / "cache"
    shutil.copytree(case.cache_root, root)
    entry = sorted(root.rglob("*.npz"))[0]
    entry.write_bytes(entry.read_bytes()[:100])  # torn write
    redone, stats = extract_latents(
        case.adapter, case.probe_set, batch_size=8, cache=LatentCache(root), **RUN
    )
    assert (stats.corrupt_entries, stats.cache_misses, stats.forward_passes) == (1, 1, 1)
    assert relative_diff(redone.latents, case.cold.latents).max() <= TOLERANCE


def test_interrupted_run_resumes(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = LatentCache(tmp_path / "cache")
    real_forward = case.adapter.forward
    calls = {"n": 0}

    def failing_forward(batch: Any) -> None:
        calls["n"] += 1
        if calls["n"] > 2:
            raise RuntimeError("simulated interruption after 2 batches")
        real_forward(batch)

    monkeypatch.setattr(case.adapter, "forward", failing_forward)
    with pytest.raises(RuntimeError, match="simulated interruption"):
        extract_latents(case.adapter, case.probe_set, batch_size=2, cache=cache, **RUN)
    monkeypatch.undo()
    n = len(case.cold.sample_ids)
    resumed, stats = extract_latents(
        case.adapter, case.probe_set, batch_size=2, cache=LatentCache(cache.root), **RUN
    )
    assert stats.cache_hits == 4 and stats.cache_misses == n - 4
    assert stats.forward_passes == -(-(n - 4) // 2)
    assert relative_diff(resumed.latents, case.cold.latents).max() <= TOLERANCE


# ---- the latents file ------------------------------------------------------------------------------------------


def test_latents_file_round_trip_and_tamper(case: Case, tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.numpy import save_file

    path = case.cold.save(tmp_path / "latents.safetensors")
    loaded = LatentSet.load(path)
    np.testing.assert_array_equal(loaded.latents, case.cold.latents)
    assert loaded.manifest == case.cold.manifest
    assert loaded.layer("final_norm").shape == (len(loaded.sample_ids), case.cold.latents.shape[2])

    with safe_open(str(path), framework="numpy") as handle:
        metadata, tensor = handle.metadata(), handle.get_tensor("latents").copy()
    tensor[0, 1, 0] += 1.0
    save_file({"latents": tensor}, str(tmp_path / "tampered.safetensors"), metadata=metadata)
    with pytest.raises(PipelineError, match="checksum"):
        LatentSet.load(tmp_path / "tampered.safetensors")
    save_file({"latents": tensor}, str(tmp_path / "bare.safetensors"))
    with pytest.raises(PipelineError, match="no manifest"):
        LatentSet.load(tmp_path / "bare.safetensors")


@pytest.mark.parametrize(
    "case", ["gemma-3-270m-q4km"], indirect=True
)  # model-agnostic: once, real text model
def test_cli_export_import_round_trip(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmark.claims.store import latents_path
    from benchmark.cli.main import main

    texts = ProbeSet(name="cli-texts", samples=[s for s in case.probe_set.samples if s.modality == "text"])
    folder = write_probe_set(tmp_path / "probes", texts)
    out = tmp_path / "export.safetensors"
    assert (
        main(
            [
                "export-latents",
                "--model",
                case.name,
                "--probes",
                str(folder),
                "--out",
                str(out),
                "--cache-dir",
                str(case.cache_root),
                "--device",
                "cpu",
                "--dtype",
                "float32",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["forward_passes"] == 0 and summary["cache_hits"] == len(texts.samples)
    exported = LatentSet.load(out)
    np.testing.assert_array_equal(exported.latents, case.cold.latents)

    results = tmp_path / "results"
    assert main(["import-latents", str(out), "--results", str(results)]) == 0
    provenance = exported.manifest.provenance
    target = latents_path(
        results, provenance.model, provenance.revision, provenance.probe_set_hash, exported.manifest.template
    )
    imported = LatentSet.load(target)
    np.testing.assert_array_equal(imported.latents, exported.latents)
    assert imported.manifest == exported.manifest


def test_output_rows_refuse_an_unwritten_row() -> None:
    """The engine writes rows in place; a row never written is an engine bug, reported, never a zero row."""
    from benchmark.engine.cache import CachedLatents
    from benchmark.engine.extract import _Rows

    rows = _Rows(2)
    rows.put(1, CachedLatents(np.ones((3, 4), np.float32), np.zeros((2, 4), np.float32)))
    with pytest.raises(PipelineError, match="1 of 2 rows unwritten"):
        rows.arrays()
    rows.put(0, CachedLatents(np.full((3, 4), 2.0, np.float32), np.zeros((2, 4), np.float32)))
    latents, controls = rows.arrays()
    assert latents.shape == (2, 3, 4) and controls.shape == (2, 2, 4) and latents[0, 0, 0] == 2.0
