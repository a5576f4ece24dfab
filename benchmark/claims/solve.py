"""The offset scale at which a planted effect reaches its target: shared by every claim's positive controls.

Calibration plants an effect of exactly a rule's delta (or epsilon) into real latents, hundreds of times per
claim, and each evaluation of the planted effect is a measure run with its own small permutation null. So the
number of evaluations is what calibration costs. ``scipy.optimize.brentq`` stops on the scale's tolerance; this
one stops as soon as the *effect* is within a relative tolerance of its target, which is what "exactly delta"
needs, and it reuses the bracket's values instead of evaluating its ends again.
"""

from __future__ import annotations

from collections.abc import Callable

#: An effect at most this fraction above its target counts as planted exactly (the pilot's null is noisier).
REL_TOL = 0.02
#: A bracket this narrow (relative) with the target still not met means the effect curve jumps over it.
BRACKET_TOL = 1e-3


def plant_scale(
    effect_at: Callable[[float], float],
    target: float,
    *,
    what: str,
    start: float = 0.25,
    limit: float = 512.0,
    rel_tol: float = REL_TOL,
    max_steps: int = 12,
) -> float:
    """Scale ``s >= 0`` whose effect reaches ``target`` and exceeds it by at most ``rel_tol`` (relative).

    Never below the target: a boundary null planted a little under delta (or epsilon) would flatter the
    false-positive rate, so the solver errs the other way. ``effect_at`` is increasing in ``s``.

    Returns 0 when the unplanted effect already reaches the target (a plant only adds structure). The bracket
    grows by doubling from ``start``; inside it, Illinois regula falsi (a secant step that halves the stale
    end's weight) converges in a handful of evaluations on the smooth effect curves of the measures. Where the
    curve jumps over the target, the smallest scale found whose effect reaches it is returned. Raises
    ``ValueError`` naming ``what`` when no scale up to ``limit`` reaches the target.
    """
    half = 0.5 * rel_tol * max(abs(target), 1e-3)
    aim = target + half  # the middle of the accepted band [target, target + 2 * half]
    base_effect = effect_at(0.0)
    if base_effect >= target:
        return 0.0
    lo, f_lo = 0.0, base_effect - aim
    hi = start
    f_hi = effect_at(hi) - aim
    while f_hi < 0:
        lo, f_lo, hi = hi, f_hi, hi * 2.0
        if hi > limit:
            raise ValueError(
                f"plant for {what}: no offset scale up to {limit:g} reaches an effect of {target:g}"
            )
        f_hi = effect_at(hi) - aim
    if f_hi <= half:
        return hi
    side = 0
    for _ in range(max_steps):
        s = hi - f_hi * (hi - lo) / (f_hi - f_lo)
        f = effect_at(s) - aim
        if abs(f) <= half:
            return s
        if f > 0:
            hi, f_hi = s, f
            if side == 1:
                f_lo /= 2.0
            side = 1
        else:
            lo, f_lo = s, f
            if side == -1:
                f_hi /= 2.0
            side = -1
        if hi - lo <= BRACKET_TOL * hi:
            break
    # The effect jumps over the target (a rank or purity statistic): the smallest scale found that reaches it.
    # For a boundary null that errs towards planting more than delta, so a false-positive rate is never flattered.
    return hi
