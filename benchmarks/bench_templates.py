"""Both templates in one run versus one template, and whether a disk cache of encoder outputs would pay.

- ``test_templates_whisper_speech``: whisper-base on the speech-grid ``ci`` set (240 clips): ``extract_latents``
  under ``shared-suffix`` alone against ``extract_templates`` under ``bare`` and ``shared-suffix`` (each clip
  encoded once, its cross-attention K/V projected once, both decoder passes per batch). Target: both <= 1.25x
  the time of one. Correctness: the shared run's latents equal, per template, a run without any sharing (the
  plain path: encoder states projected per row, one template per run) within max |diff| <= 1e-4 of the
  latent's norm, on the first ``LALM_BENCH_TEMPLATES_CHECK_N`` clips (16; the plain path is slow).
- ``test_encoder_disk_cache_whisper``: what a disk cache of encoder outputs would cost and save per clip:
  encoding a clip versus reading its saved encoder output back, and the write it costs on a miss.

Caches off on both sides (no latent cache, a fresh encoder cache, the silent clip's K/V dropped), rounds
interleaved (``_harness``). Knobs: ``LALM_BENCH_TEMPLATES_N`` (240), ``LALM_BENCH_ROUNDS`` (3),
``LALM_BENCH_SPEECH_BATCH`` (8), ``LALM_BENCH_DISK_N`` (8), ``LALM_BENCH_THREADS``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _harness import FIGURES, Interleaved, enforce_targets, env_int, load_average, threads

from benchmark.core.schema import ProbeSet
from benchmark.engine.cache import MemoryEncoderCache
from benchmark.engine.extract import LatentSet, extract_latents, extract_templates
from benchmark.models.base import ModelAdapter
from benchmark.models.catalog import get_adapter
from benchmark.probes.catalog import resolve_probes

pytestmark = pytest.mark.benchmark

BOTH = ("bare", "shared-suffix")
ONE = "shared-suffix"
TARGET_RATIO = 1.25
FP32_NOISE = 1e-4
_MIB = 1024**2


@pytest.fixture(scope="module")
def whisper() -> Iterator[ModelAdapter]:
    adapter = get_adapter("whisper-base-ct2")
    if not adapter.availability().available:
        pytest.skip(f"whisper-base-ct2: weights not installed ({adapter.availability().detail})")
    torch.set_num_threads(threads())
    adapter.load(torch.device("cpu"), torch.float32)
    yield adapter
    adapter.unload()


def grid_clips(count: int) -> ProbeSet:
    """The first ``count`` clips of the speech-grid ``ci`` set (all 240 by default)."""
    probe_set = resolve_probes("speech-grid", "ci")
    return probe_set.model_copy(update={"samples": probe_set.samples[:count]})


def _fresh(adapter: ModelAdapter) -> None:
    """Nothing carried over between rounds: a new encoder cache and no kept silent-clip K/V."""
    adapter.encoder_cache = MemoryEncoderCache()
    adapter._silence_kv = None  # type: ignore[attr-defined]


def max_relative(a: np.ndarray, b: np.ndarray) -> float:
    """Largest ``max |a - b|`` over ``||b||``, per sample and layer."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return float((np.abs(a64 - b64).max(axis=-1) / np.linalg.norm(b64, axis=-1)).max())


def _sides(adapter: ModelAdapter, probes: ProbeSet, batch_size: int) -> dict[str, Callable[[], Any]]:
    def one() -> tuple[LatentSet, Any]:
        _fresh(adapter)
        return extract_latents(
            adapter, probes, template=ONE, batch_size=batch_size, device="cpu", dtype="float32", cache=None
        )

    def both() -> tuple[dict[str, LatentSet], Any]:
        _fresh(adapter)
        return extract_templates(
            adapter, probes, BOTH, batch_size=batch_size, device="cpu", dtype="float32", cache=None
        )

    return {"one": one, "both": both}


def _unshared(adapter: ModelAdapter, probes: ProbeSet, batch_size: int) -> dict[str, LatentSet]:
    """Each template in its own run on the plain path: every row projects its clip's encoder states."""
    adapter.reuse_cross_kv = False  # type: ignore[attr-defined]
    try:
        out = {}
        for name in BOTH:
            _fresh(adapter)
            out[name], _ = extract_latents(
                adapter,
                probes,
                template=name,
                batch_size=batch_size,
                device="cpu",
                dtype="float32",
                cache=None,
            )
        return out
    finally:
        adapter.reuse_cross_kv = True  # type: ignore[attr-defined]


