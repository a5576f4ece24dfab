"""One code path for ``lalm-bench run`` and ``pytest claims/``: a session that extracts (cached), evaluates
claims (references first), and saves each record into the result store.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.claims.data import Budget, ClaimData
from benchmark.claims.evaluate import CALIBRATION_FILE, applicability, evaluate_claim, evaluation_key
from benchmark.claims.record import ClaimRecord
from benchmark.claims.registry import all_claims, get_claim
from benchmark.claims.spec import ClaimSpec
from benchmark.claims.store import latents_path, record_path
from benchmark.core.errors import BenchError
from benchmark.core.schema import ProbeSet
from benchmark.engine.cache import LatentCache
from benchmark.engine.extract import LatentSet, extract_templates
from benchmark.models.base import ModelAdapter
from benchmark.models.catalog import DEFAULT_MODELS, get_adapter

DEFAULT_SEED = 20251125


@dataclass
class SessionOptions:
    profile: str = "ci"
    probes: str | None = None
    results: Path = Path("results")
    cache_dir: Path | None = None
    use_cache: bool = True
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int | None = None  # None: from free memory on a GPU, 8 on the CPU
    seed: int = DEFAULT_SEED
    progress: bool = False
    device_map: str | None = None
    templates: tuple[str, ...] | None = None  # None: every template each claim runs under


@dataclass
class ClaimSession:
    """Memoises adapters, probe sets, latents and records for one run."""

    options: SessionOptions
    _adapters: dict[str, ModelAdapter] = field(default_factory=dict)
    _probes: dict[str, ProbeSet] = field(default_factory=dict)
    _latents: dict[tuple[str, str, str], LatentSet] = field(default_factory=dict)
    _records: dict[tuple[str, str, str, str | None], ClaimRecord] = field(default_factory=dict)
    extraction_log: list[dict[str, object]] = field(default_factory=list)

    @property
    def results_dir(self) -> Path:
        return self.options.results

    def adapter(self, model: str) -> ModelAdapter:
        if model not in self._adapters:
            self._adapters[model] = get_adapter(model)
            self._adapters[model].device_map = self.options.device_map
        return self._adapters[model]

    def probe_set(self, spec: ClaimSpec) -> ProbeSet:
        name = self.options.probes or spec.probe_set
        if name not in self._probes:
            from benchmark.probes.catalog import resolve_probes

            ensure_fixture_audio(name)
            self._probes[name] = resolve_probes(
                name, self.options.profile if not self.options.probes else None
            )
        return self._probes[name]

    def latents(self, model: str, probe_set: ProbeSet, template: str) -> LatentSet:
        """The model's latents of a probe set under one template. Every template of the run is extracted in one
        pass (the audio encoder runs once per clip for all of them) and each is saved beside the records."""
        key = (model, probe_set.content_hash(), template)
        if key in self._latents:
            return self._latents[key]
        adapter = self.adapter(model)
        templates = list(dict.fromkeys([template, *(self.options.templates or ("bare", "shared-suffix"))]))
        stored = {
            t: latents_path(self.options.results, model, adapter.spec.revision, key[1], t) for t in templates
        }
        if not adapter.availability().available and stored[template].exists():
            self._latents[key] = LatentSet.load(stored[template])  # imported from a machine with the weights
            return self._latents[key]
        cache = LatentCache(self.options.cache_dir) if self.options.use_cache else None
        sets, stats = extract_templates(
            adapter,
            probe_set,
            templates,
            batch_size=self.options.batch_size,
            device=self.options.device,
            dtype=self.options.dtype,
            cache=cache,
            progress=self.options.progress,
        )
        for name, latent_set in sets.items():
            latent_set.save(stored[name])
            self._latents[(model, key[1], name)] = latent_set
        self.extraction_log.append(
            {
                "model": model,
                "probe_set": probe_set.name,
                "templates": templates,
                "samples": stats.samples,
                "cache_hits": stats.cache_hits,
                "forward_passes": stats.forward_passes,
                "seconds": round(stats.seconds, 2),
            }
        )
        return self._latents[key]

    def record(
        self, claim_id: str, model: str, template: str | None = None, variant: str | None = None
    ) -> ClaimRecord:
        """Evaluate (once) and save the record of ``claim_id`` on ``model`` under one template and probe variant
        (default: the claim's primary ones); its references are evaluated first, under the same template."""
        spec = get_claim(claim_id)
        template = template or spec.templates.primary
        variant = spec.select.variant if variant is None else variant
        memo = (claim_id, model, template, variant)
        if memo in self._records:
            return self._records[memo]
        adapter = self.adapter(model)
        references = {
            ref: self.record(ref, model, template).verdict
            for ref in [*spec.references, *(r for s in spec.secondary.values() for r in s.references)]
            if template in get_claim(ref).templates.run
        }
        why_not = applicability(spec, adapter.spec.modalities, adapter.spec.languages)
        probe_set = self.probe_set(spec)
        if why_not is None:
            latent_set = self.latents(model, probe_set, template)
        else:
            latent_set = _placeholder_latents(adapter, probe_set, template)
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
            claim_id,
            spec.version,
            template,
            variant,
        )
        record = _stored_record(path, key) if self.options.use_cache else None
        if record is None:  # nothing stored from these exact inputs: evaluate
            record = evaluate_claim(spec, **inputs)
            record.evaluation_key = key
            record.save(path)
        self._records[memo] = record
        return record

    def claim_records(self, claim_id: str, model: str) -> list[ClaimRecord]:
        """Every evaluation a claim asks for on a model: each template it runs under, and under ``bare`` each
        probe variant (primary first)."""
        spec = get_claim(claim_id)
        templates = [
            t for t in spec.templates.run if self.options.templates is None or t in self.options.templates
        ]
        out = []
        for template in templates:
            variants = [spec.select.variant]
            if template == "bare":
                variants += spec.select.secondary_variants
            out += [self.record(claim_id, model, template, variant) for variant in variants]
        mark_template_dependence([r for r in out if r.primary_variant], self.options.results)
        return out

    def records(self) -> list[ClaimRecord]:
        return list(self._records.values())


