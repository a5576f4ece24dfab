"""Scores: the statistics of a labelling that claims declare by name, as the inference kit consumes them.

A score turns a claim's samples into a :class:`ScorePlan`: which rows enter the distance matrices (a block
design may repeat a sample in several blocks), the factors of those rows, the labelling whose structure is
measured (permuted for the null) and its strata, and a :data:`benchmark.stats.cluster.Statistic` whose output
columns are ``tags x layers`` (tag-major: a score that measures several things at once, e.g. the language
silhouette inside text and inside speech, tags its column groups ``text`` and ``speech``).

Kinds (``SCORES``):

``silhouette``
    Mean silhouette of ``label`` (greater = more clustered).
``cellwise_silhouette``
    Silhouette computed inside each cell of ``cells`` (e.g. inside one voice, or one transcript x device), then
    averaged weighted by cell size: every cluster member then differs in the cell factors only.
``subset_difference``
    Silhouette of ``label`` on the samples with ``axis == first`` minus on those with ``axis == second``.
``by_subset``
    Silhouette of ``label`` inside each value of ``axis`` (tags = the values).
``pair_separability``
    Two-label silhouette of each pair of ``axis`` values (each pair its own block of the design, so a sample of
    a shared language appears once per block and distances are taken inside a block only); tags ``a-b``.
``retrieval``
    Rank retrieval score ``2 AUC - 1`` of each query's partner (same ``label``) among the target candidates:
    queries and targets are selected by ``query``/``target`` filters, and paired by ``groups`` (``same``: the
    target has the query's group, e.g. speech -> text in the same language; ``different``: every other group,
    e.g. text -> its translations). Free of the candidate count, 0 at chance.
``pair_distance_contrast``
    On a full content x speaker x device grid: mean distance of pairs that differ in one factor only, divided by
    the mean distance of pairs that differ in all three; each contrast is ``more - less`` (tags = contrast names).
``role_contrast``
    Within each pair of a paraphrase design: ``(d(anchor, c) - d(anchor, paraphrase)) / max(...)`` for each
    contrast role ``c`` (tags = the roles).
``mean_distance``
    The mean pairwise distance (no label, no null): scale-free growth across depth.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .cluster import Statistic, silhouette_batch

#: separator of a multi-factor cell key
_SEP = "\x1f"


@dataclass(frozen=True)
class ScorePlan:
    """What the kit needs to compute one score on a claim's samples (see the module docstring)."""

    rows: np.ndarray
    factors: dict[str, np.ndarray]
    statistic: Statistic
    tags: tuple[str, ...]
    label: str | None
    strata: tuple[str, ...] = ()
    permute_level: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: the statistic reads blocks of the design's full distance matrix through ``index`` (see :func:`_block`)
    #: instead of taking a resample's restricted copy, which a jackknife replicate would otherwise build
    reads_blocks: bool = False


class ScoreError(ValueError):
    """The samples cannot carry this score (a design requirement fails); the message names what is missing."""


def _codes(values: np.ndarray) -> np.ndarray:
    return np.unique(np.asarray(values).astype(str), return_inverse=True)[1].reshape(-1).astype(np.int64)


def combine_keys(factors: Mapping[str, np.ndarray], names: Sequence[str]) -> np.ndarray:
    """One string key per row for the combination of several factors."""
    if not names:
        return np.zeros(len(next(iter(factors.values()))), dtype=object)
    cols = [np.asarray(factors[n]).astype(str) for n in names]
    return np.array([_SEP.join(parts) for parts in zip(*cols, strict=True)], dtype=object)


