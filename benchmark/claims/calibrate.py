"""``lalm-bench calibrate``: each claim's false-positive rate and power from its semi-synthetic controls.

For every claim whose measure registers ``Controls``, starting from real offline latents of the claim's probe
set: the boundary null (``plant`` at delta for presence, at epsilon for absence) must not hold, and the positive
control (``plant`` at ``power_at`` for presence, at 0 for absence) must hold. Each is run over many seeds; the
holds rate gets a Clopper-Pearson interval. Targets (the claims issue): false-positive rate <= 5% and power >=
80%; a claim that misses is marked so in the file, never hidden. Absence claims are decided here as if their
positive reference held, since the control isolates the equivalence test itself.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock
from scipy.stats import beta

from benchmark.claims.data import CONTROLS, Budget, ClaimData, load_measures
from benchmark.claims.evaluate import CALIBRATION_FILE, select, verdict_code_sha256
from benchmark.claims.spec import ClaimSpec
from benchmark.claims.verdict import decide
from benchmark.core.provenance import git_commit, library_versions, utc_now

FPR_TARGET = 0.05
POWER_TARGET = 0.80


def clopper_pearson(successes: int, trials: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for a rate."""
    if trials == 0:
        return 0.0, 1.0
    tail = (1 - confidence) / 2
    low = 0.0 if successes == 0 else float(beta.ppf(tail, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(beta.ppf(1 - tail, successes + 1, trials - successes))
    return low, high


@dataclass
class ControlResult:
    holds: int
    trials: int

    def as_dict(self) -> dict[str, Any]:
        low, high = clopper_pearson(self.holds, self.trials)
        return {
            "holds": self.holds,
            "trials": self.trials,
            "rate": self.holds / max(self.trials, 1),
            "ci95": [low, high],
        }


def run_controls(
    spec: ClaimSpec, base: ClaimData, *, seeds: int, budget: Budget, first_seed: int = 0
) -> dict[str, Any]:
    """Holds rates of the boundary null and the positive control of one claim over ``seeds`` seeds."""
    measures = load_measures()
    if spec.statistic not in CONTROLS:
        return {"status": "no controls registered for measure " + spec.statistic}
    controls = CONTROLS.get(spec.statistic)
    measure = measures.get(spec.statistic)
    rule = spec.rule
    if rule.kind == "presence":
        boundary, positive = float(rule.delta), float(rule.power_at)  # validated by RuleSpec
    else:
        boundary, positive = float(rule.epsilon), 0.0
    results = {"boundary_null": ControlResult(0, 0), "positive": ControlResult(0, 0)}
    params = {**spec.measure_params, "tsne_layers": [], "dendrogram_layers": []}  # figures never decide
    failures: list[str] = []
    for offset in range(seeds):
        rng = np.random.default_rng([first_seed + offset, 7919])
        shuffled = controls.shuffle(base, params, rng)
        for name, size in (("boundary_null", boundary), ("positive", positive)):
            try:
                planted = controls.plant(shuffled, params, size, rng)
            except ValueError as exc:  # the planted size is out of this base's reach: say so, keep going
                failures.append(f"seed {first_seed + offset} {name}: {exc}")
                continue
            measurement = measure(planted, params, rng, budget)
            verdict, _ = decide(rule, measurement, reference_verdict="holds")
            result = results[name]
            result.trials += 1
            result.holds += verdict == "holds"
    return _summary(
        results["boundary_null"],
        results["positive"],
        seeds=seeds,
        seed_ranges=[[first_seed, first_seed + seeds]],
        failures=len(failures),
        examples=failures[:3],
        extra={
            "boundary": boundary,
            "positive_size": positive,
            "budget": budget.name,
            "n_samples": len(base.samples),
        },
    )


def _summary(
    null: ControlResult,
    pos: ControlResult,
    *,
    seeds: int,
    seed_ranges: list[list[int]],
    failures: int,
    examples: list[str],
    extra: dict[str, Any],
) -> dict[str, Any]:
    """One claim's entry: both controls' rates with intervals, and whether the targets are met."""
    null_row, pos_row = null.as_dict(), pos.as_dict()
    return {
        "boundary_null": null_row,
        "positive": pos_row,
        **extra,
        "meets_fpr_target": null_row["ci95"][1] <= FPR_TARGET
        if seeds >= 500
        else null_row["rate"] <= FPR_TARGET,
        "meets_power_target": pos_row["rate"] >= POWER_TARGET and not failures,
        "seeds": seeds,
        "seed_ranges": seed_ranges,
        "plant_failures": failures,
        "plant_failure_examples": examples,
    }


#: Entry fields that must agree for two runs' counts to be added (same controls, same code, same base).
_SAME_RUN = (
    "version",
    "fingerprint",
    "code",
    "base_model",
    "budget",
    "n_samples",
    "boundary",
    "positive_size",
)


def merge_entries(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any] | None:
    """``old`` and ``new`` counts added, when both ran the same controls on disjoint seeds; else ``None``.

    Why: 500 seeds of every claim is hours of CPU; runs of seed ranges (``--first-seed``) on several machines or
    days add up to it. Entries written before seed ranges were recorded ran seeds ``0..seeds-1``.
    """
    if "boundary_null" not in old or any(old.get(k) != new.get(k) for k in _SAME_RUN):
        return None
    ranges = [*old.get("seed_ranges", [[0, old["seeds"]]]), *new["seed_ranges"]]
    ordered = sorted(ranges)
    if any(a[1] > b[0] for a, b in pairwise(ordered)):
        return None  # overlapping seeds would count the same draws twice

    def added(name: str) -> ControlResult:
        return ControlResult(
            old[name]["holds"] + new[name]["holds"], old[name]["trials"] + new[name]["trials"]
        )

    extra = {k: new[k] for k in ("boundary", "positive_size", "budget", "n_samples")}
    merged = _summary(
        added("boundary_null"),
        added("positive"),
        seeds=old["seeds"] + new["seeds"],
        seed_ranges=ordered,
        failures=old["plant_failures"] + new["plant_failures"],
        examples=(old["plant_failure_examples"] + new["plant_failure_examples"])[:3],
        extra=extra,
    )
    return {**{k: new[k] for k in ("version", "fingerprint", "code", "base_model", "created")}, **merged}


def _kept_entries(out: Path, specs_by_id: dict[str, ClaimSpec]) -> dict[str, Any]:
    """Entries of an existing file whose claim definition is unchanged (others are stale and dropped)."""
    if not out.exists():
        return {}
    try:
        old = json.loads(out.read_text(encoding="utf-8")).get("claims", {})
    except (OSError, ValueError):
        return {}
    return {
        cid: row
        for cid, row in old.items()
        if cid in specs_by_id and row.get("fingerprint") == specs_by_id[cid].fingerprint()
    }


def calibrate(
    specs: list[ClaimSpec],
    bases: dict[str, ClaimData],
    *,
    seeds: int,
    budget: Budget,
    out: Path = CALIBRATION_FILE,
    all_specs: list[ClaimSpec] | None = None,
    first_seed: int = 0,
) -> dict[str, Any]:
    """Run every claim's controls on its base latents and write the calibration file after each claim.

    Claims not in ``specs`` keep their existing entries while their definition is unchanged, so a long
    calibration can be run claim by claim (or sharded) and an interrupted run loses only the claim in progress.
    A run of seeds disjoint from an entry's (``first_seed``) on the same base adds to its counts
    (:func:`merge_entries`); any other rerun replaces the entry.
    """
    from benchmark.claims.registry import all_claims

    known = {spec.id: spec for spec in (all_specs or all_claims())}
    known.update({spec.id: spec for spec in specs})
    document: dict[str, Any] = {}
    for spec in specs:
        if spec.cross_model or spec.probe_set not in bases:
            entry: dict[str, Any] = {"status": "not calibrated: no base latents for " + spec.probe_set}
        else:
            base = select(spec, bases[spec.probe_set])
            entry = {
                "version": spec.version,
                "fingerprint": spec.fingerprint(),
                "code": verdict_code_sha256(),  # measures, plants and solver: counts of other code never add up
                "base_model": base.model,
                "created": utc_now(),
                **run_controls(spec, base, seeds=seeds, budget=budget, first_seed=first_seed),
            }
        document = _write_entry(out, spec.id, entry, known)
    return document


def _write_entry(
    out: Path, claim_id: str, entry: dict[str, Any], known: dict[str, ClaimSpec]
) -> dict[str, Any]:
    """Add one claim's entry to the file, read afresh under a lock: runs of other claims (or other seed ranges)
    in parallel processes each keep what the others wrote."""
    with FileLock(str(out) + ".lock"):
        claims = _kept_entries(out, known)
        previous = claims.get(claim_id)
        claims[claim_id] = (
            merge_entries(previous, entry) if previous and "boundary_null" in entry else None
        ) or entry
        document = {
            "created": utc_now(),
            "git_commit": git_commit(),
            "versions": library_versions(),
            "targets": {"false_positive_rate": FPR_TARGET, "power": POWER_TARGET, "seeds_required": 500},
            "claims": dict(sorted(claims.items())),
        }
        temp = out.with_suffix(f".{os.getpid()}.tmp")
        temp.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        temp.replace(out)
    return document
