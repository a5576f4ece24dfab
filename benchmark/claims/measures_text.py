"""Measures of the text claims T1-T7 and Q1 (paper section 5.1, Table 1, Figures 3-5 and 13).

Every measure is a pure function ``(ClaimData, params, rng, budget) -> Measurement`` with ONE primary effect,
oriented so that a presence rule reads "effect > delta". Effects are net of a label-permutation null within the
claim's strata, and intervals come from subsampling the design's top-level units without replacement
(:func:`benchmark.stats.effect`). Intervals are two-sided at ``1 - 2 alpha``: each bound is a one-sided ``alpha``
bound, which is what the rule reads (lower bound for ``holds``, upper bound for ``fails``).

Controls (:func:`controls`) build semi-synthetic latents from real ones: ``shuffle`` permutes latents within the
claim's strata (or, for T2, replaces every layer by a rescaled copy of ``block0``); ``plant`` adds
label-dependent offsets scaled to each layer's spread and solves for their scale until the measure's point estimate
equals the requested size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.cluster import hierarchy
from scipy.spatial.distance import squareform
from scipy.stats import kendalltau, rankdata, spearmanr

from benchmark.claims.data import Budget, ClaimData, Controls, controls, measure
from benchmark.claims.record import Measurement
from benchmark.claims.solve import REL_TOL, plant_scale
from benchmark.stats import (
    Design,
    Effect,
    davies_bouldin_batch,
    effect,
    hierarchical,
    p_value,
    pairwise_distances,
    pairwise_separability,
    retrieval,
    silhouette_batch,
    silhouette_statistic,
    tsne_2d,
)

ROLES = ("anchor", "paraphrase", "adversarial", "unrelated")
PILOT = Budget(n_perm=50, n_resamples=1, n_perm_resample=1, name="pilot")


# ----------------------------------------------------------------------------------------------- helpers


def _alpha(params: dict[str, Any]) -> float:
    alpha = float(params.get("alpha", 0.05))
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"params['alpha'] must lie in (0, 0.5); got {alpha}")
    return alpha


def _one_variant(data: ClaimData) -> None:
    """Refuse mixed probe variants: punct and nopunct copies of one sentence would count twice."""
    variants = {s.variant for s in data.samples}
    if len(variants) > 1:
        raise ValueError(
            f"ClaimData mixes probe variants {sorted(map(str, variants))}; select the spec's variant first"
        )


@dataclass(frozen=True)
class _Layers:
    """Positions in ``data.layers`` of emb, the blocks, final_norm and the bands (as positions)."""

    emb: int
    blocks: np.ndarray
    final: int
    bands: dict[str, np.ndarray]

    def pos(self, data: ClaimData, name: str) -> int:
        if name not in data.layers:
            raise ValueError(f"layer {name!r} is not among the latents' layers {data.layers}")
        return data.layers.index(name)


def _layers(data: ClaimData) -> _Layers:
    for name in ("emb", "block0", "final_norm"):
        if name not in data.layers:
            raise ValueError(f"latents lack layer {name!r}; have {data.layers}")
    first = data.layers.index("block0")
    return _Layers(
        emb=data.layers.index("emb"),
        blocks=np.arange(first, first + data.num_blocks),
        final=data.layers.index("final_norm"),
        bands={k: v + first for k, v in data.bands().items()},
    )


def _weights(
    n_layers: int, plus: np.ndarray | list[int], minus: np.ndarray | list[int] | None = None
) -> np.ndarray:
    """Column weights of ``mean(plus) - mean(minus)`` over layer positions."""
    w = np.zeros(n_layers)
    w[np.asarray(plus)] += 1.0 / len(plus)
    if minus is not None:
        w[np.asarray(minus)] -= 1.0 / len(minus)
    return w


@dataclass(frozen=True)
class _Agg:
    """An aggregate of an Effect's columns: estimate, corrected subsample draws [B], centred null [P]."""

    estimate: float
    draws: np.ndarray
    null: np.ndarray

    def interval(self, alpha: float) -> tuple[float, float]:
        """Percentile interval of the draws re-centred on the estimate (their median moved onto it).

        Half-subsamples have fewer clusters than the full design, so a net silhouette on them can sit off the
        full-data value; centring removes that bias (seen on planted controls of T4: the lower bound equalled
        the estimate)."""
        centred = self.draws - np.median(self.draws) + self.estimate
        lo, hi = np.quantile(centred, [alpha, 1.0 - alpha])
        return float(lo), float(hi)

    def p(self) -> float:
        return float(p_value(self.estimate, self.null))


def _min_of(eff: Effect, W: np.ndarray) -> _Agg:
    """Minimum over the contrasts ``W [K, L]`` of the net effect, with the same minimum per draw and per null."""
    W = np.atleast_2d(W)
    centred = eff.null - eff.null_mean
    return _Agg(
        estimate=float((eff.net @ W.T).min()),
        draws=(eff.draws @ W.T).min(axis=1),
        null=(centred @ W.T).min(axis=1),
    )


def _run_effect(
    stat: Any,
    D: np.ndarray,
    design: Design,
    label: str,
    strata: tuple[str, ...],
    rng: np.random.Generator,
    budget: Budget,
    alpha: float,
) -> Effect:
    return effect(
        stat,
        D,
        design,
        label,
        rng=rng,
        n_perm=budget.n_perm,
        n_resamples=budget.n_resamples,
        n_perm_resample=budget.n_perm_resample,
        strata=strata,
        confidence=1.0 - 2.0 * alpha,
    )


def _finite(values: dict[str, float]) -> dict[str, float]:
    """Drop non-finite secondary numbers (records are written with allow_nan=False)."""
    return {k: float(v) for k, v in values.items() if np.isfinite(v)}


