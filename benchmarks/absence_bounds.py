"""Experiment: why the upper bounds of absence claims were anti-conservative in the calibration, and which
studentisation of the bound fixes it, on the calibration's own populations and seeds.

Why: the committed calibration found the boundary nulls of M3 (``shared-suffix``) and S6 (``bare``) holding
7.0% and 8.2% of 500 seeds at a nominal 5%, while the same entries' standard errors were on average wider than
the estimates' scatter. This records, per seed, the estimate, its standard error and each part's jackknife
replicates, and then decides every seed again with other upper bounds computed from those replicates:

- ``plain``: the studentised bound ``estimate + t se``;
- ``johnson``: plus the one-sided skew term (the convention presence claims use);
- ``score``: studentised with the replicates' variance about the value tested (``se^2 + (estimate -
  theta)^2 / df``), inverted: ``t / sqrt(1 - t^2 / df)`` standard errors out;
- ``score+johnson``: both (what absence claims use since this experiment).

It runs the decision path only through ``benchmark.claims`` (no patching); ``--table`` reads the files back.
Results and reading: ``reports/absence_bounds.md``.

    python -m benchmarks.absence_bounds --claim S6-speech-no-crosslingual-semantics --template bare \\
        --seeds 500 --out reports/coverage/absence-bounds/S6-bare.json
    python -m benchmarks.absence_bounds --table reports/coverage/absence-bounds/*.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

VARIANTS = ("plain", "johnson", "score", "score+johnson")


def run(claim: str, template: str, seeds: int, first_seed: int) -> dict[str, Any]:
    """Per seed and control: the shipped decision and each part's value and replicates (ci size)."""
    from benchmark.claims.data import Budget
    from benchmark.claims.registry import get_claim
    from benchmark.run.options import SessionOptions
    from benchmark.run.session import POOL_OF_SIZE, ClaimSession, calibration_pools, calibration_sizes

    spec = get_claim(claim)
    session = ClaimSession(SessionOptions(profile=POOL_OF_SIZE["ci"], device="cpu"))
    pool = calibration_pools(session, spec, None, [template])[0]
    sizes = calibration_sizes(spec, pool, "ci")
    budget = Budget.for_profile("ci")
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for seed in range(first_seed, first_seed + seeds):
        rows.extend(_seed(spec, pool, sizes, seed, budget))
        if (seed - first_seed + 1) % 25 == 0:
            print(
                f"{claim} {template}: {seed - first_seed + 1}/{seeds}, {time.perf_counter() - started:.0f} s",
                file=sys.stderr,
            )
    return {
        "claim": claim,
        "template": template,
        "sizes": sizes,
        "epsilon": spec.rule.epsilon,
        "alpha": spec.rule.alpha,
        "rows": rows,
    }


_POPULATIONS: dict[tuple[str, str, int], Any] = {}


def _seed(spec: Any, pool: Any, sizes: dict[str, int], seed: int, budget: Any) -> list[dict[str, Any]]:
    """One seed's controls, drawn as ``lalm-bench calibrate`` draws them (``benchmark.claims.replay.seed_rows``
    holds the same loop to the calibration's digest)."""
    from benchmark.claims.controls import SEEDS_PER_POPULATION, draw_sample, solved_population
    from benchmark.claims.controls import population_seed as _population_seed
    from benchmark.claims.evaluate import decide_measured, measure

    index = seed // SEEDS_PER_POPULATION
    key = (spec.id, pool.template, index)
    if key not in _POPULATIONS:
        _POPULATIONS.clear()
        targets = {"boundary_null": spec.rule.boundary, "positive": spec.rule.positive_size}
        pop, solved, _ = solved_population(
            spec, pool, sizes, _population_seed(spec, pool.template, index), targets
        )
        _POPULATIONS[key] = (pop, solved)
    pop, solved = _POPULATIONS[key]
    mask = np.isin(
        np.arange(len(pop.base.samples)), draw_sample(pop.base, sizes, np.random.default_rng([seed, 7919]))
    )
    out = []
    for control, (scale, effect) in solved.items():
        sample = pop.at(scale).subset(mask)
        sample.extra["control"] = True
        measured = measure(spec, sample, budget, np.random.default_rng([seed, 104729]))
        decision = decide_measured(spec, measured, model=pool.model, reference_verdict="holds")
        reduction = measured.reduction
        out.append(
            {
                "seed": seed,
                "control": control,
                "truth": effect,
                "verdict": decision.verdict,
                "kind": reduction.kind,
                "parts": [
                    {"value": float(p.value), "replicates": {f: r.tolist() for f, r in p.replicates.items()}}
                    for p in reduction.parts
                ],
            }
        )
    return out


