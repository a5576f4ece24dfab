"""Claims of the paper's text findings, one test per claim and model (ids: claim-id[model])."""

from __future__ import annotations

from benchmark.claims.outcome import check_record
from benchmark.claims.record import ClaimRecord

SECTION = "text"


def test_claim(claim_record: ClaimRecord) -> None:
    check_record(claim_record)


def test_cross_model_claim(cross_record: ClaimRecord) -> None:
    """T7 for each fitting pair of selected models (Qwen2-Audio ~ an Ultravox-LLaMA); none among the defaults."""
    check_record(cross_record)