def mark_template_dependence(records: list[ClaimRecord], results: Path) -> None:
    """Flag a claim's records (one model, primary variant) whose templates disagree: holds under one and fails
    under another is template-dependent; holds against inconclusive is shown, not flagged."""
    if len({r.template for r in records}) < 2:
        return
    findings = {r.verdict for r in records} & {"holds", "fails"}
    flag = findings == {"holds", "fails"}
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


def run_main(args: argparse.Namespace) -> int:
    """``lalm-bench run``: every claim for every selected model, then the report."""
    options = SessionOptions(
        profile=args.profile,
        probes=args.probes,
        results=args.results,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        progress=sys.stderr.isatty(),
        device_map=getattr(args, "device_map", None),
    )
    session = ClaimSession(options)
    # Text LMs first: their text latents are the natural base for text claims; speech sets fall to whisper.
    models = args.model or sorted(DEFAULT_MODELS, key=lambda m: "whisper" in m)
    for model in models:
        for spec in all_claims():
            if spec.cross_model:
                continue
            for record in session.claim_records(spec.id, model):
                print(
                    f"{record.claim_id:42s} {model:24s} {record.template:13s} {record.verdict:12s} "
                    f"{record.reason[:80]}",
                    flush=True,
                )
    from benchmark.run.cross_model import evaluate_cross_model

    cross = evaluate_cross_model(session, models)
    for record in cross:
        print(
            f"{record.claim_id:42s} {record.model:24s} {record.verdict:12s} {record.reason[:90]}", flush=True
        )
    print(json.dumps(session.extraction_log), file=sys.stderr)
    from benchmark.report import write_report

    written = write_report([*session.records(), *cross], args.out)
    for kind, path in written.items():
        print(f"report ({kind}): {path}")
    return 0


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


