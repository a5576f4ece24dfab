"""Shared machinery of the benchmarks: interleaved side-by-side runs, peak memory, FLOP counts, matmul rate.

Why interleaved: on a shared machine the load changes minute by minute, so a baseline measured before the
suite and the suite measured after it see different machines. Each round runs every side once, the order
alternating from round to round, and the figures are medians over rounds; the matmul rate that the
utilisation is compared with is measured inside every round too.

Peak memory "above the loaded model" is the process's peak resident set during one call minus its resident
set just before it (after ``gc`` and ``malloc_trim`` return freed memory to the system). The peak counter is
reset through ``/proc/self/clear_refs`` (Linux >= 4.0), so it is exact, not sampled.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field_name: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _trim() -> None:
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _reset_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


@dataclass
class Measurement:
    """One call of one side: wall seconds, peak bytes above the pre-call resident set, what it returned."""

    seconds: float
    peak_bytes: int | None
    result: Any = None


def measure(fn: Callable[[], Any]) -> Measurement:
    """Time one call and its peak resident memory above the resident set just before it."""
    _trim()
    base = _status_kib("VmRSS")
    exact = _reset_peak()
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    peak = _status_kib("VmHWM")
    above = (peak - base) * 1024 if exact and peak is not None and base is not None else None
    return Measurement(seconds=seconds, peak_bytes=above, result=result)


def matmul_rate(threads: int, size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a ``size x size`` float32 matmul with ``threads`` threads (median of ``repeats``)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(size, size, generator=gen)
        b = torch.randn(size, size, generator=gen)
        a @ b  # warm-up: first call allocates and picks the kernel
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - started)
        return 2.0 * size**3 / statistics.median(times)
    finally:
        torch.set_num_threads(previous)


@dataclass
class Interleaved:
    """Rounds of several sides run in alternating order; ``rate`` holds the matmul FLOP/s of every round."""

    sides: dict[str, Callable[[], Any]]
    threads: int
    runs: dict[str, list[Measurement]] = field(default_factory=dict)
    rate: list[float] = field(default_factory=list)
    _round: int = 0

    def one_round(self) -> None:
        """Run every side once (order reversed on odd rounds) and the matmul rate once."""
        names = list(self.sides)
        if self._round % 2:
            names.reverse()
        self.rate.append(matmul_rate(self.threads))
        for name in names:
            self.runs.setdefault(name, []).append(measure(self.sides[name]))
        self._round += 1

    def median_seconds(self, name: str) -> float:
        return statistics.median(m.seconds for m in self.runs[name])

    def median_peak(self, name: str) -> float | None:
        peaks = [m.peak_bytes for m in self.runs[name] if m.peak_bytes is not None]
        return statistics.median(peaks) if peaks else None

    def median_rate(self) -> float:
        return statistics.median(self.rate)


def load_average() -> str:
    """``uptime``'s three load averages: every figure is reported beside the load it was taken under."""
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def bf16_cpu() -> bool:
    """Whether this CPU runs bfloat16 matmuls natively (AMX-BF16 or AVX512-BF16); elsewhere bf16 is emulated and
    slower than float32, so the bf16 sides of the benchmarks are not run."""
    from benchmark.core.provenance import cpu_info

    return any(cpu_info()[1].values())


def threads() -> int:
    """Thread count of the run: ``$LALM_BENCH_THREADS`` or torch's current setting."""
    return int(os.environ.get("LALM_BENCH_THREADS", torch.get_num_threads()))


#: Figures of every case of the session; conftest prints them and writes ``$LALM_BENCH_REPORT`` (JSON).
FIGURES: dict[str, dict[str, Any]] = {}


def enforce_targets() -> bool:
    """Targets are asserted only with ``LALM_BENCH_ENFORCE=1`` (on a quiet machine); else recorded."""
    return os.environ.get("LALM_BENCH_ENFORCE") == "1"


def env_int(name: str, default: int) -> int:
    """Benchmark sizes are environment knobs so a quiet machine can run the full sizes."""
    return int(os.environ.get(name, default))


# ---- FLOP counts ----------------------------------------------------------------------------------------------


def decoder_lm_flops(model: torch.nn.Module, real_tokens: int) -> float:
    """``2 x non-embedding parameters x real tokens`` of a decoder-only LM (the LM head excluded)."""
    decoder = model.model if hasattr(model, "model") else model
    embedding = decoder.get_input_embeddings().weight.numel()
    body = sum(p.numel() for p in decoder.parameters()) - embedding
    return 2.0 * body * real_tokens


def _linear_flops(module: torch.nn.Module, rows: int, skip: tuple[str, ...] = ()) -> float:
    total = 0.0
    for name, child in module.named_modules():
        if isinstance(child, torch.nn.Linear) and not any(part in name for part in skip):
            total += 2.0 * child.in_features * child.out_features * rows
    return total


def whisper_flops(model: torch.nn.Module, clips: int, decoder_tokens: int, decoder_rows: int) -> float:
    """Encoder + decoder FLOPs of ``clips`` 30-s windows and ``decoder_tokens`` real decoder tokens.

    Encoder: both convolutions, every linear layer over the 1500 frames, and attention scores and
    weighted sums (``4 T^2 d`` per layer, over 1500 frames they are a quarter of the total). Decoder: its
    linear layers per real token, plus the cross-attention key/value projections over 1500 frames once per
    row (``decoder_rows``) because the decoder recomputes them for every row. The LM head is not counted.
    """
    whisper = model.model
    encoder, decoder = whisper.encoder, whisper.decoder
    frames = int(encoder.config.max_source_positions)
    d = int(encoder.config.d_model)
    mel_frames = 2 * frames
    conv = 0.0
    for layer, out_len in ((encoder.conv1, mel_frames), (encoder.conv2, frames)):
        conv += 2.0 * layer.in_channels * layer.out_channels * layer.kernel_size[0] * out_len
    enc = conv + _linear_flops(encoder, frames) + 4.0 * frames * frames * d * len(encoder.layers)
    kv = ("encoder_attn.k_proj", "encoder_attn.v_proj")
    dec_tokens = _linear_flops(decoder, decoder_tokens, skip=kv)
    dec_kv = sum(
        _linear_flops(layer.encoder_attn.k_proj, frames) + _linear_flops(layer.encoder_attn.v_proj, frames)
        for layer in decoder.layers
    )
    return clips * enc + dec_tokens + decoder_rows * dec_kv
