"""The interval convention the claims used before the kit (benchmarks/coverage.py's baseline).

Half-sampling of the design's units without replacement with the delete-d jackknife rescaling
(Politis-Romano / Shao-Wu), percentile intervals. Kept here, out of the library, only so the coverage
simulation can compare the kit's jackknife-t with what it replaced, in the same run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from benchmark.stats._checks import as_layers, check_positive_int, check_rng
from benchmark.stats.cluster import Statistic
from benchmark.stats.design import Design, permutation_indices
from benchmark.stats.inference import p_value


@dataclass(frozen=True)
class Resamples:
    """Subsamples of a design: ``indices`` (sorted, duplicate-free index arrays) and the rescaling ``correction``."""

    indices: tuple[np.ndarray, ...]
    correction: float


def subsample(
    design: Design,
    n_resamples: int,
    *,
    rng: np.random.Generator,
    fraction: float = 0.5,
    balance: str | None = None,
) -> Resamples:
    """Draw ``n_resamples`` subsamples of the units without replacement (see the module docstring).

    Parameters
    ----------
    n_resamples : int
    rng : np.random.Generator
    fraction : float in (0, 1)
        Share of each unit factor's levels kept (per ``balance`` level if given); at least 1 and at most
        ``n_u - 1`` levels are kept, so the correction is finite.
    balance : factor name, optional
        Subsample the units within each level of this factor (units must be nested in it).

    Returns
    -------
    Resamples
        Sorted index arrays with no repeated index, and ``correction = sqrt(mean_u m_u / (n_u - m_u))``.
    """
    rng = check_rng(rng)
    n_resamples = check_positive_int(n_resamples, name="n_resamples")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie in (0, 1); got {fraction}")
    if balance is not None:
        for u in design.units:
            if not design.is_nested(u, balance):
                raise ValueError(f"balance={balance!r} requires unit {u!r} nested in it")
    groups = design.codes(balance)[0] if balance is not None else np.zeros(design.n, dtype=np.int64)
    plans = []  # per unit factor: list of (levels in a balance group, m kept)
    ratios = []
    for u in design.units:
        ucodes = design.codes(u)[0]
        per_group = []
        for g in np.unique(groups):
            levels = np.unique(ucodes[groups == g])
            if levels.size < 2:
                raise ValueError(
                    f"unit {u!r} has {levels.size} level(s) in a balance group; subsampling needs >= 2"
                )
            m = int(np.clip(round(fraction * levels.size), 1, levels.size - 1))
            per_group.append((levels, m))
            ratios.append(m / (levels.size - m))
        plans.append((ucodes, per_group))
    correction = float(np.sqrt(np.mean(ratios)))
    out = []
    for _ in range(n_resamples):
        keep = np.ones(design.n, dtype=bool)
        for ucodes, per_group in plans:
            chosen = np.concatenate([rng.choice(levels, size=m, replace=False) for levels, m in per_group])
            keep &= np.isin(ucodes, chosen)
        out.append(np.flatnonzero(keep))
    return Resamples(indices=tuple(out), correction=correction)


@dataclass(frozen=True)
class Summary:
    """One aggregated effect: estimate, confidence interval, permutation p-value, and the draws behind them."""

    estimate: float
    ci_low: float
    ci_high: float
    p: float
    se: float
    draws: np.ndarray = field(repr=False)  # corrected subsample draws [B]


@dataclass(frozen=True)
class Effect:
    """Net effect of a statistic per layer, with everything needed to aggregate it.

    Attributes
    ----------
    observed, null_mean, net, p, se : arrays [L]
    ci : array [L, 2]
        Two-sided ``confidence`` interval of the net effect.
    null : array [P, L]
        Statistic under the permuted labellings (the same labelling for all layers in a row).
    draws : array [B, L]
        Corrected subsample draws of the net effect.
    confidence : float
    n_units : int
        Number of top-level units (product over unit factors) behind the interval; used by the power.
    """

    observed: np.ndarray
    null_mean: np.ndarray
    net: np.ndarray
    p: np.ndarray
    ci: np.ndarray
    se: np.ndarray
    null: np.ndarray = field(repr=False)
    draws: np.ndarray = field(repr=False)
    confidence: float
    n_units: int

    def _summary(self, est: float, null_vals: np.ndarray, draws: np.ndarray) -> Summary:
        a = (1.0 - self.confidence) / 2.0
        lo, hi = np.quantile(draws, [a, 1.0 - a])
        return Summary(
            estimate=float(est),
            ci_low=float(lo),
            ci_high=float(hi),
            p=float(p_value(est, null_vals)),
            se=float(draws.std(ddof=1)) if draws.size > 1 else float("nan"),
            draws=draws,
        )

    def band(self, layers: np.ndarray | slice) -> Summary:
        """Mean net effect over the given layer positions (e.g. ``bands(L)["middle"] + offset``)."""
        idx = np.arange(self.net.size)[layers]
        if idx.size == 0:
            raise ValueError("layers selects no layer")
        centred = self.null - self.null_mean
        return self._summary(
            self.net[idx].mean(), centred[:, idx].mean(axis=1), self.draws[:, idx].mean(axis=1)
        )

    def max_over_layers(self, layers: np.ndarray | slice | None = None) -> Summary:
        """Largest net effect over layers, with the null of the maximum (corrects for the choice of layer).

        The interval comes from the per-subsample maximum and is biased upwards like any maximum; use it for
        presence claims only.
        """
        idx = np.arange(self.net.size)[slice(None) if layers is None else layers]
        centred = self.null - self.null_mean
        return self._summary(self.net[idx].max(), centred[:, idx].max(axis=1), self.draws[:, idx].max(axis=1))


def _subsample(Dl: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``Dl[:, idx][:, :, idx]`` as a C-contiguous ``[L, m, m]`` (same values as the 3-D fancy index
    ``Dl[:, idx[:, None], idx[None, :]]``, which is slower and lays the layer axis innermost)."""
    out = np.empty((Dl.shape[0], idx.size, idx.size), dtype=Dl.dtype)
    for layer in range(Dl.shape[0]):  # one [m, n] temporary at a time
        np.take(np.take(Dl[layer], idx, axis=0), idx, axis=1, out=out[layer])
    return out


