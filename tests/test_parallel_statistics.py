"""``lalm-bench run --jobs N``: the claims' statistics in worker processes give the records a serial run gives.

The main job spreads claim statistics over worker processes (``ClaimSession.evaluate_many``); references are
evaluated before the claims that read their verdicts. Here a claim with references (M3, whose text reference
runs on the text model) and a plain one are evaluated serially and with two workers into separate result
stores, and every record must agree: verdict, reason, effect, interval and p-value.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import benchmark.run.session as runner
from benchmark.run.session import ClaimSession, SessionOptions

MODEL = "gemma-3-270m-q4km"
CLAIMS = ["M3-no-crossmodal-alignment", "T3-text-language-early-late"]


def _measured(record):  # type: ignore[no-untyped-def]
    m = record.measurement
    if m is None:
        return None
    return (m.effect, m.ci_low, m.ci_high, m.p_value)


def test_worker_statistics_equal_serial_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    serial = ClaimSession(SessionOptions(profile="ci", results=tmp_path / "serial", device="cpu"))
    for claim in CLAIMS:
        serial.claim_records(claim, MODEL)

    parallel = ClaimSession(SessionOptions(profile="ci", results=tmp_path / "parallel", device="cpu"))
    try:
        parallel.evaluate_many([m for c in CLAIMS for m in parallel.planned(c, MODEL)], jobs=2)
    finally:
        parallel.close()

    calls: list[str] = []
    monkeypatch.setattr(runner, "evaluate_claim", lambda spec, **kw: calls.append(spec.id))
    for claim in CLAIMS:
        parallel.claim_records(claim, MODEL)
    assert calls == [], "evaluate_many left records for the serial loop to compute"

    assert set(parallel._records) == set(serial._records)
    assert any(memo[0].startswith("M3-ref") for memo in parallel._records), "the references were evaluated"
    for memo, expected in serial._records.items():
        got = parallel._records[memo]
        assert (got.verdict, got.reason) == (expected.verdict, expected.reason), memo
        a, b = _measured(got), _measured(expected)
        assert (a is None) == (b is None), memo
        if a is not None and b is not None:
            for x, y in zip(a, b, strict=True):
                assert (x is None and y is None) or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12), memo
        assert got.evaluation_key == expected.evaluation_key, memo
    stored = sorted(p.relative_to(tmp_path / "parallel") for p in (tmp_path / "parallel").rglob("*.json"))
    assert stored, "every record computed in a worker is saved as it arrives"
