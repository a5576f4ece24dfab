"""The Markdown report: a summary first, then the verdict matrix, the nightly's gate, comparison, each claim and
provenance.

Figures are PNG files in ``figures/`` beside the Markdown and referenced relatively, with the per-layer data of
each curves figure as CSV and parquet of the same name, so the folder can be moved or published as one unit.
"""

from __future__ import annotations

from pathlib import Path

from tabulate import tabulate

from benchmark.report._common import distance_tables, fmt, fmt_interval, provenance_rows, template_rows
from benchmark.report.context import ReportData
from benchmark.report.dtype import DTYPE_DEPENDENT
from benchmark.report.tables import (
    TEMPLATE_DEPENDENT,
    MatrixCell,
    alarm_lines,
    claim_notes,
    claim_rows,
    dtype_section,
    matrix,
    regression_rows,
    summary_lines,
    summary_rows,
)

FIGURES_DIR = "figures"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def matrix_cell(cell: MatrixCell) -> str:
    """``**⚠ fails** (expected holds, paper-reported)``; decayed, template- and dtype-dependent cells are named."""
    if cell.record is None:
        return "-"
    verdict = cell.verdict
    if cell.flagged:
        verdict = f"**⚠ {verdict}**"
    elif cell.decayed:
        verdict = f"**decayed** {verdict}"
    text = f"{verdict} ({cell.note})" + (" ◆" if cell.primary else "")
    text += f" **{TEMPLATE_DEPENDENT}**" if cell.template_dependent else ""
    return text + (f" **{DTYPE_DEPENDENT}**" if cell.dtype_dependent else "")


def _summary(data: ReportData) -> list[str]:
    headers, rows = summary_rows(data)
    lines = ["## Summary", ""]
    if data.regression is not None:
        failures = data.regression.failures
        lines += [
            f"Nightly gate (baselines in `{data.regression.baselines_dir}`): "
            + (f"**{len(failures)} failure(s)**" if failures else "no failure")
            + f" over {len(data.regression.checks)} records ({data.regression.compared} compared with an accepted "
            'baseline); see "Regression".',
            "",
        ]
    lines += [_table(headers, rows), ""]
    notes = summary_lines(data)
    lines += [*(f"- {line}" for line in notes), ""] if notes else ["No finding left its expectation.", ""]
    return lines


def _matrix(data: ReportData) -> list[str]:
    headers, rows = matrix(data)
    body = [
        [claim, calibration, *(matrix_cell(c) for c in cells), repro, base]
        for claim, calibration, cells, repro, base in rows
    ]
    return [
        "## Verdict matrix",
        "",
        "One column per model and template (primary probe variant; ◆ the claim's primary template, the paper's "
        "reading). Findings are holds and fails. **⚠** marks a finding that left its expectation, or a pipeline "
        "error; **decayed** a finding that became inconclusive; **template-dependent** a claim that holds under "
        "one template and fails under the other on that model (holds against inconclusive is shown, not "
        "flagged)"
        + (
            f"; **{DTYPE_DEPENDENT}** a claim that holds under one dtype and fails under another on that model, "
            'template and variant (see "dtype comparison")'
            if len(data.dtypes) > 1
            else ""
        )
        + ". Rule calibration: the calibration entry of each claim and template at size "
        f"`{data.calibration_size}`.",
        "",
        _table(headers, body),
        "",
    ]


def _dtypes(data: ReportData) -> list[str]:
    section = dtype_section(data)
    if section is None:
        return []
    summary, headers, rows = section
    return [
        "## dtype comparison",
        "",
        f"Verdicts of the same claim, model, revision, probe set, template and variant under "
        f"{', '.join(data.dtypes)}. **{DTYPE_DEPENDENT.upper()}**: holds under one dtype and fails under another "
        "(holds against inconclusive is shown, not flagged). The drift of the latents themselves: "
        "`reports/dtype_drift.json`.",
        "",
        summary + ".",
        "",
        *([_table(headers, rows), ""] if rows else ["No claim was evaluated under two dtypes.", ""]),
    ]


def _alarms(data: ReportData) -> list[str]:
    if data.regression is None or data.regression.budget is None:
        return []
    return [
        "## False-alarm budget of the nightly",
        "",
        *(f"- {x}" for x in alarm_lines(data.regression.budget)),
        "",
    ]


