"""Claims of the paper's text findings, one test per claim and model (ids: claim-id[model])."""

from __future__ import annotations

import pytest

from benchmark.claims.outcome import check_record
from benchmark.claims.record import ClaimRecord

SECTION = "text"


def test_claim(claim_record: ClaimRecord, pytestconfig: pytest.Config) -> None:
    check_record(claim_record, strict=pytestconfig.getoption("--strict-claims"))


def test_cross_model_claim(cross_record: ClaimRecord, pytestconfig: pytest.Config) -> None:
    """T7 for each fitting pair of selected models (Qwen2-Audio ~ an Ultravox-LLaMA); none among the defaults."""
    check_record(cross_record, strict=pytestconfig.getoption("--strict-claims"))
