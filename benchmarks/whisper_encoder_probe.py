"""Measure (not test) where whisper-base's float32 encoder spends its time on this CPU, against the matmul rate.

The performance issue asks for the float32 encoder at >= 0.75 of the matmul rate. This script gives the figures
that decide whether any engine change can get there: the encoder's rate per clip at several batch sizes, its
operator breakdown, the attention kernels available for its shape, thread layouts, and (``--compile``) what
``torch.compile`` buys. It prints one JSON document (and writes it with ``--out``):

    PYTHONPATH=. python benchmarks/whisper_encoder_probe.py [--reps 4] [--compile] [--out FILE]

Run it on a quiet machine: every rate is compared with a 2048x2048 float32 matmul timed in the same process.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

# the benchmarks' local helper module: the script's own folder is first on sys.path when run as a script
from _harness import matmul_rate, whisper_flops

from benchmark.core.audio import SAMPLE_RATE
from benchmark.core.provenance import cpu_info, library_versions, utc_now
from benchmark.models.whisper_ct2 import WhisperCT2Adapter


def _seconds(fn: Callable[[], Any], reps: int) -> float:
    """Median wall seconds of ``fn`` after one untimed call (kernel selection, first-touch allocation)."""
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _features(adapter: WhisperCT2Adapter, seconds: float = 4.0) -> torch.Tensor:
    """Log-mel features of a noise clip padded to the window (the encoder's cost does not depend on content)."""
    wave = (np.random.default_rng(0).standard_normal(int(seconds * SAMPLE_RATE)) * 0.1).astype(np.float32)
    return adapter.feature_extractor(wave, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features


def encoder_by_batch(encoder: torch.nn.Module, features: torch.Tensor, reps: int) -> dict[str, float]:
    """Seconds per clip with 1, 2, 4 and 8 clips per encoder call."""
    out = {}
    with torch.inference_mode():
        for batch in (1, 2, 4, 8):
            x = features.repeat(batch, 1, 1)
            out[str(batch)] = _seconds(lambda x=x: encoder(x), reps) / batch
    return out


def operator_shares(encoder: torch.nn.Module, features: torch.Tensor, top: int = 10) -> dict[str, float]:
    """Share of the encoder's self CPU time per aten operator (batch 4), largest first."""
    from torch.profiler import profile

    x = features.repeat(4, 1, 1)
    with torch.inference_mode():
        encoder(x)
        with profile() as prof:
            encoder(x)
    events = [(e.key, e.self_cpu_time_total) for e in prof.key_averages()]
    total = sum(t for _, t in events) or 1.0
    return {name: t / total for name, t in sorted(events, key=lambda e: -e[1])[:top]}


def attention_kernels(encoder: torch.nn.Module, reps: int) -> dict[str, float]:
    """GFLOP/s of the ways to compute the encoder's self-attention over the 30-s window (scores and weighted
    sum, 4 T^2 d h), at the shape its config gives (whisper-base: 8 heads x 1500 frames x 64)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    config = encoder.config
    heads, frames = int(config.encoder_attention_heads), int(config.max_source_positions)
    width = int(config.d_model) // heads
    q, k, v = (torch.randn(1, heads, frames, width) for _ in range(3))
    flops = 4.0 * frames * frames * width * heads
    scale = width**-0.5

    def math_backend() -> torch.Tensor:
        with sdpa_kernel(SDPBackend.MATH):
            return F.scaled_dot_product_attention(q, k, v)

    def per_head() -> torch.Tensor:
        return torch.stack([torch.softmax((q[0, h] * scale) @ k[0, h].T, -1) @ v[0, h] for h in range(heads)])

    kernels: dict[str, Callable[[], Any]] = {
        "sdpa_default": lambda: F.scaled_dot_product_attention(q, k, v),
        "sdpa_math": math_backend,
        "matmul_softmax": lambda: torch.softmax((q * scale) @ k.transpose(-1, -2), -1) @ v,
        "per_head": per_head,
    }
    with torch.inference_mode():
        return {name: flops / _seconds(fn, reps) / 1e9 for name, fn in kernels.items()}


def thread_layouts(
    encoder: torch.nn.Module, features: torch.Tensor, reps: int, threads: int
) -> dict[str, float]:
    """Seconds per clip: ``threads`` OpenMP threads in one stream, one thread, and ``threads`` concurrent
    single-thread streams (Python threads; torch releases the GIL inside operators)."""

    def stream(count: int) -> None:
        with torch.inference_mode():
            for _ in range(count):
                encoder(features)

    out = {}
    torch.set_num_threads(threads)
    out[f"{threads}_threads_one_stream"] = _seconds(lambda: stream(1), reps)
    torch.set_num_threads(1)
    out["1_thread_one_stream"] = _seconds(lambda: stream(1), reps)

    def one_thread_stream() -> None:
        torch.set_num_threads(1)
        stream(reps)

    workers = [threading.Thread(target=one_thread_stream) for _ in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out[f"{threads}_single_thread_streams"] = (time.perf_counter() - start) / (reps * threads)
    torch.set_num_threads(threads)
    return out


def compiled(encoder: torch.nn.Module, features: torch.Tensor, reps: int) -> dict[str, float]:
    """``torch.compile`` (inductor): compile seconds, seconds per clip and the output's relative drift."""
    with torch.inference_mode():
        reference = encoder(features).last_hidden_state
        eager = _seconds(lambda: encoder(features), reps)
        fast = torch.compile(encoder, dynamic=False)
        start = time.perf_counter()
        output = fast(features).last_hidden_state
        compile_s = time.perf_counter() - start
        seconds = _seconds(lambda: fast(features), reps)
    drift = float((output - reference).norm() / reference.norm())
    return {"eager_s_per_clip": eager, "compiled_s_per_clip": seconds, "compile_s": compile_s, "drift": drift}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=4, help="timed calls per figure (median). Default: 4")
    parser.add_argument("--threads", type=int, default=2, help="Default: 2")
    parser.add_argument(
        "--compile", action="store_true", help="also time torch.compile (needs a C++ compiler)"
    )
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    adapter = WhisperCT2Adapter("whisper-base-ct2")
    adapter.load(torch.device("cpu"), torch.float32)
    assert adapter.model is not None
    encoder = adapter.model.model.encoder
    features = _features(adapter)
    rate = matmul_rate(args.threads)
    flops = whisper_flops(adapter.model, clips=1, decoder_tokens=0, decoder_rows=0)
    by_batch = encoder_by_batch(encoder, features, args.reps)
    report: dict[str, Any] = {
        "created": utc_now(),
        "cpu": cpu_info(),
        "versions": library_versions(),
        "threads": args.threads,
        "matmul_gflops": rate / 1e9,
        "encoder_gflop_per_clip": flops / 1e9,
        "encoder_s_per_clip_by_batch": by_batch,
        "encoder_share_of_matmul_rate": flops / min(by_batch.values()) / rate,
        "operator_shares_batch4": operator_shares(encoder, features),
        "attention_gflops": attention_kernels(encoder, args.reps),
        "thread_layouts_s_per_clip": thread_layouts(encoder, features, args.reps, args.threads),
    }
    if args.compile:
        report["torch_compile"] = compiled(encoder, features, args.reps)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
