"""Adopt calibration entries decided again on the same seeds (to record each seed's verdict) into the committed file.

Why: entries made before verdicts were recorded per seed can only show an interval that takes seeds as
independent (``†`` in the table). Running the same seeds again with the same code gives the same counts plus
each seed's verdict, so the interval over populations can be computed. Written to another file first (a run
cut short must never replace a complete entry), then adopted here only where the new entry is the old one
decided again: same code and replay digest, same seeds, counts and coverage misses, estimates and planted
effects within ``--tolerance`` (latents extracted again since move a rank statistic's ties and its solved plant
a little). Usage::

    lalm-bench calibrate --profile ci --seeds 500 --jobs 2 --claim ID --template T --out /tmp/retally.json
    python scripts/adopt_retallied_entries.py /tmp/retally.json [--file benchmark/claims/calibration.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmark.claims.evaluate import CALIBRATION_FILE
from benchmark.claims.replay import CONTROLS, update_entries


def _deviations(old: dict[str, Any], new: dict[str, Any]) -> list[float]:
    return [
        abs(a - b)
        for control in CONTROLS
        for name in ("estimates", "truths")
        for a, b in zip(old[control]["raw"][name], new[control]["raw"][name], strict=True)
    ]


def same_draws(old: dict[str, Any], new: dict[str, Any], tolerance: float) -> str | None:
    """Why ``new`` is not ``old`` decided again, or None when it is."""
    if old.get("code") != new.get("code"):
        return "other verdict code"
    if old.get("replay", {}).get("digest") != new.get("replay", {}).get("digest"):
        return "replay digests differ"
    for control in CONTROLS:
        if old[control]["raw"]["seeds"] != new[control]["raw"]["seeds"]:
            return f"{control}: other seeds"
        for name in ("holds", "trials", "coverage_misses"):
            if old[control][name] != new[control][name]:
                return f"{control}: {name} {old[control][name]} -> {new[control][name]}"
    worst = max(_deviations(old, new), default=0.0)
    return None if worst <= tolerance else f"estimates moved by up to {worst:.3g} (> {tolerance:g})"


def adopted(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` with a record of what it replaced and how closely it reproduced it."""
    gaps = _deviations(old, new)
    beyond = sum(g > 2e-6 for g in gaps)
    return {
        **new,
        "retallied": {
            "why": "the same seeds decided again to record each seed's verdict (intervals over populations); "
            "counts, coverage misses, seeds and replay digest identical to the entry it replaces; estimates "
            f"and planted effects within {max(gaps, default=0.0):.2g} of the stored ones ({beyond} of "
            f"{len(gaps)} beyond their 6th decimal: latents extracted again since)",
            "largest_deviation": max(gaps, default=0.0),
            "values_beyond_6th_decimal": beyond,
            "replaces_created": old.get("created"),
            "replaces_carried": old.get("carried", []),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("retallied", type=Path, help="calibration file the new run wrote (--out)")
    parser.add_argument("--file", type=Path, default=CALIBRATION_FILE, help="the committed calibration file")
    parser.add_argument("--tolerance", type=float, default=0.05, help="largest estimate deviation accepted")
    args = parser.parse_args()
    new_entries = json.loads(args.retallied.read_text(encoding="utf-8"))["entries"]
    refused = 0

    def change(entries: dict[str, Any]) -> dict[str, Any]:
        nonlocal refused
        out = dict(entries)
        for key, new in sorted(new_entries.items()):
            old = entries.get(key)
            why = "no committed entry" if old is None else same_draws(old, new, args.tolerance)
            if why is not None:
                refused += 1
                print(f"{key}: not adopted ({why})")
                continue
            out[key] = adopted(old, new)
            row = new["boundary_null"]
            print(f"{key}: adopted; FPR {row['holds']}/{row['trials']} interval {row['ci95']}")
        return out

    update_entries(args.file, change)
    return int(refused > 0)


if __name__ == "__main__":
    raise SystemExit(main())
