"""Calibration split into seed shards of one population each, run in worker processes so that a calibration
uses every core and reports its progress.

Why processes: one seed of a claim's controls is many small permutation and jackknife computations that numpy
runs on one core at these sizes, so threads buy nothing and processes scale with the cores. Each worker is
limited to one BLAS/OpenMP thread so that ``jobs`` workers do not oversubscribe the machine. Scheduling never
changes a count: each seed's draws depend on the seed alone, and shards merge into one entry under a file lock.

Why one population a shard: a full-size entry runs for up to two hours on two cores, and a shard is the finest
unit whose end the parent can see without reaching into the seed loop (the verdict code, which the calibration
hashes). Ten shards a task give a progress line with a measured rate and ETA every tenth of the run, and a
stopped run keeps every finished population in the file.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from benchmark.claims.data import Budget, ClaimData
from benchmark.claims.spec import ClaimSpec
from benchmark.engine.progress import ProgressReporter, StageProgress, as_reporter


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


def shard_size_for(seeds_per_population: int) -> int:
    """The fewest whole populations that hold the seeds a replay digest covers: a shard is one population at the
    calibrated sizes (20 or 50 seeds), more only for populations under ``REPLAY_SEEDS`` seeds, so the first shard
    records the same digest one run over all the seeds would."""
    from benchmark.claims.replay import REPLAY_SEEDS

    return seeds_per_population * -(-REPLAY_SEEDS // seeds_per_population)


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


def describe_plan(
    tasks: list[tuple[ClaimSpec, ClaimData, dict[str, int]]],
    shards: list[Shard],
    *,
    size_name: str,
    budget: Budget,
    jobs: int,
    seeds_per_population: int,
) -> str:
    """The line printed before the seeds start: what runs, how :func:`run_tasks` split it, on how many workers."""
    entries = ", ".join(
        f"{spec.id} {pool.template} (sample {sizes} of {len(pool.samples)} pool inputs)"
        for spec, pool, sizes in tasks
    )
    first, last = min(s.first_seed for s in shards), max(s.first_seed + s.seeds for s in shards) - 1
    size = max(s.seeds for s in shards)
    populations = -(-size // seeds_per_population)
    return (
        f"calibrating {len(tasks)} {'entry' if len(tasks) == 1 else 'entries'} at the {size_name} size: "
        f"{entries}; seeds {first}..{last} each, {len(shards)} shards of at most "
        f"{size} seeds ({populations} population{'s' if populations > 1 else ''}) over {jobs} "
        f"worker{'s' if jobs != 1 else ''}, {budget.name} budget ({budget.n_perm} permutations, "
        f"{budget.n_perm_replicate} per replicate); the rate and ETA follow each finished shard"
    )


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
    progress: ProgressReporter | bool | None = None,
) -> list[str]:
    """Every task's seeds in shards of one population (:func:`shard_size_for`) over ``jobs`` workers (``jobs ==
    1``: in this process, its threads unlimited); each shard merges into ``out`` on finishing. The caller resolves
    the size's population size. On a failed shard the shards not yet started are cancelled and the error is
    raised: what finished is already in ``out``."""
    shards = plan_shards(
        len(tasks), seeds=seeds, first_seed=first_seed, shard_size=shard_size_for(seeds_per_population)
    )
    work = [
        (*tasks[s.task], size_name, s.first_seed, s.seeds, budget, out, seeds_per_population) for s in shards
    ]
    reporter = as_reporter(progress)
    reporter.line(
        describe_plan(
            tasks,
            shards,
            size_name=size_name,
            budget=budget,
            jobs=jobs,
            seeds_per_population=seeds_per_population,
        )
    )
    stage = reporter.stage("calibration seeds", sum(s.seeds for s in shards), unit="seed")
    try:
        if jobs == 1:
            done = []
            for item, shard in zip(work, shards, strict=True):
                done.append(_run(item))
                stage.update(shard.seeds)
            return done
        return _run_in_workers(work, shards, jobs, stage)
    finally:
        stage.close()


def _run_in_workers(work: list[tuple], shards: list[Shard], jobs: int, stage: StageProgress) -> list[str]:
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=get_context("spawn"), initializer=limit_threads
    ) as pool:
        futures = {pool.submit(_run, item): shard for item, shard in zip(work, shards, strict=True)}
        results = collect_as_finished(futures, stage)
    return [results[shard] for shard in shards]


def collect_as_finished(futures: dict[Future[str], Shard], stage: StageProgress) -> dict[Shard, str]:
    """Each shard's result as it finishes, the stage advanced at once (waiting for the first *exception* instead
    would return only when every shard is done, and the progress would stand at 0 until the end). On a failed
    shard the queued shards are cancelled, the running ones finish and merge, and its error is raised."""
    pending = set(futures)
    results: dict[Shard, str] = {}
    while pending:
        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
        if any(future.exception() is not None for future in finished):
            for other in pending:
                other.cancel()
        for future in finished:
            results[futures[future]] = future.result()  # raises a failed shard's error
            stage.update(futures[future].seeds)
    return results
