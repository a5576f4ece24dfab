"""``lalm-bench run`` and ``lalm-bench extract``: validate, plan, extract with progress, evaluate, report.

The order is the contract of the main job (issue 10):

1. validate everything before any model loads (options, output locations, model names, weights or hub, every
   probe-set row, every input against each model's limits), print every problem at once, exit 2;
2. print the plan (models x probe sets, inputs cached versus to extract) and, after one short timed batch per
   model, the time estimate;
3. extract and evaluate with progress (bars on a terminal, a line per stage and per minute elsewhere), never
   aborting on one claim, model or probe set;
4. always write the report, print the verdict matrix and the report's path, and exit with the code of
   ``benchmark.run.exit_codes``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmark.claims.evaluate import applicability
from benchmark.claims.record import ClaimRecord
from benchmark.claims.registry import all_claims
from benchmark.claims.spec import ClaimSpec
from benchmark.core.errors import BenchError
from benchmark.core.schema import ProbeSet
from benchmark.engine.progress import ProgressReporter, choose_mode, format_duration
from benchmark.run.exit_codes import PIPELINE_ERROR, run_exit_code
from benchmark.run.options import ExtractOptions, RunOptions
from benchmark.run.plan import (
    Rates,
    Survey,
    announce,
    describe_estimate,
    notes_summary,
    stage_plan,
    survey,
    time_first_batch,
)
from benchmark.run.session import ClaimSession, default_model_order
from benchmark.run.validate import ValidationFailed, check_weights, option_problems


def _error_lines(error: BenchError) -> list[str]:
    """One line per problem: a multi-line error (a probe set's rows) gives its indented detail lines."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[1:] if len(lines) > 1 else lines


def validate_run(
    session: ClaimSession,
    models: list[str],
    specs: list[ClaimSpec],
    outputs: list[tuple[str, Path | None, bool]],
) -> list[Survey]:
    """Every check of step 1; raises :class:`ValidationFailed` with all problems, else returns the surveys."""
    options = session.options
    problems = option_problems(options, outputs)
    adapters = {}
    for model in models:
        try:
            adapters[model] = session.adapter(model)
        except BenchError as error:
            problems.append(f"--model {model}: {error}")
    needed: dict[tuple[str, str, str], ProbeSet] = {}
    for model, adapter in adapters.items():
        for spec in specs:
            if applicability(spec, adapter.spec.modalities, adapter.spec.languages) is not None:
                continue
            try:
                probe_set = session.probe_set(spec)
            except BenchError as error:
                problems += _error_lines(error)
                continue
            for template in spec.templates.run:
                if options.templates is None or template in options.templates:
                    needed[(model, probe_set.name, template)] = probe_set
    surveys: list[Survey] = []
    for model, adapter in adapters.items():
        mine = [(name, template, ps) for (m, name, template), ps in needed.items() if m == model]
        stored = {
            (name, template): session.stored_latents(model, ps, template).exists()
            for name, template, ps in mine
        }
        weights = check_weights(model, adapter, has_stored_latents=bool(mine) and all(stored.values()))
        if weights:
            problems.append(weights)
            continue
        from_store = not adapter.availability().available
        for name, template, probe_set in mine:
            found = survey(
                model,
                adapter,
                probe_set,
                template,
                options,
                from_store=from_store and stored[(name, template)],
            )
            problems += found.problems
            surveys.append(found)
    if problems:
        raise ValidationFailed(problems)
    return surveys


def verdict_matrix(records: list[ClaimRecord]) -> str:
    """Claims x models, each cell the verdict; ``!`` marks a finding that leaves its expectation."""
    from tabulate import tabulate

    models = list(dict.fromkeys(r.model for r in records))
    cells: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for r in records:
        if not r.primary_variant:
            continue  # probe variants are in the report; the terminal shows the claim's own probe set
        mark = (" !" if r.meets_expectation is False else "") + (" T" if r.template_dependent else "")
        cells[(r.claim_id, r.template)][r.model] = r.verdict + mark
    rows = [
        [claim, template, *(by_model.get(m, "") for m in models)]
        for (claim, template), by_model in sorted(cells.items())
    ]
    legend = (
        "! leaves its expectation; T template-dependent (holds under one template, fails under the other)"
    )
    return tabulate(rows, headers=["claim", "template", *models]) + "\n" + legend


def _first_batches(session: ClaimSession, surveys: list[Survey], reporter: ProgressReporter) -> Rates:
    """Time one short batch per model and modality that has inputs to extract; a model whose load fails is left
    to the claims (each gets the ``error`` record) and has no rate."""
    rates: Rates = {}
    failed: set[str] = set()
    for s in surveys:
        for modality in ("text", "speech"):
            key = (s.model, modality)
            if key in rates or s.model in failed or not s.missing_of(modality):
                continue
            reporter.line(f"timing a first batch of {s.model} on {modality} inputs of {s.probe_set.name}")
            try:
                timed = time_first_batch(session.adapter(s.model), s, session.options, modality=modality)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as error:  # the claims on this model will record it
                reporter.line(f"{s.model}: first batch failed ({type(error).__name__}: {error})")
                failed.add(s.model)
                continue
            if timed is not None:
                rates[key] = timed
    return rates


def run_main(options: RunOptions) -> int:
    """``lalm-bench run``: every claim for every selected model, then the report (see the module's steps)."""
    clock = RunClock()
    reporter = ProgressReporter(mode=choose_mode(quiet=options.quiet))
    session = ClaimSession(options.session, reporter=reporter)
    try:
        return _run(options, session, reporter, clock)
    finally:
        session.close()  # the statistics workers, if any were started


def _run(options: RunOptions, session: ClaimSession, reporter: ProgressReporter, clock: RunClock) -> int:
    models = list(options.models) or default_model_order()
    specs = [spec for spec in all_claims() if not spec.cross_model]
    outputs = [("--out", options.out, True), ("--results", options.session.results, True)]
    surveys = validate_run(session, models, specs, outputs)

    announce(reporter, surveys)
    rates = _first_batches(session, surveys, reporter)
    sentence, _seconds = describe_estimate(surveys, rates)
    reporter.line(sentence)
    reporter.expect(stage_plan(surveys, rates))
    clock.mark("validate_and_plan")

    stage = reporter.stage("evaluate claims", len(models) * len(specs), unit="claim")
    for model in models:
        if options.jobs > 1:  # statistics in worker processes; the loop below then reads the records
            session.evaluate_many(
                [memo for spec in specs for memo in session.planned(spec.id, model)], options.jobs
            )
        for spec in specs:
            for record in session.claim_records(spec.id, model):
                reporter.line(
                    f"{record.claim_id:42s} {model:24s} {record.template:13s} {record.verdict:12s} "
                    f"{record.reason[:80]}"
                )
            stage.update()
    stage.close()
    from benchmark.run.cross_model import evaluate_cross_model

    templates = list(options.session.templates) if options.session.templates else None
    try:
        cross = evaluate_cross_model(session, models, templates)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:
        reporter.line(f"cross-model claims failed: {type(error).__name__}: {error}")
        cross = []
    for record in cross:
        reporter.line(f"{record.claim_id:42s} {record.model:24s} {record.verdict:12s} {record.reason[:90]}")
    records = [*session.records(), *cross]
    clock.mark("extract_and_evaluate")
    return _finish(session, records, options.out, corrupt=sum(s.corrupt for s in surveys), clock=clock)


class RunClock:
    """Wall time of the main job's phases, for ``timing.json`` beside the report.

    Why: the user-facing figure of a run is its wall time, split into extraction (forward passes, from the
    session's extraction log) and everything else (claim statistics, model loads, report), with the load average
    it ran under; a benchmark (``benchmarks/bench_main_job.py``) reads it rather than parsing the terminal."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.load_before = _load_average()
        self.marks: dict[str, float] = {}
        self._last = self.started

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        self.marks[phase] = round(now - self._last, 2)
        self._last = now

    def summary(self, extraction_seconds: float, session: ClaimSession) -> dict[str, Any]:
        total = time.perf_counter() - self.started
        options = session.options
        return {
            "total_seconds": round(total, 2),
            "extraction_seconds": round(extraction_seconds, 2),
            "other_seconds": round(total - extraction_seconds, 2),
            "phases_seconds": dict(self.marks),
            "profile": options.profile,
            "dtype": options.dtype,
            "device": options.device,
            "templates": list(options.templates) if options.templates else "each claim's own",
            "load_average_before": self.load_before,
            "load_average_after": _load_average(),
            "cpu_count": os.cpu_count(),
        }


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _baseline_options(session: ClaimSession, records: list[ClaimRecord]) -> dict[str, Any]:
    """Compare a run on the shipped probe sets with the committed baselines, so a first report shows what moved
    (a custom ``--probes`` set has no baselines: nothing to compare)."""
    from benchmark.report.baselines import DEFAULT_BASELINES_DIR

    if session.options.probes is not None or not DEFAULT_BASELINES_DIR.is_dir():
        return {}
    models = sorted({r.model for r in records if "~" not in r.model})
    return {"baselines_dir": DEFAULT_BASELINES_DIR, "models": models, "profile": session.options.profile}


def _finish(
    session: ClaimSession,
    records: list[ClaimRecord],
    out: Path,
    *,
    corrupt: int = 0,
    clock: RunClock | None = None,
) -> int:
    """The end of a run: extraction summary, verdict matrix, report; the exit code of the records.

    ``corrupt``: cache entries the plan's survey found corrupt (and removed); extraction recomputed them."""
    log = session.extraction_log
    corrupt += sum(int(entry.get("corrupt_entries", 0)) for entry in log)
    extracted = sum(int(entry["forward_passes"]) for entry in log)
    seconds = sum(float(entry["seconds"]) for entry in log)
    assert session.reporter is not None
    session.reporter.line(
        f"extraction: {len(session.extraction_log)} set(s), {extracted} forward batch(es), "
        f"{format_duration(seconds)}; {corrupt} corrupt cache entr{'y' if corrupt == 1 else 'ies'} recomputed"
    )
    print(verdict_matrix(records))
    code = run_exit_code(records)
    from benchmark.report import write_report

    try:
        written = write_report(records, out, **_baseline_options(session, records))
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:
        print(f"lalm-bench run: error: the report could not be written to {out}: {error}", file=sys.stderr)
        return PIPELINE_ERROR
    for kind, path in written.items():
        print(f"report ({kind}): {path}")
    if clock is not None:
        clock.mark("report")
        timing = clock.summary(seconds, session)
        (out / "timing.json").write_text(json.dumps(timing, indent=1) + "\n", encoding="utf-8")
        session.reporter.line(
            f"wall time {format_duration(timing['total_seconds'])}: extraction "
            f"{format_duration(timing['extraction_seconds'])}, statistics, loads and report "
            f"{format_duration(timing['other_seconds'])} (load average {timing['load_average_before']} before, "
            f"{timing['load_average_after']} after); {out / 'timing.json'}"
        )
    counts: dict[str, int] = defaultdict(int)
    for record in records:
        counts[record.verdict] += 1
    print("verdicts: " + ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items())))
    return code


