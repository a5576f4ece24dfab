"""The calibration can fail (the calibration issue, item 2): it draws fresh samples from a planted population,
so intervals that are too narrow show as false positives, and an effect just below delta rarely holds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmark.claims import registry
from benchmark.claims.calibrate import calibrate_claim, entry_key, merge_entries, run_controls
from benchmark.claims.controls import Population, draw_sample
from benchmark.claims.data import Budget
from benchmark.claims.evaluate import decide_measured, measure, select
from benchmark.stats import kit
from tests.test_claim_specs import parallel_data

BUDGET = Budget(100, 10, "test")
SIZES = {"meaning_id": 12}


@pytest.fixture(scope="module")
def t3():
    return registry.get_claim("T3-text-language-early-late")


@pytest.fixture(scope="module")
def pool(t3):
    return select(t3, parallel_data(n_meanings=40, strength=1.0, seed=3), "nopunct")


def test_estimates_scatter_around_the_planted_population_effect(t3, pool) -> None:
    out = run_controls(t3, pool, SIZES, seeds=40, budget=BUDGET, seeds_per_population=20)
    est = out["boundary_null"]["estimates"]
    assert est["sd"] > 0.002  # not pinned at delta, as a plant solved on the scored sample would be
    assert abs(est["mean"] - est["population_mean"]) < 3 * est["sd"] / np.sqrt(40)
    assert est["population_mean"] == pytest.approx(t3.rule.delta, rel=0.03)
    assert out["positive"]["rate"] > out["boundary_null"]["rate"]


def test_intervals_narrowed_threefold_push_the_false_positive_rate_over_five_percent(
    t3, pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    honest = run_controls(t3, pool, SIZES, seeds=60, budget=BUDGET, seeds_per_population=30)["boundary_null"]
    original = kit.Estimate.bounds

    def narrowed(self: kit.Estimate, alpha: float) -> tuple[float, float]:
        low, high = original(self, alpha)
        return self.value - (self.value - low) / 3, self.value + (high - self.value) / 3

    monkeypatch.setattr(kit.Estimate, "bounds", narrowed)
    broken = run_controls(t3, pool, SIZES, seeds=60, budget=BUDGET, seeds_per_population=30)["boundary_null"]
    assert broken["rate"] > 0.05, broken
    assert broken["rate"] > honest["rate"]


def test_an_effect_just_below_delta_rarely_holds(t3, pool) -> None:
    population = Population.build(t3, pool, SIZES, np.random.default_rng(11))
    scale, effect = population.solve(0.8 * t3.rule.delta)
    assert effect < t3.rule.delta
    holds = 0
    for seed in range(100):
        rng = np.random.default_rng([seed, 5])
        rows = draw_sample(population.base, SIZES, rng)
        sample = population.at(scale).subset(np.isin(np.arange(len(pool.samples)), rows))
        measured = measure(t3, sample, BUDGET, np.random.default_rng(seed))
        holds += decide_measured(t3, measured, model="synthetic", reference_verdict=None).verdict == "holds"
    assert holds <= 9, f"{holds}/100 samples of an effect of 0.8 delta held"


def test_seed_ranges_merge_and_overlaps_do_not(t3, pool, tmp_path: Path) -> None:
    """Ranges merge whatever order they finish in (the later one first here), and the merged raw estimates are
    those of one run over all the seeds, in seed order."""
    out = tmp_path / "calibration.json"
    for first in (10, 0):
        calibrate_claim(
            t3,
            pool,
            SIZES,
            size_name="ci",
            seeds=10,
            budget=BUDGET,
            out=out,
            first_seed=first,
            all_specs=[t3],
        )
    entry = json.loads(out.read_text())["entries"][entry_key(t3.id, pool.template, "ci")]
    assert entry["seeds"] == 20 and entry["seed_ranges"] == [[0, 10], [10, 20]]
    assert entry["boundary_null"]["trials"] == 20
    again = dict(entry, seed_ranges=[[5, 15]])
    assert merge_entries(entry, again) is None  # overlapping seeds would count draws twice
    whole = run_controls(t3, pool, SIZES, seeds=20, budget=BUDGET)
    for control in ("boundary_null", "positive"):
        assert entry[control]["raw"]["seeds"] == list(range(20))
        assert entry[control]["raw"]["estimates"] == whole[control]["raw"]["estimates"]


def test_metric_agreement_population_is_the_smallest_pairs_mean() -> None:
    """Q1's rule is an intersection-union test over metric pairs, so its truth is the smallest pair's population
    mean; the mean of sample minima sits below it and made the boundary null plant agreement above delta."""
    from benchmark.claims.shapes import metric_agreement

    q1 = registry.get_claim("Q1-metrics-agree")
    data = select(q1, parallel_data(n_meanings=16, strength=0.3, seed=5), "nopunct")
    pop = Population.build(q1, data, {"meaning_id": 8}, np.random.default_rng(11), n_probes=6)
    pairs = np.array(
        [
            metric_agreement.point_parts(q1.measure, sub, np.random.default_rng(0))
            for sub in (
                pop.at(1.0).subset(np.isin(np.arange(len(data.samples)), rows)) for rows in pop.probes
            )
        ]
    )
    assert pop.effect(1.0) == pytest.approx(pairs.mean(axis=0).min(), abs=1e-6)
    assert pop.effect(1.0) >= pairs.min(axis=1).mean() - 1e-9


def test_a_presence_boundary_of_zero_is_planted_not_left_at_the_shuffle(t3, pool) -> None:
    """M4's delta is 0: its boundary null must be planted up to 0. Only an absence claim's true absence (target
    0) leaves the shuffled pool unplanted; before this, M4's boundary null sat at about -0.12 and could not fail."""
    population = Population.build(t3, pool, SIZES, np.random.default_rng(1))
    assert population.effect(0.0) < 0  # this shuffle leaves T3 (a presence claim) below a boundary of 0
    scale, effect = population.solve(0.0)
    assert scale > 0.0 and 0.0 <= effect < 1e-3
