"""Several templates in one run: each clip is encoded once, and the latents equal separate runs.

Most cases use the SYNTHETIC tiny audio LM of ``tests/tiny_engine.py`` (its encoder counts its runs); the last
compares whisper-base's shared run with per-template runs without any sharing (``slow``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmark.core.schema import ProbeSet, Sample
from benchmark.engine.cache import LatentCache, MemoryEncoderCache
from benchmark.engine.extract import LatentSet, extract_latents, extract_templates
from tests.tiny_engine import TinyAudioLM, tiny_probe_set

RUN = {"device": "cpu", "dtype": "float32"}
BOTH = ("bare", "shared-suffix")
N_TEXT, N_SPEECH = 6, 5


@pytest.fixture(scope="module")
def probes(tmp_path_factory: pytest.TempPathFactory) -> ProbeSet:
    return tiny_probe_set(tmp_path_factory.mktemp("tiny"), N_TEXT, N_SPEECH)


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    """Largest ``|a - b|`` over ``|b|``'s norm, per sample and layer (NaN rows, if any, must match)."""
    assert np.array_equal(np.isnan(a), np.isnan(b))
    a, b = np.nan_to_num(a.astype(np.float64)), np.nan_to_num(b.astype(np.float64))
    norm = np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    return float((np.abs(a - b) / norm).max())


def test_both_templates_equal_separate_runs_and_encode_each_clip_once(probes: ProbeSet) -> None:
    shared = TinyAudioLM()
    sets, stats = extract_templates(shared, probes, BOTH, batch_size=4, cache=None, **RUN)
    assert sorted(sets) == sorted(BOTH) and stats.templates == list(BOTH)
    assert (
        sorted(shared.encoder_runs) == sorted(set(shared.encoder_runs))
        and len(shared.encoder_runs) == N_SPEECH
    )
    assert (stats.audio_encoded, stats.audio_reused) == (N_SPEECH, N_SPEECH)  # the second template reuses
    assert stats.samples == N_TEXT + N_SPEECH and stats.forward_passes == 2 * stats.batches

    for name in BOTH:
        alone_adapter = TinyAudioLM()
        alone, _ = extract_latents(alone_adapter, probes, template=name, batch_size=4, cache=None, **RUN)
        assert len(alone_adapter.encoder_runs) == N_SPEECH
        assert sets[name].sample_ids == alone.sample_ids == [s.id for s in probes.samples]
        assert sets[name].manifest.template == name
        assert _relative(sets[name].latents, alone.latents) <= 1e-5
        assert _relative(sets[name].controls, alone.controls) <= 1e-5
    assert not np.allclose(sets["bare"].latents[:, -1], sets["shared-suffix"].latents[:, -1])


