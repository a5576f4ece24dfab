"""Cross-model claims (T7): decided from two models' per-model records, id ``CLAIM[modelA~modelB]``.

A cross-model claim is data like any other (``measure.shape: cross_model`` names its base claim and part, and the
model-family prefixes of its two roles), so a user adds one by dropping a YAML file. Its record is keyed like any
other: model ``A~B``, revision ``revA~revB``, the shared probe-set hash, template and variant, so expectations
(paper or measured) match it the same way and it lands in the same store.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from benchmark.claims.evaluate import calibration_reference, combined_reference
from benchmark.claims.expectations import lookup_expectation
from benchmark.claims.record import ClaimRecord
from benchmark.claims.registry import all_claims
from benchmark.claims.shapes.cross_model import difference
from benchmark.claims.spec import ClaimSpec, CrossModel
from benchmark.claims.store import record_path
from benchmark.claims.verdict import decide
from benchmark.core.provenance import utc_now


class RecordSource(Protocol):
    """What a cross-model evaluation needs of a claim session: per-model records, adapters, the store."""

    def record(
        self, claim_id: str, model: str, template: str | None = None, variant: str | None = None
    ) -> ClaimRecord: ...

    def adapter(self, model: str) -> Any: ...

    @property
    def results_dir(self) -> Path: ...


def cross_model_specs() -> list[ClaimSpec]:
    return [spec for spec in all_claims() if isinstance(spec.measure, CrossModel)]


def cross_model_pairs(
    spec: ClaimSpec, models: list[str], family_of: Callable[[str], str]
) -> list[tuple[str, str]]:
    """Ordered pairs (A, B) of distinct selected models whose names or families fit the spec's two roles."""
    measure = spec.measure
    assert isinstance(measure, CrossModel)

    def fits(model: str, prefix: str) -> bool:
        return model.startswith(prefix) or family_of(model).startswith(prefix)

    return [
        (a, b)
        for a in models
        for b in models
        if a != b and fits(a, measure.role_a) and fits(b, measure.role_b)
    ]


def evaluate_cross_pair(
    session: RecordSource, spec: ClaimSpec, model_a: str, model_b: str, template: str
) -> ClaimRecord:
    """Aggregate the two base records into ``spec``'s record for (A, B), look up its expectation, save it."""
    measure = spec.measure
    assert isinstance(measure, CrossModel)
    rec_a = session.record(measure.base_claim, model_a, template)
    rec_b = session.record(measure.base_claim, model_b, template)
    pair, revision = f"{model_a}~{model_b}", f"{rec_a.revision}~{rec_b.revision}"
    expectation = lookup_expectation(
        spec, pair, revision, rec_a.probe_set_hash, template, variant=rec_a.variant
    )
    update: dict[str, Any] = {
        "claim_id": f"{spec.id}[{pair}]",
        "claim_version": spec.version,
        "claim_fingerprint": spec.fingerprint(),
        "title": spec.title,
        "paper": spec.paper,
        "section": spec.section,
        "rule": spec.rule.model_dump(mode="json"),
        "model": pair,
        "revision": revision,
        "expectation": expectation,
        "meets_expectation": None,
        "calibration": calibration_reference(),
        "caveats": list(spec.caveats),
        "secondary": {},
        "created": utc_now(),
    }
    if rec_a.measurement is None or rec_b.measurement is None:
        missing = [r.model for r in (rec_a, rec_b) if r.measurement is None]
        verdict = "error" if "error" in (rec_a.verdict, rec_b.verdict) else "n/a"
        update |= {
            "verdict": verdict,
            "measurement": None,
            "reason": f"{measure.base_claim} has no measurement on {missing} ({rec_a.verdict} / {rec_b.verdict})",
        }
    else:
        from benchmark.claims.data import Budget
        from benchmark.claims.evaluate import measurement_of

        measured = difference(measure, rec_a.measurement, rec_b.measurement)
        decision = decide(
            spec.rule, measured.reduction, model=pair, reference_verdict=combined_reference([], {})
        )
        update |= {
            "verdict": decision.verdict,
            "reason": decision.reason,
            "measurement": measurement_of(
                measured, decision, Budget(rec_a.measurement.n_perm, 1, "cross"), spec.rule.alpha
            ),
        }
        if expectation is not None and decision.verdict in ("holds", "fails"):
            update["meets_expectation"] = decision.verdict == expectation.verdict
    record = rec_a.model_copy(update=update)
    record.save(
        record_path(
            session.results_dir,
            pair,
            revision,
            record.probe_set_hash,
            spec.id,
            spec.version,
            template,
            record.variant,
        )
    )
    return record


def evaluate_cross_model(
    session: RecordSource, models: list[str], templates: list[str] | None = None
) -> list[ClaimRecord]:
    """Every cross-model claim for each (A, B) pair whose families fit, under each of its templates."""

    def family(model: str) -> str:
        return session.adapter(model).spec.family

    return [
        evaluate_cross_pair(session, spec, a, b, template)
        for spec in cross_model_specs()
        for a, b in cross_model_pairs(spec, models, family)
        for template in spec.templates.run
        if templates is None or template in templates
    ]
