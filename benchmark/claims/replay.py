"""Carry a calibration entry across a change of verdict code that decides its draws the same, by replaying seeds.

Why: an entry's counts (500 seeds a control: hours of CPU) are valid for the code that made them, and the file
keys them by a hash of that code's source, so any edit of it (a refactor, a faster kernel, one claim's spec) left
every entry stale and asked for a full recalibration. The counts depend on the code's decisions, not on its
bytes. So each entry records, beside its counts, the full-precision decisions of its first ``REPLAY_SEEDS``
seeds (both controls: verdict, estimate, bounds, standard error, degrees of freedom, power) as a digest. Code
whose replay of those seeds reproduces the digest bit for bit carries the entry, with the carry recorded in it;
any difference leaves it computed by other code, to recalibrate. A replay shows agreement on its seeds only: a
change that alters decisions on draws the replay does not reach goes unseen, so a change meant to alter verdicts
is recalibrated whatever its replay says.

Entries made before this module carry no digest; ``scripts/record_replay_digests.py``, run with the code that
made the counts on the import path (a worktree of that commit), writes it after checking that its estimates
are the stored ones::

    git worktree add /tmp/old COMMIT
    PYTHONPATH=/tmp/old python scripts/record_replay_digests.py --file benchmark/claims/calibration.json
    lalm-bench calibrate --replay --profile ci      # then with this code: carry what reproduces
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

#: Seeds replayed per entry (each decides both controls): ~1 minute for the slowest ci entry on one core.
REPLAY_SEEDS = 10
#: The controls in the order an entry's seeds decide them.
CONTROLS = ("boundary_null", "positive")


def _exact(x: float | None) -> str | None:
    """A float written so that only the same bits give the same text (``nan`` and ``inf`` included)."""
    if x is None:
        return None
    return float(x).hex()


def decision_row(seed: int, control: str, decision: Any, truth: float) -> list[Any]:
    """What one seed's control decided, in full precision."""
    b = decision.bounds
    return [
        int(seed),
        control,
        decision.verdict,
        *(_exact(v) for v in (b.value, b.low, b.high, b.se, b.df, decision.power, truth)),
    ]


def digest(rows: Iterable[list[Any]]) -> str:
    return hashlib.sha256(json.dumps(sorted(rows, key=lambda r: (r[0], r[1]))).encode()).hexdigest()


def control_decisions(
    spec: Any,
    pool: Any,
    sizes: dict[str, int],
    seeds: Iterable[int],
    budget: Any,
    seeds_per_population: int | None = None,
    *,
    on_population: Callable[[int, dict[str, tuple[float, float]], list[Any]], None] | None = None,
    on_failure: Callable[[int, ValueError], None] | None = None,
) -> Iterator[tuple[int, str, Any, float]]:
    """``(seed, control, decision, planted effect)`` for each seed and control, as the calibration decides them:
    the calibration's loop itself (``calibrate.run_controls`` tallies what it yields), so that a replay cannot
    drift from it. Uses the calibration's primitives only, so that it also runs on the code of an older commit
    (``scripts/record_replay_digests.py``). ``seeds_per_population``: the entry's (default: the one all entries
    used before it was recorded). A population that cannot be planted raises, or with ``on_failure`` is reported
    there and its seeds are skipped."""
    from benchmark.claims.controls import (
        SEEDS_PER_POPULATION,
        draw_sample,
        population_seed,
        solved_population,
    )
    from benchmark.claims.evaluate import decide_measured, measure

    per_population = seeds_per_population or SEEDS_PER_POPULATION
    targets = {"boundary_null": spec.rule.boundary, "positive": spec.rule.positive_size}
    cached: dict[int, Any] = {}
    for seed in seeds:
        index = seed // per_population
        if index not in cached:
            try:
                pop, solved, redraws = solved_population(
                    spec, pool, sizes, population_seed(spec, pool.template, index), targets
                )
            except ValueError as exc:
                if on_failure is None:
                    raise
                on_failure(index, exc)
                cached = {index: None}
                continue
            cached = {index: (pop, solved)}
            if on_population is not None:
                on_population(index, solved, redraws)
        if cached[index] is None:
            continue
        pop, solved = cached[index]
        rng = np.random.default_rng([seed, 7919])
        mask = np.isin(np.arange(len(pop.base.samples)), draw_sample(pop.base, sizes, rng))
        for name, (scale, effect) in solved.items():
            sample = pop.at(scale).subset(mask)
            sample.extra["control"] = True
            measured = measure(spec, sample, budget, np.random.default_rng([seed, 104729]))
            yield (
                seed,
                name,
                decide_measured(spec, measured, model=pool.model, reference_verdict="holds"),
                effect,
            )


def seed_rows(
    spec: Any,
    pool: Any,
    sizes: dict[str, int],
    seeds: list[int],
    budget: Any,
    seeds_per_population: int | None = None,
) -> list[list[Any]]:
    """The full-precision decisions of ``seeds`` (:func:`control_decisions`), as a digest covers them."""
    return [
        decision_row(seed, name, decision, effect)
        for seed, name, decision, effect in control_decisions(
            spec, pool, sizes, seeds, budget, seeds_per_population
        )
    ]


