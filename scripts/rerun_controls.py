"""Rerun a calibration entry's seeds and say why its controls held or not, and what a user's sample would give.

Two questions the entry's counts cannot answer, both asked of the same reruns (the seeds' populations,
samples and random streams are the calibration's own, and every final verdict is checked against the one the
entry records, so a rerun on other code is refused):

1. **Rule or veto.** A claim with ``token_control.decides`` holds only when its rule holds *and* its compared
   band exceeds every token control by delta (``verdict.token_veto``). ``rule_holds`` counts the seeds whose
   rule alone held; ``vetoed_by`` the seeds the veto turned away, per control. A power miss of the rule needs
   more units; one of the veto needs another control statistic or margin.
2. **A user's scatter.** Each seed draws its units without replacement from a pool only 2-3 times larger, so
   its estimate scatters by about ``sqrt(1 - f)`` less than a user's sample of the same size drawn from an
   unlimited supply of sentences and voices (``f``: the sampled share of the pool's units), while the
   jackknife's standard error targets the user's scatter. So the entry's false-positive rate is optimistic and
   its power pessimistic. ``user_rule_holds`` decides each seed's rule again with every part's deviation from
   its population value scaled up to a user's: ``value' = truth + k (value - truth)``, the replicates moved
   with it (same standard error), ``k = sqrt(sum_f v_f / sum_f (1 - f_f) v_f)`` from the part's jackknife
   variance ``v_f`` per unit factor. Part truths are the calibration's own population values (each part's
   mean point estimate over the population's probe samples). ``user_holds`` then moves the deciding token-control
   margins the same way (their truths: each margin's mean over the same probe samples) and applies the veto:
   the verdict a user's sample would get. ``user_rule_holds`` is the rule before the veto.

Usage::

    python scripts/rerun_controls.py --claim M3-no-crossmodal-alignment --template bare --profile full \\
        [--per-population N] [--out FILE.json]
    python scripts/rerun_controls.py --table FILE.json [FILE.json ...]   # a markdown table of reruns
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.claims.calibrate import clustered_interval, entry_key
from benchmark.claims.controls import (
    PILOT,
    Population,
    draw_sample,
    population_seed,
    solved_population,
    unit_levels,
)
from benchmark.claims.data import Budget, ClaimData
from benchmark.claims.evaluate import CALIBRATION_FILE, decide_measured, measure, verdict_code_sha256
from benchmark.claims.replay import CONTROLS
from benchmark.claims.shapes import Measured, band_contrast, metric_agreement
from benchmark.claims.spec import BandContrast, ClaimSpec, MetricAgreement
from benchmark.claims.verdict import Decision, decide, token_veto
from benchmark.cli.main import build_parser
from benchmark.report.calibration import rerun_table
from benchmark.run.options import CalibrateOptions, typed_options
from benchmark.run.session import calibration_tasks
from benchmark.stats.kit import Estimate, Reduction


def part_truths(population: Population, scale: float) -> np.ndarray:
    """Each part's population value at ``scale``: its mean point estimate over the population's probe samples,
    as ``Population.effect`` averages them before reducing (the calibration's definition of the truth)."""
    spec, distances = population.spec, population._distances()  # the planter's own scaled distances
    measure_spec = spec.measure
    values = []
    for rows, sub in zip(population.probes, population.probe_data, strict=True):
        rng, D = np.random.default_rng(population.seed), distances(scale, rows)
        if isinstance(measure_spec, BandContrast):
            values.append(band_contrast.point_parts(measure_spec, sub, PILOT, rng, D))
        elif isinstance(measure_spec, MetricAgreement):
            values.append(metric_agreement.point_parts(measure_spec, sub, rng, D))
        else:
            raise TypeError(f"{spec.id}: no parts for shape {measure_spec.shape!r}")
    return np.mean(values, axis=0)


def scatter_factor(estimate: Estimate, sampled_share: dict[str, float]) -> float:
    """``k``: a user's deviation over the calibration's, from the jackknife variance per unit factor."""
    user = without_replacement = 0.0
    for unit, reps in estimate.replicates.items():
        n = reps.size
        v = (n - 1) / n * float(((reps - reps.mean()) ** 2).sum())
        user += v
        without_replacement += (1.0 - sampled_share[unit]) * v
    return math.sqrt(user / without_replacement) if without_replacement > 0 else math.inf


def as_users_estimate(estimate: Estimate, truth: float, sampled_share: dict[str, float]) -> Estimate | None:
    """``estimate`` with its deviation from ``truth`` scaled to a user's, its replicates moved with it (same
    standard error); None when a factor is the whole pool, where this sample defines no user's scatter."""
    k = scatter_factor(estimate, sampled_share)
    if not math.isfinite(k):
        return None
    shift = (k - 1.0) * (estimate.value - float(truth))
    return replace(
        estimate,
        value=estimate.value + shift,
        replicates={u: r + shift for u, r in estimate.replicates.items()},
    )


def as_users(reduction: Reduction, truths: np.ndarray, sampled_share: dict[str, float]) -> Reduction | None:
    """The reduction with each part's deviation from its truth scaled to a user's (None when a part's
    factor is the whole pool, where a user's scatter is not defined by this sample)."""
    parts = []
    for part, truth in zip(reduction.parts, truths, strict=True):
        moved = as_users_estimate(part, float(truth), sampled_share)
        if moved is None:
            return None
        parts.append(moved)
    return replace(reduction, parts=tuple(parts))


def margin_truths(population: Population, planted: ClaimData, budget: Budget) -> dict[str, float]:
    """Each token-control margin's population value in the ``planted`` pool: its mean over the population's probe
    samples (the same samples that define the parts' truths). Only claims whose veto decides need it."""
    spec = population.spec
    if spec.token_control is None or not spec.token_control.decides or spec.rule.kind == "absence":
        return {}  # no veto decides (``evaluate.decide_measured``)
    n = len(planted.samples)
    values: dict[str, list[float]] = {}
    for index, rows in enumerate(population.probes):
        sample = planted.subset(np.isin(np.arange(n), rows))
        sample.extra["control"] = True
        measured = measure(spec, sample, budget, np.random.default_rng([population.seed, index]))
        for name, margin in measured.control_margins.items():
            values.setdefault(name, []).append(margin.value)
    return {name: float(np.mean(v)) for name, v in values.items()}


def users_verdict(
    spec: ClaimSpec,
    users: Reduction | None,
    measured: Measured,
    truths: dict[str, float],
    sampled_share: dict[str, float],
    model: str,
) -> tuple[str | None, str | None]:
    """``(rule, verdict)`` at a user's scatter: the rule on the moved reduction, then the veto on the deciding
    margins moved alike from ``truths`` (none: no veto decides, the verdict is the rule's). None where a factor is
    the whole pool."""
    if users is None:
        return None, None
    decision = decide(spec.rule, users, model=model, reference_verdict="holds")
    if not truths:
        return decision.verdict, decision.verdict
    moved = {}
    for control, margin in measured.control_margins.items():
        if control in measured.deciding_controls:
            moved[control] = as_users_estimate(margin, truths[control], sampled_share)
            if moved[control] is None:
                return decision.verdict, None
    vetoed = token_veto(decision, moved, delta=float(spec.rule.delta), alpha=spec.rule.alpha, decides=True)
    return decision.verdict, vetoed.verdict


def vetoing_controls(spec: ClaimSpec, rule: Decision, measured: Measured) -> list[str]:
    """The deciding token controls that each, put to ``verdict.token_veto`` alone, turn the rule's ``holds``
    away: the veto's own test, so this tally cannot drift from the verdict it explains."""
    if rule.verdict != "holds" or spec.token_control is None or not spec.token_control.decides:
        return []
    return [
        control
        for control, margin in measured.control_margins.items()
        if control in measured.deciding_controls
        and token_veto(
            rule, {control: margin}, delta=float(spec.rule.delta), alpha=spec.rule.alpha, decides=True
        ).verdict
        != "holds"
    ]


def _rate(held: list[int], clusters: list[int]) -> dict[str, Any]:
    low, high, design_effect = clustered_interval(held, clusters)
    return {
        "holds": int(sum(held)),
        "trials": len(held),
        "rate": sum(held) / len(held) if held else math.nan,
        "ci95": [low, high],
        "design_effect": design_effect,
    }


def rerun(
    claim: str, template: str, size: str, per_population: int | None, calibration: Path, device: str
) -> dict[str, Any]:
    key = entry_key(claim, template, size)
    entry = json.loads(calibration.read_text(encoding="utf-8"))["entries"].get(key)
    if entry is None:
        raise SystemExit(f"{calibration}: no entry {key!r} to rerun")
    if entry["code"] != verdict_code_sha256():
        raise SystemExit(
            f"{key}: made by verdict code {entry['code'][:10]}, not this checkout's: replay it first"
        )
    argv = ["calibrate", "--profile", size, "--claim", claim, "--template", template, "--device", device]
    options = typed_options(build_parser().parse_args([*argv, "--quiet"]), CalibrateOptions)
    ((spec, pool, sizes),) = calibration_tasks(options)
    budget = Budget.for_profile(entry["budget"])
    population_size = int(entry["seeds_per_population"])
    per_population = per_population or population_size
    ranges = sorted(entry["seed_ranges"])
    if any(a[1] != b[0] for a, b in itertools.pairwise(ranges)):
        raise SystemExit(f"{key}: seed ranges {ranges} leave gaps; this reruns one run of seeds")
    first, last = ranges[0][0], ranges[-1][1]
    pool_levels = {u: levels.size for u, levels in unit_levels(pool, list(sizes)).items()}
    sampled_share = {u: sizes[u] / pool_levels[u] for u in sizes}
    recorded = {
        name: dict(zip(entry[name]["raw"]["seeds"], entry[name]["raw"]["held"], strict=True))
        for name in CONTROLS
    }
    targets = {"boundary_null": spec.rule.boundary, "positive": spec.rule.positive_size}
    rows: list[dict[str, Any]] = []
    for index in range(first // population_size, -(-last // population_size)):
        population, solved, _ = solved_population(
            spec, pool, sizes, population_seed(spec, pool.template, index), targets
        )
        planted = {name: population.at(scale) for name, (scale, _) in solved.items()}  # once, not per seed
        truths = {name: part_truths(population, scale) for name, (scale, _) in solved.items()}
        margin_truth = {name: margin_truths(population, planted[name], budget) for name in solved}
        start = index * population_size
        for seed in range(max(start, first), min(start + per_population, last)):
            rng = np.random.default_rng([seed, 7919])
            mask = np.isin(np.arange(len(population.base.samples)), draw_sample(population.base, sizes, rng))
            for name, (_, effect) in solved.items():
                sample = planted[name].subset(mask)
                sample.extra["control"] = True
                measured = measure(spec, sample, budget, np.random.default_rng([seed, 104729]))
                final = decide_measured(spec, measured, model=pool.model, reference_verdict="holds")
                rule = decide(spec.rule, measured.reduction, model=pool.model, reference_verdict="holds")
                users = as_users(measured.reduction, truths[name], sampled_share)
                user_rule, user_final = users_verdict(
                    spec, users, measured, margin_truth[name], sampled_share, pool.model
                )
                vetoed = vetoing_controls(spec, rule, measured)
                rows.append(
                    {
                        "seed": seed,
                        "population": index,
                        "control": name,
                        "truth": effect,
                        "part_truths": truths[name].tolist(),
                        "value": final.bounds.value,
                        "low": final.bounds.low,
                        "high": final.bounds.high,
                        "verdict": final.verdict,
                        "rule_verdict": rule.verdict,
                        "vetoed_by": vetoed,
                        "user_rule_verdict": user_rule,
                        "user_verdict": user_final,
                        "margin_truths": margin_truth[name],
                        "user_value": None if users is None else users.value,
                        "recorded_held": recorded[name].get(seed),
                    }
                )
        done = [r for r in rows if r["population"] == index]
        print(
            f"population {index}: "
            + ", ".join(
                f"{name} holds {sum(r['verdict'] == 'holds' for r in done if r['control'] == name)}"
                f" rule {sum(r['rule_verdict'] == 'holds' for r in done if r['control'] == name)}"
                f" user-rule {sum(r['user_rule_verdict'] == 'holds' for r in done if r['control'] == name)}"
                for name in CONTROLS
            ),
            flush=True,
        )
    summary: dict[str, Any] = {}
    for name in CONTROLS:
        mine = [r for r in rows if r["control"] == name]
        clusters = [r["population"] for r in mine]
        vetoes: dict[str, int] = {}
        for r in mine:
            for control in r["vetoed_by"]:
                vetoes[control] = vetoes.get(control, 0) + 1
        summary[name] = {
            "holds": _rate([int(r["verdict"] == "holds") for r in mine], clusters),
            "rule_holds": _rate([int(r["rule_verdict"] == "holds") for r in mine], clusters),
            "user_rule_holds": _rate([int(r["user_rule_verdict"] == "holds") for r in mine], clusters),
            "user_holds": _rate([int(r["user_verdict"] == "holds") for r in mine], clusters),
            "vetoed_by": vetoes,
            "mismatches": [r["seed"] for r in mine if int(r["verdict"] == "holds") != r["recorded_held"]],
        }
    return {
        "claim": claim,
        "template": template,
        "size": size,
        "code": entry["code"],
        "sizes": sizes,
        "pool_levels": pool_levels,
        "sampled_share": sampled_share,
        "seeds_per_population_used": per_population,
        "summary": summary,
        "seeds": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, nargs="+", help="print a markdown table of these reruns' files")
    parser.add_argument("--claim")
    parser.add_argument("--template")
    parser.add_argument("--profile", choices=["ci", "full"], help="the calibrated size")
    parser.add_argument("--per-population", type=int, help="first seeds of each population (default: all)")
    parser.add_argument("--calibration", type=Path, default=CALIBRATION_FILE)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.table:
        print(rerun_table([json.loads(path.read_text(encoding="utf-8")) for path in args.table]))
        return 0
    if not (args.claim and args.template and args.profile):
        parser.error("--claim, --template and --profile are required unless --table is given")
    result = rerun(
        args.claim, args.template, args.profile, args.per_population, args.calibration, args.device
    )
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "seeds"}, indent=2))
    mismatched = sum(len(s["mismatches"]) for s in result["summary"].values())
    if mismatched:
        print(f"{mismatched} seeds decided otherwise than the entry records: not its code", file=sys.stderr)
    return 1 if mismatched else 0


if __name__ == "__main__":
    raise SystemExit(main())
