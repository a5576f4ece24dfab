"""Effects with permutation nulls and design-based intervals: the machinery every claim uses.

For a statistic ``T`` (greater = stronger effect; see :data:`benchmark.stats.cluster.Statistic`):

- **net effect** per layer: ``T(labels) - mean_p T(permuted labels)``, permutations within the design's strata.
  A silhouette's chance level depends on the number and sizes of clusters, so raw values are not comparable;
  net effects are (``0`` = chance).
- **p-value**: ``(b + 1) / (B + 1)`` with ``b`` the number of null draws at least as extreme (never 0).
- **interval**: subsample the design's top-level units without replacement (:meth:`Design.subsample`); on each
  subsample the net effect is recomputed (its own small null for the chance level, since cluster sizes change),
  deviations are rescaled by the design's correction, and the percentile interval is taken.
- **bands** (:func:`bands`) and **max over layers**: aggregated per permutation and per subsample with the same
  labellings across layers, so the aggregate has its own exact null and interval (no scan over layers).

Power of an equivalence test (:func:`equivalence_power`): an absence claim holds when the upper confidence bound
of the effect lies below ``eps``. If the estimate is roughly normal with standard error ``se`` (taken from the
data's own subsample draws), and the true effect is 0, the upper bound ``theta_hat + z_{1-alpha} se`` falls below
``eps`` with probability ``Phi(eps / se - z_{1-alpha})``; the same number is the power of the one-sided presence
test to detect a true effect of ``eps``. At another number of units ``n``, ``se`` scales by ``sqrt(n_obs / n)``.
``method="empirical"`` replaces the normal by the centred subsample draws themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import norm

from ._checks import as_layers, check_positive_int, check_rng
from .cluster import Statistic
from .design import Design, permutation_indices


def p_value(
    observed: np.ndarray | float, null: np.ndarray, *, alternative: str = "greater"
) -> np.ndarray | float:
    """Permutation p-value ``(b + 1) / (B + 1)``.

    ``null`` is ``[B]`` or ``[B, ...]`` matching ``observed``; ``b`` counts null values ``>= observed``
    (``alternative="greater"``) or ``<= observed`` ("less"). Lies in ``[1/(B+1), 1]``.
    """
    null = np.asarray(null, dtype=np.float64)
    obs = np.asarray(observed, dtype=np.float64)
    if null.ndim < 1 or null.shape[0] < 1 or null.shape[1:] != obs.shape:
        raise ValueError(f"null must be [B, *observed.shape]; got {null.shape} for observed {obs.shape}")
    if alternative == "greater":
        b = (null >= obs - 1e-12 * np.abs(obs)).sum(axis=0)
    elif alternative == "less":
        b = (null <= obs + 1e-12 * np.abs(obs)).sum(axis=0)
    else:
        raise ValueError(f"alternative must be 'greater' or 'less'; got {alternative!r}")
    p = (b + 1.0) / (null.shape[0] + 1.0)
    return float(p) if p.ndim == 0 else p


def bands(num_blocks: int) -> dict[str, np.ndarray]:
    """Block indices of the early, middle and late bands of ``block0..block{num_blocks-1}``.

    Thirds with edges ``round(num_blocks * k / 3)``, so early and late have equal size and the middle band takes
    the remainder (28 blocks: 9, 10, 9; 32 blocks: 11, 10, 11). Needs ``num_blocks >= 3``.
    """
    num_blocks = check_positive_int(num_blocks, name="num_blocks", minimum=3)
    e1, e2 = round(num_blocks / 3), num_blocks - round(num_blocks / 3)
    idx = np.arange(num_blocks)
    return {"early": idx[:e1], "middle": idx[e1:e2], "late": idx[e2:]}


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

    res = design.subsample(n_resamples, rng=rng, fraction=fraction, balance=balance)
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


def equivalence_power(
    summary: Summary,
    *,
    eps: float,
    alpha: float = 0.05,
    n_units: int | None = None,
    n_units_observed: int | None = None,
    method: str = "normal",
) -> float:
    """Power of the equivalence test "upper bound < eps" at a true effect of 0 (see the module docstring).

    Parameters
    ----------
    summary : Summary
        An effect (its ``se`` / ``draws`` give the data's own noise).
    eps : float > 0
        Equivalence margin.
    alpha : float
        One-sided level of the upper bound.
    n_units, n_units_observed : int, optional
        Project the power to ``n_units`` top-level units from the ``n_units_observed`` behind ``summary``.
    method : {"normal", "empirical"}
        Normal approximation ``Phi(eps/se - z_{1-alpha})``, or the same computed on the centred draws.
    """
    if not eps > 0:
        raise ValueError(f"eps must be > 0; got {eps}")
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must lie in (0, 0.5); got {alpha}")
    if (n_units is None) != (n_units_observed is None):
        raise ValueError("give both n_units and n_units_observed, or neither")
    scale = 1.0 if n_units is None else float(np.sqrt(n_units_observed / n_units))
    if method == "normal":
        se = summary.se * scale
        if not np.isfinite(se) or se <= 0:
            raise ValueError(f"summary.se must be finite and > 0 to compute power; got {summary.se}")
        return float(norm.cdf(eps / se - norm.ppf(1.0 - alpha)))
    if method == "empirical":
        centred = (summary.draws - summary.draws.mean()) * scale
        upper = np.quantile(centred, 1.0 - alpha)
        return float(np.mean(centred + upper < eps))
    raise ValueError(f"method must be 'normal' or 'empirical'; got {method!r}")
