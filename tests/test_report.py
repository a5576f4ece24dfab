"""The report, release comparison, regression baselines and CI workflows, on synthetic claim records.

The records are synthetic (built here, not measured) but carry realistic payloads: curves over 7 and 19
layers, a distance table, t-SNE coordinates, a scipy linkage matrix and resample draws of the effect.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from benchmark.claims.record import ClaimRecord, Expectation, Measurement
from benchmark.claims.store import record_path
from benchmark.report import ReportError, load_records, write_report
from benchmark.report.baselines import TOLERANCES, baseline_path, load_baseline, regenerate, write_provisional
from benchmark.report.compare import compare_records
from benchmark.report.regression import check_records

REPO = Path(__file__).resolve().parent.parent
MODELS = {"smollm2-135m-q41": 7, "gemma-3-270m-q4km": 19}  # model -> number of layers in its curves
LANGS = ["en", "fr", "de", "ja"]


def _layers(n: int) -> list[str]:
    return ["emb", *(f"block{i}" for i in range(n - 2)), "final_norm"]


def _payloads(rng: np.random.Generator, n_layers: int, effect: float) -> dict[str, object]:
    from scipy.cluster import hierarchy

    labels = [LANGS[i % len(LANGS)] for i in range(16)]
    points = rng.normal(size=(16, 2)) + np.repeat(np.arange(4), 4)[:, None]
    table = {
        "rows": ["1a", "1b", "2a"],
        "cols": ["1a", "1b", "2a"],
        "values": [[0.0, 0.2, 0.7], [0.2, 0.0, 0.6], [0.7, 0.6, 0.0]],
    }
    return {  # the shapes benchmark/claims/measures_*.py store
        "layers": _layers(n_layers),
        "effect_draws": (effect + 0.02 * rng.standard_normal(200)).tolist(),
        "tsne": {
            "labels": {"language": labels, "meaning_id": [str(i // 4) for i in range(16)]},
            "layers": {name: (points + rng.normal(size=(16, 2))).tolist() for name in _layers(n_layers)[::3]},
        },
        "dendrogram": {"labels": labels, "block1": hierarchy.linkage(points, method="average").tolist()},
        "table1/cosine/block0": table,
        "table2": {"block0": {**table, "note": "mean distance / all-factors distance"}},
    }


def make_record(
    claim_id: str,
    model: str,
    *,
    verdict: str = "holds",
    effect: float = 0.2,
    expected: str | None = "holds",
    status: str = "paper-reported",
    payloads: bool = True,
    draws: bool = True,
    probe_hash: str = "a" * 64,
    seed: int = 7,
) -> ClaimRecord:
    """A synthetic record of ``claim_id`` on ``model`` (says so in its caveats)."""
    n_layers = MODELS.get(model, 7)
    rng = np.random.default_rng(abs(hash((claim_id, model))) % 2**32)
    measurement = None
    if verdict in ("holds", "fails", "inconclusive"):
        extra = _payloads(rng, n_layers, effect) if payloads else {}
        if not draws:
            extra.pop("effect_draws", None)
        depth = np.linspace(0, 1, n_layers)
        measurement = Measurement(
            effect=effect,
            ci_low=effect - 0.05,
            ci_high=effect + 0.05,
            p_value=0.001,
            power=0.9,
            n_units=40,
            n_samples=160,
            n_boot=200,
            n_perm=999,
            resampling="bootstrap over meanings",
            token_control=0.01,
            explained_by_last_token=False,
            curves={
                "language": (0.3 - 0.2 * np.sin(np.pi * depth)).tolist(),
                "meaning": (0.1 + 0.2 * np.sin(np.pi * depth)).tolist(),
                "meaning.lo": (0.05 + 0.2 * np.sin(np.pi * depth)).tolist(),
                "meaning.hi": (0.15 + 0.2 * np.sin(np.pi * depth)).tolist(),
            },
            payloads=extra,
        )
    expectation = Expectation(verdict=expected, status=status, source="Fig 4") if expected else None
    meets = None if expectation is None or verdict not in ("holds", "fails") else verdict == expected
    return ClaimRecord(
        claim_id=claim_id,
        claim_version=1,
        claim_fingerprint="f" * 64,
        title=f"synthetic {claim_id}",
        paper="Fig 3a, 4",
        section="text",
        rule={"kind": "presence", "formula": "ci_low > delta", "delta": 0.05, "alpha": 0.05},
        model=model,
        revision=f"{model[:4]}" + "0" * 36,
        model_kind="text-lm",
        verdict=verdict,
        reason=f"synthetic {verdict}",
        expectation=expectation,
        meets_expectation=meets,
        measurement=measurement,
        probe_set="text-parallel",
        probe_set_hash=probe_hash,
        profile="ci",
        template="shared-suffix",
        template_rendered={"text": "{text} Answer:"},
        dtype="float32",
        device="cpu",
        seed=seed,
        calibration={"file": "calibration.json", "commit": "c" * 40},
        versions={"numpy": "2.0", "lalm-bench": "0.1.0"},
        git_commit="d" * 40,
        caveats=["synthetic record built by tests/test_report.py"],
        created="2025-01-01T00:00:00+00:00",
        seconds=1.5,
    )


def synthetic_records() -> list[ClaimRecord]:
    """Two models x three claims: a reproduced finding, an unexpected verdict, an n/a."""
    records = []
    for model in MODELS:
        records.append(
            make_record("T3-text-language-early-late", model, effect=0.25 if "gemma" in model else 0.18)
        )
        records.append(
            make_record(
                "T4-text-semantic-middle",
                model,
                verdict="fails" if "gemma" in model else "holds",
                effect=0.01 if "gemma" in model else 0.2,
                payloads=False,
            )
        )
        records.append(make_record("S1-speech-transcript-late", model, verdict="n/a", expected=None))
    return records


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("report")
    return write_report(
        synthetic_records(), out, compare_to="smollm2-135m-q41", baselines_dir=out / "no-baselines"
    )


def test_markdown_has_the_matrix_for_every_model(report: dict[str, Path]) -> None:
    text = report["markdown"].read_text()
    matrix = text.split("## Verdict matrix")[1].split("\n## ")[0]
    header = next(line for line in matrix.splitlines() if line.startswith("| claim"))
    for model in MODELS:
        assert model in header
    assert "reproduces the paper" in header and "changed since the baseline" in header
    assert "rule calibration" in header  # each claim's FPR and power from the committed calibration file
    assert re.search(r"\| T3-text-language-early-late@1 +\| FPR \d+\.\d% meets", matrix)
    for claim in (
        "T3-text-language-early-late@1",
        "T4-text-semantic-middle@1",
        "S1-speech-transcript-late@1",
    ):
        assert claim in matrix
    assert "**⚠ fails** (expected holds, paper-reported)" in matrix  # unexpected verdict highlighted
    assert "n/a (no expectation)" in matrix
    assert "no: gemma-3-270m-q4km" in matrix and "yes: " in matrix


def test_markdown_claim_sections_figures_and_provenance(report: dict[str, Path]) -> None:
    text = report["markdown"].read_text()
    images = re.findall(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)", text)
    for claim in ("T3-text-language-early-late", "T4-text-semantic-middle", "S1-speech-transcript-late"):
        assert f"figures/{claim}-effect.png" in images
    assert "figures/T3-text-language-early-late-curves.png" in images
    assert any("tsne-gemma" in image for image in images) and any("dendrogram" in image for image in images)
    for image in images:
        assert (report["markdown"].parent / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "**table1/cosine/block0 — gemma-3-270m-q4km**" in text
    assert "**table2/block0 — smollm2-135m-q41 (mean distance / all-factors distance)**" in text
    assert "Paper: Fig 3a, 4" in text and "claim version 1" in text and "synthetic record built" in text
    provenance = text.split("## Provenance")[1]
    for needle in ("a" * 12, "float32", "cpu", "c" * 40, "numpy=2.0", "shared-suffix", "{text} Answer:"):
        assert needle in provenance


def test_html_is_self_contained(report: dict[str, Path]) -> None:
    html = report["html"].read_text()
    assert 'id="verdict-matrix"' in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html and "<script" not in html and "@import" not in html
    images = re.findall(r'<img src="([^"]+)"', html)
    figures = list((report["markdown"].parent / "figures").glob("*.png"))
    assert len(images) == len(figures) > 0
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert 'class="v-fails unexpected"' in html


def test_compare_to_gives_deltas_with_intervals(report: dict[str, Path]) -> None:
    section = (
        report["markdown"]
        .read_text()
        .split("## Release comparison against smollm2-135m-q41")[1]
        .split("\n## ")[0]
    )
    row = next(line for line in section.splitlines() if line.startswith("| T3-text-language-early-late"))
    assert "+0.070" in row and "paired bootstrap" in row and re.search(r"\[[-0-9.]+, [-0-9.]+\]", row)
    assert "S1-speech-transcript-late on gemma-3-270m-q4km: no effect to compare" in section


def test_compare_paired_and_unpaired_intervals() -> None:
    paired = compare_records(synthetic_records(), "smollm2-135m-q41")
    delta = next(d for d in paired.deltas if d.claim_id.startswith("T3"))
    assert delta.method == "paired bootstrap" and delta.ci_low < delta.delta < delta.ci_high
    assert delta.ci_high - delta.ci_low < 0.2  # paired draws: narrower than the unpaired bound below
    records = [
        make_record("T3-text-language-early-late", m, effect=e, draws=False)
        for m, e in (("smollm2-135m-q41", 0.2), ("gemma-3-270m-q4km", 0.3))
    ]
    unpaired = compare_records(records, "smollm2-135m-q41").deltas[0]
    assert unpaired.method.startswith("unpaired") and "no effect_draws" in unpaired.note
    half = 1.96 * np.sqrt(2) * 0.05 / 1.96  # normal approx. from two 95% intervals of half-width 0.05
    assert unpaired.ci_low == pytest.approx(0.1 - half, abs=1e-6) and unpaired.ci_high == pytest.approx(
        0.1 + half, abs=1e-6
    )


def test_compare_refuses_unknown_model_and_skips_other_probe_sets() -> None:
    with pytest.raises(ReportError, match="no records of that model"):
        compare_records(synthetic_records(), "qwen2-audio-7b")
    records = [
        make_record("T3-text-language-early-late", "smollm2-135m-q41"),
        make_record("T3-text-language-early-late", "gemma-3-270m-q4km", probe_hash="b" * 64),
    ]
    comparison = compare_records(records, "smollm2-135m-q41@smol")
    assert not comparison.deltas and "different probe sets" in comparison.skipped[0][2]


@pytest.fixture
def no_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests of tables only: skip drawing (figures are covered by the module-scoped report)."""
    monkeypatch.setattr("benchmark.report.render_figures", lambda records, comparison=None: {})