def effect(
    stat: Statistic,
    D: np.ndarray,
    design: Design,
    label: str,
    *,
    rng: np.random.Generator,
    n_perm: int = 1000,
    n_resamples: int = 200,
    n_perm_resample: int = 20,
    strata: tuple[str, ...] | None = None,
    fraction: float = 0.5,
    balance: str | None = None,
    confidence: float = 0.95,
) -> Effect:
    """Net effect of ``stat`` for the labelling ``design.factors[label]`` on distances ``D``.

    Parameters
    ----------
    stat : Statistic
        ``stat(D [L, m, m], codes [P, m], index [m]) -> [P, L]``, greater = stronger (negate otherwise).
    D : array [n, n] or [L, n, n]
        Distances over the design's samples, in the design's order.
    design : Design
    label : str
        The factor whose clustering is tested (for retrieval: the pair id factor).
    rng : np.random.Generator
    n_perm : int
        Permutations for the null and p-value of the full data.
    n_resamples, n_perm_resample : int
        Subsamples for the interval, and permutations per subsample for its chance level.
    strata : tuple of factor names, optional
        Permutation strata (default: ``design.strata``).
    fraction, balance :
        Passed to :meth:`Design.subsample`.
    confidence : float in (0, 1)
        Two-sided level of the intervals (0.90 gives one-sided 5% bounds).
    """
    rng = check_rng(rng)
    if not isinstance(design, Design):
        raise TypeError(f"design must be a benchmark.stats.Design; got {type(design).__name__}")
    Dl, _ = as_layers(D)
    if Dl.shape[-1] != design.n:
        raise ValueError(f"D has {Dl.shape[-1]} samples but the design has {design.n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1); got {confidence}")
    n_perm = check_positive_int(n_perm, name="n_perm")
    n_perm_resample = check_positive_int(n_perm_resample, name="n_perm_resample")
    codes = design.codes(label)[0]
    s_codes = design.strata_codes(strata)
    everyone = np.arange(design.n)

    observed = np.asarray(stat(Dl, codes[None], everyone), dtype=np.float64)[0]
    perm = permutation_indices(s_codes, n_perm, rng=rng, n=design.n)
    null = np.asarray(stat(Dl, codes[perm], everyone), dtype=np.float64)
    null_mean = null.mean(axis=0)
    net = observed - null_mean

    res = subsample(design, n_resamples, rng=rng, fraction=fraction, balance=balance)
    draws = np.empty((len(res.indices), net.size))
    for b, idx in enumerate(res.indices):
        sub = _subsample(Dl, idx)
        c = codes[idx]
        sp = permutation_indices(
            None if s_codes is None else s_codes[idx], n_perm_resample, rng=rng, n=idx.size
        )
        vals = np.asarray(stat(sub, np.vstack([c[None], c[sp]]), idx), dtype=np.float64)
        draws[b] = net + res.correction * ((vals[0] - vals[1:].mean(axis=0)) - net)
    a = (1.0 - confidence) / 2.0
    ci = np.quantile(draws, [a, 1.0 - a], axis=0).T
    n_units = int(np.prod([np.unique(design.factors[u]).size for u in design.units]))
    return Effect(
        observed=observed,
        null_mean=null_mean,
        net=net,
        p=np.asarray(p_value(observed, null)),
        ci=ci,
        se=draws.std(axis=0, ddof=1) if draws.shape[0] > 1 else np.full(net.size, np.nan),
        null=null,
        draws=draws,
        confidence=confidence,
        n_units=n_units,
    )
