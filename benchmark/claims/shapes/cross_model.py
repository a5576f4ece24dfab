"""Cross-model claims (T7): a part of another claim compared between two models' records.

The effect is ``part(B) - part(A)``. Both records carry the part's delete-one-unit jackknife replicates
(``payloads["parts"]``); on the same probe set the units are the same meanings, so the difference is paired unit
by unit (``rB_i - rA_i``) and its jackknife sees the models' shared units. Records of different unit levels
combine as independent estimates (variances add).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmark.claims.record import Measurement
from benchmark.claims.shapes import Measured
from benchmark.claims.spec import CrossModel
from benchmark.stats.kit import Estimate, Reduction


def _part(measurement: Measurement | None, part: str, which: str) -> dict[str, Any]:
    parts = (measurement.payloads.get("parts") if measurement is not None else None) or {}
    if part not in parts:
        raise ValueError(f"record {which} has no jackknife replicates of part {part!r} (payloads['parts'])")
    return parts[part]


def difference(measure: CrossModel, a: Measurement | None, b: Measurement | None) -> Measured:
    """``part(B) - part(A)`` with its jackknife replicates (paired where the unit levels match)."""
    pa, pb = _part(a, measure.part, "A"), _part(b, measure.part, "B")
    value = float(pb["value"]) - float(pa["value"])
    paired = pa["levels"] == pb["levels"]
    replicates: dict[str, np.ndarray] = {}
    if paired:
        for unit, reps in pa["replicates"].items():
            replicates[unit] = np.asarray(pb["replicates"][unit]) - np.asarray(reps)
    else:
        for unit, reps in pa["replicates"].items():
            replicates[f"A:{unit}"] = float(pb["value"]) - np.asarray(reps)
        for unit, reps in pb["replicates"].items():
            replicates[f"B:{unit}"] = np.asarray(reps) - float(pa["value"])
    estimate = Estimate(value=value, replicates=replicates, null=np.zeros(1))
    n_units = {u: len(levels) for u, levels in pa["levels"].items()}
    how = "paired by unit (the same levels in both records)" if paired else "independent (unit levels differ)"
    return Measured(
        reduction=Reduction("single", (estimate,), (f"{measure.part}[B]-{measure.part}[A]",)),
        n_units=n_units,
        n_samples=(a.n_samples if a else 0) + (b.n_samples if b else 0),
        resampling=f"difference of the two records' part {measure.part!r}, delete-one-unit jackknife {how}",
        numbers={f"{measure.part}/A": float(pa["value"]), f"{measure.part}/B": float(pb["value"])},
    )
