"""One code path for ``lalm-bench run`` and ``pytest claims/``: a session that extracts (cached), evaluates
claims (references first), and saves each record into the result store.

A session never lets one claim, model or probe set abort the others: a failure anywhere on a claim's path
(loading the weights, extracting, the statistics) becomes that claim's ``error`` record with the stage and the
message, and a failed load or extraction is remembered so the next claim on it fails at once instead of
retrying. ``lalm-bench run`` (``benchmark.run.main_job``) then writes the report from whatever was recorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.claims.data import Budget, ClaimData
from benchmark.claims.evaluate import CALIBRATION_FILE, applicability, evaluate_claim, evaluation_key
from benchmark.claims.record import ClaimRecord, Verdict
from benchmark.claims.registry import all_claims, get_claim
from benchmark.claims.spec import ClaimSpec
from benchmark.claims.store import latents_path, record_path
from benchmark.core.errors import BenchError, PipelineError
from benchmark.core.provenance import git_commit, library_versions, utc_now
from benchmark.core.schema import ProbeSet
from benchmark.engine.cache import LatentCache
from benchmark.engine.extract import LatentSet, extract_latents
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
    _records: dict[tuple[str, str], ClaimRecord] = field(default_factory=dict)
    extraction_log: list[dict[str, Any]] = field(default_factory=list)

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
        key = (model, probe_set.content_hash(), template)
        if key in self._latents:
            return self._latents[key]
        if key in self._failed:  # a load or extraction that failed once fails the next claim at once
            raise self._failed[key]
        adapter = self.adapter(model)
        stored = self.stored_latents(model, probe_set, template)
        try:
            if not adapter.availability().available and stored.exists():
                latent_set = LatentSet.load(stored)  # imported from a machine that has the weights
            else:
                latent_set = self._extract(adapter, probe_set, template, stored)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:
            failure = StepFailed(f"extraction of {probe_set.name} on {model}", error)
            self._failed[key] = failure
            raise failure from error
        self._latents[key] = latent_set
        return latent_set

    def _extract(self, adapter: ModelAdapter, probe_set: ProbeSet, template: str, stored: Path) -> LatentSet:
        cache = LatentCache(self.options.cache_dir) if self.options.use_cache else None
        latent_set, stats = extract_latents(
            adapter,
            probe_set,
            template=template,
            batch_size=self.options.batch_size,
            device=self.options.device,
            dtype=self.options.dtype,
            cache=cache,
            progress=self.reporter,  # type: ignore[arg-type]
        )
        latent_set.save(stored)
        self.extraction_log.append(
            {
                "model": adapter.spec.name,
                "probe_set": probe_set.name,
                "template": template,
                "samples": stats.samples,
                "cache_hits": stats.cache_hits,
                "forward_passes": stats.forward_passes,
                "corrupt_entries": stats.corrupt_entries,
                "seconds": round(stats.seconds, 2),
            }
        )
        return latent_set

    def record(self, claim_id: str, model: str) -> ClaimRecord:
        """Evaluate (once) and save the record of ``claim_id`` on ``model``; references are evaluated first.

        Never raises for a problem of this claim, model or probe set: that becomes an ``error`` record (or ``n/a``
        when the set holds no input of the claim's modalities that the model takes).
        """
        memo = (claim_id, model)
        if memo in self._records:
            return self._records[memo]
        spec = get_claim(claim_id)
        try:
            record = self._evaluate(spec, model)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:
            message = str(error) if isinstance(error, StepFailed) else str(StepFailed("evaluation", error))
            record = self._fallback_record(spec, model, "error", message)
        self._records[memo] = record
        return record

    def _evaluate(self, spec: ClaimSpec, model: str) -> ClaimRecord:
        adapter = self.adapter(model)
        reference_verdict = self.record(spec.reference, model).verdict if spec.reference else None
        why_not = applicability(spec, adapter.spec.modalities, adapter.spec.languages)
        probe_set = self.probe_set(spec)
        if why_not is None:
            no_inputs = _no_inputs(spec, adapter, probe_set)
            if no_inputs is not None:
                return self._fallback_record(spec, model, "n/a", no_inputs)
            latent_set = self.latents(model, probe_set, spec.template)
        else:
            latent_set = _placeholder_latents(adapter, probe_set, spec.template)
        inputs = {
            "latent_set": latent_set,
            "probe_set": probe_set,
            "profile": self.options.profile,
            "seed": self.options.seed,
            "model_modalities": adapter.spec.modalities,
            "model_languages": adapter.spec.languages,
            "reference_verdict": reference_verdict,
            "budget": Budget.for_profile(self.options.profile),
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
        )
        record = _stored_record(path, key) if self.options.use_cache else None
        if record is None:  # nothing stored from these exact inputs: evaluate (permutations, bootstraps)
            try:
                record = evaluate_claim(spec, **inputs)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as error:
                raise StepFailed("statistics", error) from error
            record.evaluation_key = key
            record.save(path)
        return record

    def _fallback_record(self, spec: ClaimSpec, model: str, verdict: Verdict, reason: str) -> ClaimRecord:
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
            template=spec.template,
            variant=spec.variant,
            dtype=self.options.dtype,
            device=self.options.device,
            seed=self.options.seed,
            versions=library_versions(),
            git_commit=git_commit(),
            caveats=[*spec.caveats, *(probe_set.caveats if probe_set is not None else [])],
            created=utc_now(),
        )
        if adapter is not None and probe_set is not None:
            record.save(record_path(self.options.results, model, revision, probe_hash, spec.id, spec.version))
        return record

    def records(self) -> list[ClaimRecord]:
        return list(self._records.values())


def _no_inputs(spec: ClaimSpec, adapter: ModelAdapter, probe_set: ProbeSet) -> str | None:
    """Why there is nothing to extract for ``spec`` on this model and set (n/a), or None."""
    wanted = set(spec.requires_modalities)
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


def _placeholder_latents(adapter: ModelAdapter, probe_set: ProbeSet, template: str) -> LatentSet:
    """An empty latents object carrying provenance only, for records of claims that are ``n/a``."""
    import numpy as np
    import torch

    from benchmark.core.schema import LatentsManifest
    from benchmark.engine.extract import build_provenance

    manifest = LatentsManifest(
        provenance=build_provenance(adapter, probe_set, torch.device("cpu"), torch.float32),
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


def calibration_bases(
    session: ClaimSession,
    models: list[str] | None = None,
    latents: list[Path] | None = None,
    specs: list[ClaimSpec] | None = None,
) -> dict[str, ClaimData]:
    """Real latents per probe set that seed the claims' controls: imported files first, then the first model
    (text LMs before whisper: their text latents suit the text claims) to which each claim applies. Only the
    probe sets of ``specs`` (default: every claim) are extracted: a full-profile set can take half an hour."""
    from benchmark.claims.data import claim_data_from
    from benchmark.probes.catalog import resolve_probes

    models = models or default_model_order()
    bases: dict[str, ClaimData] = {}
    for path in latents or []:
        # Imported latents (e.g. extracted on another machine): the probe set comes from the file's manifest,
        # and its rows pick their samples by id, so a ci or full file both work.
        latent_set = LatentSet.load(path)
        name = latent_set.manifest.provenance.probe_set
        ensure_fixture_audio(name)
        bases[name] = claim_data_from(latent_set, resolve_probes(name, None))
    for spec in specs if specs is not None else all_claims():
        if spec.cross_model or spec.probe_set in bases:
            continue
        for model in models:
            adapter = session.adapter(model)
            if applicability(spec, adapter.spec.modalities, adapter.spec.languages) is None:
                probe_set = session.probe_set(spec)
                bases[spec.probe_set] = claim_data_from(
                    session.latents(model, probe_set, spec.template), probe_set
                )
                break
    return bases


def calibrate_main(options: CalibrateOptions) -> int:
    """``lalm-bench calibrate``: controls of every claim on real offline latents (first model that fits)."""
    from benchmark.claims.calibrate import calibrate
    from benchmark.run.validate import ValidationFailed, option_problems

    problems = option_problems(options.session, [("--out", options.out, False)])
    if problems:
        raise ValidationFailed(problems)
    session = ClaimSession(options.session)
    specs = [spec for spec in all_claims() if not spec.cross_model]
    if options.claims:  # checked before any latents are extracted
        unknown = sorted(set(options.claims) - {spec.id for spec in specs})
        if unknown:
            raise BenchError(
                f"--claim {', '.join(unknown)}: no single-model claim of that id "
                f"(known: {', '.join(spec.id for spec in specs)})"
            )
        specs = [spec for spec in specs if spec.id in options.claims]
    bases = calibration_bases(session, list(options.models) or None, list(options.latents) or None, specs)
    budget = Budget.for_profile(options.budget)
    out = options.out or CALIBRATION_FILE
    if options.jobs == 1:
        document = calibrate(
            specs, bases, seeds=options.seeds, budget=budget, first_seed=options.first_seed, out=out
        )
    else:
        from benchmark.run.control_pool import default_shard_size, plan_shards, run_shards

        shards = plan_shards(
            [spec.id for spec in specs],
            seeds=options.seeds,
            first_seed=options.first_seed,
            shard_size=default_shard_size(options.seeds, options.jobs),
        )
        run_shards(specs, bases, shards, budget=budget, jobs=options.jobs, out=out, all_specs=all_claims())
        document = json.loads(out.read_text(encoding="utf-8"))
    for claim_id, row in document["claims"].items():
        if "boundary_null" in row:
            print(
                f"{claim_id:42s} FPR {row['boundary_null']['rate']:.3f} power {row['positive']['rate']:.3f} "
                f"(seeds {row['seeds']})"
            )
        else:
            print(f"{claim_id:42s} {row.get('status')}")
    return 0


def _profile_records(options: SessionOptions, models: list[str]) -> list[ClaimRecord]:
    """Every single-model claim on every model under ``options.profile`` (cached latents; records saved)."""
    session = ClaimSession(options)
    return [
        session.record(spec.id, model) for model in models for spec in all_claims() if not spec.cross_model
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
