"""One code path for ``lalm-bench run`` and ``pytest claims/``: a session that extracts (cached), evaluates
claims (references first), and saves each record into the result store.

A session never lets one claim, model or probe set abort the others: a failure anywhere on a claim's path
(loading the weights, extracting, the statistics) becomes that claim's ``error`` record with the stage and the
message, and a failed load or extraction is remembered so the next claim on it fails at once instead of
retrying. ``lalm-bench run`` (``benchmark.run.main_job``) then writes the report from whatever was recorded.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from benchmark.claims.data import Budget, ClaimData
from benchmark.claims.evaluate import CALIBRATION_FILE, applicability, evaluate_claim, evaluation_key
from benchmark.claims.record import ClaimRecord, Verdict, opposite_findings
from benchmark.claims.registry import all_claims, get_claim
from benchmark.claims.spec import ClaimSpec
from benchmark.claims.store import latents_path, record_path
from benchmark.core.errors import BenchError, PipelineError
from benchmark.core.provenance import git_commit, library_versions, utc_now
from benchmark.core.schema import ProbeSet
from benchmark.engine.cache import LatentCache
from benchmark.engine.extract import LatentSet, extract_templates
from benchmark.engine.progress import ProgressReporter, as_reporter
from benchmark.models.base import ModelAdapter
from benchmark.models.catalog import DEFAULT_MODELS, get_adapter
from benchmark.run.options import (
    DEFAULT_SEED,
    CalibrateOptions,
    ConsistencyOptions,
    SessionOptions,
)

__all__ = ["DEFAULT_SEED", "ClaimSession", "SessionOptions", "calibrate_main", "consistency_main"]


class StepFailed(PipelineError):
    """A step on a claim's path failed; ``stage`` says which (extraction, statistics). Where it escapes a
    session (calibration bases), the command exits with the pipeline-error code."""

    def __init__(self, stage: str, error: BaseException) -> None:
        self.stage = stage
        self.error = error
        detail = str(error) if isinstance(error, BenchError) else f"{type(error).__name__}: {error}"
        super().__init__(f"{stage} failed: {detail}")


#: One evaluation: (claim id, model, template, probe variant).
Memo = tuple[str, str, str, str | None]


@dataclass
class _Pending:
    """A record whose statistics are still to compute: their inputs, the evaluation key, where it is saved."""

    inputs: dict[str, Any]
    key: str
    path: Path

    def finish(self, record: ClaimRecord) -> ClaimRecord:
        record.evaluation_key = self.key
        record.save(self.path)
        return record


def _statistics(spec: ClaimSpec, inputs: dict[str, Any]) -> ClaimRecord:
    """The claim's statistics (permutations, resampling) on prepared inputs; failures name the stage."""
    try:
        return evaluate_claim(spec, **inputs)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:
        raise StepFailed("statistics", error) from error


class WorkerFailed(Exception):
    """A claim's statistics failed in a worker process: the message only, so it crosses back intact (the
    original exception may not pickle: ``StepFailed`` takes two arguments, and an exception that cannot be
    unpickled breaks the whole pool)."""


def _statistics_in_worker(claim_id: str, inputs: dict[str, Any]) -> ClaimRecord:
    """Worker-process entry point: specs are looked up by id (they are module-level state, not sent)."""
    try:
        return _statistics(get_claim(claim_id), inputs)
    except StepFailed as error:  # sent back as its message, the serial path's wording
        raise WorkerFailed(str(error)) from None


def default_model_order() -> list[str]:
    """Text LMs first: their text latents are the natural base for text claims; speech sets fall to whisper."""
    return sorted(DEFAULT_MODELS, key=lambda m: "whisper" in m)


