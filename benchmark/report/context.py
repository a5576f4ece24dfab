"""Everything one report shows, gathered once so the Markdown and HTML writers say the same thing."""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmark.claims.record import ClaimRecord
from benchmark.report._common import claim_ids, column_key, column_labels, reproduces_paper
from benchmark.report.compare import Comparison
from benchmark.report.figures import RenderedFigure
from benchmark.report.regression import RegressionResult


@dataclass
class ReportData:
    """Records with their matrix layout, optional comparison and regression, and the rendered figures."""

    records: list[ClaimRecord]
    generated: str
    comparison: Comparison | None = None
    regression: RegressionResult | None = None
    figures: dict[str, list[RenderedFigure]] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)

    @property
    def claims(self) -> list[str]:
        return claim_ids(self.records)

    @property
    def columns(self) -> dict[tuple[str, str, str], str]:
        return column_labels(self.records)

    def cell(self, claim_id: str, column: tuple[str, str, str]) -> ClaimRecord | None:
        for record in self.records:
            if record.claim_id == claim_id and column_key(record) == column:
                return record
        return None

    def claim_records(self, claim_id: str) -> list[ClaimRecord]:
        return sorted(
            (r for r in self.records if r.claim_id == claim_id), key=lambda r: (r.model, r.revision)
        )

    def reproduces_summary(self, claim_id: str) -> str:
        """Per claim: which models reproduce the paper's finding, which do not, which are undecided."""
        groups: dict[str, list[str]] = {}
        for record in self.claim_records(claim_id):
            groups.setdefault(reproduces_paper(record), []).append(record.model)
        return "; ".join(f"{state}: {', '.join(models)}" for state, models in groups.items())

    def baseline_summary(self, claim_id: str) -> str:
        """Per claim: the regression status of each model, or why it was not checked."""
        if self.regression is None:
            return "no baselines given"
        parts = [
            f"{r.model}: {self.regression.changed(r.model, claim_id)}" for r in self.claim_records(claim_id)
        ]
        return "; ".join(parts)
