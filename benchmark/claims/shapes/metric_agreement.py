"""Metric agreement (Q1): do silhouette, Davies-Bouldin (negated) and the dendrogram rank the layers alike?

Why a shape of its own: the quantity is a statistic of whole curves over the blocks, not of one layer. For each
metric, the curve of language clustering over ``block0..block{L-1}``; for each pair of metrics, the Spearman
rank correlation of their curves; the effect is the smallest pairwise correlation (every pair must agree), with
no netting: a null-corrected correlation would let anti-correlated metrics pass whenever their null is
anti-correlated too. The interval is the delete-one-unit jackknife of each pair's correlation (intersection-union
over the pairs). The secondary p-value tests agreement against curves that keep their own autocorrelation:
one curve is shifted circularly against the other.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
from scipy.cluster import hierarchy
from scipy.spatial.distance import squareform
from scipy.stats import rankdata

from benchmark.claims.data import Budget, ClaimData
from benchmark.claims.shapes import Measured
from benchmark.claims.spec import MetricAgreement
from benchmark.stats import davies_bouldin_batch, pairwise_distances, silhouette_batch
from benchmark.stats.kit import Estimate, Reduction


def _purity(D: np.ndarray, codes: np.ndarray) -> float:
    k = int(codes.max()) + 1
    Z = hierarchy.linkage(squareform(D, checks=False), method="average")
    cut = hierarchy.fcluster(Z, t=k, criterion="maxclust") - 1
    table = np.zeros((int(cut.max()) + 1, k))
    np.add.at(table, (cut, codes), 1.0)
    return float(table.max(axis=1).sum() / codes.size)


def _cophenetic_separation(D: np.ndarray, codes: np.ndarray) -> float:
    """Point-biserial correlation of the average-linkage tree's merge heights with "different label".

    Why this reading of a dendrogram rather than top-split purity: purity counts whole points in the top k
    clusters, so it moves in steps of 1/n and stays flat at chance until the clusters dominate the top of the
    tree; its curve over layers is then mostly rank noise. The cophenetic heights average over every pair, so
    the score is continuous in the data and reads weak clustering too (0: the tree ignores the labels).
    """
    Z = hierarchy.linkage(squareform(D, checks=False), method="average")
    heights = hierarchy.cophenet(Z)
    i, j = np.triu_indices(codes.size, k=1)
    differ = (codes[i] != codes[j]).astype(np.float64)
    if differ.std() == 0 or heights.std() == 0:
        return 0.0
    return float(np.corrcoef(heights, differ)[0, 1])


def metric_curves(D: np.ndarray, codes: np.ndarray, metrics: list[str]) -> np.ndarray:
    """``[metrics, blocks]`` curves of one labelling (greater = more clustered for every metric)."""
    out = []
    for metric in metrics:
        if metric == "silhouette":
            out.append(silhouette_batch(D, codes[None])[0])
        elif metric == "neg_davies_bouldin":
            db, collapsed = davies_bouldin_batch(2.0 * D, codes[None], squared=True)
            if collapsed.any():
                raise ValueError(
                    "Davies-Bouldin: collapsed clusters in some layer (the gate should catch this)"
                )
            out.append(-db[0])
        elif metric == "cophenetic_separation":
            out.append(np.array([_cophenetic_separation(D[i], codes) for i in range(D.shape[0])]))
        else:
            out.append(np.array([_purity(D[i], codes) for i in range(D.shape[0])]))
    return np.stack(out)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = rankdata(a) - (a.size + 1) / 2, rankdata(b) - (b.size + 1) / 2
    den = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / den) if den > 0 else 0.0  # a flat curve ranks nothing: no agreement


def _correlations(curves: np.ndarray) -> np.ndarray:
    return np.array([_spearman(curves[i], curves[j]) for i, j in combinations(range(curves.shape[0]), 2)])


def _blocks(data: ClaimData) -> np.ndarray:
    first = data.layer_index("block0")
    return np.arange(first, first + data.num_blocks)


def _setup(measure: MetricAgreement, data: ClaimData, D: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    codes = np.unique(data.labels(measure.label).astype(str), return_inverse=True)[1].reshape(-1)
    if D is None:
        D = pairwise_distances(np.asarray(data.latents, dtype=np.float64), metric=measure.metric)
    return np.ascontiguousarray(D[_blocks(data)]), codes


def point_parts(
    measure: MetricAgreement, data: ClaimData, rng: np.random.Generator, D: np.ndarray | None = None
) -> np.ndarray:
    """Each metric pair's Spearman correlation (the parts the effect is the minimum of)."""
    del rng
    Db, codes = _setup(measure, data, D)
    return _correlations(metric_curves(Db, codes, list(measure.metrics)))


