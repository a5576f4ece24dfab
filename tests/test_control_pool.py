"""Seed shards run in worker processes give exactly the counts of one sequential run (the seeds decide, not the
schedule), and written shards merge into one calibration entry."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmark.claims.calibrate import run_controls
from benchmark.claims.data import Budget, ClaimData
from benchmark.claims.evaluate import select
from benchmark.claims.registry import all_claims
from benchmark.run.control_pool import Shard, add_counts, default_shard_size, plan_shards, run_shards

CLAIM = "T1-paraphrase-closer"  # the cheapest controls: ~0.3 s a seed on these latents
BUDGET = Budget.for_profile("ci")


@given(
    seeds=st.integers(1, 60),
    first=st.integers(0, 1000),
    size=st.integers(1, 70),
    claims=st.integers(1, 3),
)
def test_shards_cover_each_claims_seeds_once(seeds: int, first: int, size: int, claims: int) -> None:
    ids = [f"C{i}" for i in range(claims)]
    shards = plan_shards(ids, seeds=seeds, first_seed=first, shard_size=size)
    for claim_id in ids:
        covered = [
            seed
            for shard in shards
            if shard.claim_id == claim_id
            for seed in range(shard.first_seed, shard.first_seed + shard.seeds)
        ]
        assert covered == list(range(first, first + seeds))
    assert all(1 <= shard.seeds <= size for shard in shards)


def test_default_shard_size_gives_one_shard_per_worker() -> None:
    assert len(plan_shards(["C"], seeds=500, shard_size=default_shard_size(500, 3))) == 3
    assert default_shard_size(1, 8) == 1


def test_bad_plans_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match=r"seeds \(0\) and shard_size \(5\) must be at least 1"):
        plan_shards(["C"], seeds=0, shard_size=5)
    spec = next(s for s in all_claims() if s.id == CLAIM)
    with pytest.raises(ValueError, match="shards name claims that were not given: X9"):
        run_shards([spec], {}, [Shard("X9", 0, 1)], budget=BUDGET)
    with pytest.raises(ValueError, match="no base latents for probe sets text-paraphrase"):
        run_shards([spec], {}, [Shard(CLAIM, 0, 1)], budget=BUDGET)
    with pytest.raises(ValueError, match="jobs must be at least 1, got 0"):
        run_shards([spec], _bases(spec), [Shard(CLAIM, 0, 1)], budget=BUDGET, jobs=0)


def _bases(spec) -> dict[str, ClaimData]:
    """Seeded Gaussian latents on the shipped paraphrase set: the controls shuffle and plant, no model needed."""
    from benchmark.core.schema import layer_names
    from benchmark.probes.catalog import resolve_probes

    probes = resolve_probes(spec.probe_set, "full")
    layers = layer_names(6)
    latents = np.random.default_rng(5).standard_normal((len(probes.samples), len(layers), 32)) + 1.0
    data = ClaimData(
        latents=latents,
        layers=layers,
        samples=list(probes.samples),
        last_token_ids=np.zeros(len(probes.samples), dtype=np.int64),
        model="synthetic",
        model_kind="synthetic",
    )
    return {spec.probe_set: data}


@pytest.mark.slow
def test_two_workers_count_what_one_sequential_run_counts(tmp_path) -> None:
    spec = next(s for s in all_claims() if s.id == CLAIM)
    bases = _bases(spec)
    sequential = run_controls(
        spec, select(spec, bases[spec.probe_set]), seeds=4, budget=BUDGET, first_seed=40
    )
    shards = plan_shards([CLAIM], seeds=4, first_seed=40, shard_size=2)
    pooled = add_counts(run_shards([spec], bases, shards, budget=BUDGET, jobs=2))
    for name in ("boundary_null", "positive"):
        assert pooled[name]["holds"] == sequential[name]["holds"]
        assert pooled[name]["trials"] == sequential[name]["trials"] == 4
    assert pooled["positive"]["holds"] > pooled["boundary_null"]["holds"]  # the controls did run

    out = tmp_path / "calibration.json"
    run_shards([spec], bases, shards, budget=BUDGET, jobs=2, out=out, all_specs=all_claims())
    entry = json.loads(out.read_text(encoding="utf-8"))["claims"][CLAIM]
    assert entry["seeds"] == 4 and entry["seed_ranges"] == [[40, 42], [42, 44]]
    assert entry["positive"]["holds"] == sequential["positive"]["holds"]