def _interval_text(alpha: float, units: str, budget: Budget, strata: str) -> str:
    return (
        f"{budget.n_resamples} half-subsamples of {units} without replacement (rescaled deviations, re-centred so "
        f"their median is the estimate), percentile interval at {100 * (1 - 2 * alpha):.0f}% two-sided = one-sided {100 * alpha:.0f}% bounds; null from "
        f"{budget.n_perm} permutations {strata}"
    )


def _measurement(
    agg: _Agg, *, alpha: float, n_units: int, n_samples: int, budget: Budget, resampling: str, **extra: Any
) -> Measurement:
    lo, hi = agg.interval(alpha)
    return Measurement(
        effect=agg.estimate,
        ci_low=lo,
        ci_high=hi,
        p_value=agg.p(),
        n_units=n_units,
        n_samples=n_samples,
        n_boot=budget.n_resamples,
        n_perm=budget.n_perm,
        resampling=resampling,
        **extra,
    )


def _tsne_payload(
    data: ClaimData,
    layer_names: list[str],
    label_axes: list[str],
    rng: np.random.Generator,
    max_points: int = 300,
) -> dict[str, Any]:
    """2-D t-SNE of a few layers (figures only), on at most ``max_points`` samples."""
    n = len(data.samples)
    keep = np.sort(rng.choice(n, size=min(n, max_points), replace=False))
    out: dict[str, Any] = {"labels": {a: data.labels(a)[keep].tolist() for a in label_axes}, "layers": {}}
    for name in layer_names:
        Y = tsne_2d(
            data.latents[keep, data.layers.index(name)], rng=rng, perplexity=min(30.0, (keep.size - 1) / 3)
        )
        out["layers"][name] = np.round(Y, 3).tolist()
    return out


def _parallel_design(data: ClaimData) -> Design:
    """meaning x language design of the parallel text set; meanings are the resampling units."""
    return Design(
        factors={"meaning": data.labels("meaning_id"), "language": data.labels("language")},
        units=("meaning",),
    )


def _net_silhouette_curve(
    D: np.ndarray, design: Design, label: str, strata: tuple[str, ...], rng: np.random.Generator, n_perm: int
) -> np.ndarray:
    """Silhouette minus its permutation-null mean, per layer (for curves; no interval)."""
    codes = design.codes(label)[0]
    perm = design.permute(label, n_perm, rng=rng, strata=strata)
    return silhouette_batch(D, codes[None])[0] - silhouette_batch(D, perm).mean(axis=0)


# ----------------------------------------------------------------------------------------------- T1


def _paraphrase_design(data: ClaimData) -> tuple[Design, np.ndarray]:
    """pair x role design; checks that every pair has exactly one sample of each of the four roles."""
    pairs, roles = data.labels("pair_id"), data.labels("pair_role")
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ValueError(f"pair_role has values {unknown} outside {ROLES}")
    for pid in np.unique(pairs):
        got = sorted(roles[pairs == pid])
        if got != sorted(ROLES):
            raise ValueError(f"pair_id {pid!r} has roles {got}; need exactly one of each of {ROLES}")
    design = Design(factors={"pair": pairs, "role": roles}, units=("pair",), strata=("pair",))
    levels = list(design.codes("role")[1])
    return design, np.array([levels.index(r) for r in ROLES])


def _role_distances(D: np.ndarray, pair_codes: np.ndarray, role_codes: np.ndarray) -> np.ndarray:
    """Mean within-pair distance between every two roles: ``[L, P, 4, 4]`` (role order as in the codes)."""
    P, m = role_codes.shape
    g_inv = np.unique(pair_codes, return_inverse=True)[1]
    G = int(g_inv.max()) + 1
    pos = np.empty((P, G, 4), dtype=np.int64)
    pos[np.arange(P)[:, None], g_inv[None, :], role_codes] = np.arange(m)[None, :]
    out = np.empty((D.shape[0], P, 4, 4))
    for a in range(4):
        for b in range(4):
            out[:, :, a, b] = D[:, pos[:, :, a], pos[:, :, b]].mean(axis=2)
    return out


def _relative(d_other: np.ndarray, d_para: np.ndarray) -> np.ndarray:
    """``(d_other - d_para) / max(d_other, d_para)`` in [-1, 1]; 0 where both are 0 (e.g. identical ``emb``)."""
    den = np.maximum(d_other, d_para)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (d_other - d_para) / np.where(den > 0, den, 1.0), 0.0)


def _paraphrase_stat(pair_codes: np.ndarray, role_of: np.ndarray) -> Callable[..., np.ndarray]:
    """Relative contrasts ``(d(anchor, c) - d(anchor, para)) / max(both)`` for c in (adversarial,
    unrelated), per layer: columns ``[layer * 2 + contrast]``."""
    a, p, v, u = role_of

    def stat(D: np.ndarray, codes: np.ndarray, index: np.ndarray) -> np.ndarray:
        R = _role_distances(D, pair_codes[index], codes)  # [L, P, 4, 4] in code order
        d_p, d_v, d_u = R[:, :, a, p], R[:, :, a, v], R[:, :, a, u]
        rel = np.stack([_relative(d_v, d_p), _relative(d_u, d_p)], axis=-1)  # [L, P, 2]
        return rel.transpose(1, 0, 2).reshape(codes.shape[0], -1)

    return stat


def _table(rows: list[str], cols: list[str], values: np.ndarray) -> dict[str, Any]:
    return {"rows": rows, "cols": cols, "values": np.round(np.asarray(values, dtype=float), 5).tolist()}


