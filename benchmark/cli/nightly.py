"""``lalm-bench nightly plan|junit``: the helpers ``scripts/nightly.sh`` calls between its steps.

``plan`` prints every matrix job's expected wall-clock and memory (:mod:`benchmark.report.walltime`) and writes the
matrix for GitHub; ``consistency`` pairs every claim x template x variant on ci and ci-alt; ``junit`` reads pytest's JUnit files and exits 1 when a claim run had a pipeline error (a pytest
error), while verdicts that leave their expectation (failures) are reported, not gating: baselines gate the nightly.
"""

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from benchmark.core.errors import BenchError


def _plan(args: argparse.Namespace) -> int:
    from benchmark.report.baselines import DEFAULT_BASELINES_DIR, accepted_models
    from benchmark.report.walltime import JOB_TIMEOUT_MINUTES, SAFETY, catalog_rows, longest, plan_nightly

    if args.catalog:
        catalog = json.loads(args.catalog.read_text(encoding="utf-8"))
    else:
        try:
            catalog = catalog_rows(args.model)
        except Exception as exc:  # an unknown name: the registry lists the known ones
            raise BenchError(str(exc)) from exc
    gated = accepted_models(args.baselines or DEFAULT_BASELINES_DIR, profile=args.profile, dtype=args.dtype)
    try:
        shards = plan_nightly(catalog, models=args.model, gated=gated)
    except ValueError as exc:
        raise BenchError(str(exc)) from exc
    for shard in shards:
        print(f"plan: {shard.describe()}")
        for note in shard.notes:
            print(f"plan:   note: {note}")
    runner_hours = sum(s.expected_minutes * s.gpus for s in shards) / 60
    print(
        f"plan: {len(shards)} job(s), {runner_hours:.1f} GPU-runner hours; longest expected {longest(shards):.0f} "
        f"min, limit {JOB_TIMEOUT_MINUTES} min per job with safety factor {SAFETY}"
    )
    matrix = {"include": [s.as_matrix_entry() for s in shards]}
    if args.json:
        print(json.dumps(matrix, indent=1))
    if args.github_output:
        with args.github_output.open("a", encoding="utf-8") as stream:
            stream.write(f"matrix={json.dumps(matrix, separators=(',', ':'))}\n")
    return 0


def junit_counts(paths: list[Path]) -> dict[str, int]:
    """Tests, failures, errors and skips summed over JUnit XML files (pytest's ``--junitxml``)."""
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for path in paths:
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as exc:
            raise BenchError(f"{path}: not a readable JUnit XML file ({exc})") from exc
        suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
        for suite in suites:
            for key in totals:
                totals[key] += int(suite.get(key, 0))
    return totals


