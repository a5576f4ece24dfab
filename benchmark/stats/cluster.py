"""Cluster statistics on precomputed distance matrices, vectorised over label permutations.

Labels move, distances don't: for a stack of labellings ``codes [P, n]`` the one-hot matrix ``M [n, P*k]`` gives
every per-cluster distance sum of every labelling in one batched product ``D @ M``. A permutation null of 1000
labellings on 800 samples x 30 layers is a handful of matrix products instead of 30 000 calls of
``sklearn.metrics.silhouette_score``.

Semantics follow scikit-learn's ``silhouette_samples`` / ``davies_bouldin_score`` (same values on ordinary
data), except that degenerate cases are flagged instead of silently scored: singleton clusters are reported in
``SilhouetteResult.singletons``; Davies-Bouldin of collapsed clusters (a within-scatter of ~0 everywhere, or two
coinciding centroids) is ``nan`` with ``collapsed=True``, never the "perfect" 0.0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.cluster import hierarchy
from scipy.spatial.distance import squareform

from ._checks import as_layers, check_codes, encode

# Bound on the elements of one batched block (float64): 8e6 -> 64 MB per temporary.
_BLOCK_ELEMENTS = 8_000_000
#: Relative tolerance (to the layer's RMS distance) under which scatters / centroid gaps count as zero.
COLLAPSE_RTOL = 1e-6


def _n_clusters(codes: np.ndarray) -> int:
    return int(codes.max()) + 1 if codes.size else 0


def _chunks(P: int, per_perm: int) -> list[slice]:
    step = max(1, _BLOCK_ELEMENTS // max(per_perm, 1))
    return [slice(s, min(s + step, P)) for s in range(0, P, step)]


def _cluster_sums(D: np.ndarray, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample distance sums to each cluster, ``S [L, n, P, k]``, and cluster sizes ``[P, k]``."""
    P, n = codes.shape
    M = np.zeros((n, P, k))
    M[np.arange(n)[:, None], np.arange(P)[None, :], codes.T] = 1.0
    # One GEMM over all layers: [L * n, n] @ [n, P * k].
    S = (np.ascontiguousarray(D).reshape(-1, n) @ M.reshape(n, P * k)).reshape(D.shape[0], n, P, k)
    return S, M.sum(axis=0)


