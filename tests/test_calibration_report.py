"""The calibration table and cells (schema calibration/2, entries keyed claim|template|size): statuses follow the
Clopper-Pearson bounds, never the bare rate; a stale file says so wherever a verdict table cites it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from benchmark.claims.calibrate import ControlTally, _summary
from benchmark.report.calibration import (
    calibration_table,
    fpr_status,
    matrix_calibration_cell,
    power_status,
    rule_calibration_cell,
)

TARGETS = {"false_positive_rate": 0.05, "power": 0.8, "seeds_required": 500}


def tally(holds: int, trials: int, truth: float = 0.1) -> ControlTally:
    """``holds`` of ``trials`` seeds held, spread evenly over the seeds (so over populations); estimates spread
    around the planted population effect."""
    out = ControlTally()
    for i in range(trials):
        out.add(
            "holds" if (i * holds) % trials < holds else "inconclusive",
            truth + 0.01 * (i % 5 - 2),
            truth - 0.05,
            truth + 0.05,
            truth,
        )
    return out


def entry(null: tuple[int, int], pos: tuple[int, int], seeds: int, **extra: object) -> dict:
    row = _summary(
        tally(*null),
        tally(*pos, truth=0.2),
        seed_ranges=[[0, seeds]],
        failures=[],
        population_size=50,
        extra={
            "boundary": 0.1,
            "positive_size": 0.2,
            "budget": "ci",
            "sizes": {"meaning_id": 12},
            "pool_samples": 608,
            "populations": {"boundary_null": [], "positive": []},
        },
        alpha=0.05,
    )
    return {**row, "pool_model": "gemma-3-270m-q4km", "code": "abc", "version": 2, **extra}


def document(entries: dict[str, dict], **extra: object) -> dict:
    return {"schema": "calibration/2", "targets": TARGETS, "entries": entries, **extra}


def test_statuses_follow_the_interval() -> None:
    assert fpr_status(entry((0, 500), (500, 500), 500), 0.05) == "meets"
    assert fpr_status(entry((0, 250), (250, 250), 250), 0.05) == "meets (250 seeds)"
    assert (
        fpr_status(entry((2, 20), (20, 20), 20), 0.05) == "above target"
    )  # 10% observed, bound not above 5%
    assert fpr_status(entry((62, 250), (250, 250), 250), 0.05) == "misses"  # lower bound above 5%
    assert power_status(entry((0, 500), (281, 500), 500), 0.8) == "misses"
    assert power_status(entry((0, 20), (17, 20), 20), 0.8) == "open"
    assert power_status(entry((0, 20), (20, 20), 20, plant_failures=2), 0.8) == "misses (plant failed)"


def test_table_orders_claims_then_templates_and_marks_counts_of_other_code() -> None:
    doc = document(
        {
            "S1-speech-transcript-late|bare|ci": entry((0, 20), (20, 20), 20, code="other-code"),
            "T1-paraphrase-closer|shared-suffix|ci": {
                **entry((0, 500), (490, 500), 500),
                "carried": [{"from": "2229bb50d5", "to": "abc", "commit": "x", "at": "now", "decisions": 20}],
            },
            "T1-paraphrase-closer|bare|ci": entry((0, 500), (490, 500), 500),
            "M1-modality-separate|shared-suffix|ci": {
                "status": "not calibrated: no base latents for crossmodal"
            },
        }
    )
    table = calibration_table(doc, current_code="abc")
    lines = [line for line in table.splitlines() if line.startswith("| ")][1:]
    assert [tuple(c.strip() for c in line.split("|")[1:3]) for line in lines] == [
        ("T1-paraphrase-closer", "bare"),
        ("T1-paraphrase-closer", "shared-suffix"),
        ("S1-speech-transcript-late", "bare"),
        ("D1-no-demography", "-"),  # descriptive: listed with why it has no entry
        ("M1-modality-separate", "shared-suffix"),
    ]
    header = [cell.strip() for cell in table.splitlines()[0].strip("|").split("|")]
    cells = dict(zip(header, (cell.strip() for cell in lines[0].strip("|").split("|")), strict=True))
    assert cells["seeds"] == "500" and cells["power status"] == "meets" and cells["code"] == "current"
    assert cells["size"] == "ci" and cells["boundary null holds (FPR)"].startswith("0.1: 0/500")
    assert "other (other-co)" in lines[2] and "not calibrated" in lines[4]
    assert "current (carried from 2229bb50: 20 decisions replayed)" in lines[1]


def test_cells_read_each_template_and_mark_misses() -> None:
    doc = document(
        {
            "S4-single-voice-early|bare|ci": entry((0, 500), (300, 500), 500),
            "S4-single-voice-early|shared-suffix|ci": entry((5, 500), (490, 500), 500),
        }
    )
    weak = rule_calibration_cell(doc, "S4-single-voice-early", "bare")
    assert weak.startswith("FPR 0.0% meets; **⚠ power 60.0% misses**") and "(500 seeds)" in weak
    assert "⚠" not in rule_calibration_cell(doc, "S4-single-voice-early", "shared-suffix")
    assert rule_calibration_cell(doc, "S4-single-voice-early", "bare", size="full") == "not calibrated"
    both = matrix_calibration_cell(doc, "S4-single-voice-early", ["bare", "shared-suffix"])
    assert both.startswith("bare: FPR 0.0% meets; **⚠ power") and "; shared-suffix: FPR 1.0% meets" in both
    assert matrix_calibration_cell(doc, "T7-training-mix-shifts-cjk[a~b]", ["bare"]) == "bare: not calibrated"


def test_a_stale_file_says_so_and_an_absent_one_too() -> None:
    doc = document({"S4-single-voice-early|bare|ci": entry((0, 500), (500, 500), 500)}, stale=True)
    assert (
        rule_calibration_cell(doc, "S4-single-voice-early", "bare")
        == "calibration stale (recalibration pending)"
    )
    assert matrix_calibration_cell(doc, "S4-single-voice-early", ["bare"]).startswith("calibration stale")
    assert matrix_calibration_cell({}, "S4-single-voice-early", ["bare"]) == "no calibration file"


def test_the_committed_file_is_calibration_2_and_marked_stale() -> None:
    committed = json.loads((Path(__file__).parents[1] / "benchmark/claims/calibration.json").read_text())
    assert committed["schema"] == "calibration/2" and isinstance(committed["entries"], dict)
    cell = matrix_calibration_cell(committed, "T3-text-language-early-late", ["bare", "shared-suffix"])
    if committed.get("stale"):
        assert cell == "calibration stale (recalibration pending)"
    else:
        assert cell.startswith("bare: ") and "; shared-suffix: " in cell


def test_the_committed_file_was_computed_by_todays_verdict_code() -> None:
    """Every committed entry carries the hash of the code that decides verdicts today, and every deciding
    single-model claim has an entry at the ci size under each template it runs; or the file says it is stale.
    Why: a changed statistic makes every count in the file describe code that no longer runs."""
    from benchmark.claims.evaluate import verdict_code_sha256
    from benchmark.claims.registry import all_claims

    committed = json.loads((Path(__file__).parents[1] / "benchmark/claims/calibration.json").read_text())
    if committed.get("stale"):
        return
    current = verdict_code_sha256()
    old = sorted(key for key, entry in committed["entries"].items() if entry.get("code") != current)
    assert not old, f"entries computed by other verdict code (recalibrate, or mark the file stale): {old}"
    wanted = {
        f"{spec.id}|{template}|ci"
        for spec in all_claims()
        if not spec.cross_model and not spec.rule.descriptive
        for template in spec.templates.run
    }
    assert not sorted(wanted - set(committed["entries"])), "claims x templates with no ci entry"


def test_cli_reads_entries_and_names_a_file_that_is_not_a_calibration(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"claims": {}}))
    done = subprocess.run(
        [sys.executable, "-m", "benchmark.cli.main", "calibration-report", "--file", str(bad)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and f"calibration file {bad}: no 'entries' mapping" in done.stderr
    good = tmp_path / "c.json"
    good.write_text(json.dumps(document({"T1-paraphrase-closer|bare|ci": entry((0, 500), (490, 500), 500)})))
    out = tmp_path / "c.md"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmark.cli.main",
            "calibration-report",
            "--file",
            str(good),
            "--markdown",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "T1-paraphrase-closer" in done.stdout
    assert re.search(r"\| T1-paraphrase-closer \| bare +\| ci +\| 500 +\|", out.read_text())


def _rerun(code: str, null_holds: int = 1) -> dict:
    def rate(holds: int) -> dict:
        return {"holds": holds, "trials": 20, "rate": holds / 20, "ci95": [0.0, 0.3], "design_effect": 1.0}

    control = {"holds": rate(0), "rule_holds": rate(0), "user_rule_holds": rate(null_holds), "vetoed_by": {}}
    positive = {
        "holds": rate(13),
        "rule_holds": rate(19),
        "user_rule_holds": rate(18),
        "vetoed_by": {"tok_mean": 6},
    }
    return {
        "claim": "T1-paraphrase-closer",
        "template": "bare",
        "size": "full",
        "code": code,
        "sizes": {"pair_id": 36},
        "pool_levels": {"pair_id": 72},
        "summary": {"boundary_null": control, "positive": positive},
    }


def test_a_rerun_applies_to_its_entry_and_the_code_it_was_carried_from_only() -> None:
    from benchmark.report.calibration import calibration_markdown, rerun_applies

    carried = entry(
        (0, 200), (115, 200), 200, code="new", carried=[{"from": "old", "to": "new", "decisions": 20}]
    )
    assert rerun_applies(_rerun("new"), carried)
    assert rerun_applies(_rerun("old"), carried)
    recalibrated = entry((0, 200), (115, 200), 200, code="new")
    assert not rerun_applies(_rerun("old"), recalibrated)  # other seeds now: the rerun says nothing of them
    assert not rerun_applies(_rerun("new"), None)

    page = calibration_markdown(
        document({"T1-paraphrase-closer|bare|full": carried}), source="x", reruns=[_rerun("old", 3)]
    )
    assert "user's scatter" in page and "3/20 = 15.0%" in page and "tok_mean 6" in page
    page = calibration_markdown(
        document({"T1-paraphrase-closer|bare|full": recalibrated}), source="x", reruns=[_rerun("old", 3)]
    )
    assert "Seeds rerun" not in page
