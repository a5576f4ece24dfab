"""Cross-modal claims M1-M4 (paper section 6, Figs 10-12) and the positive reference of M3.

All measures read the ``crossmodal`` probe set: the same meanings as text and as speech in several languages,
linked by ``meaning_id`` and ``language``. Text keeps one probe variant (``params["text_variant"]``, default
``nopunct``: final punctuation would otherwise colour early last-token latents); speech keeps every voice.
The design is meaning x language x modality x voice; meanings are the resampling units (they carry the
content shared by all cells), and labels are permuted only within the cells a claim declares.

Measures are pure: ``(ClaimData, params, rng, budget) -> Measurement``. The interval reported is two-sided
at ``1 - 2 alpha`` (``params["alpha"]``, which must equal the rule's alpha), so each bound is the one-sided
``alpha`` bound the rule reads; absence power is computed at that same one-sided level.

Controls (``shuffle``/``plant``) build semi-synthetic latents from the real ones: ``shuffle`` destroys the
structure a claim measures (class means removed and rows permuted within the design's cells), and ``plant``
first shuffles, then adds label-dependent offsets scaled to each layer's within-class spread, with the scale
solved (:func:`benchmark.claims.solve.plant_scale`) so that the point estimate of the claim's effect equals the requested size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmark.claims.data import Budget, ClaimData, Controls, controls, measure
from benchmark.claims.record import Measurement
from benchmark.claims.solve import plant_scale
from benchmark.stats import (
    Design,
    Effect,
    Summary,
    davies_bouldin,
    effect,
    equivalence_power,
    group_distance_table,
    p_value,
    pairwise_distances,
    permutation_indices,
    retrieval,
    silhouette_batch,
    silhouette_statistic,
    tsne_2d,
)

TEXT, SPEECH = "text", "speech"
BAND_NAMES: tuple[str, ...] = ("early", "middle", "late")
#: Permutations behind the chance level of the cheap point estimates used by plant calibration.
_PILOT_PERM = 24


# ----------------------------------------------------------------------------------------------- preparation


@dataclass(frozen=True)
class _Prepared:
    """The selected samples of one claim with their factors, distances and band positions."""

    data: ClaimData
    D: np.ndarray  # [L, n, n] over all named layers
    factors: dict[str, np.ndarray]
    bands: dict[str, np.ndarray]  # positions into data.layers
    metric: str


def _param(params: dict[str, Any], key: str, default: Any) -> Any:
    return params[key] if key in params and params[key] is not None else default


def _voice(data: ClaimData) -> np.ndarray:
    """Speaker for speech, the literal 'text' for text: the cell below meaning x language x modality."""
    return np.asarray([s.speaker if s.modality == SPEECH else TEXT for s in data.samples], dtype=object)


def _select(
    data: ClaimData, params: dict[str, Any], *, modalities: Sequence[str] = (TEXT, SPEECH)
) -> ClaimData:
    """Keep text of ``params['text_variant']`` (all text if None) and speech, restricted to ``modalities``.

    Speech samples carry no probe variant, so the variant filter applies to text only.
    """
    variant = params.get("text_variant", "nopunct")
    keep = np.asarray(
        [
            s.modality in modalities and (s.modality != TEXT or variant is None or s.variant == variant)
            for s in data.samples
        ]
    )
    out = data.subset(keep)
    present = {s.modality for s in out.samples}
    missing = [m for m in modalities if m not in present]
    if missing:
        raise ValueError(
            f"crossmodal claim data from model {data.model!r} has no {missing} samples after keeping text variant "
            f"{variant!r}; modalities present before selection: {sorted({s.modality for s in data.samples})}"
        )
    speech_without_voice = [s.id for s in out.samples if s.modality == SPEECH and not s.speaker]
    if speech_without_voice:
        raise ValueError(f"speech samples lack a speaker label (first: {speech_without_voice[:3]})")
    return out


def _factors(data: ClaimData) -> dict[str, np.ndarray]:
    return {
        "meaning": data.labels("meaning_id"),
        "language": data.labels("language"),
        "modality": data.labels("modality"),
        "voice": _voice(data),
    }


def _band_positions(data: ClaimData) -> dict[str, np.ndarray]:
    offset = data.block_slice().start
    return {name: idx + offset for name, idx in data.bands().items()}


def _check_crossed(factors: dict[str, np.ndarray], cell: Sequence[str], what: str) -> None:
    """Every cell of the design must hold exactly one sample: a missing translation or clip biases the
    within-cell permutation and the retrieval targets."""
    keys = list(zip(*(factors[name] for name in cell), strict=True))
    uniq, counts = np.unique(np.asarray([str(k) for k in keys]), return_counts=True)
    if (counts > 1).any():
        raise ValueError(
            f"{what}: cells {list(cell)} hold duplicate samples, e.g. {uniq[counts > 1][:3].tolist()}"
        )
    meanings = np.unique(factors["meaning"])
    for name in cell:
        if name == "meaning":
            continue
        per_meaning = {m: set(factors[name][factors["meaning"] == m]) for m in meanings}
        sizes = {len(v) for v in per_meaning.values()}
        if len(sizes) != 1:
            raise ValueError(
                f"{what}: factor {name!r} is not crossed with meaning (levels per meaning {sizes})"
            )


def _prepare(
    data: ClaimData, params: dict[str, Any], *, modalities: Sequence[str] = (TEXT, SPEECH)
) -> _Prepared:
    selected = _select(data, params, modalities=modalities)
    if selected.num_blocks < 3:
        raise ValueError(f"model {data.model!r} has {selected.num_blocks} blocks; bands need at least 3")
    metric = _param(params, "metric", "cosine")
    factors = _factors(selected)
    _check_crossed(factors, ("meaning", "language", "modality", "voice"), f"model {data.model!r}")
    return _Prepared(
        data=selected,
        D=pairwise_distances(selected.latents, metric=metric),
        factors=factors,
        bands=_band_positions(selected),
        metric=metric,
    )


def _check_declared(params: dict[str, Any], implemented: dict[str, Any], measure_name: str) -> None:
    """Design keys in a claim file document what the measure does; refuse a file that declares otherwise
    (editing the YAML must not silently leave the statistic unchanged)."""
    for key, value in implemented.items():
        if key in params and params[key] != value:
            raise ValueError(
                f"measure {measure_name!r} implements {key}={value!r}, but the claim's params say {params[key]!r}"
            )


_MODALITY_DESIGN = {"label": "modality", "strata": ["meaning_id", "language"], "units": ["meaning_id"]}
_M3_DESIGN = {
    "label": "meaning_id",
    "strata": ["language", "modality", "speaker"],
    "units": ["meaning_id"],
    "score": "rank_auc",
    "query": "speech",
    "target": "text",
    "within": "language",
}
_REF_DESIGN = {
    "label": "meaning_id",
    "strata": ["language"],
    "units": ["meaning_id"],
    "score": "rank_auc",
    "query": "text",
    "target": "text",
}
_M4_DESIGN = {
    "label": "language",
    "within": "modality",
    "strata": ["meaning_id", "modality", "speaker"],
    "units": ["meaning_id"],
}


def _secondary(params: dict[str, Any], data: ClaimData) -> bool:
    """Whether to compute secondary numbers and payloads: by default not on control latents (calibration runs
    them over hundreds of seeds, and they never decide)."""
    return bool(_param(params, "secondary", not data.extra.get("control", False)))


def _alpha(params: dict[str, Any]) -> float:
    alpha = float(_param(params, "alpha", 0.05))
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"params['alpha'] must lie in (0, 0.5); got {alpha}")
    return alpha


def _confidence(params: dict[str, Any]) -> float:
    """Two-sided ``1 - 2 alpha``: each bound is the one-sided ``alpha`` bound the rule reads."""
    return 1.0 - 2.0 * _alpha(params)


# ------------------------------------------------------------------------------------------- combining bands


def _combine(eff: Effect, parts: Sequence[np.ndarray], reduce: Callable[[np.ndarray], np.ndarray]) -> Summary:
    """A function of several band means of one Effect, with its own null, p-value and interval.

    ``parts`` are layer positions (each averaged); ``reduce`` maps ``[..., k]`` part values to ``[...]``. The
    same permutation rows and the same subsamples serve every part, so the combination's null and interval are
    exact for the combination (a min of bands is not a min of separate intervals).
    """
    centred = eff.null - eff.null_mean
    est = float(reduce(np.asarray([eff.net[p].mean() for p in parts])))
    null = reduce(np.stack([centred[:, p].mean(axis=1) for p in parts], axis=-1))
    draws = reduce(np.stack([eff.draws[:, p].mean(axis=1) for p in parts], axis=-1))
    a = (1.0 - eff.confidence) / 2.0
    lo, hi = np.quantile(draws, [a, 1.0 - a])
    return Summary(
        estimate=est,
        ci_low=float(lo),
        ci_high=float(hi),
        p=float(p_value(est, null)),
        se=float(draws.std(ddof=1)) if draws.size > 1 else float("nan"),
        draws=draws,
    )


def _band_numbers(eff: Effect, bands: dict[str, np.ndarray], prefix: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in BAND_NAMES:
        summary = eff.band(bands[name])
        out[f"{prefix}/{name}"] = summary.estimate
        out[f"{prefix}/{name}/ci_low"] = summary.ci_low
        out[f"{prefix}/{name}/ci_high"] = summary.ci_high
        out[f"{prefix}/{name}/p"] = summary.p
    return out


def _layer_numbers(values: np.ndarray, layers: list[str], prefix: str) -> dict[str, float]:
    """The paper's first/last layer under both conventions (CLAIMS.md: block0/final_norm primary)."""
    last_block = f"block{sum(name.startswith('block') for name in layers) - 1}"
    names = ["emb", "block0", last_block, "final_norm"]
    return {f"{prefix}@{name}": float(values[layers.index(name)]) for name in names if name in layers}


