"""The HTML report: one self-contained file (inline CSS, PNG figures as base64 data URIs, no external URL).

Same content and order as the Markdown report; verdict cells are coloured, unexpected ones outlined, and
distance tables shaded by value so Tables 1 and 2 read at a glance.
"""

from __future__ import annotations

import base64
import math
from html import escape
from pathlib import Path

from benchmark.claims.record import ClaimRecord
from benchmark.report._common import (
    distance_tables,
    expectation_text,
    fmt,
    fmt_interval,
    provenance_rows,
    reproduces_paper,
    slug,
    template_rows,
    unexpected,
)
from benchmark.report.context import ReportData
from benchmark.report.figures import RenderedFigure
from benchmark.report.markdown import matrix_rows

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em auto;max-width:1400px;color:#212121}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
th,td{border:1px solid #ccc;padding:.25em .5em;vertical-align:top;text-align:left}
th{background:#f5f5f5}
td.v-holds{background:#e8f5e9}td.v-fails{background:#ffebee}td.v-inconclusive{background:#fff8e1}
td.v-error{background:#f3e5f5}td.v-na{background:#fafafa;color:#757575}
td.unexpected{outline:3px solid #d50000;outline-offset:-3px;font-weight:bold}
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


def _matrix_cell(record: ClaimRecord | None) -> str:
    if record is None:
        return '<td class="v-missing">-</td>'
    classes = _verdict_class(record.verdict) + (" unexpected" if unexpected(record) else "")
    mark = "⚠ " if unexpected(record) else ""
    return (
        f'<td class="{classes}" data-verdict="{escape(record.verdict)}" title="{escape(record.reason)}">'
        f'<a href="#claim-{slug(record.claim_id)}">{mark}{escape(record.verdict)}</a>'
        f'<span class="expect">{escape(expectation_text(record))}</span></td>'
    )


def _matrix(data: ReportData) -> str:
    headers, rows = matrix_rows(data)
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for claim_id, row in zip(data.claims, rows, strict=True):
        cells = "".join(_matrix_cell(data.cell(claim_id, column)) for column in data.columns)
        calibration = row[1].replace("**", "")  # the markdown cell's emphasis; a class marks it here
        warn = ' class="calibration-miss"' if "⚠" in calibration else ""
        body.append(
            f'<tr><th><a href="#claim-{slug(claim_id)}">{escape(row[0])}</a></th>'
            f"<td{warn}>{escape(calibration)}</td>{cells}"
            f"<td>{escape(row[-2])}</td><td>{escape(row[-1])}</td></tr>"
        )
    return (
        '<section id="matrix"><h2>Verdict matrix</h2><p class="note">Claims (with the calibration of each '
        "rule) by models. Findings are holds and fails; a red outline marks a verdict that leaves its "
        "expectation, or a pipeline error.</p>"
        f'<table id="verdict-matrix"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
        "</section>"
    )


def _comparison(data: ReportData) -> str:
    comparison = data.comparison
    if comparison is None:
        return ""
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
    skipped = "".join(f"<li>{escape(c)} on {escape(m)}: {escape(w)}</li>" for c, m, w in comparison.skipped)
    return (
        f'<section id="comparison"><h2>Release comparison against {escape(comparison.target)}</h2>'
        f'<p class="note">delta = effect(model) - effect({escape(comparison.reference_model)}@'
        f"{escape(comparison.reference_revision[:12])}) on the same probe set; paired bootstrap where both "
        "records store their resample draws, otherwise an unpaired normal approximation (method column).</p>"
        + _table(
            [
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
    body = (
        _table(
            ["model", "claim", "statistic", "baseline", "now", "moved", "tolerance", "baseline status"],
            rows,
            table_id="regression-table",
        )
        if rows
        else "<p>Nothing moved beyond tolerance.</p>"
    )
    other = sorted(
        f"<li>{escape(m)} / {escape(c)}: {escape(s)}</li>"
        for (m, c), s in regression.status.items()
        if not s.endswith("unchanged") and "changed:" not in s
    )
    return (
        f'<section id="regression"><h2>Regression against {escape(str(regression.baselines_dir))}</h2>'
        + body
        + (f"<p>Not compared:</p><ul>{''.join(other)}</ul>" if other else "")
        + "</section>"
    )


def _figure(figure: RenderedFigure) -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    return (
        f'<figure class="report-figure" data-kind="{escape(figure.kind)}" data-claim="{escape(figure.claim_id)}">'
        f'<img src="data:image/png;base64,{data}" alt="{escape(figure.caption)}">'
        f"<figcaption>{escape(figure.caption)}</figcaption></figure>"
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
    rows = []
    for r in records:
        m = r.measurement
        rows.append(
            [
                escape(r.model),
                f'<span class="{_verdict_class(r.verdict)}">{escape(r.verdict)}'
                f"{' ⚠' if unexpected(r) else ''}</span>",
                escape(expectation_text(r)),
                escape(reproduces_paper(r)),
                fmt(m.effect) if m else "-",
                fmt_interval(m.ci_low, m.ci_high) if m else "-",
                fmt(m.p_value) if m else "-",
                fmt(m.power) if m else "-",
                fmt(m.token_control) if m else "-",
                {True: "yes", False: "no", None: "-"}[m.explained_by_last_token] if m else "-",
                f"{m.n_units}/{m.n_samples}" if m else "-",
                f"{escape(r.probe_set)} ({escape(r.probe_set_hash[:12])})",
                escape(r.profile),
                escape(r.reason),
            ]
        )
    parts = [
        f'<section class="claim" id="claim-{slug(claim_id)}"><h2>{escape(claim_id)} — {escape(first.title)}</h2>',
        f'<p class="meta">Paper: {escape(first.paper)} · section {escape(first.section)} · claim version '
        f"{first.claim_version} · rule ({escape(str(first.rule.get('kind', '?')))}): "
        f"{escape(str(first.rule.get('formula', '-')))}</p>",
        _table(
            [
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
            rows,
            raw=True,
        ),
    ]
    caveats = list(dict.fromkeys(c for r in records for c in r.caveats))
    if caveats:
        parts.append("<p>Caveats:</p><ul>" + "".join(f"<li>{escape(c)}</li>" for c in caveats) + "</ul>")
    problems = [f"{r.model}: {p}" for r in records if r.measurement for p in r.measurement.gate_problems]
    if problems:
        parts.append(
            "<p>Pipeline gate:</p><ul>" + "".join(f"<li>{escape(p)}</li>" for p in problems) + "</ul>"
        )
    parts += [_figure(f) for f in data.figures.get(claim_id, [])]
    for r in records:
        for table in distance_tables(r):
            title = f"{table['title']} — {r.model}" + (f" ({table['note']})" if table["note"] else "")
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
        f'<nav><a href="#matrix">matrix</a>{nav}<a href="#provenance">provenance</a></nav>'
        + _matrix(data)
        + _comparison(data)
        + _regression(data)
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