def _junit(args: argparse.Namespace) -> int:
    counts = junit_counts(args.files)
    print("claims: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    if counts["failures"]:
        print(
            f"claims: {counts['failures']} verdict(s) left their expectation: reported in the report, not gating "
            "(the nightly gates on baselines)"
        )
    if counts["errors"]:
        print(f"claims: {counts['errors']} pipeline error(s): the run cannot be trusted", file=sys.stderr)
        return 1
    if counts["tests"] == 0:
        print("claims: no claim test ran", file=sys.stderr)
        return 1
    return 0


def _side(args: argparse.Namespace, profile: str) -> list:
    """One row per claim, template and probe variant of ``args.model`` under ``profile`` (records reused from the
    store when their inputs are unchanged, else evaluated on cached latents)."""
    import dataclasses

    from benchmark.claims.consistency import VerdictRow
    from benchmark.claims.registry import all_claims
    from benchmark.run.options import session_options
    from benchmark.run.session import ClaimSession

    options = session_options(lambda name: profile if name == "profile" else getattr(args, name, None))
    session = ClaimSession(options)
    rows = []
    for spec in all_claims():
        if spec.cross_model:
            continue
        for record in session.claim_records(spec.id, args.model):
            tag = f"{record.template},{record.variant}" if record.variant else record.template
            row = VerdictRow.from_record(record)
            rows.append(dataclasses.replace(row, claim_id=f"{record.claim_id}[{tag}]"))
    return rows


def _consistency(args: argparse.Namespace) -> int:
    """The nightly's consistency step: every claim x template x variant on two profiles, paired; exit 1 only when
    a pair holds a pipeline error. Opposite verdicts are printed and written, not gating: two probe samples give
    opposite findings about as often as the rules' false-finding rate, and over every claim and model that would
    break the nightly's false-alarm budget.

    Why not ``lalm-bench consistency``: it pairs records by (model, claim) and refuses the v2 records, which carry
    one record per template and variant ("two 'ci' records"); this pairs them by template and variant too.
    """
    from benchmark.claims.consistency import compare_profiles, counts
    from benchmark.core.provenance import utc_now
    from benchmark.report.consistency import consistency_markdown, summary_line, verdict_table

    if args.profile == args.against:
        raise BenchError(f"--profile and --against are both {args.profile!r}; give two different profiles")
    pairs = compare_profiles(
        _side(args, args.profile), _side(args, args.against), profile_a=args.profile, profile_b=args.against
    )
    print(verdict_table(pairs, profile_a=args.profile, profile_b=args.against, fmt_name="simple"))
    print(summary_line(pairs))
    if args.markdown:
        command = f"lalm-bench nightly consistency --model {args.model} --profile {args.profile} --against {args.against}"
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(
            consistency_markdown(
                pairs, profile_a=args.profile, profile_b=args.against, command=command, date=utc_now()
            )
            + "\n",
            encoding="utf-8",
        )
    for pair in pairs:
        if pair.relation == "opposite":
            print(
                f"consistency (reported, not gating): {pair.claim_id} on {pair.model}: {pair.a.verdict} on "
                f"{args.profile}, {pair.b.verdict} on {args.against}"
            )
    errors = [p for p in pairs if p.relation == "error"]
    for pair in errors:
        print(
            f"consistency: pipeline error: {pair.claim_id} on {pair.model}: {pair.a.reason or pair.b.reason}",
            file=sys.stderr,
        )
    return 1 if counts(pairs)["error"] else 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``lalm-bench nightly``."""
    parser = sub.add_parser("nightly", help="the nightly's plan and step helpers (scripts/nightly.sh)")
    actions = parser.add_subparsers(dest="action", required=True)

    plan = actions.add_parser("plan", help="each matrix job's expected wall-clock and memory; the matrix")
    plan.add_argument(
        "--model", action="append", help="plan these models only (repeatable). Default: the catalog"
    )
    plan.add_argument("--catalog", type=Path, default=None, help="a saved `lalm-bench models --json`")
    plan.add_argument("--baselines", type=Path, default=None, help="Default: reports/baselines")
    plan.add_argument("--profile", default="full", help="Default: %(default)r")
    plan.add_argument("--dtype", default="bfloat16", help="Default: %(default)r")
    plan.add_argument("--json", action="store_true", help="also print the matrix as JSON")
    plan.add_argument("--github-output", type=Path, default=None, help="append matrix=<json> to this file")
    plan.set_defaults(func=_plan)

    consistency = actions.add_parser(
        "consistency",
        help="every claim x template x variant on two profiles; exit 1 on a pipeline error only",
    )
    consistency.add_argument("--model", required=True)
    consistency.add_argument("--profile", default="ci", help="Default: %(default)r")
    consistency.add_argument("--against", default="ci-alt", help="Default: %(default)r")
    consistency.add_argument("--results", type=Path, default=Path("results"), help="Default: %(default)s")
    consistency.add_argument("--markdown", type=Path, default=None, help="also write the tables as Markdown")
    consistency.add_argument("--device", default="auto", help="Default: %(default)r")
    consistency.add_argument("--dtype", default="auto", help="Default: %(default)r")
    consistency.add_argument("--batch-size", type=int, default=None)
    consistency.add_argument("--cache-dir", type=Path, default=None)
    consistency.set_defaults(func=_consistency)

    junit = actions.add_parser("junit", help="exit 1 when claim runs had pipeline errors (pytest errors)")
    junit.add_argument("files", nargs="+", type=Path)
    junit.set_defaults(func=_junit)
