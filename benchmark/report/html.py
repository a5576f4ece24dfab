"""The HTML report: one self-contained file (inline CSS, PNG figures as base64 data URIs, no external URL).

Same content and order as the Markdown report; verdict cells are coloured, unexpected ones outlined, and
distance tables shaded by value so Tables 1 and 2 read at a glance.
"""

from __future__ import annotations

import base64
import math
from html import escape
from pathlib import Path

from benchmark.report._common import distance_tables, fmt, fmt_interval, provenance_rows, slug, template_rows
from benchmark.report.context import ReportData
from benchmark.report.dtype import DTYPE_DEPENDENT
from benchmark.report.figures import RenderedFigure
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

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em auto;max-width:1400px;color:#212121}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
th,td{border:1px solid #ccc;padding:.25em .5em;vertical-align:top;text-align:left}
th{background:#f5f5f5}
td.v-holds{background:#e8f5e9}td.v-fails{background:#ffebee}td.v-inconclusive{background:#fff8e1}
td.v-error{background:#f3e5f5}td.v-na{background:#fafafa;color:#757575}
td.unexpected{outline:3px solid #d50000;outline-offset:-3px;font-weight:bold}
td.decayed{outline:2px dashed #e65100;outline-offset:-3px}
.dependent{display:block;color:#6a1b9a;font-weight:bold;font-size:.8em}
tr.fails td{background:#ffebee}
td.calibration-miss{color:#b71c1c;font-weight:bold}
.expect{display:block;font-size:.8em;color:#555;font-weight:normal}
figure.report-figure{margin:1em 0;display:inline-block;vertical-align:top;max-width:100%}
figure.report-figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.8em;color:#555;max-width:60em}
.meta{color:#555;font-size:.9em}.note{font-size:.85em;color:#555}
nav a{margin-right:.6em;font-size:.85em}
"""


def _verdict_class(verdict: str) -> str:
    return "v-na" if verdict == "n/a" else f"v-{verdict}"


def _table(headers: list[str], rows: list[list[str]], *, table_id: str = "", raw: bool = False) -> str:
    """A plain table; cells are escaped unless ``raw`` (already-built HTML)."""
    cell = (lambda x: str(x)) if raw else (lambda x: escape(str(x)))
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _matrix_cell(cell: MatrixCell) -> str:
    record = cell.record
    if record is None:
        return '<td class="v-missing">-</td>'
    classes = (
        _verdict_class(record.verdict)
        + (" unexpected" if cell.flagged else "")
        + (" decayed" if cell.decayed else "")
    )
    mark = "⚠ " if cell.flagged else ("decayed " if cell.decayed else "")
    dependent = f'<span class="dependent">{TEMPLATE_DEPENDENT}</span>' if cell.template_dependent else ""
    if cell.dtype_dependent:
        dependent += f'<span class="dependent dtype-dependent">{DTYPE_DEPENDENT}</span>'
    return (
        f'<td class="{classes}" data-verdict="{escape(record.verdict)}" data-template="{escape(record.template)}"'
        f' title="{escape(record.reason)}"><a href="#claim-{slug(record.claim_id)}">{mark}{escape(record.verdict)}'
        f'{" ◆" if cell.primary else ""}</a><span class="expect">{escape(cell.note)}</span>{dependent}</td>'
    )


def _summary(data: ReportData) -> str:
    headers, rows = summary_rows(data)
    gate = ""
    if data.regression is not None:
        failures = data.regression.failures
        gate = (
            f"<p>Nightly gate (baselines in {escape(str(data.regression.baselines_dir))}): "
            + (f"<b>{len(failures)} failure(s)</b>" if failures else "no failure")
            + f" over {len(data.regression.checks)} records ({data.regression.compared} compared with an accepted "
            "baseline).</p>"
        )
    notes = summary_lines(data)
    items = "".join(f"<li>{escape(n)}</li>" for n in notes)
    return (
        '<section id="summary"><h2>Summary</h2>'
        + gate
        + _table(headers, rows, table_id="summary-table")
        + (f"<ul>{items}</ul>" if notes else "<p>No finding left its expectation.</p>")
        + "</section>"
    )


def _matrix(data: ReportData) -> str:
    headers, rows = matrix(data)
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for (claim, calibration, cells, repro, base), claim_id in zip(rows, data.claims, strict=True):
        stale = ' class="calibration-miss"' if "⚠" in calibration or "stale" in calibration else ""
        body.append(
            f'<tr><th><a href="#claim-{slug(claim_id)}">{escape(claim)}</a></th>'
            f"<td{stale}>{escape(calibration.replace('**', ''))}</td>"
            + "".join(_matrix_cell(c) for c in cells)
            + f"<td>{escape(repro)}</td><td>{escape(base)}</td></tr>"
        )
    return (
        '<section id="matrix"><h2>Verdict matrix</h2><p class="note">One column per model and template (primary '
        "probe variant; ◆ the claim's primary template). A red outline marks a finding that left its expectation "
        "or a pipeline error, a dashed one a decayed finding; template-dependent: holds under one template and "
        "fails under the other"
        + (
            f"; {DTYPE_DEPENDENT}: holds under one dtype and fails under another (see dtype comparison)"
            if len(data.dtypes) > 1
            else ""
        )
        + f". Rule calibration at size {escape(data.calibration_size)}.</p>"
        f'<table id="verdict-matrix"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
        "</section>"
    )


def _dtypes(data: ReportData) -> str:
    section = dtype_section(data)
    if section is None:
        return ""
    summary, headers, rows = section
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        f'<tr class="{"fails" if row[-1] == DTYPE_DEPENDENT.upper() else ""}">'
        + "".join(f"<td>{escape(c)}</td>" for c in row)
        + "</tr>"
        for row in rows
    )
    return (
        f'<section id="dtypes"><h2>dtype comparison</h2><p class="note">Verdicts of the same claim, model, '
        f"revision, probe set, template and variant under {escape(', '.join(data.dtypes))}. "
        f"{DTYPE_DEPENDENT.upper()}: holds under one dtype and fails under another (holds against inconclusive "
        "is shown, not flagged). The drift of the latents themselves: reports/dtype_drift.json.</p>"
        f"<p>{escape(summary)}.</p>"
        + (
            f'<table id="dtype-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
            if rows
            else "<p>No claim was evaluated under two dtypes.</p>"
        )
        + "</section>"
    )


def _alarms(data: ReportData) -> str:
    if data.regression is None or data.regression.budget is None:
        return ""
    items = "".join(f"<li>{escape(x)}</li>" for x in alarm_lines(data.regression.budget))
    return f'<section id="alarms"><h2>False-alarm budget of the nightly</h2><ul>{items}</ul></section>'


def _comparison(data: ReportData) -> str:
    comparison = data.comparison
    if comparison is None:
        return ""
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
    skipped = "".join(f"<li>{escape(c)} on {escape(m)}: {escape(w)}</li>" for c, m, w in comparison.skipped)
    return (
        f'<section id="comparison"><h2>Release comparison against {escape(comparison.target)}</h2>'
        f'<p class="note">delta = effect(model) - effect({escape(comparison.reference_model)}@'
        f"{escape(comparison.reference_revision[:12])}) on the same probe set, template and variant; one-sided "
        "bounds at the rule's alpha (method column: paired jackknife or unpaired normal approximation).</p>"
        + _table(
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
            table_id="comparison-table",
        )
        + (f"<p>Not compared:</p><ul>{skipped}</ul>" if skipped else "")
        + "</section>"
    )


def _regression(data: ReportData) -> str:
    regression = data.regression
    if regression is None:
        return ""
    headers, rows = regression_rows(regression)
    body = "".join(
        f'<tr class="{"fails" if row[1] == "FAILS" else ""}">'
        + "".join(f"<td>{escape(c)}</td>" for c in row)
        + "</tr>"
        for row in rows
    )
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return (
        f'<section id="regression"><h2>Regression against {escape(str(regression.baselines_dir))}</h2>'
        f"<p>{len(regression.of('unchanged'))} check(s) unchanged within tolerance.</p>"
        + (
            f'<table id="regression-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
            if rows
            else ""
        )
        + "</section>"
    )


def _figure(figure: RenderedFigure) -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    stem = figure.name.removesuffix(".png")
    links = (
        f' Data: <a href="figures/{escape(stem)}.csv">CSV</a>, <a href="figures/{escape(stem)}.parquet">parquet</a>'
        " (beside this file)."
        if figure.points
        else ""
    )
    return (
        f'<figure class="report-figure" data-kind="{escape(figure.kind)}" data-claim="{escape(figure.claim_id)}">'
        f'<img src="data:image/png;base64,{data}" alt="{escape(figure.caption)}">'
        f"<figcaption>{escape(figure.caption)}{links}</figcaption></figure>"
    )


def _shade(value: object, low: float, high: float) -> str:
    if not isinstance(value, (int, float)) or math.isnan(value) or high <= low:
        return ""
    t = (float(value) - low) / (high - low)
    return f' style="background:rgba(30,136,229,{0.08 + 0.5 * (1 - t):.2f})"'  # closer = darker


def _distance_table(title: str, table: dict[str, object]) -> str:
    values = table["values"]
    flat = [v for row in values for v in row if isinstance(v, (int, float)) and not math.isnan(v)]  # type: ignore[union-attr]
    low, high = (min(flat), max(flat)) if flat else (0.0, 0.0)
    head = "<th></th>" + "".join(f"<th>{escape(c)}</th>" for c in table["cols"])  # type: ignore[union-attr]
    body = "".join(
        f"<tr><th>{escape(r)}</th>"
        + "".join(f"<td{_shade(v, low, high)}>{fmt(v)}</td>" for v in row)
        + "</tr>"
        for r, row in zip(table["rows"], values, strict=True)
    )  # type: ignore[call-overload]
    return (
        f'<p><b>{escape(title)}</b></p><table class="distance-table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def _claim(data: ReportData, claim_id: str) -> str:
    records = data.claim_records(claim_id)
    first = records[0]
    headers, rows = claim_rows(data, claim_id)
    parts = [
        f'<section class="claim" id="claim-{slug(claim_id)}"><h2>{escape(claim_id)} — {escape(first.title)}</h2>',
        f'<p class="meta">Paper: {escape(first.paper)} · section {escape(first.section)} · claim version '
        f"{first.claim_version} · rule ({escape(str(first.rule.get('kind', '?')))}): "
        f"{escape(str(first.rule.get('formula', '-')))}</p>",
        _table(headers, rows),
    ]
    for title, items in claim_notes(data, claim_id).items():
        if items:
            parts.append(
                f"<p>{escape(title)}:</p><ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>"
            )
    parts += [_figure(f) for f in data.figures.get(claim_id, [])]
    for r in records:
        for table in distance_tables(r):
            title = f"{table['title']} — {r.model} [{r.template}]" + (
                f" ({table['note']})" if table["note"] else ""
            )
            parts.append(_distance_table(title, table))
    parts.append("</section>")
    return "".join(parts)


def _provenance(data: ReportData) -> str:
    headers, rows = provenance_rows(data.records)
    out = '<section id="provenance"><h2>Provenance</h2>' + _table(headers, rows, table_id="provenance-table")
    templates = template_rows(data.records)
    if templates:
        out += "<p>Templates as rendered:</p>" + _table(
            ["model", "template", "rendered"], [[m, n, repr(t)] for m, n, t in templates]
        )
    if data.data_files:
        out += (
            "<p>Per-layer data of every curves figure:</p><ul>"
            + "".join(f'<li><a href="{escape(f)}">{escape(f)}</a></li>' for f in data.data_files)
            + "</ul>"
        )
    if data.dropped:
        out += (
            "<p>Superseded records:</p><ul>"
            + "".join(f"<li>{escape(d)}</li>" for d in data.dropped)
            + "</ul>"
        )
    return out + "</section>"


def render_html(data: ReportData) -> str:
    nav = "".join(f'<a href="#claim-{slug(c)}">{escape(c)}</a>' for c in data.claims)
    body = (
        f'<h1>lalm-bench report</h1><p class="meta">Generated {escape(data.generated)} from '
        f"{len(data.records)} records, {len(data.columns)} model column(s), {len(data.claims)} claim(s).</p>"
        f'<nav><a href="#summary">summary</a><a href="#matrix">matrix</a>'
        + ('<a href="#dtypes">dtypes</a>' if len(data.dtypes) > 1 else "")
        + f"{nav}"
        '<a href="#provenance">provenance</a></nav>'
        + _summary(data)
        + _matrix(data)
        + _dtypes(data)
        + _alarms(data)
        + _regression(data)
        + _comparison(data)
        + "".join(_claim(data, c) for c in data.claims)
        + _provenance(data)
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>lalm-bench report</title>'
        f"<style>{CSS}</style></head><body>{body}</body></html>\n"
    )


def write_html(data: ReportData, out_dir: Path, name: str = "report.html") -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    path.write_text(render_html(data), encoding="utf-8")
    return path
