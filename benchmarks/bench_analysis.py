"""Analysis throughput: the suite's statistics versus the same statistics computed with scikit-learn.

Data: a synthetic but realistically shaped latent set, ``n = 800`` inputs (100 meanings x 8 languages) x 19
layers x ``d = 640`` (gemma-3-270m's shape), where language identity fades and meaning grows with depth.
Claims: silhouette of language (cosine), Davies-Bouldin of language (Euclidean), en->de retrieval top-1 of
meaning (cosine), each as a net effect over every layer with a permutation null and subsample intervals.

The naive side computes the *identical* set of numbers: it draws the same permutations and subsamples (same
seed, same calls, in the order ``benchmark.stats.effect`` makes them) and evaluates every labelling of every
layer with ``sklearn.metrics`` on distances recomputed per layer and per claim. Both sides' net effects,
nulls and subsample draws are asserted equal, so the speed-up is for the same answer.

Sizes: ``LALM_BENCH_ANALYSIS_N`` (800), ``LALM_BENCH_PERM`` (50 permutations), ``LALM_BENCH_RESAMPLES`` (10
subsamples with ``LALM_BENCH_PERM_RESAMPLE`` = 4 permutations each), ``LALM_BENCH_ROUNDS`` (3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from _harness import FIGURES, Interleaved, enforce_targets, env_int, load_average, threads

from benchmark.stats import (
    Design,
    Effect,
    davies_bouldin_statistic,
    effect,
    pairwise_distances,
    permutation_indices,
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


def _settings() -> dict[str, int]:
    return {
        "n_perm": env_int("LALM_BENCH_PERM", 50),
        "n_resamples": env_int("LALM_BENCH_RESAMPLES", 10),
        "n_perm_resample": env_int("LALM_BENCH_PERM_RESAMPLE", 4),
    }


def _statistic(claim: Claim, design: Design) -> Any:
    if claim.name == "silhouette":
        return silhouette_statistic()
    if claim.name == "davies_bouldin":
        return davies_bouldin_statistic()
    return retrieval_statistic(design.factors["language"], query="en", target="de")


def suite_analysis(latents: np.ndarray, design: Design) -> dict[str, Effect]:
    """Distances once per metric for all layers, then one ``effect`` per claim (the suite's way)."""
    distances = {m: pairwise_distances(latents, metric=m) for m in {c.metric for c in CLAIMS}}
    out = {}
    for claim in CLAIMS:
        out[claim.name] = effect(
            _statistic(claim, design),
            distances[claim.metric],
            design,
            claim.label,
            rng=np.random.default_rng(SEED),
            strata=claim.strata,
            **_settings(),
        )
    return out


# ---- the naive side --------------------------------------------------------------------------------------------


def _labellings(
    design: Design, claim: Claim
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]], float]:
    """The labellings ``effect`` evaluates, drawn with the same generator calls in the same order."""
    settings = _settings()
    rng = np.random.default_rng(SEED)
    codes = design.codes(claim.label)[0]
    strata = design.strata_codes(claim.strata)
    full = codes[permutation_indices(strata, settings["n_perm"], rng=rng, n=design.n)]
    resamples = design.subsample(settings["n_resamples"], rng=rng)
    subs = []
    for idx in resamples.indices:
        sub_strata = None if strata is None else strata[idx]
        perm = permutation_indices(sub_strata, settings["n_perm_resample"], rng=rng, n=idx.size)
        subs.append((idx, np.vstack([codes[idx][None], codes[idx][perm]])))
    return np.vstack([codes[None], full]), subs, resamples.correction


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


def naive_analysis(latents: np.ndarray, design: Design) -> dict[str, dict[str, np.ndarray]]:
    """Per claim, per layer: sklearn distances, then sklearn statistics for every labelling."""
    from sklearn.metrics import pairwise_distances as sk_distances

    language = design.factors["language"]
    out = {}
    for claim in CLAIMS:
        full, subs, correction = _labellings(design, claim)
        values = np.empty((full.shape[0], LAYERS))
        sub_values = [np.empty((labels.shape[0], LAYERS)) for _, labels in subs]
        for layer in range(LAYERS):
            X = latents[:, layer].astype(np.float64)
            D = sk_distances(X, metric=claim.metric)
            np.fill_diagonal(D, 0.0)
            for p, labels in enumerate(full):
                values[p, layer] = _sklearn_value(claim, X, D, labels, language)
            for (idx, labellings), store in zip(subs, sub_values, strict=True):
                for p, labels in enumerate(labellings):
                    store[p, layer] = _sklearn_value(
                        claim, X[idx], D[np.ix_(idx, idx)], labels, language[idx]
                    )
        net = values[0] - values[1:].mean(axis=0)
        draws = np.stack([net + correction * ((s[0] - s[1:].mean(axis=0)) - net) for s in sub_values])
        out[claim.name] = {"net": net, "null": values[1:], "draws": draws}
    return out


def _max_difference(suite: dict[str, Effect], naive: dict[str, dict[str, np.ndarray]]) -> float:
    worst = 0.0
    for name, mine in suite.items():
        for field_name in ("net", "null", "draws"):
            worst = max(worst, float(np.abs(getattr(mine, field_name) - naive[name][field_name]).max()))
    return worst


def test_analysis_all_claims_all_layers(benchmark: Any) -> None:
    """Target: the suite is at least 10x faster than scikit-learn per layer per labelling, same numbers."""
    load_before = load_average()
    latents, design = synthetic_latents(env_int("LALM_BENCH_ANALYSIS_N", 800), np.random.default_rng(0))
    runner = Interleaved(
        {"naive": lambda: naive_analysis(latents, design), "suite": lambda: suite_analysis(latents, design)},
        threads=threads(),
    )
    benchmark.pedantic(runner.one_round, rounds=env_int("LALM_BENCH_ROUNDS", 3), iterations=1)
    difference = _max_difference(runner.runs["suite"][-1].result, runner.runs["naive"][-1].result)
    speedup = runner.median_seconds("naive") / runner.median_seconds("suite")
    settings = _settings()
    labellings = (1 + settings["n_perm"]) + settings["n_resamples"] * (1 + settings["n_perm_resample"])
    figures = {
        "inputs": design.n,
        "layers": LAYERS,
        "dim": DIM,
        "claims": [c.name for c in CLAIMS],
        **settings,
        "labellings_per_claim_per_layer": labellings,
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
    FIGURES["analysis/800x19x640"] = figures
    benchmark.extra_info.update(figures)
    assert difference < 1e-8
    if enforce_targets():
        assert all(figures["targets"].values()), figures["targets"]