@dataclass
class ClaimSession:
    """Memoises adapters, probe sets, latents and records (and failures) for one run."""

    options: SessionOptions
    reporter: ProgressReporter | None = None
    _adapters: dict[str, ModelAdapter] = field(default_factory=dict)
    _probes: dict[str, ProbeSet] = field(default_factory=dict)
    _latents: dict[tuple[str, str, str], LatentSet] = field(default_factory=dict)
    _failed: dict[tuple[str, str, str], StepFailed] = field(default_factory=dict)
    _records: dict[Memo, ClaimRecord] = field(default_factory=dict)
    extraction_log: list[dict[str, Any]] = field(default_factory=list)
    _pool: ProcessPoolExecutor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.reporter is None:
            self.reporter = as_reporter(self.options.progress)

    @property
    def results_dir(self) -> Path:
        return self.options.results

    def adapter(self, model: str) -> ModelAdapter:
        if model not in self._adapters:
            self._adapters[model] = get_adapter(model)
            self._adapters[model].device_map = self.options.device_map
        return self._adapters[model]

    def probe_set_name(self, spec: ClaimSpec) -> str:
        return self.options.probes or spec.probe_set

    def probe_set(self, spec: ClaimSpec) -> ProbeSet:
        name = self.probe_set_name(spec)
        if name not in self._probes:
            from benchmark.probes.catalog import resolve_probes

            ensure_fixture_audio(name)
            self._probes[name] = resolve_probes(
                name, self.options.profile if not self.options.probes else None
            )
        return self._probes[name]

    def stored_latents(self, model: str, probe_set: ProbeSet, template: str) -> Path:
        """Where imported (or previously extracted) latents of this model, set and template live."""
        revision = self.adapter(model).spec.revision
        return latents_path(self.options.results, model, revision, probe_set.content_hash(), template)

    def latents(self, model: str, probe_set: ProbeSet, template: str) -> LatentSet:
        """The model's latents of a probe set under one template. Every template of the run is extracted in one
        pass (the audio encoder runs once per clip for all of them) and each is saved beside the records."""
        key = (model, probe_set.content_hash(), template)
        if key in self._latents:
            return self._latents[key]
        if key in self._failed:  # a load or extraction that failed once fails the next claim at once
            raise self._failed[key]
        adapter = self.adapter(model)
        templates = list(dict.fromkeys([template, *(self.options.templates or ("bare", "shared-suffix"))]))
        stored = {t: self.stored_latents(model, probe_set, t) for t in templates}
        try:
            if not adapter.availability().available and stored[template].exists():
                self._latents[key] = LatentSet.load(
                    stored[template]
                )  # imported from a machine with the weights
                return self._latents[key]
            sets = self._extract(adapter, probe_set, templates, stored)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:
            failure = StepFailed(f"extraction of {probe_set.name} on {model}", error)
            for name in templates:
                self._failed[(model, key[1], name)] = failure
            raise failure from error
        for name, latent_set in sets.items():
            self._latents[(model, key[1], name)] = latent_set
        return self._latents[key]

    def _extract(
        self, adapter: ModelAdapter, probe_set: ProbeSet, templates: list[str], stored: dict[str, Path]
    ) -> dict[str, LatentSet]:
        cache = LatentCache(self.options.cache_dir) if self.options.use_cache else None
        sets, stats = extract_templates(
            adapter,
            probe_set,
            templates,
            batch_size=self.options.batch_size,
            device=self.options.device,
            dtype=self.options.dtype,
            cache=cache,
            progress=self.reporter,
        )
        for name, latent_set in sets.items():
            latent_set.save(stored[name])
        self.extraction_log.append(
            {
                "model": adapter.spec.name,
                "probe_set": probe_set.name,
                "templates": templates,
                "samples": stats.samples,
                "cache_hits": stats.cache_hits,
                "forward_passes": stats.forward_passes,
                "corrupt_entries": stats.corrupt_entries,
                "seconds": round(stats.seconds, 2),
            }
        )
        return sets

    def record(
        self, claim_id: str, model: str, template: str | None = None, variant: str | None = None
    ) -> ClaimRecord:
        """Evaluate (once) and save the record of ``claim_id`` on ``model`` under one template and probe variant
        (default: the claim's primary ones); its references are evaluated first, under the same template.

        Never raises for a problem of this claim, model or probe set: that becomes an ``error`` record (or ``n/a``
        when the set holds no input of the claim's modalities that the model takes).
        """
        spec = get_claim(claim_id)
        template = template or spec.templates.primary
        variant = spec.select.variant if variant is None else variant
        memo = (claim_id, model, template, variant)
        if memo in self._records:
            return self._records[memo]
        try:
            record = self._evaluate(spec, model, template, variant)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:
            message = str(error) if isinstance(error, StepFailed) else str(StepFailed("evaluation", error))
            record = self._fallback_record(spec, model, template, variant, "error", message)
        self._records[memo] = record
        return record

    def _evaluate(self, spec: ClaimSpec, model: str, template: str, variant: str | None) -> ClaimRecord:
        prepared = self._prepare(spec, model, template, variant)
        if isinstance(prepared, ClaimRecord):
            return prepared
        return prepared.finish(_statistics(spec, prepared.inputs))

    def _prepare(
        self, spec: ClaimSpec, model: str, template: str, variant: str | None
    ) -> ClaimRecord | _Pending:
        """Everything before the statistics, in this process (references, latents, the evaluation key): the
        finished record where nothing is left to compute (``n/a``, or a stored record of these exact inputs),
        else what the statistics need and where their record goes."""
        adapter = self.adapter(model)
        references = {
            ref: self.record(ref, model, template).verdict
            for ref in [*spec.references, *(r for s in spec.secondary.values() for r in s.references)]
            if template in get_claim(ref).templates.run
        }
        why_not = applicability(spec, adapter.spec.modalities, adapter.spec.languages)
        probe_set = self.probe_set(spec)
        if why_not is None:
            no_inputs = _no_inputs(spec, adapter, probe_set)
            if no_inputs is not None:
                return self._fallback_record(spec, model, template, variant, "n/a", no_inputs)
            latent_set = self.latents(model, probe_set, template)
        else:
            latent_set = _placeholder_latents(
                adapter, probe_set, template, self.options.device, self.options.dtype
            )
        inputs = {
            "latent_set": latent_set,
            "probe_set": probe_set,
            "profile": self.options.profile,
            "seed": self.options.seed,
            "model_modalities": adapter.spec.modalities,
            "model_languages": adapter.spec.languages,
            "references": references,
            "budget": Budget.for_profile(self.options.profile),
            "variant": variant,
        }
        key = evaluation_key(spec, **inputs)
        provenance = latent_set.manifest.provenance
        path = record_path(
            self.options.results,
            model,
            provenance.revision,
            provenance.probe_set_hash,
            spec.id,
            spec.version,
            template,
            variant,
        )
        record = _stored_record(path, key) if self.options.use_cache else None
        if record is not None:
            return record
        return _Pending(inputs=inputs, key=key, path=path)  # nothing stored from these exact inputs

    def _fallback_record(
        self, spec: ClaimSpec, model: str, template: str, variant: str | None, verdict: Verdict, reason: str
    ) -> ClaimRecord:
        """A record the claims layer did not produce (a failed step, or no input to evaluate), saved when its
        model revision and probe set are known so that ``lalm-bench report results`` shows it too."""
        adapter = self._adapters.get(model)
        probe_set = self._probes.get(self.probe_set_name(spec))
        revision = adapter.spec.revision if adapter is not None else "unknown"
        probe_hash = probe_set.content_hash() if probe_set is not None else "unknown"
        record = ClaimRecord(
            claim_id=spec.id,
            claim_version=spec.version,
            claim_fingerprint=spec.fingerprint(),
            title=spec.title,
            paper=spec.paper,
            section=spec.section,
            rule=spec.rule.model_dump(mode="json"),
            model=model,
            revision=revision,
            model_kind=adapter.spec.kind if adapter is not None else "unknown",
            verdict=verdict,
            reason=reason,
            probe_set=probe_set.name if probe_set is not None else self.probe_set_name(spec),
            probe_set_hash=probe_hash,
            profile=self.options.profile,
            template=template,
            primary_template=template == spec.templates.primary,
            variant=variant,
            primary_variant=variant == spec.select.variant,
            dtype=self.options.dtype,
            device=self.options.device,
            seed=self.options.seed,
            versions=library_versions(),
            git_commit=git_commit(),
            caveats=[*spec.caveats, *(probe_set.caveats if probe_set is not None else [])],
            created=utc_now(),
        )
        if adapter is not None and probe_set is not None:
            record.save(
                record_path(
                    self.options.results,
                    model,
                    revision,
                    probe_hash,
                    spec.id,
                    spec.version,
                    template,
                    variant,
                )
            )
        return record

    def planned(self, claim_id: str, model: str) -> list[Memo]:
        """Every evaluation a claim asks for on a model: each template it runs under, and under ``bare`` each
        probe variant (primary first), as ``(claim, model, template, variant)``."""
        spec = get_claim(claim_id)
        templates = [
            t for t in spec.templates.run if self.options.templates is None or t in self.options.templates
        ]
        out = []
        for template in templates:
            variants = [spec.select.variant]
            if template == "bare":
                variants += spec.select.secondary_variants
            out += [(claim_id, model, template, variant) for variant in variants]
        return out

    def claim_records(self, claim_id: str, model: str) -> list[ClaimRecord]:
        """The records of :meth:`planned` (evaluated here unless :meth:`evaluate_many` already did)."""
        out = [self.record(*memo) for memo in self.planned(claim_id, model)]
        mark_template_dependence([r for r in out if r.primary_variant], self.options.results)
        return out

    def evaluate_many(self, memos: list[Memo], jobs: int) -> None:
        """Evaluate ``memos`` ahead of :meth:`record`, their statistics in ``jobs`` worker processes.

        Why processes: a claim's statistics (permutation nulls, jackknife replicates) run on one core, and at
        the full profile they are a third of the main job, so on a machine with idle cores they are the cheap
        part to spread. Claims go in waves: a claim whose references are not yet recorded waits for them (its
        inputs include their verdicts). Latents are extracted here, in this process, as before; only the
        statistics of records not already stored move to a worker, and each record is saved as it arrives, so
        an interrupted run keeps every finished one. A failure becomes that claim's ``error`` record, exactly
        as in :meth:`record`. The records equal a serial run's (the same seeds; checked in the tests).
        """
        pending = list(dict.fromkeys(m for memo in memos for m in self._with_references(memo)))
        pending = [memo for memo in pending if memo not in self._records]
        if jobs <= 1 or not pending:
            for memo in pending:
                self.record(*memo)
            return
        while pending:
            ready = [
                memo
                for memo in pending
                if all(ref in self._records for ref in self._with_references(memo) if ref != memo)
            ]
            if not ready:  # cannot happen with an acyclic catalogue; fall back to the serial path
                for memo in pending:
                    self.record(*memo)
                return
            # The whole wave is prepared (its latents extracted) before any statistics start: measured on the
            # full profile, workers beside the extraction's threads slowed it by 40% (757 s against 542 s).
            to_compute: list[tuple[Memo, _Pending]] = []
            for memo in ready:
                try:
                    prepared = self._prepare(get_claim(memo[0]), *memo[1:])
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception:
                    self.record(*memo)  # the serial path turns the failure into the error record
                    continue
                if isinstance(prepared, ClaimRecord):
                    self._records[memo] = prepared
                else:
                    to_compute.append((memo, prepared))
            futures = {
                self._workers(jobs).submit(_statistics_in_worker, memo[0], prepared.inputs): (memo, prepared)
                for memo, prepared in to_compute
            }
            for future in as_completed(futures):
                memo, prepared = futures[future]
                try:
                    record = prepared.finish(future.result())
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as error:  # a worker's own failure, or the record's save
                    message = (
                        str(error)
                        if isinstance(error, WorkerFailed)
                        else str(StepFailed("statistics", error))
                    )
                    record = self._fallback_record(get_claim(memo[0]), *memo[1:], "error", message)
                self._records[memo] = record
            pending = [memo for memo in pending if memo not in self._records]

    def _with_references(self, memo: Memo) -> list[Memo]:
        """``memo`` after the memos of its references (and theirs), under its template, as :meth:`_evaluate`
        asks for them."""
        claim_id, model, template, _variant = memo
        spec = get_claim(claim_id)
        out: list[Memo] = []
        for ref in [*spec.references, *(r for s in spec.secondary.values() for r in s.references)]:
            ref_spec = get_claim(ref)
            if template in ref_spec.templates.run:
                out += self._with_references((ref, model, template, ref_spec.select.variant))
        return [*out, memo]

    def _workers(self, jobs: int) -> ProcessPoolExecutor:
        """The session's statistics workers, started on first use (a run with every record stored starts none)."""
        if self._pool is None:
            from benchmark.run.control_pool import limit_threads

            self._pool = ProcessPoolExecutor(
                max_workers=jobs, mp_context=get_context("spawn"), initializer=limit_threads
            )
        return self._pool

    def close(self) -> None:
        """Stop the statistics workers, if any were started."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def records(self) -> list[ClaimRecord]:
        return list(self._records.values())


def mark_template_dependence(records: list[ClaimRecord], results: Path) -> None:
    """Flag a claim's records (one model, primary variant) whose templates disagree: holds under one and fails
    under another is template-dependent; holds against inconclusive is shown, not flagged."""
    if len({r.template for r in records}) < 2:
        return
    flag = opposite_findings(r.verdict for r in records)
    for record in records:
        if record.template_dependent != flag:
            record.template_dependent = flag
            record.save(
                record_path(
                    results,
                    record.model,
                    record.revision,
                    record.probe_set_hash,
                    record.claim_id,
                    record.claim_version,
                    record.template,
                    record.variant,
                )
            )


def _no_inputs(spec: ClaimSpec, adapter: ModelAdapter, probe_set: ProbeSet) -> str | None:
    """Why there is nothing to extract for ``spec`` on this model and set (n/a), or None."""
    wanted = set(spec.requires.modalities)
    if any(s.modality in wanted and adapter.accepts(s.modality, s.language) for s in probe_set.samples):
        return None
    kinds = " or ".join(sorted(wanted))
    return (
        f"needs {kinds} samples that model {adapter.spec.name!r} takes; probe set {probe_set.name!r} "
        f"({len(probe_set.samples)} samples) has none"
    )


def _stored_record(path: Path, key: str) -> ClaimRecord | None:
    """The record saved at ``path`` when it was computed from exactly these inputs (same evaluation key)."""
    if not path.is_file():
        return None
    try:
        stored = ClaimRecord.load(path)
    except (OSError, ValueError):  # unreadable or of an older schema: recompute and overwrite
        return None
    return stored if stored.evaluation_key == key else None


def _placeholder_latents(
    adapter: ModelAdapter, probe_set: ProbeSet, template: str, device: str, dtype: str
) -> LatentSet:
    """An empty latents object carrying provenance only, for records of claims that are ``n/a``: the run's device
    and dtype as extraction resolves them, so an n/a record of a bfloat16 run says bfloat16 (the report compares
    dtypes, and the baselines are keyed by dtype)."""
    import numpy as np

    from benchmark.core.schema import LatentsManifest
    from benchmark.engine.extract import build_provenance, resolve_device, resolve_dtype

    torch_device = resolve_device(device)
    manifest = LatentsManifest(
        provenance=build_provenance(
            adapter, probe_set, torch_device, resolve_dtype(dtype, torch_device, adapter)
        ),
        template=template,
        layers=[],
        sample_ids=[],
        modalities=[],
        last_token_ids=[],
        positions=[],
        shape=[],
        tensor_sha256="",
    )
    return LatentSet(latents=np.zeros((0, 0, 0), dtype=np.float32), manifest=manifest)


def ensure_fixture_audio(name: str) -> None:
    """Shipped speech sets keep audio out of git: rebuild (hash-checked) when it is missing."""
    from benchmark.probes.catalog import shipped_probe_sets

    shipped = shipped_probe_sets()
    if name not in shipped:
        return
    folder = shipped[name]
    manifest = folder / "manifest.jsonl"
    if not manifest.exists() or '"audio_path": null' in manifest.read_text(encoding="utf-8")[:2000]:
        return
    if (folder / "audio").is_dir() and any((folder / "audio").iterdir()):
        return
    from benchmark.probes.build import build_all

    build_all(folder.parent, check=True, sets=[name])


def calibration_pools(
    session: ClaimSession, spec: ClaimSpec, models: list[str] | None, templates: list[str] | None
) -> list[ClaimData]:
    """The claim's pools, one per template: full-profile latents of the first model (text LMs before whisper) to
    which the claim applies, its samples selected as the claim selects them."""
    from benchmark.claims.data import claim_data_from
    from benchmark.claims.evaluate import select

    models = models or sorted(DEFAULT_MODELS, key=lambda m: "whisper" in m)
    for model in models:
        adapter = session.adapter(model)
        if applicability(spec, adapter.spec.modalities, adapter.spec.languages) is not None:
            continue
        probe_set = session.probe_set(spec)
        pools = []
        for template in spec.templates.run:
            if templates and template not in templates:
                continue
            latent_set = session.latents(model, probe_set, template)
            pools.append(select(spec, claim_data_from(latent_set, probe_set), spec.select.variant))
        return pools
    raise BenchError(f"{spec.id}: none of the models {models} takes the claim's inputs")


def calibration_sizes(spec: ClaimSpec, pool: ClaimData, size: str) -> dict[str, int]:
    """Unit levels of a sample of the calibrated size, read from the pool's rows of that profile."""
    from benchmark.claims.calibrate import unit_sizes
    from benchmark.probes.catalog import resolve_probes

    ids = {s.id for s in resolve_probes(spec.probe_set, size).samples}
    return unit_sizes(spec, pool.subset([s.id in ids for s in pool.samples]))


