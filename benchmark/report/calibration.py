"""The committed calibration file as a table: per claim, template and size its seeds, false-positive rate, power
and coverage, with their intervals (over populations where recorded) and whether each target is met.

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

#: Seeds the calibration issue asks for before a target counts as established.
SEEDS_REQUIRED = 500


def _rate(row: Mapping[str, Any]) -> str:
    """Holds over trials with the interval, and what it rests on: the populations where each seed's verdict was
    recorded (seeds of one population are correlated), else seeds taken as independent (``†``: too narrow)."""
    low, high = row["ci95"]
    text = f"{row['holds']}/{row['trials']} = {row['rate']:.1%} [{low:.1%}, {high:.1%}]"
    if "interval_populations" in row:
        return f"{text} over {row['interval_populations']} populations"
    return f"{text}†"


def fpr_status(entry: Mapping[str, Any], target: float) -> str:
    """``meets`` when the rate is at most the target (``meets (n seeds)`` before 500 seeds), ``misses`` when the
    lower Clopper-Pearson bound is above it, ``above target`` when the rate is above it without significance."""
    row = entry["boundary_null"]
    if row["trials"] == 0:
        return "not run"
    if row["rate"] <= target:
        return "meets" if entry["seeds"] >= SEEDS_REQUIRED else f"meets ({entry['seeds']} seeds)"
    return "misses" if row["ci95"][0] > target else "above target"


def power_status(entry: Mapping[str, Any], target: float) -> str:
    """``meets`` when the lower bound reaches the target, ``misses`` when the upper one is below it, else
    ``open``; a plant that could not be built counts as a miss."""
    row = entry["positive"]
    if entry.get("plant_failures"):
        return "misses (plant failed)"
    if row["trials"] == 0:
        return "not run"
    low, high = row["ci95"]
    if low >= target:
        return "meets" if entry["seeds"] >= SEEDS_REQUIRED else f"meets ({entry['seeds']} seeds)"
    if high < target:
        return "misses"
    return "open"


def coverage_cell(entry: Mapping[str, Any]) -> str:
    """How often each one-sided bound missed the planted population effect (nominal alpha)."""
    cov = entry.get("coverage")
    if not cov:
        return "-"
    return (
        f"low {100 * cov['lower_above_truth']:.1f}% / high {100 * cov['upper_below_truth']:.1f}% "
        f"(nominal {100 * cov['nominal']:.0f}%)"
    )


def _spread(row: Mapping[str, Any]) -> str:
    est = row.get("estimates") or {}
    if not est:
        return "-"
    return f"{est['mean']:.3g} ± {est['sd']:.2g} (population {est['population_mean']:.3g})"


def _code_cell(entry: Mapping[str, Any], current: str | None) -> str:
    """Whether the entry's counts came from the code checked out now (only those add up with new seeds), or were
    carried to it by a replay that reproduced their seeds' decisions (``benchmark.claims.replay``)."""
    code = entry.get("code")
    if code is None:
        return "unrecorded"
    if code != current:
        return f"other ({code[:8]})"
    trail = entry.get("carried") or []
    if not trail:
        return "current"
    return f"current (carried from {str(trail[0]['from'])[:8]}: {trail[-1]['decisions']} decisions replayed)"


def _split(key: str) -> tuple[str, str, str]:
    claim, template, size = key.split("|")
    return claim, template, size