def _comparison(data: ReportData) -> list[str]:
    comparison = data.comparison
    if comparison is None:
        return []
    lines = [
        f"## Release comparison against {comparison.target}",
        "",
        f"Delta = effect(model) - effect({comparison.reference_model}@{comparison.reference_revision[:12]}) on "
        "the same probe set, template and variant, with one-sided bounds at the rule's alpha: paired jackknife "
        "where both records decide on one part over the same units, otherwise an unpaired normal approximation "
        "(the method column says which).",
        "",
    ]
    if comparison.deltas:
        rows = [
            [
                d.claim_id,
                d.model,
                d.template,
                d.variant or "-",
                fmt(d.effect),
                fmt(d.reference_effect),
                f"{d.delta:+.3f}",
                fmt_interval(d.ci_low, d.ci_high),
                f"{d.level:.0%}",
                d.method,
                "yes" if d.excludes_zero else "no",
                d.note,
            ]
            for d in comparison.deltas
        ]
        lines += [
            _table(
                [
                    "claim",
                    "model",
                    "template",
                    "variant",
                    "effect",
                    "reference effect",
                    "delta",
                    "interval",
                    "level per bound",
                    "method",
                    "excludes 0",
                    "note",
                ],
                rows,
            ),
            "",
        ]
    else:
        lines += ["No claim could be compared.", ""]
    if comparison.skipped:
        lines += ["Not compared:", "", *(f"- {c} on {m}: {w}" for c, m, w in comparison.skipped), ""]
    return lines


def _regression(data: ReportData) -> list[str]:
    regression = data.regression
    if regression is None:
        return []
    headers, rows = regression_rows(regression)
    lines = [f"## Regression against the baselines in `{regression.baselines_dir}`", ""]
    unchanged = len(regression.of("unchanged"))
    lines += [f"{unchanged} check(s) unchanged within tolerance.", ""]
    if rows:
        lines += [_table(headers, rows), ""]
    return lines


def _claim(data: ReportData, claim_id: str) -> list[str]:
    records = data.claim_records(claim_id)
    first = records[0]
    headers, rows = claim_rows(data, claim_id)
    lines = [
        f"## {claim_id} — {first.title}",
        "",
        f"Paper: {first.paper} · section {first.section} · claim version {first.claim_version} · rule "
        f"({first.rule.get('kind', '?')}): {first.rule.get('formula', '-')}",
        "",
        _table(headers, rows),
        "",
    ]
    for title, items in claim_notes(data, claim_id).items():
        if items:
            lines += [f"{title}:", "", *(f"- {item}" for item in items), ""]
    for figure in data.figures.get(claim_id, []):
        lines += [f"![{figure.caption}]({FIGURES_DIR}/{figure.name})", "", f"*{figure.caption}*", ""]
        if figure.points:
            stem = figure.name.removesuffix(".png")
            lines += [
                f"Data: [{stem}.csv]({FIGURES_DIR}/{stem}.csv), [{stem}.parquet]({FIGURES_DIR}/{stem}.parquet)",
                "",
            ]
    for r in records:
        for table in distance_tables(r):
            title = f"{table['title']} — {r.model} [{r.template}]" + (
                f" ({table['note']})" if table["note"] else ""
            )
            body = [
                [row, *(fmt(v) for v in values)]
                for row, values in zip(table["rows"], table["values"], strict=True)
            ]
            lines += [f"**{title}**", "", _table(["", *table["cols"]], body), ""]
    return lines


def _provenance(data: ReportData) -> list[str]:
    headers, rows = provenance_rows(data.records)
    lines = ["## Provenance", "", _table(headers, rows), ""]
    templates = template_rows(data.records)
    if templates:
        lines += [
            "Templates as rendered:",
            "",
            _table(["model", "template", "rendered"], [[m, n, repr(t)] for m, n, t in templates]),
            "",
        ]
    if data.data_files:
        lines += [
            "Per-layer data of every curves figure (long format: one row per value):",
            "",
            *(f"- [{f}]({f})" for f in data.data_files),
            "",
        ]
    if data.dropped:
        lines += [
            "Superseded records (an older duplicate of the same key):",
            "",
            *(f"- {d}" for d in data.dropped),
            "",
        ]
    return lines


def report_markdown(data: ReportData) -> str:
    lines = [
        "# lalm-bench report",
        "",
        f"Generated {data.generated} from {len(data.records)} records on {len(data.columns)} model column(s), "
        f"{len(data.claims)} claim(s) and template(s) {', '.join(data.templates)}.",
        "",
    ]
    lines += (
        _summary(data) + _matrix(data) + _dtypes(data) + _alarms(data) + _regression(data) + _comparison(data)
    )
    for claim_id in data.claims:
        lines += _claim(data, claim_id)
    lines += _provenance(data)
    return "\n".join(lines).rstrip() + "\n"


def write_markdown(data: ReportData, out_dir: Path, name: str = "report.md") -> Path:
    """Write the Markdown, its PNG figures and the figures' per-layer data under ``out_dir``."""
    from benchmark.report.curves import write_tables

    figures_dir = out_dir / FIGURES_DIR
    figures_dir.mkdir(parents=True, exist_ok=True)
    all_points = []
    for figures in data.figures.values():
        for figure in figures:
            (figures_dir / figure.name).write_bytes(figure.png)
            if figure.points:
                write_tables(figure.points, figures_dir / figure.name.removesuffix(".png"))
                all_points += figure.points
    if all_points:
        write_tables(all_points, out_dir / "curves")
        data.data_files = ["curves.csv", "curves.parquet"]
    path = out_dir / name
    path.write_text(report_markdown(data), encoding="utf-8")
    return path
