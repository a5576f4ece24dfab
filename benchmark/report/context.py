"""Everything one report shows, gathered once so the Markdown and HTML writers say the same thing."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from benchmark.claims.record import FINDINGS, ClaimRecord
from benchmark.report._common import (
    VERDICTS,
    claim_ids,
    column_key,
    column_labels,
    dtype_order,
    template_order,
)
from benchmark.report.alarms import AlarmBudget
from benchmark.report.compare import Comparison
from benchmark.report.dtype import DtypeKey, dtype_flags, dtype_key, dtypes_of
from benchmark.report.figures import RenderedFigure
from benchmark.report.regression import RegressionResult
from benchmark.report.status import (
    FindingStatus,
    finding_status,
    load_expectation_entries,
    models_with_expectations,
)

RecordKey = tuple[str, str, str, str, str, str | None, str]


def record_key(record: ClaimRecord) -> RecordKey:
    """One record per claim, model, revision, profile, template, probe variant and dtype (records of two dtypes
    are compared, never superseded)."""
    return (
        record.claim_id,
        record.model,
        record.revision,
        record.profile,
        record.template,
        record.variant,
        record.dtype,
    )


@dataclass
class ReportData:
    """Records with their matrix layout, statuses, calibration, optional comparison and regression, figures."""

    records: list[ClaimRecord]
    generated: str
    comparison: Comparison | None = None
    regression: RegressionResult | None = None
    alarms: AlarmBudget | None = None
    figures: dict[str, list[RenderedFigure]] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    calibration: dict[str, Any] = field(default_factory=dict)
    calibration_size: str = "ci"
    data_files: list[str] = field(default_factory=list)
    statuses: dict[RecordKey, FindingStatus] = field(default_factory=dict)
    dtype_flags: dict[DtypeKey, bool | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.statuses:
            entries = load_expectation_entries()
            known = models_with_expectations(entries)
            self.statuses = {record_key(r): finding_status(r, entries, known) for r in self.records}
        if not self.dtype_flags:
            self.dtype_flags = dtype_flags(self.records)

    @property
    def claims(self) -> list[str]:
        return claim_ids(self.records)

    @property
    def columns(self) -> dict[tuple[str, str, str, str], str]:
        return column_labels(self.records)

    @property
    def dtypes(self) -> list[str]:
        return dtypes_of(self.records)

    @property
    def templates(self) -> list[str]:
        return sorted({r.template for r in self.records}, key=template_order)

    def status(self, record: ClaimRecord) -> FindingStatus:
        return self.statuses[record_key(record)]

    def cell(self, claim_id: str, column: tuple[str, str, str, str], template: str) -> ClaimRecord | None:
        """The primary-variant record of a claim on one model column under one template."""
        for record in self.records:
            if (
                record.claim_id == claim_id
                and column_key(record) == column
                and record.template == template
                and record.primary_variant
            ):
                return record
        return None

    def template_dependent(self, claim_id: str, column: tuple[str, str, str, str]) -> bool:
        """Holds under one template and fails under another (primary variants); holds against inconclusive is
        not flagged. Read from the verdicts here, and from the records' own flag, so records of one template per
        job (a split nightly) are still compared."""
        cells = [self.cell(claim_id, column, t) for t in self.templates]
        verdicts = {c.verdict for c in cells if c is not None}
        return set(FINDINGS) <= verdicts or any(c is not None and c.template_dependent for c in cells)

    def dtype_dependent(self, record: ClaimRecord) -> bool | None:
        """Holds under one dtype and fails under another (same claim, model, revision, probe set, template and
        variant); None: not compared. Read from the records here, and from the record's own flag."""
        flags = [
            f for f in (self.dtype_flags.get(dtype_key(record)), record.dtype_dependent) if f is not None
        ]
        return any(flags) if flags else None

    def claim_records(self, claim_id: str) -> list[ClaimRecord]:
        return sorted(
            (r for r in self.records if r.claim_id == claim_id),
            key=lambda r: (
                r.model,
                r.revision,
                template_order(r.template),
                not r.primary_variant,
                str(r.variant),
                dtype_order(r.dtype),
            ),
        )

    def primary_records(self) -> list[ClaimRecord]:
        return [r for r in self.records if r.primary_variant]

    def verdict_counts(self) -> list[tuple[str, str, Counter[str]]]:
        """(model column label, template, verdict counts incl. 'left' and 'decayed') of primary variants."""
        out = []
        for column, label in self.columns.items():
            for template in self.templates:
                group = [
                    r for r in self.primary_records() if column_key(r) == column and r.template == template
                ]
                if not group:
                    continue
                counts: Counter[str] = Counter({v: 0 for v in VERDICTS})
                counts.update(r.verdict for r in group)
                counts.update(
                    self.status(r).kind
                    for r in group
                    if self.status(r).kind in ("left", "decayed", "first run")
                )
                out.append((label, template, counts))
        return out

    def with_status(self, *kinds: str) -> list[ClaimRecord]:
        return [r for r in self.records if self.status(r).kind in kinds]

    def reproduces_summary(self, claim_id: str) -> str:
        """Per claim: which models reproduce the paper's finding (paper expectations, primary variants)."""
        groups: dict[str, list[str]] = {}
        for record in self.claim_records(claim_id):
            if not record.primary_variant:
                continue
            status = self.status(record)
            exp = status.expectation
            if exp is None or exp.status not in ("paper-reported", "paper-implied"):
                state = "no paper expectation"
            else:
                state = {
                    "meets": "yes",
                    "left": "no",
                    "decayed": "decayed",
                    "not comparable": "not comparable (synthetic speech)",
                }.get(status.kind, f"undecided ({record.verdict})")
            groups.setdefault(state, []).append(f"{record.model} [{record.template}]")
        return "; ".join(f"{state}: {', '.join(models)}" for state, models in groups.items())

    def baseline_summary(self, claim_id: str) -> str:
        """Per claim: the regression status of each model and template, or why it was not checked."""
        if self.regression is None:
            return "no baselines given"
        parts = [
            f"{r.model} [{r.template}]: {self.regression.status_of(r)}"
            for r in self.claim_records(claim_id)
            if r.primary_variant
        ]
        return "; ".join(parts)
