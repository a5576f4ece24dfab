"""The one inference kit of the claims: net per-layer statistics of a label, their combinations, intervals.

Most claims share one shape: a statistic of a labelling (silhouette of language, retrieval of meaning, ...)
computed on every layer's distance matrix, made *net* of its chance level (minus its mean under the label
permuted within declared strata), then combined over layers (band means, contrasts between bands) and reduced
(min, max, difference, ratio). This module does that shape once.

Interval convention: delete-one-unit jackknife, studentised
-----------------------------------------------------------
The data are crossed designs whose top-level units (meanings, transcripts, speakers) carry effects that differ
from unit to unit, so uncertainty comes from the units. For every unit factor ``f`` with ``n_f`` levels the
whole net statistic is recomputed ``n_f`` times, each time without one level (all of its samples), and

    se^2 = sum_f (n_f - 1) / n_f * sum_i (theta_(-i) - mean_i theta_(-i))^2

(the jackknife variance; summed over crossed factors, which counts their interaction twice and errs wide). The
interval is ``theta_hat -/+ t_{nu, 1 - alpha} se`` with Satterthwaite's ``nu`` (``n_f - 1`` for one factor):
each bound is a one-sided ``1 - alpha`` bound. Chosen by the coverage simulation in ``benchmarks/coverage.py``
(results in ``reports/coverage.md``) against the subsampling interval the claims used before: half-samples of
4-12 units estimate a statistic of a different design (a silhouette of 6 clusters is not one of 12), so their
spread and centre were off, and the upper bound missed the truth up to 18% of the time at a nominal 5%.
Leaving one unit out keeps the design nearly whole.

Each jackknife replicate needs its own chance level (cluster sizes change). Its permutations reuse the random
keys of the full-data null restricted to the remaining samples (common random numbers), so the Monte-Carlo
noise of the chance level is shared by all replicates and does not inflate their spread.

Reductions: ``minimum`` and ``maximum`` of several estimates are intersection-union tests (the smallest part
lower bound at the claim's level is a valid lower bound of the minimum; its upper bound takes Bonferroni-
corrected part bounds), because the jackknife of a min at near-ties understates its spread. Smooth functions of
estimates (``difference``, ``ratio``) are applied to the estimate and to every replicate alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import optimize as _sp_optimize
from scipy import stats as _sp

from ._checks import as_layers, check_positive_int, check_rng
from .cluster import Statistic
from .design import Design
from .distances import distance_rows

#: Draws of the Monte-Carlo estimate of a joint power (fixed seed: the number is a property of the data).
_POWER_DRAWS = 20_000


def _t_quantile(level: float, df: float) -> float:
    return float(_sp.t.ppf(level, df)) if np.isfinite(df) else float(_sp.norm.ppf(level))


@dataclass(frozen=True)
class Estimate:
    """A scalar effect: the full-data value, its jackknife replicates per unit factor, its centred null.

    Attributes
    ----------
    value : float
        The estimate on all data.
    replicates : mapping unit factor -> array [n_f]
        The estimate with each level of the factor left out.
    null : array [P]
        The estimate under the permuted labellings, centred on the null mean (the "no structure at all" null,
        for a secondary p-value only: the claim's hypothesis is about the interval).
    restricted : bool
        Studentise with the variance the replicates have about the value tested (the score test's variance,
        :meth:`_score_df`) instead of about the estimate: the convention of equivalence tests.
    """

    value: float
    replicates: dict[str, np.ndarray] = field(repr=False)
    null: np.ndarray = field(repr=False)
    restricted: bool = False

    def _parts(self) -> list[tuple[float, int]]:
        """``(variance contribution, n_f)`` per unit factor."""
        out = []
        for reps in self.replicates.values():
            n = reps.size
            out.append(((n - 1) / n * float(((reps - reps.mean()) ** 2).sum()), n))
        return out

    @property
    def se(self) -> float:
        """Jackknife standard error (square root of the summed factor variances)."""
        return float(np.sqrt(sum(v for v, _ in self._parts())))

    @property
    def df(self) -> float:
        """Satterthwaite degrees of freedom of the summed variances (``n_f - 1`` for one unit factor)."""
        parts = [(v, n) for v, n in self._parts() if n > 1]
        total = sum(v for v, _ in parts)
        if total <= 0:
            return float(min((n for _, n in self._parts()), default=2) - 1)
        return float(total**2 / sum(v**2 / (n - 1) for v, n in parts))

    @property
    def skew(self) -> float:
        """Jackknife acceleration ``a = sum u^3 / (6 (sum u^2)^1.5)`` over the units' influence values
        ``u_i = (n - 1)(mean - theta_(-i))`` of every factor (``gamma / (6 sqrt(n))`` for a mean of skewness
        ``gamma``): how skewed the unit effects are, as the one-sided widening below uses it."""
        num = den = 0.0
        for reps in self.replicates.values():
            if reps.size < 3:
                continue
            u = (reps.size - 1) * (reps.mean() - reps)
            num += float((u**3).sum())
            den += float((u**2).sum())
        return num / (6.0 * den**1.5) if den > 0 else 0.0

    def _widening(self) -> tuple[float, float]:
        """Skew coefficients ``(lower side, upper side)``: the Cornish-Fisher term of Johnson's modified t
        (1978), ``t + a (2 t^2 + 1)``, applied only on the side it widens (right-skewed unit effects widen the
        upper bound, left-skewed the lower) and never narrowing the other side. Why: with unit effects that
        differ between units (log-normal spread), the plain studentised upper bound of a level quantity fell
        below the truth 8-10% of the time at a nominal 5% (``reports/coverage.md``; M3's boundary null held
        8-9% in the calibration). Using it one-sided keeps the bounds conservative when ``a`` is noise."""
        a = self.skew
        return max(-a, 0.0), max(a, 0.0)

    def bounds(self, alpha: float) -> tuple[float, float]:
        """One-sided ``1 - alpha`` lower and upper bounds (a two-sided ``1 - 2 alpha`` interval)."""
        _check_alpha(alpha)
        low_m, high_m = self._multipliers(alpha)
        return self.value - low_m * self.se, self.value + high_m * self.se

    def p_greater(self, threshold: float) -> float:
        """One-sided p-value of "effect <= threshold" against "effect > threshold": the level at which the lower
        bound meets the threshold."""
        return _t_tail(self.value - threshold, self.se, self.df, self._widening()[0], self._score_df())

    def p_less(self, threshold: float) -> float:
        """One-sided p-value of "effect >= threshold" against "effect < threshold" (the upper bound's level)."""
        return _t_tail(threshold - self.value, self.se, self.df, self._widening()[1], self._score_df())

    def _score_df(self) -> float | None:
        """The degrees of freedom of the score studentisation when :attr:`restricted`, else None.

        Why: an equivalence test asks whether the effect lies below a margin, and the claims' unit effects are
        right-skewed (clusters of unequal strength), so a sample that missed the strong units has both a low
        estimate and a small standard error: the plain upper bound then falls below the truth too often (the
        calibration's boundary nulls of S6 and M3 held 7-8% at a nominal 5%, with a 0.7 correlation between
        estimate and standard error). The score test studentises with the replicates' spread about the value
        tested, ``var_theta = var_J + (estimate - theta)^2 / df``, as the Wilson interval does for a
        proportion; inverted, its bound sits ``t / sqrt(1 - t^2 / df)`` standard errors from the estimate
        (1.19x the t quantile at 12 units, 1.04x at 38) and is infinite when ``t^2 >= df``: with that few
        units no sample can show the effect below a margin."""
        return self.df if self.restricted else None

    def p_structure(self) -> float:
        """Permutation p-value of "no structure at all" (labels exchangeable within strata): ``(b+1)/(B+1)``."""
        b = int(np.sum(self.null >= self.value - 1e-12 * abs(self.value)))
        return (b + 1.0) / (self.null.size + 1.0)

    def power(self, margin: float, alpha: float, *, true_value: float = 0.0) -> float:
        """Probability that the upper bound falls below ``margin`` when the effect is ``true_value``, at this
        design's standard error (the power of an equivalence test; equal to the power of the presence test
        "lower bound > true_value" at an effect of ``margin``)."""
        se, df = self.se, self.df
        if not (np.isfinite(se) and se > 0):
            return float("nan")
        dist = _sp.t(df) if np.isfinite(df) else _sp.norm()
        return float(dist.cdf((margin - true_value) / se - self.upper_multiplier(alpha)))

    def upper_multiplier(self, alpha: float) -> float:
        """The upper bound's distance from the estimate in standard errors."""
        return self._multipliers(alpha)[1]

    def _multipliers(self, alpha: float) -> tuple[float, float]:
        """Each one-sided bound's distance from the estimate in standard errors: ``t + c (2 t^2 + 1)`` with its
        side's skew coefficient ``c`` (:meth:`_widening`); ``t`` studentised as the score test does when
        :attr:`restricted` (:meth:`_score_df`)."""
        t = _t_quantile(1.0 - alpha, self.df)
        low_c, high_c = self._widening()
        spread = 2.0 * t * t + 1.0
        base = _score_multiplier(t, self._score_df())
        return base + low_c * spread, base + high_c * spread


def _score_multiplier(t: float, score_df: float | None) -> float:
    """``t``, or the score test's ``t / sqrt(1 - t^2 / df)`` (infinite when ``t^2 >= df``)."""
    if score_df is None:
        return t
    room = 1.0 - t * t / score_df
    return float(t / np.sqrt(room)) if room > 0 else float("inf")


def _t_tail(
    distance: float, se: float, df: float, widen: float = 0.0, score_df: float | None = None
) -> float:
    """``P(T_df > t)`` where ``m(t) + widen (2 t^2 + 1) = distance / se``, ``m`` the identity or the score
    studentisation (:func:`_score_multiplier`): the level at which the (widened) bound sits exactly
    ``distance`` from the estimate. ``t + c (2t^2 + 1)`` increases for ``t > -1/(4c)``; below its minimum
    (p-values above ~0.95, never a decision) the minimum's level is returned."""
    if not (np.isfinite(se) and se > 0):
        return 0.0 if distance > 0 else 1.0
    dist = _sp.t(df) if np.isfinite(df) else _sp.norm()
    x = distance / se
    if score_df is not None:
        return float(dist.sf(_score_level(x, score_df, widen)))
    if widen <= 0.0:
        return float(dist.sf(x))
    disc = 1.0 - 8.0 * widen * (widen - x)
    # the root (-1 + sqrt(disc)) / (4 widen), written without cancellation for a tiny widen
    t = 2.0 * (x - widen) / (1.0 + np.sqrt(disc)) if disc >= 0 else -1.0 / (4.0 * widen)
    return float(dist.sf(t))


def _score_level(x: float, score_df: float, widen: float) -> float:
    """The ``t`` at which the score-studentised, skew-widened bound sits ``x`` standard errors away: the root of
    ``t / sqrt(1 - t^2 / df) + widen (2 t^2 + 1) = x`` on ``(-sqrt(df), sqrt(df))``, where the left side
    increases from its minimum (the minimum's ``t`` when ``x`` lies below it, as for the plain bound)."""
    edge = np.sqrt(score_df)

    def side(t: float) -> float:
        return t / np.sqrt(1.0 - t * t / score_df) + widen * (2.0 * t * t + 1.0) - x

    low, high = -edge * (1.0 - 1e-12), edge * (1.0 - 1e-12)
    if widen > 0.0:  # the left side's minimum: below it the bound never comes closer
        low = _sp_optimize.minimize_scalar(side, bounds=(low, 0.0), method="bounded").x
    if side(low) >= 0.0:
        return float(low)
    if side(high) <= 0.0:
        return float(high)
    return float(_sp_optimize.brentq(side, low, high, xtol=1e-14))


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must lie in (0, 0.5); got {alpha}")


def apply(fn: Callable[..., np.ndarray | float], *estimates: Estimate) -> Estimate:
    """A smooth function of estimates (difference, ratio, mean), applied to values, replicates and nulls alike.

    The estimates must come from one :class:`NetCurve` or from curves computed on the same design (same unit
    factors and levels), so their replicates line up.
    """
    if not estimates:
        raise ValueError("apply needs at least one estimate")
    factors = list(estimates[0].replicates)
    for other in estimates[1:]:
        if list(other.replicates) != factors or any(
            other.replicates[f].size != estimates[0].replicates[f].size for f in factors
        ):
            raise ValueError("estimates come from different designs; their replicates do not line up")
    value = float(fn(*[e.value for e in estimates]))
    reps = {f: np.asarray(fn(*[e.replicates[f] for e in estimates]), dtype=float) for f in factors}
    with np.errstate(
        all="ignore"
    ):  # a label-free statistic's null is 0: its ratios are undefined, not errors
        null = np.asarray(fn(*[e.null for e in estimates]), dtype=float)
    return Estimate(value=value, replicates=reps, null=null, restricted=any(e.restricted for e in estimates))


def difference(a: Estimate, b: Estimate) -> Estimate:
    return apply(np.subtract, a, b)


def ratio(a: Estimate, b: Estimate) -> Estimate:
    return apply(np.divide, a, b)


@dataclass(frozen=True)
class Bounds:
    """The decided quantity of a claim: point value, one-sided bounds, p-value against the rule's boundary."""

    value: float
    low: float
    high: float
    se: float
    df: float
    deciding_part: int = 0


def single(estimate: Estimate, alpha: float) -> Bounds:
    low, high = estimate.bounds(alpha)
    return Bounds(estimate.value, low, high, estimate.se, estimate.df)


def minimum(parts: Sequence[Estimate], alpha: float) -> Bounds:
    """Intersection-union bounds of ``min(parts)``: lower = smallest part lower bound at ``alpha`` (valid for
    "every part above"), upper = smallest part upper bound at ``alpha / k`` (Bonferroni, for "some part at or
    below")."""
    return _reduce(parts, alpha, "min")


def maximum(parts: Sequence[Estimate], alpha: float) -> Bounds:
    """Mirror of :func:`minimum`: upper = largest part upper bound at ``alpha`` ("every part below"), lower =
    largest part lower bound at ``alpha / k``."""
    return _reduce(parts, alpha, "max")


def _reduce(parts: Sequence[Estimate], alpha: float, mode: str) -> Bounds:
    _check_alpha(alpha)
    if not parts:
        raise ValueError("a reduction needs at least one part")
    k = len(parts)
    plain = [p.bounds(alpha) for p in parts]
    strict = [p.bounds(alpha / k) for p in parts]
    values = np.array([p.value for p in parts])
    where = int(np.argmin(values) if mode == "min" else np.argmax(values))
    if mode == "min":
        low, high = min(b[0] for b in plain), min(b[1] for b in strict)
    else:
        low, high = max(b[0] for b in strict), max(b[1] for b in plain)
    return Bounds(float(values[where]), float(low), float(high), parts[where].se, parts[where].df, where)


def joint_power(parts: Sequence[Estimate], margin: float, alpha: float) -> float:
    """Probability that every part's upper bound falls below ``margin`` when every true part is 0.

    The parts' joint spread is the jackknife covariance of their replicates (parts of one design share their
    units, so they are correlated); the probability is a fixed-seed Monte-Carlo over a multivariate normal,
    each part's bound using its own t quantile. The power of "max of the parts below margin".
    """
    _check_alpha(alpha)
    if not parts:
        raise ValueError("joint_power needs at least one part")
    factors = list(parts[0].replicates)
    cov = np.zeros((len(parts), len(parts)))
    for f in factors:
        reps = np.stack([p.replicates[f] for p in parts])  # [k, n_f]
        n = reps.shape[1]
        centred = reps - reps.mean(axis=1, keepdims=True)
        cov += (n - 1) / n * centred @ centred.T
    se = np.sqrt(np.diag(cov))
    if not np.all(np.isfinite(se)) or np.any(se <= 0):
        return float("nan")
    quant = np.array([p.upper_multiplier(alpha) for p in parts])
    draws = np.random.default_rng(20260101).multivariate_normal(
        np.zeros(len(parts)), cov, size=_POWER_DRAWS, method="eigh"
    )
    return float(np.mean(np.all(draws + quant * se < margin, axis=1)))


@dataclass(frozen=True)
class NetCurve:
    """A statistic of one labelling per column (usually per layer), net of its permutation null.

    Attributes
    ----------
    observed, null_mean, net : arrays [C]
    null : array [P, C]
        The statistic under permuted labellings (rows are labellings; the same labelling in every column).
    replicates : mapping unit factor -> array [n_f, C]
        Net values with one level of the factor left out.
    n_units : mapping unit factor -> number of levels
    """

    observed: np.ndarray
    null_mean: np.ndarray
    net: np.ndarray
    null: np.ndarray = field(repr=False)
    replicates: dict[str, np.ndarray] = field(repr=False)

    @property
    def n_units(self) -> dict[str, int]:
        return {f: int(r.shape[0]) for f, r in self.replicates.items()}

    def combine(self, weights: np.ndarray) -> Estimate:
        """The linear combination ``weights @ net`` (a band mean, a contrast of bands), as an Estimate."""
        w = np.asarray(weights, dtype=float)
        if w.shape != self.net.shape:
            raise ValueError(f"weights must have shape {self.net.shape}; got {w.shape}")
        return Estimate(
            value=float(w @ self.net),
            replicates={f: r @ w for f, r in self.replicates.items()},
            null=(self.null - self.null_mean) @ w,
        )

    def se(self) -> np.ndarray:
        """Per-column jackknife standard error (for curves with bands in figures)."""
        total = np.zeros_like(self.net)
        for r in self.replicates.values():
            n = r.shape[0]
            total += (n - 1) / n * ((r - r.mean(axis=0)) ** 2).sum(axis=0)
        return np.sqrt(total)


def restricted_permutations(keys: np.ndarray, strata: np.ndarray | None, keep: np.ndarray) -> np.ndarray:
    """Permutations ``[P, m]`` of the ``m`` kept samples (boolean ``keep [n]``) within their strata, from fixed
    random ``keys [P, n]``.

    ``perm[p, i]`` is the kept sample (0..m-1) whose label position ``i`` receives. Using the same keys for the
    full data and for every leave-one-out subset makes their nulls share their Monte-Carlo noise.
    """
    keep = np.asarray(keep, dtype=bool)
    k = keys[:, keep]
    s = np.zeros(int(keep.sum()), dtype=np.int64)
    if strata is not None:
        s = np.unique(np.asarray(strata)[keep], return_inverse=True)[1].reshape(-1).astype(np.int64)
    order0 = np.argsort(s, kind="stable")
    order = np.argsort(k + s[None, :], axis=1)
    perm = np.empty_like(order)
    perm[:, order0] = order
    return perm


class _Labellings:
    """Permuted labellings of one factor from fixed random keys, for all data or a kept subset of it.

    With ``level`` (e.g. speaker), the label belongs to the level's groups (every speaker has one gender) and
    is permuted between whole groups, so a speaker keeps one label in every cell; strata must then be constant
    within a group too.
    """

    def __init__(
        self,
        design: Design,
        label: str,
        strata: Sequence[str] | None,
        level: str | None,
        n_perm: int,
        rng: np.random.Generator,
    ) -> None:
        self.codes = design.codes(label)[0]
        s_codes = design.strata_codes(strata)
        self.level = level
        if level is None:
            self.strata = s_codes
            self.keys = rng.random((n_perm, design.n))
            return
        groups, levels = design.codes(level)
        self.groups = groups
        first = np.array([np.flatnonzero(groups == g)[0] for g in range(levels.size)])
        for name, values in (("label " + label, self.codes), ("strata", s_codes)):
            if values is None:
                continue
            if np.any(values != values[first][groups]):
                raise ValueError(f"{name} is not constant within each {level!r}; cannot permute by {level!r}")
        self.group_codes = self.codes[first]
        self.strata = None if s_codes is None else s_codes[first]
        self.keys = rng.random((n_perm, levels.size))

    def rows(self, keep: np.ndarray, n_rows: int | None = None) -> np.ndarray:
        """``[1 + P, m]`` codes of the kept samples: the observed labelling, then ``P`` permuted ones."""
        keys = self.keys if n_rows is None else self.keys[:n_rows]
        observed = self.codes[keep]
        if self.level is None:
            perm = restricted_permutations(keys, self.strata, keep)
            return np.vstack([observed[None], observed[perm]])
        kept_groups = np.unique(self.groups[keep])
        gmask = np.zeros(self.group_codes.size, dtype=bool)
        gmask[kept_groups] = True
        perm = restricted_permutations(keys, self.strata, gmask)  # positions among the kept groups
        permuted = self.group_codes[kept_groups][perm]  # [P, G']
        position = np.searchsorted(kept_groups, self.groups[keep])
        return np.vstack([observed[None], permuted[:, position]])


def net_curve(
    stat: Statistic,
    D: np.ndarray,
    design: Design,
    label: str | None,
    *,
    rng: np.random.Generator,
    n_perm: int,
    n_perm_replicate: int,
    strata: Sequence[str] | None = None,
    permute_level: str | None = None,
    jackknife: bool = True,
    reads_blocks: bool = False,
) -> NetCurve:
    """Net statistic of ``design.factors[label]`` per column, with its null and its jackknife replicates.

    Parameters
    ----------
    stat : Statistic
        ``stat(D [L, m, m], codes [P, m], index [m]) -> [P, C]``, greater = stronger.
    D : array [L, n, n]
        Distances over the design's samples, in the design's order.
    design : Design
        Factors, unit factors (left out one level at a time) and default strata.
    label : str or None
        The labelling whose structure is measured; ``None`` for a statistic of no labelling (no null: its
        chance level is 0 by definition, e.g. a mean distance).
    rng : np.random.Generator
    n_perm : int
        Permutations of the full-data null (its mean is the chance level; its rows the secondary p-value).
    n_perm_replicate : int
        Permutations per jackknife replicate (the first rows of the same random keys).
    strata : factor names, optional
        Permutation strata (default: the design's).
    permute_level : factor name, optional
        Permute the label between whole groups of this factor (see :class:`_Labellings`).
    jackknife : bool
        False computes the point estimate only (no replicates): what planting a control needs.
    reads_blocks : bool
        The statistic takes every sample's distances ``D`` and reads a resample's blocks through ``index`` (its
        positions in ``D``), so a replicate passes ``D`` itself instead of a restricted ``[L, m, m]`` copy.
    """
    rng = check_rng(rng)
    Dl, _ = as_layers(D)
    n = design.n
    if Dl.shape[-1] != n:
        raise ValueError(f"D has {Dl.shape[-1]} samples but the design has {n}")
    n_perm = check_positive_int(n_perm, name="n_perm")
    n_rep = min(check_positive_int(n_perm_replicate, name="n_perm_replicate"), n_perm)
    everyone = np.ones(n, dtype=bool)
    if label is None:

        def evaluate(keep: np.ndarray, _rows: int | None) -> tuple[np.ndarray, np.ndarray]:
            idx = np.flatnonzero(keep)
            sub = Dl if keep.all() or reads_blocks else distance_rows(Dl, idx)
            value = np.asarray(stat(sub, np.zeros((1, idx.size), dtype=np.int64), idx), dtype=np.float64)[0]
            return value, np.zeros((1, value.size))
    else:
        labellings = _Labellings(design, label, strata, permute_level, n_perm, rng)

        def evaluate(keep: np.ndarray, rows: int | None) -> tuple[np.ndarray, np.ndarray]:
            idx = np.flatnonzero(keep)
            sub = Dl if keep.all() or reads_blocks else distance_rows(Dl, idx)
            values = np.asarray(stat(sub, labellings.rows(keep, rows), idx), dtype=np.float64)
            return values[0], values[1:]

    observed, null = evaluate(everyone, None)
    null_mean = null.mean(axis=0)
    # The replicates' chance level uses the first n_rep keys; so does this reference, so that a replicate minus
    # the full value carries no Monte-Carlo difference beyond what leaving a unit out causes.
    ref_mean = null[:n_rep].mean(axis=0)
    replicates: dict[str, np.ndarray] = {}
    for unit in design.units if jackknife else ():
        ucodes, levels = design.codes(unit)
        if levels.size < 2:
            raise ValueError(f"unit factor {unit!r} has {levels.size} level; the jackknife needs >= 2")
        reps = np.empty((levels.size, observed.size))
        for i in range(levels.size):
            value, sub_null = evaluate(ucodes != i, n_rep)
            reps[i] = value - sub_null.mean(axis=0)
        # Shifted so the replicates are centred as if their chance level were the full null's (P rows): only
        # their spread enters the interval; the shift keeps their mean comparable with ``net`` in reports.
        replicates[unit] = reps + (ref_mean - null_mean)[None]
    return NetCurve(
        observed=observed,
        null_mean=null_mean,
        net=observed - null_mean,
        null=null,
        replicates=replicates,
    )


def layer_weights(n_columns: int, plus: Sequence[int], minus: Sequence[int] = ()) -> np.ndarray:
    """Weights of ``mean(columns in plus) - mean(columns in minus)``."""
    w = np.zeros(n_columns)
    if not len(plus):
        raise ValueError("plus selects no column")
    w[np.asarray(plus)] += 1.0 / len(plus)
    if len(minus):
        w[np.asarray(minus)] -= 1.0 / len(minus)
    return w


REDUCE_FUNCTIONS: dict[str, Callable[..., np.ndarray | float]] = {
    "difference": np.subtract,
    "ratio": np.divide,
    "log_ratio": lambda a, b: np.log(np.divide(a, b)),
}


@dataclass(frozen=True)
class Reduction:
    """The decided quantity of a claim: one estimate, a smooth function of two, or a min/max of several.

    ``single``, ``difference``, ``ratio`` and ``log_ratio`` are one :class:`Estimate` (jackknife-t bounds);
    ``min`` and ``max`` are intersection-union reductions of their parts (:func:`minimum`, :func:`maximum`).
    """

    kind: str
    parts: tuple[Estimate, ...]
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.kind not in ("single", "min", "max", *REDUCE_FUNCTIONS):
            raise ValueError(f"unknown reduction {self.kind!r}")
        if len(self.parts) != len(self.names) or not self.parts:
            raise ValueError("a reduction needs one name per part and at least one part")
        if self.kind == "single" and len(self.parts) != 1:
            raise ValueError("reduction 'single' takes exactly one part")
        if self.kind in REDUCE_FUNCTIONS and len(self.parts) != 2:
            raise ValueError(f"reduction {self.kind!r} takes exactly two parts")

    def restricted(self) -> Reduction:
        """The same reduction with every part studentised as an equivalence test does (:class:`Estimate`'s
        ``restricted``)."""
        return replace(self, parts=tuple(replace(p, restricted=True) for p in self.parts))

    @property
    def combined(self) -> Estimate | None:
        """The one estimate of a non-min/max reduction (None for min/max)."""
        if self.kind == "single":
            return self.parts[0]
        if self.kind in REDUCE_FUNCTIONS:
            return apply(REDUCE_FUNCTIONS[self.kind], *self.parts)
        return None

    @property
    def value(self) -> float:
        combined = self.combined
        if combined is not None:
            return combined.value
        values = [p.value for p in self.parts]
        return float(min(values) if self.kind == "min" else max(values))

    def bounds(self, alpha: float) -> Bounds:
        combined = self.combined
        if combined is not None:
            return single(combined, alpha)
        return minimum(self.parts, alpha) if self.kind == "min" else maximum(self.parts, alpha)

    def p_greater(self, threshold: float) -> float:
        """p-value of "effect <= threshold" (for a min: every part must exceed, so the largest part p)."""
        combined = self.combined
        if combined is not None:
            return combined.p_greater(threshold)
        ps = [p.p_greater(threshold) for p in self.parts]
        return float(max(ps) if self.kind == "min" else min(1.0, len(ps) * min(ps)))

    def p_less(self, threshold: float) -> float:
        """p-value of "effect >= threshold" (for a max: every part must fall below, so the largest part p)."""
        combined = self.combined
        if combined is not None:
            return combined.p_less(threshold)
        ps = [p.p_less(threshold) for p in self.parts]
        return float(max(ps) if self.kind == "max" else min(1.0, len(ps) * min(ps)))

    def power(self, margin: float, alpha: float) -> float:
        """Power of "upper bound below margin" when the true effect is 0 (joint over the parts of a max)."""
        combined = self.combined
        if combined is not None:
            return combined.power(margin, alpha)
        if self.kind == "max":
            return joint_power(self.parts, margin, alpha)
        return float(min(p.power(margin, alpha) for p in self.parts))

    def p_structure(self) -> float:
        """Permutation p-value of "no structure at all" for the reduced value (secondary, never decides)."""
        combined = self.combined
        if combined is not None:
            return combined.p_structure()
        null = np.min if self.kind == "min" else np.max
        stacked = null(np.stack([p.null for p in self.parts]), axis=0)
        value = self.value
        b = int(np.sum(stacked >= value - 1e-12 * abs(value)))
        return (b + 1.0) / (stacked.size + 1.0)
