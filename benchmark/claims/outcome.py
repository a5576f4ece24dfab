"""Maps a claim record to a pytest outcome (the claims issue's outcome mapping)."""

from __future__ import annotations

import warnings

import pytest

from benchmark.claims.record import ClaimRecord


class TemplateDependentWarning(UserWarning):
    """A claim holds under one template and fails under another on this model."""


def check_record(record: ClaimRecord) -> None:
    """Assert a record against its expectation, skipping (with the reason) what is not a tested finding."""
    __tracebackhide__ = True
    label = f"{record.claim_id} on {record.model} ({record.template})"
    if record.template_dependent:
        warnings.warn(
            TemplateDependentWarning(
                f"{label}: template-dependent ({record.verdict} here, the opposite finding "
                "under another template)"
            ),
            stacklevel=2,
        )
    if record.verdict in ("n/a", "inconclusive"):
        pytest.skip(f"{record.verdict}: {record.reason}")
    if record.expectation is None:
        pytest.skip(f"{record.verdict} (no recorded expectation, reported only): {record.reason}")
    dependent = " [template-dependent]" if record.template_dependent else ""
    assert record.verdict == record.expectation.verdict, (
        f"{label}{dependent}: verdict {record.verdict!r} but expected {record.expectation.verdict!r} "
        f"({record.expectation.status}, {record.expectation.source}); {record.reason}"
    )
