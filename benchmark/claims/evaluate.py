"""Evaluate one claim on one model's latents: select, check requirements, gate, measure, decide, record.

This is the single code path shared by ``lalm-bench run`` and ``pytest claims/``: both call
``evaluate_claim`` and save the record it returns into the same store. A claim never aborts a run: unmet
requirements answer ``n/a`` naming what is missing, and an exception inside a claim's statistics becomes that
claim's ``error`` record with the message.
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback
from collections.abc import Mapping
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.claims.data import Budget, ClaimData, MissingAxisError, claim_data_from
from benchmark.claims.expectations import lookup_expectation, unmatched_paper_expectation
from benchmark.claims.record import ClaimRecord, Expectation, Measurement, SecondaryDecision, Verdict
from benchmark.claims.shapes import Measured, band_contrast, metric_agreement
from benchmark.claims.spec import BandContrast, ClaimSpec, MetricAgreement
from benchmark.claims.verdict import Decision, decide, token_veto
from benchmark.core.hashing import sha256_file
from benchmark.core.provenance import git_commit, library_versions, utc_now
from benchmark.core.schema import ProbeSet
from benchmark.stats import check_latents
from benchmark.stats.scores import ScoreError

CALIBRATION_FILE = Path(__file__).parent / "calibration.json"


class NotApplicable(Exception):
    """The claim cannot be evaluated on these inputs; the message names what is missing."""


def applicability(
    spec: ClaimSpec, modalities: tuple[str, ...], languages: tuple[str, ...] | None
) -> str | None:
    """Why the model cannot take this claim's inputs, or None when it can."""
    missing = [m for m in spec.requires.modalities if m not in modalities]
    if missing:
        return f"the model takes no {', '.join(missing)} input"
    if languages is not None:
        lacking = [lang for lang in spec.requires.languages if lang not in languages]
        if lacking:
            return f"the model does not cover languages {lacking}"
        if len(languages) < spec.requires.min_languages:
            return (
                f"the claim needs {spec.requires.min_languages} languages, the model covers {len(languages)}"
            )
    return None


def select(spec: ClaimSpec, data: ClaimData, variant: str | None) -> ClaimData:
    """The claim's samples: the given probe variant (text only), its filter, its required modalities."""
    keep = np.ones(len(data.samples), dtype=bool)
    for index, sample in enumerate(data.samples):
        if variant is not None and sample.modality == "text" and sample.variant not in (None, variant):
            keep[index] = False
        if sample.modality not in spec.requires.modalities:
            keep[index] = False
        for axis, allowed in spec.select.filter.items():
            if sample.label(axis) not in allowed:
                keep[index] = False
    return data.subset(keep)


def check_requirements(spec: ClaimSpec, data: ClaimData) -> None:
    """Raise :class:`NotApplicable` naming the first unmet requirement of the selected samples."""
    req = spec.requires
    if len(data.samples) < 4:
        raise NotApplicable(f"needs >= 4 samples after selection, got {len(data.samples)}")
    present = {s.modality for s in data.samples}
    lacking = [m for m in req.modalities if m not in present]
    if lacking:
        raise NotApplicable(f"needs {' and '.join(lacking)} samples in the probe set")
    if data.num_blocks < req.min_blocks:
        raise NotApplicable(f"needs >= {req.min_blocks} decoder blocks, the model has {data.num_blocks}")
    for axis in req.axes:
        data.labels(axis)  # raises MissingAxisError naming the axis
    if req.languages or req.min_languages > 1:
        langs = set(data.labels("language").tolist())
        missing = [lang for lang in req.languages if lang not in langs]
        if missing:
            raise NotApplicable(f"needs languages {missing}, the probe set has {sorted(langs)}")
        if len(langs) < req.min_languages:
            raise NotApplicable(f"needs >= {req.min_languages} languages, got {len(langs)}")
    for axis, least in req.min_levels.items():
        got = len(set(data.labels(axis).tolist()))
        if got < least:
            raise NotApplicable(f"needs >= {least} distinct {axis} values, got {got}")
    for group_axis, inner in req.min_per_group.items():
        groups = data.labels(group_axis)
        for axis, least in inner.items():
            values = data.labels(axis)
            counts = {g: len(set(values[groups == g].tolist())) for g in set(groups.tolist())}
            good = sum(c >= least for c in counts.values())
            need = req.min_levels.get(group_axis, 2)
            if good < need:
                raise NotApplicable(
                    f"needs >= {need} {group_axis} values with >= {least} {axis} values each, got {good}"
                )