def _silhouette_block(D: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """Per-sample silhouettes ``[P, L, n]`` for a block of labellings (sklearn semantics)."""
    S, counts = _cluster_sums(D, codes, k)  # [L, n, P, k], [P, k]
    own = codes.T  # [n, P]
    own_count = np.take_along_axis(counts, codes, axis=1).T  # [n, P]
    intra_sum = np.take_along_axis(S, own[None, :, :, None], axis=3)[..., 0]  # [L, n, P]
    with np.errstate(divide="ignore", invalid="ignore"):
        intra = intra_sum / (own_count - 1)[None]
        mean_to = S / counts[None, None]  # empty clusters -> inf/nan, masked below
    mask = (counts[None, :, :] == 0) | (np.arange(k)[None, None, :] == own[:, :, None])  # [n, P, k]
    np.copyto(mean_to, np.inf, where=mask[None])  # mean_to is this function's own array: no second copy
    if k <= 8:
        # numpy reduces a short last axis element by element; a few whole-array minima are faster (k = 2: 2.5x)
        # and give the same values (a minimum does not depend on the order it is taken in)
        inter = mean_to[..., 0].copy()
        for c in range(1, k):
            np.minimum(inter, mean_to[..., c], out=inter)
    else:
        inter = mean_to.min(axis=3)
    with np.errstate(divide="ignore", invalid="ignore"):
        sil = (inter - intra) / np.maximum(intra, inter)
    sil = np.where((own_count > 1)[None], sil, 0.0)
    return np.nan_to_num(sil, nan=0.0).transpose(2, 0, 1)


def _check_k(codes: np.ndarray, n: int) -> None:
    ks = np.array([np.unique(row).size for row in codes[:1]])
    if ks.size and not (2 <= ks[0] <= n - 1):
        raise ValueError(
            f"silhouette needs 2 <= number of labels <= n_samples - 1; got {ks[0]} labels for {n} samples"
        )


def silhouette_batch(D: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Mean silhouette for many labellings at once.

    Parameters
    ----------
    D : array [n, n] or [L, n, n]
        Precomputed distances (one or many layers).
    codes : int array [P, n]
        ``P`` labellings as integer codes (e.g. permutations of one labelling). Each must have between 2 and
        ``n - 1`` distinct labels.

    Returns
    -------
    float64 array [P, L]
        Mean silhouette per labelling and layer, in [-1, 1]; singletons count 0 as in scikit-learn.
    """
    Dl, _ = as_layers(D)
    return _silhouette_means(Dl, check_codes(codes, Dl.shape[-1]))


def silhouette_samples_batch(D: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Per-sample silhouettes ``[P, L, n]`` for many labellings (paired designs compare them sample by sample)."""
    Dl, _ = as_layers(D)
    codes = check_codes(codes, Dl.shape[-1])
    _check_k(codes, Dl.shape[-1])
    k = _n_clusters(codes)
    return np.concatenate(
        [_silhouette_block(Dl, codes[sl], k) for sl in _chunks(codes.shape[0], Dl.size * k * 2)]
    )


def _silhouette_means(Dl: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """:func:`silhouette_batch` on validated float64 ``Dl [L, n, n]`` and codes ``[P, n]``."""
    L, n, _ = Dl.shape
    _check_k(codes, n)
    k = _n_clusters(codes)
    out = np.empty((codes.shape[0], L))
    for sl in _chunks(codes.shape[0], L * n * k * 2):
        out[sl] = _silhouette_block(Dl, codes[sl], k).mean(axis=2)
    return out


@dataclass(frozen=True)
class SilhouetteResult:
    """Silhouette of one labelling.

    Attributes
    ----------
    mean : float or array [L]
        Mean silhouette in [-1, 1] (best 1); equals ``sklearn.metrics.silhouette_score`` on the same distances.
    per_sample : array [n] or [L, n]
        Per-sample silhouettes (``silhouette_samples``); singleton members are 0 there.
    levels : array [k]
        Label values, in code order.
    singletons : tuple
        Labels with a single member: their 0 is a convention, not a measurement. Check before trusting ``mean``.
    """

    mean: float | np.ndarray
    per_sample: np.ndarray
    levels: np.ndarray
    singletons: tuple


def silhouette(D: np.ndarray, labels: np.ndarray) -> SilhouetteResult:
    """Silhouette from a precomputed distance matrix (one layer ``[n, n]`` or a stack ``[L, n, n]``).

    Defined for ``2 <= n_labels <= n - 1``. Singleton clusters are flagged in the result.
    """
    Dl, single = as_layers(D)
    codes, levels = encode(labels, Dl.shape[-1])
    _check_k(codes[None], Dl.shape[-1])
    per = _silhouette_block(Dl, codes[None], levels.size)[0]  # [L, n]
    counts = np.bincount(codes, minlength=levels.size)
    singletons = tuple(levels[counts == 1].tolist())
    mean = per.mean(axis=1)
    return SilhouetteResult(
        mean=float(mean[0]) if single else mean,
        per_sample=per[0] if single else per,
        levels=levels,
        singletons=singletons,
    )


def _squared(D: np.ndarray, squared: bool) -> np.ndarray:
    return D if squared else D * D


def _db_block(D2: np.ndarray, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Davies-Bouldin ``[P, L]`` and a collapsed flag ``[P, L]`` from squared Euclidean distances ``D2``."""
    R, counts = _cluster_sums(D2, codes, k)  # [L, n, P, k]
    P, n = codes.shape
    onehot = np.zeros((P, n, k))
    onehot[np.arange(P)[:, None], np.arange(n)[None, :], codes] = 1.0
    G = np.einsum("pia,lipb->lpab", onehot, R)  # pair sums of squared distances between clusters
    with np.errstate(divide="ignore", invalid="ignore"):
        cc = counts[:, :, None] * counts[:, None, :]
        G = G / cc[None]
        W = np.diagonal(
            G, axis1=2, axis2=3
        )  # [L, P, k]: mean within-pair D2 = 2 * mean sq. dist. to centroid
        # ||x_i - c_a||^2 = mean_j D2_ij - W_a / 2 (for i's own cluster a).
        own = codes.T
        r_own = np.take_along_axis(R, own[None, :, :, None], axis=3)[..., 0]  # [L, n, P]
        own_count = np.take_along_axis(counts, codes, axis=1).T
        W_own = np.take_along_axis(W.transpose(0, 2, 1), own[None], axis=1)  # [L, n, P]
        to_centroid = np.sqrt(np.maximum(r_own / own_count[None] - W_own / 2.0, 0.0))
        to_centroid = np.where(own_count[None] > 1, to_centroid, 0.0)  # a singleton is its own centroid
        scatter = np.einsum("lip,pia->lpa", to_centroid, onehot) / counts[None]  # [L, P, k]
        cen2 = G - W[..., :, None] / 2.0 - W[..., None, :] / 2.0
        cen = np.sqrt(np.maximum(cen2, 0.0))
    scale = np.sqrt(np.maximum(D2.mean(axis=(1, 2)), 1e-300))[:, None]  # [L, 1]
    present = counts > 0  # [P, k]
    pair = present[:, :, None] & present[:, None, :] & ~np.eye(k, dtype=bool)[None]
    tiny_gap = np.where(pair[None], cen <= COLLAPSE_RTOL * scale[..., None, None], False).any(axis=(2, 3))
    no_scatter = np.where(present[None], scatter <= COLLAPSE_RTOL * scale[..., None], True).all(axis=2)
    collapsed = tiny_gap | no_scatter
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (scatter[..., :, None] + scatter[..., None, :]) / cen
    ratio = np.where(pair[None], ratio, -np.inf)
    db = np.where(present[None], ratio.max(axis=3), 0.0).sum(axis=2) / present.sum(axis=1)[None]
    db = np.where(collapsed, np.nan, db)
    return db.T, collapsed.T


def davies_bouldin_batch(
    D: np.ndarray, codes: np.ndarray, *, squared: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Davies-Bouldin index for many labellings at once, from Euclidean distances.

    Centroids never need the features: with ``D2`` the squared distances, ``||x_i - c_a||^2 =
    mean_{j in a} D2_ij - mean_{j,j' in a} D2_jj' / 2`` and ``||c_a - c_b||^2`` likewise, so the index is exact
    for any Euclidean ``D`` (for cosine distances pass ``2 * D_cos`` with ``squared=True``: the index of the
    unit-normalised latents).

    Parameters
    ----------
    D : array [n, n] or [L, n, n]
        Euclidean distances (or squared ones with ``squared=True``).
    codes : int array [P, n]
        Labellings with at least 2 distinct labels.
    squared : bool
        Whether ``D`` already holds squared distances.

    Returns
    -------
    db : float64 array [P, L]
        Index in [0, inf), lower is better; ``nan`` where collapsed.
    collapsed : bool array [P, L]
        All within-cluster scatters ~0, or two centroids closer than ``COLLAPSE_RTOL`` x the RMS distance.
    """
    Dl, _ = as_layers(D)
    return _db_values(Dl, check_codes(codes, Dl.shape[-1]), squared=squared)


def _db_values(Dl: np.ndarray, codes: np.ndarray, *, squared: bool) -> tuple[np.ndarray, np.ndarray]:
    """:func:`davies_bouldin_batch` on validated float64 ``Dl [L, n, n]`` and codes ``[P, n]``."""
    L, n, _ = Dl.shape
    if np.unique(codes[0]).size < 2:
        raise ValueError("Davies-Bouldin needs at least 2 distinct labels")
    D2 = _squared(Dl, squared)
    k = _n_clusters(codes)
    db = np.empty((codes.shape[0], L))
    col = np.empty((codes.shape[0], L), dtype=bool)
    for sl in _chunks(codes.shape[0], L * n * k * 3):
        db[sl], col[sl] = _db_block(D2, codes[sl], k)
    return db, col


@dataclass(frozen=True)
class DaviesBouldinResult:
    """Davies-Bouldin index of one labelling: ``score`` (lower is better, ``nan`` if collapsed), ``collapsed``."""

    score: float | np.ndarray
    collapsed: bool | np.ndarray


def davies_bouldin(D: np.ndarray, labels: np.ndarray, *, squared: bool = False) -> DaviesBouldinResult:
    """Davies-Bouldin index of one labelling from Euclidean distances (see :func:`davies_bouldin_batch`)."""
    Dl, single = as_layers(D)
    codes, _ = encode(labels, Dl.shape[-1])
    db, col = davies_bouldin_batch(Dl, codes[None], squared=squared)
    if single:
        return DaviesBouldinResult(score=float(db[0, 0]), collapsed=bool(col[0, 0]))
    return DaviesBouldinResult(score=db[0], collapsed=col[0])


def group_distance_table(
    D: np.ndarray, labels: np.ndarray, *, kind: str = "mean"
) -> tuple[np.ndarray, np.ndarray]:
    """Distances between groups: ``(levels [k], table [k, k] or [L, k, k])``.

    ``kind="mean"``: mean distance over pairs of distinct samples, one from each group (diagonal: within-group
    mean over distinct pairs, ``nan`` for singletons); valid for any dissimilarity. ``kind="centroid"``:
    Euclidean distance between group centroids, exact when ``D`` is Euclidean (scale-free if ``D`` is).
    """
    if kind not in ("mean", "centroid"):
        raise ValueError(f"kind must be 'mean' or 'centroid'; got {kind!r}")
    Dl, single = as_layers(D)
    codes, levels = encode(labels, Dl.shape[-1])
    k = levels.size
    M = np.eye(k)[codes]  # [n, k]
    counts = M.sum(axis=0)
    src = Dl if kind == "mean" else Dl * Dl
    sums = np.einsum("ia,lij,jb->lab", M, src, M)
    with np.errstate(divide="ignore", invalid="ignore"):
        pairs = counts[:, None] * counts[None, :] - np.diag(counts)
        table = sums / (pairs if kind == "mean" else counts[:, None] * counts[None, :])[None]
        if kind == "centroid":
            W = np.diagonal(table, axis1=1, axis2=2)
            table = np.sqrt(np.maximum(table - W[:, :, None] / 2 - W[:, None, :] / 2, 0.0))
            table[:, np.arange(k), np.arange(k)] = 0.0
    return levels, table[0] if single else table


def pairwise_separability(D: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-label silhouette for every pair of labels: ``(levels [k], table [k, k] or [L, k, k])``.

    Entry ``(a, b)`` is the mean silhouette of the samples labelled ``a`` or ``b`` with only those two labels
    (e.g. how separable en and de are); the diagonal is ``nan``. Each label needs at least 2 members.
    """
    Dl, single = as_layers(D)
    codes, levels = encode(labels, Dl.shape[-1])
    counts = np.bincount(codes, minlength=levels.size)
    if levels.size < 2 or counts.min() < 2:
        raise ValueError(
            f"labels need >= 2 labels with >= 2 members each; counts: {dict(zip(levels.tolist(), counts.tolist(), strict=True))}"
        )
    table = np.full((Dl.shape[0], levels.size, levels.size), np.nan)
    for a in range(levels.size):
        for b in range(a + 1, levels.size):
            idx = np.flatnonzero((codes == a) | (codes == b))
            sub = Dl[:, idx][:, :, idx]
            val = silhouette_batch(sub, (codes[idx] == b).astype(np.int64)[None])[0]
            table[:, a, b] = table[:, b, a] = val
    return levels, table[0] if single else table


@dataclass(frozen=True)
class HierarchyResult:
    """Average-linkage dendrogram of one layer.

    Attributes
    ----------
    linkage : array [n - 1, 4]
        scipy linkage matrix (for figures: ``scipy.cluster.hierarchy.dendrogram``).
    purity : float
        Top-split purity in (0, 1]: cut the tree into ``k`` clusters (``k`` = number of labels) and take
        ``sum_c max_label count(c) / n``. 1 when the top ``k`` branches are the ``k`` labels.
    cophenetic : float
        Pearson correlation between cophenetic and original distances (how faithful the tree is); ``nan`` if
        all distances are equal.
    """

    linkage: np.ndarray
    purity: float
    cophenetic: float


def hierarchical(D: np.ndarray, labels: np.ndarray, *, method: str = "average") -> HierarchyResult:
    """Hierarchical clustering of one layer's precomputed distances ``[n, n]`` (scipy, average linkage)."""
    if method not in ("average", "complete", "single", "weighted"):
        raise ValueError(f"method must be a linkage valid for precomputed distances; got {method!r}")
    Dl, single = as_layers(D)
    if not single:
        raise ValueError(f"hierarchical takes one layer's distances [n, n]; got shape {np.shape(D)}")
    codes, levels = encode(labels, Dl.shape[-1])
    if levels.size < 2:
        raise ValueError("labels need at least 2 distinct values for a top-split purity")
    condensed = squareform(Dl[0], checks=False)
    Z = hierarchy.linkage(condensed, method=method)
    cut = hierarchy.fcluster(Z, t=levels.size, criterion="maxclust")
    table = np.zeros((cut.max() + 1, levels.size))
    np.add.at(table, (cut, codes), 1)
    purity = float(table.max(axis=1).sum() / codes.size)
    coph = hierarchy.cophenet(Z)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (
            float(np.corrcoef(coph, condensed)[0, 1])
            if condensed.std() > 0 and coph.std() > 0
            else float("nan")
        )
    return HierarchyResult(linkage=Z, purity=purity, cophenetic=corr)


Statistic = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""A statistic for :mod:`benchmark.stats.inference`: ``stat(D [L, m, m], codes [P, m], index [m]) -> [P, L]``.

``index`` holds the positions of the ``m`` samples in the full design (so a statistic can look up fixed side
information, e.g. group membership, for a resample). ``D`` must already be validated float64 ``[L, m, m]``
(:func:`benchmark.stats.inference.effect` checks it once): statistics skip the O(L m^2) re-check. A statistic
that reads only blocks may instead take the design's full ``[L, n, n]`` and restrict through ``index``
(``net_curve(..., reads_blocks=True)``; see ``benchmark.stats.scores._block``)."""


def _stack(D: np.ndarray) -> np.ndarray:
    if isinstance(D, np.ndarray) and D.ndim == 2:
        D = D[None]
    if not (isinstance(D, np.ndarray) and D.dtype == np.float64 and D.ndim == 3 and D.shape[1] == D.shape[2]):
        raise ValueError(
            "a Statistic takes validated float64 distances [L, m, m] or [m, m] (as passed by effect)"
        )
    return D


def silhouette_statistic() -> Statistic:
    """Mean silhouette as an inference statistic (greater = more clustered)."""

    def stat(D: np.ndarray, codes: np.ndarray, index: np.ndarray) -> np.ndarray:
        del index
        Dl = _stack(D)
        return _silhouette_means(Dl, check_codes(codes, Dl.shape[-1]))

    return stat


def davies_bouldin_statistic(*, squared: bool = False) -> Statistic:
    """Negated Davies-Bouldin index as an inference statistic (greater = more clustered).

    Collapsed labellings raise, because a collapsed layer is a pipeline error (see :mod:`.gate`), not a value.
    """

    def stat(D: np.ndarray, codes: np.ndarray, index: np.ndarray) -> np.ndarray:
        del index
        Dl = _stack(D)
        db, col = _db_values(Dl, check_codes(codes, Dl.shape[-1]), squared=squared)
        if col.any():
            raise ValueError(
                "Davies-Bouldin: collapsed clusters (coinciding centroids or zero scatter); see gate"
            )
        return -db

    return stat