@measure("paraphrase_contrast")
def paraphrase_contrast(
    data: ClaimData, params: dict[str, Any], rng: np.random.Generator, budget: Budget
) -> Measurement:
    """T1: min over {adversarial, unrelated} x {block0, final_norm} of the relative distance contrast."""
    _one_variant(data)
    alpha, lay = _alpha(params), _layers(data)
    metric = params.get("metric", "cosine")
    layer_names = list(params.get("layers", ["block0", "final_norm"]))
    design, role_of = _paraphrase_design(data)
    pair_codes = design.codes("pair")[0]
    D = pairwise_distances(data.latents, metric=metric)
    eff = _run_effect(_paraphrase_stat(pair_codes, role_of), D, design, "role", ("pair",), rng, budget, alpha)
    L = len(data.layers)

    def cols(names: list[str]) -> np.ndarray:
        W = np.zeros((2 * len(names), 2 * L))
        for i, name in enumerate(names):
            for c in range(2):
                W[2 * i + c, 2 * lay.pos(data, name) + c] = 1.0
        return W

    agg = _min_of(eff, cols(layer_names))
    token = float((eff.net @ cols(["emb"]).T).min())
    early = float((eff.net @ cols([layer_names[0]]).T).min())
    net = eff.net.reshape(L, 2)
    other = f"block{data.num_blocks - 1}"
    numbers = {
        f"net_rel/{c}/{name}": float(net[lay.pos(data, name), i])
        for name in (*layer_names, "emb", other)
        for i, c in enumerate(("adversarial", "unrelated"))
    }
    numbers["effect/emb_and_last_block"] = float((eff.net @ cols(["emb", other]).T).min())
    # Table 1 analogue: mean within-pair distances by role, plus anchors of other pairs.
    roles = data.labels("pair_role")
    order = [list(design.codes("role")[1]).index(r) for r in ROLES]
    payload: dict[str, Any] = {}
    for m in ("cosine", "euclidean"):
        Dm = D if m == metric else pairwise_distances(data.latents, metric=m)
        R = _role_distances(Dm, pair_codes, design.codes("role")[0][None])[:, 0][:, order][:, :, order]
        anchors = np.flatnonzero(roles == "anchor")
        Da = Dm[:, anchors][:, :, anchors]
        k = anchors.size
        other_pairs = Da.sum(axis=(1, 2)) / (k * (k - 1))
        for name in (*layer_names, "emb", other):
            i = lay.pos(data, name)
            values = np.vstack([R[i], np.r_[other_pairs[i], np.full(3, np.nan)][None]])
            payload[f"table1/{m}/{name}"] = _table(
                [*ROLES, "anchor-of-other-pairs"], list(ROLES), np.nan_to_num(values, nan=-1.0)
            )
        # The paper's layout: two pairs A, B (anchor=1, paraphrase=2), distances between all four.
        pids = np.unique(pair_codes)[:2]
        idx = [int(np.flatnonzero((pair_codes == g) & (roles == r))[0]) for g in pids for r in ROLES[:2]]
        for name in (layer_names[0], layer_names[-1]):
            payload[f"table1_example/{m}/{name}"] = _table(
                ["A1", "A2", "B1", "B2"], ["A1", "A2", "B1", "B2"], Dm[lay.pos(data, name)][np.ix_(idx, idx)]
            )
    curves = {"net_rel/adversarial": net[:, 0].tolist(), "net_rel/unrelated": net[:, 1].tolist()}
    return _measurement(
        agg,
        alpha=alpha,
        n_units=eff.n_units,
        n_samples=len(data.samples),
        budget=budget,
        resampling=_interval_text(alpha, "pair_ids", budget, "of pair_role within pair_id")
        + f"; effect = min over {layer_names} x (adversarial, unrelated) of (d_c - d_para) / max(d_c, d_para), {metric}",
        token_control=token,
        explained_by_last_token=bool(early <= token),
        curves=curves,
        numbers=_finite(numbers),
        payloads=payload,
    )


# ----------------------------------------------------------------------------------------------- T2


def _mean_offdiag(D: np.ndarray) -> np.ndarray:
    n = D.shape[-1]
    return D.sum(axis=(-1, -2)) / (n * (n - 1))


def _log_ratio(a: float, b: float) -> float:
    """``log(a / b)``, nan when either is 0 (a layer with identical latents, e.g. ``emb`` under a shared suffix)."""
    return float(np.log(a / b)) if a > 0 and b > 0 else float("nan")


