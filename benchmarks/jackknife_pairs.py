"""Experiment: how much of the jackknife intervals' excess width is the pairwise interaction of design units,
and whether a delete-two correction removes it, measured on the calibration's real populations.

Why: the calibration (``reports/calibration.md``) finds the claims' one-sided bounds 2-4 standard deviations
of the estimate away from it, where a nominal 95% bound sits ~1.8 (t, 11 df). For a statistic built from pairs
of units (a silhouette, a retrieval rate) the delete-one jackknife variance counts the pairwise part about
twice (degree-2 U-statistic: ``E var_J = 4 s1^2/n + 4 s2^2/(n(n-2))`` against ``4 s1^2/n + 2 s2^2/(n(n-1))``).

The correction, per unit factor with ``n`` levels, from delete-two replicates on the pairs of a subset ``K`` of
``k`` levels (all levels when ``n <= k``):

    Delta_ij = theta - theta_(-i) - theta_(-j) + theta_(-ij)      (the part of theta that needs both i and j)
    tau^2    = sum_{i<j in K} U(Delta)_ij^2 / (k (k - 3) / 2)     (U: the U-centring that removes additive parts)
    var      = max(var_J - tau^2 (n - 2) (n - 3)^2 / (2 (n - 1)), var_J / 2)

(for a degree-2 U-statistic ``U(Delta) = U(r) / C(n-2, 2)``, ``r`` the kernel's pure interaction, and the excess
is ``2 var(r) / ((n - 1)(n - 2))``: the formula is unbiased there, ``tests/test_jackknife_pairs.py``; the floor
is the most a degree-2 part can inflate ``var_J``).

Each replicate's chance level is a mean of ``n_perm_replicate`` permutations (20 at ci), and ``Delta`` adds
four of them: their Monte-Carlo noise, amplified by the factor above (~37 at n = 12), reads as interaction. So
a third variant, ``crossfit``, computes every replicate twice, with the chance level of the first and of the
second half of its permutations, and replaces each square by the product of the two independent versions
(the delete-one variance as ``sum (a_i - mean a)(b_i - mean b)``, the interaction as ``sum U(Delta_a) U(Delta_b)``):
products of independent noises have mean zero, so neither the plain variance nor the correction counts noise.

This runs on the verdict path only inside this experiment: it patches ``benchmark.stats.kit`` in this process,
draws each seed's sample from the same populations ``lalm-bench calibrate`` plants, and decides it with each
variant's variance. It reports, per control, the spread of the estimates across seeds (and that spread divided
by ``sqrt(1 - f)``, ``f`` the sampled share of the pool's units: the spread of a user's sample from an unlimited
supply), the mean standard error of each variant, and each variant's holds and coverage misses (also against
the ``sqrt(1 - f)``-widened spread). Results and reading: ``reports/jackknife_width.md``.

    python -m benchmarks.jackknife_pairs --claim T3-text-language-early-late --template bare --seeds 200 \\
        --out reports/coverage/jackknife-pairs/T3-bare.json
    python -m benchmarks.jackknife_pairs --table reports/coverage/jackknife-pairs/*.json

Runs on the latent cache of the calibration's pool (the full profile: extracted on first use).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.stats import kit

#: Separator of the extra replicate keys beside a unit factor's delete-one replicates (``unit::pairs``: the
#: delete-two replicates; ``unit::A``/``unit::B`` and ``unit::pairsA``/``unit::pairsB``: the same deletions with
#: chance levels from the first and the second half of the replicate permutations).
MARK = "::"
#: Levels in the subset whose pairs are left out two at a time (all when a factor has at most this many).
SUBSET = 12
_STATE = {"mode": "jackknife"}
VARIANTS = ("jackknife", "corrected", "crossfit")
_ORIGINAL = {
    "net_curve": kit.net_curve,
    "parts": kit.Estimate._parts,
    "skew": kit.Estimate.skew,
    "joint_power": kit.joint_power,
    "curve_se": kit.NetCurve.se,
    "n_units": kit.NetCurve.n_units,
}


def pair_list(n: int, k: int = SUBSET) -> list[tuple[int, int]]:
    """The pairs of the first ``min(n, k)`` levels (level codes follow sorted labels; the sample is random)."""
    return list(combinations(range(min(n, k)), 2))


def u_centre(matrix: np.ndarray) -> np.ndarray:
    """U-centring of a symmetric ``[k, k]`` matrix (diagonal ignored): removes every ``a_i + a_j + c`` part."""
    k = matrix.shape[0]
    a = matrix.copy()
    np.fill_diagonal(a, 0.0)
    rows = a.sum(axis=1)
    total = rows.sum()
    out = a - rows[:, None] / (k - 2) - rows[None, :] / (k - 2) + total / ((k - 1) * (k - 2))
    np.fill_diagonal(out, 0.0)
    return out


def _delta(value: float, singles: np.ndarray, pairs: np.ndarray, n: int) -> np.ndarray:
    """U-centred ``Delta_ij`` over the subset's pairs (``[k, k]``, zero diagonal)."""
    k = min(n, SUBSET)
    delta = np.zeros((k, k))
    for (i, j), theta_ij in zip(pair_list(n), pairs, strict=True):
        delta[i, j] = delta[j, i] = value - singles[i] - singles[j] + theta_ij
    return u_centre(delta)


