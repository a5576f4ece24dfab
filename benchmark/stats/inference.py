"""Permutation p-values and the band layout shared by the statistics.

Net effects, their jackknife intervals and their reductions are :mod:`benchmark.stats.kit`; this module keeps
what every statistic shares: the permutation p-value ``(b + 1) / (B + 1)`` (never 0) and the thirds of the
blocks that the bands are.
"""

from __future__ import annotations

import numpy as np

from ._checks import check_positive_int


def p_value(
    observed: np.ndarray | float, null: np.ndarray, *, alternative: str = "greater"
) -> np.ndarray | float:
    """Permutation p-value ``(b + 1) / (B + 1)``.

    ``null`` is ``[B]`` or ``[B, ...]`` matching ``observed``; ``b`` counts null values ``>= observed``
    (``alternative="greater"``) or ``<= observed`` ("less"). Lies in ``[1/(B+1), 1]``.
    """
    null = np.asarray(null, dtype=np.float64)
    obs = np.asarray(observed, dtype=np.float64)
    if null.ndim < 1 or null.shape[0] < 1 or null.shape[1:] != obs.shape:
        raise ValueError(f"null must be [B, *observed.shape]; got {null.shape} for observed {obs.shape}")
    if alternative == "greater":
        b = (null >= obs - 1e-12 * np.abs(obs)).sum(axis=0)
    elif alternative == "less":
        b = (null <= obs + 1e-12 * np.abs(obs)).sum(axis=0)
    else:
        raise ValueError(f"alternative must be 'greater' or 'less'; got {alternative!r}")
    p = (b + 1.0) / (null.shape[0] + 1.0)
    return float(p) if p.ndim == 0 else p


def bands(num_blocks: int) -> dict[str, np.ndarray]:
    """Block indices of the early, middle and late bands of ``block0..block{num_blocks-1}``.

    Thirds with edges ``round(num_blocks * k / 3)``, so early and late have equal size and the middle band takes
    the remainder (28 blocks: 9, 10, 9; 32 blocks: 11, 10, 11). Needs ``num_blocks >= 3``.
    """
    num_blocks = check_positive_int(num_blocks, name="num_blocks", minimum=3)
    e1, e2 = round(num_blocks / 3), num_blocks - round(num_blocks / 3)
    idx = np.arange(num_blocks)
    return {"early": idx[:e1], "middle": idx[e1:e2], "late": idx[e2:]}