@measure("distance_growth")
def distance_growth(
    data: ClaimData, params: dict[str, Any], rng: np.random.Generator, budget: Budget
) -> Measurement:
    """T2: log(late-band / early-band mean pairwise scale-free distance); 0 when latents only grow in norm."""
    _one_variant(data)
    alpha, lay = _alpha(params), _layers(data)
    metric = params.get("metric", "cosine")
    if metric not in ("cosine", "scaled_euclidean"):
        raise ValueError(f"params['metric'] must be scale-free (cosine or scaled_euclidean); got {metric!r}")
    unit = params.get("unit", "pair_id")
    design = Design(factors={"unit": data.labels(unit)}, units=("unit",))
    D = pairwise_distances(data.latents, metric=metric)
    early, late = lay.bands["early"], lay.bands["late"]

    def stat(Dsub: np.ndarray) -> float:
        m = _mean_offdiag(Dsub)
        return float(np.log(m[late].mean() / m[early].mean()))

    est = stat(D)
    res = design.subsample(budget.n_resamples, rng=rng)
    draws = np.array([est + res.correction * (stat(D[:, i[:, None], i[None, :]]) - est) for i in res.indices])
    lo, hi = np.quantile(draws, [alpha, 1.0 - alpha])
    curves: dict[str, list[float]] = {f"mean_distance/{metric}": _mean_offdiag(D).tolist()}
    numbers: dict[str, float] = {}
    for other in ("cosine", "scaled_euclidean", "euclidean"):
        if other == metric:
            continue
        m = _mean_offdiag(pairwise_distances(data.latents, metric=other))
        curves[f"mean_distance/{other}"] = m.tolist()
        numbers[f"log_ratio/{other}"] = _log_ratio(m[late].mean(), m[early].mean())
    m = _mean_offdiag(D)
    blocks_m = m[lay.blocks]
    rho = spearmanr(np.arange(blocks_m.size), blocks_m)[0] if np.ptp(blocks_m) > 0 else float("nan")
    numbers.update(
        {
            "spearman_depth/blocks": float(rho),
            "log_ratio/final_norm_over_block0": _log_ratio(m[lay.final], m[lay.blocks[0]]),
            "log_ratio/last_block_over_emb": _log_ratio(m[lay.blocks[-1]], m[lay.emb]),
            "mean_distance/emb": float(m[lay.emb]),
        }
    )
    if {"pair_role", "pair_id"} <= set(params.get("role_axes", ["pair_role", "pair_id"])):
        try:
            roles, pairs = data.labels("pair_role"), data.labels("pair_id")
        except ValueError:
            roles = pairs = None
        if roles is not None:
            anchors = roles == "anchor"
            for r in ROLES[1:]:
                ia = np.flatnonzero(anchors)
                ir = np.array([np.flatnonzero((pairs == pairs[i]) & (roles == r))[0] for i in ia])
                curves[f"mean_distance/{metric}/anchor-{r}"] = D[:, ia, ir].mean(axis=1).tolist()
    b = int(np.sum(draws <= 0.0))
    return Measurement(
        effect=est,
        ci_low=float(lo),
        ci_high=float(hi),
        p_value=(b + 1.0) / (draws.size + 1.0),
        n_units=int(np.unique(design.factors["unit"]).size),
        n_samples=len(data.samples),
        n_boot=budget.n_resamples,
        n_perm=0,
        resampling=(
            f"{budget.n_resamples} half-subsamples of {unit} without replacement (rescaled deviations), percentile "
            f"interval at {100 * (1 - 2 * alpha):.0f}% two-sided; no label is involved, so there is no permutation "
            "null: the null 'no growth' is an effect of exactly 0 (latents that only grow in norm), and p is the "
            "share of subsample draws <= 0"
        ),
        curves=curves,
        numbers=_finite(numbers),
    )


# ----------------------------------------------------------------------------------------------- T3, T4, T5


def _language_effect(
    data: ClaimData, params: dict[str, Any], rng: np.random.Generator, budget: Budget, alpha: float
) -> tuple[Effect, Design, np.ndarray]:
    design = _parallel_design(data)
    D = pairwise_distances(data.latents, metric=params.get("metric", "cosine"))
    eff = _run_effect(silhouette_statistic(), D, design, "language", ("meaning",), rng, budget, alpha)
    return eff, design, D


@measure("language_early_late")
def language_early_late(
    data: ClaimData, params: dict[str, Any], rng: np.random.Generator, budget: Budget
) -> Measurement:
    """T3: min(early - middle, late - middle) of the band-mean net language silhouette."""
    _one_variant(data)
    alpha, lay = _alpha(params), _layers(data)
    eff, design, D = _language_effect(data, params, rng, budget, alpha)
    L, b = len(data.layers), lay.bands
    W = np.vstack([_weights(L, b["early"], b["middle"]), _weights(L, b["late"], b["middle"])])
    agg = _min_of(eff, W)
    band = {k: float(eff.net[v].mean()) for k, v in b.items()}
    db = davies_bouldin_batch(2.0 * D, design.codes("language")[0][None], squared=True)[0][0]
    numbers = {f"net_silhouette/{k}": v for k, v in band.items()}
    numbers.update(
        {
            "early_minus_middle": band["early"] - band["middle"],
            "late_minus_middle": band["late"] - band["middle"],
        }
    )
    for name in ("emb", "block0", f"block{data.num_blocks - 1}", "final_norm"):
        numbers[f"net_silhouette/{name}"] = float(eff.net[lay.pos(data, name)])
        numbers[f"davies_bouldin/{name}"] = float(db[lay.pos(data, name)])
    payloads: dict[str, Any] = {}
    tsne_layers = params.get("tsne_layers", ["block0", f"block{data.num_blocks // 2}", "final_norm"])
    if tsne_layers:
        payloads["tsne"] = _tsne_payload(data, list(tsne_layers), ["language", "meaning_id"], rng)
    return _measurement(
        agg,
        alpha=alpha,
        n_units=eff.n_units,
        n_samples=len(data.samples),
        budget=budget,
        resampling=_interval_text(alpha, "meanings", budget, "of language within meaning"),
        token_control=float(eff.net[lay.emb]),
        explained_by_last_token=bool(band["early"] <= eff.net[lay.emb]),
        curves={"net_silhouette/language": eff.net.tolist(), "silhouette/language": eff.observed.tolist()},
        numbers=_finite(numbers),
        payloads=payloads,
    )


