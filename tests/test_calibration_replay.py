"""Replays carry a calibration entry across code that decides its seeds the same, and only such code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.claims import registry
from benchmark.claims.calibrate import calibrate_claim, entry_key, run_controls
from benchmark.claims.data import Budget
from benchmark.claims.evaluate import select, verdict_code_sha256
from benchmark.claims.replay import (
    REPLAY_SEEDS,
    STORED_TOLERANCE_SE,
    carry,
    deviation_from_stored,
    digest,
    record,
    replay_seeds,
    seed_rows,
)
from benchmark.stats import kit
from tests.test_claim_specs import parallel_data

BUDGET = Budget(60, 8, "test")
SIZES = {"meaning_id": 12}


@pytest.fixture(scope="module")
def t3():
    return registry.get_claim("T3-text-language-early-late")


@pytest.fixture(scope="module")
def pool(t3):
    """The calibration-design tests' synthetic pool: 40 meanings x 4 languages."""
    return select(t3, parallel_data(n_meanings=40, strength=1.0, seed=3), "nopunct")


@pytest.fixture(scope="module")
def entry(t3, pool, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("replay") / "calibration.json"
    calibrate_claim(
        t3, pool, SIZES, size_name="ci", seeds=REPLAY_SEEDS + 2, budget=BUDGET, out=out, all_specs=[t3]
    )
    return json.loads(out.read_text())["entries"][entry_key(t3.id, pool.template, "ci")]


def test_the_calibration_records_the_digest_a_replay_reproduces(t3, pool, entry) -> None:
    """The replay decides its seeds exactly as the calibration did (same populations, draws and generators)."""
    assert entry["replay"]["seeds"] == list(range(REPLAY_SEEDS))
    rows = seed_rows(t3, pool, SIZES, replay_seeds(entry), BUDGET)
    assert len(rows) == 2 * REPLAY_SEEDS
    assert digest(rows) == entry["replay"]["digest"]
    assert deviation_from_stored(entry, rows)[1] is None


def test_unchanged_decisions_carry_the_entry_to_new_code(t3, pool, entry) -> None:
    rows = seed_rows(t3, pool, SIZES, replay_seeds(entry), BUDGET)
    old = {**entry, "code": "0" * 64}
    carried, message = carry(old, rows, code=verdict_code_sha256(), commit="abc", when="now")
    assert carried is not None and carried["code"] == verdict_code_sha256(), message
    assert (
        carried["carried"][-1]["from"] == "0" * 64 and carried["carried"][-1]["decisions"] == 2 * REPLAY_SEEDS
    )
    same, message = carry(entry, rows, code=entry["code"], commit="abc", when="now")
    assert same is entry and "already this code" in message


def test_a_changed_interval_is_not_carried(t3, pool, entry, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bounds a hair wider (one part in a billion) are other decisions: the entry stays with its own code."""
    original = kit.Estimate.bounds

    def wider(self: kit.Estimate, alpha: float) -> tuple[float, float]:
        low, high = original(self, alpha)
        return low - 1e-9 * abs(low), high + 1e-9 * abs(high)

    monkeypatch.setattr(kit.Estimate, "bounds", wider)
    rows = seed_rows(t3, pool, SIZES, replay_seeds(entry), BUDGET)
    carried, message = carry({**entry, "code": "0" * 64}, rows, code="1" * 64, commit=None, when="now")
    assert carried is None
    assert (
        message.startswith("decisions differ (seed 0 boundary_null: lower bound") and "recalibrate" in message
    )


def test_an_entry_without_a_digest_is_not_carried(t3, pool, entry) -> None:
    rows = seed_rows(t3, pool, SIZES, replay_seeds(entry), BUDGET)
    bare = {k: v for k, v in entry.items() if k != "replay"}
    carried, message = carry(bare, rows, code="1" * 64, commit=None, when="now")
    assert carried is None and "no replay digest" in message
    recorded = record(bare, rows, entry["code"], 0.0)
    assert carry({**recorded, "code": "0" * 64}, rows, code="1" * 64, commit=None, when="now")[0] is not None


def test_recording_refuses_a_pool_whose_estimates_moved(t3, pool, entry) -> None:
    """A digest recorded on other latents would carry counts made on different data."""
    rows = seed_rows(t3, pool, SIZES, replay_seeds(entry), BUDGET)
    moved = [
        [*row[:3], (float.fromhex(row[3]) + 0.1 * float.fromhex(row[6])).hex(), *row[4:]] for row in rows
    ]
    worst, where = deviation_from_stored(entry, moved)
    assert where is not None and where.startswith("seed 0 boundary_null") and worst > STORED_TOLERANCE_SE
    assert deviation_from_stored(entry, rows) == (0.0, None) or deviation_from_stored(entry, rows)[0] < 1e-3


def test_merged_ranges_keep_the_lowest_seeds_digest(t3, pool, tmp_path: Path) -> None:
    out = tmp_path / "calibration.json"
    for first in (REPLAY_SEEDS, 0):
        calibrate_claim(
            t3,
            pool,
            SIZES,
            size_name="ci",
            seeds=REPLAY_SEEDS,
            budget=BUDGET,
            out=out,
            first_seed=first,
            all_specs=[t3],
        )
    merged = json.loads(out.read_text())["entries"][entry_key(t3.id, pool.template, "ci")]
    whole = run_controls(t3, pool, SIZES, seeds=REPLAY_SEEDS, budget=BUDGET)
    assert merged["replay"]["digest"] == whole["replay"]["digest"]
