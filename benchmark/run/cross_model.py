"""Cross-model claims (T7): decided from two models' per-model records, id ``CLAIM[modelA~modelB]``.

A cross-model record is keyed like any other: model ``A~B``, revision ``revA~revB``, the shared probe-set hash
and template, so expectations (paper or measured) match it the same way and it lands in the same store.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from benchmark.claims.expectations import lookup_expectation
from benchmark.claims.record import ClaimRecord
from benchmark.claims.registry import all_claims
from benchmark.claims.spec import ClaimSpec
from benchmark.claims.store import record_path
from benchmark.claims.verdict import decide


class RecordSource(Protocol):
    """What a cross-model evaluation needs of a claim session: per-model records, adapters, the store."""

    def record(self, claim_id: str, model: str) -> ClaimRecord: ...

    def adapter(self, model: str) -> Any: ...

    @property
    def results_dir(self) -> Path: ...


#: per-model claim whose measurement a cross-model aggregate reads
BASE_CLAIM = {"T7-training-mix-shifts-cjk": "T6-related-languages-overlap"}


def cross_model_specs() -> list[ClaimSpec]:
    return [spec for spec in all_claims() if spec.cross_model and spec.id in BASE_CLAIM]


def cross_model_pairs(
    spec: ClaimSpec, models: list[str], family_of: Callable[[str], str]
) -> list[tuple[str, str]]:
    """Ordered pairs (A, B) of distinct selected models whose families fit the spec's two roles."""
    family_a = str(spec.params.get("model_a_expected_smaller", ""))
    family_b = str(spec.params.get("model_b_expected_larger", "")).split("-")[0]
    return [
        (a, b)
        for a in models
        for b in models
        if a != b and family_of(a).startswith(family_a) and family_of(b).startswith(family_b)
    ]


def evaluate_cross_pair(session: RecordSource, spec: ClaimSpec, model_a: str, model_b: str) -> ClaimRecord:
    """Aggregate the two base records into ``spec``'s record for (A, B), look up its expectation, save it."""
    rec_a = session.record(BASE_CLAIM[spec.id], model_a)
    rec_b = session.record(BASE_CLAIM[spec.id], model_b)
    pair, revision = f"{model_a}~{model_b}", f"{rec_a.revision}~{rec_b.revision}"
    expectation = lookup_expectation(spec, pair, revision, rec_a.probe_set_hash, rec_a.template)
    update = {
        "claim_id": f"{spec.id}[{pair}]",
        "claim_version": spec.version,
        "claim_fingerprint": spec.fingerprint(),
        "title": spec.title,
        "paper": spec.paper,
        "rule": spec.rule.model_dump(mode="json"),
        "model": pair,
        "revision": revision,
        "expectation": expectation,
        "meets_expectation": None,
    }
    if rec_a.measurement is None or rec_b.measurement is None:
        missing = [r.model for r in (rec_a, rec_b) if r.measurement is None]
        verdict = "error" if "error" in (rec_a.verdict, rec_b.verdict) else "n/a"
        update.update(
            verdict=verdict,
            measurement=None,
            reason=f"{BASE_CLAIM[spec.id]} has no measurement on {missing} "
            f"({rec_a.verdict} / {rec_b.verdict})",
        )
    else:
        module, _, name = str(spec.params["aggregate"]).partition(":")
        aggregate = getattr(importlib.import_module(module), name)
        measurement = aggregate(rec_a.measurement, rec_b.measurement, alpha=spec.rule.alpha)
        verdict, why = decide(spec.rule, measurement)
        update.update(verdict=verdict, reason=why, measurement=measurement)
        if expectation is not None and verdict in ("holds", "fails"):
            update["meets_expectation"] = verdict == expectation.verdict
    record = rec_a.model_copy(update=update)
    record.save(
        record_path(session.results_dir, pair, revision, record.probe_set_hash, spec.id, spec.version)
    )
    return record


def evaluate_cross_model(session: RecordSource, models: list[str]) -> list[ClaimRecord]:
    """Every cross-model claim for each (A, B) pair whose families match the spec; none when no pair fits."""

    def family(model: str) -> str:
        return session.adapter(model).spec.family

    return [
        evaluate_cross_pair(session, spec, a, b)
        for spec in cross_model_specs()
        for a, b in cross_model_pairs(spec, models, family)
    ]
