"""Coverage simulation that chose the claims' interval convention (``benchmark.stats.kit``).

Synthetic latents with effects that differ between units are drawn from a large pool of units; a sample of the
size being checked (the ci or full profile's) is drawn without replacement again and again, and each interval
is checked against the truth: the mean of the point estimate over all samples of that size from the pool (a
silhouette of 4 transcripts is another quantity than one of 8, so the estimand is defined at the design's
size). One-sided coverage of each bound should be within 2 points of nominal (5% misses each side).

Designs (sizes of the shipped profiles):

- ``text``: meaning x 8 languages, the language silhouette (strata meaning, unit meaning; T3, T5, M1's shape)
  and the meaning silhouette (strata language; T4's shape); units differ in how strongly their translations
  separate by language.
- ``grid``: transcript x speaker (x 1 device), the transcript silhouette (strata speaker; units transcript and
  speaker; S1's shape); transcripts differ in how distinct their content is, speakers in how strongly their
  voice moves a clip.

Methods: ``jackknife-t`` (the kit), and the half-sampling percentile interval the claims used before
(``halfsample``: raw percentiles; ``halfsample-centred``: the text measures' median-centred variant).

    python -m benchmarks.coverage --design text --size 12 --draws 500 --out reports/coverage/text-12.json
    python -m benchmarks.coverage --table reports/coverage/*.json > reports/coverage.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.stats import Design, pairwise_distances, silhouette_statistic
from benchmark.stats.kit import layer_weights, net_curve
from benchmarks._halfsample import effect

ALPHA = 0.05
N_LAYERS = 9
BANDS = {"early": [0, 1, 2], "middle": [3, 4, 5], "late": [6, 7, 8]}


@dataclass(frozen=True)
class Pool:
    """Latents of a large pool of units, and how to draw a sample design of ``size`` units from it."""

    latents: np.ndarray  # [n, L, d]
    factors: dict[str, np.ndarray]
    label: str
    strata: tuple[str, ...]
    units: tuple[str, ...]
    #: unit factor -> how many levels a sample keeps, as a function of the checked size
    sizes: Callable[[int], dict[str, int]]

    def draw(self, size: int, rng: np.random.Generator) -> np.ndarray:
        keep = np.ones(self.latents.shape[0], dtype=bool)
        for unit, k in self.sizes(size).items():
            levels = np.unique(self.factors[unit])
            keep &= np.isin(self.factors[unit], rng.choice(levels, size=k, replace=False))
        return np.flatnonzero(keep)


def _unit_vectors(rng: np.random.Generator, k: int, d: int) -> np.ndarray:
    v = rng.standard_normal((k, d))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def text_pool(
    label: str, n_meanings: int, rng: np.random.Generator, d: int = 24, hetero: float = 0.6
) -> Pool:
    """meaning x language; language structure strong early and late, weak in the middle; meaning the reverse.
    Each meaning's language separation is scaled by its own log-normal factor (sd 0.6)."""
    n_lang = 8
    lang_dir = _unit_vectors(rng, n_lang, d)
    content = _unit_vectors(rng, n_meanings, d)
    strength = np.exp(rng.normal(0.0, hetero, n_meanings))
    beta = np.array([1.2, 1.1, 1.0, 0.5, 0.4, 0.5, 0.9, 1.0, 1.1])  # language, per layer
    gamma = np.array([0.3, 0.4, 0.5, 1.0, 1.1, 1.0, 0.6, 0.5, 0.4])  # meaning, per layer
    m = np.repeat(np.arange(n_meanings), n_lang)
    lang = np.tile(np.arange(n_lang), n_meanings)
    X = np.empty((m.size, N_LAYERS, d))
    for layer in range(N_LAYERS):
        X[:, layer] = (
            beta[layer] * strength[m, None] * lang_dir[lang]
            + gamma[layer] * content[m]
            + 0.55 * rng.standard_normal((m.size, d))
        )
    factors = {"meaning": m.astype(str), "language": lang.astype(str)}
    strata = ("meaning",) if label == "language" else ("language",)
    return Pool(X, factors, label, strata, ("meaning",), lambda size: {"meaning": size})


def grid_pool(
    n_transcripts: int, n_speakers: int, rng: np.random.Generator, d: int = 24, hetero: float = 0.5
) -> Pool:
    """transcript x speaker; transcript structure grows with depth, voices shrink; both vary by unit."""
    content = _unit_vectors(rng, n_transcripts, d)
    voice = _unit_vectors(rng, n_speakers, d)
    c_strength = np.exp(rng.normal(0.0, hetero, n_transcripts))
    v_strength = np.exp(rng.normal(0.0, hetero, n_speakers))
    gamma = np.linspace(0.4, 1.2, N_LAYERS)
    beta = np.linspace(1.2, 0.5, N_LAYERS)
    t = np.repeat(np.arange(n_transcripts), n_speakers)
    s = np.tile(np.arange(n_speakers), n_transcripts)
    X = np.empty((t.size, N_LAYERS, d))
    for layer in range(N_LAYERS):
        X[:, layer] = (
            gamma[layer] * c_strength[t, None] * content[t]
            + beta[layer] * v_strength[s, None] * voice[s]
            + 0.6 * rng.standard_normal((t.size, d))
        )
    factors = {"transcript": t.astype(str), "speaker": s.astype(str)}
    return Pool(
        X,
        factors,
        "transcript",
        ("speaker",),
        ("transcript", "speaker"),
        lambda size: {"transcript": size, "speaker": 3 * size},
    )


