"""Calibration runs over disjoint seed ranges add up; anything else replaces (the 500 seeds come in pieces)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from benchmark.claims.calibrate import ControlResult, _summary, merge_entries


def entry(
    null: tuple[int, int], pos: tuple[int, int], first: int, seeds: int, **change: Any
) -> dict[str, Any]:
    base = {"version": 1, "fingerprint": "f", "code": "c", "base_model": "m", "created": "t"}
    extra = {"boundary": 0.1, "positive_size": 0.2, "budget": "ci", "n_samples": 96}
    row = {
        **base,
        **_summary(
            ControlResult(*null),
            ControlResult(*pos),
            seeds=seeds,
            seed_ranges=[[first, first + seeds]],
            failures=0,
            examples=[],
            extra=extra,
        ),
    }
    row.update(change)
    return row


def test_disjoint_ranges_add_counts_and_recompute_the_targets() -> None:
    merged = merge_entries(entry((1, 20), (15, 20), 0, 20), entry((0, 480), (400, 480), 20, 480))
    assert merged is not None
    assert merged["boundary_null"]["holds"] == 1 and merged["boundary_null"]["trials"] == 500
    assert merged["positive"]["holds"] == 415 and merged["seeds"] == 500
    assert merged["seed_ranges"] == [[0, 20], [20, 500]]
    assert merged["meets_fpr_target"] is True  # 1/500: the upper Clopper-Pearson bound is under 5%
    assert merged["meets_power_target"] is True


def test_legacy_entry_without_ranges_counts_as_seeds_from_zero() -> None:
    old = entry((0, 20), (20, 20), 0, 20)
    del old["seed_ranges"]
    assert merge_entries(old, entry((0, 10), (10, 10), 20, 10)) is not None
    assert merge_entries(old, entry((0, 10), (10, 10), 10, 10)) is None  # seeds 10..19 already counted


@pytest.mark.parametrize("field", ["budget", "n_samples", "fingerprint", "code", "base_model", "boundary"])
def test_different_controls_are_never_added(field: str) -> None:
    new = entry((0, 10), (10, 10), 20, 10, **{field: "other"})
    assert merge_entries(entry((0, 20), (20, 20), 0, 20), new) is None


def test_parallel_runs_of_other_claims_keep_each_others_entries(tmp_path, monkeypatch) -> None:
    """Two calibrate processes on different claims share one file: each write reads the file afresh."""
    import types

    import benchmark.claims.calibrate as cal
    from benchmark.claims.registry import all_claims

    specs = {spec.id: spec for spec in all_claims() if not spec.cross_model}
    first, second = specs["T1-paraphrase-closer"], specs["T2-distance-grows"]
    out = tmp_path / "calibration.json"

    def controls(spec, base, *, seeds, budget, first_seed=0):
        if spec.id == second.id:  # meanwhile another process finishes the first claim
            cal.calibrate([first], {first.probe_set: object()}, seeds=seeds, budget=budget, out=out)
        return _summary(
            ControlResult(0, seeds),
            ControlResult(seeds, seeds),
            seeds=seeds,
            seed_ranges=[[first_seed, first_seed + seeds]],
            failures=0,
            examples=[],
            extra={"boundary": 0.1, "positive_size": 0.2, "budget": budget.name, "n_samples": 9},
        )

    monkeypatch.setattr(cal, "run_controls", controls)
    monkeypatch.setattr(cal, "select", lambda spec, base: types.SimpleNamespace(model="m"))
    budget = cal.Budget.for_profile("ci")
    document = cal.calibrate([second], {second.probe_set: object()}, seeds=3, budget=budget, out=out)
    assert {first.id, second.id} <= set(document["claims"])
    on_disk = json.loads(out.read_text())["claims"]
    assert on_disk[first.id]["seeds"] == 3 and on_disk[second.id]["seeds"] == 3