def _net_point(
    D: np.ndarray, codes: np.ndarray, strata: np.ndarray | None, rng: np.random.Generator
) -> np.ndarray:
    """Net silhouette per layer with a small null: secondary numbers and plant calibration only."""
    perm = permutation_indices(strata, _PILOT_PERM, rng=rng, n=codes.size)
    vals = silhouette_batch(D, np.vstack([codes[None], codes[perm]]))
    return vals[0] - vals[1:].mean(axis=0)


def _codes(values: np.ndarray) -> np.ndarray:
    return np.unique(values, return_inverse=True)[1].reshape(-1).astype(np.int64)


def _cell_codes(factors: dict[str, np.ndarray], names: Sequence[str]) -> np.ndarray:
    keys = np.asarray(["\x1f".join(str(factors[n][i]) for n in names) for i in range(factors[names[0]].size)])
    return _codes(keys)


# ------------------------------------------------------------------------------------------------- payloads


def _layer_name(token: str, layers: list[str], num_blocks: int) -> str:
    if token == "middle":
        return f"block{num_blocks // 2}"
    if token == "last_block":
        return f"block{num_blocks - 1}"
    if token not in layers:
        raise ValueError(f"payload layer {token!r} is not a layer of this model ({layers})")
    return token


def _tsne_payload(
    prep: _Prepared,
    params: dict[str, Any],
    label_axes: Sequence[str],
    rng: np.random.Generator,
    rows: np.ndarray | None = None,
) -> dict[str, Any]:
    """t-SNE coordinates of a sample of <= tsne_max_points points at a few layers (figures only)."""
    tokens = list(_param(params, "tsne_layers", ["block0", "middle", "final_norm"]))
    if not tokens:
        return {}
    data = prep.data
    idx = np.arange(len(data.samples)) if rows is None else np.asarray(rows)
    cap = int(_param(params, "tsne_max_points", 300))
    if idx.size > cap:
        idx = np.sort(rng.choice(idx, size=cap, replace=False))
    out: dict[str, Any] = {"labels": {ax: prep.factors[ax][idx].tolist() for ax in label_axes}, "layers": {}}
    for token in tokens:
        name = _layer_name(token, data.layers, data.num_blocks)
        X = data.latents[idx, data.layers.index(name)]
        Y = tsne_2d(X, rng=rng, perplexity=min(30.0, (idx.size - 1) / 3.0))
        out["layers"][name] = np.round(Y, 3).tolist()
    return out


def _distance_tables(
    prep: _Prepared, params: dict[str, Any], rows: np.ndarray | None = None
) -> dict[str, Any]:
    """Mean distance between (modality, language) groups at the first and last layers (cf. paper Tables 1-2)."""
    idx = np.arange(len(prep.data.samples)) if rows is None else np.asarray(rows)
    groups = np.asarray(
        [
            f"{m}/{lang}"
            for m, lang in zip(prep.factors["modality"][idx], prep.factors["language"][idx], strict=True)
        ]
    )
    out: dict[str, Any] = {}
    for token in _param(params, "table_layers", ["block0", "final_norm"]):
        name = _layer_name(token, prep.data.layers, prep.data.num_blocks)
        D = prep.D[prep.data.layers.index(name)][np.ix_(idx, idx)]
        levels, table = group_distance_table(D, groups, kind="mean")
        out[f"distance_table/{name}"] = {
            "rows": levels.tolist(),
            "cols": levels.tolist(),
            "values": np.round(np.nan_to_num(table, nan=0.0), 5).tolist(),
            "metric": prep.metric,
        }
    return out


