"""Calibration rates' intervals rest on populations, not on seeds: seeds of one population share its plant, so
a rate whose holds bunch in a few populations is known less precisely than its seed count says."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.claims.calibrate import ControlTally, clopper_pearson, clustered_interval, merge_entries


def _spread(holds: int, trials: int) -> list[int]:
    return [int((i * holds) % trials < holds) for i in range(trials)]


def test_holds_spread_evenly_over_populations_keep_the_seed_interval_up_to_the_df_factor() -> None:
    held, populations = _spread(25, 500), [s // 50 for s in range(500)]
    low, high, design_effect = clustered_interval(held, populations)
    plain_low, plain_high = clopper_pearson(25, 500)
    assert design_effect == pytest.approx(1.0)
    assert low <= plain_low < 0.05 < plain_high <= high
    assert high - low < 1.5 * (
        plain_high - plain_low
    )  # only the 9 degrees of freedom of 10 populations widen it


def test_holds_bunched_in_one_population_widen_the_interval() -> None:
    held = [1] * 25 + [0] * 475  # all 25 holds among the first population's 50 seeds
    low, high, design_effect = clustered_interval(held, [s // 50 for s in range(500)])
    plain_low, plain_high = clopper_pearson(25, 500)
    assert design_effect > 5
    assert high > plain_high + 0.03 and low < plain_low
    assert low < 0.05 < high


def test_power_whose_misses_bunch_can_no_longer_claim_its_target() -> None:
    """425 of 500 (85%): independent seeds put the lower bound above 80%; misses in two populations do not."""
    bunched = [0] * 75 + [1] * 425
    low, _, _ = clustered_interval(bunched, [s // 50 for s in range(500)])
    assert clopper_pearson(425, 500)[0] > 0.8 > low


def test_no_holds_and_one_population() -> None:
    low, high, design_effect = clustered_interval([0] * 200, [s // 20 for s in range(200)])
    assert low == 0.0 and clopper_pearson(0, 200)[1] < high < 0.05 and design_effect == 1.0
    assert clustered_interval([1, 0, 0], [0, 0, 0])[:2] == (0.0, 1.0)  # one population: nothing to rest on


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=2, max_value=12),
    st.integers(min_value=5, max_value=40),
    st.floats(min_value=0.0, max_value=1.0),
    st.integers(min_value=0, max_value=2**31),
)
def test_the_interval_holds_the_rate_and_never_beats_independent_seeds(
    k: int, m: int, rate: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    per_population = rng.beta(1 + 10 * rate, 1 + 10 * (1 - rate), size=k)
    held = [int(rng.random() < per_population[i // m]) for i in range(k * m)]
    low, high, design_effect = clustered_interval(held, [i // m for i in range(k * m)])
    plain_low, plain_high = clopper_pearson(sum(held), len(held))
    p = sum(held) / len(held)
    assert low <= p <= high
    assert low <= plain_low + 1e-12 and high >= plain_high - 1e-12
    assert design_effect >= 1.0


def test_tallies_record_each_verdict_and_merge_them_in_seed_order() -> None:
    a, b = ControlTally(), ControlTally()
    for seed in range(50, 60):
        b.add("holds" if seed % 3 == 0 else "inconclusive", 0.1, 0.0, 0.2, 0.1, seed)
    for seed in range(10):
        a.add("holds" if seed % 3 == 0 else "fails", 0.1, 0.0, 0.2, 0.1, seed)
    merged = a.plus(b)
    assert merged.held == [int(s % 3 == 0) for s in [*range(10), *range(50, 60)]]
    row = merged.as_dict(10)
    assert row["raw"]["held"] == merged.held
    assert row["interval_populations"] == 2 and "Korn-Graubard" in row["interval"]
    assert ControlTally.from_dict(row).held == merged.held


def test_entries_without_per_seed_verdicts_say_their_interval_takes_seeds_as_independent() -> None:
    tally = ControlTally()
    for seed in range(20):
        tally.add("holds" if seed < 2 else "inconclusive", 0.1, 0.0, 0.2, 0.1, seed)
    row = tally.as_dict(10)
    del row["raw"]["held"]
    old = ControlTally.from_dict(row)
    assert old.held is None
    again = old.as_dict(10)
    assert again["ci95"] == list(clopper_pearson(2, 20)) and "independent" in again["interval"]
    assert "interval_populations" not in again
    newer = ControlTally()
    newer.add("holds", 0.1, 0.0, 0.2, 0.1, 20)
    assert old.plus(newer).held is None  # a merge cannot invent the old seeds' verdicts


def test_runs_of_another_population_size_do_not_merge() -> None:
    def entry(first: int, per_population: int | None) -> dict:
        tally = ControlTally()
        for seed in range(first, first + 20):
            tally.add("inconclusive", 0.1, 0.0, 0.2, 0.1, seed)
        row = tally.as_dict(per_population or 50)
        common = {
            "version": 1,
            "fingerprint": "f",
            "code": "c",
            "pool_model": "m",
            "template": "bare",
            "size": "full",
            "created": "now",
            "budget": "full",
            "sizes": {"meaning_id": 38},
            "pool_samples": 900,
            "boundary": 0.02,
            "positive_size": 0.05,
            "boundary_null": row,
            "positive": row,
            "coverage": {"nominal": 0.05},
            "seed_ranges": [[first, first + 20]],
            "populations": {"boundary_null": [], "positive": []},
            "plant_failures": 0,
            "plant_failure_examples": [],
        }
        return common if per_population is None else {**common, "seeds_per_population": per_population}

    assert merge_entries(entry(0, None), entry(20, 50)) is not None  # unrecorded means the old 50
    assert merge_entries(entry(0, None), entry(20, 20)) is None
    merged = merge_entries(entry(0, 20), entry(20, 20))
    assert merged is not None and merged["seeds_per_population"] == 20
    assert merged["boundary_null"]["interval_populations"] == 2


def test_a_calibration_run_records_each_verdict_and_its_population_size() -> None:
    from benchmark.claims import registry
    from benchmark.claims.calibrate import run_controls
    from benchmark.claims.data import Budget
    from benchmark.claims.evaluate import select
    from tests.test_claim_specs import parallel_data

    t3 = registry.get_claim("T3-text-language-early-late")
    pool = select(t3, parallel_data(n_meanings=40, strength=1.0, seed=3), "nopunct")
    out = run_controls(
        t3, pool, {"meaning_id": 12}, seeds=4, budget=Budget(100, 10, "test"), seeds_per_population=2
    )
    assert out["seeds_per_population"] == 2
    for control in ("boundary_null", "positive"):
        row = out[control]
        assert len(row["raw"]["held"]) == 4 and sum(row["raw"]["held"]) == row["holds"]
        assert row["interval_populations"] == 2
    assert len(out["populations"]["boundary_null"]) == 2