def calibration_table(
    document: Mapping[str, Any], *, fmt_name: str = "github", current_code: str | None = None
) -> str:
    """claim | template | size | seeds | FPR | status | estimates at the boundary | power | status | coverage |
    pool | code, in CLAIMS.md order."""
    targets = document.get("targets", {})
    fpr_target, power_target = targets.get("false_positive_rate", 0.05), targets.get("power", 0.8)
    entries = document.get("entries", {})
    rows = []
    for key in sorted(entries, key=lambda k: (claim_sort_key(_split(k)[0]), _split(k)[1:])):
        claim, template, size = _split(key)
        entry = entries[key]
        if "boundary_null" not in entry:
            rows.append([claim, template, size, "-", entry.get("status", "not calibrated"), *[""] * 7])
            continue
        rows.append(
            [
                claim,
                template,
                size,
                entry["seeds"],
                f"{entry['boundary']:g}: {_rate(entry['boundary_null'])}",
                fpr_status(entry, fpr_target),
                _spread(entry["boundary_null"]),
                f"{entry['positive_size']:g}: {_rate(entry['positive'])}",
                power_status(entry, power_target),
                coverage_cell(entry),
                f"{entry['pool_model']} (pool {entry['pool_samples']}, sample {entry['sizes']}, {entry['budget']})",
                _code_cell(entry, current_code),
            ]
        )
    calibrated = {_split(k)[0] for k in entries}
    for claim in sorted(_descriptive_claims() - calibrated):  # no entry: say why rather than leave it out
        rows.append([claim, "-", "-", "-", DESCRIPTIVE_CELL, *[""] * 7])
    rows.sort(key=lambda row: (claim_sort_key(row[0]), row[1], row[2]))
    return tabulate(
        rows,
        headers=[
            "claim",
            "template",
            "size",
            "seeds",
            "boundary null holds (FPR)",
            "FPR status",
            "boundary-null estimates",
            "planted holds (power)",
            "power status",
            "coverage misses",
            "pool",
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


#: What the table and the verdict matrix say for a descriptive claim (one wording in both places).
DESCRIPTIVE_CELL = "descriptive: no verdict to calibrate"


def _descriptive_claims() -> set[str]:
    """Ids of the catalogue's descriptive claims (measured, no verdict, so never calibrated)."""
    from benchmark.claims.registry import all_claims

    return {spec.id for spec in all_claims() if spec.rule.descriptive}


def rule_calibration_cell(document: Mapping[str, Any], claim_id: str, template: str, size: str = "ci") -> str:
    """A claim's calibration in one cell of a verdict table: its rule's false-positive rate, power and coverage
    under that template, with **⚠** where a target is missed."""
    if document.get("stale"):
        return "calibration stale (recalibration pending)"
    entry = document.get("entries", {}).get(f"{claim_id}|{template}|{size}")
    if not entry or "boundary_null" not in entry:
        return DESCRIPTIVE_CELL if claim_id in _descriptive_claims() else "not calibrated"
    targets = document.get("targets", {})
    fpr = fpr_status(entry, targets.get("false_positive_rate", 0.05))
    power = power_status(entry, targets.get("power", 0.8))

    def part(name: str, rate: float, status: str) -> str:
        text = f"{name} {rate:.1%} {status}"
        return f"**⚠ {text}**" if status.startswith(("misses", "above")) else text

    return (
        f"{part('FPR', entry['boundary_null']['rate'], fpr)}; "
        f"{part('power', entry['positive']['rate'], power)}; coverage {coverage_cell(entry)} "
        f"({entry['seeds']} seeds)"
    )


def matrix_calibration_cell(
    document: Mapping[str, Any], claim_id: str, templates: list[str], size: str = "ci"
) -> str:
    """The verdict matrix's "rule calibration" cell: each template's entry at ``size`` (cross-model ids read
    their claim's), or one "calibration stale" when the file is marked stale; "no calibration file" without one."""
    if not document:
        return "no calibration file"
    if document.get("stale"):
        return "calibration stale (recalibration pending)"
    claim = claim_id.split("[", 1)[0]
    return "; ".join(f"{t}: {rule_calibration_cell(document, claim, t, size)}" for t in templates)


def load_reruns(folder: Path | None) -> list[dict[str, Any]]:
    """The rerun files of ``folder`` (``scripts/rerun_controls.py --out``); none when it does not exist."""
    if folder is None or not folder.is_dir():
        return []
    reruns = []
    for path in sorted(folder.glob("*.json")):
        try:
            reruns.append(json.loads(path.read_text(encoding="utf-8")))
        except ValueError as exc:
            raise ValueError(f"rerun file {path}: not JSON ({exc})") from exc
    return reruns


def rerun_applies(rerun: Mapping[str, Any], entry: Mapping[str, Any] | None) -> bool:
    """A rerun speaks for an entry when it replayed that entry's seeds: same claim, template and size, run on the
    entry's code or on code the entry was carried from (a carry reproduced the same decisions). A recalibrated
    entry has other seeds, so an older rerun no longer applies."""
    if not entry:
        return False
    codes = {entry.get("code")} | {str(step.get("from")) for step in entry.get("carried") or []}
    return rerun.get("code") in codes


def _rerun_rate(rate: Mapping[str, Any] | None) -> str:
    if rate is None:  # a rerun made before the script read it
        return "-"
    low, high = rate["ci95"]
    return f"{rate['holds']}/{rate['trials']} = {100 * rate['rate']:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"


def applicable_reruns(
    reruns: list[Mapping[str, Any]], document: Mapping[str, Any]
) -> list[Mapping[str, Any]]:
    """The reruns that still speak for an entry of ``document`` (:func:`rerun_applies`)."""
    entries = document.get("entries", {})
    return [r for r in reruns if rerun_applies(r, entries.get(f"{r['claim']}|{r['template']}|{r['size']}"))]


def rerun_table(reruns: list[Mapping[str, Any]]) -> str:
    """Reruns of calibration seeds (``scripts/rerun_controls.py``) as a Markdown table: per control the verdicts
    as calibrated, the rule before the token veto, the vetoes, and the rule and the verdict at a user's scatter."""
    rows = []
    for r in sorted(reruns, key=lambda r: (claim_sort_key(r["claim"]), r["template"], r["size"])):
        null, positive = r["summary"]["boundary_null"], r["summary"]["positive"]
        share = ", ".join(f"{u} {r['sizes'][u]}/{r['pool_levels'][u]}" for u in r["sizes"])
        vetoes = ", ".join(f"{c} {n}" for c, n in sorted(positive["vetoed_by"].items())) or "-"
        rows.append(
            [
                r["claim"],
                r["template"],
                r["size"],
                share,
                _rerun_rate(null["holds"]),
                _rerun_rate(null["rule_holds"]),
                _rerun_rate(null["user_rule_holds"]),
                _rerun_rate(null.get("user_holds")),
                _rerun_rate(positive["holds"]),
                _rerun_rate(positive["rule_holds"]),
                vetoes,
                _rerun_rate(positive["user_rule_holds"]),
                _rerun_rate(positive.get("user_holds")),
            ]
        )
    return tabulate(
        rows,
        headers=[
            "claim",
            "template",
            "size",
            "share of the pool",
            "boundary null holds",
            "rule alone",
            "rule, user's scatter",
            "verdict, user's scatter",
            "planted holds",
            "rule alone",
            "vetoed by",
            "rule, user's scatter",
            "verdict, user's scatter",
        ],
        tablefmt="github",
        disable_numparse=True,
    )


def _reruns_section(reruns: list[Mapping[str, Any]], document: Mapping[str, Any]) -> list[str]:
    applicable = applicable_reruns(reruns, document)
    if not applicable:
        return []
    return [
        "## Seeds rerun: the rule before the token veto, and a user's scatter",
        "",
        "Each row reran the first seeds of every population of the entry (`scripts/rerun_controls.py`; every "
        "final verdict matched the entry's record). `rule alone`: the rule before the token-identity veto. "
        "`rule, user's scatter`: each part's deviation from its population value scaled by `k = sqrt(sum_f v_f / "
        "sum_f (1 - f_f) v_f)`, so the estimate scatters as a user's sample of the same size would, drawn from an "
        "unlimited supply of units rather than half of a finite pool; its false-positive rate is the one a user "
        "gets, the entry's is optimistic. `verdict, user's scatter`: the same with the deciding token-control "
        "margins moved alike, then the veto (`-` for reruns made before the script computed it; equal to the "
        "rule's where no veto decides). Rows whose entry was recalibrated since are left out.",
        "",
        rerun_table(applicable),
        "",
    ]


def calibration_markdown(
    document: Mapping[str, Any],
    *,
    source: str,
    current_code: str | None = None,
    reruns: list[Mapping[str, Any]] | None = None,
) -> str:
    """``reports/calibration.md``: the design, the targets, how to read the statuses, the table, and the reruns
    that still apply to its entries."""
    targets = document.get("targets", {})
    return "\n".join(
        [
            "# Calibration of the claims' decision rules",
            "",
            f"Source: `{source}` (written {document.get('created', '?')} at commit "
            f"{str(document.get('git_commit', '?'))[:10]}).",
            "",
            "Design: each claim's pool is a real offline model's full-profile latents of its probe set, shuffled "
            "so the claim's structure is gone; label-dependent offsets are planted so that the population effect "
            "(the mean point estimate over samples of the calibrated size; for a min or max over parts, the min "
            "or max of the parts' means, the truth an intersection-union rule decides) is the rule's boundary (the boundary "
            "null: delta, or epsilon for absence claims) or `power_at` (the positive control; 0 for absence). Each "
            "seed draws a fresh sample of design units of that size and decides it with the claim's own rule and "
            "interval; every 50 seeds (20 at the full size, for entries that record it) use a new shuffle and "
            "new plant directions.",
            "",
            "Intervals: seeds of one population share its plant and are correlated (one population can hold 0 of "
            "50 seeds, another 8), so a rate's 95% interval is computed over populations where each seed's "
            "verdict was recorded (`over k populations`: Clopper-Pearson at the effective number of seeds, Korn "
            "and Graubard 1998); `†` marks an entry made before verdicts were recorded per seed, whose interval "
            "takes the seeds as independent and is too narrow by an unknown factor.",
            "",
            f"Targets: false-positive rate at most {targets.get('false_positive_rate', 0.05):.0%} and power's lower "
            f"bound at least {targets.get('power', 0.8):.0%}, at {SEEDS_REQUIRED} seeds. "
            "`coverage misses`: the share of seeds whose lower bound lay above the planted population effect "
            "(low) or whose upper bound lay below it (high), nominal alpha each. `code`: whether the counts came "
            "from the code checked out when this page was written (only such counts add up with new seeds); "
            "`carried`: made by earlier code whose decisions this code reproduced bit for bit on the entry's "
            "first seeds (`lalm-bench calibrate --replay`; `benchmark/claims/replay.py`).",
            "",
            calibration_table(document, current_code=current_code),
            "",
            *_reruns_section(reruns or [], document),
        ]
    )
