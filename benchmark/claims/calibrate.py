"""``lalm-bench calibrate``: each claim's false-positive rate, power and coverage from populations of known effect.

Design (CLAIMS.md, "Calibration"; :mod:`benchmark.claims.controls`): the population is a real offline model's
full-profile latents of the claim's probe set, shuffled so the claim's structure is gone; label-dependent offsets
are planted and scaled so that the *population effect* at the calibrated sample size equals the rule's boundary
(delta, or epsilon for absence claims: the boundary null) or ``power_at`` (0 for absence claims: the positive
control). Each seed draws a fresh sample of design units of that size from the population and decides it with
the claim's own measure, interval and rule, so the estimates scatter around the planted value and the share of
seeds that hold measures the test's size and power. Every ``SEEDS_PER_POPULATION`` seeds use a new population
(another shuffle and other plant directions), so the rates do not rest on one shuffle.

Targets: false-positive rate <= 5% (point estimate; Clopper-Pearson bounds recorded), power's lower bound >= 80%.
Coverage: how often each one-sided bound misses the planted population effect (nominal: alpha). Absence claims
are decided as if their positive references held: the control isolates the equivalence test itself.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock
from scipy.stats import beta

from benchmark.claims.controls import SEEDS_PER_POPULATION, Population, draw_sample, solved_population
from benchmark.claims.controls import population_seed as _population_seed
from benchmark.claims.data import Budget, ClaimData
from benchmark.claims.evaluate import CALIBRATION_FILE, decide_measured, measure, verdict_code_sha256
from benchmark.claims.replay import REPLAY_SEEDS, decision_row, digest
from benchmark.claims.spec import ClaimSpec
from benchmark.core.provenance import git_commit, library_versions, utc_now

FPR_TARGET = 0.05
POWER_TARGET = 0.80
SEEDS_REQUIRED = 500


def clopper_pearson(successes: int, trials: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for a rate."""
    if trials == 0:
        return 0.0, 1.0
    tail = (1 - confidence) / 2
    low = 0.0 if successes == 0 else float(beta.ppf(tail, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(beta.ppf(1 - tail, successes + 1, trials - successes))
    return low, high


@dataclass
class ControlTally:
    """Counts of one control over seeds: holds, trials, bound misses of the planted effect, the estimates."""

    holds: int = 0
    trials: int = 0
    low_above_truth: int = 0
    high_below_truth: int = 0
    estimates: list[float] = field(default_factory=list)
    truths: list[float] = field(default_factory=list)
    #: the seed of each estimate: merged runs finish in any order, and the raw lists stay in seed order
    seeds: list[int] = field(default_factory=list)

    def add(
        self, verdict: str, value: float, low: float, high: float, truth: float, seed: int | None = None
    ) -> None:
        self.trials += 1
        self.holds += verdict == "holds"
        self.low_above_truth += low > truth
        self.high_below_truth += high < truth
        self.estimates.append(float(value))
        self.truths.append(float(truth))
        self.seeds.append(len(self.seeds) if seed is None else int(seed))

    def plus(self, other: ControlTally) -> ControlTally:
        """Both tallies' counts, the raw lists in seed order (the runs' seeds are disjoint)."""
        order = np.argsort(np.asarray(self.seeds + other.seeds, dtype=np.int64), kind="stable")

        def pick(values: list[Any]) -> list[Any]:
            return [values[i] for i in order]

        return ControlTally(
            self.holds + other.holds,
            self.trials + other.trials,
            self.low_above_truth + other.low_above_truth,
            self.high_below_truth + other.high_below_truth,
            pick(self.estimates + other.estimates),
            pick(self.truths + other.truths),
            pick(self.seeds + other.seeds),
        )

    def as_dict(self) -> dict[str, Any]:
        low, high = clopper_pearson(self.holds, self.trials)
        est = np.asarray(self.estimates, dtype=float)
        spread = (
            {
                "mean": float(est.mean()),
                "sd": float(est.std(ddof=1)) if est.size > 1 else 0.0,
                "quantiles_5_50_95": [float(q) for q in np.quantile(est, [0.05, 0.5, 0.95])],
                "population_mean": float(np.mean(self.truths)),
            }
            if est.size
            else {}
        )
        return {
            "holds": self.holds,
            "trials": self.trials,
            "rate": self.holds / max(self.trials, 1),
            "ci95": [low, high],
            "coverage_misses": {
                "lower_above_truth": self.low_above_truth,
                "upper_below_truth": self.high_below_truth,
            },
            "estimates": spread,
            "raw": {
                "estimates": [round(v, 6) for v in self.estimates],
                "truths": [round(v, 6) for v in self.truths],
                "seeds": list(self.seeds),
            },
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> ControlTally:
        return cls(
            holds=row["holds"],
            trials=row["trials"],
            low_above_truth=row["coverage_misses"]["lower_above_truth"],
            high_below_truth=row["coverage_misses"]["upper_below_truth"],
            estimates=list(row["raw"]["estimates"]),
            truths=list(row["raw"]["truths"]),
            seeds=list(row["raw"].get("seeds", range(row["trials"]))),
        )


def unit_sizes(spec: ClaimSpec, sample_like: ClaimData) -> dict[str, int]:
    """Levels of each design unit in a sample of the calibrated size (e.g. the ci profile's latents)."""
    units = list(spec.measure.units)  # type: ignore[union-attr]
    return {u: len(set(sample_like.labels(u).astype(str).tolist())) for u in units}


def run_controls(
    spec: ClaimSpec,
    pool: ClaimData,
    sizes: dict[str, int],
    *,
    seeds: int,
    budget: Budget,
    first_seed: int = 0,
    seeds_per_population: int = SEEDS_PER_POPULATION,
) -> dict[str, Any]:
    """Boundary null and positive control of one claim over ``seeds`` seeds (see the module docstring)."""
    rule = spec.rule
    tallies = {"boundary_null": ControlTally(), "positive": ControlTally()}
    targets = {"boundary_null": rule.boundary, "positive": rule.positive_size}
    populations: dict[str, list[dict[str, float]]] = {"boundary_null": [], "positive": []}
    failures: list[str] = []
    replay_rows: list[list[Any]] = []
    cached: dict[int, tuple[Population, dict[str, tuple[float, float]]] | None] = {}
    for seed in range(first_seed, first_seed + seeds):
        index = seed // seeds_per_population
        if index not in cached:
            cached.clear()
            try:
                pop, solved, redraws = solved_population(
                    spec, pool, sizes, _population_seed(spec, pool.template, index), targets
                )
            except ValueError as exc:  # tallied as failures; its seeds are skipped, not retried
                failures.append(f"population {index}: {exc}")
                cached[index] = None
                continue
            for name in targets:
                populations[name].append(
                    {
                        "population": index,
                        "scale": solved[name][0],
                        "effect": solved[name][1],
                        "redraws": len(redraws),
                    }
                )
            cached[index] = (pop, solved)
        if cached[index] is None:
            continue
        pop, solved = cached[index]  # type: ignore[misc]
        rng = np.random.default_rng([seed, 7919])
        rows = draw_sample(pop.base, sizes, rng)
        mask = np.isin(np.arange(len(pop.base.samples)), rows)
        for name, (scale, effect) in solved.items():
            sample = pop.at(scale).subset(mask)
            sample.extra["control"] = True
            measured = measure(spec, sample, budget, np.random.default_rng([seed, 104729]))
            decision = decide_measured(spec, measured, model=pool.model, reference_verdict="holds")
            b = decision.bounds
            tallies[name].add(decision.verdict, b.value, b.low, b.high, effect, seed)
            if seed < first_seed + REPLAY_SEEDS:
                replay_rows.append(decision_row(seed, name, decision, effect))
    return _summary(
        tallies["boundary_null"],
        tallies["positive"],
        seed_ranges=[[first_seed, first_seed + seeds]],
        failures=failures,
        extra={
            "boundary": targets["boundary_null"],
            "positive_size": targets["positive"],
            "budget": budget.name,
            "sizes": sizes,
            "pool_samples": len(pool.samples),
            "populations": populations,
            "redrawn_shuffles": _redrawn(populations),
            "replay": {
                "seeds": sorted({r[0] for r in replay_rows}),
                "digest": digest(replay_rows),
                "code": verdict_code_sha256(),
                "rows": replay_rows,
            },
        },
        alpha=rule.alpha,
    )


def _redrawn(populations: dict[str, list[dict[str, Any]]]) -> int:
    """Shuffles drawn again (``controls.solved_population``), counted once per population."""
    return sum(p.get("redraws", 0) for p in populations["boundary_null"])


def _summary(
    null: ControlTally,
    pos: ControlTally,
    *,
    seed_ranges: list[list[int]],
    failures: list[str],
    extra: dict[str, Any],
    alpha: float,
) -> dict[str, Any]:
    """One entry: both controls' rates with intervals, coverage, the estimates' spread, the targets' status."""
    null_row, pos_row = null.as_dict(), pos.as_dict()
    seeds = sum(b - a for a, b in seed_ranges)
    trials = null.trials + pos.trials
    coverage = {
        "lower_above_truth": (null.low_above_truth + pos.low_above_truth) / max(trials, 1),
        "upper_below_truth": (null.high_below_truth + pos.high_below_truth) / max(trials, 1),
        "nominal": alpha,
    }
    return {
        "boundary_null": null_row,
        "positive": pos_row,
        "coverage": coverage,
        **extra,
        "meets_fpr_target": null.trials > 0 and null_row["rate"] <= FPR_TARGET,
        "meets_power_target": pos.trials > 0 and pos_row["ci95"][0] >= POWER_TARGET,
        "seeds": seeds,
        "seed_ranges": seed_ranges,
        "plant_failures": len(failures),
        "plant_failure_examples": failures[:3],
    }


#: Entry fields that must agree for two runs' counts to be added (same controls, same code, same pool, size).
_SAME_RUN = (
    "version",
    "fingerprint",
    "code",
    "pool_model",
    "budget",
    "sizes",
    "pool_samples",
    "boundary",
    "positive_size",
)


def merge_entries(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any] | None:
    """``old`` and ``new`` counts added when both ran the same controls on disjoint seeds; else ``None``.

    Why: 500 seeds per claim, template and size is hours of CPU; seed ranges (``--first-seed``) run in several
    processes or on several days add up to it.
    """
    if "boundary_null" not in old or any(old.get(k) != new.get(k) for k in _SAME_RUN):
        return None
    ordered = sorted([*old["seed_ranges"], *new["seed_ranges"]])
    if any(a[1] > b[0] for a, b in pairwise(ordered)):
        return None  # overlapping seeds would count the same draws twice

    def added(name: str) -> ControlTally:
        return ControlTally.from_dict(old[name]).plus(ControlTally.from_dict(new[name]))

    populations = {
        name: sorted(
            {p["population"]: p for p in [*old["populations"][name], *new["populations"][name]]}.values(),
            key=lambda p: p["population"],
        )
        for name in ("boundary_null", "positive")
    }
    merged = _summary(
        added("boundary_null"),
        added("positive"),
        seed_ranges=ordered,
        failures=[*old["plant_failure_examples"], *new["plant_failure_examples"]],
        extra={
            **{k: new[k] for k in ("boundary", "positive_size", "budget", "sizes", "pool_samples")},
            "populations": populations,
            "redrawn_shuffles": _redrawn(populations),
        },
        alpha=new["coverage"]["nominal"],
    )
    merged["plant_failures"] = old["plant_failures"] + new["plant_failures"]
    replays = [e["replay"] for e in (old, new) if e.get("replay")]
    if replays:  # the digest of the lowest seeds, as one run over all the seeds would have recorded it
        merged["replay"] = min(replays, key=lambda r: r["seeds"][0] if r["seeds"] else math.inf)
    return {
        **{
            k: new[k] for k in ("version", "fingerprint", "code", "pool_model", "template", "size", "created")
        },
        **merged,
    }


def entry_key(claim_id: str, template: str, size: str) -> str:
    return f"{claim_id}|{template}|{size}"


def _kept_entries(out: Path, specs_by_id: dict[str, ClaimSpec]) -> dict[str, Any]:
    """Entries of an existing file whose claim definition is unchanged (others are stale and dropped)."""
    if not out.exists():
        return {}
    try:
        old = json.loads(out.read_text(encoding="utf-8")).get("entries", {})
    except (OSError, ValueError):
        return {}
    return {
        key: row
        for key, row in old.items()
        if key.split("|")[0] in specs_by_id
        and row.get("fingerprint") == specs_by_id[key.split("|")[0]].fingerprint()
    }


def calibrate_claim(
    spec: ClaimSpec,
    pool: ClaimData,
    sizes: dict[str, int],
    *,
    size_name: str,
    seeds: int,
    budget: Budget,
    out: Path = CALIBRATION_FILE,
    first_seed: int = 0,
    all_specs: list[ClaimSpec] | None = None,
) -> dict[str, Any]:
    """Run one claim's controls on one pool and size; merge the entry into the file (under a lock)."""
    from benchmark.claims.registry import all_claims

    known = {s.id: s for s in (all_specs or all_claims())}
    known[spec.id] = spec
    entry = {
        "version": spec.version,
        "fingerprint": spec.fingerprint(),
        "code": verdict_code_sha256(),  # measures, planter and solver: counts of other code never add up
        "pool_model": pool.model,
        "template": pool.template,
        "size": size_name,
        "created": utc_now(),
        **run_controls(spec, pool, sizes, seeds=seeds, budget=budget, first_seed=first_seed),
    }
    return write_entry(out, entry_key(spec.id, pool.template, size_name), entry, known)


def write_entry(out: Path, key: str, entry: dict[str, Any], known: dict[str, ClaimSpec]) -> dict[str, Any]:
    """Add one entry to the file, read afresh under a lock: runs in parallel processes keep each other's."""
    with FileLock(str(out) + ".lock"):
        entries = _kept_entries(out, known)
        previous = entries.get(key)
        entries[key] = (merge_entries(previous, entry) if previous else None) or entry
        document = {
            "schema": "calibration/2",
            "created": utc_now(),
            "git_commit": git_commit(),
            "versions": library_versions(),
            "targets": {
                "false_positive_rate": FPR_TARGET,
                "power": POWER_TARGET,
                "seeds_required": SEEDS_REQUIRED,
            },
            "design": "population resampling: fresh samples of design units from a shuffled, planted pool "
            "(benchmark/claims/controls.py)",
            "entries": dict(sorted(entries.items())),
        }
        temp = out.with_suffix(f".{os.getpid()}.tmp")
        temp.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        temp.replace(out)
    return document
