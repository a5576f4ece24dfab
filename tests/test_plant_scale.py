"""The plant solver: effect within tolerance of its target, few evaluations, clear errors."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from benchmark.claims.solve import plant_scale


class Counted:
    """An increasing effect curve that counts its evaluations."""

    def __init__(self, fn) -> None:
        self.fn, self.calls = fn, 0

    def __call__(self, s: float) -> float:
        self.calls += 1
        return self.fn(s)


@settings(max_examples=60, deadline=None)
@given(
    floor=st.floats(-0.5, 0.05),
    gain=st.floats(0.05, 20.0),
    power=st.floats(0.5, 3.0),
    target=st.floats(0.06, 0.9),
)
@example(floor=0.0, gain=0.0546875, power=0.5, target=0.5)
def test_reaches_the_target_within_tolerance_on_smooth_curves(floor, gain, power, target) -> None:
    # Only curves whose accepted band lies within the solver's default scale limit (512): a slow curve that
    # needs more is the unreachable case, tested below (CI once drew gain 0.055, power 0.5, target 0.875).
    needed = (math.atanh((1.01 * target - floor) / (1 - floor)) / gain) ** (1 / power)
    assume(needed <= 512.0)
    curve = Counted(lambda s: floor + (1 - floor) * math.tanh(gain * s**power))
    s = plant_scale(curve, target, what="test")
    assert 0 <= curve.fn(s) - target <= 0.02 * target  # never below: boundary nulls stay honest
    assert curve.calls <= 25


def test_base_already_over_the_target_is_left_alone() -> None:
    assert plant_scale(lambda s: 0.5 + s, 0.3, what="test") == 0.0


def test_unreachable_target_names_what_and_the_limit() -> None:
    with pytest.raises(
        ValueError, match=r"plant for S9 offsets: no offset scale up to 8 reaches an effect of 0\.7"
    ):
        plant_scale(lambda s: 0.5 * math.tanh(s), 0.7, what="S9 offsets", limit=8.0)


def test_step_curve_returns_the_smallest_scale_found_that_reaches_the_target() -> None:
    """A discrete statistic can jump over the target: the solver ends on the side that reaches it, quickly."""
    curve = Counted(lambda s: 0.0 if s < 1.3 else 1.0)
    s = plant_scale(curve, 0.5, what="step")
    assert curve.calls <= 16
    assert 1.3 <= s <= 1.3 * 1.01 and curve(s) == 1.0