# ------------------------------------------------------------------------------------------- M1 / M2: modality


def _modality_design(prep: _Prepared) -> Design:
    return Design(factors=prep.factors, units=("meaning",), strata=("meaning", "language"))


def _modality_effect(
    prep: _Prepared, params: dict[str, Any], rng: np.random.Generator, budget: Budget
) -> Effect:
    """Net modality silhouette per layer; modality permuted within meaning x language (text vs its own clips)."""
    return effect(
        silhouette_statistic(),
        prep.D,
        _modality_design(prep),
        "modality",
        rng=rng,
        n_perm=budget.n_perm,
        n_resamples=budget.n_resamples,
        n_perm_resample=budget.n_perm_resample,
        confidence=_confidence(params),
    )


def _modality_secondary(
    prep: _Prepared, eff: Effect, params: dict[str, Any], rng: np.random.Generator
) -> tuple[dict[str, float], dict[str, list[float]], dict[str, Any]]:
    layers = prep.data.layers
    codes = _codes(prep.factors["modality"])
    strata = _cell_codes(prep.factors, ("meaning", "language"))
    numbers = _band_numbers(eff, prep.bands, "net_silhouette/modality")
    numbers |= _layer_numbers(eff.net, layers, "net_silhouette/modality")
    if not _secondary(params, prep.data):
        return numbers, {"net_silhouette/modality": eff.net.tolist()}, {"layers": layers}
    D_euc = pairwise_distances(prep.data.latents, metric="euclidean")
    net_euc = _net_point(D_euc, codes, strata, rng)
    for name in BAND_NAMES:
        numbers[f"net_silhouette_euclidean/modality/{name}"] = float(net_euc[prep.bands[name]].mean())
    db = davies_bouldin(D_euc, prep.factors["modality"]).score
    numbers |= _layer_numbers(np.asarray(db), layers, "davies_bouldin_euclidean/modality")
    for lang in np.unique(prep.factors["language"]):
        rows = np.flatnonzero(prep.factors["language"] == lang)
        sub = prep.D[:, rows][:, :, rows]
        net = _net_point(sub, codes[rows], strata[rows], rng)
        numbers[f"net_silhouette/modality/{lang}/min_band"] = float(
            min(net[prep.bands[b]].mean() for b in BAND_NAMES)
        )
    curves = {
        "net_silhouette/modality": eff.net.tolist(),
        "net_silhouette/modality/ci_low": eff.ci[:, 0].tolist(),
        "net_silhouette/modality/ci_high": eff.ci[:, 1].tolist(),
        "net_silhouette_euclidean/modality": net_euc.tolist(),
        "davies_bouldin_euclidean/modality": np.nan_to_num(np.asarray(db, dtype=float), nan=-1.0).tolist(),
    }
    payloads = {"layers": layers} | _distance_tables(prep, params)
    tsne = _tsne_payload(prep, params, ("modality", "language"), rng)
    if tsne:
        payloads["tsne"] = tsne
    return numbers, curves, payloads


def _design_sizes(prep: _Prepared) -> tuple[int, int]:
    return int(np.unique(prep.factors["meaning"]).size), len(prep.data.samples)


_MODALITY_RESAMPLING = (
    "meanings subsampled without replacement (half, delete-d jackknife correction), each subsample with its own "
    "within-cell permutation null; modality permuted within meaning x language; two-sided {conf:.0%} percentile "
    "interval of the band combination from the same subsamples (each bound one-sided {half:.1%})"
)


def _modality_measurement(
    prep: _Prepared,
    eff: Effect,
    summary: Summary,
    budget: Budget,
    numbers: dict[str, float],
    curves: dict[str, list[float]],
    payloads: dict[str, Any],
) -> Measurement:
    """M1 and M2 report alike: the band aggregate, the design's sizes, and the emb token-identity control."""
    emb = prep.data.layers.index("emb")
    early = float(eff.net[prep.bands["early"]].mean())
    n_units, n_samples = _design_sizes(prep)
    conf = eff.confidence
    return Measurement(
        effect=summary.estimate,
        ci_low=summary.ci_low,
        ci_high=summary.ci_high,
        p_value=summary.p,
        n_units=n_units,
        n_samples=n_samples,
        n_boot=budget.n_resamples,
        n_perm=budget.n_perm,
        resampling=_MODALITY_RESAMPLING.format(conf=conf, half=(1 - conf) / 2),
        token_control=float(eff.net[emb]),
        explained_by_last_token=bool(early <= eff.net[emb]),
        curves=curves,
        numbers=numbers | {"se": summary.se},
        payloads=payloads,
    )


@measure("modality_separation_min_band")
def modality_separation_min_band(
    data: ClaimData, params: dict[str, Any], rng: np.random.Generator, budget: Budget
) -> Measurement:
    """M1: text and speech are separable in every band: min over bands of the band-mean net modality silhouette."""
    _check_declared(params, _MODALITY_DESIGN | {"bands": list(BAND_NAMES)}, "modality_separation_min_band")
    prep = _prepare(data, params)
    eff = _modality_effect(prep, params, rng, budget)
    summary = _combine(eff, [prep.bands[b] for b in BAND_NAMES], lambda x: x.min(axis=-1))
    numbers, curves, payloads = _modality_secondary(prep, eff, params, rng)
    return _modality_measurement(prep, eff, summary, budget, numbers, curves, payloads)


@measure("modality_gap_early_minus_late")
def modality_gap_early_minus_late(
    data: ClaimData, params: dict[str, Any], rng: np.random.Generator, budget: Budget
) -> Measurement:
    """M2: the modality gap narrows: early-band minus late-band net modality silhouette."""
    _check_declared(params, _MODALITY_DESIGN | {"bands": ["early", "late"]}, "modality_gap_early_minus_late")
    prep = _prepare(data, params)
    eff = _modality_effect(prep, params, rng, budget)
    summary = _combine(eff, [prep.bands["early"], prep.bands["late"]], lambda x: x[..., 0] - x[..., 1])
    numbers, curves, payloads = _modality_secondary(prep, eff, params, rng)
    layers = prep.data.layers
    emb = layers.index("emb")
    numbers["gap/block0_minus_final_norm"] = float(
        eff.net[layers.index("block0")] - eff.net[layers.index("final_norm")]
    )
    numbers["gap/emb_minus_last_block"] = float(eff.net[emb] - eff.net[prep.data.block_slice().stop - 1])
    return _modality_measurement(prep, eff, summary, budget, numbers, curves, payloads)