def test_sharing_switch_off_encodes_each_clip_per_template_with_the_same_latents(
    probes: ProbeSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``LALM_BENCH_SHARE_ENCODER=0`` (the main-job benchmark's A/B switch) encodes every clip once per template
    and changes no latent."""
    shared, _ = extract_templates(TinyAudioLM(), probes, BOTH, batch_size=4, cache=None, **RUN)
    monkeypatch.setenv("LALM_BENCH_SHARE_ENCODER", "0")
    unshared_adapter = TinyAudioLM()
    unshared, stats = extract_templates(unshared_adapter, probes, BOTH, batch_size=4, cache=None, **RUN)
    assert (stats.audio_encoded, stats.audio_reused) == (2 * N_SPEECH, 0)
    assert len(unshared_adapter.encoder_runs) == 2 * N_SPEECH
    for name in BOTH:
        assert np.array_equal(unshared[name].latents, shared[name].latents, equal_nan=True)


def test_single_template_call_still_returns_one_latent_set(probes: ProbeSet) -> None:
    latent_set, stats = extract_latents(TinyAudioLM(), probes, template="bare", cache=None, **RUN)
    assert isinstance(latent_set, LatentSet) and stats.templates == ["bare"]
    by_name, _ = extract_latents(TinyAudioLM(), probes, templates=["bare"], cache=None, **RUN)
    np.testing.assert_array_equal(by_name["bare"].latents, latent_set.latents)
    with pytest.raises(KeyError, match="no template 'chat'"):
        extract_templates(TinyAudioLM(), probes, ("bare", "chat"), cache=None, **RUN)
    with pytest.raises(ValueError, match="at least one template"):
        extract_templates(TinyAudioLM(), probes, (), cache=None, **RUN)


def test_encoder_cache_holds_one_batch_and_is_empty_after_the_run(probes: ProbeSet) -> None:
    adapter = TinyAudioLM()
    adapter.encoder_cache = MemoryEncoderCache()
    speech = probes.subset(lambda s: s.modality == "speech")
    _, stats = extract_templates(adapter, speech, BOTH, batch_size=2, cache=None, **RUN)
    assert stats.batches == 3 and stats.audio_encoded == N_SPEECH
    # each clip's encoder output is [frames, 32] float32, frames = samples // 320 (tiny_probe_set's lengths)
    sizes = sorted(((int(16_000 * (0.1 + 0.04 * i)) // 320) * 32 * 4 for i in range(N_SPEECH)), reverse=True)
    assert 0 < stats.encoder_cache_peak_bytes <= sizes[0] + sizes[1]  # never more than one batch of two clips
    assert len(adapter.encoder_cache) == 0  # type: ignore[arg-type]


def test_a_clip_shared_by_samples_in_different_batches_is_encoded_once(probes: ProbeSet) -> None:
    """Two prompts of one clip (the same audio under two sample ids) straddle a batch boundary at batch 1."""
    clip = next(s for s in probes.samples if s.modality == "speech")
    twin = Sample(**{**clip.model_dump(), "id": "twin", "meaning_id": "other"})
    others = [s for s in probes.samples if s.modality == "speech" and s.id != clip.id][:2]
    probe_set = ProbeSet(name="twins", samples=[clip, *others, twin])
    adapter = TinyAudioLM()
    sets, stats = extract_templates(adapter, probe_set, BOTH, batch_size=1, cache=None, **RUN)
    assert stats.batches == 4 and stats.audio_encoded == 3 and len(adapter.encoder_runs) == 3
    for name in BOTH:
        latents = sets[name].latents
        np.testing.assert_array_equal(latents[0], latents[3])  # same clip, same template: same latents


def test_only_missing_template_entries_are_computed(probes: ProbeSet, tmp_path: Path) -> None:
    cache = LatentCache(tmp_path)
    bare, _ = extract_latents(TinyAudioLM(), probes, template="bare", batch_size=4, cache=cache, **RUN)
    adapter = TinyAudioLM()
    sets, stats = extract_templates(adapter, probes, BOTH, batch_size=4, cache=LatentCache(tmp_path), **RUN)
    n = len(probes.samples)
    assert (stats.cache_hits, stats.cache_misses) == (n, n)
    assert stats.forward_passes == stats.batches == 3  # shared-suffix passes only
    np.testing.assert_array_equal(sets["bare"].latents, bare.latents)
    _, warm = extract_templates(TinyAudioLM(), probes, BOTH, batch_size=4, cache=LatentCache(tmp_path), **RUN)
    assert (warm.cache_hits, warm.forward_passes, warm.audio_encoded) == (2 * n, 0, 0)


def test_encoder_outputs_kept_on_disk_serve_the_next_run(
    probes: ProbeSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LALM_BENCH_ENCODER_CACHE", raising=False)
    first = TinyAudioLM()
    cold, stats = extract_templates(first, probes, BOTH, cache=None, encoder_cache_dir=tmp_path, **RUN)
    assert (stats.audio_to_disk, stats.audio_from_disk, len(first.encoder_runs)) == (N_SPEECH, 0, N_SPEECH)
    entries = sorted(tmp_path.rglob("*.safetensors"))
    assert len(entries) == N_SPEECH
    entries[0].write_bytes(entries[0].read_bytes()[:50])  # a torn entry is recomputed, not read

    second = TinyAudioLM()  # a new run: nothing in memory, no latent cache
    warm, stats = extract_templates(second, probes, BOTH, cache=None, encoder_cache_dir=tmp_path, **RUN)
    assert (stats.audio_from_disk, stats.audio_to_disk, len(second.encoder_runs)) == (N_SPEECH - 1, 1, 1)
    for name in BOTH:
        np.testing.assert_array_equal(warm[name].latents, cold[name].latents)

    third = TinyAudioLM()  # not asked for: nothing read or written
    _, stats = extract_templates(third, probes, BOTH, cache=None, **RUN)
    assert (stats.audio_from_disk, stats.audio_to_disk, len(third.encoder_runs)) == (0, 0, N_SPEECH)
    monkeypatch.setenv("LALM_BENCH_ENCODER_CACHE", str(tmp_path))  # the environment asks for it
    fourth = TinyAudioLM()
    _, stats = extract_templates(fourth, probes, BOTH, cache=None, **RUN)
    assert (stats.audio_from_disk, len(fourth.encoder_runs)) == (N_SPEECH, 0)


# ---- whisper-base: sharing changes no latent -------------------------------------------------------------------


@pytest.mark.slow
def test_whisper_shared_run_equals_runs_without_sharing(tmp_path: Path) -> None:
    """Encoder output and cross-attention K/V computed once per clip for both templates, against each template
    run alone with the plain path (encoder states projected per row): max |diff| <= 1e-4 of the latent's norm.
    A later run that reads the encoder outputs from the disk store gives the same latents."""
    from benchmark.models import offline_assets
    from benchmark.models.offline import build_adapter
    from benchmark.probes.catalog import resolve_probes

    status = offline_assets.availability("whisper-base-ct2")
    if not status.available:
        pytest.skip(status.detail)
    grid = resolve_probes("speech-grid", "ci")
    clips = [s.model_copy(update={"audio_path": str(grid.audio_file(s))}) for s in grid.samples[:3]]
    texts = resolve_probes("text-parallel", "ci").samples[:3]
    probe_set = ProbeSet(name="whisper-sharing", samples=[*clips, *texts])
    adapter = build_adapter("whisper-base-ct2")
    store = {"encoder_cache_dir": tmp_path}
    sets, stats = extract_templates(adapter, probe_set, BOTH, batch_size=8, cache=None, **store, **RUN)
    assert stats.audio_encoded == len(clips) + 1  # each clip and the silence, once for both templates
    assert stats.audio_to_disk == len(clips) + 1
    adapter.reuse_cross_kv = False  # type: ignore[attr-defined]
    for name in BOTH:
        alone, _ = extract_latents(adapter, probe_set, template=name, batch_size=8, cache=None, **RUN)
        assert _relative(sets[name].latents, alone.latents) <= 1e-4
        assert _relative(sets[name].controls, alone.controls) <= 1e-4
    adapter.reuse_cross_kv = True  # type: ignore[attr-defined]
    adapter._silence_kv = None  # type: ignore[attr-defined]
    again, stats = extract_templates(adapter, probe_set, BOTH, batch_size=8, cache=None, **store, **RUN)
    assert (stats.audio_from_disk, stats.audio_to_disk) == (len(clips) + 1, 0)
    for name in BOTH:
        np.testing.assert_array_equal(again[name].latents, sets[name].latents)
