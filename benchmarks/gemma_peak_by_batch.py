"""Peak resident memory above the loaded model, by batch size, for the engine and the naive loop (item 7).

    python benchmarks/gemma_peak_by_batch.py --batches 4,8,16,32 --calls 4

gemma-3-270m on the first ``--texts`` texts of text-parallel's full profile, float32, caches off. Each figure
is the median of ``--calls`` calls after a warm-up call, measured with the harness's ``measure`` (``VmHWM``
after resetting it, minus ``VmRSS`` before), and the Python/numpy heap's peak of one more call
(``tracemalloc``, deterministic). Memory does not depend on the machine's load; the seconds
printed beside it do. Throughput and utilisation come from ``bench_extraction.py``; this script only answers
"how much memory above the model does each batch size cost".
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import measure

from benchmark.engine.extract import extract_latents
from benchmark.engine.naive import naive_extract
from benchmark.models.catalog import get_adapter
from benchmark.probes.catalog import resolve_probes

_MIB = 1024**2


def _traced_peak(run: Callable[[], Any]) -> float:
    """Peak of the Python and numpy heap during one call (``tracemalloc``; torch's own CPU allocations are not
    traced). Deterministic, unlike the resident set, whose peak moves by +-10 MiB with the allocator's state:
    it shows copies of outputs such as the latents (~4.7 MB for 96 texts) that the resident figure hides."""
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1] / _MIB
    finally:
        tracemalloc.stop()


def _median_peak(run: Callable[[], Any], calls: int) -> tuple[list[float], float]:
    peaks, seconds = [], []
    for _ in range(calls):
        measured = measure(run)
        if measured.peak_bytes is None:
            raise SystemExit("this kernel cannot reset the peak resident set (/proc/self/clear_refs)")
        peaks.append(measured.peak_bytes / _MIB)
        seconds.append(measured.seconds)
    return peaks, statistics.median(seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", default="4,8,16,32")
    parser.add_argument("--texts", type=int, default=96)
    parser.add_argument("--calls", type=int, default=4)
    parser.add_argument("--no-naive", action="store_true", help="skip the naive loop (it takes ~15 s a call)")
    args = parser.parse_args(argv)
    probes = resolve_probes("text-parallel", "full")
    texts = [sample for sample in probes.samples if sample.modality == "text"][: args.texts]
    probes = probes.model_copy(update={"samples": texts})
    adapter = get_adapter("gemma-3-270m-q4km")
    adapter.load(torch.device("cpu"), torch.float32)
    warm = probes.model_copy(update={"samples": texts[:2]})
    extract_latents(adapter, warm, device="cpu", dtype="float32", batch_size=4)
    for batch in (int(b) for b in args.batches.split(",")):
        peaks, seconds = _median_peak(
            lambda b=batch: extract_latents(adapter, probes, device="cpu", dtype="float32", batch_size=b),
            args.calls,
        )
        traced = _traced_peak(
            lambda b=batch: extract_latents(adapter, probes, device="cpu", dtype="float32", batch_size=b)
        )
        print(
            f"engine batch {batch}: peak above the model {statistics.median(peaks):.1f} MiB "
            f"(calls {', '.join(f'{p:.1f}' for p in peaks)}), {seconds:.2f} s a call; "
            f"Python/numpy heap peak {traced:.1f} MiB",
            flush=True,
        )
    if not args.no_naive:
        naive_extract(adapter, warm)
        peaks, seconds = _median_peak(lambda: naive_extract(adapter, probes), args.calls)
        traced = _traced_peak(lambda: naive_extract(adapter, probes))
        print(
            f"naive loop: peak above the model {statistics.median(peaks):.1f} MiB "
            f"(calls {', '.join(f'{p:.1f}' for p in peaks)}), {seconds:.2f} s a call; "
            f"Python/numpy heap peak {traced:.1f} MiB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
