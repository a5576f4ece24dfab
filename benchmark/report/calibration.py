"""The committed calibration file as a table: per claim its seeds, false-positive rate and power with their
Clopper-Pearson intervals, and whether each target is met or not yet established.

Why apart from ``benchmark.claims.calibrate``: that module runs controls and must stay byte-stable while a
long calibration adds seed ranges (its code hash gates the merge); wording and layout live here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tabulate import tabulate

from benchmark.report._common import claim_sort_key

#: Seeds the claims issue asks for before a target counts as established.
SEEDS_REQUIRED = 500


def _rate(row: Mapping[str, Any]) -> str:
    low, high = row["ci95"]
    return f"{row['holds']}/{row['trials']} = {row['rate']:.1%} [{low:.1%}, {high:.1%}]"


def fpr_status(entry: Mapping[str, Any], target: float) -> str:
    """``meets`` when the upper 95% bound is under the target, ``misses`` when the lower one is above it,
    else ``open`` (more seeds needed); a rate under the target with fewer than 500 seeds says so."""
    low, high = entry["boundary_null"]["ci95"]
    if high <= target:
        return "meets" if entry["seeds"] >= SEEDS_REQUIRED else "meets (bound)"
    if low > target:
        return "misses"
    return "open"


def power_status(entry: Mapping[str, Any], target: float) -> str:
    """``meets`` when the lower 95% bound reaches the target, ``misses`` when the upper one is below it,
    else ``open``; a plant that could not be built counts as a miss."""
    low, high = entry["positive"]["ci95"]
    if entry.get("plant_failures"):
        return "misses (plant failed)"
    if low >= target:
        return "meets" if entry["seeds"] >= SEEDS_REQUIRED else "meets (bound)"
    if high < target:
        return "misses"
    return "open"


def _code_cell(entry: Mapping[str, Any], current: str | None) -> str:
    """Whether the entry's counts came from the code checked out now (only those add up with new seeds)."""
    code = entry.get("code")
    if code is None:
        return "unrecorded"
    return "current" if code == current else f"other ({code[:8]})"


def calibration_table(
    document: Mapping[str, Any], *, fmt_name: str = "github", current_code: str | None = None
) -> str:
    """claim | seeds | boundary | FPR | status | planted | power | status | base | code, in CLAIMS.md order."""
    targets = document.get("targets", {})
    fpr_target, power_target = targets.get("false_positive_rate", 0.05), targets.get("power", 0.8)
    rows = []
    for claim_id in sorted(document.get("claims", {}), key=claim_sort_key):
        entry = document["claims"][claim_id]
        if "boundary_null" not in entry:
            rows.append(
                [claim_id, "-", "-", entry.get("status", "not calibrated"), "", "-", "-", "", "-", "-"]
            )
            continue
        rows.append(
            [
                claim_id,
                entry["seeds"],
                f"{entry['boundary']:g}",
                _rate(entry["boundary_null"]),
                fpr_status(entry, fpr_target),
                f"{entry['positive_size']:g}",
                _rate(entry["positive"]),
                power_status(entry, power_target),
                f"{entry['base_model']} (n={entry['n_samples']}, {entry['budget']})",
                _code_cell(entry, current_code),
            ]
        )
    return tabulate(
        rows,
        headers=[
            "claim",
            "seeds",
            "boundary",
            "boundary null holds (FPR)",
            "FPR status",
            "planted",
            "planted holds (power)",
            "power status",
            "base latents",
            "code",
        ],
        tablefmt=fmt_name,
        disable_numparse=True,
    )


def load_calibration(path: Path | None = None) -> dict[str, Any]:
    """The calibration document (default: the committed file); empty when there is none or it is unreadable,
    since a report must still render without one."""
    from benchmark.claims.evaluate import CALIBRATION_FILE

    source = path or CALIBRATION_FILE
    try:
        return json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def rule_calibration_cell(document: Mapping[str, Any], claim_id: str) -> str:
    """A claim's calibration in one cell of a verdict table: its rule's false-positive rate and power, with
    **⚠** where a target is missed, so a reader weighs a verdict by how well its rule was shown to work."""
    entry = document.get("claims", {}).get(claim_id)
    if not entry or "boundary_null" not in entry:
        return "not calibrated"
    targets = document.get("targets", {})
    fpr = fpr_status(entry, targets.get("false_positive_rate", 0.05))
    power = power_status(entry, targets.get("power", 0.8))

    def part(name: str, rate: float, status: str) -> str:
        text = f"{name} {rate:.1%} {status}"
        return f"**⚠ {text}**" if status.startswith("misses") else text

    return (
        f"{part('FPR', entry['boundary_null']['rate'], fpr)}; "
        f"{part('power', entry['positive']['rate'], power)} "
        f"({entry['seeds']} seeds, n={entry['n_samples']})"
    )


def calibration_markdown(document: Mapping[str, Any], *, source: str, current_code: str | None = None) -> str:
    """``reports/calibration.md``: the targets, how to read the statuses, and the table."""
    targets = document.get("targets", {})
    return "\n".join(
        [
            "# Calibration of the claims' decision rules",
            "",
            f"Source: `{source}` (written {document.get('created', '?')} at commit "
            f"{str(document.get('git_commit', '?'))[:10]}).",
            "",
            f"Targets: false-positive rate at most {targets.get('false_positive_rate', 0.05):.0%} (the boundary "
            f"null: delta planted for a presence claim, epsilon for an absence claim) and power at least "
            f"{targets.get('power', 0.8):.0%} (the `planted` effect: `power_at` for presence, 0 for absence), "
            f"each established at {SEEDS_REQUIRED} seeds. Intervals are Clopper-Pearson 95%. `meets (bound)`: "
            "the upper bound is already under the target with fewer seeds; `open`: the interval straddles "
            "the target, more seeds decide. `code`: whether the counts came from the measures, plants and "
            "rules checked out when this page was written (only such counts add up with new seed ranges).",
            "",
            calibration_table(document, current_code=current_code),
            "",
        ]
    )