# ----------------------------------------------------------------------------------- M3 and its reference: retrieval


def _rank_score(Dqt: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Chance-free retrieval score per query: ``2 * AUC - 1`` of the correct target against the distractors.

    ``Dqt [L, q, t]`` distances from queries to candidates, ``pos [P, q]`` each query's correct candidate under
    each labelling. AUC = share of distractors farther than the correct target (ties count one half). Returns
    ``[L, P, q]``: 0 at chance, 1 when the target is always nearest, -1 when always farthest. Unlike top-1 or
    MRR, its expectation does not depend on the number of candidates, so the half-size subsamples behind the
    interval estimate the same quantity as the full set (MRR and top-1 rise when distractors are removed).
    """
    t = Dqt.shape[-1]
    q_idx = np.arange(Dqt.shape[1])[None, :]
    d_correct = Dqt[:, q_idx, pos]  # [L, P, q]
    diff = Dqt[:, None, :, :] - d_correct[..., None]  # [L, P, q, t]
    farther = (diff > 0).sum(axis=-1)
    ties = (diff == 0).sum(axis=-1) - 1  # the correct target ties with itself
    return 2.0 * (farther + 0.5 * ties) / (t - 1) - 1.0


def _target_positions(pair_q: np.ndarray, pair_t: np.ndarray) -> np.ndarray:
    """``[P, q]`` position of each query's pair id among the candidates (ids unique per candidate row)."""
    P, t = pair_t.shape
    table = np.full((P, int(max(pair_q.max(), pair_t.max())) + 1), -1, dtype=np.int64)
    table[np.arange(P)[:, None], pair_t] = np.arange(t)[None, :]
    pos = np.take_along_axis(table, pair_q, axis=1)
    if (pos < 0).any():
        raise ValueError("retrieval: a query's pair id is missing among its candidates (design not crossed)")
    return pos


def _rank_retrieval(
    groups: np.ndarray,
    pairs_of_groups: Sequence[tuple[object, object]],
    modality: np.ndarray,
    *,
    query_modality: str,
    target_modality: str,
) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """A Statistic: rank retrieval score (:func:`_rank_score`) of ``target_modality`` samples of group b from
    ``query_modality`` samples of group a, averaged over queries of all (a, b) in ``pairs_of_groups``.

    ``groups`` and ``modality`` cover the full design; ``index`` picks a subsample's part. The labelling passed
    in is the pair id (meaning), which ``effect`` permutes within the declared strata (so a permuted id always
    has its candidate).
    """
    groups = np.asarray(groups, dtype=object)
    modality = np.asarray(modality, dtype=object)

    def stat(D: np.ndarray, codes: np.ndarray, index: np.ndarray) -> np.ndarray:
        g, m = groups[index], modality[index]
        total = np.zeros((D.shape[0], codes.shape[0]))
        weight = 0
        for a, b in pairs_of_groups:
            q = np.flatnonzero((g == a) & (m == query_modality))
            t = np.flatnonzero((g == b) & (m == target_modality))
            if q.size == 0 or t.size < 2:
                continue
            pos = _target_positions(codes[:, q], codes[:, t])
            total += _rank_score(D[:, q][:, :, t], pos).sum(axis=2)
            weight += q.size
        if weight == 0:
            raise ValueError("retrieval: no (query, target) group pair has queries and >= 2 candidates")
        return (total / weight).T

    return stat


def _retrieval_effect(
    prep: _Prepared,
    stat: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    strata: tuple[str, ...],
    params: dict[str, Any],
    rng: np.random.Generator,
    budget: Budget,
) -> Effect:
    design = Design(factors=prep.factors, units=("meaning",), strata=strata)
    return effect(
        stat,
        prep.D,
        design,
        "meaning",
        rng=rng,
        n_perm=budget.n_perm,
        n_resamples=budget.n_resamples,
        n_perm_resample=budget.n_perm_resample,
        confidence=_confidence(params),
    )


def _crossmodal_pairs(prep: _Prepared) -> list[tuple[object, object]]:
    return [(lang, lang) for lang in np.unique(prep.factors["language"])]


def _translation_pairs(prep: _Prepared) -> list[tuple[object, object]]:
    langs = np.unique(prep.factors["language"])
    if langs.size < 2:
        raise ValueError(f"text translation retrieval needs >= 2 languages; got {langs.tolist()}")
    return [(a, b) for a in langs for b in langs if a != b]


def _crossmodal_stat(prep: _Prepared):
    return _rank_retrieval(
        prep.factors["language"],
        _crossmodal_pairs(prep),
        prep.factors["modality"],
        query_modality=SPEECH,
        target_modality=TEXT,
    )


def _translation_stat(prep: _Prepared):
    return _rank_retrieval(
        prep.factors["language"],
        _translation_pairs(prep),
        prep.factors["modality"],
        query_modality=TEXT,
        target_modality=TEXT,
    )


def _classic_retrieval(
    prep: _Prepared, pairs: Sequence[tuple[object, object]], query_modality: str, target_modality: str
) -> dict[str, np.ndarray]:
    """Top-1 and MRR (raw, and net of their chance 1/t and H(t)/t) per layer, averaged over group pairs."""
    acc = {"top1": 0.0, "mrr": 0.0, "top1_net": 0.0, "mrr_net": 0.0}
    weight = 0
    for a, b in pairs:
        rows = np.flatnonzero(
            ((prep.factors["language"] == a) & (prep.factors["modality"] == query_modality))
            | ((prep.factors["language"] == b) & (prep.factors["modality"] == target_modality))
        )
        role = np.where(
            (prep.factors["language"][rows] == a) & (prep.factors["modality"][rows] == query_modality),
            "q",
            "t",
        )
        res = retrieval(
            prep.D[:, rows][:, :, rows], prep.factors["meaning"][rows], role, query="q", target="t"
        )
        for key, value in (
            ("top1", res.top1),
            ("mrr", res.mrr),
            ("top1_net", np.asarray(res.top1) - res.chance_top1),
            ("mrr_net", np.asarray(res.mrr) - res.chance_mrr),
        ):
            acc[key] = acc[key] + res.n_queries * np.asarray(value)
        weight += res.n_queries
    return {key: np.asarray(value) / weight for key, value in acc.items()}


_RETRIEVAL_RESAMPLING = (
    "meanings subsampled without replacement (half, delete-d jackknife correction), each with its own "
    "within-cell permutation null of meaning ids; rank retrieval score 2*AUC-1 (free of the candidate count); "
    "two-sided {conf:.0%} percentile interval of the {agg} from the same subsamples (each bound "
    "one-sided {half:.1%})"
)


def _retrieval_measurement(
    prep: _Prepared,
    eff: Effect,
    summary: Summary,
    budget: Budget,
    series: str,
    *,
    power: float | None,
    agg: str,
) -> Measurement:
    layers = prep.data.layers
    numbers = _band_numbers(eff, prep.bands, series)
    numbers |= _layer_numbers(eff.net, layers, series)
    numbers["se"] = summary.se
    if power is not None:
        numbers["power_at_epsilon"] = power
    conf = eff.confidence
    n_units, n_samples = _design_sizes(prep)
    resampling = _RETRIEVAL_RESAMPLING.format(conf=conf, half=(1 - conf) / 2, agg=agg)
    if power is not None:
        resampling += f"; power = Phi(eps/se - z) at one-sided {(1 - conf) / 2:.1%}, se of the max over bands"
    return Measurement(
        effect=summary.estimate,
        ci_low=summary.ci_low,
        ci_high=summary.ci_high,
        p_value=summary.p,
        power=power,
        n_units=n_units,
        n_samples=n_samples,
        n_boot=budget.n_resamples,
        n_perm=budget.n_perm,
        resampling=resampling,
        token_control=float(eff.net[layers.index("emb")]),
        explained_by_last_token=None,
        curves={
            series: eff.net.tolist(),
            f"{series}/ci_low": eff.ci[:, 0].tolist(),
            f"{series}/ci_high": eff.ci[:, 1].tolist(),
        },
        numbers=numbers,
        payloads={"layers": layers},
    )


def _add_classic(m: Measurement, prep: _Prepared, pairs, query: str, target: str, name: str) -> None:
    """Secondary top-1 / MRR numbers and curves (never decide)."""
    classic = _classic_retrieval(prep, pairs, query, target)
    for key, values in classic.items():
        m.curves[f"retrieval_{key}/{name}"] = values.tolist()
        for band in BAND_NAMES:
            m.numbers[f"retrieval_{key}/{name}/{band}"] = float(values[prep.bands[band]].mean())


def _power(summary: Summary, epsilon: float, alpha: float) -> float | None:
    """Equivalence power at the observed n; None (unknown, so never 'holds') when the draws do not vary, as on
    collapsed latents where every score ties."""
    if not (np.isfinite(summary.se) and summary.se > 0):
        return None
    return equivalence_power(summary, eps=epsilon, alpha=alpha)


@measure("crossmodal_retrieval_max_band")
def crossmodal_retrieval_max_band(
    data: ClaimData, params: dict[str, Any], rng: np.random.Generator, budget: Budget
) -> Measurement:
    """M3: speech -> own transcript's text retrieval within language (rank score 2*AUC-1, net of the
    permutation null), max over band means.

    Absence is claimed for every band, so the decisive number is the largest band; a max is biased upwards,
    which only makes the equivalence test harder to pass.
    """
    if "epsilon" not in params:
        raise ValueError("params['epsilon'] (the rule's equivalence margin) is required to compute the power")
    _check_declared(params, _M3_DESIGN, "crossmodal_retrieval_max_band")
    prep = _prepare(data, params)
    strata = ("language", "modality", "voice")
    eff = _retrieval_effect(prep, _crossmodal_stat(prep), strata, params, rng, budget)
    summary = _combine(eff, [prep.bands[b] for b in BAND_NAMES], lambda x: x.max(axis=-1))
    power = _power(summary, float(params["epsilon"]), _alpha(params))
    m = _retrieval_measurement(
        prep, eff, summary, budget, "retrieval_rank/speech_to_text", power=power, agg="max over band means"
    )
    if _secondary(params, prep.data):
        _add_classic(m, prep, _crossmodal_pairs(prep), SPEECH, TEXT, "speech_to_text")
        m.payloads |= _distance_tables(prep, params)
    return m


@measure("text_translation_retrieval_block_mean")
def text_translation_retrieval_block_mean(
    data: ClaimData, params: dict[str, Any], rng: np.random.Generator, budget: Budget
) -> Measurement:
    """M3's positive reference: text -> translation retrieval over all ordered language pairs on the same
    crossmodal latents and with M3's score, averaged over all blocks (if the mean over blocks clears M3's
    margin, some band does: the scale M3 rules out is visible in these latents)."""
    _check_declared(params, _REF_DESIGN, "text_translation_retrieval_block_mean")
    prep = _prepare(data, params, modalities=(TEXT,))
    eff = _retrieval_effect(prep, _translation_stat(prep), ("language",), params, rng, budget)
    # Mean over all blocks, not a max: a max is biased upwards, which would make a presence test liberal.
    summary = eff.band(np.concatenate([prep.bands[b] for b in BAND_NAMES]))
    m = _retrieval_measurement(
        prep, eff, summary, budget, "retrieval_rank/translation", power=None, agg="mean over all blocks"
    )
    if _secondary(params, prep.data):
        _add_classic(m, prep, _translation_pairs(prep), TEXT, TEXT, "translation")
    return m


# --------------------------------------------------------------------------------- M4: language x modality


#: Order of the band parts in M4's statistic output.
_M4_PARTS: tuple[tuple[str, str], ...] = tuple((m, b) for m in (TEXT, SPEECH) for b in BAND_NAMES)


def _language_by_modality_stat(modality: np.ndarray):
    """A Statistic returning ``[P, 2L]``: net-able language silhouette within text (first L) and speech (last L)."""
    modality = np.asarray(modality)

    def stat(D: np.ndarray, codes: np.ndarray, index: np.ndarray) -> np.ndarray:
        sub = modality[index]
        out = []
        for m in (TEXT, SPEECH):
            rows = np.flatnonzero(sub == m)
            out.append(silhouette_batch(D[:, rows][:, :, rows], codes[:, rows]))
        return np.concatenate(out, axis=1)

    return stat


def _m4_reduce(thr_presence: float, thr_drop: float) -> Callable[[np.ndarray], np.ndarray]:
    """``min`` over the six parts, each net of its own threshold (see the M4 claim file for why)."""

    def reduce(x: np.ndarray) -> np.ndarray:
        te, tm, tl, se_, sm, sl = (x[..., i] for i in range(6))
        drop = np.minimum(te - tm, tl - tm)
        parts = np.stack([te, tl, se_, sm, sl], axis=-1) - thr_presence
        return np.minimum(parts.min(axis=-1), drop - thr_drop)

    return reduce


def _m4_thresholds(params: dict[str, Any]) -> tuple[float, float]:
    try:
        return float(params["presence_threshold"]), float(params["drop_threshold"])
    except KeyError as error:
        raise ValueError(f"M4 measure needs params {error.args[0]!r} (see the claim file)") from None


@measure("language_by_modality_bands")
def language_by_modality_bands(
    data: ClaimData, params: dict[str, Any], rng: np.random.Generator, budget: Budget
) -> Measurement:
    """M4: language clusters early and late in both modalities, a middle-band dip in text, none in speech.

    effect = min(text early, text late, speech early, speech middle, speech late net language silhouettes minus
    presence_threshold; min(text early - text middle, text late - text middle) minus drop_threshold).
    """
    _check_declared(params, _M4_DESIGN, "language_by_modality_bands")
    prep = _prepare(data, params)
    langs = np.unique(prep.factors["language"])
    if langs.size < 2:
        raise ValueError(f"M4 needs >= 2 languages (set sample_filter language); got {langs.tolist()}")
    thr_p, thr_d = _m4_thresholds(params)
    L = len(prep.data.layers)
    design = Design(factors=prep.factors, units=("meaning",), strata=("meaning", "modality", "voice"))
    eff = effect(
        _language_by_modality_stat(prep.factors["modality"]),
        prep.D,
        design,
        "language",
        rng=rng,
        n_perm=budget.n_perm,
        n_resamples=budget.n_resamples,
        n_perm_resample=budget.n_perm_resample,
        confidence=_confidence(params),
    )
    offset = {TEXT: 0, SPEECH: L}
    parts = [prep.bands[b] + offset[m] for m, b in _M4_PARTS]
    summary = _combine(eff, parts, _m4_reduce(thr_p, thr_d))
    emb = prep.data.layers.index("emb")
    band_vals = {f"{m}/{b}": float(eff.net[p].mean()) for (m, b), p in zip(_M4_PARTS, parts, strict=True)}
    token_control = min(eff.net[emb], eff.net[L + emb]) - thr_p
    early_part = min(band_vals["text/early"], band_vals["speech/early"]) - thr_p
    numbers: dict[str, float] = {f"net_silhouette/language/{k}": v for k, v in band_vals.items()}
    for m in (TEXT, SPEECH):
        lo, mid, hi = (band_vals[f"{m}/{b}"] for b in BAND_NAMES)
        numbers[f"middle_drop/{m}"] = float(min(lo - mid, hi - mid))
        numbers |= _layer_numbers(
            eff.net[offset[m] : offset[m] + L], prep.data.layers, f"net_silhouette/language/{m}"
        )
    numbers["middle_drop/text_minus_speech"] = numbers["middle_drop/text"] - numbers["middle_drop/speech"]
    numbers["se"] = summary.se
    for (m, b), p in zip(_M4_PARTS, parts, strict=True):
        s = eff.band(p)
        numbers[f"net_silhouette/language/{m}/{b}/ci_low"] = s.ci_low
        numbers[f"net_silhouette/language/{m}/{b}/ci_high"] = s.ci_high
    curves = {
        f"net_silhouette/language/{m}": eff.net[offset[m] : offset[m] + L].tolist() for m in (TEXT, SPEECH)
    } | {
        f"net_silhouette/language/{m}/ci_{side}": eff.ci[offset[m] : offset[m] + L, j].tolist()
        for m in (TEXT, SPEECH)
        for j, side in enumerate(("low", "high"))
    }
    payloads: dict[str, Any] = {"layers": prep.data.layers}
    if _secondary(params, prep.data):
        payloads |= _distance_tables(prep, params)
        tsne = _tsne_payload(prep, params, ("modality", "language"), rng)
        if tsne:
            payloads["tsne"] = tsne
    n_units, n_samples = _design_sizes(prep)
    conf = eff.confidence
    return Measurement(
        effect=summary.estimate,
        ci_low=summary.ci_low,
        ci_high=summary.ci_high,
        p_value=summary.p,
        n_units=n_units,
        n_samples=n_samples,
        n_boot=budget.n_resamples,
        n_perm=budget.n_perm,
        resampling=(
            "meanings subsampled without replacement (half, delete-d jackknife correction); language permuted "
            "within meaning x modality x voice; the six band parts come from the same permutations and "
            f"subsamples; two-sided {conf:.0%} percentile interval of their min (each bound one-sided "
            f"{(1 - conf) / 2:.1%})"
        ),
        token_control=float(token_control),
        explained_by_last_token=bool(early_part <= token_control),
        curves=curves,
        numbers=numbers,
        payloads=payloads,
    )


# ------------------------------------------------------------------------------------------------- controls


def _with_latents(data: ClaimData, latents: np.ndarray, rows: np.ndarray | None = None) -> ClaimData:
    """A copy of ``data`` with new latents; ``rows`` reorders last-token ids with them (labels stay put)."""
    ids = data.last_token_ids if rows is None else data.last_token_ids[rows]
    return ClaimData(
        latents=latents.astype(np.float32),
        layers=list(data.layers),
        samples=list(data.samples),
        last_token_ids=np.asarray(ids),
        model=data.model,
        model_kind=data.model_kind,
        extra=dict(data.extra) | {"control": True},
    )


def _residualise(latents: np.ndarray, classes: np.ndarray, within: np.ndarray | None = None) -> np.ndarray:
    """Remove each class's mean (per layer, within each level of ``within``) and restore the level's mean:
    the labelled structure's first moment goes, the within-class geometry stays."""
    X = latents.astype(np.float64).copy()
    scope = np.zeros(classes.size, dtype=np.int64) if within is None else _codes(within)
    for s in np.unique(scope):
        in_scope = scope == s
        grand = X[in_scope].mean(axis=0)
        for c in np.unique(classes[in_scope]):
            rows = in_scope & (classes == c)
            X[rows] += grand - X[rows].mean(axis=0)
    return X


def _permute_rows(
    latents: np.ndarray, strata: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    perm = permutation_indices(strata, 1, rng=rng, n=strata.size)[0]
    return latents[perm], perm


def _spread(X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Within-class RMS distance to the class mean per layer, ``[L]``, for ``X [n, L, d]``."""
    resid = X.copy()
    for c in np.unique(classes):
        rows = classes == c
        resid[rows] -= X[rows].mean(axis=0)
    return np.sqrt((resid**2).sum(axis=-1).mean(axis=0))


def _unit_vectors(rng: np.random.Generator, k: int, L: int, d: int) -> np.ndarray:
    U = rng.standard_normal((k, L, d))
    return U / np.linalg.norm(U, axis=-1, keepdims=True)


class _OffsetDistances:
    """Distances of ``block + a * step`` for any scale ``a`` from three Gram matrices per layer.

    Calibration evaluates the planted effect several times per plant; expanding
    ``(X + a S)(X + a S)^T = XX^T + a (XS^T + SX^T) + a^2 SS^T`` makes each evaluation a few elementwise operations
    instead of a fresh distance computation. Same distances as ``pairwise_distances`` up to rounding.
    """

    def __init__(self, block: np.ndarray, step: np.ndarray, metric: str) -> None:
        if metric not in ("cosine", "euclidean"):
            raise ValueError(f"plant calibration supports metric 'cosine' or 'euclidean'; got {metric!r}")
        X = np.ascontiguousarray(block.transpose(1, 0, 2))  # [L, n, d]
        S = np.ascontiguousarray(step.transpose(1, 0, 2))
        self.g0 = X @ X.transpose(0, 2, 1)
        cross = X @ S.transpose(0, 2, 1)
        self.g1 = cross + cross.transpose(0, 2, 1)
        self.g2 = S @ S.transpose(0, 2, 1)
        self.metric = metric

    def __call__(self, a: float) -> np.ndarray:
        G = self.g0 + a * self.g1 + (a * a) * self.g2
        diag = np.einsum("lii->li", G)
        if self.metric == "cosine":
            norm = np.sqrt(np.maximum(diag, 1e-300))
            D = np.clip(1.0 - G / (norm[:, :, None] * norm[:, None, :]), 0.0, 2.0)
        else:
            D = np.sqrt(np.maximum(diag[:, :, None] + diag[:, None, :] - 2.0 * G, 0.0))
        D = 0.5 * (D + D.transpose(0, 2, 1))
        idx = np.arange(D.shape[1])
        D[:, idx, idx] = 0.0
        return D


def _plant_offsets(
    X: np.ndarray,
    classes: np.ndarray,
    rows: np.ndarray,
    layers: np.ndarray,
    score: Callable[[np.ndarray], float],
    target: float,
    rng: np.random.Generator,
    *,
    metric: str,
    what: str,
) -> np.ndarray:
    """Add ``a * spread_l * u_{class, l}`` to ``X[rows][:, layers]`` with ``a`` such that ``score`` = target.

    ``score`` receives the distances ``[len(layers), len(rows), len(rows)]`` of the candidate block. Returns the
    updated full ``X``.
    """
    block = X[np.ix_(rows, layers)]
    cls = classes[rows]
    codes = _codes(cls)
    U = _unit_vectors(rng, int(codes.max()) + 1, layers.size, X.shape[-1])
    step = _spread(block, cls)[None, :, None] * U[codes]
    distances = _OffsetDistances(block, step, metric)

    a = plant_scale(lambda s: score(distances(s)), target, what=what)
    X = X.copy()
    X[np.ix_(rows, layers)] = block + a * step
    return X


def _sil_score(
    codes: np.ndarray, strata: np.ndarray, rng: np.random.Generator
) -> Callable[[np.ndarray], float]:
    """Band-mean net silhouette from distances ``[L, n, n]`` (fixed permutations: a deterministic target)."""
    perm = permutation_indices(strata, _PILOT_PERM, rng=rng, n=codes.size)
    labellings = np.vstack([codes[None], codes[perm]])

    def score(D: np.ndarray) -> float:
        vals = silhouette_batch(D, labellings)
        return float((vals[0] - vals[1:].mean(axis=0)).mean())

    return score


def _band_layers(data: ClaimData, band: str) -> np.ndarray:
    """Positions of a band's blocks; ``final_norm`` travels with the late band (it normalises the last block)."""
    pos = _band_positions(data)[band]
    if band == "late" and "final_norm" in data.layers:
        pos = np.append(pos, data.layers.index("final_norm"))
    return pos


def _shuffle_modality(data: ClaimData, params: dict[str, Any], rng: np.random.Generator) -> ClaimData:
    """Null for M1/M2: modality means removed, then latents permuted within meaning x language cells."""
    sel = _select(data, params)
    f = _factors(sel)
    X = _residualise(sel.latents, f["modality"])
    X, perm = _permute_rows(X, _cell_codes(f, ("meaning", "language")), rng)
    return _with_latents(sel, X, perm)


def _plant_modality(
    data: ClaimData, params: dict[str, Any], targets: dict[str, float], rng: np.random.Generator
) -> ClaimData:
    """Modality offsets on already shuffled ``data`` so each band in ``targets`` reaches its net silhouette."""
    f = _factors(data)
    metric = _param(params, "metric", "cosine")
    codes = _codes(f["modality"])
    strata = _cell_codes(f, ("meaning", "language"))
    rows = np.arange(codes.size)
    X = data.latents.astype(np.float64)
    for band, target in targets.items():
        layers = _band_layers(data, band)
        core = _band_positions(data)[band]  # calibrate on the band's blocks, the ones the measure averages
        score_fn = _sil_score(codes, strata, rng)
        sel = np.isin(layers, core)

        def score(D: np.ndarray, sel: np.ndarray = sel, score_fn=score_fn) -> float:
            return score_fn(D[sel])

        X = _plant_offsets(
            X,
            f["modality"],
            rows,
            layers,
            score,
            target,
            rng,
            metric=metric,
            what=f"{band} net modality silhouette",
        )
    return _with_latents(data, X)


def _plant_m1(base: ClaimData, params: dict[str, Any], size: float, rng: np.random.Generator) -> ClaimData:
    """Modality offsets in every band so each band's net modality silhouette is ``size`` (so is their min)."""
    return _plant_modality(_shuffle_modality(base, params, rng), params, dict.fromkeys(BAND_NAMES, size), rng)


def _plant_m2(base: ClaimData, params: dict[str, Any], size: float, rng: np.random.Generator) -> ClaimData:
    """Modality offsets in the early band only, so early minus late net modality silhouette is ``size``."""
    shuffled = _shuffle_modality(base, params, rng)
    f = _factors(shuffled)
    metric = _param(params, "metric", "cosine")
    late_latents = shuffled.latents[:, _band_positions(shuffled)["late"]]
    late = _sil_score(_codes(f["modality"]), _cell_codes(f, ("meaning", "language")), rng)(
        pairwise_distances(late_latents, metric=metric)
    )
    return _plant_modality(shuffled, params, {"early": size + late}, rng)


controls("modality_separation_min_band", Controls(shuffle=_shuffle_modality, plant=_plant_m1))
controls("modality_gap_early_minus_late", Controls(shuffle=_shuffle_modality, plant=_plant_m2))


def _shuffle_crossmodal(data: ClaimData, params: dict[str, Any], rng: np.random.Generator) -> ClaimData:
    """Null for M3: speech latents permuted among meanings within language x voice (text left intact, so the
    translation reference on the same latents still holds)."""
    sel = _select(data, params)
    f = _factors(sel)
    strata = _cell_codes(f, ("language", "modality", "voice"))
    speech = f["modality"] == SPEECH
    perm = np.arange(speech.size)
    perm[speech] = np.flatnonzero(speech)[permutation_indices(strata[speech], 1, rng=rng)[0]]
    return _with_latents(sel, sel.latents[perm], perm)


def _retrieval_score(stat, codes: np.ndarray) -> Callable[[np.ndarray], float]:
    def score(D: np.ndarray) -> float:
        return float(stat(D, codes[None], np.arange(codes.size))[0].mean())

    return score


def _plant_pairs(
    data: ClaimData,
    params: dict[str, Any],
    size: float,
    rng: np.random.Generator,
    pair_keys: Sequence[str],
    stat_for: Callable[[_Prepared], Any],
) -> ClaimData:
    """Shared offsets per pair (``pair_keys`` cell) so band-mean normalised retrieval is ``size`` in each band."""
    if size <= 0:
        return data
    f = _factors(data)
    metric = _param(params, "metric", "cosine")
    prep = _Prepared(data=data, D=np.zeros((1, 1, 1)), factors=f, bands=_band_positions(data), metric=metric)
    stat = stat_for(prep)
    codes = _codes(f["meaning"])
    pair = _cell_codes(f, pair_keys)
    X = data.latents.astype(np.float64)
    rows = np.flatnonzero(np.isin(f["modality"], [TEXT, SPEECH]))
    for band in BAND_NAMES:
        layers = _band_layers(data, band)
        sel = np.isin(layers, _band_positions(data)[band])
        base_score = _retrieval_score(stat, codes)

        def score(D: np.ndarray, sel: np.ndarray = sel, base_score=base_score) -> float:
            return base_score(D[sel])

        X = _plant_offsets(
            X, pair, rows, layers, score, size, rng, metric=metric, what=f"{band} normalised retrieval"
        )
    return _with_latents(data, X)


def _plant_m3(base: ClaimData, params: dict[str, Any], size: float, rng: np.random.Generator) -> ClaimData:
    """Each (meaning, language) pair's text and clips share an offset: speech -> text retrieval = ``size``."""
    data = _shuffle_crossmodal(base, params, rng)
    return _plant_pairs(data, params, size, rng, ("meaning", "language"), _crossmodal_stat)


def _shuffle_translation(data: ClaimData, params: dict[str, Any], rng: np.random.Generator) -> ClaimData:
    """Null for the reference: text latents permuted among meanings within language."""
    sel = _select(data, params, modalities=(TEXT,))
    f = _factors(sel)
    X, perm = _permute_rows(sel.latents, _codes(f["language"]), rng)
    return _with_latents(sel, X, perm)


def _plant_translation(
    base: ClaimData, params: dict[str, Any], size: float, rng: np.random.Generator
) -> ClaimData:
    """Each meaning's texts share an offset across languages: translation retrieval = ``size``."""
    data = _shuffle_translation(base, params, rng)
    return _plant_pairs(data, params, size, rng, ("meaning",), _translation_stat)


controls("crossmodal_retrieval_max_band", Controls(shuffle=_shuffle_crossmodal, plant=_plant_m3))
controls(
    "text_translation_retrieval_block_mean", Controls(shuffle=_shuffle_translation, plant=_plant_translation)
)


def _shuffle_m4(data: ClaimData, params: dict[str, Any], rng: np.random.Generator) -> ClaimData:
    """Null for M4: language means removed within each modality, latents permuted within meaning x modality x
    voice (the language labels then carry nothing)."""
    sel = _select(data, params)
    f = _factors(sel)
    X = _residualise(sel.latents, f["language"], within=f["modality"])
    X, perm = _permute_rows(X, _cell_codes(f, ("meaning", "modality", "voice")), rng)
    return _with_latents(sel, X, perm)


def _plant_m4(base: ClaimData, params: dict[str, Any], size: float, rng: np.random.Generator) -> ClaimData:
    """Language offsets: text early and late, speech in every band, each at presence_threshold + size; text's
    middle band keeps the null (about 0), so its drop is at least presence_threshold + size >= drop_threshold
    + size and the combined effect is ``size``."""
    data = _shuffle_m4(base, params, rng)
    thr_p, thr_d = _m4_thresholds(params)
    if thr_p < thr_d:
        raise ValueError("plant for M4 assumes presence_threshold >= drop_threshold")
    f = _factors(data)
    metric = _param(params, "metric", "cosine")
    X = data.latents.astype(np.float64)
    cells = {TEXT: ("early", "late"), SPEECH: BAND_NAMES}
    for modality, band_names in cells.items():
        rows = np.flatnonzero(f["modality"] == modality)
        codes = _codes(f["language"][rows])
        strata = _cell_codes({k: v[rows] for k, v in f.items()}, ("meaning", "voice"))
        for band in band_names:
            layers = _band_layers(data, band)
            sel = np.isin(layers, _band_positions(data)[band])
            score_fn = _sil_score(codes, strata, rng)

            def score(D: np.ndarray, sel: np.ndarray = sel, score_fn=score_fn) -> float:
                return score_fn(D[sel])

            X = _plant_offsets(
                X,
                f["language"],
                rows,
                layers,
                score,
                thr_p + size,
                rng,
                metric=metric,
                what=f"{modality} {band} net language silhouette",
            )
    return _with_latents(data, X)


controls("language_by_modality_bands", Controls(shuffle=_shuffle_m4, plant=_plant_m4))
