"""Regression: tonight's records against the accepted baselines, with the false-alarm rule of
:mod:`benchmark.report.alarms` deciding which changes fail the night.

Per baseline-selected record (see :mod:`benchmark.report.baselines` for the key), one outcome:

``regression`` (fails)
    the finding flipped (holds <-> fails) and tonight's p-value for the new finding reaches the night's threshold.
``error`` (fails)
    tonight's record is a pipeline error where the baseline was not.
``unmatched`` (fails)
    the baseline's claim version, revision or probe-set hash differs from the record's: a new experiment that
    must be accepted, never compared with the old numbers.
``missing record`` (fails)
    a baseline of a model that ran tonight (or that the run expected) has no record tonight.
``unconfirmed flip``
    a flip whose p-value does not reach the threshold: listed first among what does not fail.
``decayed``
    a finding that became inconclusive (or n/a): listed with effect and interval.
``new finding``, ``moved``, ``unchanged``
    an inconclusive baseline that became a finding; statistics beyond their tolerance; nothing beyond it.
``no baseline``
    nothing accepted for this key yet (a new model or claim: its first run).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.claims.record import FINDINGS, ClaimRecord
from benchmark.report._common import fmt, fmt_interval
from benchmark.report.alarms import AlarmBudget, alarm_budget, finding_p_value
from benchmark.report.baselines import (
    ACCEPT_COMMAND,
    TOLERANCES,
    Baseline,
    identity_differences,
    load_baselines,
    selector_of,
)

FAILING = ("regression", "error", "unmatched", "missing record")


@dataclass(frozen=True)
class Change:
    """One statistic that moved beyond its tolerance."""

    statistic: str
    baseline: float | str | None
    current: float | str | None
    tolerance: float | None

    @property
    def moved(self) -> str:
        if isinstance(self.baseline, (int, float)) and isinstance(self.current, (int, float)):
            return f"{self.current - self.baseline:+.4f}"
        return f"{self.baseline} -> {self.current}"


@dataclass(frozen=True)
class Check:
    """One record against its baseline (either may be missing), its outcome, and the words for it."""

    outcome: str
    record: ClaimRecord | None
    baseline: Baseline | None
    detail: str
    changes: tuple[Change, ...] = ()
    p_value: float | None = None
    threshold: float | None = None

    @property
    def fails(self) -> bool:
        return self.outcome in FAILING

    @property
    def label(self) -> str:
        source = self.record or self.baseline
        assert source is not None
        variant = f",{source.variant}" if source.variant else ""
        return f"{source.claim_id} on {source.model} [{source.template}{variant}]"

    def message(self) -> str:
        return f"{self.outcome}: {self.label}: {self.detail}"


@dataclass
class RegressionResult:
    """Every check of the night, the false-alarm budget it was judged with, and what fails."""

    baselines_dir: Path
    checks: list[Check] = field(default_factory=list)
    budget: AlarmBudget | None = None
    profile: str | None = None
    dtype: str | None = None

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.fails]

    def of(self, *outcomes: str) -> list[Check]:
        return [c for c in self.checks if c.outcome in outcomes]

    def status_of(self, record: ClaimRecord) -> str:
        for check in self.checks:
            if check.record is record:
                return check.outcome
        return "not checked"

    @property
    def compared(self) -> int:
        """Records judged against a matching baseline."""
        return sum(c.outcome not in ("no baseline", "unmatched", "missing record") for c in self.checks)

    @property
    def exit_code(self) -> int:
        """1 when anything fails the night (regression, error, unmatched or missing), else 0."""
        return 1 if self.failures else 0


def _moved(baseline: float | None, current: float | None, tolerance: float) -> bool:
    if baseline is None and current is None:
        return False
    if baseline is None or current is None:
        return True
    if math.isnan(baseline) or math.isnan(current):
        return True  # a NaN statistic is a defect to look at
    return abs(current - baseline) > tolerance


def statistic_changes(record: ClaimRecord, baseline: Baseline) -> list[Change]:
    """Statistics of ``record`` beyond ``baseline``'s tolerances."""
    m = record.measurement
    return [
        Change(name, getattr(baseline, name), getattr(m, name) if m else None, tol.absolute)
        for name, tol in TOLERANCES.items()
        if _moved(getattr(baseline, name), getattr(m, name) if m else None, tol.absolute)
    ]


def _numbers(record: ClaimRecord) -> str:
    m = record.measurement
    return "no effect" if m is None else f"effect {fmt(m.effect)} {fmt_interval(m.ci_low, m.ci_high)}"


