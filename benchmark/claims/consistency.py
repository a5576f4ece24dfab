"""Verdict consistency of one model's claims across two profiles (e.g. ``ci`` against ``ci-alt``).

Why: a verdict should not hinge on the particular sentences or voices of one probe set. On another set of the
same design (``ci-alt``: other sentences, other voices where the set has them) the same model may give the same
verdict, or an inconclusive or n/a one, but never the opposite finding (``holds`` against ``fails``). This
module pairs the two profiles' records per (model, claim) and names the relation; it reads verdicts only and
never recomputes a statistic. ``lalm-bench consistency`` (:func:`benchmark.run.session.consistency_main`) prints
the pairs and exits non-zero when any pair is opposite or errored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from benchmark.claims.record import FINDINGS, ClaimRecord
from benchmark.core.errors import BenchError

#: ``agree``: the same verdict; ``inconclusive``: one side (or both, differently) inconclusive or n/a;
#: ``error``: a side whose measurement is broken; ``opposite``: holds on one profile, fails on the other.
Relation = Literal["agree", "inconclusive", "error", "opposite"]
RELATIONS: tuple[Relation, ...] = ("agree", "inconclusive", "error", "opposite")


class ConsistencyError(BenchError):
    """The two sides cannot be paired: a record is missing or listed twice; the message names the claim."""


@dataclass(frozen=True)
class VerdictRow:
    """The part of a claim record the comparison needs (tests build these directly)."""

    claim_id: str
    model: str
    profile: str
    verdict: str
    effect: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    probe_set: str = ""
    probe_set_hash: str = ""
    reason: str = ""
    template: str = ""
    variant: str | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        """(model, claim, template, variant): one evaluation of a claim (claims run under several templates)."""
        return (self.model, self.claim_id, self.template, self.variant or "")

    @classmethod
    def from_record(cls, record: ClaimRecord) -> VerdictRow:
        m = record.measurement
        return cls(
            claim_id=record.claim_id,
            model=record.model,
            profile=record.profile,
            verdict=record.verdict,
            effect=m.effect if m else None,
            ci_low=m.ci_low if m else None,
            ci_high=m.ci_high if m else None,
            probe_set=record.probe_set,
            probe_set_hash=record.probe_set_hash,
            reason=record.reason,
            template=record.template,
            variant=record.variant,
        )


@dataclass(frozen=True)
class Pair:
    """One claim on one model under both profiles, and how the two verdicts relate."""

    model: str
    claim_id: str
    a: VerdictRow
    b: VerdictRow
    relation: Relation

    @property
    def template(self) -> str:
        return self.a.template

    @property
    def variant(self) -> str | None:
        return self.a.variant


def relation(verdict_a: str, verdict_b: str) -> Relation:
    """How two verdicts of the same claim relate; only holds against fails is a contradiction."""
    if {verdict_a, verdict_b} == set(FINDINGS):
        return "opposite"
    if "error" in (verdict_a, verdict_b):
        return "error"
    if verdict_a == verdict_b:
        return "agree"
    return "inconclusive"


def _index(rows: Iterable[VerdictRow], profile: str) -> dict[tuple[str, str, str, str], VerdictRow]:
    indexed: dict[tuple[str, str, str, str], VerdictRow] = {}
    for row in rows:
        if row.profile != profile:
            raise ConsistencyError(
                f"claim {row.claim_id!r} on {row.model!r}: record of profile {row.profile!r} among the "
                f"{profile!r} records"
            )
        if row.key in indexed:
            raise ConsistencyError(
                f"claim {row.claim_id!r} on {row.model!r} ({row.template or 'no template'}, "
                f"{row.variant or 'no variant'}): two {profile!r} records; pass one"
            )
        indexed[row.key] = row
    return indexed


def compare_profiles(
    rows_a: Iterable[VerdictRow],
    rows_b: Iterable[VerdictRow],
    *,
    profile_a: str,
    profile_b: str,
    expected: Iterable[tuple[str, str]] | None = None,
) -> list[Pair]:
    """Pair the records of ``profile_a`` and ``profile_b`` per (model, claim, template, variant), sorted.

    ``expected`` lists (model, claim) keys that must have records on both sides; every evaluation seen on one
    side must also be on the other. A missing record raises :class:`ConsistencyError` naming each missing
    claim, model, template and profile, so a partial run is never read as consistent.
    """
    if profile_a == profile_b:
        raise ConsistencyError(f"both sides are profile {profile_a!r}; compare two different profiles")
    a, b = _index(rows_a, profile_a), _index(rows_b, profile_b)
    keys = sorted(a.keys() | b.keys())
    missing = [
        f"claim {claim!r} on {model!r}: no {profile!r} record" + (f" under {template}" if template else "")
        for model, claim, template, variant in keys
        for profile, side in ((profile_a, a), (profile_b, b))
        if (model, claim, template, variant) not in side
    ]
    for model, claim in sorted(set(expected or ())):
        for profile, side in ((profile_a, a), (profile_b, b)):
            if not any(k[0] == model and k[1] == claim for k in side):
                missing.append(f"claim {claim!r} on {model!r}: no {profile!r} record")
    if missing:
        raise ConsistencyError(f"{len(missing)} record(s) missing: " + "; ".join(missing))
    return [Pair(key[0], key[1], a[key], b[key], relation(a[key].verdict, b[key].verdict)) for key in keys]


def newest_rows(records: Sequence[ClaimRecord], *, profile: str, models: Sequence[str]) -> list[VerdictRow]:
    """One row per (model, claim, template, variant) of ``profile`` from stored records: the newest when a claim
    was run twice.

    Cross-model records (model pairs) are left out: they belong to no single model.
    """
    newest: dict[tuple[str, str, str, str], ClaimRecord] = {}
    for record in sorted(records, key=lambda r: r.created):
        if record.profile == profile and record.model in models:
            newest[(record.model, record.claim_id, record.template, record.variant or "")] = record
    return [VerdictRow.from_record(r) for r in newest.values()]


def counts(pairs: Sequence[Pair]) -> dict[str, int]:
    """Pairs per relation (every relation listed, zeros included) and how many agree on a finding."""
    tally = Counter(p.relation for p in pairs)
    result = {name: tally.get(name, 0) for name in RELATIONS}
    result["agree_on_finding"] = sum(1 for p in pairs if p.relation == "agree" and p.a.verdict in FINDINGS)
    return result


def exit_code(pairs: Sequence[Pair]) -> int:
    """1 when any pair is opposite or errored (consistency cannot be shown), else 0."""
    return 1 if any(p.relation in ("opposite", "error") for p in pairs) else 0