def test_regression_lists_a_change_beyond_tolerance(tmp_path: Path, no_figures: None) -> None:
    records = synthetic_records()
    regenerate(records[:2], "synthetic first acceptance", baselines_dir=tmp_path / "baselines")
    moved = records[0].model_copy(deep=True)
    assert moved.measurement is not None
    moved.measurement.effect += 2 * TOLERANCES["effect"].absolute
    small = records[1].model_copy(update={"verdict": "fails"})
    result = check_records([moved, small], tmp_path / "baselines")
    statistics = {(c.claim_id, c.statistic) for c in result.changes}
    assert ("T3-text-language-early-late", "effect") in statistics
    assert ("T4-text-semantic-middle", "verdict") in statistics
    assert ("T3-text-language-early-late", "ci_low") not in statistics  # the interval stayed within 0.03
    paths = write_report([moved, small, *records[2:]], tmp_path / "out", baselines_dir=tmp_path / "baselines")
    section = paths["markdown"].read_text().split("## Regression")[1].split("\n## ")[0]
    assert "| smollm2-135m-q41 | T3-text-language-early-late | effect" in section
    assert "+0.0400" in section and "accepted" in section
    assert "no baseline" in section  # the gemma records have none


def test_regression_within_tolerance_and_key_mismatch(tmp_path: Path) -> None:
    record = make_record("T3-text-language-early-late", "gemma-3-270m-q4km")
    regenerate([record], "synthetic", baselines_dir=tmp_path)
    nudged = record.model_copy(deep=True)
    nudged.measurement.effect += TOLERANCES["effect"].absolute / 2  # type: ignore[union-attr]
    assert check_records([nudged], tmp_path).changes == []
    other = record.model_copy(update={"probe_set_hash": "e" * 64})
    result = check_records([other], tmp_path)
    assert result.changes == [] and "baseline key differs" in result.changed(record.model, record.claim_id)


