"""CI's 20-seed smoke of the calibration: every claim's controls on the real offline latents the committed
calibration file was made from, on seeds that file never used.

Each claim must pass its planted control more often than its boundary null (unless the file records it as
powerless at this size: D1), its boundary null may hold in at most 3 of 20 seeds (a 5% false-positive rate
gives 4 or more with probability 1.6%), and both counts must agree with the committed counts (two-sided Fisher
exact test at 0.001): a change to a measure, a plant or a rule
that moves a claim's calibration fails here before the file is regenerated. Seeds are fixed, so a pass is
reproducible, not lucky. The seeds run in shards on every core (``benchmark.run.control_pool``).
"""

from __future__ import annotations

import json
import os

import pytest
from scipy.stats import fisher_exact

from benchmark.claims.data import Budget, ClaimData
from benchmark.claims.evaluate import CALIBRATION_FILE, select
from benchmark.claims.registry import all_claims
from benchmark.run.control_pool import add_counts, plan_shards, run_shards

SMOKE_SEEDS = 20
#: Far from the calibration run's seeds (0..499), so the smoke is new draws, not a replay.
FIRST_SEED = 100_000
MAX_BOUNDARY_HOLDS = 3
AGREEMENT_ALPHA = 0.001
#: Seeds per shard: small shards keep both cores busy to the end (Q1's 20 seeds alone take ~2 minutes).
SHARD_SIZE = 5

CLAIMS = [spec for spec in all_claims() if not spec.cross_model]


@pytest.fixture(scope="module")
def bases() -> dict[str, ClaimData]:
    """The default models' ci latents per probe set (the cache ``pytest claims/`` shares)."""
    from benchmark.run.session import ClaimSession, SessionOptions, calibration_bases

    return calibration_bases(ClaimSession(SessionOptions(profile="ci")))


@pytest.fixture(scope="module")
def smoke_counts(request: pytest.FixtureRequest, bases: dict[str, ClaimData]) -> dict[str, dict]:
    """Both controls' counts of every selected claim, computed once on all cores (the smoke is CI's
    longest test: ~13 minutes on one core)."""
    selected = {
        item.callspec.params["spec"].id
        for item in request.session.items
        if item.path == request.path and hasattr(item, "callspec")
    }
    specs = [spec for spec in CLAIMS if spec.id in selected]
    shards = plan_shards(
        [spec.id for spec in specs], seeds=SMOKE_SEEDS, first_seed=FIRST_SEED, shard_size=SHARD_SIZE
    )
    results = run_shards(
        specs, bases, shards, budget=Budget.for_profile("ci"), jobs=max(1, min(os.cpu_count() or 1, 8))
    )
    return {
        spec.id: add_counts(
            [r for shard, r in zip(shards, results, strict=True) if shard.claim_id == spec.id]
        )
        for spec in specs
    }


@pytest.fixture(scope="module")
def committed() -> dict[str, dict]:
    return json.loads(CALIBRATION_FILE.read_text(encoding="utf-8"))["claims"]


@pytest.mark.slow
@pytest.mark.parametrize("spec", CLAIMS, ids=[spec.id for spec in CLAIMS])
def test_smoke_agrees_with_the_committed_calibration(spec, bases, smoke_counts, committed) -> None:
    base = select(spec, bases[spec.probe_set])
    smoke = smoke_counts[spec.id]
    null, positive = smoke["boundary_null"], smoke["positive"]
    assert smoke["plant_failures"] == 0, smoke["plant_failure_examples"]
    assert null["holds"] <= MAX_BOUNDARY_HOLDS, (
        f"{spec.id}: boundary null held in {null['holds']} of {null['trials']} seeds"
    )
    entry = committed.get(spec.id, {})
    if entry.get("positive", {}).get("rate", 0) > 0:
        assert positive["holds"] > null["holds"], (
            f"{spec.id}: planted control held no more often than the null"
        )
    # else: a claim the file records as powerless at this size (D1 at ci: 12 speakers cannot show equivalence
    # at epsilon) can only be checked for agreement with that record, below.
    same_base = entry.get("base_model") == base.model and entry.get("n_samples") == len(base.samples)
    assert same_base and entry.get("budget") == "ci", (
        f"{spec.id}: the committed calibration was not made on this base ({entry.get('base_model')}, "
        f"{entry.get('n_samples')} samples); rerun `lalm-bench calibrate --claim {spec.id}`"
    )
    for name, row in (("boundary_null", null), ("positive", positive)):
        # Fisher's exact test of the two counts: a committed 0/500 against a smoke 1/20 is no contradiction,
        # which a binomial test against the rate 0 would call one.
        old = entry[name]
        table = [[row["holds"], row["trials"] - row["holds"]], [old["holds"], old["trials"] - old["holds"]]]
        p = fisher_exact(table).pvalue
        assert p >= AGREEMENT_ALPHA, (
            f"{spec.id} {name}: {row['holds']}/{row['trials']} in the smoke against the committed "
            f"{old['holds']}/{old['trials']}, Fisher exact p = {p:.2g}"
        )
