"""Calibration split into seed shards run in worker processes, so a calibration uses every core.

Why processes: one seed of a claim's controls is many small permutation and jackknife computations that numpy
runs on one core at these sizes, so threads buy nothing and processes scale with the cores. Each worker is
limited to one BLAS/OpenMP thread so that ``jobs`` workers do not oversubscribe the machine. Scheduling never
changes a count: each seed's draws depend on the seed alone, and shards merge into one entry under a file lock.
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from benchmark.claims.data import Budget, ClaimData
from benchmark.claims.spec import ClaimSpec


@dataclass(frozen=True)
class Shard:
    """Seeds ``first_seed .. first_seed + seeds - 1`` of one task (claim x template pool)."""

    task: int
    first_seed: int
    seeds: int


def plan_shards(n_tasks: int, *, seeds: int, first_seed: int = 0, shard_size: int) -> list[Shard]:
    """Disjoint consecutive seed ranges per task, at most ``shard_size`` seeds each."""
    if seeds < 1 or shard_size < 1:
        raise ValueError(f"seeds ({seeds}) and shard_size ({shard_size}) must be at least 1")
    return [
        Shard(task, start, min(shard_size, first_seed + seeds - start))
        for task in range(n_tasks)
        for start in range(first_seed, first_seed + seeds, shard_size)
    ]


def default_shard_size(seeds: int, jobs: int, population: int) -> int:
    """One shard per worker and task, aligned to whole populations of ``population`` seeds where possible."""
    size = max(1, math.ceil(seeds / max(jobs, 1)))
    return max(population, size - size % population) if seeds >= population else size


def limit_threads() -> None:
    """One BLAS/OpenMP and one torch thread in this worker: ``jobs`` workers then use ``jobs`` cores."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    import torch

    torch.set_num_threads(1)


def _run(args: tuple[ClaimSpec, ClaimData, dict[str, int], str, int, int, Budget, Path, int]) -> str:
    from benchmark.claims.calibrate import calibrate_claim

    spec, pool, sizes, size_name, first_seed, seeds, budget, out, per_population = args
    calibrate_claim(
        spec,
        pool,
        sizes,
        size_name=size_name,
        seeds=seeds,
        budget=budget,
        out=out,
        first_seed=first_seed,
        seeds_per_population=per_population,
    )
    return f"{spec.id} {pool.template} seeds {first_seed}..{first_seed + seeds - 1}"


def run_tasks(
    tasks: list[tuple[ClaimSpec, ClaimData, dict[str, int]]],
    *,
    size_name: str,
    seeds: int,
    first_seed: int,
    budget: Budget,
    out: Path,
    jobs: int,
    seeds_per_population: int,
) -> list[str]:
    """Every task's seeds in shards over ``jobs`` worker processes; each shard merges into ``out`` on finishing.
    A shard holds whole populations of ``seeds_per_population`` seeds (the caller resolves the size's default)."""
    shard_size = default_shard_size(seeds, jobs, seeds_per_population)
    shards = plan_shards(len(tasks), seeds=seeds, first_seed=first_seed, shard_size=shard_size)
    work = [
        (*tasks[s.task], size_name, s.first_seed, s.seeds, budget, out, seeds_per_population) for s in shards
    ]
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=get_context("spawn"), initializer=limit_threads
    ) as pool:
        return list(pool.map(_run, work))