def _silhouette(D: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Silhouette ``[P, L]`` of labellings whose first row has >= 2 labels (others permute it)."""
    k = np.unique(codes[0]).size
    if k < 2 or k > codes.shape[1] - 1:
        raise ScoreError(
            f"a silhouette needs 2 <= labels <= members - 1; got {k} labels for {codes.shape[1]}"
        )
    return silhouette_batch(D, codes)


def _block(D: np.ndarray, index: np.ndarray, rows: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
    """Distances ``[L, len(rows), len(cols)]`` between a resample's positions ``rows`` and ``cols`` (default:
    ``rows``).

    ``D`` is either the resample's own matrix (``m x m``, ``m = len(index)``) or the design's full one, read
    through ``index`` (the resample's positions in it); the sizes tell which, and a full resample is both. The
    full matrix gives the same values as restricting it to the resample first, without that ``[L, m, m]`` copy:
    statistics built from blocks (cells, subsets, query x target) read a small part of it."""
    if D.shape[-1] != index.size:
        rows, cols = index[rows], None if cols is None else index[cols]
    return D[np.ix_(np.arange(D.shape[0]), rows, rows if cols is None else cols)]


def _require(factors: Mapping[str, np.ndarray], *names: str) -> None:
    missing = [n for n in names if n not in factors]
    if missing:
        raise ScoreError(f"needs axis {', '.join(missing)}")


# ------------------------------------------------------------------------------------------------ kinds


def silhouette(factors: dict[str, np.ndarray], *, label: str, strata: Sequence[str] = ()) -> ScorePlan:
    _require(factors, label, *strata)

    def stat(D: np.ndarray, codes: np.ndarray, index: np.ndarray) -> np.ndarray:
        del index
        return _silhouette(D, codes)

    n = len(factors[label])
    return ScorePlan(np.arange(n), dict(factors), stat, ("",), label, tuple(strata))


def cellwise_silhouette(
    factors: dict[str, np.ndarray],
    *,
    label: str,
    cells: Sequence[str],
    strata: Sequence[str] = (),
    permute_level: str | None = None,
) -> ScorePlan:
    _require(factors, label, *cells, *strata)
    cell_all = _codes(combine_keys(factors, cells))

    def stat(D: np.ndarray, codes: np.ndarray, index: np.ndarray) -> np.ndarray:
        cell = cell_all[index]
        total, weight = np.zeros((codes.shape[0], D.shape[0])), 0
        for level in np.unique(cell):
            sel = np.flatnonzero(cell == level)
            k = np.unique(codes[0, sel]).size
            if 2 <= k <= sel.size - 1:
                total += sel.size * silhouette_batch(_block(D, index, sel), codes[:, sel])
                weight += sel.size
        if weight == 0:
            raise ScoreError(
                f"no {'x'.join(cells)} cell has >= 2 {label} labels and more members than labels"
            )
        return total / weight

    n = len(factors[label])
    return ScorePlan(
        np.arange(n), dict(factors), stat, ("",), label, tuple(strata), permute_level, reads_blocks=True
    )


def subset_difference(
    factors: dict[str, np.ndarray],
    *,
    label: str,
    axis: str,
    first: str,
    second: str,
    strata: Sequence[str] = (),
) -> ScorePlan:
    _require(factors, label, axis, *strata)
    part_all = np.asarray(factors[axis]).astype(str)
    present = set(part_all.tolist())
    for value in (first, second):
        if value not in present:
            raise ScoreError(f"needs {axis}={value!r}; the samples have {sorted(present)}")

    def stat(D: np.ndarray, codes: np.ndarray, index: np.ndarray) -> np.ndarray:
        part = part_all[index]
        a, b = np.flatnonzero(part == first), np.flatnonzero(part == second)
        return _silhouette(_block(D, index, a), codes[:, a]) - _silhouette(_block(D, index, b), codes[:, b])

    n = len(factors[label])
    return ScorePlan(np.arange(n), dict(factors), stat, ("",), label, (axis, *strata), reads_blocks=True)


def by_subset(
    factors: dict[str, np.ndarray],
    *,
    label: str,
    axis: str,
    values: Sequence[str],
    strata: Sequence[str] = (),
) -> ScorePlan:
    _require(factors, label, axis, *strata)
    part_all = np.asarray(factors[axis]).astype(str)
    missing = [v for v in values if v not in set(part_all.tolist())]
    if missing:
        raise ScoreError(f"needs {axis} values {missing}")

    def stat(D: np.ndarray, codes: np.ndarray, index: np.ndarray) -> np.ndarray:
        part = part_all[index]
        out = []
        for value in values:
            rows = np.flatnonzero(part == value)
            out.append(_silhouette(_block(D, index, rows), codes[:, rows]))
        return np.concatenate(out, axis=1)

    n = len(factors[label])
    return ScorePlan(
        np.arange(n), dict(factors), stat, tuple(values), label, (axis, *strata), reads_blocks=True
    )


def pair_separability(
    factors: dict[str, np.ndarray],
    *,
    axis: str,
    pairs: Sequence[Sequence[str]],
    strata: Sequence[str] = (),
) -> ScorePlan:
    _require(factors, axis, *strata)
    values = np.asarray(factors[axis]).astype(str)
    missing = sorted({v for p in pairs for v in p} - set(values.tolist()))
    if missing:
        raise ScoreError(f"needs {axis} values {missing}; the samples have {sorted(set(values.tolist()))}")
    rows, blocks = [], []
    for k, (a, b) in enumerate(pairs):
        sel = np.flatnonzero((values == a) | (values == b))
        rows.append(sel)
        blocks.append(np.full(sel.size, k))
    row_index = np.concatenate(rows)
    block = np.concatenate(blocks)
    expanded = {name: np.asarray(v)[row_index] for name, v in factors.items()}
    expanded["_block"] = block.astype(str)
    n_pairs = len(pairs)

    def stat(D: np.ndarray, codes: np.ndarray, index: np.ndarray) -> np.ndarray:
        blk = block[index]
        out = np.empty((codes.shape[0], n_pairs, D.shape[0]))
        for k in range(n_pairs):
            m = np.flatnonzero(blk == k)
            c = codes[:, m]
            out[:, k] = _silhouette(_block(D, index, m), (c == c[0].max()).astype(np.int64))
        return out.reshape(codes.shape[0], -1)

    tags = tuple(f"{a}-{b}" for a, b in pairs)
    return ScorePlan(row_index, expanded, stat, tags, axis, ("_block", *strata), reads_blocks=True)


def _candidate_scores(Dqt: np.ndarray) -> np.ndarray:
    """``2 AUC - 1`` of every candidate as if it were the query's partner: ``[L, q, t]`` (ties count one half).

    Why a table: the null only moves which candidate is the partner, never the distances, so each candidate's
    count of farther and tied candidates is computed once per block (a sort, ``O(t log t)`` a query) and every
    labelling then reads its partner's entry, instead of comparing all ``t`` candidates once per labelling.
    The counts are the same integers a direct comparison gives, so the scores are the same to the bit."""
    t = Dqt.shape[-1]
    order = np.argsort(Dqt, axis=-1, kind="stable")
    ranked = np.take_along_axis(Dqt, order, axis=-1)
    position = np.broadcast_to(np.arange(t), ranked.shape)
    starts = np.ones(ranked.shape, dtype=bool)
    starts[..., 1:] = ranked[..., 1:] != ranked[..., :-1]
    # for each sorted position: where its run of equal distances begins (= candidates strictly closer) ...
    first = np.maximum.accumulate(np.where(starts, position, 0), axis=-1)
    ends = np.ones(ranked.shape, dtype=bool)
    ends[..., :-1] = starts[..., 1:]
    # ... and where it ends (+1 = candidates at most as far)
    last = np.flip(np.minimum.accumulate(np.flip(np.where(ends, position, t - 1), axis=-1), axis=-1), axis=-1)
    farther_sorted = t - 1 - last
    ties_sorted = last - first
    farther = np.empty_like(farther_sorted)
    ties = np.empty_like(ties_sorted)
    np.put_along_axis(farther, order, farther_sorted, axis=-1)
    np.put_along_axis(ties, order, ties_sorted, axis=-1)
    return 2.0 * (farther + 0.5 * ties) / (t - 1) - 1.0


def _rank_score(Dqt: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``2 AUC - 1`` of each query's correct candidate against the others: ``[L, P, q]`` (ties count one half)."""
    by_query = np.ascontiguousarray(_candidate_scores(Dqt).transpose(1, 2, 0))  # [q, t, L]
    picked = by_query[np.arange(Dqt.shape[1])[None, :], pos]  # [P, q, L]
    # Laid out as the direct comparison's result was (layers fastest, then queries), so the caller's sum over
    # queries adds in the same order: a sum's last bit depends on the memory order numpy reduces in.
    return picked.transpose(2, 0, 1)


def _target_positions(pair_q: np.ndarray, pair_t: np.ndarray) -> np.ndarray:
    P, t = pair_t.shape
    table = np.full((P, int(max(pair_q.max(), pair_t.max())) + 1), -1, dtype=np.int64)
    table[np.arange(P)[:, None], pair_t] = np.arange(t)[None, :]
    pos = np.take_along_axis(table, pair_q, axis=1)
    if (pos < 0).any():
        raise ScoreError(
            "retrieval: a query's partner is missing among its candidates (the design is not crossed)"
        )
    return pos


def _select(factors: Mapping[str, np.ndarray], where: Mapping[str, str]) -> np.ndarray:
    keep = np.ones(len(next(iter(factors.values()))), dtype=bool)
    for axis, value in where.items():
        keep &= np.asarray(factors[axis]).astype(str) == str(value)
    return keep


def retrieval(
    factors: dict[str, np.ndarray],
    *,
    label: str,
    query: Mapping[str, str],
    target: Mapping[str, str],
    groups: str,
    pairing: str,
    within: str | None = None,
    strata: Sequence[str] = (),
) -> ScorePlan:
    """Queries of group ``a`` retrieve among targets of group ``b`` (``pairing``: ``same`` pairs a group with
    itself, ``different`` with every other group), and only among targets sharing the query's ``within`` value."""
    if pairing not in ("same", "different"):
        raise ValueError(f"retrieval pairing must be 'same' or 'different'; got {pairing!r}")
    _require(factors, label, groups, *query, *target, *strata, *([within] if within else []))
    q_all, t_all = _select(factors, query), _select(factors, target)
    if not q_all.any() or t_all.sum() < 2:
        raise ScoreError(f"retrieval needs queries {dict(query)} and >= 2 targets {dict(target)}")
    g_all = np.asarray(factors[groups]).astype(str)
    w_all = np.asarray(factors[within]).astype(str) if within else np.zeros(g_all.size, dtype=str)
    levels = sorted(set(g_all[q_all].tolist()) | set(g_all[t_all].tolist()))
    group_pairs = (
        [(a, a) for a in levels] if pairing == "same" else [(a, b) for a in levels for b in levels if a != b]
    )
    if not group_pairs:
        raise ScoreError(f"retrieval across {groups} needs >= 2 {groups} values")
    cells = sorted(set(w_all.tolist()))

    def stat(D: np.ndarray, codes: np.ndarray, index: np.ndarray) -> np.ndarray:
        g, w, qm, tm = g_all[index], w_all[index], q_all[index], t_all[index]
        total = np.zeros((D.shape[0], codes.shape[0]))
        weight = 0
        for cell in cells:
            for a, b in group_pairs:
                q = np.flatnonzero(qm & (g == a) & (w == cell))
                t = np.flatnonzero(tm & (g == b) & (w == cell))
                if q.size == 0 or t.size < 2:
                    continue
                pos = _target_positions(codes[:, q], codes[:, t])
                total += _rank_score(_block(D, index, q, t), pos).sum(axis=2)
                weight += q.size
        if weight == 0:
            raise ScoreError("retrieval: no group pair has queries and >= 2 candidates")
        return (total / weight).T

    n = len(factors[label])
    return ScorePlan(np.arange(n), dict(factors), stat, ("",), label, tuple(strata), reads_blocks=True)


#: pair type -> (same content, same speaker, same device)
PAIR_TYPES: dict[str, tuple[bool, bool, bool]] = {
    "device": (True, True, False),
    "speaker": (True, False, True),
    "content": (False, True, True),
    "all_differ": (False, False, False),
}


def pair_type_means(
    D: np.ndarray, codes: np.ndarray, sizes: Sequence[int], kinds: Sequence[str]
) -> dict[str, np.ndarray]:
    """Mean distance ``[P, L]`` over pairs of each type for labellings of grid cells ``codes [P, m]``."""
    S, V = sizes[1], sizes[2]
    parts = (codes // (S * V), (codes // V) % S, codes % V)
    out = {name: np.zeros((codes.shape[0], D.shape[0])) for name in kinds}
    step = max(1, 4_000_000 // max(codes.shape[1] ** 2, 1))
    for start in range(0, codes.shape[0], step):
        rows = slice(start, start + step)
        same = [p[rows, :, None] == p[rows, None, :] for p in parts]
        for name in kinds:
            mask = np.ones_like(same[0])
            for s, want in zip(same, PAIR_TYPES[name], strict=True):
                mask &= s if want else ~s
            count = mask.sum(axis=(1, 2))
            if (count == 0).any():
                raise ScoreError(f"no pairs of type {name!r}; the grid needs >= 2 levels of every factor")
            out[name][rows] = np.einsum("lij,pij->pl", D, mask.astype(np.float64)) / count[:, None]
    return out


def pair_distance_contrast(
    factors: dict[str, np.ndarray], *, grid: Sequence[str], contrasts: Mapping[str, Sequence[str]]
) -> ScorePlan:
    """``grid`` names the content, speaker and device factors; each contrast is ``[more, less]`` pair types."""
    if len(grid) != 3:
        raise ValueError(f"pair_distance_contrast needs grid = [content, speaker, device]; got {list(grid)}")
    _require(factors, *grid)
    codes, sizes = [], []
    for axis in grid:
        levels, c = np.unique(np.asarray(factors[axis]).astype(str), return_inverse=True)
        codes.append(c.reshape(-1))
        sizes.append(levels.size)
    cell = np.zeros(len(codes[0]), dtype=np.int64)
    for c, size in zip(codes, sizes, strict=True):
        cell = cell * size + c
    if np.unique(cell).size != cell.size or cell.size != int(np.prod(sizes)):
        raise ScoreError(
            f"{' x '.join(grid)} must form a full grid with one sample per cell; got {cell.size} samples in "
            f"{np.unique(cell).size} of {int(np.prod(sizes))} cells"
        )
    for name, (more, less) in contrasts.items():
        for kind in (more, less):
            if kind not in PAIR_TYPES:
                raise ValueError(f"contrast {name!r}: unknown pair type {kind!r}; known {sorted(PAIR_TYPES)}")
    kinds = sorted({k for pair in contrasts.values() for k in pair} | {"all_differ"})
    extended = dict(factors)
    extended["_cell"] = cell.astype(str)
    # The null permutes whole cells across the grid: the labelling is each sample's cell, and the statistic
    # decodes a (permuted) cell label back into its (content, speaker, device) levels.
    code_to_cell = np.array([int(v) for v in np.unique(cell.astype(str))], dtype=np.int64)

    def stat(D: np.ndarray, labels: np.ndarray, index: np.ndarray) -> np.ndarray:
        del index
        t = pair_type_means(D, code_to_cell[labels], sizes, kinds)
        scale = t["all_differ"]
        out = []
        for more, less in contrasts.values():
            diff = t[more] - t[less]
            out.append(np.divide(diff, scale, out=np.zeros_like(diff), where=scale > 0))
        return np.concatenate(out, axis=1)

    return ScorePlan(np.arange(cell.size), extended, stat, tuple(contrasts), "_cell", (), None)


ROLES = ("anchor", "paraphrase", "adversarial", "unrelated")


def role_contrast(
    factors: dict[str, np.ndarray], *, pair: str, role: str, contrasts: Sequence[str]
) -> ScorePlan:
    _require(factors, pair, role)
    pairs, roles = np.asarray(factors[pair]).astype(str), np.asarray(factors[role]).astype(str)
    unknown = sorted(set(roles.tolist()) - set(ROLES))
    if unknown:
        raise ScoreError(f"{role} has values {unknown} outside {ROLES}")
    for pid in np.unique(pairs):
        got = sorted(roles[pairs == pid].tolist())
        if got != sorted(ROLES):
            raise ScoreError(f"{pair} {pid!r} has roles {got}; needs exactly one of each of {list(ROLES)}")
    for c in contrasts:
        if c not in ROLES[2:]:
            raise ValueError(f"role_contrast: contrast role must be adversarial or unrelated; got {c!r}")
    pair_codes = _codes(pairs)
    role_levels = sorted(set(roles.tolist()))
    role_of = {r: role_levels.index(r) for r in ROLES}

    def stat(D: np.ndarray, codes: np.ndarray, index: np.ndarray) -> np.ndarray:
        g = np.unique(pair_codes[index], return_inverse=True)[1].reshape(-1)
        G = int(g.max()) + 1
        P, m = codes.shape
        pos = np.empty((P, G, 4), dtype=np.int64)
        pos[np.arange(P)[:, None], g[None, :], codes] = np.arange(m)[None, :]

        def mean_d(a: int, b: int) -> np.ndarray:
            return D[:, pos[:, :, a], pos[:, :, b]].mean(axis=2)  # [L, P]

        d_para = mean_d(role_of["anchor"], role_of["paraphrase"])
        out = []
        for c in contrasts:
            d_c = mean_d(role_of["anchor"], role_of[c])
            den = np.maximum(d_c, d_para)
            rel = np.divide(d_c - d_para, den, out=np.zeros_like(den), where=den > 0)
            out.append(rel.T)
        return np.concatenate(out, axis=1)

    n = len(pairs)
    return ScorePlan(np.arange(n), dict(factors), stat, tuple(contrasts), role, (pair,))


def mean_distance(factors: dict[str, np.ndarray]) -> ScorePlan:
    def stat(D: np.ndarray, codes: np.ndarray, index: np.ndarray) -> np.ndarray:
        m = D.shape[-1]
        value = D.sum(axis=(1, 2)) / (m * (m - 1))
        return np.repeat(value[None], codes.shape[0], axis=0)

    n = len(next(iter(factors.values())))
    return ScorePlan(np.arange(n), dict(factors), stat, ("",), None)


SCORES: dict[str, Callable[..., ScorePlan]] = {
    "silhouette": silhouette,
    "cellwise_silhouette": cellwise_silhouette,
    "subset_difference": subset_difference,
    "by_subset": by_subset,
    "pair_separability": pair_separability,
    "retrieval": retrieval,
    "pair_distance_contrast": pair_distance_contrast,
    "role_contrast": role_contrast,
    "mean_distance": mean_distance,
}


def build_score(kind: str, factors: dict[str, np.ndarray], params: Mapping[str, Any]) -> ScorePlan:
    """The plan of score ``kind`` with ``params`` on the claim's factors."""
    if kind not in SCORES:
        raise ValueError(f"unknown score {kind!r}; known: {sorted(SCORES)}")
    return SCORES[kind](factors, **params)
