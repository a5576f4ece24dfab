"""Reports from claim records: Markdown + one self-contained HTML, release comparison, regression baselines.

The report reads :class:`~benchmark.claims.record.ClaimRecord` files only and never recomputes a statistic;
figures draw the curves and payloads the records store (see :mod:`benchmark.report.figures`).

Public API
----------
``load_records(paths)``
    records from files or folders (folders searched recursively for ``<claim>@<version>[...].json``).
``write_report(records, out_dir, *, compare_to=None, baselines_dir=None, ...)``
    writes ``report.md`` (+ ``figures/*.png`` with each curves figure's data as CSV and parquet, and
    ``curves.csv``/``curves.parquet``) and ``report.html``; returns their paths. Never fails on findings.
``baselines.accept(records, reason, *, baselines_dir)``
    accepts records as regression baselines (refuses an empty reason, errors, and a nightly run).
``regression.check_records(records, baselines_dir, ...)``
    the nightly's gate: every record against its baseline, with the false-alarm rule of ``alarms``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from pydantic import ValidationError

from benchmark.claims.record import ClaimRecord
from benchmark.core.provenance import utc_now
from benchmark.report._common import ReportError
from benchmark.report.calibration import load_calibration
from benchmark.report.compare import compare_records
from benchmark.report.context import RecordKey, ReportData, record_key
from benchmark.report.dtype import mark_dtype_dependence
from benchmark.report.figures import render_figures
from benchmark.report.html import write_html
from benchmark.report.markdown import write_markdown
from benchmark.report.regression import check_records

__all__ = ["ReportError", "load_records", "write_report"]

RECORD_GLOB = "*@*.json"


def _record_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob(RECORD_GLOB) if p.is_file())
    if path.is_file():
        return [path]
    raise ReportError(f"{path}: no such file or folder of claim records")


def load_records(paths: Iterable[Path | str]) -> list[ClaimRecord]:
    """Every claim record under ``paths`` (files, or folders searched for ``<claim>@<version>[...].json``)."""
    records = []
    for path in map(Path, paths):
        for file in _record_files(path):
            try:
                records.append(ClaimRecord.load(file))
            except (ValidationError, ValueError, OSError) as error:
                raise ReportError(f"{file}: not a readable claim record ({error})") from error
    return records


def _dedupe(records: Sequence[ClaimRecord]) -> tuple[list[ClaimRecord], list[str]]:
    """Keep the newest record per (claim, model, revision, profile, template, variant, dtype); older ones are
    listed. Records that differ only by dtype are both kept: the report compares them."""
    newest: dict[RecordKey, ClaimRecord] = {}
    dropped = []
    for record in sorted(records, key=lambda r: r.created):
        key = record_key(record)
        if key in newest:
            old = newest[key]
            dropped.append(
                f"{old.claim_id}@{old.claim_version} on {old.model} [{old.template}] ({old.dtype}, "
                f"{old.probe_set_hash[:12]}, {old.created}) superseded by the record of {record.created}"
            )
        newest[key] = record
    return list(newest.values()), dropped


def write_report(
    records: Sequence[ClaimRecord],
    out_dir: Path,
    *,
    compare_to: str | None = None,
    baselines_dir: Path | None = None,
    calibration_path: Path | None = None,
    calibration_size: str = "ci",
    models: Sequence[str] | None = None,
    profile: str | None = None,
    dtype: str | None = None,
) -> dict[str, Path]:
    """Write the Markdown and HTML reports under ``out_dir``; returns ``{"markdown", "html", "figures"}``.

    ``compare_to`` (``MODEL[@REV]``) adds the release comparison against that model, whose records must be
    among ``records``; records of two or more dtypes (e.g. the results folders of a float32 and a bfloat16 run)
    add the dtype comparison and mark dtype-dependent claims; ``baselines_dir`` adds the nightly's regression and false-alarm sections (``models``: the
    models the run covered, whose baselines must all find a record; ``profile``/``dtype``: the records the gate
    judges, default all); the rule calibration column reads
    ``calibration_path`` (default: the committed file) at ``calibration_size``.
    """
    if not records:
        raise ReportError(
            "no claim records to report; run `lalm-bench run` or `pytest claims/` first, or pass "
            "the results folder"
        )
    kept, dropped = _dedupe(records)
    kept = mark_dtype_dependence(kept)  # before the gate: its results refer to these very records
    calibration = load_calibration(calibration_path)
    data = ReportData(
        records=kept,
        generated=utc_now(),
        dropped=dropped,
        calibration=calibration,
        calibration_size=calibration_size,
    )
    if compare_to:
        data.comparison = compare_records(kept, compare_to)
    if baselines_dir is not None:
        data.regression = check_records(
            kept,
            Path(baselines_dir),
            profile=profile,
            dtype=dtype,
            models=models,
            calibration=calibration,
            calibration_size=calibration_size,
        )
    data.figures = render_figures(kept, data.comparison)
    out_dir = Path(out_dir)
    markdown = write_markdown(data, out_dir)
    html = write_html(data, out_dir)
    return {"markdown": markdown, "html": html, "figures": markdown.parent / "figures"}