def gate(spec: ClaimSpec, data: ClaimData) -> list[str]:
    """Pipeline-gate problems (CLAIMS.md): identical latents for distinct inputs, NaN/inf, collapsed clusters of
    the claim's label."""
    labels = None
    if isinstance(spec.measure, BandContrast | MetricAgreement):
        label = (
            spec.measure.label
            if isinstance(spec.measure, MetricAgreement)
            else next(iter(spec.measure.components.values())).params.get("label")
        )
        if label:
            try:
                labels = data.labels(label)
            except MissingAxisError:
                labels = None
    ids = [s.text + "|" + (s.audio_sha256 or "") for s in data.samples]
    problems = check_latents(data.latents, layer_names=data.layers, input_ids=ids, labels=labels)
    return [f"{p.code}@{p.layer}: {p.message}" for p in problems]


def measure(spec: ClaimSpec, data: ClaimData, budget: Budget, rng: np.random.Generator) -> Measured:
    """Run the claim's measure shape on the selected samples."""
    figures = spec.figures.model_dump()
    if isinstance(spec.measure, BandContrast):
        return band_contrast.evaluate(
            spec.measure,
            data,
            budget,
            rng,
            token_control=spec.token_control,
            alpha=spec.rule.alpha,
            figures=figures,
        )
    if isinstance(spec.measure, MetricAgreement):
        return metric_agreement.evaluate(
            spec.measure, data, budget, rng, alpha=spec.rule.alpha, figures=figures
        )
    raise TypeError(f"claim {spec.id}: measure shape {spec.measure.shape!r} is not evaluated on one model")


def decide_measured(
    spec: ClaimSpec, measured: Measured, *, model: str, reference_verdict: Verdict | None
) -> Decision:
    decision = decide(spec.rule, measured.reduction, model=model, reference_verdict=reference_verdict)
    if spec.rule.descriptive:
        return replace(
            decision,
            verdict="n/a",
            reason=f"descriptive, no verdict ({spec.rule.descriptive}); the rule would read: {decision.reason}",
        )
    if spec.token_control is not None and spec.rule.kind != "absence":
        decision = token_veto(
            decision,
            {k: m for k, m in measured.control_margins.items() if k in measured.deciding_controls},
            delta=float(spec.rule.delta),  # presence/change rules have delta
            alpha=spec.rule.alpha,
            decides=spec.token_control.decides,
        )
    return decision


def measurement_of(measured: Measured, decision: Decision, budget: Budget, alpha: float) -> Measurement:
    margins = {name: [est.value, *est.bounds(alpha)] for name, est in measured.control_margins.items()}
    return Measurement(
        effect=decision.bounds.value,
        ci_low=decision.bounds.low,
        ci_high=decision.bounds.high,
        p_value=decision.p_value,
        p_fails=decision.p_fails,
        p_structure=measured.reduction.p_structure(),
        power=decision.power,
        se=decision.bounds.se,
        df=decision.bounds.df,
        direction=decision.direction,
        n_units=measured.n_units,
        n_samples=measured.n_samples,
        n_perm=budget.n_perm,
        resampling=measured.resampling,
        token_controls=measured.control_values,
        token_margins=margins,
        explained_by_tokens=decision.explained_by_tokens,
        token_note=measured.control_note,
        curves=measured.curves,
        numbers=measured.numbers,
        payloads=measured.payloads,
    )


