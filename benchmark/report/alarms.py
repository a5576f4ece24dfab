"""The nightly's false-alarm budget: how many spurious regressions a night should expect, and the rule that keeps
that number below :data:`NIGHTLY_BUDGET`.

Why: a night checks every claim x template (x probe variant) x model against its accepted baseline, several
hundred checks on the full matrix; those whose baseline is a finding (holds or fails) can flip. A check raises a spurious alarm when its verdict flips (holds <-> fails) while
nothing but noise changed. Treating tonight's run as a fresh draw (the worst case: reruns on the same probe set
and seed differ only by kernel drift), a flip at one check needs a false finding of the rule, whose rate the
calibration measured (``benchmark/claims/calibration.json``: the boundary null's holds-rate, Clopper-Pearson upper
bound, per claim, template and size). Without a rule, a night expects ``sum_i rate_i`` spurious flips.

The failure rule: a flip fails the night only when tonight's one-sided p-value for the *new* finding, against the
rule's margin, is at most ``budget / (m * k_i)``, where ``m`` is the number of checks that night and
``k_i = max(1, rate_i / alpha_i)`` inflates the test of a rule whose calibrated false-finding rate exceeds its
nominal alpha (Bonferroni with a calibration correction). At the boundary the chance of that is about
``k_i * threshold_i``, so the night expects at most ``sum_i k_i * budget / (m * k_i) = budget`` spurious failures,
with no assumption about how the checks depend on each other. Flips that do not reach the threshold are reported
(``unconfirmed flip``), as are decays; pipeline errors and baselines that cannot be matched are not noise and fail
regardless.

When the calibration file is stale or has no entry for a claim x template, the rule's nominal alpha stands in
for its rate (an assumption the report prints beside the numbers).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from scipy import stats

from benchmark.claims.record import ClaimRecord

#: Expected spurious nightly failures the failure rule allows (issue 15: below 0.1 a night).
NIGHTLY_BUDGET = 0.1


def base_claim(claim_id: str) -> str:
    """``T7-...[a~b]`` -> ``T7-...``: cross-model records are calibrated (if ever) under their claim's id."""
    return claim_id.split("[", 1)[0]


@dataclass(frozen=True)
class CheckRate:
    """The false-finding rate one check's rule is taken to have, and where that number comes from."""

    claim_id: str
    template: str
    alpha: float
    rate: float
    source: str

    @property
    def inflation(self) -> float:
        """``k = max(1, rate / alpha)``: how much a rule's calibrated rate exceeds its nominal level."""
        return max(1.0, self.rate / self.alpha) if self.alpha > 0 else 1.0


def check_rate(
    calibration: Mapping[str, Any], claim_id: str, template: str, alpha: float, size: str
) -> CheckRate:
    """The calibrated boundary-null rate (the upper bound of its 95% interval: over populations where the entry
    recorded each seed's verdict, else Clopper-Pearson over seeds) of a claim x template at ``size``, or the
    nominal alpha when the file is stale or has no entry."""
    claim = base_claim(claim_id)
    if calibration.get("stale"):
        return CheckRate(claim, template, alpha, alpha, "nominal alpha (calibration file marked stale)")
    entry = (calibration.get("entries") or {}).get(f"{claim}|{template}|{size}") or {}
    row = entry.get("boundary_null") or {}
    if not row.get("trials"):
        return CheckRate(
            claim, template, alpha, alpha, f"nominal alpha (no calibration entry at size {size})"
        )
    upper = float(row["ci95"][1])
    return CheckRate(
        claim,
        template,
        alpha,
        upper,
        f"calibration {size}: {row['holds']}/{row['trials']} boundary-null holds, upper bound {upper:.1%}",
    )


@dataclass
class AlarmBudget:
    """The night's checks, their rates, the expected spurious failures with and without the rule."""

    rates: list[CheckRate]
    budget: float = NIGHTLY_BUDGET
    assumptions: list[str] = field(default_factory=list)

    @property
    def checks(self) -> int:
        return len(self.rates)

    @property
    def expected_without_rule(self) -> float:
        """Spurious flips a night expects if every flip failed it: the sum of the checks' rates."""
        return sum(r.rate for r in self.rates)

    def threshold(self, rate: CheckRate) -> float:
        """The p-value a flip of this check must reach to fail the night."""
        return self.budget / (max(self.checks, 1) * rate.inflation)

    @property
    def expected_with_rule(self) -> float:
        """Spurious failures a night expects under the rule (at most the budget)."""
        return sum(r.inflation * self.threshold(r) for r in self.rates)


def alarm_budget(
    records: Iterable[ClaimRecord],
    calibration: Mapping[str, Any],
    *,
    size: str = "ci",
    budget: float = NIGHTLY_BUDGET,
) -> AlarmBudget:
    """The budget over ``records`` (one check each: the night's records whose matching baseline is a finding)."""
    rates = [
        check_rate(calibration, r.claim_id, r.template, float(r.rule.get("alpha") or 0.05), size)
        for r in records
    ]
    assumptions = sorted({r.source for r in rates if r.source.startswith("nominal")})
    return AlarmBudget(rates, budget, assumptions)


def _direction(record: ClaimRecord) -> str | None:
    """The paper's direction of a change rule for this model (longest matching model-name prefix), as the
    verdict used it; None for a two-sided test."""
    directions = record.rule.get("directions") or {}
    matches = [prefix for prefix in directions if record.model.startswith(prefix)]
    return str(directions[max(matches, key=len)]) if matches else None


def _tail(distance: float, se: float | None, df: float | None) -> float:
    """P(T > distance / se) for the record's studentised statistic (normal when df is unknown)."""
    if se is None or not (math.isfinite(se) and se > 0):
        return 0.0 if distance > 0 else 1.0
    dist = stats.t(df) if df is not None and math.isfinite(df) else stats.norm()
    return float(dist.sf(distance / se))


def finding_p_value(record: ClaimRecord) -> float | None:
    """Tonight's one-sided p-value for the record's own finding (holds or fails) against its rule's margin.

    The record's own p-value of that side when it stores one (``p_value`` for holds, ``p_fails`` for fails: the
    kit's, with the same skew widening as the bounds that decided). Records written before ``p_fails`` existed
    fall back to the stored effect, standard error and degrees of freedom (for min/max reductions those of the
    deciding part). None when the record holds no finding or no effect.
    """
    m, rule = record.measurement, record.rule
    if m is None or record.verdict not in ("holds", "fails"):
        return None
    stored = m.p_value if record.verdict == "holds" else m.p_fails
    if stored is not None and m.p_fails is not None:
        return float(stored)
    holds, e, se, df = record.verdict == "holds", m.effect, m.se, m.df
    kind = rule.get("kind")
    if kind == "absence":
        eps = float(rule["epsilon"])
        return _tail(eps - e, se, df) if holds else _tail(e - eps, se, df)
    delta = float(rule["delta"])
    direction = _direction(record) if kind == "change" else "increase"
    if direction == "increase":
        return _tail(e - delta, se, df) if holds else _tail(delta - e, se, df)
    if direction == "decrease":
        return _tail(-delta - e, se, df) if holds else _tail(e + delta, se, df)
    if holds:  # two-sided change: beyond +-delta either way
        return min(1.0, 2 * min(_tail(e - delta, se, df), _tail(-delta - e, se, df)))
    return max(_tail(delta - e, se, df), _tail(e + delta, se, df))  # within +-delta (both one-sided tests)
