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


def _pytest_claims(results: Path, jobs: int) -> dict[str, tuple[str, float | None]]:
    import json
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "claims/", "-k", CLAIMS[1]]
    argv += ["--model", MODEL, "--profile", "ci", "--device", "cpu", "--results", str(results)]
    argv += ["--claim-jobs", str(jobs)]
    done = subprocess.run(
        argv, cwd=repo, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=900
    )
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    out = {}
    for path in results.rglob("*.json"):
        record = json.loads(path.read_text(encoding="utf-8"))
        if "claim_id" in record:
            effect = (record.get("measurement") or {}).get("effect")
            out[str(path.relative_to(results))] = (record["verdict"], effect)
    return out


def test_pytest_claims_with_workers_writes_the_serial_records(tmp_path: Path) -> None:
    """``pytest claims/ --claim-jobs 2`` (statistics computed for the selected cases before the first test)
    stores the same records as ``--claim-jobs 1``."""
    serial = _pytest_claims(tmp_path / "serial", 1)
    parallel = _pytest_claims(tmp_path / "parallel", 2)
    assert serial and parallel == serial


def test_a_failure_inside_a_worker_is_that_claims_error_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Statistics that raise in a worker give that claim an ``error`` record naming the stage; the pool keeps
    working for the other claims (an exception that did not pickle back would have broken it)."""
    real = ClaimSession._prepare

    def broken_for_t3(self, spec, model, template, variant):  # type: ignore[no-untyped-def]
        prepared = real(self, spec, model, template, variant)
        if spec.id == CLAIMS[1] and isinstance(prepared, runner._Pending):
            prepared.inputs["latent_set"] = None  # evaluate_claim raises on it, inside the worker
        return prepared

    monkeypatch.setattr(ClaimSession, "_prepare", broken_for_t3)
    session = ClaimSession(SessionOptions(profile="ci", results=tmp_path / "r", device="cpu"))
    try:
        session.evaluate_many([m for c in CLAIMS for m in session.planned(c, MODEL)], jobs=2)
    finally:
        session.close()
    broken = [r for memo, r in session._records.items() if memo[0] == CLAIMS[1]]
    others = [r for memo, r in session._records.items() if memo[0] != CLAIMS[1]]
    assert broken and all(r.verdict == "error" and r.reason.startswith("statistics failed: ") for r in broken)
    assert others and all(r.verdict != "error" for r in others), [r.reason for r in others]
