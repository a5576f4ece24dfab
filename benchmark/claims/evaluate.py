"""Evaluate one claim on one model's latents: select samples, gate, measure, decide, record.

This is the single code path shared by ``lalm-bench run`` and ``pytest claims/``: both call
``evaluate_claim`` and save the record it returns into the same store.
"""

from __future__ import annotations

import hashlib
import json
import time
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.claims.data import Budget, ClaimData, claim_data_from, load_measures
from benchmark.claims.expectations import lookup_expectation
from benchmark.claims.record import ClaimRecord, Expectation, Measurement, Verdict
from benchmark.claims.spec import ClaimSpec
from benchmark.claims.verdict import decide
from benchmark.core.hashing import sha256_file
from benchmark.core.provenance import git_commit, library_versions, utc_now
from benchmark.core.schema import ProbeSet
from benchmark.stats import check_latents

CALIBRATION_FILE = Path(__file__).parent / "calibration.json"


def applicability(
    spec: ClaimSpec, modalities: tuple[str, ...], languages: tuple[str, ...] | None
) -> str | None:
    """Why the model cannot take this claim's inputs, or None when it can (then the verdict is not n/a)."""
    missing = [m for m in spec.requires_modalities if m not in modalities]
    if missing:
        return f"the model takes no {', '.join(missing)} input"
    if languages is not None:
        lacking = [lang for lang in spec.requires_languages if lang not in languages]
        if lacking:
            return f"the model does not cover languages {lacking}"
        if len(languages) < spec.min_languages:
            return f"the claim needs {spec.min_languages} languages, the model covers {len(languages)}"
    return None


def select(spec: ClaimSpec, data: ClaimData) -> ClaimData:
    """The claim's samples: its variant, its sample filter, its required modalities."""
    keep = np.ones(len(data.samples), dtype=bool)
    for index, sample in enumerate(data.samples):
        if spec.variant is not None and sample.variant not in (None, spec.variant):
            keep[index] = False
        if sample.modality not in spec.requires_modalities:
            keep[index] = False
        for axis, allowed in spec.sample_filter.items():
            if sample.label(axis) not in allowed:
                keep[index] = False
    return data.subset(keep)


def calibration_reference() -> dict[str, Any]:
    """The calibration file the constants were fixed by, and the commit that last changed it."""
    import json
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
    created = json.loads(CALIBRATION_FILE.read_text()).get("created")
    return {"file": str(CALIBRATION_FILE.name), "commit": commit, "created": created}


def gate(data: ClaimData) -> list[str]:
    """Pipeline-gate problems (CLAIMS.md): identical latents for distinct inputs, NaN/inf, collapse."""
    problems = check_latents(data.latents, layer_names=data.layers, input_ids=None)
    messages = [f"{p.code}@{p.layer}: {p.message}" for p in problems]
    ids_text = [sample.text + "|" + (sample.audio_sha256 or "") for sample in data.samples]
    # Distinct inputs must differ somewhere after emb: same text+audio is allowed to coincide.
    after_emb = data.latents[:, 1:].reshape(len(data.samples), -1)
    _, first_index, inverse = np.unique(after_emb, axis=0, return_index=True, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    for row, group in enumerate(inverse):
        original = first_index[group]
        if original != row and ids_text[original] != ids_text[row]:
            messages.append(
                f"identical latents after emb for distinct inputs {data.samples[original].id!r} and "
                f"{data.samples[row].id!r} (did the audio reach the model?)"
            )
            break
    return messages


def evaluate_claim(
    spec: ClaimSpec,
    *,
    latent_set: Any,
    probe_set: ProbeSet,
    profile: str,
    seed: int,
    model_modalities: tuple[str, ...],
    model_languages: tuple[str, ...] | None,
    reference_verdict: Verdict | None = None,
    budget: Budget | None = None,
) -> ClaimRecord:
    """Evaluate ``spec`` on a model's latents of ``probe_set`` and return the record (not yet saved)."""
    started = time.perf_counter()
    provenance = latent_set.manifest.provenance
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
        "template": latent_set.manifest.template,
        "template_rendered": provenance.templates.get(latent_set.manifest.template, {}),
        "variant": spec.variant,
        "dtype": provenance.dtype,
        "device": provenance.device,
        "seed": seed,
        "calibration": calibration_reference(),
        "versions": library_versions(),
        "git_commit": git_commit(),
        "caveats": [*spec.caveats, *probe_set.caveats],
        "created": utc_now(),
    }
    expectation = lookup_expectation(
        spec, provenance.model, provenance.revision, provenance.probe_set_hash, latent_set.manifest.template
    )
    base["expectation"] = expectation
    reason = applicability(spec, model_modalities, model_languages)
    if reason is not None:
        return _record(base, "n/a", reason, None, expectation, started)
    data = select(spec, claim_data_from(latent_set, probe_set))
    if len(data.samples) < 4:
        return _record(
            base,
            "error",
            f"only {len(data.samples)} samples selected for the claim",
            None,
            expectation,
            started,
        )
    problems = gate(data)
    if problems:
        return _record(base, "error", "pipeline gate: " + "; ".join(problems[:5]), None, expectation, started)
    measures = load_measures()
    measure = measures.get(spec.statistic)
    rng = np.random.default_rng(seed)
    measurement: Measurement = measure(data, spec.measure_params, rng, budget or Budget.for_profile(profile))
    verdict, why = decide(spec.rule, measurement, reference_verdict=reference_verdict)
    if spec.reference:
        base["reference"] = {"claim": spec.reference, "verdict": reference_verdict or "missing"}
    return _record(base, verdict, why, measurement, expectation, started)


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
    for folder, pattern in (("claims", "*.py"), ("claims/specs", "*.yaml"), ("stats", "*.py")):
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
    reference_verdict: Verdict | None,
    budget: Budget,
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
        "probe_set": probe_set.content_hash(),
        "profile": profile,
        "seed": seed,
        "budget": [budget.n_perm, budget.n_resamples, budget.n_perm_resample, budget.name],
        "modalities": list(model_modalities),
        "languages": list(model_languages) if model_languages is not None else None,
        "reference": reference_verdict,
        "code": verdict_code_sha256(),
        "versions": library_versions(),
        "calibration": _file_sha256(CALIBRATION_FILE),
        "expectations": _file_sha256(expectations_path()),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()
