"""The calibration table: statuses follow the Clopper-Pearson bounds, never the bare rate."""

from __future__ import annotations

import json
import subprocess
import sys

from benchmark.claims.calibrate import ControlResult, _summary
from benchmark.report.calibration import (
    calibration_table,
    fpr_status,
    power_status,
    rule_calibration_cell,
)


def entry(null: tuple[int, int], pos: tuple[int, int], seeds: int, **extra) -> dict:
    row = _summary(
        ControlResult(*null),
        ControlResult(*pos),
        seeds=seeds,
        seed_ranges=[[0, seeds]],
        failures=0,
        examples=[],
        extra={"boundary": 0.1, "positive_size": 0.2, "budget": "ci", "n_samples": 96},
    )
    return {**row, "base_model": "m", "code": "abc", **extra}


def test_statuses_follow_the_interval() -> None:
    assert fpr_status(entry((0, 500), (500, 500), 500), 0.05) == "meets"
    assert fpr_status(entry((0, 250), (250, 250), 250), 0.05) == "meets (bound)"  # upper bound 1.5%
    assert fpr_status(entry((1, 20), (20, 20), 20), 0.05) == "open"  # 5% observed, bound 25%
    assert fpr_status(entry((62, 250), (250, 250), 250), 0.05) == "misses"  # lower bound above 5%
    assert power_status(entry((0, 500), (281, 500), 500), 0.8) == "misses"
    assert power_status(entry((0, 20), (17, 20), 20), 0.8) == "open"
    failed = entry((0, 20), (20, 20), 20, plant_failures=2)
    assert power_status(failed, 0.8) == "misses (plant failed)"


def test_table_orders_claims_and_marks_counts_of_other_code() -> None:
    document = {
        "targets": {"false_positive_rate": 0.05, "power": 0.8},
        "claims": {
            "S1-speech-transcript-late": entry((0, 20), (20, 20), 20, code="other-code"),
            "T1-paraphrase-closer": entry((0, 500), (490, 500), 500),
            "M1-modality-separate": {"status": "not calibrated: no base latents for crossmodal"},
        },
    }
    table = calibration_table(document, current_code="abc")
    lines = [line for line in table.splitlines() if line.startswith("| ")][1:]
    assert [line.split("|")[1].strip() for line in lines] == [
        "T1-paraphrase-closer",
        "S1-speech-transcript-late",
        "M1-modality-separate",
    ]
    assert "current" in lines[0] and "other (other-co)" in lines[1] and "not calibrated" in lines[2]
    # One header per column (tabulate would shift a short header list right and leave the claim unnamed).
    header = [cell.strip() for cell in table.splitlines()[0].strip("|").split("|")]
    cells = dict(zip(header, (cell.strip() for cell in lines[0].strip("|").split("|")), strict=True))
    assert cells["claim"] == "T1-paraphrase-closer" and cells["seeds"] == "500"
    assert cells["power status"] == "meets" and cells["code"] == "current"


def test_cli_names_a_file_that_is_not_a_calibration(tmp_path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"x": 1}))
    done = subprocess.run(
        [sys.executable, "-m", "benchmark.cli.main", "calibration-report", "--file", str(bad)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and f"calibration file {bad}: no 'claims' mapping" in done.stderr


def test_verdict_tables_mark_a_rule_that_misses_its_power_target() -> None:
    document = {
        "targets": {"false_positive_rate": 0.05, "power": 0.8},
        "claims": {
            "S4-single-voice-early": entry((0, 500), (300, 500), 500),
            "T1-paraphrase-closer": entry((5, 500), (490, 500), 500),
        },
    }
    weak = rule_calibration_cell(document, "S4-single-voice-early")
    assert weak == "FPR 0.0% meets; **⚠ power 60.0% misses** (500 seeds, n=96)"
    assert "⚠" not in rule_calibration_cell(document, "T1-paraphrase-closer")
    assert rule_calibration_cell(document, "T7-training-mix-shifts-cjk") == "not calibrated"