def pairwise_excess(
    value: float,
    singles: np.ndarray,
    pairs: np.ndarray,
    n: int,
    singles_b: np.ndarray | None = None,
    pairs_b: np.ndarray | None = None,
) -> float:
    """The delete-one variance's excess from pairwise interactions, estimated from the delete-two replicates.

    With a second, independent set of replicates (``singles_b``, ``pairs_b``: the same deletions, their chance
    levels from other permutations) the interaction's square is estimated by the cross-product of the two sets'
    ``U(Delta)``, whose Monte-Carlo noise has mean zero: each replicate's chance level is a mean of a few
    permutations, and ``Delta`` adds four of them, so their noise would otherwise count as interaction."""
    k = min(n, SUBSET)
    if k < 4:
        return 0.0
    a = _delta(value, singles, pairs, n)
    b = a if singles_b is None or pairs_b is None else _delta(value, singles_b, pairs_b, n)
    tau2 = float(np.triu(a * b, 1).sum()) / (k * (k - 3) / 2)
    return tau2 * (n - 2) * (n - 3) ** 2 / (2 * (n - 1))


def cross_variance(a: np.ndarray, b: np.ndarray) -> float:
    """Delete-one jackknife variance from two independent sets of the same replicates (chance levels from
    disjoint permutations): ``(n-1)/n sum (a_i - mean a)(b_i - mean b)``, free of their Monte-Carlo noise."""
    n = a.size
    return (n - 1) / n * float(((a - a.mean()) * (b - b.mean())).sum())


