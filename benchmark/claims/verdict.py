"""From a measurement and a rule to a verdict (CLAIMS.md, "Verdicts and decision rules").

Only ``holds`` and ``fails`` are findings. The pipeline gate turns broken measurements into ``error`` before
any rule is read, so a broken pipeline can never pass an absence claim.
"""

from __future__ import annotations

import math

from benchmark.claims.record import Measurement, Verdict
from benchmark.claims.spec import RuleSpec


def decide(
    rule: RuleSpec, measurement: Measurement, *, reference_verdict: Verdict | None = None
) -> tuple[Verdict, str]:
    """Apply ``rule`` to ``measurement``; return the verdict and a sentence saying why."""
    if measurement.gate_problems:
        return "error", "pipeline gate: " + "; ".join(measurement.gate_problems)
    numbers = (measurement.effect, measurement.ci_low, measurement.ci_high)
    if not all(math.isfinite(value) for value in numbers):
        return "error", f"non-finite effect or interval {numbers}"
    low, high = measurement.ci_low, measurement.ci_high
    # The level of the interval is the measure's (its ``resampling`` text says which): most read each bound as
    # a one-sided alpha bound (two-sided 1 - 2 alpha), change-either-way claims use alpha/2 per side.
    interval = f"effect {measurement.effect:.4g}, interval [{low:.4g}, {high:.4g}] at alpha={rule.alpha:g}"
    if rule.kind == "presence":
        delta = float(rule.delta)  # validated by RuleSpec
        if low > delta:
            return "holds", f"{interval}: lower bound above delta={delta:g}"
        if high <= delta:
            return "fails", f"{interval}: upper bound at or below delta={delta:g}"
        return "inconclusive", f"{interval}: straddles delta={delta:g}"
    epsilon = float(rule.epsilon)  # validated by RuleSpec
    if low > epsilon:
        return "fails", f"{interval}: lower bound above the equivalence margin epsilon={epsilon:g}"
    if high >= epsilon:
        return "inconclusive", f"{interval}: upper bound not below epsilon={epsilon:g}"
    if measurement.power is None or measurement.power < rule.min_power:
        return "inconclusive", (
            f"{interval} is below epsilon={epsilon:g}, but the power to detect epsilon is "
            f"{measurement.power if measurement.power is not None else 'unknown'} < {rule.min_power:g}"
        )
    if reference_verdict != "holds":
        return "inconclusive", (
            f"{interval} is below epsilon={epsilon:g}, but the positive reference on the same latents is "
            f"{reference_verdict or 'missing'}, so absence cannot be told from a blind pipeline"
        )
    return (
        "holds",
        f"{interval}: upper bound below epsilon={epsilon:g}, power {measurement.power:.2f}, reference holds",
    )
