"""Verdicts compared across dtypes (issue 12, item 4): a claim that holds under one dtype and fails under another
is dtype-dependent; holds against inconclusive is shown, not flagged; one dtype alone is not compared.

The records are SYNTHETIC (``tests.test_report.make_record``); records of the two dtypes are saved in two results
folders, as a float32 and a bfloat16 run write them (the store path carries no dtype).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmark.claims.record import ClaimRecord
from benchmark.claims.store import record_path
from benchmark.report import _dedupe, load_records, write_report
from benchmark.report.dtype import (
    DTYPE_DEPENDENT,
    dtype_flags,
    dtype_table,
    dtype_verdicts_markdown,
    mark_dtype_dependence,
)
from tests.test_report import make_record

T3, T4, T6 = "T3-text-language-early-late", "T4-text-semantic-middle", "T6-related-languages-overlap"
GEMMA = "gemma-3-270m-q4km"


@pytest.fixture(autouse=True)
def no_expectations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    path = tmp_path / "expectations.json"
    path.write_text(json.dumps({"schema": "expectations/1", "entries": []}))
    monkeypatch.setenv("LALM_BENCH_EXPECTATIONS", str(path))
    yield


def both(claim: str, f32: str, bf16: str, **kwargs: object) -> list[ClaimRecord]:
    """The same claim, model, template and variant under float32 and bfloat16."""
    effects = {"holds": 0.2, "fails": -0.1, "inconclusive": 0.05}
    return [
        make_record(claim, GEMMA, verdict=f32, effect=effects[f32], dtype="float32", **kwargs),  # type: ignore[arg-type]
        make_record(claim, GEMMA, verdict=bf16, effect=effects[bf16], dtype="bfloat16", **kwargs),  # type: ignore[arg-type]
    ]


def _flags(records: list[ClaimRecord]) -> dict[tuple[str, str, str], bool | None]:
    return {(r.claim_id, r.template, r.dtype): r.dtype_dependent for r in mark_dtype_dependence(records)}


def test_opposite_findings_are_dtype_dependent() -> None:
    records = both(T3, "holds", "fails")
    assert _flags(records) == {(T3, "bare", "float32"): True, (T3, "bare", "bfloat16"): True}
    assert all(r.dtype_dependent is None for r in records)  # copies are marked, the inputs are left alone
    headers, rows = dtype_table(records)
    assert headers[-1] == DTYPE_DEPENDENT
    assert "verdict float32" in headers and headers.index("verdict float32") < headers.index(
        "verdict bfloat16"
    )
    (row,) = rows
    assert row[:4] == [T3, GEMMA, "bare", "nopunct (primary)"]
    assert row[4] == "holds" and row[6] == "fails" and row[-1] == "DTYPE-DEPENDENT"
    assert row[5].startswith("0.200 [") and row[7].startswith("-0.100 [")


def test_holds_against_inconclusive_is_shown_not_flagged() -> None:
    records = both(T3, "holds", "inconclusive") + both(T4, "fails", "fails")
    assert set(_flags(records).values()) == {False}
    _, rows = dtype_table(records)
    assert [(r[0], r[4], r[6], r[-1]) for r in rows] == [
        (T3, "holds", "inconclusive", "no"),
        (T4, "fails", "fails", "no"),
    ]


def test_one_dtype_alone_is_not_compared() -> None:
    records = [
        make_record(T3, GEMMA, dtype="float32"),
        make_record(T4, GEMMA, verdict="fails", effect=-0.1, dtype="bfloat16"),
        # same claim under both dtypes but on another probe set: not the same comparison
        make_record(T6, GEMMA, dtype="float32"),
        make_record(T6, GEMMA, verdict="fails", effect=-0.1, dtype="bfloat16", probe_hash="c" * 64),
    ]
    assert set(dtype_flags(records).values()) == {None}
    assert all(r.dtype_dependent is None for r in mark_dtype_dependence(records))
    assert dtype_table(records)[1] == []
    assert len(dtype_table(records, compared_only=False)[1]) == 4


def test_dedupe_keeps_records_that_differ_only_by_dtype() -> None:
    old = make_record(T3, GEMMA, dtype="float32", created="2026-01-01T00:00:00+00:00")
    new = make_record(T3, GEMMA, dtype="float32", created="2026-01-02T00:00:00+00:00")
    kept, dropped = _dedupe([old, new, *both(T4, "holds", "fails")])
    assert len(kept) == 3 and len(dropped) == 1  # same dtype: the newer supersedes; two dtypes: both kept


def _save(records: list[ClaimRecord], root: Path) -> Path:
    for r in records:
        r.save(
            record_path(
                root,
                r.model,
                r.revision,
                r.probe_set_hash,
                r.claim_id,
                r.claim_version,
                r.template,
                r.variant,
            )
        )
    return root


def test_report_writes_the_dtype_comparison(tmp_path: Path) -> None:
    records = (
        both(T3, "holds", "fails")
        + both(T3, "holds", "holds", template="shared-suffix")
        + both(T4, "holds", "inconclusive")
    )
    f32 = _save([r for r in records if r.dtype == "float32"], tmp_path / "results-f32")
    bf16 = _save([r for r in records if r.dtype == "bfloat16"], tmp_path / "results-bf16")
    loaded = load_records([f32, bf16])
    assert len(loaded) == 6

    written = write_report(loaded, tmp_path / "out")
    md = written["markdown"].read_text()
    assert "superseded" not in md.lower()
    section = md.split("## dtype comparison")[1].split("\n## ")[0]
    assert "3 claim x model x template x variant compared across float32, bfloat16" in section
    assert "1 same verdict, 1 differ without opposing findings" in section and "1 dtype-dependent" in section
    lines = [line for line in section.splitlines() if line.startswith(f"| {T3}") and "| bare " in line]
    assert len(lines) == 1 and "DTYPE-DEPENDENT" in lines[0]
    # matrix: one column per dtype, the dependent claim's bare cells marked in both, its other template not
    matrix = md.split("## Verdict matrix")[1].split("\n## ")[0]
    assert f"{GEMMA} float32 [bare]" in matrix and f"{GEMMA} bfloat16 [bare]" in matrix
    t3_row = next(line for line in matrix.splitlines() if line.startswith(f"| {T3}"))
    assert t3_row.count(f"**{DTYPE_DEPENDENT}**") == 2
    t4_row = next(line for line in matrix.splitlines() if line.startswith(f"| {T4}"))
    assert DTYPE_DEPENDENT not in t4_row
    assert (
        f"DTYPE-DEPENDENT (holds under one dtype, fails under another): {T3} on {GEMMA} [bare,nopunct]" in md
    )

    html = written["html"].read_text()
    assert 'id="dtypes"' in html and 'id="dtype-table"' in html
    assert html.count(f'<span class="dependent dtype-dependent">{DTYPE_DEPENDENT}</span>') == 2


def test_report_of_one_dtype_has_no_dtype_section(tmp_path: Path) -> None:
    written = write_report([make_record(T3, GEMMA), make_record(T4, GEMMA)], tmp_path / "out")
    md = written["markdown"].read_text()
    assert "## dtype comparison" not in md and DTYPE_DEPENDENT not in md
    assert f"| {GEMMA} [bare]" in md  # the column label names no dtype when there is one
    assert 'id="dtypes"' not in written["html"].read_text()


def test_dtype_verdicts_page() -> None:
    page = dtype_verdicts_markdown(
        both(T3, "holds", "fails"), commands=["pytest claims/ ..."], date="2026-01-01", cpu="synthetic CPU"
    )
    assert page.startswith("# Verdicts by dtype: float32 against bfloat16")
    assert "CPU: synthetic CPU" in page and "DTYPE-DEPENDENT" in page


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_placeholder_latents_of_na_records_carry_the_run_dtype(tmp_path: Path, dtype: str) -> None:
    """n/a records of a bfloat16 run said float32 (their placeholder provenance was fixed), so they collided
    with the float32 run's and were dropped from the comparison as superseded."""
    from benchmark.run.session import _placeholder_latents
    from tests.tiny_engine import TinyAudioLM, tiny_probe_set

    latents = _placeholder_latents(
        TinyAudioLM(), tiny_probe_set(tmp_path, n_text=2, n_speech=1), "bare", "cpu", dtype
    )
    assert latents.manifest.provenance.dtype == dtype
    assert latents.manifest.provenance.device == "cpu"


def test_opposite_findings_is_one_rule_for_template_and_dtype_dependence() -> None:
    from benchmark.claims.record import opposite_findings

    assert opposite_findings(["holds", "fails"]) and opposite_findings(["holds", "inconclusive", "fails"])
    assert not opposite_findings(["holds", "inconclusive"]) and not opposite_findings(["fails", "n/a"])
    assert not opposite_findings(["holds", "holds"])
