"""From a measured quantity and a rule to a verdict (CLAIMS.md, "Verdicts and decision rules").

Only ``holds`` and ``fails`` are findings. The pipeline gate turns broken measurements into ``error`` before
any rule is read, so a broken pipeline can never pass an absence claim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from benchmark.claims.record import Verdict
from benchmark.claims.spec import RuleSpec
from benchmark.stats.kit import Bounds, Estimate, Reduction


@dataclass(frozen=True)
class Decision:
    """A verdict with the numbers it was read from."""

    verdict: Verdict
    reason: str
    bounds: Bounds
    p_value: float
    power: float | None = None
    direction: str | None = None
    explained_by_tokens: bool | None = None
    notes: list[str] = field(default_factory=list)
    p_fails: float | None = None  # last: set by ``decide`` only, never passed positionally


def direction_for(rule: RuleSpec, model: str) -> str | None:
    """The direction a change rule tests for ``model`` (longest matching model-name prefix), else None."""
    matches = [prefix for prefix in rule.directions if model.startswith(prefix)]
    return rule.directions[max(matches, key=len)] if matches else None


def _describe(b: Bounds, alpha: float, sided: str = "one-sided") -> str:
    return f"effect {b.value:.4g}, {sided} {100 * (1 - alpha):.0f}% bounds [{b.low:.4g}, {b.high:.4g}]"


def decide(
    rule: RuleSpec,
    reduction: Reduction,
    *,
    model: str = "",
    reference_verdict: Verdict | None = None,
) -> Decision:
    """Apply ``rule`` to the reduced quantity; say why in one sentence."""
    alpha = rule.alpha
    if rule.kind == "presence":
        decision = _presence(rule, reduction, alpha)
    elif rule.kind == "absence":
        decision = _absence(rule, reduction, alpha, reference_verdict)
    else:
        decision = _change(rule, reduction, alpha, direction_for(rule, model))
    return replace(decision, p_fails=_p_fails(rule, reduction, decision.direction))


def _p_fails(rule: RuleSpec, reduction: Reduction, direction: str | None) -> float:
    """p-value of the side a ``fails`` verdict asserts (what a regression gate weighs a flip by)."""
    if rule.kind == "presence":
        return reduction.p_less(float(rule.delta))  # effect at or below delta
    if rule.kind == "absence":
        return reduction.restricted().p_greater(float(rule.epsilon))  # effect above epsilon
    delta = float(rule.delta)
    if direction == "increase":
        return reduction.p_less(delta)
    if direction == "decrease":
        return reduction.p_greater(-delta)
    return max(reduction.p_greater(-delta), reduction.p_less(delta))  # within +-delta


def _finite(b: Bounds) -> bool:
    return all(math.isfinite(v) for v in (b.value, b.low, b.high))


def _presence(rule: RuleSpec, reduction: Reduction, alpha: float) -> Decision:
    delta = float(rule.delta)  # validated by RuleSpec
    b = reduction.bounds(alpha)
    p = reduction.p_greater(delta)
    if not _finite(b):
        return Decision("error", f"non-finite effect or bounds {b}", b, p)
    text = _describe(b, alpha)
    if b.low > delta:
        return Decision("holds", f"{text}: lower bound above delta={delta:g}", b, p)
    if b.high <= delta:
        return Decision("fails", f"{text}: upper bound at or below delta={delta:g}", b, p)
    return Decision("inconclusive", f"{text}: straddles delta={delta:g}", b, p)


def _absence(rule: RuleSpec, reduction: Reduction, alpha: float, reference: Verdict | None) -> Decision:
    """Equivalence test: the bounds studentised as a score test (``Reduction.restricted``), since the plain
    upper bound is anti-conservative where the standard error shrinks with the estimate."""
    eps = float(rule.epsilon)  # validated by RuleSpec
    score = reduction.restricted()
    b = score.bounds(alpha)
    p = score.p_less(eps)
    if not _finite(b):
        plain = reduction.bounds(alpha)  # t^2 >= df: the score bound is unbounded, and records need numbers
        if _finite(plain):
            return Decision(
                "inconclusive",
                f"{_describe(plain, alpha)} (plain studentised): with {b.df:.1f} degrees of freedom no sample "
                f"can show an effect below epsilon={eps:g} (the equivalence test's score bound is unbounded)",
                plain,
                p,
                0.0,
            )
        return Decision("error", f"non-finite effect or bounds {b}", b, p)
    reduction = score
    power = reduction.power(eps, alpha)
    text = _describe(b, alpha)
    if b.low > eps:
        return Decision(
            "fails", f"{text}: lower bound above the equivalence margin epsilon={eps:g}", b, p, power
        )
    if b.high >= eps:
        return Decision("inconclusive", f"{text}: upper bound not below epsilon={eps:g}", b, p, power)
    if not (math.isfinite(power) and power >= rule.min_power):
        return Decision(
            "inconclusive",
            f"{text} is below epsilon={eps:g}, but the power to detect epsilon is {power:.2f} < {rule.min_power:g}",
            b,
            p,
            power,
        )
    if reference != "holds":
        return Decision(
            "inconclusive",
            f"{text} is below epsilon={eps:g}, but the positive reference on the same latents is "
            f"{reference or 'missing'}, so absence cannot be told from a blind pipeline",
            b,
            p,
            power,
        )
    return Decision(
        "holds", f"{text}: upper bound below epsilon={eps:g}, power {power:.2f}, reference holds", b, p, power
    )


def _change(rule: RuleSpec, reduction: Reduction, alpha: float, direction: str | None) -> Decision:
    delta = float(rule.delta)  # validated by RuleSpec
    if direction is not None:
        b = reduction.bounds(alpha)
        text = _describe(b, alpha) + f" (the paper's direction for this model: {direction})"
        if not _finite(b):
            return Decision("error", f"non-finite effect or bounds {b}", b, 1.0, direction=direction)
        if direction == "increase":
            p = reduction.p_greater(delta)
            if b.low > delta:
                return Decision(
                    "holds", f"{text}: lower bound above +delta={delta:g}", b, p, direction=direction
                )
            if b.high <= delta:
                return Decision(
                    "fails", f"{text}: upper bound at or below +delta={delta:g}", b, p, direction=direction
                )
        else:
            p = reduction.p_less(-delta)
            if b.high < -delta:
                return Decision(
                    "holds", f"{text}: upper bound below -delta={delta:g}", b, p, direction=direction
                )
            if b.low >= -delta:
                return Decision(
                    "fails", f"{text}: lower bound at or above -delta={delta:g}", b, p, direction=direction
                )
        return Decision(
            "inconclusive", f"{text}: the interval straddles the margin", b, p, direction=direction
        )
    b = reduction.bounds(alpha / 2)
    if not _finite(b):
        return Decision("error", f"non-finite effect or bounds {b}", b, 1.0)
    text = _describe(b, alpha / 2, "two-sided") + " (no paper direction for this model: either way)"
    p = min(1.0, 2 * min(reduction.p_greater(delta), reduction.p_less(-delta)))
    if b.low > delta:
        return Decision(
            "holds", f"{text}: a change upwards beyond delta={delta:g}", b, p, direction="increase"
        )
    if b.high < -delta:
        return Decision(
            "holds", f"{text}: a change downwards beyond delta={delta:g}", b, p, direction="decrease"
        )
    if b.low >= -delta and b.high <= delta:
        return Decision("fails", f"{text}: lies within +-delta={delta:g} (no change)", b, p)
    return Decision("inconclusive", f"{text}: neither beyond nor within +-delta={delta:g}", b, p)


def token_veto(
    decision: Decision, margins: dict[str, Estimate], *, delta: float, alpha: float, decides: bool
) -> Decision:
    """CLAIMS.md's token-identity control: an early effect that does not exceed each control representation
    by ``delta`` (lower bound of ``compared - control``) is labelled explained by tokens, and for claims about
    early layers (``decides``) a ``holds`` becomes ``inconclusive``."""
    if not margins:
        return decision
    short = [name for name, m in margins.items() if not m.bounds(alpha)[0] > delta]
    explained = bool(short)
    if explained and decides and decision.verdict == "holds":
        return Decision(
            "inconclusive",
            f"{decision.reason}; but explained by tokens: the compared band does not exceed "
            f"{' and '.join(short)} by delta={delta:g}",
            decision.bounds,
            decision.p_value,
            decision.power,
            decision.direction,
            True,
            decision.notes,
        )
    return Decision(
        decision.verdict,
        decision.reason,
        decision.bounds,
        decision.p_value,
        decision.power,
        decision.direction,
        explained,
        decision.notes,
    )