def extract_main(options: ExtractOptions) -> int:
    """``lalm-bench extract`` / ``export-latents``: validate (model, set, limits, paths), extract, write ``out``."""
    from benchmark.engine.cache import LatentCache
    from benchmark.engine.extract import describe, extract_latents
    from benchmark.models.catalog import get_adapter
    from benchmark.probes.catalog import resolve_probes
    from benchmark.run.session import ensure_fixture_audio

    session_options = options.session
    problems = option_problems(session_options, [("--out", options.out, False)])
    adapter = probe_set = None
    corrupt = 0  # corrupt cache entries the survey found (and removed): extraction recomputes them
    surveyed: list[Survey] = []
    try:
        adapter = get_adapter(options.model)
        adapter.device_map = session_options.device_map
    except BenchError as error:
        problems.append(f"--model {options.model}: {error}")
    try:
        ensure_fixture_audio(options.probes)
        probe_set = resolve_probes(options.probes, session_options.profile)
    except BenchError as error:
        problems += _error_lines(error)
    if adapter is not None:
        weights = check_weights(options.model, adapter, has_stored_latents=False)
        if weights:
            problems.append(weights)
        elif probe_set is not None:
            if not any(adapter.accepts(s.modality, s.language) for s in probe_set.samples):
                problems.append(
                    f"--probes {options.probes}: model {options.model} takes none of its "
                    f"{len(probe_set.samples)} samples (modalities {list(adapter.spec.modalities)})"
                )
            else:
                found = survey(options.model, adapter, probe_set, options.template, session_options)
                problems += found.problems
                corrupt = found.corrupt
                surveyed.append(found)
    if problems:
        raise ValidationFailed(problems)
    assert adapter is not None and probe_set is not None
    reporter = ProgressReporter(mode=choose_mode(quiet=options.quiet))
    for line in notes_summary(surveyed):
        reporter.line(f"note: {line}")
    latent_set, stats = extract_latents(
        adapter,
        probe_set,
        template=options.template,
        batch_size=session_options.batch_size,
        device=session_options.device,
        dtype=session_options.dtype,
        cache=LatentCache(session_options.cache_dir) if session_options.use_cache else None,
        progress=reporter,  # type: ignore[arg-type]
    )
    if options.out:
        latent_set.save(options.out)
        print(f"wrote {options.out}", file=sys.stderr)
    if corrupt + stats.corrupt_entries:
        print(f"cache: {corrupt + stats.corrupt_entries} corrupt entries were recomputed", file=sys.stderr)
    print(describe(stats))
    return 0
