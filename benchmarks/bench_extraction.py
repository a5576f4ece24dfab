"""Extraction throughput: the engine (``benchmark.engine.extract``) versus the naive baseline (``benchmark.engine.naive``).

Same loaded model object, same probe subset, same thread count, caches off, rounds interleaved (see
``_harness``). Reported per case: inputs/s, real (unpadded) tokens/s, peak memory above the loaded model, the
achieved FLOP rate as a share of a 2048x2048 float32 matmul measured in the same rounds, and the largest
relative difference between the two paths' latents on the layers both produce.

On a CPU with AMX-BF16 or AVX512-BF16 a third side runs in the same rounds: the engine with ``--dtype
bfloat16`` (a second copy of the model loaded in bf16). Its speed against the naive float32 loop and its drift
from the float32 latents (the same relative norm) are recorded; float32 stays the default.

Sizes are environment knobs (defaults keep a contended 2-core run to a few minutes):
``LALM_BENCH_TEXT_N`` (128 texts), ``LALM_BENCH_SPEECH_N`` (8 clips), ``LALM_BENCH_ROUNDS`` (3),
``LALM_BENCH_TEXT_BATCH`` (32), ``LALM_BENCH_SPEECH_BATCH`` (8), ``LALM_BENCH_THREADS`` (torch's default).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
from _harness import (
    FIGURES,
    Interleaved,
    bf16_cpu,
    decoder_lm_flops,
    enforce_targets,
    env_int,
    load_average,
    threads,
    whisper_flops,
)

from benchmark.core.schema import ProbeSet
from benchmark.engine.cache import MemoryEncoderCache
from benchmark.engine.extract import LatentSet, extract_latents
from benchmark.engine.naive import NaiveResult, common_layers, naive_extract
from benchmark.models.base import ModelAdapter
from benchmark.models.catalog import get_adapter
from benchmark.probes.catalog import resolve_probes

pytestmark = pytest.mark.benchmark

#: Relative tolerance of "equal within fp32 noise": per sample and layer, ||engine - naive|| / ||naive||.
FP32_NOISE = 1e-4
_MIB = 1024**2


def _loaded(name: str, dtype: torch.dtype = torch.float32) -> Iterator[ModelAdapter]:
    adapter = get_adapter(name)
    availability = adapter.availability()
    if not availability.available:
        pytest.skip(f"{name}: weights not installed ({availability.detail})")
    torch.set_num_threads(threads())
    adapter.load(torch.device("cpu"), dtype)
    yield adapter
    adapter.unload()


@pytest.fixture(scope="module")
def gemma() -> Iterator[ModelAdapter]:
    yield from _loaded("gemma-3-270m-q4km")


@pytest.fixture(scope="module")
def whisper() -> Iterator[ModelAdapter]:
    yield from _loaded("whisper-base-ct2")


def _loaded_bf16(name: str) -> Iterator[ModelAdapter | None]:
    """A second copy of the model in bfloat16, or None on a CPU without native bf16."""
    if not bf16_cpu():
        yield None
        return
    yield from _loaded(name, torch.bfloat16)


@pytest.fixture(scope="module")
def gemma_bf16() -> Iterator[ModelAdapter | None]:
    yield from _loaded_bf16("gemma-3-270m-q4km")


@pytest.fixture(scope="module")
def whisper_bf16() -> Iterator[ModelAdapter | None]:
    yield from _loaded_bf16("whisper-base-ct2")


def subset(name: str, profile: str, count: int, *, unique_audio: bool = False) -> ProbeSet:
    """The first ``count`` samples of a shipped set (speech: one sample per distinct clip)."""
    probe_set = resolve_probes(name, profile)
    chosen, seen = [], set()
    for sample in probe_set.samples:
        if unique_audio:
            if sample.audio_sha256 in seen:
                continue
            seen.add(sample.audio_sha256)
        chosen.append(sample)
        if len(chosen) == count:
            break
    if len(chosen) < count:
        raise ValueError(f"probe set {name}/{profile} has only {len(chosen)} usable samples; asked {count}")
    return probe_set.model_copy(update={"samples": chosen})


def relative_difference(engine: LatentSet, naive: NaiveResult) -> float:
    """Largest ``||engine - naive|| / ||naive||`` over samples and the layers both paths produce."""
    assert engine.sample_ids == naive.sample_ids
    mine, theirs = common_layers(engine.manifest.layers, naive.layers)
    a = engine.latents[:, mine].astype(np.float64)
    b = naive.latents[:, theirs].astype(np.float64)
    return float((np.linalg.norm(a - b, axis=-1) / np.linalg.norm(b, axis=-1)).max())


def _engine(adapter: ModelAdapter, probes: ProbeSet, batch_size: int, dtype: str) -> Callable[[], Any]:
    def suite() -> tuple[LatentSet, Any]:
        adapter.encoder_cache = MemoryEncoderCache()  # caches off: nothing carried over between rounds
        if hasattr(adapter, "_silence_kv"):  # whisper keeps the silent clip's cross-attention K/V
            adapter._silence_kv = None
        return extract_latents(adapter, probes, batch_size=batch_size, device="cpu", dtype=dtype, cache=None)

    return suite


def _sides(
    adapter: ModelAdapter, probes: ProbeSet, batch_size: int, bf16: ModelAdapter | None = None
) -> dict[str, Callable[[], Any]]:
    def naive() -> NaiveResult:
        return naive_extract(adapter, probes)

    sides = {"naive": naive, "suite": _engine(adapter, probes, batch_size, "float32")}
    if bf16 is not None:
        sides["suite_bf16"] = _engine(bf16, probes, batch_size, "bfloat16")
    return sides


def _bf16_figures(runner: Interleaved, naive: NaiveResult) -> dict[str, Any]:
    """The bfloat16 side against the naive float32 loop and the float32 engine, and its latents' drift."""
    if "suite_bf16" not in runner.runs:
        return {"bf16": "not run: this CPU has neither AMX-BF16 nor AVX512-BF16"}
    bf16_s = runner.median_seconds("suite_bf16")
    latents, _stats = runner.runs["suite_bf16"][-1].result
    return {
        "bf16_speedup_vs_naive_fp32": runner.median_seconds("naive") / bf16_s,
        "bf16_over_fp32_engine": runner.median_seconds("suite") / bf16_s,
        "bf16_max_relative_difference": relative_difference(latents, naive),
    }


