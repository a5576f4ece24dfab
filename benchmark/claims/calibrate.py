"""``lalm-bench calibrate``: each claim's false-positive rate, power and coverage from populations of known effect.

Design (CLAIMS.md, "Calibration"; :mod:`benchmark.claims.controls`): the population is a real offline model's
full-profile latents of the claim's probe set, shuffled so the claim's structure is gone; label-dependent offsets
are planted and scaled so that the *population effect* at the calibrated sample size equals the rule's boundary
(delta, or epsilon for absence claims: the boundary null) or ``power_at`` (0 for absence claims: the positive
control). Each seed draws a fresh sample of design units of that size from the population and decides it with
the claim's own measure, interval and rule, so the estimates scatter around the planted value and the share of
seeds that hold measures the test's size and power. Every ``seeds_per_population`` seeds (50 at the ci size, 20
at the full size: :func:`benchmark.claims.controls.seeds_per_population`) use a new population (another shuffle
and other plant directions), so the rates do not rest on one shuffle.

Seeds of one population are not independent trials: they share its plant, and one population can hold 0 of 50
seeds where another holds 8. So the rates' intervals are Clopper-Pearson intervals at the effective number of
seeds that the spread of the populations' own rates allows (:func:`clustered_interval`), recorded beside the
interval that treats every seed as independent. Entries made before each seed's verdict was recorded keep only
the latter, and say so.

Targets: false-positive rate <= 5% (point estimate; its interval recorded), power's lower bound >= 80%.
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
from scipy.stats import t as student_t

from benchmark.claims.controls import SEEDS_PER_POPULATION, population_size_of
from benchmark.claims.data import Budget, ClaimData
from benchmark.claims.evaluate import CALIBRATION_FILE, verdict_code_sha256
from benchmark.claims.replay import REPLAY_SEEDS, control_decisions, decision_row, digest
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


def clustered_interval(
    held: list[int], clusters: list[int], *, confidence: float = 0.95
) -> tuple[float, float, float]:
    """``(low, high, design effect)`` of a rate whose trials come in correlated clusters (populations).

    Korn and Graubard's (1998) interval for proportions from clustered samples: the Clopper-Pearson interval at
    the effective sample size ``p (1 - p) / v``, with ``v`` the between-cluster (ratio-estimator) variance of
    the rate, scaled by ``(t_{n-1} / t_{k-1})^2`` for the ``k - 1`` degrees of freedom that ``v`` rests on and
    never above ``n``. At a rate of 0 or 1 ``v`` is 0 and the effective size is ``n`` (with the same scaling).
    Written here because statsmodels' ``proportion_confint`` has no clustered method."""
    y = np.asarray(held, dtype=float)
    n = y.size
    _, which = np.unique(np.asarray(clusters), return_inverse=True)
    k = int(which.max()) + 1 if n else 0
    if n == 0 or k < 2:  # one population: its spread between populations is unknown
        return 0.0, 1.0, math.inf
    p = float(y.mean())
    sums, sizes = np.bincount(which, weights=y), np.bincount(which)
    variance = k / (k - 1) * float(np.sum((sums - p * sizes) ** 2)) / n**2
    design_effect = max(1.0, variance / (p * (1 - p) / n)) if 0.0 < p < 1.0 else 1.0
    tail = (1 - confidence) / 2
    scale = (student_t.ppf(1 - tail, n - 1) / student_t.ppf(1 - tail, k - 1)) ** 2
    n_eff = min(float(n), n / design_effect * scale)
    x = p * n_eff
    low = 0.0 if x <= 0.0 else float(beta.ppf(tail, x, n_eff - x + 1))
    high = 1.0 if x >= n_eff else float(beta.ppf(1 - tail, x + 1, n_eff - x))
    return low, high, design_effect


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
    #: 1 where the seed's verdict was ``holds`` (None for entries recorded before verdicts were kept per seed)
    held: list[int] | None = field(default_factory=list)

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
        if self.held is not None:
            self.held.append(int(verdict == "holds"))

    def plus(self, other: ControlTally) -> ControlTally:
        """Both tallies' counts, the raw lists in seed order (the runs' seeds are disjoint)."""
        order = np.argsort(np.asarray(self.seeds + other.seeds, dtype=np.int64), kind="stable")

        def pick(values: list[Any]) -> list[Any]:
            return [values[i] for i in order]

        both = None if self.held is None or other.held is None else pick(self.held + other.held)
        return ControlTally(
            self.holds + other.holds,
            self.trials + other.trials,
            self.low_above_truth + other.low_above_truth,
            self.high_below_truth + other.high_below_truth,
            pick(self.estimates + other.estimates),
            pick(self.truths + other.truths),
            pick(self.seeds + other.seeds),
            both,
        )

    def intervals(self, population_size: int) -> dict[str, Any]:
        """The rate's interval over populations of ``population_size`` seeds where each seed's verdict is known,
        beside the one that treats the seeds as independent."""
        independent = list(clopper_pearson(self.holds, self.trials))
        if self.held is None or len(self.held) != self.trials:
            return {
                "ci95": independent,
                "ci95_seeds_independent": independent,
                "interval": "seeds taken as independent (the entry predates per-seed verdicts)",
            }
        populations = [s // population_size for s in self.seeds]
        low, high, design_effect = clustered_interval(self.held, populations)
        return {
            "ci95": [low, high],
            "ci95_seeds_independent": independent,
            "interval": "clustered by population (Korn-Graubard)",
            "interval_populations": len(set(populations)),
            "design_effect": design_effect,
        }

    def as_dict(self, population_size: int = SEEDS_PER_POPULATION) -> dict[str, Any]:
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
            **self.intervals(population_size),
            "coverage_misses": {
                "lower_above_truth": self.low_above_truth,
                "upper_below_truth": self.high_below_truth,
            },
            "estimates": spread,
            "raw": {
                "estimates": [round(v, 6) for v in self.estimates],
                "truths": [round(v, 6) for v in self.truths],
                "seeds": list(self.seeds),
                **({"held": list(self.held)} if self.held is not None else {}),
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
            held=list(row["raw"]["held"]) if "held" in row["raw"] else None,
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

    def planted(index: int, solved: dict[str, tuple[float, float]], redraws: list[Any]) -> None:
        for name in targets:
            populations[name].append(
                {
                    "population": index,
                    "scale": solved[name][0],
                    "effect": solved[name][1],
                    "redraws": len(redraws),
                }
            )

    def failed(index: int, exc: ValueError) -> None:
        # a population that cannot be planted is tallied as a failure; its seeds are skipped, not retried
        failures.append(f"population {index}: {exc}")

    decisions = control_decisions(
        spec,
        pool,
        sizes,
        range(first_seed, first_seed + seeds),
        budget,
        seeds_per_population,
        on_population=planted,
        on_failure=failed,
    )
    for seed, name, decision, effect in decisions:
        b = decision.bounds
        tallies[name].add(decision.verdict, b.value, b.low, b.high, effect, seed)
        if seed < first_seed + REPLAY_SEEDS:
            replay_rows.append(decision_row(seed, name, decision, effect))
    return _summary(
        tallies["boundary_null"],
        tallies["positive"],
        seed_ranges=[[first_seed, first_seed + seeds]],
        failures=failures,
        population_size=seeds_per_population,
        extra={
            "boundary": targets["boundary_null"],
            "positive_size": targets["positive"],
            "budget": budget.name,
            "sizes": sizes,
            "pool_samples": len(pool.samples),
            "seeds_per_population": seeds_per_population,
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
    population_size: int,
    extra: dict[str, Any],
    alpha: float,
) -> dict[str, Any]:
    """One entry: both controls' rates with intervals, coverage, the estimates' spread, the targets' status."""
    null_row, pos_row = null.as_dict(population_size), pos.as_dict(population_size)
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


def _same_run(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Both entries ran the same controls (an entry without a population size used the one all had then)."""
    return all(old.get(k) == new.get(k) for k in _SAME_RUN) and population_size_of(old) == population_size_of(
        new
    )


def merge_entries(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any] | None:
    """``old`` and ``new`` counts added when both ran the same controls on disjoint seeds; else ``None``.

    Why: 500 seeds per claim, template and size is hours of CPU; seed ranges (``--first-seed``) run in several
    processes or on several days add up to it.
    """
    if "boundary_null" not in old or not _same_run(old, new):
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
        population_size=population_size_of(new),
        extra={
            **{k: new[k] for k in ("boundary", "positive_size", "budget", "sizes", "pool_samples")},
            "seeds_per_population": population_size_of(new),
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
    seeds_per_population: int = SEEDS_PER_POPULATION,
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
        **run_controls(
            spec,
            pool,
            sizes,
            seeds=seeds,
            budget=budget,
            first_seed=first_seed,
            seeds_per_population=seeds_per_population,
        ),
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
