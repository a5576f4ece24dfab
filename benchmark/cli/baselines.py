"""``lalm-bench baselines accept|check``: accept reviewed records as regression baselines, and the nightly's gate.

``accept`` is the one way a baseline changes (a reason is required and stored). ``check`` reads the records and
the committed baselines and exits 1 when anything fails the night: a confirmed regression, a pipeline error, a
baseline that cannot be matched, or a baseline with no record; every failure is printed with its claim and model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.core.errors import BenchError
from benchmark.report.baselines import DEFAULT_BASELINES_DIR


def _records(paths: list[Path]) -> list:
    from benchmark.report import load_records

    records = load_records(paths)
    if not records:
        raise BenchError(f"no claim records under {', '.join(map(str, paths))}")
    return records


def _accept(args: argparse.Namespace) -> int:
    from benchmark.report.baselines import accept

    records = [
        r
        for r in _records(args.results)
        if (not args.model or r.model in args.model)
        and (args.profile is None or r.profile == args.profile)
        and (args.dtype is None or r.dtype == args.dtype)
    ]
    if not records:
        raise BenchError("no record of the given models, profile and dtype to accept")
    written = accept(records, args.reason or "", baselines_dir=args.baselines)
    for path in written:
        print(f"accepted: {path}")
    print(f"accepted {len(records)} record(s) into {len(written)} baseline file(s) under {args.baselines}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from benchmark.report.calibration import load_calibration
    from benchmark.report.regression import check_records
    from benchmark.report.tables import alarm_lines

    result = check_records(
        _records(args.results),
        args.baselines,
        profile=args.profile,
        dtype=args.dtype,
        models=args.model,
        calibration=load_calibration(args.calibration),
        calibration_size=args.calibration_size,
    )
    counts: dict[str, int] = {}
    for check in result.checks:
        counts[check.outcome] = counts.get(check.outcome, 0) + 1
    print("regression checks: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    if result.budget is not None:
        for line in alarm_lines(result.budget):
            print(f"  {line}")
    for check in result.of("unconfirmed flip", "decayed"):
        print(f"reported (does not fail): {check.message()}")
    for check in result.failures:
        print(f"REGRESSION GATE: {check.message()}", file=sys.stderr)
    if result.failures:
        print(
            f"lalm-bench baselines check: {len(result.failures)} failure(s) against {args.baselines}",
            file=sys.stderr,
        )
    return result.exit_code


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``lalm-bench baselines``."""
    parser = sub.add_parser(
        "baselines", help="accept records as regression baselines, or check records against them"
    )
    actions = parser.add_subparsers(dest="action", required=True)

    accept = actions.add_parser("accept", help="accept reviewed records as baselines (asks for a reason)")
    accept.add_argument("results", nargs="+", type=Path, help="record files or folders")
    accept.add_argument("--reason", required=True, help="why these numbers are right (stored with them)")
    accept.add_argument("--model", action="append", help="only these models' records (repeatable)")
    accept.add_argument(
        "--profile", default=None, help="only records of this profile. Default: every profile"
    )
    accept.add_argument("--dtype", default=None, help="only records of this dtype. Default: every dtype")
    accept.add_argument("--baselines", type=Path, default=DEFAULT_BASELINES_DIR, help="Default: %(default)s")
    accept.set_defaults(func=_accept)

    check = actions.add_parser(
        "check",
        help="the nightly's regression gate: exit 1 on a regression or a baseline that cannot be matched",
    )
    check.add_argument("results", nargs="+", type=Path, help="record files or folders")
    check.add_argument("--baselines", type=Path, default=DEFAULT_BASELINES_DIR, help="Default: %(default)s")
    check.add_argument("--profile", default=None, help="only records of this profile. Default: every profile")
    check.add_argument("--dtype", default=None, help="only records of this dtype. Default: every dtype")
    check.add_argument(
        "--model",
        action="append",
        help="models the run covered (repeatable): their baselines must all find a record. Default: the models "
        "with records",
    )
    check.add_argument(
        "--calibration", type=Path, default=None, help="Default: the committed calibration file"
    )
    check.add_argument(
        "--calibration-size", default="ci", help="calibration entries' size. Default: %(default)r"
    )
    check.set_defaults(func=_check)