def test_regenerate_refuses_empty_reason_and_writes_provenance(tmp_path: Path) -> None:
    records = synthetic_records()[:1]
    for reason in ("", "   "):
        with pytest.raises(ReportError, match="needs a reason"):
            regenerate(records, reason, baselines_dir=tmp_path)
    assert not any(tmp_path.iterdir())
    with pytest.raises(ReportError, match="pipeline errors"):
        regenerate([records[0].model_copy(update={"verdict": "error"})], "why", baselines_dir=tmp_path)
    [path] = regenerate(records, "new tokenizer release", baselines_dir=tmp_path, runner="gpu-1")
    stored = json.loads(path.read_text())
    assert path == baseline_path(tmp_path, records[0].model, records[0].claim_id)
    assert stored["reason"] == "new tokenizer release" and stored["accepted"] and "git_commit" in stored
    assert stored["provisional"] is False and stored["tolerances"]["effect"] == TOLERANCES["effect"].absolute
    assert stored["effect"] == records[0].measurement.effect and stored["verdict"] == "holds"  # type: ignore[union-attr]


def test_first_baselines_are_provisional_and_never_overwrite(tmp_path: Path) -> None:
    records = synthetic_records()
    regenerate(records[:1], "accepted earlier", baselines_dir=tmp_path)
    written = write_provisional(records, baselines_dir=tmp_path, runner="new-runner")
    assert baseline_path(tmp_path, records[0].model, records[0].claim_id) not in written
    assert len(written) == len(records) - 1
    first = load_baseline(tmp_path, records[1].model, records[1].claim_id)
    assert first is not None and first.provisional and "accept" in first.reason and first.accepted is None
    assert load_baseline(tmp_path, records[0].model, records[0].claim_id).provisional is False  # type: ignore[union-attr]
    moved = records[1].model_copy(update={"verdict": "fails"})
    assert all(c.provisional for c in check_records([moved], tmp_path).changes)