#: The pool each calibrated size draws from: the ci size from the full profile, the full size from the larger
#: ``pool`` profile where a set has one (text-parallel, text-paraphrase, speech-grid).
POOL_OF_SIZE = {"ci": "full", "full": "pool"}


def _has_profile(name: str, profile: str) -> bool:
    from benchmark.probes.catalog import shipped_probe_sets

    folder = shipped_probe_sets().get(name)
    if folder is None:
        return False
    header = json.loads((folder / "probeset.json").read_text(encoding="utf-8"))
    return profile in header.get("profiles", {})


CalibrationTask = tuple[ClaimSpec, ClaimData, dict[str, int]]


def calibrated_size(options: CalibrateOptions) -> str:
    """The size being calibrated (``--profile``), refused unless it has a larger pool profile."""
    size = options.session.profile
    if size not in POOL_OF_SIZE:
        raise BenchError(f"--profile {size}: calibration sizes are {sorted(POOL_OF_SIZE)}")
    return size


def calibration_tasks(options: CalibrateOptions) -> list[CalibrationTask]:
    """``(claim, pool, unit sizes)`` for every claim and template ``options`` select at the calibrated size
    (``options.session.profile``), the pools read from the profile one larger (:data:`POOL_OF_SIZE`).

    Shared by ``lalm-bench calibrate`` and the diagnostics that rerun its controls (``scripts/rerun_controls.py``)
    so that both see the same pools and sizes."""
    size = calibrated_size(options)
    session = ClaimSession(replace(options.session, profile=POOL_OF_SIZE[size]))
    specs = [spec for spec in all_claims() if not spec.cross_model]
    if options.claims:  # checked before any latents are extracted
        unknown = sorted(set(options.claims) - {spec.id for spec in specs})
        if unknown:
            raise BenchError(
                f"--claim {', '.join(unknown)}: no single-model claim of that id "
                f"(known: {', '.join(spec.id for spec in specs)})"
            )
        specs = [spec for spec in specs if spec.id in options.claims]
    templates = list(options.session.templates) if options.session.templates else None
    tasks: list[CalibrationTask] = []
    for spec in specs:
        if spec.rule.descriptive:
            print(f"{spec.id:42s} not calibrated: descriptive, it gives no verdict to calibrate")
            continue
        if not _has_profile(spec.probe_set, POOL_OF_SIZE[size]):
            print(
                f"{spec.id:42s} not calibrated at the {size} size: {spec.probe_set} has no "
                f"{POOL_OF_SIZE[size]!r} profile larger than its {size} profile"
            )
            continue
        for pool in calibration_pools(session, spec, list(options.models) or None, templates):
            tasks.append((spec, pool, calibration_sizes(spec, pool, size)))
    return tasks