#: quantity name -> layer weights of the band contrast it is
QUANTITIES = {
    "early": layer_weights(N_LAYERS, BANDS["early"]),
    "late_minus_early": layer_weights(N_LAYERS, BANDS["late"], BANDS["early"]),
    "early_minus_middle": layer_weights(N_LAYERS, BANDS["early"], BANDS["middle"]),
    "middle_minus_late": layer_weights(N_LAYERS, BANDS["middle"], BANDS["late"]),
}


def _design(pool: Pool, idx: np.ndarray) -> Design:
    return Design(factors={k: v[idx] for k, v in pool.factors.items()}, units=pool.units, strata=pool.strata)


def one_draw(pool: Pool, idx: np.ndarray, rng: np.random.Generator, methods: list[str]) -> dict[str, dict]:
    """Point estimates and bounds of every quantity by every method on one sample."""
    D = pairwise_distances(pool.latents[idx], metric="cosine")
    design = _design(pool, idx)
    stat = silhouette_statistic()
    out: dict[str, dict] = {}
    if "jackknife-t" in methods:
        curve = net_curve(stat, D, design, pool.label, rng=rng, n_perm=200, n_perm_replicate=20)
        for name, w in QUANTITIES.items():
            est = curve.combine(w)
            low, high = est.bounds(ALPHA)
            out.setdefault(name, {})["jackknife-t"] = (est.value, low, high)
            reps = est.replicates
            out[name]["_jack"] = (est.value, est.se, est.df, {f: r.tolist() for f, r in reps.items()})
    if {"halfsample", "halfsample-centred"} & set(methods):
        eff = effect(
            stat,
            D,
            design,
            pool.label,
            rng=rng,
            n_perm=200,
            n_resamples=60,
            n_perm_resample=10,
            confidence=1 - 2 * ALPHA,
        )
        for name, w in QUANTITIES.items():
            value = float(eff.net @ w)
            draws = eff.draws @ w
            low, high = np.quantile(draws, [ALPHA, 1 - ALPHA])
            out.setdefault(name, {})["halfsample"] = (value, float(low), float(high))
            centred = draws - np.median(draws) + value
            low, high = np.quantile(centred, [ALPHA, 1 - ALPHA])
            out[name]["halfsample-centred"] = (value, float(low), float(high))
    return out


def simulate(design: str, size: int, draws: int, seed: int, methods: list[str], hetero: float) -> dict:
    rng = np.random.default_rng(seed)
    if design in ("text", "text-meaning"):
        pool = text_pool(
            "language" if design == "text" else "meaning", max(10 * size, 200), rng, hetero=hetero
        )
    elif design == "grid":
        pool = grid_pool(max(8 * size, 40), max(12 * size, 72), rng, hetero=hetero)
    else:
        raise ValueError(f"unknown design {design!r}")
    rows = []
    started = time.perf_counter()
    for i in range(draws):
        idx = pool.draw(size, rng)
        rows.append(one_draw(pool, idx, rng, methods))
        if (i + 1) % 50 == 0:
            print(
                f"{design} size {size}: {i + 1}/{draws} draws, {time.perf_counter() - started:.0f} s",
                file=sys.stderr,
            )
    result: dict = {
        "design": design,
        "size": size,
        "hetero": hetero,
        "draws": draws,
        "seed": seed,
        "alpha": ALPHA,
        "quantities": {},
    }
    for name in QUANTITIES:
        truth = float(np.mean([r[name][methods[0]][0] for r in rows]))
        per_method = {}
        for method in methods:
            values = np.array([r[name][method] for r in rows])
            per_method[method] = {
                "miss_low": float(np.mean(values[:, 1] > truth)),  # lower bound above the truth
                "miss_high": float(np.mean(values[:, 2] < truth)),  # upper bound below the truth
                "mean_half_width": float(np.mean((values[:, 2] - values[:, 1]) / 2)),
                "sd_estimate": float(values[:, 0].std(ddof=1)),
            }
        result["quantities"][name] = {"truth": truth, "methods": per_method}
    result["per_draw"] = {name: [r[name].get("_jack") for r in rows] for name in QUANTITIES}
    result["seconds"] = time.perf_counter() - started
    return result


def table(paths: list[Path]) -> str:
    from tabulate import tabulate

    rows = []
    for path in paths:
        r = json.loads(path.read_text())
        for name, q in r["quantities"].items():
            for method, m in q["methods"].items():
                ok = abs(m["miss_low"] - r["alpha"]) <= 0.02 and abs(m["miss_high"] - r["alpha"]) <= 0.02
                rows.append(
                    [
                        r["design"],
                        r["size"],
                        name,
                        method,
                        f"{100 * m['miss_low']:.1f}",
                        f"{100 * m['miss_high']:.1f}",
                        f"{m['mean_half_width']:.4f}",
                        f"{m['sd_estimate']:.4f}",
                        r["draws"],
                        "yes" if ok else "no",
                    ]
                )
    headers = [
        "design",
        "units",
        "quantity",
        "method",
        "lower bound above truth %",
        "upper bound below truth %",
        "mean half-width",
        "sd of estimate",
        "draws",
        "within 2 points",
    ]
    return tabulate(rows, headers=headers, tablefmt="github")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--design", choices=["text", "text-meaning", "grid"])
    parser.add_argument("--size", type=int)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hetero", type=float, default=0.6, help="sd of the log unit strengths")
    parser.add_argument("--methods", default="jackknife-t,halfsample,halfsample-centred")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--table", nargs="*", type=Path)
    args = parser.parse_args(argv)
    if args.table:
        print(table(args.table))
        return 0
    result = simulate(args.design, args.size, args.draws, args.seed, args.methods.split(","), args.hetero)
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