def _run(
    benchmark: Any, adapter: ModelAdapter, probes: ProbeSet, batch_size: int, bf16: ModelAdapter | None = None
) -> Interleaved:
    warm = probes.model_copy(update={"samples": probes.samples[:2]})
    for side in _sides(adapter, warm, batch_size, bf16).values():  # first-call kernel selection, not measured
        side()
    runner = Interleaved(_sides(adapter, probes, batch_size, bf16), threads=threads())
    benchmark.pedantic(runner.one_round, rounds=env_int("LALM_BENCH_ROUNDS", 3), iterations=1)
    return runner


def _figures(runner: Interleaved, n: int, tokens: int, flops: float, load_before: str) -> dict[str, Any]:
    naive_s, suite_s = runner.median_seconds("naive"), runner.median_seconds("suite")
    naive_peak, suite_peak = runner.median_peak("naive"), runner.median_peak("suite")
    rate = runner.median_rate()
    return {
        "inputs": n,
        "real_tokens": tokens,
        "rounds": len(runner.rate),
        "threads": runner.threads,
        "naive_inputs_per_s": n / naive_s,
        "suite_inputs_per_s": n / suite_s,
        "naive_tokens_per_s": tokens / naive_s,
        "suite_tokens_per_s": tokens / suite_s,
        "speedup": naive_s / suite_s,
        "naive_peak_mib_above_model": None if naive_peak is None else naive_peak / _MIB,
        "suite_peak_mib_above_model": None if suite_peak is None else suite_peak / _MIB,
        "peak_ratio": None if not naive_peak or suite_peak is None else suite_peak / naive_peak,
        "matmul_gflops": rate / 1e9,
        "suite_gflops": flops / suite_s / 1e9,
        "naive_gflops": flops / naive_s / 1e9,
        "utilisation": flops / suite_s / rate,
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }


def test_extraction_gemma_text(benchmark: Any, gemma: ModelAdapter, gemma_bf16: ModelAdapter | None) -> None:
    """gemma-3-270m on texts. Targets: >= 15x naive, >= 70% of the matmul rate, <= 1/2 the naive peak."""
    load_before = load_average()
    probes = subset("text-parallel", "full", env_int("LALM_BENCH_TEXT_N", 128))
    runner = _run(benchmark, gemma, probes, env_int("LALM_BENCH_TEXT_BATCH", 32), gemma_bf16)
    latents, stats = runner.runs["suite"][-1].result
    naive = runner.runs["naive"][-1].result
    assert stats.forward_passes > 0 and stats.cache_hits == 0
    figures = _figures(
        runner,
        len(probes.samples),
        stats.real_tokens,
        decoder_lm_flops(gemma.model, stats.real_tokens),
        load_before,
    )
    figures["padding_fraction"] = 1 - stats.real_tokens / stats.padded_tokens
    figures["max_relative_difference"] = relative_difference(latents, naive)
    figures |= _bf16_figures(runner, naive)
    figures["targets"] = {
        "speedup>=15": figures["speedup"] >= 15,
        "utilisation>=0.70": figures["utilisation"] >= 0.70,
        "peak<=0.5*naive": figures["peak_ratio"] is not None and figures["peak_ratio"] <= 0.5,
    }
    FIGURES["extraction/gemma-3-270m-q4km/text"] = figures
    benchmark.extra_info.update(figures)
    assert figures["max_relative_difference"] < FP32_NOISE
    if enforce_targets():
        assert all(figures["targets"].values()), figures["targets"]


def test_extraction_whisper_speech(
    benchmark: Any, whisper: ModelAdapter, whisper_bf16: ModelAdapter | None
) -> None:
    """whisper-base on distinct speech clips (30-s window kept). Targets: >= 1.25x naive, >= 75% of the matmul
    rate in float32; with bfloat16 (where the CPU has it) >= 2x the naive float32 loop."""
    load_before = load_average()
    probes = subset("speech-parallel", "ci", env_int("LALM_BENCH_SPEECH_N", 8), unique_audio=True)
    runner = _run(benchmark, whisper, probes, env_int("LALM_BENCH_SPEECH_BATCH", 8), whisper_bf16)
    latents, stats = runner.runs["suite"][-1].result
    naive = runner.runs["naive"][-1].result
    n = len(probes.samples)
    flops = whisper_flops(whisper.model, clips=n, decoder_tokens=stats.real_tokens, decoder_rows=n)
    figures = _figures(runner, n, stats.real_tokens, flops, load_before)
    figures["encoder_frames_per_clip"] = int(whisper.model.config.max_source_positions)
    figures["max_relative_difference"] = relative_difference(latents, naive)
    figures |= _bf16_figures(runner, naive)
    figures["targets"] = {
        "speedup>=1.25": figures["speedup"] >= 1.25,
        "utilisation>=0.75": figures["utilisation"] >= 0.75,
        "equal_within_fp32_noise": figures["max_relative_difference"] < FP32_NOISE,
    }
    if "bf16_speedup_vs_naive_fp32" in figures:
        figures["targets"]["bf16_speedup_vs_naive_fp32>=2"] = figures["bf16_speedup_vs_naive_fp32"] >= 2.0
    FIGURES["extraction/whisper-base-ct2/speech"] = figures
    benchmark.extra_info.update(figures)
    assert figures["max_relative_difference"] < FP32_NOISE
    if enforce_targets():
        assert all(figures["targets"].values()), figures["targets"]


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA: full-size random 7B/8B models run on a GPU only"
)
def test_extraction_gpu_full_size(benchmark: Any, tmp_path: Any) -> None:
    """Full-size random-weight Qwen2-Audio-7B and Ultravox-0.5-Llama-3.1-8B: engine (bf16, batch from free
    memory) against the naive float32 loop, on real probe inputs (``benchmarks/gpu_full_size.py``)."""
    import json

    from gpu_full_size import main as gpu_main

    benchmark.pedantic(lambda: gpu_main(["--out", str(tmp_path), "--rounds", "3"]), rounds=1, iterations=1)
    report = json.loads((tmp_path / "gpu_full_size.json").read_text())
    for figures in report["models"]:
        assert "error" not in figures, figures.get("error")
        FIGURES[f"extraction/gpu/{figures['model']}"] = figures
        assert figures["speedup"] > 1.0