def calibrate_main(options: CalibrateOptions) -> int:
    """``lalm-bench calibrate``: every claim's controls, drawn from pools of real offline latents one profile
    larger than the calibrated size (``options.session.profile``: ci or full)."""
    from benchmark.claims.calibrate import entry_key
    from benchmark.claims.controls import seeds_per_population
    from benchmark.run.control_pool import run_tasks
    from benchmark.run.validate import ValidationFailed, option_problems

    size = calibrated_size(options)
    problems = option_problems(options.session, [("--out", options.out, False)])
    if problems:
        raise ValidationFailed(problems)
    budget = Budget.for_profile(options.budget)
    out = options.out or CALIBRATION_FILE
    per_population = options.seeds_per_population or seeds_per_population(size)
    tasks = calibration_tasks(options)
    if options.replay:
        return replay_entries(tasks, size, out)
    run_tasks(
        tasks,
        size_name=size,
        seeds=options.seeds,
        first_seed=options.first_seed,
        budget=budget,
        out=out,
        jobs=options.jobs,
        seeds_per_population=per_population,
        progress=not options.quiet,
    )
    document = json.loads(out.read_text(encoding="utf-8"))
    for spec, pool, _ in tasks:
        row = document["entries"].get(entry_key(spec.id, pool.template, size), {})
        if "boundary_null" in row:
            print(
                f"{spec.id:42s} {pool.template:13s} FPR {row['boundary_null']['rate']:.3f} "
                f"power {row['positive']['rate']:.3f} (seeds {row['seeds']})"
            )
    return 0