@measure("language_first_layers_low")
def language_first_layers_low(
    data: ClaimData, params: dict[str, Any], rng: np.random.Generator, budget: Budget
) -> Measurement:
    """T5: late-band net language silhouette minus its mean over the first layers (block0, block1)."""
    _one_variant(data)
    alpha, lay = _alpha(params), _layers(data)
    first = [lay.pos(data, name) for name in params.get("first_layers", ["block0", "block1"])]
    eff, _, _ = _language_effect(data, params, rng, budget, alpha)
    L = len(data.layers)
    agg = _min_of(eff, _weights(L, lay.bands["late"], first)[None])
    first_value = float(eff.net[first].mean())
    numbers = {
        "net_silhouette/first_layers": first_value,
        "net_silhouette/late": float(eff.net[lay.bands["late"]].mean()),
        "net_silhouette/emb": float(eff.net[lay.emb]),
        "late_minus_emb": float(eff.net[lay.bands["late"]].mean() - eff.net[lay.emb]),
    }
    return _measurement(
        agg,
        alpha=alpha,
        n_units=eff.n_units,
        n_samples=len(data.samples),
        budget=budget,
        resampling=_interval_text(alpha, "meanings", budget, "of language within meaning"),
        token_control=float(eff.net[lay.emb]),
        explained_by_last_token=bool(first_value <= eff.net[lay.emb]),
        curves={"net_silhouette/language": eff.net.tolist()},
        numbers=_finite(numbers),
    )


@measure("meaning_middle")
def meaning_middle(
    data: ClaimData, params: dict[str, Any], rng: np.random.Generator, budget: Budget
) -> Measurement:
    """T4: middle-band minus late-band net meaning silhouette; translation retrieval reported beside it."""
    _one_variant(data)
    alpha, lay = _alpha(params), _layers(data)
    design = _parallel_design(data)
    D = pairwise_distances(data.latents, metric=params.get("metric", "cosine"))
    eff = _run_effect(silhouette_statistic(), D, design, "meaning", ("language",), rng, budget, alpha)
    L, b = len(data.layers), lay.bands
    agg = _min_of(eff, _weights(L, b["middle"], b["late"])[None])
    # Translation retrieval: each query language retrieves its translation among another language's sentences.
    langs = design.codes("language")[1]
    query = params.get("retrieval_query", "en")
    meanings, languages = design.factors["meaning"], design.factors["language"]
    top1 = []
    chance = []
    for target in langs:
        if target == query:
            continue
        r = retrieval(D, meanings, languages, query=query, target=target)
        top1.append(r.top1)
        chance.append(r.chance_top1)
    top1_mean = np.mean(top1, axis=0) if top1 else np.full(L, np.nan)
    chance_mean = float(np.mean(chance)) if chance else float("nan")
    lang_curve = _net_silhouette_curve(D, design, "language", ("meaning",), rng, min(budget.n_perm, 100))
    band = {k: float(eff.net[v].mean()) for k, v in b.items()}
    numbers = {f"net_silhouette/{k}": v for k, v in band.items()}
    numbers.update(
        {
            f"retrieval_top1/{query}->*/middle": float(top1_mean[b["middle"]].mean()),
            f"retrieval_top1/{query}->*/late": float(top1_mean[b["late"]].mean()),
            f"retrieval_top1/{query}->*/middle_minus_late": float(
                top1_mean[b["middle"]].mean() - top1_mean[b["late"]].mean()
            ),
            "retrieval_top1/chance": chance_mean,
        }
    )
    for name in ("emb", "block0", f"block{data.num_blocks - 1}", "final_norm"):
        numbers[f"net_silhouette/{name}"] = float(eff.net[lay.pos(data, name)])
    return _measurement(
        agg,
        alpha=alpha,
        n_units=eff.n_units,
        n_samples=len(data.samples),
        budget=budget,
        resampling=_interval_text(alpha, "meanings", budget, "of meaning within language"),
        token_control=float(eff.net[lay.emb]),
        explained_by_last_token=None,
        curves={
            "net_silhouette/meaning": eff.net.tolist(),
            "net_silhouette/language": lang_curve.tolist(),
            f"retrieval_top1/{query}->*": np.asarray(top1_mean).tolist(),
        },
        numbers=_finite(numbers),
    )


# ----------------------------------------------------------------------------------------------- T6, T7


def _pairs_param(params: dict[str, Any], key: str, default: list[list[str]]) -> list[tuple[str, str]]:
    pairs = params.get(key, default)
    if not pairs or any(len(p) != 2 for p in pairs):
        raise ValueError(f"params[{key!r}] must be a non-empty list of language pairs; got {pairs}")
    return [(str(a), str(b)) for a, b in pairs]


def _separability_stat(blocks: np.ndarray, n_blocks: int) -> Callable[..., np.ndarray]:
    """Two-language silhouette inside each pair block: columns ``[block * L + layer]``."""

    def stat(D: np.ndarray, codes: np.ndarray, index: np.ndarray) -> np.ndarray:
        blk = blocks[index]
        out = np.empty((codes.shape[0], n_blocks, D.shape[0]))
        for k in range(n_blocks):
            m = np.flatnonzero(blk == k)
            c = codes[:, m]
            out[:, k] = silhouette_batch(D[:, m][:, :, m], (c == c[0].max()).astype(np.int64))
        return out.reshape(codes.shape[0], -1)

    return stat