def _own(replicates: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The kit's own replicates (one per unit factor), without this module's extra keys."""
    return {k: v for k, v in replicates.items() if MARK not in k}


def _strip(estimate: kit.Estimate) -> kit.Estimate:
    return kit.Estimate(value=estimate.value, replicates=_own(estimate.replicates), null=estimate.null)


def _parts(self: kit.Estimate) -> list[tuple[float, int]]:
    """The kit's delete-one variance per unit factor (same order), replaced by the variant's where it applies."""
    plain = _ORIGINAL["parts"](_strip(self))
    mode = _STATE["mode"]
    out = []
    for (key, reps), (var, n) in zip(_own(self.replicates).items(), plain, strict=True):
        extra = {
            tag: self.replicates.get(key + MARK + tag) for tag in ("pairs", "A", "B", "pairsA", "pairsB")
        }
        if mode == "corrected" and extra["pairs"] is not None and n >= 4:
            var = max(var - pairwise_excess(self.value, reps, extra["pairs"], n), var / 2)
        elif mode == "crossfit" and extra["A"] is not None and n >= 4:
            a, b = extra["A"], extra["B"]
            cross = cross_variance(a, b)
            if cross > 0:
                excess = pairwise_excess(self.value, a, extra["pairsA"], n, b, extra["pairsB"])
                var = max(cross - excess, cross / 2)
        out.append((var, n))
    return out


def _skew(self: kit.Estimate) -> float:
    return _ORIGINAL["skew"].fget(_strip(self))  # type: ignore[attr-defined]


def _joint_power(parts: Any, margin: float, alpha: float) -> float:
    return _ORIGINAL["joint_power"]([_strip(p) for p in parts], margin, alpha)


class _CapturedLabellings(kit._Labellings):
    """The kit's labellings, remembered so that the delete-two replicates reuse the very same random keys."""

    last: kit._Labellings | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _CapturedLabellings.last = self


def _net_curve(stat: Any, D: np.ndarray, design: Any, label: Any, **options: Any) -> kit.NetCurve:
    """The kit's net curve plus delete-two replicates of each unit factor, evaluated as the kit evaluates its
    delete-one replicates: the same labellings restricted to the kept samples (common random numbers), the
    first ``n_perm_replicate`` of them for the chance level, and the same shift to the full null's level."""
    _CapturedLabellings.last = None
    curve = _ORIGINAL["net_curve"](stat, D, design, label, **options)
    if not options.get("jackknife", True):
        return curve
    labellings = _CapturedLabellings.last
    n_rep = min(options["n_perm_replicate"], options["n_perm"])
    Dl, _ = kit.as_layers(D)
    shift = curve.null[:n_rep].mean(axis=0) - curve.null_mean if label is not None else 0.0
    half = max(1, n_rep // 2)

    def net(keep: np.ndarray) -> np.ndarray:
        """``[3, C]``: the net value with the chance level of all ``n_rep`` permutations, of the first half, of
        the second half."""
        idx = np.flatnonzero(keep)
        sub = kit.distance_rows(Dl, idx)
        if labellings is None:
            codes = np.zeros((1, idx.size), dtype=np.int64)
            return np.repeat(np.asarray(stat(sub, codes, idx), dtype=np.float64)[:1], 3, axis=0)
        values = np.asarray(stat(sub, labellings.rows(keep, n_rep), idx), dtype=np.float64)
        chance = [values[1:].mean(axis=0), values[1 : 1 + half].mean(axis=0), values[1 + half :].mean(axis=0)]
        return np.stack([values[0] - c + shift for c in chance])

    extra: dict[str, np.ndarray] = {}
    for unit in design.units:
        codes, levels = design.codes(unit)
        if levels.size < 4 or n_rep < 2:
            continue
        pairs = np.stack([net((codes != i) & (codes != j)) for i, j in pair_list(levels.size)])
        singles = np.stack([net(codes != i) for i in range(levels.size)])
        extra[unit + MARK + "pairs"] = pairs[:, 0]
        extra[unit + MARK + "A"], extra[unit + MARK + "B"] = singles[:, 1], singles[:, 2]
        extra[unit + MARK + "pairsA"], extra[unit + MARK + "pairsB"] = pairs[:, 1], pairs[:, 2]
    return replace(curve, replicates={**curve.replicates, **extra})


def _stripped_curve(curve: kit.NetCurve) -> kit.NetCurve:
    return replace(curve, replicates=_own(curve.replicates))


def patch() -> None:
    """Route the kit (and the band-contrast shape, which imported ``net_curve`` by name) through this module."""
    from benchmark.claims.shapes import band_contrast

    kit._Labellings = _CapturedLabellings  # type: ignore[misc]
    kit.net_curve = _net_curve  # type: ignore[assignment]
    band_contrast.net_curve = _net_curve  # type: ignore[assignment]
    kit.Estimate._parts = _parts  # type: ignore[method-assign]
    kit.Estimate.skew = property(_skew)  # type: ignore[method-assign,assignment]
    kit.joint_power = _joint_power  # type: ignore[assignment]
    kit.NetCurve.se = lambda self: _ORIGINAL["curve_se"](_stripped_curve(self))  # type: ignore[method-assign]
    kit.NetCurve.n_units = property(  # type: ignore[method-assign,assignment]
        lambda self: _ORIGINAL["n_units"].fget(_stripped_curve(self))
    )


def run(
    claim: str, template: str, seeds: int, first_seed: int, size: str, perm_replicate: int | None = None
) -> dict[str, Any]:
    """Both variants' decisions on the calibration's populations of one claim and template; ``perm_replicate``
    overrides the budget's permutations per jackknife replicate (the Monte-Carlo noise of each replicate's
    chance level, which the delete-two contrast amplifies)."""
    from benchmark.claims.controls import SEEDS_PER_POPULATION, draw_sample, solved_population
    from benchmark.claims.controls import population_seed as _population_seed
    from benchmark.claims.data import Budget
    from benchmark.claims.evaluate import decide_measured, measure
    from benchmark.claims.registry import all_claims
    from benchmark.run.options import SessionOptions
    from benchmark.run.session import POOL_OF_SIZE, ClaimSession, calibration_pools, calibration_sizes

    spec = next(s for s in all_claims() if s.id == claim)
    session = ClaimSession(SessionOptions(profile=POOL_OF_SIZE[size], device="cpu"))
    pool = next(p for p in calibration_pools(session, spec, None, [template]))
    sizes = calibration_sizes(spec, pool, size)
    pool_levels = {u: len(set(pool.labels(u).astype(str).tolist())) for u in sizes}
    budget = Budget.for_profile(size)
    if perm_replicate is not None:
        budget = replace(budget, n_perm_replicate=perm_replicate)
    targets = {"boundary_null": spec.rule.boundary, "positive": spec.rule.positive_size}
    rows: list[dict[str, Any]] = []
    population = None
    started = time.perf_counter()
    for seed in range(first_seed, first_seed + seeds):
        index = seed // SEEDS_PER_POPULATION
        if population is None or population[0] != index:
            pop, solved, _ = solved_population(
                spec, pool, sizes, _population_seed(spec, pool.template, index), targets
            )
            population = (index, pop, solved)
        _, pop, solved = population
        rng = np.random.default_rng([seed, 7919])
        mask = np.isin(np.arange(len(pop.base.samples)), draw_sample(pop.base, sizes, rng))
        for control, (scale, effect) in solved.items():
            sample = pop.at(scale).subset(mask)
            sample.extra["control"] = True
            measured = measure(spec, sample, budget, np.random.default_rng([seed, 104729]))
            row: dict[str, Any] = {"seed": seed, "population": index, "control": control, "truth": effect}
            for variant in VARIANTS:
                _STATE["mode"] = variant
                decision = decide_measured(spec, measured, model=pool.model, reference_verdict="holds")
                b = decision.bounds
                row[variant] = {"verdict": decision.verdict, "value": b.value, "low": b.low, "high": b.high}
                row[variant]["se"] = b.se
            _STATE["mode"] = "jackknife"
            rows.append(row)
        done = seed - first_seed + 1
        if done % 10 == 0:
            print(
                f"{claim} {template}: {done}/{seeds} seeds, {time.perf_counter() - started:.0f} s",
                file=sys.stderr,
            )
    return {
        "claim": claim,
        "template": template,
        "size": size,
        "sizes": sizes,
        "pool_levels": pool_levels,
        "alpha": spec.rule.alpha,
        "subset": SUBSET,
        "budget": [budget.n_perm, budget.n_perm_replicate, budget.name],
        "seconds": time.perf_counter() - started,
        "rows": rows,
    }


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """Per control and variant: holds, coverage misses, the mean standard error against the estimates' spread
    within a population (and that spread widened by ``1 / sqrt(1 - f)``: a user's sample)."""
    fraction = max(result["sizes"][u] / result["pool_levels"][u] for u in result["sizes"])
    widen = 1.0 / np.sqrt(1.0 - fraction)
    out: dict[str, Any] = {"sampled_fraction": fraction, "user_spread_factor": widen}
    for control in ("boundary_null", "positive"):
        rows = [r for r in result["rows"] if r["control"] == control]
        values = np.array([r["jackknife"]["value"] for r in rows])
        truths = np.array([r["truth"] for r in rows])
        populations = np.array([r["population"] for r in rows])
        # spread around each population's own truth (the planted effect differs a little between populations)
        spread = float(np.sqrt(np.mean((values - truths) ** 2)))
        entry: dict[str, Any] = {"seeds": len(rows), "spread": spread, "user_spread": spread * widen}
        entry["populations"] = int(np.unique(populations).size)
        for variant in VARIANTS:
            se = np.array([r[variant]["se"] for r in rows])
            low = np.array([r[variant]["low"] for r in rows])
            high = np.array([r[variant]["high"] for r in rows])
            user_values = truths + (values - truths) * widen  # the same bounds' distances, a user's scatter
            entry[variant] = {
                "holds": int(sum(r[variant]["verdict"] == "holds" for r in rows)),
                "mean_se": float(se.mean()),
                "se_over_spread": float(se.mean() / spread),
                "se_over_user_spread": float(se.mean() / (spread * widen)),
                "low_above_truth": float(np.mean(low > truths)),
                "high_below_truth": float(np.mean(high < truths)),
                "user_low_above_truth": float(np.mean(user_values - (values - low) > truths)),
                "user_high_below_truth": float(np.mean(user_values + (high - values) < truths)),
            }
        out[control] = entry
    return out


def table(paths: list[Path]) -> str:
    """A markdown table of the summaries of several runs (one row per claim, control and variant)."""
    lines = [
        "| claim | template | n_perm_replicate | seeds | control | variant | holds | se / spread | "
        "se / user's spread | bound misses low / high | a user's misses low / high |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path in paths:
        result = json.loads(path.read_text(encoding="utf-8"))
        summary = result.get("summary") or summarise(result)
        budget = result.get("budget") or [None, 20, None]
        for control in ("boundary_null", "positive"):
            entry = summary[control]
            for variant in VARIANTS:
                x = entry.get(variant)
                if x is None:
                    continue
                lines.append(
                    f"| {result['claim']} | {result['template']} | {budget[1]} | {entry['seeds']} | {control} | "
                    f"{variant} | {x['holds']}/{entry['seeds']} | {x['se_over_spread']:.2f} | "
                    f"{x['se_over_user_spread']:.2f} | {100 * x['low_above_truth']:.1f}% / "
                    f"{100 * x['high_below_truth']:.1f}% | {100 * x['user_low_above_truth']:.1f}% / "
                    f"{100 * x['user_high_below_truth']:.1f}% |"
                )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", nargs="+", type=Path, help="print a markdown table of these runs' files")
    parser.add_argument("--claim")
    parser.add_argument("--template")
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--size", default="ci", choices=["ci", "full"])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--perm-replicate", type=int, default=None, help="permutations per replicate")
    args = parser.parse_args(argv)
    if args.table:
        sys.stdout.write(table(args.table))
        return 0
    if not (args.claim and args.template and args.out):
        parser.error("--claim, --template and --out are required unless --table is given")
    patch()
    result = run(args.claim, args.template, args.seeds, args.first_seed, args.size, args.perm_replicate)
    result["summary"] = summarise(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
