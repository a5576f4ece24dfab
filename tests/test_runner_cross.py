"""Cross-model claims (T7) end to end on two real offline models (Gemma, Whisper), standing in for Qwen and Ultravox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.claims.registry import get_claim
from benchmark.run.cross_model import cross_model_pairs, evaluate_cross_pair
from benchmark.run.session import ClaimSession, SessionOptions

T7 = "T7-training-mix-shifts-cjk"


def test_pairs_follow_the_spec_roles() -> None:
    u1, u8, u6 = "ultravox-0.5-llama-3.2-1b", "ultravox-0.5-llama-3.1-8b", "ultravox-0.6-llama-3.1-8b"
    family = {"q": "qwen2-audio", u1: "ultravox", u8: "ultravox", u6: "ultravox", "g": "gemma3"}.__getitem__
    pairs = cross_model_pairs(get_claim(T7), ["g", u1, "q", u8, u6], family)
    assert pairs == [("q", u1), ("q", u8)]  # the paper's pair is Qwen2-Audio vs Ultravox 0.5 only
    assert cross_model_pairs(get_claim(T7), ["g", u1], family) == []


@pytest.mark.parametrize("expected", ["holds", "fails"])
def test_pair_record_is_keyed_saved_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, expected: str
) -> None:
    session = ClaimSession(SessionOptions(profile="ci", results=tmp_path / "results", device="cpu"))
    a, b = "gemma-3-270m-q4km", "whisper-base-ct2"
    first = evaluate_cross_pair(session, get_claim(T7), a, b, "shared-suffix")
    assert first.claim_id == f"{T7}[{a}~{b}]" and first.model == f"{a}~{b}"
    assert first.verdict in ("holds", "fails", "inconclusive") and first.measurement is not None
    assert first.expectation is None and first.meets_expectation is None
    saved = list((tmp_path / "results").rglob(f"{T7}@*.json"))
    assert len(saved) == 1 and json.loads(saved[0].read_text())["model"] == f"{a}~{b}"

    entries = [
        {
            "claim": T7,
            "claim_version": get_claim(T7).version,
            "model": f"{a}~{b}",
            "revision": "*",
            "probe_set_hash": "*",
            "template": "shared-suffix",
            "verdict": expected,
            "status": "measured",
            "source": "test",
            "reason": "test",
        }
    ]
    path = tmp_path / "expectations.json"
    path.write_text(json.dumps({"schema": "expectations/1", "entries": entries}))
    monkeypatch.setenv("LALM_BENCH_EXPECTATIONS", str(path))
    again = evaluate_cross_pair(session, get_claim(T7), a, b, "shared-suffix")
    assert again.expectation is not None and again.expectation.verdict == expected
    if again.verdict in ("holds", "fails"):
        assert again.meets_expectation == (again.verdict == expected)
