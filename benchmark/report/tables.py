"""The report's tables as plain cells, shared by the Markdown and HTML writers so both say the same thing.

Why apart from the writers: each table is built once here from :class:`~benchmark.report.context.ReportData`;
the writers only format (Markdown emphasis, HTML classes). Nothing here recomputes a statistic.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.claims.record import ClaimRecord
from benchmark.report._common import VERDICTS, fmt, fmt_interval
from benchmark.report.alarms import AlarmBudget
from benchmark.report.calibration import matrix_calibration_cell
from benchmark.report.context import ReportData
from benchmark.report.dtype import dependent_lines, dtype_summary, dtype_table
from benchmark.report.regression import RegressionResult

TEMPLATE_DEPENDENT = "template-dependent"
#: Status kinds counted in the summary beside the verdicts.
STATUS_COUNTS: tuple[str, ...] = ("left", "decayed", "first run")


@dataclass(frozen=True)
class MatrixCell:
    """One verdict of the matrix: the record (None: not run), its status words, and the flags to render."""

    record: ClaimRecord | None
    verdict: str
    note: str
    flagged: bool
    decayed: bool
    template_dependent: bool
    primary: bool
    dtype_dependent: bool = False


def matrix(data: ReportData) -> tuple[list[str], list[tuple[str, str, list[MatrixCell], str, str]]]:
    """Headers, and per claim: (claim@version, rule calibration, one cell per model x template, reproduces the
    paper, regression). Cells are the primary probe variant; the claim sections show the secondary one."""
    templates = data.templates
    headers = ["claim", "rule calibration"]
    for label in data.columns.values():
        headers += [f"{label} [{t}]" for t in templates]
    headers += ["reproduces the paper", "regression against the baseline"]
    rows = []
    for claim_id in data.claims:
        first = data.claim_records(claim_id)[0]
        cells = []
        for column in data.columns:
            dependent = data.template_dependent(claim_id, column)
            for template in templates:
                record = data.cell(claim_id, column, template)
                if record is None:
                    cells.append(MatrixCell(None, "-", "", False, False, False, False))
                    continue
                status = data.status(record)
                cells.append(
                    MatrixCell(
                        record,
                        record.verdict,
                        status.cell(),
                        status.flagged,
                        status.kind == "decayed",
                        dependent,
                        record.primary_template,
                        bool(data.dtype_dependent(record)),
                    )
                )
        rows.append(
            (
                f"{claim_id}@{first.claim_version}",
                matrix_calibration_cell(data.calibration, claim_id, templates, data.calibration_size),
                cells,
                data.reproduces_summary(claim_id),
                data.baseline_summary(claim_id),
            )
        )
    return headers, rows


def summary_rows(data: ReportData) -> tuple[list[str], list[list[str]]]:
    """Counts per model and template (primary variants): each verdict, then how many left their expectation,
    decayed, or are first runs."""
    headers = ["model", "template", *VERDICTS, "left expectation", "decayed", "first run"]
    rows = [
        [label, template, *(str(counts[v]) for v in VERDICTS), *(str(counts[k]) for k in STATUS_COUNTS)]
        for label, template, counts in data.verdict_counts()
    ]
    return headers, rows


def _where(record: ClaimRecord) -> str:
    variant = f",{record.variant}" if record.variant and not record.primary_variant else ""
    return f"{record.claim_id} on {record.model} [{record.template}{variant}]"


def _numbers(record: ClaimRecord) -> str:
    m = record.measurement
    return "no effect" if m is None else f"effect {fmt(m.effect)} {fmt_interval(m.ci_low, m.ci_high)}"


def summary_lines(data: ReportData) -> list[str]:
    """Bullets under the counts: what left its expectation, what decayed, template dependence, not compared."""
    lines = []
    for record in data.with_status("left"):
        exp = data.status(record).expectation
        lines.append(
            f"LEFT its expectation: {_where(record)}: {record.verdict}, expected {exp.verdict} "  # type: ignore[union-attr]
            f"({exp.status}, {exp.source}); {_numbers(record)}"  # type: ignore[union-attr]
        )
    for record in data.with_status("error"):
        lines.append(f"ERROR: {_where(record)}: {record.reason}")
    for record in data.with_status("decayed"):
        status = data.status(record)
        exp = status.expectation
        lines.append(
            f"DECAYED: {_where(record)}: {exp.verdict} -> inconclusive; {status.detail}; expectation "  # type: ignore[union-attr]
            f"{exp.status}, {exp.source}"  # type: ignore[union-attr]
        )
    dependent = sorted(
        {
            f"{claim_id} on {label}"
            for claim_id in data.claims
            for column, label in data.columns.items()
            if data.template_dependent(claim_id, column)
        }
    )
    lines += [f"TEMPLATE-DEPENDENT (holds under one template, fails under the other): {d}" for d in dependent]
    if len(data.dtypes) > 1:
        lines += [
            f"DTYPE-DEPENDENT (holds under one dtype, fails under another): {d}"
            for d in dependent_lines(data.records)
        ]
    skipped = data.with_status("not comparable")
    if skipped:
        lines.append(
            f"NOT COMPARED: {len(skipped)} verdict(s) on synthetic speech whose paper expectation holds for real "
            "speech (listed in the claim sections): "
            + ", ".join(sorted({f"{r.claim_id} on {r.model}" for r in skipped}))
        )
    firsts = sorted({r.model for r in data.with_status("first run")})
    if firsts:
        lines.append(f"FIRST RUN (no recorded expectations; verdicts reported only): {', '.join(firsts)}")
    return lines


def claim_rows(data: ReportData, claim_id: str) -> tuple[list[str], list[list[str]]]:
    """Every record of a claim (both templates, every probe variant) with its numbers and token controls."""
    headers = [
        "model",
        "template",
        "variant",
        "verdict",
        "status",
        "effect",
        "interval",
        "p",
        "power",
        "compared",
        "tok_last",
        "tok_mean",
        "explained by tokens",
        "token note",
        "units/samples",
        "probe set",
        "reason",
    ]
    rows = []
    for r in data.claim_records(claim_id):
        m = r.measurement
        controls = m.token_controls if m else {}
        status = data.status(r)
        explained = {True: "yes", False: "no", None: "-"}[m.explained_by_tokens] if m else "-"
        rows.append(
            [
                r.model,
                r.template + (" (primary)" if r.primary_template else ""),
                (r.variant or "-") + (" (primary)" if r.variant and r.primary_variant else ""),
                r.verdict,
                status.kind + (f": {status.cell()}" if status.kind not in ("n/a", "no expectation") else ""),
                fmt(m.effect) if m else "-",
                fmt_interval(m.ci_low, m.ci_high) if m else "-",
                fmt(m.p_value) if m else "-",
                fmt(m.power) if m else "-",
                fmt(controls.get("compared")) if m else "-",
                fmt(controls.get("tok_last")) if m else "-",
                fmt(controls.get("tok_mean")) if m else "-",
                explained,
                (m.token_note or "-") if m else "-",
                (", ".join(f"{n} {u}" for u, n in m.n_units.items()) + f" / {m.n_samples}") if m else "-",
                f"{r.probe_set} ({r.probe_set_hash[:12]})",
                r.reason,
            ]
        )
    return headers, rows


def claim_notes(data: ReportData, claim_id: str) -> dict[str, list[str]]:
    """Titled bullet lists under a claim: secondary decisions, decays, expectations not compared, first runs'
    family comparisons, caveats, pipeline-gate problems."""
    records = data.claim_records(claim_id)
    secondary = [
        f"{_where(r)}: {d.title}: {d.verdict}"
        + (f" (effect {fmt(d.effect)} {fmt_interval(d.ci_low, d.ci_high)}" if d.effect is not None else " (")
        + (f", power {fmt(d.power)})" if d.power is not None else ")")
        + f" — {d.reason} (reported beside the verdict, never deciding it)"
        for r in records
        for d in r.secondary.values()
    ]
    decayed = [
        f"{_where(r)}: {data.status(r).detail}; expected {data.status(r).expectation.verdict} "  # type: ignore[union-attr]
        f"({data.status(r).expectation.source})"  # type: ignore[union-attr]
        for r in records
        if data.status(r).kind == "decayed"
    ]
    mismatch = [
        f"{_where(r)}: {r.verdict}; {data.status(r).detail}"
        for r in records
        if data.status(r).kind == "not comparable"
    ]
    family = [
        f"{_where(r)}: {r.verdict}; {comparison.text()}"
        for r in records
        for comparison in data.status(r).family
    ]
    holds_for = sorted(
        {
            f"{r.model} [{r.template}]: {status.entry.holds_for_text()}"
            for r in records
            if (status := data.status(r)).entry is not None
        }
    )
    return {
        "Secondary decisions": secondary,
        "Decayed (expected a finding, now inconclusive)": decayed,
        "Not compared with the paper (expectation for real speech, run on synthetic speech)": mismatch,
        "First run: against the paper expectations of the model's family": family,
        "Expectations hold for": holds_for,
        "Caveats": list(dict.fromkeys(c for r in records for c in r.caveats)),
        "Pipeline gate": [
            f"{r.model}: {p}" for r in records if r.measurement for p in r.measurement.gate_problems
        ],
    }


def alarm_lines(budget: AlarmBudget) -> list[str]:
    """The false-alarm budget in words: checks, expected spurious flips without and with the rule."""
    if budget.checks == 0:
        return [
            "No record tonight has an accepted baseline that is a finding: nothing can raise a false alarm."
        ]
    thresholds = sorted({budget.threshold(r) for r in budget.rates})
    return [
        f"Checks tonight (claim x template x probe variant x model whose accepted baseline is a finding, the ones "
        f"that can flip): {budget.checks}.",
        f"Expected spurious flips if every flip failed the night: {budget.expected_without_rule:.2f} (the sum of "
        "each check's calibrated false-finding rate).",
        f"Failure rule: a flip fails the night only when tonight's one-sided p-value for the new finding is at most "
        f"budget / (checks x k), k = max(1, calibrated rate / alpha): thresholds {fmt(thresholds[0], 6)}"
        + (f" .. {fmt(thresholds[-1], 6)}" if len(thresholds) > 1 else "")
        + f". Expected spurious failures under the rule: {budget.expected_with_rule:.3f} (budget "
        f"{budget.budget:g}).",
        *(f"Assumption: {a}." for a in budget.assumptions),
        "Pipeline errors, baselines that cannot be matched and missing records fail regardless: they are not noise.",
    ]


def regression_rows(result: RegressionResult) -> tuple[list[str], list[list[str]]]:
    """Every check that is not unchanged, failures first."""
    order = [
        "regression",
        "error",
        "unmatched",
        "missing record",
        "unconfirmed flip",
        "decayed",
        "new finding",
        "moved",
        "no baseline",
    ]
    checks = sorted(
        (c for c in result.checks if c.outcome != "unchanged"),
        key=lambda c: (order.index(c.outcome) if c.outcome in order else len(order), c.label),
    )
    rows = [[c.outcome, "FAILS" if c.fails else "reported", c.label, c.detail] for c in checks]
    return ["outcome", "gate", "check", "detail"], rows


def dtype_section(data: ReportData) -> tuple[str, list[str], list[list[str]]] | None:
    """The dtype comparison when the records hold two or more dtypes: its summary line, headers and rows (every
    claim x model x template x variant present under two dtypes, dtype-dependent first); else None."""
    if len(data.dtypes) < 2:
        return None
    headers, rows = dtype_table(data.records)
    return dtype_summary(data.records), headers, rows
