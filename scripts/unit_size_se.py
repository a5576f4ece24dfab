"""How a claim's standard error would change with the size of its sample: the jackknife standard error of the
claim's own measure on real pool latents, at several sample designs, before a probe set is raised.

Why: a power miss is fixed in the claim, often with more design units, and a raise costs a new pool, a
recalibration and a longer main job. This measures what a candidate design buys on the data the calibration
will draw from, so the size is chosen before calibrating, not by calibrating until a size passes. The latents
are the pool's as extracted (no plant), the budget is the full one, and each design is drawn ``--reps`` times
(the units picked at random, with a fixed seed), so the printed spread shows how much the figure itself moves.

Usage::

    python scripts/unit_size_se.py --claim S4-single-voice-early --template bare \\
        --design meaning_id=8 --design meaning_id=16 --design meaning_id=8:device=clean,telephone [--reps 6]

A design is ``unit=N`` (N levels of that unit factor, drawn from the pool's) joined by ``:`` with any
``axis=a,b`` restrictions (only those levels of the axis). Unit factors not named keep all their levels.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import numpy as np

from benchmark.claims.data import Budget, ClaimData
from benchmark.claims.evaluate import measure
from benchmark.claims.spec import ClaimSpec
from benchmark.cli.main import build_parser
from benchmark.run.options import CalibrateOptions, typed_options
from benchmark.run.session import calibration_tasks


@dataclass(frozen=True)
class Design:
    """Levels to draw per unit factor, and levels to keep per other axis."""

    text: str
    draw: dict[str, int]
    keep: dict[str, tuple[str, ...]]


def parse_design(text: str) -> Design:
    draw: dict[str, int] = {}
    keep: dict[str, tuple[str, ...]] = {}
    for part in filter(None, text.split(":")):
        axis, sep, value = part.partition("=")
        if not (axis and sep and value):
            raise SystemExit(f"--design {text!r}: {part!r} is not axis=N or axis=a,b")
        if value.isdigit():
            draw[axis] = int(value)
        else:
            keep[axis] = tuple(value.split(","))
    return Design(text, draw, keep)


def sample_mask(pool: ClaimData, design: Design, rng: np.random.Generator) -> np.ndarray:
    """Rows of one draw of ``design`` from the pool; an error names an axis or a count the pool lacks."""
    mask = np.ones(len(pool.samples), dtype=bool)
    for axis, levels in design.keep.items():
        labels = np.asarray(pool.labels(axis))
        missing = set(levels) - set(labels.tolist())
        if missing:
            raise SystemExit(f"--design {design.text!r}: {axis} has no level {sorted(missing)} in the pool")
        mask &= np.isin(labels, levels)
    for axis, n in design.draw.items():
        labels = np.asarray(pool.labels(axis))
        present = sorted(set(labels[mask].tolist()))
        if n > len(present):
            raise SystemExit(f"--design {design.text!r}: {axis}={n}, the pool has {len(present)} levels")
        mask &= np.isin(labels, rng.choice(present, n, replace=False))
    return mask


def one_draw(
    spec: ClaimSpec, pool: ClaimData, mask: np.ndarray, budget: Budget, seed: int
) -> dict[str, float]:
    """The claim's effect, its reduced lower bound and the jackknife standard error per unit factor."""
    measured = measure(spec, pool.subset(mask), budget, np.random.default_rng([seed, 104729]))
    reduction = measured.reduction
    row = {"value": reduction.value, "low": reduction.bounds(spec.rule.alpha).low}
    combined = reduction.combined
    if combined is not None:  # a single estimate: its se, and each factor's share of the variance
        row["se"] = combined.se
        # The kit's own per-factor jackknife variances (in the order of its replicates), not a copy of the formula.
        for factor, (variance, _) in zip(combined.replicates, combined._parts(), strict=True):
            row[f"se[{factor}]"] = float(np.sqrt(variance))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claim", required=True)
    parser.add_argument("--template", required=True)
    parser.add_argument("--design", action="append", required=True, help="repeatable; see the module's doc")
    parser.add_argument("--reps", type=int, default=6, help="draws per design")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    argv_cal = ["calibrate", "--profile", "full", "--claim", args.claim, "--template", args.template]
    options = typed_options(
        build_parser().parse_args([*argv_cal, "--device", args.device, "--quiet"]), CalibrateOptions
    )
    ((spec, pool, sizes),) = calibration_tasks(options)
    print(f"{spec.id} {pool.template}: pool of {len(pool.samples)} inputs; the full size samples {sizes}")
    budget = Budget.for_profile("full")
    rng = np.random.default_rng(args.seed)
    for text in args.design:
        design = parse_design(text)
        rows = [one_draw(spec, pool, sample_mask(pool, design, rng), budget, rep) for rep in range(args.reps)]
        keys = list(rows[0])
        means = {k: float(np.mean([r[k] for r in rows])) for k in keys}
        spread = float(np.std([r["value"] for r in rows], ddof=1)) if len(rows) > 1 else float("nan")
        print(
            f"{text}: {len(rows)} draws, "
            + ", ".join(f"mean {k} {v:.4f}" for k, v in means.items())
            + f", sd of value {spread:.4f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
