"""Analysis throughput: the claims' statistics (``benchmark.stats.kit``) versus the same numbers from scikit-learn.

Data: a synthetic but realistically shaped latent set of ``n / 8`` meanings x 8 languages x 19 layers x
``d = 640`` (gemma-3-270m's shape), where language identity fades and meaning grows with depth. Claims:
silhouette of language (cosine), Davies-Bouldin of language (Euclidean), en->de retrieval top-1 of meaning
(cosine), each as the claims compute it: a net curve over every layer (the statistic minus its mean under the
label permuted within strata) with its delete-one-meaning jackknife replicates, each replicate with its own
permutations from the same random keys.

The naive side computes the *identical* set of numbers: the same labellings (drawn from the kit's own keys),
each evaluated on every layer and every jackknife subset with ``sklearn.metrics`` on distances recomputed per
layer, subset and claim. Both sides' nets, nulls and replicates are asserted equal, so the speed-up is for the
same answer.

Sizes: ``LALM_BENCH_KIT_N`` (96: text-parallel's ci design; 304 is its full design), ``LALM_BENCH_KIT_PERM``
(200) and ``LALM_BENCH_KIT_PERM_REP`` (20): the claims' ``ci`` budget; ``LALM_BENCH_ROUNDS`` (3).
(The earlier case measured the subsample-interval path the claims used before the inference kit; that path is
gone from the library, and with it the case.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from _harness import FIGURES, Interleaved, enforce_targets, env_int, load_average, threads

from benchmark.stats import (
    Design,
    davies_bouldin_statistic,
    kit,
    pairwise_distances,
    retrieval_statistic,
    silhouette_statistic,
)

pytestmark = pytest.mark.benchmark

LAYERS, DIM, LANGUAGES = 19, 640, ("en", "fr", "de", "zh", "ja", "id", "vi", "es")
SEED = 20240


@dataclass(frozen=True)
class Claim:
    """One claim of the benchmark: statistic name, labelled factor, permutation strata, distance metric."""

    name: str
    label: str
    strata: tuple[str, ...]
    metric: str


CLAIMS = (
    Claim("silhouette", "language", ("meaning",), "cosine"),
    Claim("davies_bouldin", "language", ("meaning",), "euclidean"),
    Claim("retrieval", "meaning", ("language",), "cosine"),
)


def synthetic_latents(n: int, rng: np.random.Generator) -> tuple[np.ndarray, Design]:
    """``[n, 19, 640]`` float32 latents of ``n / 8`` meanings in 8 languages, and their design."""
    meanings = n // len(LANGUAGES)
    language = np.tile(np.array(LANGUAGES), meanings)
    meaning = np.repeat(np.array([f"m{i:04d}" for i in range(meanings)]), len(LANGUAGES))
    depth = np.linspace(0.0, 1.0, LAYERS)[None, :, None]
    lang_vec = rng.normal(size=(len(LANGUAGES), 1, DIM))[np.tile(np.arange(len(LANGUAGES)), meanings)]
    mean_vec = rng.normal(size=(meanings, 1, DIM))[np.repeat(np.arange(meanings), len(LANGUAGES))]
    offset = rng.normal(size=(1, LAYERS, DIM)) * 3.0  # a shared direction, as real residual streams have
    noise = rng.normal(size=(meaning.size, LAYERS, DIM))
    latents = offset + (1.2 - depth) * lang_vec + (0.2 + depth) * mean_vec + 1.5 * noise
    design = Design({"meaning": meaning, "language": language}, units=("meaning",), strata=())
    return latents.astype(np.float32), design


def _statistic(claim: Claim, design: Design) -> Any:
    if claim.name == "silhouette":
        return silhouette_statistic()
    if claim.name == "davies_bouldin":
        return davies_bouldin_statistic()
    return retrieval_statistic(design.factors["language"], query="en", target="de")


# ---- the naive side ---------------------------------------------------------------------------------------------


def _sklearn_value(
    claim: Claim, X: np.ndarray, D: np.ndarray, labels: np.ndarray, language: np.ndarray
) -> float:
    """One statistic of one layer for one labelling, the scikit-learn way."""
    from sklearn.metrics import davies_bouldin_score, silhouette_score

    if claim.name == "silhouette":
        return float(silhouette_score(D, labels, metric="precomputed"))
    if claim.name == "davies_bouldin":
        return -float(davies_bouldin_score(X, labels))
    queries, targets = np.flatnonzero(language == "en"), np.flatnonzero(language == "de")
    hits = 0.0
    for q in queries:
        row = D[q, targets]
        correct = row[labels[targets] == labels[q]][0]
        better, ties = int((row < correct).sum()), int((row == correct).sum())
        hits += (better == 0) / ties
    return hits / queries.size


# ---- the claims' own path: net curves with a delete-one-unit jackknife (benchmark.stats.kit) -------------------


def _kit_settings() -> dict[str, int]:
    """The claims' ``ci`` budget by default (``benchmark.claims.data.Budget.for_profile``)."""
    return {
        "n_perm": env_int("LALM_BENCH_KIT_PERM", 200),
        "n_perm_replicate": env_int("LALM_BENCH_KIT_PERM_REP", 20),
    }