def calibrate_main(args: argparse.Namespace) -> int:
    """``lalm-bench calibrate``: every claim's controls, drawn from full-profile pools of real offline latents."""
    from benchmark.claims.calibrate import calibrate_claim, entry_key

    size = args.profile
    if size not in POOL_OF_SIZE:
        raise BenchError(f"--profile {size}: calibration sizes are {sorted(POOL_OF_SIZE)}")
    options = SessionOptions(
        profile=POOL_OF_SIZE[size],
        results=args.results,
        cache_dir=args.cache_dir,
        use_cache=not getattr(args, "no_cache", False),
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        device_map=getattr(args, "device_map", None),
        progress=sys.stderr.isatty(),
    )
    session = ClaimSession(options)
    specs = [spec for spec in all_claims() if not spec.cross_model]
    if args.claim:  # checked before any latents are extracted
        unknown = sorted(set(args.claim) - {spec.id for spec in specs})
        if unknown:
            raise BenchError(
                f"--claim {', '.join(unknown)}: no single-model claim of that id "
                f"(known: {', '.join(spec.id for spec in specs)})"
            )
        specs = [spec for spec in specs if spec.id in args.claim]
    budget = Budget.for_profile(args.budget)
    out = getattr(args, "out", None) or CALIBRATION_FILE
    jobs = getattr(args, "jobs", 1)
    tasks = []
    for spec in specs:
        if not _has_profile(spec.probe_set, POOL_OF_SIZE[size]):
            print(
                f"{spec.id:42s} not calibrated at the {size} size: {spec.probe_set} has no "
                f"{POOL_OF_SIZE[size]!r} profile larger than its {size} profile"
            )
            continue
        for pool in calibration_pools(session, spec, args.model, getattr(args, "template", None)):
            sizes = calibration_sizes(spec, pool, size)
            tasks.append((spec, pool, sizes))
    if jobs == 1:
        for spec, pool, sizes in tasks:
            calibrate_claim(
                spec,
                pool,
                sizes,
                size_name=size,
                seeds=args.seeds,
                budget=budget,
                out=out,
                first_seed=args.first_seed,
            )
    else:
        from benchmark.run.control_pool import run_tasks

        run_tasks(
            tasks,
            size_name=size,
            seeds=args.seeds,
            first_seed=args.first_seed,
            budget=budget,
            out=out,
            jobs=jobs,
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


def consistency_main(args: argparse.Namespace) -> int:
    """``lalm-bench consistency``: every claim on two profiles, paired per claim; 1 when any pair is opposite.

    Evaluates both profiles (the latent cache makes a warm side free) unless ``--stored``, which reads the
    newest stored record of each claim instead. Cross-model claims are left out (they belong to no one model).
    """
    from benchmark.claims.consistency import VerdictRow, compare_profiles, exit_code, newest_rows
    from benchmark.core.provenance import utc_now
    from benchmark.report.consistency import consistency_markdown, summary_line, verdict_table

    models = args.model or sorted(DEFAULT_MODELS, key=lambda m: "whisper" in m)
    expected = [(model, spec.id) for model in models for spec in all_claims() if not spec.cross_model]
    sides = []
    for profile in (args.profile, args.against):
        if args.stored:
            from benchmark.report import load_records

            sides.append(newest_rows(load_records([args.results]), profile=profile, models=models))
            continue
        options = SessionOptions(
            profile=profile,
            results=args.results,
            cache_dir=args.cache_dir,
            use_cache=not args.no_cache,
            device=args.device,
            dtype=args.dtype,
            batch_size=args.batch_size,
            progress=sys.stderr.isatty(),
            device_map=args.device_map,
        )
        sides.append([VerdictRow.from_record(r) for r in _profile_records(options, models)])
    pairs = compare_profiles(
        sides[0], sides[1], profile_a=args.profile, profile_b=args.against, expected=expected
    )
    print(verdict_table(pairs, profile_a=args.profile, profile_b=args.against, fmt_name="simple"))
    print(summary_line(pairs))
    if args.markdown:
        command = "lalm-bench consistency " + " ".join(
            [
                *(f"--model {m}" for m in models),
                f"--profile {args.profile}",
                f"--against {args.against}",
                *(["--stored"] if args.stored else []),
            ]
        )
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(
            consistency_markdown(
                pairs, profile_a=args.profile, profile_b=args.against, command=command, date=utc_now()
            )
            + "\n",
            encoding="utf-8",
        )
        print(f"wrote {args.markdown}")
    return exit_code(pairs)