@measure("related_distant_gap")
def related_distant_gap(
    data: ClaimData, params: dict[str, Any], rng: np.random.Generator, budget: Budget
) -> Measurement:
    """T6: mean net two-language silhouette of distant pairs minus related pairs, at the first layer.

    Each language pair is its own block of the design (en's samples appear once per block; distances are only
    ever taken inside a block, so no point is duplicated inside a distance matrix); the null permutes language
    within (meaning, pair) and subsamples keep the same meanings in every block.
    """
    _one_variant(data)
    alpha, lay = _alpha(params), _layers(data)
    related = _pairs_param(params, "related", [["en", "de"], ["en", "fr"]])
    distant = _pairs_param(params, "distant", [["en", "ja"], ["en", "zh"]])
    layer = params.get("layer", "block0")
    pairs = related + distant
    lang = data.labels("language")
    meaning = data.labels("meaning_id")
    missing = sorted({x for p in pairs for x in p} - set(lang))
    if missing:
        raise ValueError(f"related_distant_gap: languages {missing} are absent from the data")
    sel = np.concatenate([np.flatnonzero(np.isin(lang, p)) for p in pairs])
    blocks = np.concatenate([np.full(np.isin(lang, p).sum(), k) for k, p in enumerate(pairs)])
    design = Design(
        factors={"meaning": meaning[sel], "language": lang[sel], "pair": blocks}, units=("meaning",)
    )
    D_all = pairwise_distances(data.latents, metric=params.get("metric", "cosine"))
    D = D_all[:, sel][:, :, sel]
    eff = _run_effect(
        _separability_stat(blocks, len(pairs)), D, design, "language", ("meaning", "pair"), rng, budget, alpha
    )
    L = len(data.layers)

    def gap_w(pos: int) -> np.ndarray:
        w = np.zeros(len(pairs) * L)
        for k in range(len(pairs)):
            w[k * L + pos] = (1.0 / len(distant)) if k >= len(related) else -(1.0 / len(related))
        return w

    agg = _min_of(eff, gap_w(lay.pos(data, layer))[None])
    token = float(eff.net @ gap_w(lay.emb))
    net = eff.net.reshape(len(pairs), L)
    curves = {f"net_separability/{a}-{b}": net[k].tolist() for k, (a, b) in enumerate(pairs)}
    curves["gap"] = [float(eff.net @ gap_w(i)) for i in range(L)]
    numbers = {
        f"net_separability/{a}-{b}/{layer}": float(net[k, lay.pos(data, layer)])
        for k, (a, b) in enumerate(pairs)
    }
    for name in ("emb", "block0", "block1", "final_norm"):
        if name in data.layers:
            numbers[f"gap/{name}"] = float(eff.net @ gap_w(lay.pos(data, name)))
    payloads: dict[str, Any] = {
        # For T7 (cross-model): the gap's corrected subsample draws and its estimate.
        "t7": {
            "layer": layer,
            "estimate": agg.estimate,
            "draws": np.round(agg.draws, 6).tolist(),
            "n_units": eff.n_units,
            "confidence": 1.0 - 2.0 * alpha,
        },
    }
    for name in ("emb", layer):
        levels, table = pairwise_separability(D_all[lay.pos(data, name)], lang)
        payloads[f"separability_table/{name}"] = _table(
            list(levels), list(levels), np.nan_to_num(table, nan=0.0)
        )
    return _measurement(
        agg,
        alpha=alpha,
        n_units=eff.n_units,
        n_samples=len(data.samples),
        budget=budget,
        resampling=_interval_text(alpha, "meanings", budget, "of language within (meaning, language pair)"),
        token_control=token,
        explained_by_last_token=bool(agg.estimate <= token),
        curves=curves,
        numbers=_finite(numbers),
        payloads=payloads,
    )


def aggregate_t7(
    record_a_measurement: Measurement, record_b_measurement: Measurement, *, alpha: float = 0.05
) -> Measurement:
    """T7: gap(B) - gap(A) of the T6 first-layer separability gaps of two models.

    ``A`` is the model expected to have the smaller gap (Qwen2-Audio), ``B`` the larger (Ultravox-LLaMA). The
    interval is the percentile interval of every difference of the two models' independent subsample draws
    (the distribution of the difference of two independent estimates); the models share the probe set's
    meanings, so ignoring their positive correlation makes the interval conservative.
    """
    draws = []
    for name, m in (("A", record_a_measurement), ("B", record_b_measurement)):
        t7 = m.payloads.get("t7") if m is not None else None
        if not t7 or not t7.get("draws"):
            raise ValueError(
                f"aggregate_t7: measurement {name} has no payloads['t7'] draws (run the T6 measure)"
            )
        draws.append((float(t7["estimate"]), np.asarray(t7["draws"], dtype=float), int(t7["n_units"])))
    (ea, da, na), (eb, db, nb) = draws
    diff = (db[:, None] - da[None, :]).ravel()
    lo, hi = np.quantile(diff, [alpha, 1.0 - alpha])
    return Measurement(
        effect=eb - ea,
        ci_low=float(lo),
        ci_high=float(hi),
        p_value=(float(np.sum(diff <= 0.0)) + 1.0) / (diff.size + 1.0),
        n_units=min(na, nb),
        n_samples=record_a_measurement.n_samples + record_b_measurement.n_samples,
        n_boot=int(min(da.size, db.size)),
        n_perm=0,
        resampling=(
            f"difference of the two models' independent subsample draws ({da.size} x {db.size}), percentile "
            f"interval at {100 * (1 - 2 * alpha):.0f}% two-sided; p is the share of differences <= 0"
        ),
        numbers={"gap/A": ea, "gap/B": eb},
    )


# ----------------------------------------------------------------------------------------------- Q1