def _secondary(
    spec: ClaimSpec,
    data: ClaimData,
    budget: Budget,
    seed: int,
    model: str,
    references: Mapping[str, Verdict],
) -> dict[str, SecondaryDecision]:
    out = {}
    for name, sec in spec.secondary.items():
        try:
            if not isinstance(sec.measure, BandContrast):
                raise TypeError("secondary decisions take a band_contrast measure")
            measured = band_contrast.evaluate(
                sec.measure, data, budget, np.random.default_rng(seed), alpha=sec.rule.alpha
            )
            d = decide(
                sec.rule,
                measured.reduction,
                model=model,
                reference_verdict=combined_reference(sec.references, references),
            )
            out[name] = SecondaryDecision(
                title=sec.title,
                verdict=d.verdict,
                reason=d.reason,
                effect=d.bounds.value,
                ci_low=d.bounds.low,
                ci_high=d.bounds.high,
                power=d.power,
            )
        except (MissingAxisError, ScoreError, NotApplicable) as exc:
            out[name] = SecondaryDecision(title=sec.title, verdict="n/a", reason=str(exc))
        except Exception as exc:  # a secondary decision never aborts the claim
            out[name] = SecondaryDecision(
                title=sec.title, verdict="error", reason=f"{type(exc).__name__}: {exc}"
            )
    return out


def combined_reference(claims: list[str], verdicts: Mapping[str, Verdict]) -> Verdict | None:
    """``holds`` when every reference claim holds; else the first one that does not (None when none given)."""
    if not claims:
        return None
    for claim in claims:
        if verdicts.get(claim) != "holds":
            return verdicts.get(claim) or "inconclusive"
    return "holds"