def replay_entries(tasks: list[CalibrationTask], size: str, out: Path) -> int:
    """``lalm-bench calibrate --replay``: each task's entry replayed with this code and carried where its recorded
    decisions come back bit for bit (:mod:`benchmark.claims.replay`). Exit 1 when any entry could not be."""
    from benchmark.claims.calibrate import entry_key
    from benchmark.claims.controls import population_size_of
    from benchmark.claims.evaluate import verdict_code_sha256
    from benchmark.claims.replay import carry, replay_seeds, seed_rows, update_entries

    code = verdict_code_sha256()
    entries = json.loads(out.read_text(encoding="utf-8"))["entries"] if out.exists() else {}
    status = 0
    for spec, pool, sizes in tasks:
        key = entry_key(spec.id, pool.template, size)
        entry = entries.get(key)
        if entry is None:
            message, carried = "no entry to replay", None
        elif entry.get("fingerprint") != spec.fingerprint():
            message, carried = "the claim's definition changed since: recalibrate", None
        elif entry.get("sizes") != sizes or entry.get("pool_model") != pool.model:
            message, carried = (
                f"sample {entry.get('sizes')} of {entry.get('pool_model')} no longer the {size} size "
                f"({sizes} of {pool.model}): recalibrate",
                None,
            )
        else:
            rows = seed_rows(
                spec,
                pool,
                sizes,
                replay_seeds(entry),
                Budget.for_profile(entry["budget"]),
                population_size_of(entry),
            )
            carried, message = carry(entry, rows, code=code, commit=git_commit(), when=utc_now())
        if carried is not None and carried is not entry:
            update_entries(out, lambda es, k=key, c=carried: {**es, k: c})
        status = max(status, int(carried is None and entry is not None))  # a missing entry is not a failure
        print(f"{spec.id:42s} {pool.template:13s} {size}: {message}")
    return status


