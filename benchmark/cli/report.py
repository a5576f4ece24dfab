"""``lalm-bench report`` and ``lalm-bench calibration-report``: reports from stored records and the calibration
file. A report never fails on what it finds (the nightly's gate is ``lalm-bench baselines check``); it fails only
when its inputs cannot be read."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmark.core.errors import BenchError


def _report(args: argparse.Namespace) -> int:
    from benchmark.report import load_records, write_report
    from benchmark.run.validate import ValidationFailed, check_paths

    problems = check_paths([("--out", args.out, True)])
    if problems:  # before any record is read: a report that cannot be written is said at once
        raise ValidationFailed(problems)

    written = write_report(
        load_records(args.results),
        args.out,
        compare_to=args.compare_to,
        baselines_dir=args.baselines,
        calibration_path=args.calibration,
        calibration_size=args.calibration_size,
        models=args.model,
        profile=args.profile,
        dtype=args.dtype,
    )
    for kind, path in written.items():
        print(f"{kind}: {path}")
    return 0


def _calibration_report(args: argparse.Namespace) -> int:
    from benchmark.claims.evaluate import CALIBRATION_FILE, verdict_code_sha256
    from benchmark.report.calibration import calibration_markdown, calibration_table, load_reruns

    source = Path(args.file) if args.file else CALIBRATION_FILE
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BenchError(f"calibration file {source}: cannot be read as JSON ({exc})") from exc
    if not isinstance(document, dict) or not isinstance(document.get("entries"), dict):
        raise BenchError(f"calibration file {source}: no 'entries' mapping; is it a calibration.json?")
    if document.get("stale"):
        print(f"calibration file {source} is marked stale: {document.get('note', 'recalibration pending')}")
    code = verdict_code_sha256()
    print(calibration_table(document, fmt_name="simple", current_code=code))
    if args.markdown is not None:
        shown = "benchmark/claims/calibration.json" if args.file is None else str(source)
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(
            calibration_markdown(document, source=shown, current_code=code, reruns=load_reruns(args.reruns)),
            encoding="utf-8",
        )
        print(f"written: {args.markdown}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``lalm-bench report`` and ``lalm-bench calibration-report``."""
    report = sub.add_parser(
        "report", help="Markdown + HTML report from result records (never fails on findings)"
    )
    report.add_argument("results", nargs="+", type=Path, help="record files or folders")
    report.add_argument("--out", type=Path, default=Path("reports"), help="Default: %(default)s")
    report.add_argument("--compare-to", default=None, help="MODEL[@REV]: deltas against this model")
    report.add_argument(
        "--baselines",
        type=Path,
        default=None,
        help="add the regression and false-alarm sections against these baselines. Default: none",
    )
    report.add_argument(
        "--model", action="append", help="models the run covered (for the regression section)"
    )
    report.add_argument("--profile", default=None, help="regression section: records of this profile only")
    report.add_argument("--dtype", default=None, help="regression section: records of this dtype only")
    report.add_argument(
        "--calibration", type=Path, default=None, help="Default: the committed calibration file"
    )
    report.add_argument(
        "--calibration-size", default="ci", help="size of the calibration entries shown. Default: %(default)r"
    )
    report.set_defaults(func=_report)

    calibration = sub.add_parser(
        "calibration-report", help="the calibration file as a table: FPR and power per claim with intervals"
    )
    calibration.add_argument(
        "--file", type=Path, default=None, help="calibration JSON. Default: the committed one"
    )
    calibration.add_argument(
        "--markdown", type=Path, default=None, help="also write the table as Markdown here"
    )
    calibration.add_argument(
        "--reruns",
        type=Path,
        default=Path("reports/control_reruns"),
        help="folder of seed reruns (scripts/rerun_controls.py) to tabulate where they apply. Default: %(default)s",
    )
    calibration.set_defaults(func=_calibration_report)
