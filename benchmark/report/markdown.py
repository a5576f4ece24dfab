"""The Markdown report: the verdict matrix first, then comparison, regression, each claim, provenance.

Figures are PNG files in ``figures/`` beside the Markdown and referenced relatively, so the folder can be
moved or published as one unit.
"""

from __future__ import annotations

from pathlib import Path

from tabulate import tabulate

from benchmark.claims.record import ClaimRecord
from benchmark.report._common import (
    distance_tables,
    expectation_text,
    fmt,
    fmt_interval,
    provenance_rows,
    reproduces_paper,
    template_rows,
    unexpected,
)
from benchmark.report.calibration import load_calibration, rule_calibration_cell
from benchmark.report.context import ReportData

FIGURES_DIR = "figures"


def _cell(record: ClaimRecord | None) -> str:
    if record is None:
        return "-"
    verdict = f"**⚠ {record.verdict}**" if unexpected(record) else record.verdict
    return f"{verdict} ({expectation_text(record)})"


def matrix_rows(data: ReportData) -> tuple[list[str], list[list[str]]]:
    """Claims (with how well each rule is calibrated) by models, then the two summary columns the issue asks
    to keep separate."""
    columns = data.columns
    calibration = load_calibration()
    headers = [
        "claim",
        "rule calibration",
        *columns.values(),
        "reproduces the paper",
        "changed since the baseline",
    ]
    rows = []
    for claim_id in data.claims:
        first = data.claim_records(claim_id)[0]
        rows.append(
            [
                f"{claim_id}@{first.claim_version}",
                rule_calibration_cell(calibration, claim_id),
                *(_cell(data.cell(claim_id, c)) for c in columns),
                data.reproduces_summary(claim_id),
                data.baseline_summary(claim_id),
            ]
        )
    return headers, rows


def _matrix(data: ReportData) -> list[str]:
    headers, rows = matrix_rows(data)
    return [
        "## Verdict matrix",
        "",
        "Verdicts: holds, fails (findings); inconclusive, error, n/a. **⚠** marks a verdict that leaves its "
        "expectation, or a pipeline error.",
        "",
        tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True),
        "",
    ]