def _purity(Z: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """Top-split purity of the tree ``Z`` cut into ``k`` clusters, for many labellings ``[P, n]``: ``[P]``."""
    cut = hierarchy.fcluster(Z, t=k, criterion="maxclust") - 1
    P, n = codes.shape
    table = np.zeros((P, int(cut.max()) + 1, k))
    np.add.at(table, (np.arange(P)[:, None], cut[None, :], codes), 1.0)
    return table.max(axis=2).sum(axis=1) / n


def _metric_curves(D: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Silhouette, negated Davies-Bouldin and top-split purity per labelling and layer: ``[3, P, L]``."""
    k = int(codes.max()) + 1
    sil = silhouette_batch(D, codes)
    db, collapsed = davies_bouldin_batch(2.0 * D, codes, squared=True)
    if collapsed.any():
        raise ValueError(
            "Davies-Bouldin: collapsed clusters in some layer; the pipeline gate should catch this"
        )
    # The tree does not depend on the labels: one average linkage per layer (as stats.hierarchical builds it),
    # cut once, scored for every labelling.
    trees = [hierarchy.linkage(squareform(D[i], checks=False), method="average") for i in range(D.shape[0])]
    pur = np.stack([_purity(Z, codes, k) for Z in trees], axis=1)
    return np.stack([sil, -db, pur])


def _rank_corr(curves: np.ndarray) -> np.ndarray:
    """Spearman correlation across layers for the pairs (sil, -DB), (sil, purity), (-DB, purity): ``[P, 3]``.

    A constant curve carries no ranking, so its correlations count 0 (no agreement)."""
    R = rankdata(curves, axis=2)
    R = R - R.mean(axis=2, keepdims=True)
    norms = np.sqrt((R * R).sum(axis=2))
    out = []
    for a, b in ((0, 1), (0, 2), (1, 2)):
        den = norms[a] * norms[b]
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.where(den > 0, (R[a] * R[b]).sum(axis=1) / den, 0.0))
    return np.stack(out, axis=1)


@measure("metric_agreement")
def metric_agreement(
    data: ClaimData, params: dict[str, Any], rng: np.random.Generator, budget: Budget
) -> Measurement:
    """Q1: min over metric pairs of the net Spearman correlation of the per-block language-clustering curves."""
    _one_variant(data)
    alpha, lay = _alpha(params), _layers(data)
    design = _parallel_design(data)
    D_all = pairwise_distances(data.latents, metric="cosine")
    D = np.ascontiguousarray(D_all[lay.blocks])

    def stat(Dsub: np.ndarray, codes: np.ndarray, index: np.ndarray) -> np.ndarray:
        return _rank_corr(_metric_curves(Dsub, codes))

    eff = _run_effect(stat, D, design, "language", ("meaning",), rng, budget, alpha)
    agg = _min_of(eff, np.eye(3))
    codes = design.codes("language")[0]
    blocks = _metric_curves(D, codes[None])[:, 0]  # [3, blocks]
    names = ("silhouette_vs_negdb", "silhouette_vs_purity", "negdb_vs_purity")
    numbers = {f"net_spearman/{n}": float(v) for n, v in zip(names, eff.net, strict=True)}
    numbers.update({f"spearman/{n}": float(v) for n, v in zip(names, eff.observed, strict=True)})
    for n, (a, b) in zip(names, ((0, 1), (0, 2), (1, 2)), strict=True):
        numbers[f"kendall/{n}"] = float(kendalltau(blocks[a], blocks[b])[0])
    payloads: dict[str, Any] = {"dendrogram": {"labels": data.labels("language").tolist()}}
    for name in params.get("dendrogram_layers", ["block0", f"block{data.num_blocks // 2}", "final_norm"]):
        Z = hierarchical(D_all[lay.pos(data, name)], data.labels("language")).linkage
        payloads["dendrogram"][name] = np.round(Z, 5).tolist()
    return _measurement(
        agg,
        alpha=alpha,
        n_units=eff.n_units,
        n_samples=len(data.samples),
        budget=budget,
        resampling=_interval_text(alpha, "meanings", budget, "of language within meaning")
        + "; curves over block0..block{L-1}, cosine geometry (DB of unit-normalised latents, average linkage)",
        token_control=None,
        explained_by_last_token=None,
        curves={
            "silhouette/language/blocks": blocks[0].tolist(),
            "neg_davies_bouldin/language/blocks": blocks[1].tolist(),
            "top_split_purity/language/blocks": blocks[2].tolist(),
        },
        numbers=_finite(numbers),
        payloads=payloads,
    )


# ----------------------------------------------------------------------------------------------- controls


def _replace(data: ClaimData, latents: np.ndarray, order: np.ndarray | None = None) -> ClaimData:
    ids = data.last_token_ids if order is None else data.last_token_ids[order]
    return ClaimData(
        latents=latents,
        layers=data.layers,
        samples=data.samples,
        last_token_ids=ids,
        model=data.model,
        model_kind=data.model_kind,
        extra=dict(data.extra),
    )


def _shuffle_within(axis: str) -> Callable[[ClaimData, dict[str, Any], np.random.Generator], ClaimData]:
    """Permute whole latent rows (all layers) within each level of ``axis``: labels lose their latents."""

    def shuffle(base: ClaimData, params: dict[str, Any], rng: np.random.Generator) -> ClaimData:
        strata = base.labels(axis)
        order = np.arange(len(base.samples))
        for level in np.unique(strata):
            idx = np.flatnonzero(strata == level)
            order[idx] = rng.permutation(idx)
        return _replace(base, base.latents[order], order)

    return shuffle


def _norm_growth_only(base: ClaimData, params: dict[str, Any], rng: np.random.Generator) -> ClaimData:
    """T2's null: every layer is ``block0``'s latents rescaled to that layer's mean norm (x_l = c_l x_0)."""
    del params, rng
    X = np.asarray(base.latents, dtype=np.float64)
    x0 = X[:, base.layer_index("block0")]
    c = np.linalg.norm(X, axis=-1).mean(axis=0) / np.linalg.norm(x0, axis=-1).mean()
    return _replace(base, x0[:, None, :] * c[None, :, None])


def _planter(
    keys_of: Callable[[ClaimData, dict[str, Any]], np.ndarray],
    layer_weights_of: Callable[[ClaimData, dict[str, Any]], np.ndarray],
    measure_fn: Callable[..., Measurement],
    tol: float = REL_TOL,
) -> Callable[[ClaimData, dict[str, Any], float, np.random.Generator], ClaimData]:
    """Plant offsets ``s * w_l * r_l * g_{key, l}`` (unit random directions ``g``, ``r_l`` the layer's RMS spread
    about its mean, ``w_l`` layer weights; key ``None`` = no offset) with ``s`` solved so that the measure's
    point estimate (fixed pilot seed) equals ``size`` within ``tol`` (relative, :func:`plant_scale`). If the base already
    exceeds ``size``, it is returned unchanged."""

    def plant(base: ClaimData, params: dict[str, Any], size: float, rng: np.random.Generator) -> ClaimData:
        X = np.asarray(base.latents, dtype=np.float64)
        _, L, d = X.shape
        keys = keys_of(base, params)
        w = layer_weights_of(base, params)
        has = np.array([k is not None for k in keys])
        levels = sorted({str(k) for k in keys[has]})
        G = rng.standard_normal((len(levels), L, d))
        G /= np.linalg.norm(G, axis=-1, keepdims=True)
        r = np.sqrt(((X - X.mean(axis=0, keepdims=True)) ** 2).sum(axis=-1).mean(axis=0))  # [L]
        offsets = np.zeros_like(X)
        where = {lv: i for i, lv in enumerate(levels)}
        for i in np.flatnonzero(has):
            offsets[i] = G[where[str(keys[i])]] * (w * r)[:, None]
        pilot = {**params, "tsne_layers": [], "dendrogram_layers": []}
        seed = int(rng.integers(2**31 - 1))

        def estimate(s: float) -> float:
            return measure_fn(
                _replace(base, X + s * offsets), pilot, np.random.default_rng(seed), PILOT
            ).effect

        s = plant_scale(
            estimate, size, what=f"{measure_fn.__name__} offsets", start=0.5, limit=1024.0, rel_tol=tol
        )
        return _replace(base, X + s * offsets)

    return plant


def _label_keys(
    axis: str, only: list[str] | None = None
) -> Callable[[ClaimData, dict[str, Any]], np.ndarray]:
    def keys(data: ClaimData, params: dict[str, Any]) -> np.ndarray:
        values = data.labels(axis)
        if only is not None:
            values = np.array([v if v in only else None for v in values], dtype=object)
        return values

    return keys


def _band_weights(*names: str) -> Callable[[ClaimData, dict[str, Any]], np.ndarray]:
    def weights(data: ClaimData, params: dict[str, Any]) -> np.ndarray:
        lay = _layers(data)
        w = np.zeros(len(data.layers))
        for name in names:
            w[lay.bands[name]] = 1.0
        return w

    return weights


def _non_emb(data: ClaimData, params: dict[str, Any]) -> np.ndarray:
    w = np.ones(len(data.layers))
    w[data.layer_index("emb")] = 0.0
    return w


def _t1_keys(data: ClaimData, params: dict[str, Any]) -> np.ndarray:
    roles, pairs = data.labels("pair_role"), data.labels("pair_id")
    return np.array(
        [p if r in ("anchor", "paraphrase") else None for p, r in zip(pairs, roles, strict=True)],
        dtype=object,
    )


def _sample_keys(data: ClaimData, params: dict[str, Any]) -> np.ndarray:
    return np.array([s.id for s in data.samples], dtype=object)


def _t6_keys(data: ClaimData, params: dict[str, Any]) -> np.ndarray:
    distant = {b for _, b in _pairs_param(params, "distant", [["en", "ja"], ["en", "zh"]])}
    return _label_keys("language", sorted(distant))(data, params)


def _depth_profile(data: ClaimData, params: dict[str, Any]) -> np.ndarray:
    """Q1: offsets growing linearly over the blocks, so every metric's curve follows one ranking."""
    lay = _layers(data)
    w = np.zeros(len(data.layers))
    w[lay.blocks] = np.linspace(0.0, 1.0, lay.blocks.size)
    return w


controls(
    "paraphrase_contrast",
    Controls(shuffle=_shuffle_within("pair_id"), plant=_planter(_t1_keys, _non_emb, paraphrase_contrast)),
)
controls(
    "distance_growth",
    Controls(shuffle=_norm_growth_only, plant=_planter(_sample_keys, _band_weights("late"), distance_growth)),
)
controls(
    "language_early_late",
    Controls(
        shuffle=_shuffle_within("meaning_id"),
        plant=_planter(_label_keys("language"), _band_weights("early", "late"), language_early_late),
    ),
)
controls(
    "language_first_layers_low",
    Controls(
        shuffle=_shuffle_within("meaning_id"),
        plant=_planter(_label_keys("language"), _band_weights("late"), language_first_layers_low),
    ),
)
controls(
    "meaning_middle",
    Controls(
        shuffle=_shuffle_within("language"),
        plant=_planter(_label_keys("meaning_id"), _band_weights("middle"), meaning_middle),
    ),
)
controls(
    "related_distant_gap",
    Controls(shuffle=_shuffle_within("meaning_id"), plant=_planter(_t6_keys, _non_emb, related_distant_gap)),
)
controls(
    "metric_agreement",
    Controls(
        shuffle=_shuffle_within("meaning_id"),
        plant=_planter(_label_keys("language"), _depth_profile, metric_agreement),
    ),
)