def replay_seeds(entry: dict[str, Any]) -> list[int]:
    """The entry's first ``REPLAY_SEEDS`` seeds (those its digest covers)."""
    recorded = entry.get("replay", {}).get("seeds")
    if recorded:
        return [int(s) for s in recorded]
    return [int(s) for s in entry["boundary_null"]["raw"]["seeds"][:REPLAY_SEEDS]]


def _stored_estimates(entry: dict[str, Any], seeds: list[int]) -> dict[tuple[int, str], float]:
    out = {}
    for control in CONTROLS:
        raw = entry[control]["raw"]
        where = {int(s): i for i, s in enumerate(raw["seeds"])}
        for seed in seeds:
            out[(seed, control)] = float(raw["estimates"][where[seed]])
    return out


#: How far a replayed estimate may sit from the one the entry stored, in standard errors of its seed (and at
#: least 1e-4): latents extracted again since the calibration (another batch packing, the encoder output shared
#: between templates) move estimates by ~1e-6, or a rank statistic by one swapped pair (~1e-4), while a pool of
#: other latents or another sample moves them by about one standard error. 1% of one moves a bound by as much.
STORED_TOLERANCE_SE = 0.01
STORED_TOLERANCE_FLOOR = 1e-4


def deviation_from_stored(entry: dict[str, Any], rows: list[list[Any]]) -> tuple[float, str | None]:
    """The largest distance of a replayed estimate from the one the entry stored, in standard errors, and where
    it exceeds the tolerance (else None): the replay's pool must be the one the counts were made on."""
    stored = _stored_estimates(entry, sorted({r[0] for r in rows}))
    worst = 0.0
    for row in rows:
        value, se = float.fromhex(row[3]), float.fromhex(row[6])
        want = stored[(row[0], row[1])]
        if math.isnan(value) and math.isnan(want):
            continue
        gap = abs(value - want)
        scale = se if math.isfinite(se) and se > 0 else math.inf
        if not gap <= max(STORED_TOLERANCE_FLOOR, STORED_TOLERANCE_SE * scale):
            return gap / scale, (
                f"seed {row[0]} {row[1]}: estimate {value:.6f}, the entry stored {want:.6f} "
                f"({gap / scale:.3f} standard errors apart)"
            )
        worst = max(worst, gap / scale)
    return worst, None


def first_difference(old: list[list[Any]], new: list[list[Any]]) -> str | None:
    """The first field in which two replays differ (for the message), else None."""
    fields = (
        "seed",
        "control",
        "verdict",
        "estimate",
        "lower bound",
        "upper bound",
        "se",
        "df",
        "power",
        "truth",
    )
    by_key = {(r[0], r[1]): r for r in old}
    for row in new:
        before = by_key.get((row[0], row[1]))
        if before is None:
            return f"seed {row[0]} {row[1]}: not in the recorded replay"
        for name, a, b in zip(fields, before, row, strict=True):
            if a != b:
                return f"seed {row[0]} {row[1]}: {name} {a} -> {b}"
    return None


def record(entry: dict[str, Any], rows: list[list[Any]], code: str, deviation: float) -> dict[str, Any]:
    """The entry with its replay digest, computed by ``code`` (the code that made its counts) on a pool whose
    estimates lay within ``deviation`` standard errors of the stored ones."""
    replay = {
        "seeds": sorted({r[0] for r in rows}),
        "digest": digest(rows),
        "code": code,
        "rows": rows,
        "recorded_after_the_counts": {"largest_estimate_deviation_in_se": deviation},
    }
    return {**entry, "replay": replay}


def carry(
    entry: dict[str, Any], rows: list[list[Any]], *, code: str, commit: str | None, when: str
) -> tuple[dict[str, Any] | None, str]:
    """``(carried entry, message)`` when this code's replay ``rows`` reproduce the entry's digest, else
    ``(None, why not)``. An entry already on this code is returned unchanged when its replay still reproduces
    (a check that the pool and the code still give what the counts were made with)."""
    recorded = entry.get("replay")
    if not recorded:
        return None, "no replay digest (an entry older than replays: record one with the code that made it)"
    if digest(rows) != recorded["digest"]:
        where = first_difference(recorded.get("rows", []), rows) or "digest differs"
        return None, f"decisions differ ({where}): recalibrate"
    if entry.get("code") == code:
        return entry, f"reproduced on {len(rows)} decisions (already this code)"
    trail = [
        *entry.get("carried", []),
        {"from": entry.get("code"), "to": code, "commit": commit, "at": when, "decisions": len(rows)},
    ]
    return {**entry, "code": code, "carried": trail}, f"carried: {len(rows)} decisions reproduced bit for bit"


def update_entries(path: Path, change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """Rewrite the calibration file's entries under its lock (runs in parallel keep each other's writes)."""
    from filelock import FileLock

    with FileLock(str(path) + ".lock"):
        document = json.loads(path.read_text(encoding="utf-8"))
        document["entries"] = dict(sorted(change(dict(document["entries"])).items()))
        temp = path.with_suffix(".replay.tmp")
        temp.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        temp.replace(path)
    return document