def test_templates_whisper_speech(benchmark: Any, whisper: ModelAdapter) -> None:
    """Target: both templates in one run take <= 1.25x the time of one; latents equal an unshared run."""
    load_before = load_average()
    batch_size = env_int("LALM_BENCH_SPEECH_BATCH", 8)
    probes = grid_clips(env_int("LALM_BENCH_TEMPLATES_N", 240))
    warm = probes.model_copy(update={"samples": probes.samples[:2]})
    for side in _sides(whisper, warm, batch_size).values():  # first-call kernel selection, not measured
        side()
    runner = Interleaved(_sides(whisper, probes, batch_size), threads=threads())
    benchmark.pedantic(runner.one_round, rounds=env_int("LALM_BENCH_ROUNDS", 3), iterations=1)
    one_set, one_stats = runner.runs["one"][-1].result
    both_sets, both_stats = runner.runs["both"][-1].result
    n = len(probes.samples)
    assert both_stats.audio_encoded == n and one_stats.audio_encoded == n  # once per clip in both runs
    one_s, both_s = runner.median_seconds("one"), runner.median_seconds("both")

    check = probes.model_copy(
        update={"samples": probes.samples[: env_int("LALM_BENCH_TEMPLATES_CHECK_N", 16)]}
    )
    _fresh(whisper)
    shared_check, _ = extract_templates(
        whisper, check, BOTH, batch_size=batch_size, device="cpu", dtype="float32", cache=None
    )
    plain = _unshared(whisper, check, batch_size)
    peaks = {name: runner.median_peak(name) for name in ("one", "both")}
    figures = {
        "clips": n,
        "batch_size": batch_size,
        "rounds": len(runner.rate),
        "threads": runner.threads,
        "one_seconds": one_s,
        "both_seconds": both_s,
        "ratio_both_over_one": both_s / one_s,
        "one_clips_per_s": n / one_s,
        "audio_encoded_both": both_stats.audio_encoded,
        "audio_reused_both": both_stats.audio_reused,
        "decoder_passes_both": both_stats.forward_passes,
        "encoder_cache_peak_mib_both": both_stats.encoder_cache_peak_bytes / _MIB,
        "one_peak_mib_above_model": None if peaks["one"] is None else peaks["one"] / _MIB,
        "both_peak_mib_above_model": None if peaks["both"] is None else peaks["both"] / _MIB,
        "max_relative_both_vs_one_same_template": max_relative(both_sets[ONE].latents, one_set.latents),
        "checked_clips_against_unshared": len(check.samples),
        "max_relative_vs_unshared": {
            name: max_relative(shared_check[name].latents, plain[name].latents) for name in BOTH
        },
        "max_relative_controls_vs_unshared": {
            name: float(
                np.nan_to_num(np.abs(shared_check[name].controls - plain[name].controls), nan=0.0).max()
            )
            for name in BOTH
        },
        "matmul_gflops": runner.median_rate() / 1e9,
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    figures["targets"] = {
        "both<=1.25x_one": figures["ratio_both_over_one"] <= TARGET_RATIO,
        "equal_to_unshared_within_1e-4": max(figures["max_relative_vs_unshared"].values()) <= FP32_NOISE,
    }
    FIGURES["templates/whisper-base-ct2/speech-grid-ci"] = figures
    benchmark.extra_info.update(figures)
    assert figures["targets"]["equal_to_unshared_within_1e-4"], figures["max_relative_vs_unshared"]
    if enforce_targets():
        assert all(figures["targets"].values()), figures["targets"]


def test_encoder_disk_cache_whisper(benchmark: Any, whisper: ModelAdapter, tmp_path: Path) -> None:
    """Per clip: encode versus read a saved encoder output back (a disk-cache hit), and the write of a miss.

    A disk cache pays where ``hit rate x (encode - read) > write``; the figures give the break-even hit rate
    and the bytes a full set would take. (The read is from the page cache: a cold disk adds its latency.)"""
    from benchmark.probes.io import read_waveform

    load_before = load_average()
    probes = grid_clips(env_int("LALM_BENCH_DISK_N", 8))
    waves = [read_waveform(probes.audio_file(sample))[0] for sample in probes.samples]
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    whisper.encode_audio(waves[0])  # warm-up
    writes: list[float] = []

    def encode() -> list[torch.Tensor]:
        return [whisper.encode_audio(wave) for wave in waves]

    def write_all(states: list[torch.Tensor]) -> None:
        started = time.perf_counter()
        for index, state in enumerate(states):
            np.save(folder / f"{index}.npy", state.numpy())
        writes.append((time.perf_counter() - started) / len(states))

    write_all(encode())

    def read() -> list[torch.Tensor]:
        return [torch.from_numpy(np.load(folder / f"{index}.npy")) for index in range(len(waves))]

    runner = Interleaved({"encode": encode, "read": read}, threads=threads())
    benchmark.pedantic(runner.one_round, rounds=env_int("LALM_BENCH_ROUNDS", 3), iterations=1)
    write_all(runner.runs["encode"][-1].result)
    for got, want in zip(runner.runs["read"][-1].result, runner.runs["encode"][-1].result, strict=True):
        assert torch.equal(got, want.cpu())  # a hit returns the very encoder output
    n = len(waves)
    encode_s = runner.median_seconds("encode") / n
    read_s = runner.median_seconds("read") / n
    write_s = float(np.median(writes))
    clip_bytes = int(runner.runs["encode"][-1].result[0].numel() * 4)
    figures = {
        "clips": n,
        "encode_seconds_per_clip": encode_s,
        "read_seconds_per_clip": read_s,
        "write_seconds_per_clip": write_s,
        "bytes_per_clip_float32": clip_bytes,
        "break_even_hit_rate": write_s / (encode_s - read_s),
        "gib_for_speech_grid_full_960_clips": 960 * clip_bytes / 1024**3,
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    FIGURES["templates/whisper-base-ct2/encoder-disk-cache"] = figures
    benchmark.extra_info.update(figures)
    assert read_s < encode_s
