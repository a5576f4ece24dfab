"""Claims of the paper's demography findings, one test per claim and model (ids: claim-id[model])."""

from __future__ import annotations

import pytest

from benchmark.claims.outcome import check_record
from benchmark.claims.record import ClaimRecord

SECTION = "demography"


def test_claim(claim_record: ClaimRecord, pytestconfig: pytest.Config) -> None:
    check_record(claim_record, strict=pytestconfig.getoption("--strict-claims"))
