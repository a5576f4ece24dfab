"""Release comparison: each claim's effect on a model minus the same claim's effect on a reference model.

Paired when both records decide on one part and store its delete-one-unit jackknife replicates over the same
unit levels (``payloads["parts"]``; the same probe set gives the same meanings, transcripts or speakers): the
difference's replicates are the unit-by-unit differences, and its one-sided bounds at the rule's alpha come from
the same studentised jackknife the claims use (:mod:`benchmark.stats.kit`), as for the cross-model claims.
Otherwise (several parts reduced by min/max, other units) unpaired: the two effects as independent normals with
the records' standard errors (or, when a record has none, the one recovered from its one-sided bounds), which is
conservative when the models' estimates are positively correlated. The table says which method gave each
interval. This is arithmetic on stored numbers, not a new statistic over latents.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from benchmark.claims.record import ClaimRecord
from benchmark.report._common import ReportError, confidence_level
from benchmark.stats.kit import Estimate


@dataclass(frozen=True)
class Delta:
    """``effect(model) - effect(reference)`` for one claim, with its interval and how it was obtained."""

    claim_id: str
    claim_version: int
    model: str
    revision: str
    template: str
    variant: str | None
    primary: bool
    reference_model: str
    reference_revision: str
    effect: float
    reference_effect: float
    delta: float
    ci_low: float
    ci_high: float
    level: float  # of each one-sided bound
    method: str
    note: str = ""

    @property
    def excludes_zero(self) -> bool:
        return self.ci_low > 0 or self.ci_high < 0


@dataclass
class Comparison:
    """All deltas against one reference, and the claims that could not be compared (with why)."""

    target: str
    reference_model: str
    reference_revision: str
    deltas: list[Delta] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (claim, model, reason)
    #: the reference's records by (claim, template, variant)
    reference_records: dict[tuple[str, str, str | None], ClaimRecord] = field(default_factory=dict)


def parse_target(target: str) -> tuple[str, str | None]:
    """``MODEL[@REV]`` -> (model, revision prefix or None)."""
    model, _, revision = target.partition("@")
    if not model:
        raise ReportError(f"--compare-to expects MODEL[@REVISION]; got {target!r}")
    return model, revision or None


def _single_part(record: ClaimRecord) -> dict[str, Any] | None:
    parts = record.measurement.payloads.get("parts") if record.measurement else None
    if not isinstance(parts, dict) or len(parts) != 1:
        return None
    part = next(iter(parts.values()))
    return part if isinstance(part, dict) and {"levels", "replicates"} <= part.keys() else None


def _se(record: ClaimRecord, alpha: float) -> float:
    m = record.measurement
    assert m is not None
    if m.se is not None and math.isfinite(m.se):
        return float(m.se)
    return (m.ci_high - m.ci_low) / (2 * NormalDist().inv_cdf(1 - alpha))


def paired_delta(record: ClaimRecord, reference: ClaimRecord) -> tuple[float, float, str, str]:
    """(low, high, method, note) of ``record - reference``: one-sided bounds at the rule's alpha each, paired
    by unit when possible, else unpaired."""
    assert record.measurement is not None and reference.measurement is not None
    alpha = 1.0 - confidence_level(record)
    delta = record.measurement.effect - reference.measurement.effect
    a, b = _single_part(record), _single_part(reference)
    if a is not None and b is not None and a["levels"] == b["levels"]:
        replicates = {
            unit: np.asarray(a["replicates"][unit], dtype=float) - np.asarray(reps, dtype=float)
            for unit, reps in b["replicates"].items()
        }
        estimate = Estimate(value=delta, replicates=replicates, null=np.zeros(1))
        low, high = estimate.bounds(alpha)
        units = ", ".join(f"{len(v)} {u}" for u, v in a["levels"].items())
        return low, high, "paired jackknife", f"differences unit by unit over {units}"
    why = (
        "unit levels differ"
        if a is not None and b is not None
        else "the effect reduces several parts (or a record stores no part replicates)"
    )
    half = NormalDist().inv_cdf(1 - alpha) * math.sqrt(_se(record, alpha) ** 2 + _se(reference, alpha) ** 2)
    return delta - half, delta + half, "unpaired normal approx.", f"{why}; standard errors of the two records"


def _match_key(record: ClaimRecord) -> tuple[object, ...]:
    return (record.claim_id, record.claim_version, record.template, record.variant, record.profile)


def compare_records(records: Sequence[ClaimRecord], target: str) -> Comparison:
    """Deltas of every other model's claims against ``target`` (``MODEL[@REV]``), on the same probe set."""
    model, revision = parse_target(target)
    candidates = [
        r for r in records if r.model == model and (revision is None or r.revision.startswith(revision))
    ]
    if not candidates:
        known = sorted({f"{r.model}@{r.revision[:12]}" for r in records})
        raise ReportError(
            f"--compare-to {target!r}: no records of that model among the inputs; pass its "
            f"results folder too. Models present: {', '.join(known) or 'none'}"
        )
    revisions = sorted({r.revision for r in candidates})
    if len(revisions) > 1:
        raise ReportError(
            f"--compare-to {target!r} matches revisions {', '.join(x[:12] for x in revisions)}; "
            f"add @REVISION to pick one"
        )
    references = {_match_key(r): r for r in candidates}
    comparison = Comparison(
        target,
        model,
        revisions[0],
        reference_records={(r.claim_id, r.template, r.variant): r for r in candidates},
    )
    for record in records:
        if record.model == model:
            continue
        reference = references.get(_match_key(record))
        if reference is None:
            comparison.skipped.append(
                (
                    record.claim_id,
                    f"{record.model} [{record.template}]",
                    f"no record of {model} for this claim, version, template, variant and profile",
                )
            )
            continue
        if reference.probe_set_hash != record.probe_set_hash:
            comparison.skipped.append(
                (
                    record.claim_id,
                    f"{record.model} [{record.template}]",
                    f"different probe sets ({record.probe_set_hash[:12]} vs {reference.probe_set_hash[:12]})",
                )
            )
            continue
        if record.measurement is None or reference.measurement is None:
            verdicts = f"{record.verdict} vs {reference.verdict}"
            comparison.skipped.append(
                (record.claim_id, f"{record.model} [{record.template}]", f"no effect to compare ({verdicts})")
            )
            continue
        low, high, method, note = paired_delta(record, reference)
        comparison.deltas.append(
            Delta(
                claim_id=record.claim_id,
                claim_version=record.claim_version,
                model=record.model,
                revision=record.revision,
                template=record.template,
                variant=record.variant,
                primary=record.primary_template and record.primary_variant,
                reference_model=model,
                reference_revision=reference.revision,
                effect=record.measurement.effect,
                reference_effect=reference.measurement.effect,
                delta=record.measurement.effect - reference.measurement.effect,
                ci_low=low,
                ci_high=high,
                level=confidence_level(record),
                method=method,
                note=note,
            )
        )
    return comparison