def calibration_reference() -> dict[str, Any]:
    """The calibration file the constants were fixed by, and the commit that last changed it."""
    import subprocess

    if not CALIBRATION_FILE.exists():
        return {"file": None, "status": "no calibration file committed yet"}
    try:
        commit = (
            subprocess.run(
                ["git", "log", "-n", "1", "--format=%H", "--", str(CALIBRATION_FILE)],
                capture_output=True,
                text=True,
                timeout=10,
                cwd=CALIBRATION_FILE.parent,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        commit = None
    document = json.loads(CALIBRATION_FILE.read_text())
    return {
        "file": CALIBRATION_FILE.name,
        "commit": commit,
        "created": document.get("created"),
        "stale": bool(document.get("stale")),
    }


def evaluate_claim(
    spec: ClaimSpec,
    *,
    latent_set: Any,
    probe_set: ProbeSet,
    profile: str,
    seed: int,
    model_modalities: tuple[str, ...],
    model_languages: tuple[str, ...] | None,
    references: Mapping[str, Verdict] | None = None,
    budget: Budget | None = None,
    variant: str | None = None,
) -> ClaimRecord:
    """Evaluate ``spec`` on a model's latents of ``probe_set`` and return the record (not yet saved).

    ``variant`` is the probe variant to select (default: the spec's primary one); ``references`` holds the
    verdicts of the claim's reference claims (and its secondary decisions') on the same model and template.
    """
    started = time.perf_counter()
    provenance = latent_set.manifest.provenance
    template = latent_set.manifest.template
    variant = spec.select.variant if variant is None else variant
    base: dict[str, Any] = {
        "claim_id": spec.id,
        "claim_version": spec.version,
        "claim_fingerprint": spec.fingerprint(),
        "title": spec.title,
        "paper": spec.paper,
        "section": spec.section,
        "rule": spec.rule.model_dump(mode="json"),
        "model": provenance.model,
        "revision": provenance.revision,
        "model_kind": provenance.kind,
        "probe_set": probe_set.name,
        "probe_set_hash": provenance.probe_set_hash,
        "profile": profile,
        "template": template,
        "template_rendered": provenance.templates.get(template, {}),
        "primary_template": template == spec.templates.primary,
        "variant": variant,
        "primary_variant": variant == spec.select.variant,
        "dtype": provenance.dtype,
        "device": provenance.device,
        "cpu": getattr(provenance, "cpu", None),
        "seed": seed,
        "calibration": calibration_reference(),
        "versions": library_versions(),
        "git_commit": git_commit(),
        "caveats": [*spec.caveats, *probe_set.caveats],
        "created": utc_now(),
    }
    speech = [s for s in probe_set.samples if s.modality == "speech"]
    synthetic_speech = any(s.synthetic for s in speech) if speech else None
    expectation = lookup_expectation(
        spec,
        provenance.model,
        provenance.revision,
        provenance.probe_set_hash,
        template,
        variant=variant,
        synthetic_speech=synthetic_speech,
    )
    base["expectation"] = expectation
    base["synthetic_speech"] = synthetic_speech
    base["expectation_note"] = (
        ""
        if expectation
        else unmatched_paper_expectation(spec, provenance.model, template, synthetic_speech=synthetic_speech)
    )
    references = dict(references or {})
    if spec.references:
        base["reference"] = {claim: references.get(claim, "missing") for claim in spec.references}
    reference_verdict = combined_reference(spec.references, references)
    reason = applicability(spec, model_modalities, model_languages)
    if reason is not None:
        return _record(base, "n/a", reason, None, expectation, started)
    budget = budget or Budget.for_profile(profile)
    try:
        data = select(spec, claim_data_from(latent_set, probe_set), variant)
        check_requirements(spec, data)
        problems = gate(spec, data)
        if problems:
            return _record(
                base, "error", "pipeline gate: " + "; ".join(problems[:5]), None, expectation, started
            )
        measured = measure(spec, data, budget, np.random.default_rng(seed))
        decision = decide_measured(
            spec, measured, model=provenance.model, reference_verdict=reference_verdict
        )
        base["secondary"] = _secondary(spec, data, budget, seed, provenance.model, references)
    except (NotApplicable, MissingAxisError, ScoreError) as exc:
        return _record(base, "n/a", str(exc), None, expectation, started)
    except Exception as exc:  # one claim's failure is its error record, never the run's abort
        where = traceback.extract_tb(exc.__traceback__)[-1]
        message = f"{type(exc).__name__} in the claim's statistics: {exc} ({Path(where.filename).name}:{where.lineno})"
        return _record(base, "error", message, None, expectation, started)
    measurement = measurement_of(measured, decision, budget, spec.rule.alpha)
    return _record(base, decision.verdict, decision.reason, measurement, expectation, started)


def _record(
    base: dict[str, Any],
    verdict: Verdict,
    reason: str,
    measurement: Measurement | None,
    expectation: Expectation | None,
    started: float,
) -> ClaimRecord:
    meets = None
    if expectation is not None and verdict in ("holds", "fails"):
        meets = verdict == expectation.verdict
    return ClaimRecord(
        **base,
        verdict=verdict,
        reason=reason,
        measurement=measurement,
        meets_expectation=meets,
        seconds=time.perf_counter() - started,
    )


@cache
def verdict_code_sha256() -> str:
    """Hash of the code that turns latents into verdicts: the claims package (specs included) and the statistics."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for folder, pattern in (
        ("claims", "*.py"),
        ("claims/shapes", "*.py"),
        ("claims/specs", "*.yaml"),
        ("stats", "*.py"),
    ):
        for path in sorted((package / folder).glob(pattern)):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _file_sha256(path: Path) -> str | None:
    return sha256_file(path) if path.is_file() else None


def evaluation_key(
    spec: ClaimSpec,
    *,
    latent_set: Any,
    probe_set: ProbeSet,
    profile: str,
    seed: int,
    model_modalities: tuple[str, ...],
    model_languages: tuple[str, ...] | None,
    budget: Budget,
    variant: str | None = None,
    references: Mapping[str, Verdict] | None = None,
) -> str:
    """sha256 of everything :func:`evaluate_claim` reads: a stored record with this key is the record a new
    evaluation would give (same latents, labels, claim, seed, budget, code, library versions, calibration and
    expectations), so a warm rerun may reuse it instead of recomputing its permutations."""
    from benchmark.claims.expectations import _path as expectations_path

    manifest = latent_set.manifest
    material = {
        "claim": spec.fingerprint(),
        "latents": manifest.tensor_sha256,
        "rows": hashlib.sha256("\n".join(manifest.sample_ids).encode()).hexdigest(),
        "provenance": manifest.provenance.model_dump(mode="json", exclude={"created", "git_commit"}),
        "template": manifest.template,
        "variant": variant,
        "probe_set": probe_set.content_hash(),
        "profile": profile,
        "seed": seed,
        "budget": [budget.n_perm, budget.n_perm_replicate, budget.name],
        "modalities": list(model_modalities),
        "languages": list(model_languages) if model_languages is not None else None,
        "references": dict(sorted((references or {}).items())),
        "code": verdict_code_sha256(),
        "versions": library_versions(),
        "calibration": _file_sha256(CALIBRATION_FILE),
        "expectations": _file_sha256(expectations_path()),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()
