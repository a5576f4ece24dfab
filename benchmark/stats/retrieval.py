"""Retrieval between two groups from a distance matrix: top-1 accuracy, mean reciprocal rank, chance levels.

A query (e.g. an English sentence, or a speech clip) retrieves among all candidates of the target group (e.g.
the German sentences, or the texts); its correct target is the candidate with the same pair id (meaning,
transcript). Ties are broken at random *in expectation*: a correct target tied with ``t - 1`` others at rank
``r`` earns top-1 credit ``1/t`` if ``r == 1`` and reciprocal rank ``mean(1/r .. 1/(r+t-1))``, so a collapsed
layer (all distances equal) scores exactly chance, never perfect.

Ranks are computed once per layer; a permutation of pair ids (the null) then costs one gather, so thousands of
permutations are cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import as_layers, check_codes, encode
from .cluster import Statistic, _stack


def _harmonic(m: np.ndarray) -> np.ndarray:
    """H(m) = sum_{r=1..m} 1/r for integer arrays (H(0) = 0)."""
    top = int(m.max()) if m.size else 0
    table = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, top + 1))])
    return table[m]


def _ranks(Dqt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min and max 1-based ranks of every candidate in every query row: ``[L, q, t]`` each (int)."""
    srt = np.sort(Dqt, axis=-1)
    lo = np.empty(Dqt.shape, dtype=np.int64)
    hi = np.empty(Dqt.shape, dtype=np.int64)
    for layer in range(Dqt.shape[0]):
        for i in range(Dqt.shape[1]):
            lo[layer, i] = np.searchsorted(srt[layer, i], Dqt[layer, i], side="left") + 1
            hi[layer, i] = np.searchsorted(srt[layer, i], Dqt[layer, i], side="right")
    return lo, hi


def _scores(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ties = hi - lo + 1
    top1 = (lo == 1) / ties
    rr = (_harmonic(hi) - _harmonic(lo - 1)) / ties
    return top1, rr


def _targets(pair_q: np.ndarray, pair_t: np.ndarray) -> np.ndarray:
    """Position ``[P, q]`` of each query's correct target among the candidates (pair ids unique per row)."""
    P, t = pair_t.shape
    k = int(max(pair_q.max(), pair_t.max())) + 1
    pos = np.full((P, k), -1, dtype=np.int64)
    pos[np.arange(P)[:, None], pair_t] = np.arange(t)[None, :]
    return np.take_along_axis(pos, pair_q, axis=1)


@dataclass(frozen=True)
class RetrievalResult:
    """Retrieval of one query group in one target group.

    Attributes
    ----------
    top1, mrr : float or array [L]
        Top-1 accuracy and mean reciprocal rank, in [0, 1].
    chance_top1, chance_mrr : float
        Their expectation under random ranking: ``1/t`` and ``H(t)/t`` for ``t`` candidates.
    n_queries, n_candidates : int
    """

    top1: float | np.ndarray
    mrr: float | np.ndarray
    chance_top1: float
    chance_mrr: float
    n_queries: int
    n_candidates: int


def _split(groups: np.ndarray, query: object, target: object, n: int) -> tuple[np.ndarray, np.ndarray]:
    g = np.asarray(groups)
    if g.ndim != 1 or g.shape[0] != n:
        raise ValueError(f"groups must be 1-D with {n} entries; got shape {g.shape}")
    q = np.flatnonzero(g == query)
    t = np.flatnonzero(g == target)
    if q.size == 0 or t.size < 2:
        raise ValueError(
            f"need >= 1 query (groups == {query!r}: {q.size}) and >= 2 candidates (groups == {target!r}: {t.size})"
        )
    if query == target:
        raise ValueError("query and target groups must differ (a sample would retrieve itself)")
    return q, t


def _check_pairs(pair_q: np.ndarray, pair_t: np.ndarray) -> None:
    if np.unique(pair_t).size != pair_t.size:
        raise ValueError("pair ids must be unique within the target group (one correct candidate per query)")
    missing = np.setdiff1d(pair_q, pair_t)
    if missing.size:
        raise ValueError(f"{missing.size} queries have no candidate with their pair id in the target group")


def retrieval(
    D: np.ndarray, pairs: np.ndarray, groups: np.ndarray, *, query: object, target: object
) -> RetrievalResult:
    """Top-1 accuracy and MRR of retrieving ``target``-group samples from ``query``-group samples.

    Parameters
    ----------
    D : array [n, n] or [L, n, n]
        Precomputed distances over all samples.
    pairs : array [n]
        Pair id (meaning, transcript) of each sample; unique within the target group, and every query's id
        must occur there.
    groups : array [n]
        Group of each sample (language, modality).
    query, target : group values
    """
    Dl, single = as_layers(D)
    n = Dl.shape[-1]
    codes, _ = encode(pairs, n, name="pairs")
    q, t = _split(groups, query, target, n)
    _check_pairs(codes[q], codes[t])
    lo, hi = _ranks(Dl[:, q][:, :, t])
    top1_all, rr_all = _scores(lo, hi)
    pos = _targets(codes[q][None], codes[t][None])[0]
    rows = np.arange(q.size)
    top1 = top1_all[:, rows, pos].mean(axis=1)
    mrr = rr_all[:, rows, pos].mean(axis=1)
    return RetrievalResult(
        top1=float(top1[0]) if single else top1,
        mrr=float(mrr[0]) if single else mrr,
        chance_top1=1.0 / t.size,
        chance_mrr=float(_harmonic(np.array([t.size]))[0] / t.size),
        n_queries=int(q.size),
        n_candidates=int(t.size),
    )


def retrieval_statistic(
    groups: np.ndarray, *, query: object, target: object, measure: str = "top1"
) -> Statistic:
    """Retrieval as an inference statistic: the labelling passed in is the pair ids, permuted within groups.

    ``groups`` covers the full design (``index`` selects a resample's part). ``measure`` is "top1" or "mrr".
    Declare the design's permutation strata as the groups so a permuted pair id stays in its group.
    """
    if measure not in ("top1", "mrr"):
        raise ValueError(f"measure must be 'top1' or 'mrr'; got {measure!r}")
    g_all = np.asarray(groups)

    def stat(D: np.ndarray, codes: np.ndarray, index: np.ndarray) -> np.ndarray:
        Dl = _stack(D)
        n = Dl.shape[-1]
        codes = check_codes(codes, n)
        q, t = _split(g_all[index], query, target, n)
        _check_pairs(codes[0, q], codes[0, t])
        lo, hi = _ranks(Dl[:, q][:, :, t])
        score = _scores(lo, hi)[0 if measure == "top1" else 1]  # [L, q, t]
        pos = _targets(codes[:, q], codes[:, t])  # [P, q]
        if (pos < 0).any():
            raise ValueError(
                "a permuted labelling left a query without its pair in the target group; permute within groups"
            )
        vals = score[:, np.arange(q.size)[None, :], pos]  # [L, P, q]
        return vals.mean(axis=2).T

    return stat