def _comparison(data: ReportData) -> list[str]:
    comparison = data.comparison
    if comparison is None:
        return []
    lines = [
        f"## Release comparison against {comparison.target}",
        "",
        f"Delta = effect(model) - effect({comparison.reference_model}@{comparison.reference_revision[:12]}) "
        "on the same probe set. Paired bootstrap where both records store their resample draws; otherwise an "
        "unpaired normal approximation from the two intervals (said in the method column).",
        "",
    ]
    if comparison.deltas:
        rows = [
            [
                d.claim_id,
                d.model,
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
            tabulate(
                rows,
                headers=[
                    "claim",
                    "model",
                    "effect",
                    "reference effect",
                    "delta",
                    "interval",
                    "level",
                    "method",
                    "excludes 0",
                    "note",
                ],
                tablefmt="github",
                disable_numparse=True,
            ),
            "",
        ]
    else:
        lines += ["No claim could be compared.", ""]
    if comparison.skipped:
        lines += ["Not compared:", ""] + [
            f"- {claim} on {model}: {why}" for claim, model, why in comparison.skipped
        ]
        lines.append("")
    return lines


def _regression(data: ReportData) -> list[str]:
    regression = data.regression
    if regression is None:
        return []
    lines = [f"## Regression against the baselines in `{regression.baselines_dir}`", ""]
    if regression.changes:
        rows = [
            [
                c.model,
                c.claim_id,
                c.statistic,
                c.baseline if not isinstance(c.baseline, float) else fmt(c.baseline, 4),
                c.current if not isinstance(c.current, float) else fmt(c.current, 4),
                c.moved,
                "exact" if c.tolerance is None else fmt(c.tolerance),
                "provisional" if c.provisional else "accepted",
            ]
            for c in regression.changes
        ]
        lines += [
            "Moved beyond tolerance:",
            "",
            tabulate(
                rows,
                headers=[
                    "model",
                    "claim",
                    "statistic",
                    "baseline",
                    "now",
                    "moved",
                    "tolerance",
                    "baseline status",
                ],
                tablefmt="github",
                disable_numparse=True,
            ),
            "",
        ]
    else:
        lines += ["Nothing moved beyond tolerance.", ""]
    other = sorted(
        f"- {model} / {claim}: {status}"
        for (model, claim), status in regression.status.items()
        if not status.endswith("unchanged") and "changed:" not in status
    )
    if other:
        lines += ["Not compared:", "", *other, ""]
    return lines


def _claim(data: ReportData, claim_id: str) -> list[str]:
    records = data.claim_records(claim_id)
    first = records[0]
    lines = [
        f"## {claim_id} — {first.title}",
        "",
        f"Paper: {first.paper} · section {first.section} · claim version {first.claim_version} · "
        f"rule ({first.rule.get('kind', '?')}): {first.rule.get('formula', '-')}",
        "",
    ]
    rows = []
    for r in records:
        m = r.measurement
        rows.append(
            [
                r.model,
                r.verdict + (" ⚠" if unexpected(r) else ""),
                expectation_text(r),
                reproduces_paper(r),
                fmt(m.effect) if m else "-",
                fmt_interval(m.ci_low, m.ci_high) if m else "-",
                fmt(m.p_value) if m else "-",
                fmt(m.power) if m else "-",
                fmt(m.token_control) if m else "-",
                {True: "yes", False: "no", None: "-"}[m.explained_by_last_token] if m else "-",
                f"{m.n_units}/{m.n_samples}" if m else "-",
                f"{r.probe_set} ({r.probe_set_hash[:12]})",
                r.profile,
                r.reason,
            ]
        )
    lines += [
        tabulate(
            rows,
            headers=[
                "model",
                "verdict",
                "expectation",
                "reproduces the paper",
                "effect",
                "interval",
                "p",
                "power",
                "token control",
                "explained by last token",
                "units/samples",
                "probe set",
                "profile",
                "reason",
            ],
            tablefmt="github",
            disable_numparse=True,
        ),
        "",
    ]
    caveats = list(dict.fromkeys(c for r in records for c in r.caveats))
    problems = [f"{r.model}: {p}" for r in records if r.measurement for p in r.measurement.gate_problems]
    if caveats:
        lines += ["Caveats:", "", *(f"- {c}" for c in caveats), ""]
    if problems:
        lines += ["Pipeline gate:", "", *(f"- {p}" for p in problems), ""]
    for figure in data.figures.get(claim_id, []):
        lines += [f"![{figure.caption}]({FIGURES_DIR}/{figure.name})", "", f"*{figure.caption}*", ""]
    for r in records:
        for table in distance_tables(r):
            title = f"{table['title']} — {r.model}" + (f" ({table['note']})" if table["note"] else "")
            body = [
                [row, *(fmt(v) for v in values)]
                for row, values in zip(table["rows"], table["values"], strict=True)
            ]
            lines += [
                f"**{title}**",
                "",
                tabulate(body, headers=["", *table["cols"]], tablefmt="github", disable_numparse=True),
                "",
            ]
    return lines


def _provenance(data: ReportData) -> list[str]:
    headers, rows = provenance_rows(data.records)
    lines = [
        "## Provenance",
        "",
        tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True),
        "",
    ]
    templates = template_rows(data.records)
    if templates:
        lines += [
            "Templates as rendered:",
            "",
            tabulate(
                [[m, n, repr(t)] for m, n, t in templates],
                headers=["model", "template", "rendered"],
                tablefmt="github",
                disable_numparse=True,
            ),
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
        f"Generated {data.generated} from {len(data.records)} records on "
        f"{len(data.columns)} model column(s) and {len(data.claims)} claim(s).",
        "",
    ]
    lines += _matrix(data) + _comparison(data) + _regression(data)
    for claim_id in data.claims:
        lines += _claim(data, claim_id)
    lines += _provenance(data)
    return "\n".join(lines).rstrip() + "\n"


def write_markdown(data: ReportData, out_dir: Path, name: str = "report.md") -> Path:
    """Write the Markdown and its PNG figures under ``out_dir``."""
    figures_dir = out_dir / FIGURES_DIR
    figures_dir.mkdir(parents=True, exist_ok=True)
    for figures in data.figures.values():
        for figure in figures:
            (figures_dir / figure.name).write_bytes(figure.png)
    path = out_dir / name
    path.write_text(report_markdown(data), encoding="utf-8")
    return path