def _profile_records(options: SessionOptions, models: list[str]) -> list[ClaimRecord]:
    """Every single-model claim on every model under ``options.profile`` (cached latents; records saved)."""
    session = ClaimSession(options)
    return [
        record
        for model in models
        for spec in all_claims()
        if not spec.cross_model
        for record in session.claim_records(spec.id, model)
    ]


def consistency_main(options: ConsistencyOptions) -> int:
    """``lalm-bench consistency``: every claim on two profiles, paired per claim.

    Evaluates both profiles (the latent cache makes a warm side free) unless ``--stored``, which reads the
    newest stored record of each claim instead. Cross-model claims are left out (they belong to no one model).
    Exit codes (``benchmark.run.exit_codes``): 3 when a pair holds an ``error`` record (consistency cannot be
    shown because the pipeline broke), else 1 when any pair is opposite, else 0.
    """
    from dataclasses import replace

    from benchmark.claims.consistency import VerdictRow, compare_profiles, exit_code, newest_rows
    from benchmark.core.provenance import utc_now
    from benchmark.report.consistency import consistency_markdown, summary_line, verdict_table
    from benchmark.run.exit_codes import PIPELINE_ERROR
    from benchmark.run.validate import ValidationFailed, option_problems

    outputs = [("--results", options.session.results, True), ("--markdown", options.markdown, False)]
    problems = option_problems(options.session, outputs)
    if problems:
        raise ValidationFailed(problems)
    models = list(options.models) or default_model_order()
    profile_a, profile_b = options.session.profile, options.against
    expected = [(model, spec.id) for model in models for spec in all_claims() if not spec.cross_model]
    sides = []
    for profile in (profile_a, profile_b):
        if options.stored:
            from benchmark.report import load_records

            sides.append(newest_rows(load_records([options.session.results]), profile=profile, models=models))
            continue
        session_options = replace(options.session, profile=profile)
        sides.append([VerdictRow.from_record(r) for r in _profile_records(session_options, models)])
    pairs = compare_profiles(sides[0], sides[1], profile_a=profile_a, profile_b=profile_b, expected=expected)
    print(verdict_table(pairs, profile_a=profile_a, profile_b=profile_b, fmt_name="simple"))
    print(summary_line(pairs))
    if options.markdown:
        command = "lalm-bench consistency " + " ".join(
            [
                *(f"--model {m}" for m in models),
                f"--profile {profile_a}",
                f"--against {profile_b}",
                *(["--stored"] if options.stored else []),
            ]
        )
        options.markdown.parent.mkdir(parents=True, exist_ok=True)
        options.markdown.write_text(
            consistency_markdown(
                pairs, profile_a=profile_a, profile_b=profile_b, command=command, date=utc_now()
            )
            + "\n",
            encoding="utf-8",
        )
        print(f"wrote {options.markdown}")
    if any(p.relation == "error" for p in pairs):
        return PIPELINE_ERROR
    return exit_code(pairs)