def point_value(
    measure: MetricAgreement, data: ClaimData, rng: np.random.Generator, D: np.ndarray | None = None
) -> float:
    return float(point_parts(measure, data, rng, D).min())


def evaluate(
    measure: MetricAgreement,
    data: ClaimData,
    budget: Budget,
    rng: np.random.Generator,
    *,
    alpha: float = 0.05,
    figures: dict[str, list[str]] | None = None,
) -> Measured:
    del budget
    Db, codes = _setup(measure, data, None)
    metrics = list(measure.metrics)
    curves = metric_curves(Db, codes, metrics)
    # Purity is drawn beside the deciding curves (Fig. 13's dendrogram reading), never decided on: see
    # ``_cophenetic_separation`` for why.
    shown = (
        {}
        if "top_split_purity" in metrics
        else {"top_split_purity": metric_curves(Db, codes, ["top_split_purity"])[0]}
    )
    observed = _correlations(curves)
    replicates: list[dict[str, np.ndarray]] = [{} for _ in observed]
    n_units: dict[str, int] = {}
    for unit in measure.units:
        values = data.labels(unit).astype(str)
        levels = np.unique(values)
        n_units[unit] = levels.size
        reps = np.empty((levels.size, observed.size))
        for i, level in enumerate(levels):
            keep = np.flatnonzero(values != level)
            sub = np.ascontiguousarray(Db[:, keep][:, :, keep])
            reps[i] = _correlations(
                metric_curves(sub, np.unique(codes[keep], return_inverse=True)[1], metrics)
            )
        for k in range(observed.size):
            replicates[k][unit] = reps[:, k]
    # Null keeping each curve's autocorrelation: every circular shift of the second curve against the first.
    L = curves.shape[1]
    pairs = list(combinations(range(len(metrics)), 2))
    shifted = np.array(
        [[_spearman(curves[i], np.roll(curves[j], s)) for s in range(1, L)] for i, j in pairs]
    )  # [pairs, L - 1]
    parts = tuple(
        Estimate(value=float(observed[k]), replicates=replicates[k], null=shifted[k])
        for k in range(observed.size)
    )
    names = tuple(f"{metrics[i]}~{metrics[j]}" for i, j in pairs)
    reduction = Reduction("min", parts, names)
    numbers: dict[str, float] = {}
    for name, est in zip(names, parts, strict=True):
        low, high = est.bounds(alpha)
        numbers |= {
            f"spearman/{name}": est.value,
            f"spearman/{name}/ci_low": low,
            f"spearman/{name}/ci_high": high,
        }
    payloads: dict[str, Any] = {"dendrogram": {"labels": data.labels(measure.label).tolist()}}
    for token in (figures or {}).get("dendrogram_layers", []):
        name = {"middle": f"block{data.num_blocks // 2}"}.get(token, token)
        if name in data.layers:
            D_full = pairwise_distances(np.asarray(data.latents[:, data.layer_index(name)], dtype=np.float64))
            Z = hierarchy.linkage(squareform(D_full, checks=False), method="average")
            payloads["dendrogram"][name] = np.round(Z, 5).tolist()
    units = ", ".join(f"{n} {u}" for u, n in n_units.items())
    return Measured(
        reduction=reduction,
        n_units=n_units,
        n_samples=len(data.samples),
        resampling=(
            f"delete-one-unit jackknife over {units} of each pairwise Spearman correlation of the metrics' curves "
            "over the blocks (studentised); min over the pairs as an intersection-union test; secondary p-value "
            f"against circular shifts of one curve ({L - 1} shifts), which keep each curve's autocorrelation"
        ),
        curves={
            f"{m}/{measure.label}/blocks": c.tolist()
            for m, c in [*zip(metrics, curves, strict=True), *shown.items()]
        },
        numbers={k: v for k, v in numbers.items() if np.isfinite(v)},
        payloads=payloads,
    )
