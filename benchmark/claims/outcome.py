"""Maps a claim record to a pytest outcome.

- a finding (holds/fails) that leaves its expectation fails;
- a finding expected as holds or fails that came out ``inconclusive`` has **decayed**: a skip that says so with
  the effect and interval, and a failure under ``strict`` (the nightly runs strict), since a collapse of a
  finding into noise is a regression even when it never flips;
- ``n/a``, other ``inconclusive`` results and findings with no recorded expectation are skips with the reason;
- a pipeline error is raised by the fixture (a pytest error, not a failure).
"""

from __future__ import annotations

import warnings

import pytest

from benchmark.claims.record import ClaimRecord


class TemplateDependentWarning(UserWarning):
    """A claim holds under one template and fails under another on this model."""


class DecayedWarning(UserWarning):
    """A finding expected as holds or fails came out inconclusive (shown in JUnit and the warnings summary)."""


def decayed(record: ClaimRecord) -> bool:
    """Expected a finding, got inconclusive."""
    return record.verdict == "inconclusive" and record.expectation is not None


def decay_text(record: ClaimRecord) -> str:
    m = record.measurement
    where = f"effect {m.effect:.4g} [{m.ci_low:.4g}, {m.ci_high:.4g}]" if m else "no measurement"
    exp = record.expectation
    assert exp is not None
    return f"decayed: expected {exp.verdict} ({exp.status}, {exp.source}), got inconclusive, {where}"


def check_record(record: ClaimRecord, *, strict: bool = False) -> None:
    """Assert a record against its expectation, skipping (with the reason) what is not a tested finding."""
    __tracebackhide__ = True
    label = f"{record.claim_id} on {record.model} ({record.template}, {record.variant or 'no variant'})"
    dependent = " [template-dependent]" if record.template_dependent else ""
    if record.template_dependent:
        warnings.warn(
            TemplateDependentWarning(
                f"{label}: template-dependent ({record.verdict} here, the opposite finding under another template)"
            ),
            stacklevel=2,
        )
    if decayed(record):
        warnings.warn(DecayedWarning(f"{label}: {decay_text(record)}"), stacklevel=2)
        if strict:
            pytest.fail(f"{label}{dependent}: {decay_text(record)}; {record.reason}")
        pytest.skip(f"{decay_text(record)}; {record.reason}")
    if record.verdict in ("n/a", "inconclusive"):
        pytest.skip(f"{record.verdict}: {record.reason}")
    if record.expectation is None:
        pytest.skip(f"{record.verdict} (no recorded expectation, reported only): {record.reason}")
    assert record.verdict == record.expectation.verdict, (
        f"{label}{dependent}: verdict {record.verdict!r} but expected {record.expectation.verdict!r} "
        f"({record.expectation.status}, {record.expectation.source}); {record.reason}"
    )
