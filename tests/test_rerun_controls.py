"""The user-equivalent rescaling of ``scripts/rerun_controls.py``: a calibration sample's deviation from its
population value, scaled to the scatter of a user's sample drawn from an unlimited supply."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from benchmark.stats.kit import Estimate, Reduction

_PATH = Path(__file__).resolve().parents[1] / "scripts" / "rerun_controls.py"
_SPEC = importlib.util.spec_from_file_location("rerun_controls", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
rerun_controls = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(rerun_controls)


def _estimate(value: float, **replicates: np.ndarray) -> Estimate:
    return Estimate(value=value, replicates=dict(replicates), null=np.zeros(5))


def test_one_factor_half_the_pool_scales_by_root_two() -> None:
    est = _estimate(0.3, meaning=np.linspace(0.2, 0.4, 12))
    assert rerun_controls.scatter_factor(est, {"meaning": 0.5}) == pytest.approx(math.sqrt(2.0))
    assert rerun_controls.scatter_factor(est, {"meaning": 0.0}) == pytest.approx(1.0)
    assert rerun_controls.scatter_factor(est, {"meaning": 1.0}) == math.inf


def test_crossed_factors_weigh_each_share_by_its_variance() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=8), 3.0 * rng.normal(size=24)
    est = _estimate(0.0, meaning=a, speaker=b)
    v = {u: (r.size - 1) / r.size * ((r - r.mean()) ** 2).sum() for u, r in (("meaning", a), ("speaker", b))}
    shares = {"meaning": 0.5, "speaker": 0.25}
    expected = math.sqrt(sum(v.values()) / sum((1 - shares[u]) * v[u] for u in v))
    assert rerun_controls.scatter_factor(est, shares) == pytest.approx(expected)


def test_users_reduction_moves_each_part_from_its_truth_and_keeps_its_spread() -> None:
    first = _estimate(0.20, meaning=np.linspace(0.15, 0.25, 10))
    second = _estimate(0.50, meaning=np.linspace(0.45, 0.55, 10))
    reduction = Reduction("min", (first, second), ("first", "second"))
    users = rerun_controls.as_users(reduction, np.array([0.10, 0.50]), {"meaning": 0.5})
    assert users is not None
    k = math.sqrt(2.0)
    assert users.parts[0].value == pytest.approx(0.10 + k * 0.10)
    assert users.parts[1].value == pytest.approx(0.50)  # at its truth: nothing to scale
    assert users.parts[0].se == pytest.approx(first.se)
    assert users.value == pytest.approx(min(0.10 + k * 0.10, 0.50))
    assert users.bounds(0.05).low == pytest.approx(reduction.bounds(0.05).low + (k - 1) * 0.10)


def test_a_factor_sampled_whole_has_no_users_scatter() -> None:
    est = _estimate(0.2, meaning=np.linspace(0.1, 0.3, 6))
    reduction = Reduction("single", (est,), ("only",))
    assert rerun_controls.as_users(reduction, np.array([0.1]), {"meaning": 1.0}) is None


def test_a_margin_moved_to_a_users_scatter_can_be_vetoed_where_the_calibrations_was_not() -> None:
    """The veto at a user's scatter reads margins moved like the parts: a margin above delta only because the
    half-pool sample scattered little falls short once moved from its truth."""
    from benchmark.claims.verdict import Decision, token_veto

    margin = _estimate(0.10, meaning=np.linspace(0.095, 0.105, 36))  # truth 0.30: this sample sits low
    moved = rerun_controls.as_users_estimate(margin, 0.30, {"meaning": 0.5})
    assert moved is not None
    assert moved.value == pytest.approx(0.30 - math.sqrt(2.0) * 0.20)
    assert moved.se == pytest.approx(margin.se)
    held = Decision("holds", "rule", None, None, None, None, False, ())  # type: ignore[arg-type]
    as_calibrated = token_veto(held, {"tok_mean": margin}, delta=0.05, alpha=0.05, decides=True)
    as_users = token_veto(held, {"tok_mean": moved}, delta=0.05, alpha=0.05, decides=True)
    assert as_calibrated.verdict == "holds"
    assert as_users.verdict == "inconclusive"


def test_the_tally_of_vetoing_controls_names_those_the_veto_itself_finds_short() -> None:
    """``vetoing_controls`` asks ``token_veto`` about each deciding control alone, so its tally names exactly the
    controls that turn a ``holds`` away, and none where the rule did not hold or the veto does not decide."""
    from types import SimpleNamespace

    from benchmark.claims.verdict import Decision

    short = _estimate(0.04, meaning=np.linspace(0.035, 0.045, 36))  # below delta = 0.05
    wide = _estimate(0.40, meaning=np.linspace(0.395, 0.405, 36))  # well above it
    ignored = _estimate(0.0, meaning=np.linspace(-0.005, 0.005, 36))  # short, but not deciding here
    spec = SimpleNamespace(
        rule=SimpleNamespace(delta=0.05, alpha=0.05), token_control=SimpleNamespace(decides=True)
    )
    measured = SimpleNamespace(
        control_margins={"tok_last": short, "tok_mean": wide, "content_mean": ignored},
        deciding_controls=("tok_last", "tok_mean"),
    )
    held = Decision("holds", "rule", None, None, None, None, False, ())  # type: ignore[arg-type]
    assert rerun_controls.vetoing_controls(spec, held, measured) == ["tok_last"]
    not_held = Decision("inconclusive", "rule", None, None, None, None, False, ())  # type: ignore[arg-type]
    assert rerun_controls.vetoing_controls(spec, not_held, measured) == []
    spec.token_control.decides = False
    assert rerun_controls.vetoing_controls(spec, held, measured) == []