def test_load_records_from_files_and_folders(tmp_path: Path) -> None:
    records = synthetic_records()
    for r in records:
        r.save(
            record_path(
                tmp_path / "results", r.model, r.revision, r.probe_set_hash, r.claim_id, r.claim_version
            )
        )
    (tmp_path / "results" / "notes.json").write_text("{}")  # not a record name: ignored in folders
    assert len(load_records([tmp_path / "results"])) == len(records)
    one = next((tmp_path / "results").rglob("T3*@1.json"))
    assert load_records([one])[0].claim_id == "T3-text-language-early-late"
    bad = tmp_path / "bad@1.json"
    bad.write_text("{}")
    with pytest.raises(ReportError, match=r"bad@1\.json: not a readable claim record"):
        load_records([bad])
    with pytest.raises(ReportError, match="no such file"):
        load_records([tmp_path / "missing"])
    with pytest.raises(ReportError, match="no claim records"):
        write_report([], tmp_path / "out")


def test_duplicate_records_keep_the_newest(tmp_path: Path, no_figures: None) -> None:
    old = make_record("T3-text-language-early-late", "gemma-3-270m-q4km", effect=0.1)
    new = old.model_copy(
        update={"created": "2025-02-01T00:00:00+00:00", "verdict": "fails", "meets_expectation": False}
    )
    text = write_report([new, old], tmp_path)["markdown"].read_text()
    assert "superseded by the record of 2025-02-01" in text
    assert re.search(r"\| T3-text-language-early-late@1 +\| [^|]+\| \*\*⚠ fails\*\*", text)


def _run_lines(workflow: dict) -> list[str]:
    return [step.get("run", "") for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_workflows_are_valid_yaml_and_call_the_readme_commands() -> None:
    nightly = yaml.safe_load((REPO / ".github/workflows/nightly.yml").read_text())
    pr = yaml.safe_load((REPO / ".github/workflows/pr.yml").read_text())
    triggers = nightly[True]  # YAML 1.1 reads the key `on` as a boolean
    assert "schedule" in triggers and "pull_request" in pr[True]
    runs = " ".join(_run_lines(nightly))
    assert "lalm-bench check" in runs and "pytest claims/ --profile" in runs and "--junitxml" in runs
    assert "lalm-bench report results" in runs and "--compare-to" in runs
    claims = nightly["jobs"]["claims"]
    assert (
        "self-hosted" in claims["runs-on"]
        and "gpu" in claims["runs-on"]
        and len(claims["strategy"]["matrix"]["model"]) > 1
    )
    steps = [s.get("name", "") + s.get("run", "") for s in claims["steps"]]
    assert next(i for i, s in enumerate(steps) if "lalm-bench check" in s) < next(
        i for i, s in enumerate(steps) if "pytest claims/" in s
    )
    assert nightly["env"]["BATCH_SIZE"] and nightly["env"]["DTYPE"] and "HF_HOME" in nightly["env"]
    assert nightly["jobs"]["cross-model"]["needs"] == "claims"
    assert any(
        "upload-artifact" in s.get("uses", "") and "reports/" in str(s.get("with", {}).get("path"))
        for s in nightly["jobs"]["cross-model"]["steps"]
    )
    assert any(r.startswith("bash scripts/test.sh") for r in _run_lines(pr))
    readme = (REPO / "README.md").read_text()
    for command in ("bash scripts/test.sh", "lalm-bench check", "pytest claims/", "lalm-bench report"):
        assert command in readme, f"README does not show {command!r}, which the workflows run"