def upper_bound(part: dict[str, Any], variant: str, alpha: float) -> tuple[float, float]:
    """``(upper bound, se)`` of one part from its replicates, by ``variant``: ``johnson`` and ``score+johnson``
    are the kit's own bounds (plain and ``restricted``), the two without the skew term drop it from them."""
    from benchmark.stats import kit

    replicates = {f: np.asarray(r, dtype=float) for f, r in part["replicates"].items()}
    score = variant.startswith("score")
    est = kit.Estimate(part["value"], replicates, np.zeros(1), restricted=score)
    if variant in ("johnson", "score+johnson"):
        return est.bounds(alpha)[1], est.se
    t = float(stats.t.ppf(1 - alpha, est.df))
    base = t / np.sqrt(1 - t * t / est.df) if score else t
    return est.value + base * est.se, est.se


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    eps, alpha = result["epsilon"], result["alpha"]
    out: dict[str, Any] = {}
    for control in ("boundary_null", "positive"):
        rows = [r for r in result["rows"] if r["control"] == control]
        if not rows:
            continue
        deciding = [max(r["parts"], key=lambda p: upper_bound(p, "score+johnson", alpha)[0]) for r in rows]
        values = np.array([p["value"] for p in deciding])
        ses = np.array([upper_bound(p, "plain", alpha)[1] for p in deciding])
        truth = np.array([r["truth"] for r in rows])
        entry: dict[str, Any] = {
            "seeds": len(rows),
            "shipped_holds": sum(r["verdict"] == "holds" for r in rows),
            "corr_estimate_se": float(np.corrcoef(values, ses)[0, 1]) if len(rows) > 2 else float("nan"),
            "studentised_q05": float(np.quantile((values - truth) / ses, 0.05)),
        }
        for variant in VARIANTS:
            uppers = np.array([max(upper_bound(p, variant, alpha)[0] for p in r["parts"]) for r in rows])
            entry[variant] = {"holds": int((uppers < eps).sum()), "upper_q50": float(np.median(uppers))}
        out[control] = entry
    return out


def table(paths: list[Path]) -> str:
    lines = [
        "| claim | template | control | seeds | corr(estimate, se) | 5% quantile of (estimate - truth) / se |"
        + "".join(f" holds: {v} |" for v in VARIANTS),
        "|---|---|---|---|---|---|" + "---|" * len(VARIANTS),
    ]
    for path in paths:
        result = json.loads(path.read_text())
        for control, row in summarise(result).items():
            cells = "".join(
                f" {row[v]['holds']}/{row['seeds']} = {row[v]['holds'] / row['seeds']:.1%} |"
                for v in VARIANTS
            )
            lines.append(
                f"| {result['claim']} | {result['template']} | {control} | {row['seeds']} | "
                f"{row['corr_estimate_se']:.2f} | {row['studentised_q05']:.2f} |{cells}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", nargs="+", type=Path)
    parser.add_argument("--claim")
    parser.add_argument("--template")
    parser.add_argument("--seeds", type=int, default=500)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.table:
        print(table(args.table))
        return 0
    if not (args.claim and args.template and args.out):
        parser.error("--claim, --template and --out are required unless --table")
    result = run(args.claim, args.template, args.seeds, args.first_seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result) + "\n")
    print(json.dumps(summarise(result), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
