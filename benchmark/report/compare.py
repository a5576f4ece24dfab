"""Release comparison: each claim's effect on a model minus the same claim's effect on a reference model.

Paired when both records store the resample draws of their effect (``payloads["effect_draws"]``, drawn with
the same seed so draw i of both models used the same resample of the probe set): the interval is the
percentile interval of the paired differences. Otherwise unpaired: the difference of two independent normal
approximations recovered from the records' intervals, which is conservative when the draws are positively
correlated; the table says which method gave each interval. This is arithmetic on stored numbers, not a new
statistic over latents.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from benchmark.claims.record import ClaimRecord
from benchmark.report._common import ReportError, confidence_level

MIN_PAIRED_DRAWS = 50  # fewer draws make a percentile interval's tails meaningless


@dataclass(frozen=True)
class Delta:
    """``effect(model) - effect(reference)`` for one claim, with its interval and how it was obtained."""

    claim_id: str
    claim_version: int
    model: str
    revision: str
    reference_model: str
    reference_revision: str
    effect: float
    reference_effect: float
    delta: float
    ci_low: float
    ci_high: float
    level: float
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
    reference_records: dict[str, ClaimRecord] = field(default_factory=dict)


def parse_target(target: str) -> tuple[str, str | None]:
    """``MODEL[@REV]`` -> (model, revision prefix or None)."""
    model, _, revision = target.partition("@")
    if not model:
        raise ReportError(f"--compare-to expects MODEL[@REVISION]; got {target!r}")
    return model, revision or None


def _draws(record: ClaimRecord) -> np.ndarray | None:
    raw = record.measurement.payloads.get("effect_draws") if record.measurement else None
    if not isinstance(raw, list) or len(raw) < MIN_PAIRED_DRAWS:
        return None
    draws = np.asarray(raw, dtype=float)
    return draws if np.all(np.isfinite(draws)) else None


def paired_delta(record: ClaimRecord, reference: ClaimRecord) -> tuple[float, float, str, str]:
    """(low, high, method, note) of ``record - reference``: paired draws when possible, else unpaired."""
    assert record.measurement is not None and reference.measurement is not None
    level = confidence_level(record)
    a, b = _draws(record), _draws(reference)
    delta = record.measurement.effect - reference.measurement.effect
    why_unpaired = ""
    if a is not None and b is not None:
        if a.size != b.size:
            why_unpaired = f"draw counts differ ({a.size} vs {b.size})"
        elif record.seed != reference.seed:
            why_unpaired = f"resample seeds differ ({record.seed} vs {reference.seed})"
        else:
            tail = (1.0 - level) / 2
            low, high = np.quantile(a - b, [tail, 1.0 - tail])
            return float(low), float(high), "paired bootstrap", f"{a.size} paired draws"
    else:
        missing = [r.model for r, d in ((record, a), (reference, b)) if d is None]
        why_unpaired = "no effect_draws stored for " + ", ".join(missing)
    z = NormalDist().inv_cdf(0.5 + level / 2)
    se = [(r.measurement.ci_high - r.measurement.ci_low) / (2 * z) for r in (record, reference)]  # type: ignore[union-attr]
    half = z * math.sqrt(se[0] ** 2 + se[1] ** 2)
    return delta - half, delta + half, "unpaired normal approx.", why_unpaired + "; interval from the two CIs"


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
        target, model, revisions[0], reference_records={r.claim_id: r for r in candidates}
    )
    for record in records:
        if record.model == model:
            continue
        reference = references.get(_match_key(record))
        if reference is None:
            comparison.skipped.append(
                (
                    record.claim_id,
                    record.model,
                    f"no record of {model} for this claim, version, template and profile",
                )
            )
            continue
        if reference.probe_set_hash != record.probe_set_hash:
            comparison.skipped.append(
                (
                    record.claim_id,
                    record.model,
                    f"different probe sets ({record.probe_set_hash[:12]} vs {reference.probe_set_hash[:12]})",
                )
            )
            continue
        if record.measurement is None or reference.measurement is None:
            verdicts = f"{record.verdict} vs {reference.verdict}"
            comparison.skipped.append((record.claim_id, record.model, f"no effect to compare ({verdicts})"))
            continue
        low, high, method, note = paired_delta(record, reference)
        comparison.deltas.append(
            Delta(
                claim_id=record.claim_id,
                claim_version=record.claim_version,
                model=record.model,
                revision=record.revision,
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
