"""Claim controls split into seed shards and run in worker processes, so calibration and CI's smoke use every core.

Why processes: one seed of a claim's controls is a few hundred small permutation, resampling and
nearest-neighbour computations that numpy and scikit-learn run on one core at these sizes, so threads buy
nothing and processes scale with the cores. Each worker is limited to one BLAS/OpenMP thread so that ``jobs``
workers do not oversubscribe the machine.

This module lives outside ``benchmark.claims`` on purpose: how seeds are scheduled never changes a verdict, so
it is not part of the verdict-code hash, and changing it keeps committed calibration counts mergeable.
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from benchmark.claims.data import Budget, ClaimData
from benchmark.claims.spec import ClaimSpec


@dataclass(frozen=True)
class Shard:
    """Seeds ``first_seed .. first_seed + seeds - 1`` of one claim's controls."""

    claim_id: str
    first_seed: int
    seeds: int


def plan_shards(claim_ids: list[str], *, seeds: int, first_seed: int = 0, shard_size: int) -> list[Shard]:
    """Disjoint consecutive seed ranges per claim, at most ``shard_size`` seeds each, claim after claim."""
    if seeds < 1 or shard_size < 1:
        raise ValueError(f"seeds ({seeds}) and shard_size ({shard_size}) must be at least 1")
    return [
        Shard(claim_id, start, min(shard_size, first_seed + seeds - start))
        for claim_id in claim_ids
        for start in range(first_seed, first_seed + seeds, shard_size)
    ]


def default_shard_size(seeds: int, jobs: int) -> int:
    """One shard per worker and claim: every claim's seeds spread over the workers, few seed ranges per entry."""
    return max(1, math.ceil(seeds / max(jobs, 1)))


@dataclass(frozen=True)
class _Work:
    specs: dict[str, ClaimSpec]
    bases: dict[str, ClaimData]
    budget: Budget
    out: Path | None


_WORK: _Work | None = None  # set once per worker process by _start_worker


def _start_worker(work: _Work, limit_threads: bool) -> None:
    global _WORK
    _WORK = work
    if limit_threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1)
        try:
            import torch

            torch.set_num_threads(1)
        except ImportError:  # torch is a dependency, but the controls themselves never need it
            pass


def _run_shard(shard: Shard) -> dict[str, Any]:
    """The shard's control counts; with an output file, the claim's entry after this shard was merged into it."""
    from benchmark.claims.calibrate import calibrate, run_controls
    from benchmark.claims.evaluate import select

    assert _WORK is not None, "worker used before _start_worker"
    spec = _WORK.specs[shard.claim_id]
    if _WORK.out is not None:
        document = calibrate(
            [spec],
            _WORK.bases,
            seeds=shard.seeds,
            budget=_WORK.budget,
            out=_WORK.out,
            all_specs=list(_WORK.specs.values()),
            first_seed=shard.first_seed,
        )
        return document["claims"][spec.id]
    base = select(spec, _WORK.bases[spec.probe_set])
    return run_controls(spec, base, seeds=shard.seeds, budget=_WORK.budget, first_seed=shard.first_seed)


def run_shards(
    specs: list[ClaimSpec],
    bases: dict[str, ClaimData],
    shards: list[Shard],
    *,
    budget: Budget,
    jobs: int = 1,
    out: Path | None = None,
    all_specs: list[ClaimSpec] | None = None,
) -> list[dict[str, Any]]:
    """Run ``shards`` on ``jobs`` processes (1: in this process) and return their results in shard order.

    With ``out``, every shard is a :func:`benchmark.claims.calibrate.calibrate` run of its seed range: entries
    are written under the file's lock and merged, so an interrupted run keeps every finished shard. Without it,
    each result is that shard's :func:`benchmark.claims.calibrate.run_controls` counts (see :func:`add_counts`).
    """
    known = {spec.id: spec for spec in (all_specs or specs)}
    known.update({spec.id: spec for spec in specs})
    unknown = sorted({shard.claim_id for shard in shards} - known.keys())
    if unknown:
        raise ValueError(f"shards name claims that were not given: {', '.join(unknown)}")
    missing = sorted({known[shard.claim_id].probe_set for shard in shards} - bases.keys())
    if missing and out is None:
        raise ValueError(f"no base latents for probe sets {', '.join(missing)}")
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    work = _Work(specs=known, bases=bases, budget=budget, out=out)
    if jobs == 1:
        _start_worker(work, limit_threads=False)
        return [_run_shard(shard) for shard in shards]
    # spawn, not fork: the parent may hold torch's or OpenMP's threads, which a forked child inherits broken.
    with ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=get_context("spawn"),
        initializer=_start_worker,
        initargs=(work, True),
    ) as pool:
        return list(pool.map(_run_shard, shards))


def add_counts(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Holds and trials of each control summed over shards of one claim (their seeds are disjoint)."""
    total: dict[str, Any] = {"plant_failures": 0, "plant_failure_examples": []}
    for name in ("boundary_null", "positive"):
        total[name] = {
            "holds": sum(result[name]["holds"] for result in results),
            "trials": sum(result[name]["trials"] for result in results),
        }
    for result in results:
        total["plant_failures"] += result["plant_failures"]
        total["plant_failure_examples"] += result["plant_failure_examples"]
    return total