def _baseline_numbers(b: Baseline) -> str:
    return "no effect" if b.effect is None else f"effect {fmt(b.effect)} {fmt_interval(b.ci_low, b.ci_high)}"


def judge(record: ClaimRecord, baseline: Baseline, budget: AlarmBudget, threshold: float) -> Check:
    """One record against its selected baseline (identity already checked)."""
    changes = tuple(statistic_changes(record, baseline))
    was, now = baseline.verdict, record.verdict
    where = f"baseline {was} ({_baseline_numbers(baseline)}, accepted {baseline.accepted[:10]}: {baseline.reason})"
    if now == "error" and was != "error":
        return Check("error", record, baseline, f"pipeline error tonight ({record.reason}); {where}", changes)
    if was in FINDINGS and now in FINDINGS and now != was:
        p = finding_p_value(record)
        tonight = f"tonight {now} ({_numbers(record)}, one-sided p {fmt(p, 4)} for {now})"
        if p is None or p <= threshold:
            return Check(
                "regression",
                record,
                baseline,
                f"{tonight} reaches the night's threshold {threshold:.2g}; {where}",
                changes,
                p,
                threshold,
            )
        return Check(
            "unconfirmed flip",
            record,
            baseline,
            f"{tonight} does not reach the night's threshold {threshold:.2g}; {where}",
            changes,
            p,
            threshold,
        )
    if was in FINDINGS and now not in FINDINGS:
        return Check("decayed", record, baseline, f"tonight {now} ({_numbers(record)}); {where}", changes)
    if was not in FINDINGS and now in FINDINGS:
        return Check("new finding", record, baseline, f"tonight {now} ({_numbers(record)}); {where}", changes)
    if changes:
        text = ", ".join(f"{c.statistic} {c.moved} (tolerance {c.tolerance})" for c in changes)
        return Check("moved", record, baseline, f"{now}; {text}", changes)
    return Check("unchanged", record, baseline, now)


def check_records(
    records: Iterable[ClaimRecord],
    baselines_dir: Path,
    *,
    profile: str | None = None,
    dtype: str | None = None,
    models: Sequence[str] | None = None,
    calibration: dict[str, Any] | None = None,
    calibration_size: str = "ci",
) -> RegressionResult:
    """Judge every record of ``profile``/``dtype`` (default: those of the records) against the baselines.

    ``models``: the models the run was meant to cover; a baseline of such a model (or of any model that has a
    record tonight) with no record tonight is ``missing record``. Baselines of other models are not judged.
    """
    records = list(records)
    profiles = {profile} if profile else {r.profile for r in records}
    dtypes = {dtype} if dtype else {r.dtype for r in records}
    tonight = [r for r in records if r.profile in profiles and r.dtype in dtypes]
    baselines = [
        b for p in profiles for d in dtypes for b in load_baselines(baselines_dir, profile=p, dtype=d)
    ]
    by_selector = {b.selector(): b for b in baselines}
    result = RegressionResult(Path(baselines_dir), profile=profile, dtype=dtype)
    # The checks that can raise an alarm: a matching baseline whose verdict is a finding (only those can flip).
    flippable = [
        r
        for r in tonight
        if (b := by_selector.get(selector_of(r))) is not None
        and not identity_differences(b, r)
        and b.verdict in FINDINGS
    ]
    from benchmark.report.calibration import load_calibration

    budget = alarm_budget(
        flippable,
        calibration if calibration is not None else load_calibration(),
        size=calibration_size,
    )
    result.budget = budget
    thresholds = {id(r): budget.threshold(rate) for r, rate in zip(flippable, budget.rates, strict=True)}
    for record in tonight:
        baseline = by_selector.get(selector_of(record))
        if baseline is None:
            result.checks.append(
                Check("no baseline", record, None, f"{record.verdict}: nothing accepted yet")
            )
            continue
        differing = identity_differences(baseline, record)
        if differing:
            result.checks.append(
                Check(
                    "unmatched",
                    record,
                    baseline,
                    "baseline cannot be matched ("
                    + "; ".join(differing)
                    + f"): accept anew with `{ACCEPT_COMMAND}`",
                )
            )
            continue
        result.checks.append(judge(record, baseline, budget, thresholds.get(id(record), 0.0)))
    seen = {selector_of(r) for r in tonight}
    covered = set(models or ()) | {r.model for r in tonight}
    for baseline in baselines:
        if baseline.model in covered and baseline.selector() not in seen:
            result.checks.append(
                Check(
                    "missing record",
                    None,
                    baseline,
                    f"no record tonight for this accepted baseline ({baseline.verdict}, accepted "
                    f"{baseline.accepted[:10]}); the claim was not run, or the run died before it",
                )
            )
    return result
