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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import beta

from benchmark.claims.data import CONTROLS, Budget, ClaimData, load_measures
from benchmark.claims.evaluate import CALIBRATION_FILE, select
from benchmark.claims.spec import ClaimSpec
from benchmark.claims.verdict import decide
from benchmark.provenance import git_commit, library_versions, utc_now

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
        return {"holds": self.holds, "trials": self.trials, "rate": self.holds / max(self.trials, 1),
                "ci95": [low, high]}


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
    null, pos = results["boundary_null"].as_dict(), results["positive"].as_dict()
    return {
        "boundary_null": null,
        "positive": pos,
        "boundary": boundary,
        "positive_size": positive,
        "meets_fpr_target": null["ci95"][1] <= FPR_TARGET if seeds >= 500 else null["rate"] <= FPR_TARGET,
        "meets_power_target": pos["rate"] >= POWER_TARGET and not failures,
        "seeds": seeds,
        "plant_failures": len(failures),
        "plant_failure_examples": failures[:3],
        "budget": budget.name,
        "n_samples": len(base.samples),
    }


def _kept_entries(out: Path, specs_by_id: dict[str, ClaimSpec]) -> dict[str, Any]:
    """Entries of an existing file whose claim definition is unchanged (others are stale and dropped)."""
    if not out.exists():
        return {}
    try:
        old = json.loads(out.read_text(encoding="utf-8")).get("claims", {})
    except (OSError, ValueError):
        return {}
    return {cid: row for cid, row in old.items()
            if cid in specs_by_id and row.get("fingerprint") == specs_by_id[cid].fingerprint()}


def calibrate(
    specs: list[ClaimSpec],
    bases: dict[str, ClaimData],
    *,
    seeds: int,
    budget: Budget,
    out: Path = CALIBRATION_FILE,
    all_specs: list[ClaimSpec] | None = None,
) -> dict[str, Any]:
    """Run every claim's controls on its base latents and write the calibration file after each claim.

    Claims not in ``specs`` keep their existing entries while their definition is unchanged, so a long
    calibration can be run claim by claim (or sharded) and an interrupted run loses only the claim in progress.
    """
    from benchmark.claims.registry import all_claims

    known = {spec.id: spec for spec in (all_specs or all_claims())}
    known.update({spec.id: spec for spec in specs})
    claims: dict[str, Any] = _kept_entries(out, known)
    document: dict[str, Any] = {}
    for spec in specs:
        if spec.cross_model or spec.probe_set not in bases:
            claims[spec.id] = {"status": "not calibrated: no base latents for " + spec.probe_set}
        else:
            base = select(spec, bases[spec.probe_set])
            claims[spec.id] = {"version": spec.version, "fingerprint": spec.fingerprint(),
                               "base_model": base.model, "created": utc_now(),
                               **run_controls(spec, base, seeds=seeds, budget=budget)}
        document = {
            "created": utc_now(),
            "git_commit": git_commit(),
            "versions": library_versions(),
            "targets": {"false_positive_rate": FPR_TARGET, "power": POWER_TARGET, "seeds_required": 500},
            "claims": dict(sorted(claims.items())),
        }
        temp = out.with_suffix(".tmp")
        temp.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        temp.replace(out)
    return document