def suite_kit(latents: np.ndarray, design: Design) -> dict[str, kit.NetCurve]:
    """What a band-contrast claim computes: distances once per metric, then one ``net_curve`` per claim."""
    distances = {m: pairwise_distances(latents, metric=m) for m in {c.metric for c in CLAIMS}}
    return {
        claim.name: kit.net_curve(
            _statistic(claim, design),
            distances[claim.metric],
            design,
            claim.label,
            rng=np.random.default_rng(SEED),
            strata=claim.strata,
            **_kit_settings(),
        )
        for claim in CLAIMS
    }


def naive_kit(latents: np.ndarray, design: Design) -> dict[str, dict[str, np.ndarray]]:
    """The same numbers with scikit-learn: per claim, layer, jackknife replicate and labelling, distances and the
    statistic recomputed (the labellings come from the kit's own key draws, so both sides score the same ones)."""
    from sklearn.metrics import pairwise_distances as sk_distances

    settings = _kit_settings()
    language = design.factors["language"]
    units, _levels = design.codes("meaning")
    everyone = np.ones(design.n, dtype=bool)
    out = {}

    def scores(claim: Claim, labellings: kit._Labellings, keep: np.ndarray, rows: int | None) -> np.ndarray:
        """``[1 + P, layers]``: every labelling of the kept samples, scored layer by layer."""
        labels_rows = labellings.rows(keep, rows)
        store = np.empty((labels_rows.shape[0], LAYERS))
        for layer in range(LAYERS):
            X = latents[keep, layer].astype(np.float64)
            D = sk_distances(X, metric=claim.metric)
            np.fill_diagonal(D, 0.0)
            for p, labels in enumerate(labels_rows):
                store[p, layer] = _sklearn_value(claim, X, D, labels, language[keep])
        return store

    for claim in CLAIMS:
        labellings = kit._Labellings(
            design, claim.label, claim.strata, None, settings["n_perm"], np.random.default_rng(SEED)
        )
        subsets = [(everyone, None)] + [
            (units != i, settings["n_perm_replicate"]) for i in range(_levels.size)
        ]
        values = [scores(claim, labellings, keep, rows) for keep, rows in subsets]
        full = values[0]
        null_mean = full[1:].mean(axis=0)
        ref_mean = full[1 : 1 + settings["n_perm_replicate"]].mean(axis=0)
        reps = np.stack([v[0] - v[1:].mean(axis=0) for v in values[1:]]) + (ref_mean - null_mean)[None]
        out[claim.name] = {"net": full[0] - null_mean, "null": full[1:], "replicates": reps}
    return out


def _kit_difference(suite: dict[str, kit.NetCurve], naive: dict[str, dict[str, np.ndarray]]) -> float:
    worst = 0.0
    for name, mine in suite.items():
        theirs = naive[name]
        worst = max(
            worst,
            float(np.abs(mine.net - theirs["net"]).max()),
            float(np.abs(mine.null - theirs["null"]).max()),
            float(np.abs(mine.replicates["meaning"] - theirs["replicates"]).max()),
        )
    return worst


def test_analysis_claims_kit(benchmark: Any) -> None:
    """The path the claims run (net curve, permutation null, delete-one-meaning jackknife) against scikit-learn
    computing the identical numbers. Target: >= 10x. Default size: text-parallel's ci design (12 meanings x 8
    languages) at the ci budget; ``LALM_BENCH_KIT_N=304`` is its full design."""
    load_before = load_average()
    latents, design = synthetic_latents(env_int("LALM_BENCH_KIT_N", 96), np.random.default_rng(0))
    runner = Interleaved(
        {"naive": lambda: naive_kit(latents, design), "suite": lambda: suite_kit(latents, design)},
        threads=threads(),
    )
    benchmark.pedantic(runner.one_round, rounds=env_int("LALM_BENCH_ROUNDS", 3), iterations=1)
    difference = _kit_difference(runner.runs["suite"][-1].result, runner.runs["naive"][-1].result)
    speedup = runner.median_seconds("naive") / runner.median_seconds("suite")
    settings = _kit_settings()
    meanings = design.n // len(LANGUAGES)
    figures = {
        "inputs": design.n,
        "layers": LAYERS,
        "dim": DIM,
        "claims": [c.name for c in CLAIMS],
        **settings,
        "labellings_per_claim_per_layer": 1
        + settings["n_perm"]
        + meanings * (1 + settings["n_perm_replicate"]),
        "naive_seconds": runner.median_seconds("naive"),
        "suite_seconds": runner.median_seconds("suite"),
        "speedup": speedup,
        "max_abs_difference": difference,
        "rounds": len(runner.rate),
        "threads": runner.threads,
        "targets": {"speedup>=10": speedup >= 10},
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    FIGURES[f"analysis/kit/{design.n}x{LAYERS}x{DIM}"] = figures
    benchmark.extra_info.update(figures)
    assert difference < 1e-8
    if enforce_targets():
        assert all(figures["targets"].values()), figures["targets"]
