"""``lalm-bench``: the command line. Each subcommand is a thin wrapper over a library function."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmark.core.errors import BenchError, OutOfMemoryError, PipelineError
from benchmark.core.profiles import PROFILE_CHOICES, PROFILE_NAMES
from benchmark.models.base import TEMPLATE_NAMES
from benchmark.run.options import (
    DTYPE_CHOICES,
    CalibrateOptions,
    ConsistencyOptions,
    ExtractOptions,
    RunOptions,
    typed_options,
)
from benchmark.run.validate import ValidationFailed, check_device


def _positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1 (0 workers or seeds is a typo, not a request)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        help="cpu, cuda, cuda:N, mps or auto (checked first). Default: %(default)r",
    )
    parser.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help="Default: %(default)r")
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help="inputs per forward. Default: chosen from free memory on a GPU, 8 on the CPU",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="latent cache. Default: $LALM_BENCH_CACHE or ~/.cache/lalm-bench/latents",
    )
    parser.add_argument("--no-cache", action="store_true", help="recompute every latent")
    parser.add_argument(
        "--device-map",
        default=None,
        help="accelerate placement for a model larger than one GPU, e.g. 'auto' (hub LALMs only)",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bars or progress lines (results, errors and the report's path are still printed)",
    )


def _cmd_models(args: argparse.Namespace) -> int:
    from benchmark.models.catalog import describe_models

    rows = describe_models()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from tabulate import tabulate

    table = [
        [
            r["name"],
            r["kind"],
            r["hub_id"] or "-",
            r["revision"][:16],
            ",".join(r["modalities"]),
            "yes" if r["available"] else "no",
        ]
        for r in rows
    ]
    print(tabulate(table, headers=["model", "kind", "hub id", "revision", "modalities", "weights here"]))
    return 0


def _cmd_probes(args: argparse.Namespace) -> int:
    from benchmark.probes.catalog import list_probe_sets

    rows = list_probe_sets()
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    from tabulate import tabulate

    table = [
        [
            r["name"],
            " ".join(f"{name}={p.get('n_samples')}" for name, p in r.get("profiles", {}).items()),
            ",".join(r.get("label_axes", [])),
            r.get("error", ""),
        ]
        for r in rows
    ]
    print(tabulate(table, headers=["probe set", "profiles (samples)", "label axes", "problem"]))
    return 0


def _cmd_fixtures(args: argparse.Namespace) -> int:
    from benchmark.probes.build import build_all
    from benchmark.probes.catalog import FIXTURES_DIR

    out = Path(args.out) if args.out else FIXTURES_DIR
    for row in build_all(out, check=not args.update, sets=args.sets or None):
        print(json.dumps(row, default=str))
    return 0


def _cmd_extract(args: argparse.Namespace) -> int:
    from benchmark.run.main_job import extract_main

    return extract_main(typed_options(args, ExtractOptions))


def _cmd_import(args: argparse.Namespace) -> int:
    from benchmark.claims.store import latents_path
    from benchmark.engine.extract import LatentSet

    try:
        latent_set = LatentSet.load(args.file)
    except BenchError:
        raise
    except Exception as error:  # safetensors' own errors for a file that is not safetensors at all
        raise BenchError(
            f"{args.file}: not a lalm-bench latents file ({type(error).__name__}: {error})"
        ) from error
    provenance = latent_set.manifest.provenance
    target = latents_path(
        Path(args.results),
        provenance.model,
        provenance.revision,
        provenance.probe_set_hash,
        latent_set.manifest.template,
    )
    latent_set.save(target)
    print(f"imported {args.file} -> {target}")
    return 0


def _cmd_lock(args: argparse.Namespace) -> int:
    from benchmark.models.lock import LOCK_PATH, resolve_lock

    resolved = resolve_lock()
    print(f"wrote {len(resolved)} hub revisions to {LOCK_PATH}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from benchmark.run.main_job import run_main

    return run_main(typed_options(args, RunOptions))


def _cmd_consistency(args: argparse.Namespace) -> int:
    from benchmark.run.session import consistency_main

    if args.profile == args.against:
        raise BenchError(f"--profile and --against are both {args.profile!r}; give two different profiles")
    return consistency_main(typed_options(args, ConsistencyOptions))


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from benchmark.run.session import calibrate_main

    return calibrate_main(typed_options(args, CalibrateOptions))


def _cmd_check(args: argparse.Namespace) -> int:
    from benchmark.engine.check import main_check
    from benchmark.run.exit_codes import FINDINGS, PIPELINE_ERROR

    problem = check_device(args.device)
    if problem:
        raise ValidationFailed([f"--device {args.device}: {problem}"])
    code = main_check(args)
    return PIPELINE_ERROR if code == FINDINGS else code  # a failed pre-flight is a pipeline error


def _cmd_expectations(args: argparse.Namespace) -> int:
    from benchmark.claims.expectations import record_measured
    from benchmark.report import load_records

    count = record_measured(load_records(args.results), reason=args.reason)
    print(f"recorded {count} measured expectations")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lalm-bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    models = sub.add_parser("models", help="list model entries and whether their weights are here")
    models.add_argument("--json", action="store_true")
    models.set_defaults(func=_cmd_models)

    probes = sub.add_parser("probes", help="list the shipped probe sets")
    probes.add_argument("--json", action="store_true")
    probes.set_defaults(func=_cmd_probes)

    fixtures = sub.add_parser("fixtures", help="rebuild the shipped speech fixtures and verify their hashes")
    fixtures.add_argument("action", choices=["build"])
    fixtures.add_argument("--out", default=None, help="fixtures folder. Default: the repository's fixtures/")
    fixtures.add_argument("--sets", nargs="*", help="only these sets")
    fixtures.add_argument(
        "--update", action="store_true", help="rewrite the committed clip hashes instead of checking them"
    )
    fixtures.set_defaults(func=_cmd_fixtures)

    extract = sub.add_parser("extract", help="extract per-layer last-token latents")
    extract.add_argument("--model", required=True)
    extract.add_argument("--probes", required=True, help="shipped probe-set name or a folder")
    extract.add_argument("--profile", default="ci", choices=PROFILE_CHOICES, help="Default: %(default)r")
    extract.add_argument(
        "--template", default="shared-suffix", choices=TEMPLATE_NAMES, help="Default: %(default)r"
    )
    extract.add_argument("--out", type=Path, help="write a latents file (safetensors + manifest)")
    _add_run_options(extract)
    extract.set_defaults(func=_cmd_extract)

    export = sub.add_parser("export-latents", help="extract (or reuse the cache) and write one portable file")
    export.add_argument("--model", required=True)
    export.add_argument("--probes", required=True)
    export.add_argument("--profile", default="full", choices=PROFILE_CHOICES, help="Default: %(default)r")
    export.add_argument(
        "--template", default="shared-suffix", choices=TEMPLATE_NAMES, help="Default: %(default)r"
    )
    export.add_argument("--out", type=Path, required=True)
    _add_run_options(export)
    export.set_defaults(func=_cmd_extract)

    imp = sub.add_parser("import-latents", help="place an exported latents file into the results store")
    imp.add_argument("file", type=Path)
    imp.add_argument("--results", default="results", help="Default: %(default)r")
    imp.set_defaults(func=_cmd_import)

    lock = sub.add_parser(
        "lock", help="resolve hub revisions (needs hub access) into the committed lock file"
    )
    lock.set_defaults(func=_cmd_lock)

    check = sub.add_parser(
        "check", help="pre-flight of a model: hooks, placeholders, batch invariance, drift"
    )
    check.add_argument("model")
    check.add_argument("--json", action="store_true")
    check.add_argument("--device", default="auto", help="Default: %(default)r")
    check.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help="Default: %(default)r")
    check.add_argument(
        "--batch-size",
        type=_positive_int,
        default=8,
        help="batch compared with batch 1. Default: %(default)r",
    )
    check.set_defaults(func=_cmd_check)

    calibrate = sub.add_parser(
        "calibrate", help="false-positive rate and power of every claim from its controls"
    )
    calibrate.add_argument("--model", action="append", help="models whose real latents seed the controls")
    calibrate.add_argument("--claim", action="append", help="only these claims")
    calibrate.add_argument("--seeds", type=_positive_int, default=500, help="Default: %(default)r")
    calibrate.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="first seed of this run; a range disjoint from the file's adds to its counts. "
        "Default: %(default)r",
    )
    calibrate.add_argument(
        "--budget", default="ci", choices=["ci", "full"], help="resampling sizes. Default: %(default)r"
    )
    calibrate.add_argument(
        "--out",
        type=Path,
        default=None,
        help="calibration file to write. Default: the committed benchmark/claims/calibration.json",
    )
    calibrate.add_argument(
        "--jobs",
        type=_positive_int,
        default=1,
        help="worker processes; each entry's seeds run in shards of one population, spread over the "
        "workers. Default: %(default)r",
    )
    calibrate.add_argument(
        "--profile",
        default="ci",
        choices=["ci", "full"],
        help="the sample size calibrated: ci draws from the full profile, full from the larger pool profile. "
        "Default: %(default)r",
    )
    calibrate.add_argument(
        "--template",
        action="append",
        dest="template_filter",
        default=None,
        choices=["bare", "shared-suffix"],
        help="only these templates (repeatable). Default: every template each claim runs under",
    )
    calibrate.add_argument(
        "--replay",
        action="store_true",
        help="draw no new seeds: replay each entry's recorded seeds with this code and carry the entries whose "
        "decisions it reproduces bit for bit (after a change of verdict code meant to leave verdicts alone)",
    )
    calibrate.add_argument(
        "--seeds-per-population",
        type=_positive_int,
        default=None,
        help="seeds drawn from one planted population. Default: the calibrated size's (50 at ci, 20 at full); "
        "deciding an older entry's seeds again (a re-tally) needs the size it was made with",
    )
    calibrate.add_argument("--results", type=Path, default=Path("results"), help="Default: %(default)r")
    _add_run_options(calibrate)
    calibrate.set_defaults(func=_cmd_calibrate)

    expectations = sub.add_parser(
        "expectations", help="record measured verdicts as expectations (asks for a reason)"
    )
    expectations.add_argument("action", choices=["record"])
    expectations.add_argument("results", nargs="+", type=Path)
    expectations.add_argument("--reason", required=True)
    expectations.set_defaults(func=_cmd_expectations)

    run = sub.add_parser("run", help="extract, evaluate every claim, write records and the report")
    run.add_argument("--model", action="append", help="repeatable; default: the offline real models")
    run.add_argument("--probes", help="a probe-set folder to use instead of each claim's shipped set")
    run.add_argument("--profile", default="full", choices=PROFILE_CHOICES, help="Default: %(default)r")
    run.add_argument("--out", type=Path, default=Path("reports"), help="report folder. Default: %(default)r")
    run.add_argument(
        "--results", type=Path, default=Path("results"), help="record store. Default: %(default)r"
    )
    run.add_argument(
        "--template",
        action="append",
        dest="template_filter",
        default=None,
        choices=["bare", "shared-suffix"],
        help="only these templates (repeatable). Default: every template each claim runs under",
    )
    run.add_argument(
        "--jobs",
        type=_positive_int,
        default=None,
        help="worker processes for the claims' statistics (extraction stays in this process; records are the "
        "same for any number). Default: one per CPU core, at most 8",
    )
    _add_run_options(run)
    run.set_defaults(func=_cmd_run)

    consistency = sub.add_parser(
        "consistency", help="every claim on two profiles (e.g. ci and ci-alt); exit 1 when a verdict flips"
    )
    consistency.add_argument("--model", action="append", help="repeatable; default: the offline real models")
    consistency.add_argument("--profile", default="ci", choices=PROFILE_NAMES, help="Default: %(default)r")
    consistency.add_argument(
        "--against", default="ci-alt", choices=PROFILE_NAMES, help="Default: %(default)r"
    )
    consistency.add_argument(
        "--stored",
        action="store_true",
        help="read the newest stored record of each claim instead of evaluating",
    )
    consistency.add_argument(
        "--results", type=Path, default=Path("results"), help="record store. Default: %(default)r"
    )
    consistency.add_argument(
        "--markdown", type=Path, default=None, help="also write the tables as Markdown here"
    )
    _add_run_options(consistency)
    consistency.set_defaults(func=_cmd_consistency)
    from benchmark.cli import baselines, nightly, report  # report, calibration-report, baselines, nightly

    for module in (baselines, nightly, report):
        module.add_parser(sub)
    return parser


def _say(command: str, message: str) -> None:
    """Each line of an error as ``lalm-bench COMMAND: error: LINE`` (one line per problem, no traceback)."""
    for line in (part.strip() for part in message.splitlines()):
        if line:
            print(f"lalm-bench {command}: error: {line}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, run, and map the outcome to the exit-code table (``benchmark.run.exit_codes``)."""
    from benchmark.run import exit_codes

    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors: argparse's own message, exit 2
    try:
        return int(args.func(args) or 0)
    except ValidationFailed as failed:
        count = len(failed.problems)
        print(f"lalm-bench {args.command}: {count} problem(s) found before any computation:", file=sys.stderr)
        for line in failed.problems:
            _say(args.command, line)
        return exit_codes.BAD_INPUT
    except (PipelineError, OutOfMemoryError) as error:
        _say(args.command, str(error))
        return exit_codes.PIPELINE_ERROR
    except BenchError as error:
        _say(args.command, str(error))
        return exit_codes.BAD_INPUT
    except KeyboardInterrupt:
        print(
            f"lalm-bench {args.command}: interrupted; every latent computed so far stays in the cache and a "
            "rerun resumes from it",
            file=sys.stderr,
        )
        return exit_codes.INTERRUPTED
    except Exception as error:
        if os.environ.get("LALM_BENCH_DEBUG"):
            raise
        _say(
            args.command,
            f"internal error: {type(error).__name__}: {error} (rerun with LALM_BENCH_DEBUG=1 for the traceback)",
        )
        return exit_codes.PIPELINE_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
