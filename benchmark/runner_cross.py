"""Cross-model claims (T7): decided from two models' per-model records, id ``CLAIM[modelA~modelB]``."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from benchmark.claims.record import ClaimRecord
from benchmark.claims.registry import all_claims
from benchmark.claims.verdict import decide

if TYPE_CHECKING:
    from benchmark.runner import ClaimSession

#: per-model claim whose measurement a cross-model aggregate reads
BASE_CLAIM = {"T7-training-mix-shifts-cjk": "T6-related-languages-overlap"}


def _family(session: ClaimSession, model: str) -> str:
    return session.adapter(model).spec.family


def evaluate_cross_model(session: ClaimSession, models: list[str]) -> list[ClaimRecord]:
    """Every cross-model claim for each (A, B) pair whose families match the spec; none when no pair fits."""
    records = []
    for spec in all_claims():
        if not spec.cross_model or spec.id not in BASE_CLAIM:
            continue
        family_a = str(spec.params.get("model_a_expected_smaller", ""))
        family_b = str(spec.params.get("model_b_expected_larger", "")).split("-")[0]
        module, _, name = str(spec.params["aggregate"]).partition(":")
        aggregate = getattr(importlib.import_module(module), name)
        for model_a in models:
            for model_b in models:
                if model_a == model_b or not _family(session, model_a).startswith(family_a):
                    continue
                if not _family(session, model_b).startswith(family_b):
                    continue
                rec_a = session.record(BASE_CLAIM[spec.id], model_a)
                rec_b = session.record(BASE_CLAIM[spec.id], model_b)
                if rec_a.measurement is None or rec_b.measurement is None:
                    continue
                measurement = aggregate(rec_a.measurement, rec_b.measurement, alpha=spec.rule.alpha)
                verdict, why = decide(spec.rule, measurement)
                records.append(rec_a.model_copy(update={
                    "claim_id": f"{spec.id}[{model_a}~{model_b}]", "claim_version": spec.version,
                    "claim_fingerprint": spec.fingerprint(), "title": spec.title, "paper": spec.paper,
                    "rule": spec.rule.model_dump(mode="json"), "model": f"{model_a}~{model_b}",
                    "verdict": verdict, "reason": why, "measurement": measurement, "expectation": None,
                    "meets_expectation": None,
                }))
    return records
