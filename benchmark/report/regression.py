"""Regression: a run's records against the stored baselines, statistic by statistic, with explicit tolerances.

A statistic moves when ``|now - baseline| > tolerance`` (tolerances stored in the baseline, else
:data:`benchmark.report.baselines.TOLERANCES`); a NaN, or a value that appears or disappears, always moves.
A baseline whose key (revision, claim version, probe-set hash, template, profile) differs is not compared:
the report says so instead of comparing numbers of different experiments.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.claims.record import ClaimRecord
from benchmark.report._common import fmt
from benchmark.report.baselines import TOLERANCES, Baseline, load_baseline, record_key


@dataclass(frozen=True)
class Change:
    """One statistic of one (model, claim) that moved beyond its tolerance."""

    model: str
    claim_id: str
    statistic: str
    baseline: float | str | None
    current: float | str | None
    tolerance: float | None
    provisional: bool

    @property
    def moved(self) -> str:
        if isinstance(self.baseline, (int, float)) and isinstance(self.current, (int, float)):
            return f"{self.current - self.baseline:+.4f}"
        return f"{self.baseline} -> {self.current}"


@dataclass
class RegressionResult:
    """Every change beyond tolerance, and one status line per (model, claim) for the matrix."""

    baselines_dir: Path
    changes: list[Change] = field(default_factory=list)
    status: dict[tuple[str, str], str] = field(default_factory=dict)

    def changed(self, model: str, claim_id: str) -> str:
        return self.status.get((model, claim_id), "not checked")


def _moved(baseline: float | None, current: float | None, tolerance: float) -> bool:
    if baseline is None and current is None:
        return False
    if baseline is None or current is None:
        return True
    if math.isnan(baseline) or math.isnan(current):
        return True  # NaN never equals NaN here: a NaN statistic is a defect to look at
    return abs(current - baseline) > tolerance


def compare_to_baseline(record: ClaimRecord, baseline: Baseline) -> list[Change]:
    """The statistics of ``record`` that left ``baseline``'s tolerances (verdict: any change)."""
    changes = []
    if record.verdict != baseline.verdict:
        changes.append(
            Change(
                record.model,
                record.claim_id,
                "verdict",
                baseline.verdict,
                record.verdict,
                None,
                baseline.provisional,
            )
        )
    m = record.measurement
    for name, default in TOLERANCES.items():
        tolerance = baseline.tolerances.get(name, default.absolute)
        current = getattr(m, name) if m is not None else None
        stored = getattr(baseline, name)
        if _moved(stored, current, tolerance):
            changes.append(
                Change(record.model, record.claim_id, name, stored, current, tolerance, baseline.provisional)
            )
    return changes


def check_records(records: Iterable[ClaimRecord], baselines_dir: Path) -> RegressionResult:
    """Compare every record with its baseline; missing baselines and differing keys are statuses, not errors."""
    result = RegressionResult(Path(baselines_dir))
    for record in records:
        key = (record.model, record.claim_id)
        baseline = load_baseline(baselines_dir, record.model, record.claim_id)
        if baseline is None:
            result.status[key] = "no baseline"
            continue
        differing = [
            f"{name} {baseline.key()[name]!s:.16} vs {value!s:.16}"
            for name, value in record_key(record).items()
            if baseline.key()[name] != value
        ]
        if differing:
            result.status[key] = "not compared: baseline key differs (" + "; ".join(differing) + ")"
            continue
        changes = compare_to_baseline(record, baseline)
        result.changes.extend(changes)
        prefix = "provisional baseline: " if baseline.provisional else ""
        if not changes:
            result.status[key] = prefix + "unchanged"
        else:
            parts = [
                f"{c.statistic} {c.baseline}->{c.current}"
                if c.statistic == "verdict"
                else f"{c.statistic} {fmt(c.current if isinstance(c.current, float) else None)} "
                f"(baseline {fmt(c.baseline if isinstance(c.baseline, float) else None)})"
                for c in changes
            ]
            result.status[key] = prefix + "changed: " + ", ".join(parts)
    return result
