"""Measure shapes: how a claim's latents become the quantity its rule decides.

One module per shape with one job each; a claim file names its shape in ``measure.shape``:

- :mod:`.band_contrast`: components (scores of labellings, net per layer) -> parts -> reduction. Most claims.
- :mod:`.metric_agreement`: do several clustering metrics rank the layers alike (Q1).
- :mod:`.cross_model`: a part of another claim compared between two models' records (T7).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benchmark.stats.kit import Estimate, Reduction


@dataclass
class Measured:
    """What a shape hands the verdict: the reduced quantity, and everything reported beside it."""

    reduction: Reduction
    n_units: dict[str, int]
    n_samples: int
    resampling: str
    curves: dict[str, list[float]] = field(default_factory=dict)
    numbers: dict[str, float] = field(default_factory=dict)
    payloads: dict[str, Any] = field(default_factory=dict)
    #: token control: ``compare - control`` per control representation (the claim's delta decides "exceeds")
    control_margins: dict[str, Estimate] = field(default_factory=dict)
    #: the representations whose margins decide the token veto under this template (the others are reported)
    deciding_controls: tuple[str, ...] = ("tok_last", "tok_mean")
    #: the compared value and each control's value of the per-layer measure
    control_values: dict[str, float] = field(default_factory=dict)
    control_note: str = ""
