"""Measure (not test) float32 versus bfloat16 latent drift of the offline models, and the speed of each dtype.

For each model, both templates are extracted once in float32 and once in bfloat16 on the same inputs (no
latent cache), and per template and layer the drift is reported over samples:

- ``l2_max`` / ``l2_mean``: ``||bf16 - fp32|| / ||fp32||`` per sample, its maximum and mean;
- ``maxabs_max``: ``max |bf16 - fp32| / ||fp32||`` per sample, its maximum (the unit of the engine's
  fp32-noise tolerance, 1e-4);

each per modality (speech also goes through the audio encoder in bf16),

the same for the token-identity controls, the wall seconds of each dtype (one run each on all inputs, and
medians of interleaved rounds on ``--speed-n`` inputs, which a shared machine's load distorts less), and the CPU (model name, whether it
has AMX-BF16 / AVX512-BF16: bf16 is fast on CPUs only with them). Writes ``reports/dtype_drift.json``:

    PYTHONPATH=. python benchmarks/dtype_drift.py [--text-n 48] [--speech-n 16] [--out reports/dtype_drift.json]

Inputs: gemma-3-270m on the first ``--text-n`` texts of text-parallel ``ci`` per variant spread over languages;
whisper-base on the same texts and the first ``--speech-n`` clips of speech-grid ``ci``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.core.provenance import cpu_info, git_commit, library_versions, utc_now
from benchmark.core.schema import ProbeSet
from benchmark.engine.cache import MemoryEncoderCache
from benchmark.engine.extract import LatentSet, extract_templates
from benchmark.models.catalog import get_adapter
from benchmark.probes.catalog import resolve_probes

TEMPLATES = ("bare", "shared-suffix")
REPO = Path(__file__).resolve().parents[1]


def _spread(samples: list[Any], n: int) -> list[Any]:
    step = max(1, len(samples) // n)
    return samples[::step][:n]


def probe_set(model: str, text_n: int, speech_n: int) -> ProbeSet:
    texts = _spread(resolve_probes("text-parallel", "ci").samples, text_n)
    samples = list(texts)
    if model.startswith("whisper") and speech_n:
        grid = resolve_probes("speech-grid", "ci")
        samples += [
            s.model_copy(update={"audio_path": str(grid.audio_file(s))}) for s in grid.samples[:speech_n]
        ]
    return ProbeSet(name=f"dtype-drift-{model}", samples=samples)


def drift(low: np.ndarray, full: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
    """Per layer, in layer order (``[n, layers, d]`` inputs): the drift figures of the module docstring; rows
    that are NaN in float32 (no control) are skipped, layers with none left are left out."""
    out = []
    for index, name in enumerate(names):
        a, b = low[:, index].astype(np.float64), full[:, index].astype(np.float64)
        keep = ~np.isnan(b).any(axis=-1)
        if not keep.any():
            continue
        a, b = a[keep], b[keep]
        norm = np.linalg.norm(b, axis=-1)
        l2 = np.linalg.norm(a - b, axis=-1) / norm
        out.append(
            {
                "layer": name,
                "l2_max": round(float(l2.max()), 6),
                "l2_mean": round(float(l2.mean()), 6),
                "maxabs_max": round(float((np.abs(a - b).max(axis=-1) / norm).max()), 6),
            }
        )
    return out


def run(model: str, probes: ProbeSet, dtype: str) -> tuple[dict[str, LatentSet], float]:
    adapter = get_adapter(model)
    adapter.load(torch.device("cpu"), getattr(torch, dtype))
    adapter.encoder_cache = MemoryEncoderCache()
    warm = probes.model_copy(update={"samples": probes.samples[-2:]})  # kernel selection, not timed
    extract_templates(adapter, warm, TEMPLATES, batch_size=8, device="cpu", dtype=dtype, cache=None)
    started = time.perf_counter()
    sets, stats = extract_templates(
        adapter, probes, TEMPLATES, batch_size=8, device="cpu", dtype=dtype, cache=None
    )
    seconds = time.perf_counter() - started
    assert stats.forward_passes > 0
    adapter.unload()
    return sets, seconds


def speed(model: str, probes: ProbeSet, rounds: int) -> dict[str, Any]:
    """bf16 versus fp32 wall time on ``probes``, both models loaded, runs interleaved (order alternating per
    round) so that a shared machine's changing load falls on both: medians and every round's times."""
    adapters = {}
    for dtype in ("float32", "bfloat16"):
        adapters[dtype] = get_adapter(model)
        adapters[dtype].load(torch.device("cpu"), getattr(torch, dtype))
    times: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    for number in range(rounds + 1):  # round 0 warms the kernels and is not counted
        order = ["float32", "bfloat16"] if number % 2 else ["bfloat16", "float32"]
        for dtype in order:
            adapters[dtype].encoder_cache = MemoryEncoderCache()
            adapters[dtype]._silence_kv = None  # type: ignore[attr-defined]  # whisper: nothing carried over
            started = time.perf_counter()
            extract_templates(
                adapters[dtype], probes, TEMPLATES, batch_size=8, device="cpu", dtype=dtype, cache=None
            )
            if number:
                times[dtype].append(time.perf_counter() - started)
    for adapter in adapters.values():
        adapter.unload()
    medians = {dtype: float(np.median(values)) for dtype, values in times.items()}
    return {
        "inputs": len(probes.samples),
        "rounds": rounds,
        "seconds": times,
        "median_seconds": medians,
        "bf16_over_fp32": medians["bfloat16"] / medians["float32"],
        "load_average": list(os.getloadavg()),
    }


def measure(model: str, probes: ProbeSet) -> dict[str, Any]:
    full, full_s = run(model, probes, "float32")
    low, low_s = run(model, probes, "bfloat16")
    per_template: dict[str, Any] = {}
    for name in TEMPLATES:
        a, b = low[name], full[name]
        assert a.sample_ids == b.sample_ids
        modalities = np.array(b.manifest.modalities)
        per_template[name] = {}
        for modality in sorted(set(b.manifest.modalities)):
            rows = modalities == modality
            per_template[name][modality] = {
                "samples": int(rows.sum()),
                "latents": drift(a.latents[rows], b.latents[rows], b.manifest.layers),
                "controls": drift(a.controls[rows], b.controls[rows], b.manifest.control_layers),
            }
    return {
        "model": model,
        "revision": full[TEMPLATES[0]].manifest.provenance.revision,
        "inputs": len(probes.samples),
        "seconds_one_run_each": {"float32": full_s, "bfloat16": low_s, "bf16_over_fp32": low_s / full_s},
        "templates": per_template,
        "worst_l2_max": max(
            row["l2_max"] for t in per_template.values() for m in t.values() for row in m["latents"]
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["gemma-3-270m-q4km", "whisper-base-ct2"])
    parser.add_argument("--text-n", type=int, default=48)
    parser.add_argument("--speech-n", type=int, default=16)
    parser.add_argument("--speed-n", type=int, default=8, help="inputs of the interleaved speed rounds")
    parser.add_argument("--speed-rounds", type=int, default=4)
    parser.add_argument("--out", default=str(REPO / "reports" / "dtype_drift.json"))
    args = parser.parse_args(argv)
    model_name, flags = cpu_info()
    report: dict[str, Any] = {
        "command": "PYTHONPATH=. python benchmarks/dtype_drift.py "
        + shlex.join(sys.argv[1:] if argv is None else argv),
        "created": utc_now(),
        "git_commit": git_commit(),
        "cpu_model": model_name,
        "cpu_bf16_flags": flags,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "load_average_before": list(os.getloadavg()),
        "versions": library_versions(),
        "definitions": {
            "l2_max": "max over samples of ||bf16 - fp32|| / ||fp32||",
            "l2_mean": "mean over samples of ||bf16 - fp32|| / ||fp32||",
            "maxabs_max": "max over samples of max|bf16 - fp32| / ||fp32|| (the engine's fp32-noise unit)",
        },
        "models": [],
    }
    for model in args.models:
        probes = probe_set(model, args.text_n, args.speech_n)
        figures = measure(model, probes)
        half = args.speed_n // 2  # texts and, for whisper, as many clips
        chosen = (
            probes.samples[:half] + probes.samples[-half:] if model.startswith("whisper") else probes.samples
        )
        subset = probes.model_copy(update={"samples": chosen[: args.speed_n]})
        figures["speed_interleaved"] = speed(model, subset, args.speed_rounds)
        report["models"].append(figures)
        print(
            json.dumps({k: v for k, v in report["models"][-1].items() if k != "templates"}), file=sys.stderr
        )
    report["load_average_after"] = list(os.getloadavg())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
