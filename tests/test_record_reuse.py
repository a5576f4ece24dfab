"""A warm rerun reuses a stored record only when every input of its evaluation is the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import benchmark.run.session as runner
from benchmark.run.session import ClaimSession, SessionOptions

CLAIM, MODEL = "T1-paraphrase-closer", "gemma-3-270m-q4km"


def _count_evaluations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = runner.evaluate_claim

    def counting(spec, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(spec.id)
        return real(spec, **kwargs)

    monkeypatch.setattr(runner, "evaluate_claim", counting)
    return calls


def test_stored_record_is_reused_until_an_input_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "results"
    calls = _count_evaluations(monkeypatch)
    first = ClaimSession(SessionOptions(profile="ci", results=results, device="cpu")).record(CLAIM, MODEL)
    assert calls == [CLAIM] and len(first.evaluation_key) == 64

    again = ClaimSession(SessionOptions(profile="ci", results=results, device="cpu")).record(CLAIM, MODEL)
    assert calls == [CLAIM], "a second run with the same inputs must not evaluate again"
    assert again.model_dump() == first.model_dump()

    other_seed = ClaimSession(SessionOptions(profile="ci", results=results, device="cpu", seed=7)).record(
        CLAIM, MODEL
    )
    assert calls == [CLAIM, CLAIM] and other_seed.evaluation_key != first.evaluation_key

    expectations = tmp_path / "expectations.json"
    expectations.write_text(json.dumps({"schema": "expectations/1", "entries": []}))
    monkeypatch.setenv("LALM_BENCH_EXPECTATIONS", str(expectations))
    ClaimSession(SessionOptions(profile="ci", results=results, device="cpu", seed=7)).record(CLAIM, MODEL)
    assert calls == [CLAIM, CLAIM, CLAIM], "new expectations must be looked up by a new evaluation"

    no_cache = SessionOptions(profile="ci", results=results, device="cpu", seed=7, use_cache=False)
    ClaimSession(no_cache).record(CLAIM, MODEL)
    assert len(calls) == 4, "--no-cache recomputes"
