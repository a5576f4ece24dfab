"""Token-identity controls: ``emb`` at the content's last position and its mean over the content span.

CLAIMS.md: every claim also reports its statistic on token embeddings alone, so the engine stores, per sample,
``tok_last`` and ``tok_mean`` beside the latents. Most cases run on the SYNTHETIC tiny audio LM of
``tests/tiny_engine.py`` (seconds); the real offline models check the adapters' spans (``slow``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.numpy import save_file

from benchmark.core.errors import PipelineError
from benchmark.core.schema import LatentsManifest
from benchmark.engine.cache import LatentCache, latent_key
from benchmark.engine.extract import (
    CONTROLS_NOT_RECORDED,
    NO_BATCH_SPANS_REASON,
    NO_SPAN_REASON,
    LatentSet,
    extract_latents,
    prepare_samples,
)
from benchmark.models import offline_assets
from tests.tiny_engine import TinyAudioLM, tiny_probe_set

RUN = {"device": "cpu", "dtype": "float32"}


@pytest.fixture(scope="module")
def probes(tmp_path_factory: pytest.TempPathFactory):
    return tiny_probe_set(tmp_path_factory.mktemp("tiny"))


def _emb_reference(adapter: TinyAudioLM, probes, template: str) -> dict[str, np.ndarray]:
    """``hidden_states[0]`` (the decoder's input embeddings, audio merged) of each sample alone."""
    items, _ = prepare_samples(adapter, probes, probes.samples, template)
    captured: list[torch.Tensor] = []

    def keep(_module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        captured.append(args[0] if args else kwargs["hidden_states"])

    handle = adapter.model.model.layers[0].register_forward_pre_hook(keep, with_kwargs=True)
    try:
        with torch.inference_mode():
            for item in items:
                adapter.forward(adapter.collate([item]))
    finally:
        handle.remove()
    return {item.sample_id: emb[0].float().numpy() for item, emb in zip(items, captured, strict=True)}


@pytest.mark.parametrize("template", ["bare", "shared-suffix"])
def test_controls_are_emb_over_the_content_span(probes, template: str) -> None:
    adapter = TinyAudioLM()
    latent_set, _ = extract_latents(adapter, probes, template=template, batch_size=4, cache=None, **RUN)
    reference = _emb_reference(adapter, probes, template)
    spans = latent_set.manifest.content_spans
    assert latent_set.control_available == [True] * len(probes.samples)
    assert latent_set.control_reason == ""
    assert latent_set.manifest.control_layers == ["tok_last", "tok_mean"]
    for row, sample_id in enumerate(latent_set.sample_ids):
        start, end = spans[row]
        emb = reference[sample_id]
        assert end - start >= 2  # a mean over one token would equal the last token
        np.testing.assert_allclose(latent_set.control("tok_last")[row], emb[end - 1], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            latent_set.control("tok_mean")[row], emb[start:end].mean(0), rtol=1e-5, atol=1e-6
        )
        assert not np.allclose(latent_set.control("tok_mean")[row], emb[end - 1])


def test_bare_tok_last_is_the_emb_column_and_shared_suffix_is_not(probes) -> None:
    adapter = TinyAudioLM()
    bare, _ = extract_latents(adapter, probes, template="bare", batch_size=4, cache=None, **RUN)
    np.testing.assert_array_equal(bare.control("tok_last"), bare.layer("emb"))
    suffix, _ = extract_latents(adapter, probes, template="shared-suffix", batch_size=4, cache=None, **RUN)
    gaps = np.abs(suffix.control("tok_last") - suffix.layer("emb")).max(axis=1)
    assert (gaps > 1e-3).all()  # emb is the suffix ':' there, tok_last the content's last token
    np.testing.assert_array_equal(suffix.controls, bare.controls)  # the content is the same under both


@pytest.mark.parametrize(
    ("options", "reason"),
    [({"give_spans": False}, NO_SPAN_REASON), ({"batch_spans": False}, NO_BATCH_SPANS_REASON)],
)
def test_no_span_gives_nan_controls_with_the_reason(probes, options: dict, reason: str) -> None:
    latent_set, _ = extract_latents(TinyAudioLM(**options), probes, batch_size=4, cache=None, **RUN)
    assert np.isnan(latent_set.controls).all()
    assert np.isfinite(latent_set.latents).all()
    assert latent_set.control_available == [False] * len(probes.samples)
    assert f"text (6 samples): {reason}" in latent_set.control_reason
    assert f"speech (5 samples): {reason}" in latent_set.control_reason


def test_span_outside_the_real_tokens_is_an_error(probes) -> None:
    adapter = TinyAudioLM()
    adapter.load(torch.device("cpu"), torch.float32)
    items, _ = prepare_samples(adapter, probes, probes.samples[:2], "bare")
    items[0].content_span = (0, items[0].length + 1)
    from benchmark.engine.extract import LastTokenCapture

    with LastTokenCapture(adapter) as capture, pytest.raises(PipelineError, match="content span"):
        capture.run_with_controls(adapter.collate(items))


# ---- the latents file ------------------------------------------------------------------------------------------


def test_latents_file_round_trip_with_controls_and_tamper(probes, tmp_path: Path) -> None:
    latent_set, _ = extract_latents(TinyAudioLM(), probes, template="bare", cache=None, **RUN)
    path = latent_set.save(tmp_path / "latents.safetensors")
    loaded = LatentSet.load(path)
    np.testing.assert_array_equal(loaded.controls, latent_set.controls)
    np.testing.assert_array_equal(loaded.latents, latent_set.latents)
    assert loaded.manifest == latent_set.manifest
    with safe_open(str(path), framework="numpy") as handle:
        metadata = handle.metadata()
        tensors = {k: handle.get_tensor(k).copy() for k in handle.keys()}  # noqa: SIM118
    tensors["controls"][0, 1, 0] += 1.0
    save_file(tensors, str(tmp_path / "tampered.safetensors"), metadata=metadata)
    with pytest.raises(PipelineError, match="controls checksum"):
        LatentSet.load(tmp_path / "tampered.safetensors")
    del tensors["controls"]
    save_file(tensors, str(tmp_path / "dropped.safetensors"), metadata=metadata)
    with pytest.raises(PipelineError, match="lacks"):
        LatentSet.load(tmp_path / "dropped.safetensors")


def test_file_written_before_controls_loads_with_nan_controls_and_says_why(probes, tmp_path: Path) -> None:
    latent_set, _ = extract_latents(TinyAudioLM(), probes, cache=None, **RUN)
    old = json.loads(latent_set.manifest.model_dump_json())
    for name in ("control_layers", "control_available", "control_reason", "content_spans", "controls_sha256"):
        del old[name]
    path = tmp_path / "old.safetensors"
    save_file({"latents": latent_set.latents}, str(path), metadata={"manifest": json.dumps(old)})
    loaded = LatentSet.load(path)
    assert loaded.controls.shape == latent_set.controls.shape and np.isnan(loaded.controls).all()
    assert loaded.control_available == [False] * len(loaded.sample_ids)
    assert loaded.control_reason == CONTROLS_NOT_RECORDED


def test_manifest_rejects_inconsistent_control_fields(probes) -> None:
    latent_set, _ = extract_latents(TinyAudioLM(), probes, cache=None, **RUN)
    fields = latent_set.manifest.model_dump()
    with pytest.raises(ValueError, match="control_available has 1 entries"):
        LatentsManifest(**{**fields, "control_available": [True]})
    with pytest.raises(ValueError, match="control_reason is empty"):
        LatentsManifest(**{**fields, "control_available": [False] * len(latent_set.sample_ids)})
    with pytest.raises(PipelineError, match="controls have shape"):
        LatentSet(latent_set.latents, latent_set.manifest, latent_set.controls[:, :1])


# ---- the cache -------------------------------------------------------------------------------------------------


def _key(adapter: TinyAudioLM, probes, sample_index: int) -> str:
    items, _ = prepare_samples(
        adapter, probes, probes.samples[sample_index : sample_index + 1], "shared-suffix"
    )
    return latent_key(adapter, items[0], dtype="float32", device_type="cpu", layers=adapter.layer_names())


def test_cache_entry_without_controls_is_a_miss_and_is_rewritten(probes, tmp_path: Path) -> None:
    adapter = TinyAudioLM()
    cache = LatentCache(tmp_path)
    cold, _ = extract_latents(adapter, probes, cache=cache, **RUN)
    key = _key(adapter, probes, 0)
    entry = cache._path(adapter.spec.name, key)
    with np.load(entry) as data:  # rewrite the entry as an older engine wrote it: latents only
        old = {name: data[name] for name in ("latents", "key", "sha256")}
    np.savez(entry, **old)
    fresh = LatentCache(tmp_path)
    again, stats = extract_latents(adapter, probes, cache=fresh, **RUN)
    assert (stats.cache_hits, stats.cache_misses, fresh.without_controls) == (
        len(probes.samples) - 1,
        1,
        0 + 1,
    )
    assert stats.corrupt_entries == 0
    np.testing.assert_array_equal(again.controls, cold.controls)
    with np.load(entry) as data:
        assert "controls" in data.files
    _, stats = extract_latents(adapter, probes, cache=LatentCache(tmp_path), **RUN)
    assert stats.cache_misses == 0


def test_cache_detects_tampered_controls(probes, tmp_path: Path) -> None:
    adapter = TinyAudioLM()
    extract_latents(adapter, probes, cache=LatentCache(tmp_path), **RUN)
    entry = LatentCache(tmp_path)._path(adapter.spec.name, _key(adapter, probes, 1))
    with np.load(entry) as data:
        fields = {name: data[name] for name in data.files}
    fields["controls"] = fields["controls"] + 1.0
    np.savez(entry, **fields)
    cache = LatentCache(tmp_path)
    _, stats = extract_latents(adapter, probes, cache=cache, **RUN)
    assert cache.corrupt_entries == [entry] and stats.cache_misses == 1
    with pytest.raises(ValueError, match="need controls"):
        cache.put(adapter.spec.name, "k" * 64, np.zeros((4, 8)), np.zeros((2, 7)))


# ---- the real offline adapters ----------------------------------------------------------------------------------


def _offline(name: str):
    status = offline_assets.availability(name)
    if not status.available:
        pytest.skip(status.detail)
    from benchmark.models.offline import build_adapter

    return build_adapter(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gemma-3-270m-q4km", "whisper-base-ct2"])
def test_offline_adapters_give_the_text_tokens_as_content(name: str, tmp_path: Path) -> None:
    from benchmark.core.schema import ProbeSet
    from benchmark.probes.catalog import resolve_probes

    adapter = _offline(name)
    texts = resolve_probes("text-parallel", "ci").samples[:4]
    speech = []
    if name == "whisper-base-ct2":
        grid = resolve_probes("speech-grid", "ci")
        speech = [s.model_copy(update={"audio_path": str(grid.audio_file(s))}) for s in grid.samples[:2]]
    probe_set = ProbeSet(name="controls-offline", samples=[*texts, *speech])
    for template in ("bare", "shared-suffix"):
        latent_set, _ = extract_latents(
            adapter, probe_set, template=template, batch_size=8, cache=None, **RUN
        )
        items, _ = prepare_samples(adapter, probe_set, probe_set.samples, template)
        for row, item in enumerate(items):
            if item.modality == "text":
                start, end = item.content_span
                text_ids = item.tensors["input_ids"][start:end]
                decoder = getattr(adapter.tokenizer, "backend", adapter.tokenizer)  # type: ignore[attr-defined]
                assert decoder.decode(text_ids).strip() == probe_set.samples[row].text.strip()
                assert latent_set.control_available[row]
            else:
                assert item.content_span is None and not latent_set.control_available[row]
        text_rows = [row for row, item in enumerate(items) if item.modality == "text"]
        if template == "bare":
            np.testing.assert_array_equal(
                latent_set.control("tok_last")[text_rows], latent_set.layer("emb")[text_rows]
            )
        else:
            assert not np.allclose(
                latent_set.control("tok_last")[text_rows], latent_set.layer("emb")[text_rows]
            )
        if speech:
            assert np.isnan(latent_set.controls[len(texts) :]).all()
            assert "speech (2 samples): audio enters through cross-attention" in latent_set.control_reason
        else:
            assert latent_set.control_reason == ""
