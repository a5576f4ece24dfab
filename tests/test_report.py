"""The report, release comparison, baselines, regression gate and false-alarm budget, on synthetic claim records.

The records are synthetic (built here from the record schema, not measured) but shaped like the claims layer's:
both templates, a secondary probe variant, curves over the layers with the token-control columns after
``final_norm``, jackknife replicates of the decided part, t-SNE coordinates, a linkage matrix and secondary
decisions. Expectations come from a synthetic expectations file (``LALM_BENCH_EXPECTATIONS``).
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchmark.claims.record import ClaimRecord, Expectation, Measurement, SecondaryDecision
from benchmark.claims.store import record_path
from benchmark.report import ReportError, load_records, write_report
from benchmark.report.alarms import NIGHTLY_BUDGET, alarm_budget, check_rate, finding_p_value
from benchmark.report.baselines import NIGHTLY_ENV, accept, baseline_file, load_baselines
from benchmark.report.compare import compare_records
from benchmark.report.regression import check_records

MODELS = {  # model -> number of blocks
    "smollm2-135m-q41": 5,
    "gemma-3-270m-q4km": 17,
    "qwen2-audio-7b": 8,
    "qwen2-audio-7b-instruct": 8,
}
LANGS = ["en", "fr", "de", "ja"]
PRESENCE = {
    "kind": "presence",
    "formula": "lower bound > delta",
    "delta": 0.05,
    "alpha": 0.05,
    "directions": {},
}
T_95_11 = float(stats.t.ppf(0.95, 11))


def _layers(blocks: int) -> list[str]:
    return ["emb", *(f"block{i}" for i in range(blocks)), "final_norm"]


def _payloads(rng: np.random.Generator, layers: list[str], effect: float, components: list[str]) -> dict:
    from scipy.cluster import hierarchy

    labels = [LANGS[i % len(LANGS)] for i in range(16)]
    points = rng.normal(size=(16, 2)) + np.repeat(np.arange(4), 4)[:, None]
    reps = (effect + 0.01 * rng.standard_normal(12)).round(6).tolist()
    return {
        "columns": {c: [*layers, "tok_last", "tok_mean"] for c in components},
        "parts": {
            "gap": {
                "value": effect,
                "levels": {"meaning_id": [f"m{i:02d}" for i in range(12)]},
                "replicates": {"meaning_id": reps},
            }
        },
        "tsne": {
            "labels": {"language": labels, "meaning_id": [str(i // 4) for i in range(16)]},
            "layers": {name: (points + rng.normal(size=(16, 2))).tolist() for name in layers[::4]},
        },
        "dendrogram": {"labels": labels, "block1": hierarchy.linkage(points, method="average").tolist()},
        "table2": {
            "block0": {
                "rows": ["a", "b"],
                "cols": ["a", "b"],
                "values": [[0.0, 0.3], [0.3, 0.0]],
                "note": "mean distance / all-factors distance",
            }
        },
    }


def make_record(
    claim_id: str,
    model: str,
    *,
    template: str = "bare",
    variant: str | None = "nopunct",
    verdict: str = "holds",
    effect: float = 0.2,
    se: float = 0.02,
    expected: str | None = None,
    status: str = "paper-reported",
    source: str = "Fig 4",
    probe_set: str = "text-parallel",
    probe_hash: str = "a" * 64,
    primary_template: bool | None = None,
    primary_variant: bool = True,
    controls: bool = True,
    components: tuple[str, ...] = ("language",),
    secondary: dict[str, SecondaryDecision] | None = None,
    rule: dict | None = None,
    created: str = "2026-01-01T00:00:00+00:00",
    profile: str = "ci",
    dtype: str = "float32",
) -> ClaimRecord:
    """A SYNTHETIC record of ``claim_id`` on ``model`` (its caveats say so)."""
    blocks = MODELS.get(model, 5)
    layers = _layers(blocks)
    rng = np.random.default_rng(zlib.crc32(f"{claim_id}|{model}|{template}|{variant}".encode()))
    measurement = None
    if verdict in ("holds", "fails", "inconclusive"):
        depth = np.linspace(0, 1, len(layers))
        shift = 0.15 if template == "shared-suffix" else 0.0
        curves: dict[str, list[float]] = {}
        for c in components:
            prefix = f"{c}/" if len(components) > 1 else ""
            net = (0.3 - 0.2 * np.sin(np.pi * depth) + shift).tolist()
            curves[f"{prefix}net"] = [*net, 0.05, 0.04]  # the two token-control columns after final_norm
            curves[f"{prefix}net/se"] = [0.02] * (len(layers) + 2)
        token_controls = (
            {"compared": effect, "tok_last": 0.05, "tok_mean": 0.04} if controls else {"compared": effect}
        )
        measurement = Measurement(
            effect=effect,
            ci_low=effect - T_95_11 * se,
            ci_high=effect + T_95_11 * se,
            p_value=0.001,
            p_structure=0.002,
            se=se,
            df=11.0,
            n_units={"meaning_id": 12},
            n_samples=96,
            n_perm=200,
            resampling="delete-one-unit jackknife over 12 meaning_id (synthetic)",
            token_controls=token_controls,
            token_margins={"tok_last": [effect - 0.05, effect - 0.09, effect - 0.01]} if controls else {},
            explained_by_tokens=False if controls else None,
            token_note=""
            if controls
            else "tok_last, tok_mean not available: the model gives no content span",
            curves=curves,
            payloads=_payloads(rng, layers, effect, list(components)),
        )
    expectation = Expectation(verdict=expected, status=status, source=source) if expected else None
    meets = None if expectation is None or verdict not in ("holds", "fails") else verdict == expected
    return ClaimRecord(
        claim_id=claim_id,
        claim_version=2,
        claim_fingerprint="f" * 64,
        title=f"synthetic {claim_id}",
        paper="Fig 3a, 4",
        section="text",
        rule=rule or PRESENCE,
        model=model,
        revision=f"{model[:4]}" + "0" * 36,
        model_kind="lalm",
        verdict=verdict,
        reason=f"synthetic {verdict}",
        expectation=expectation,
        meets_expectation=meets,
        measurement=measurement,
        probe_set=probe_set,
        probe_set_hash=probe_hash,
        profile=profile,
        template=template,
        template_rendered={"text": "{text}" if template == "bare" else "{text} Answer:"},
        primary_template=template == "bare" if primary_template is None else primary_template,
        variant=variant,
        primary_variant=primary_variant,
        secondary=secondary or {},
        dtype=dtype,
        device="cpu",
        cpu="synthetic CPU",
        seed=7,
        calibration={"file": "calibration.json", "commit": "c" * 40},
        versions={"numpy": "2.0", "lalm-bench": "0.1.0"},
        git_commit="d" * 40,
        caveats=["synthetic record built by tests/test_report.py"],
        created=created,
        seconds=1.5,
    )


#: The synthetic expectations file: measured entries of gemma, paper entries of qwen2-audio-7b (text and real
#: speech); qwen2-audio-7b-instruct and smollm2 have none (first runs).
EXPECTATIONS = [
    {
        "claim": "T3-text-language-early-late",
        "claim_version": 2,
        "model": "gemma-3-270m-q4km",
        "revision": "*",
        "probe_set_hash": "*",
        "template": "bare",
        "verdict": "holds",
        "status": "measured",
        "source": "measured 2026",
        "probe_set": "text-parallel",
    },
    {
        "claim": "T4-text-semantic-middle",
        "claim_version": 2,
        "model": "gemma-3-270m-q4km",
        "revision": "*",
        "probe_set_hash": "*",
        "template": "bare",
        "verdict": "holds",
        "status": "measured",
        "source": "measured 2026",
        "probe_set": "text-parallel",
    },
    *[
        {
            "claim": claim,
            "claim_version": 2,
            "model": "qwen2-audio-7b",
            "revision": "*",
            "probe_set_hash": "*",
            "template": "bare",
            "verdict": "holds",
            "status": "paper-reported",
            "source": source,
            "holds_for": {"speech": speech, "source": "synthetic test entry"},
        }
        for claim, source, speech in (
            ("T3-text-language-early-late", "Fig 4", None),
            ("T5-text-first-layers-low", "section 5.1", None),
            ("T2-distance-grows", "Table 1", None),
            ("S1-speech-transcript-late", "Fig 6a", "real"),
        )
    ],
]


def synthetic_records() -> list[ClaimRecord]:
    """Four models; both templates; a secondary variant; every status the report distinguishes."""
    T3, T4, T6 = "T3-text-language-early-late", "T4-text-semantic-middle", "T6-related-languages-overlap"
    exp_t3 = {"expected": "holds", "status": "measured", "source": "measured 2026"}
    device = SecondaryDecision(
        title="device clustering is absent",
        verdict="holds",
        reason="upper bound < eps",
        effect=0.01,
        ci_low=-0.02,
        ci_high=0.03,
        power=0.91,
    )
    speech = {"probe_set": "speech-grid", "variant": None, "probe_hash": "b" * 64}
    return [
        make_record(T3, "gemma-3-270m-q4km", effect=0.25, **exp_t3),
        make_record(T3, "gemma-3-270m-q4km", template="shared-suffix", effect=0.22),
        make_record(
            T3,
            "gemma-3-270m-q4km",
            variant="punct",
            primary_variant=False,
            verdict="inconclusive",
            effect=0.06,
            **exp_t3,
        ),
        make_record(T3, "smollm2-135m-q41", effect=0.18),
        make_record(T3, "smollm2-135m-q41", template="shared-suffix", verdict="fails", effect=-0.1),
        make_record(T3, "qwen2-audio-7b-instruct", effect=0.2),
        make_record(T4, "gemma-3-270m-q4km", verdict="fails", effect=-0.1, controls=False, **exp_t3),
        make_record(T4, "gemma-3-270m-q4km", template="shared-suffix", verdict="inconclusive", effect=0.05),
        make_record(T6, "gemma-3-270m-q4km", effect=0.3),
        make_record(T6, "gemma-3-270m-q4km", template="shared-suffix", verdict="inconclusive", effect=0.04),
        make_record(
            "T5-text-first-layers-low",
            "qwen2-audio-7b",
            verdict="inconclusive",
            effect=0.075,
            expected="holds",
            source="section 5.1",
        ),
        make_record(
            "T2-distance-grows",
            "qwen2-audio-7b",
            verdict="inconclusive",
            effect=0.01,
            expected="holds",
            source="Table 1",
        ),
        make_record(
            "S1-speech-transcript-late", "qwen2-audio-7b", expected="holds", source="Fig 6a", **speech
        ),
        make_record(
            "S1-speech-transcript-late", "qwen2-audio-7b-instruct", verdict="fails", effect=-0.1, **speech
        ),
        make_record(
            "S2-device-least-divergence",
            "qwen2-audio-7b",
            components=("content", "speaker", "device"),
            secondary={"device_absent": device},
            **speech,
        ),
        make_record("S1-speech-transcript-late", "gemma-3-270m-q4km", verdict="n/a", **speech),
        make_record(
            "M1-modality-separate",
            "smollm2-135m-q41",
            verdict="error",
            template="shared-suffix",
            primary_template=True,
        ),
    ]


def calibration_doc(stale: bool = False) -> dict:
    entry = {
        "seeds": 500,
        "boundary_null": {"holds": 6, "trials": 500, "rate": 0.012, "ci95": [0.0044, 0.026]},
        "positive": {"holds": 480, "trials": 500, "rate": 0.96, "ci95": [0.94, 0.975]},
        "coverage": {"lower_above_truth": 0.04, "upper_below_truth": 0.05, "nominal": 0.05},
    }
    entries = {f"T3-text-language-early-late|{t}|ci": entry for t in ("bare", "shared-suffix")}
    return {
        "schema": "calibration/2",
        "targets": {"false_positive_rate": 0.05, "power": 0.8},
        "entries": entries,
        **({"stale": True} if stale else {}),
    }


@pytest.fixture(scope="module")
def expectations_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("expectations") / "expectations.json"
    path.write_text(json.dumps({"schema": "expectations/1", "entries": EXPECTATIONS}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LALM_BENCH_EXPECTATIONS", str(path))
        yield path


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, expectations_file: Path) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("report")
    calibration = out / "calibration.json"
    calibration.write_text(json.dumps(calibration_doc()))
    return write_report(
        synthetic_records(), out, compare_to="gemma-3-270m-q4km", calibration_path=calibration
    )


def _section(text: str, title: str) -> str:
    return text.split(f"## {title}")[1].split("\n## ")[0]


def _row(section: str, start: str) -> str:
    """The first table row that starts with ``start`` once runs of spaces (tabulate's padding) are collapsed."""
    return next(line for line in section.splitlines() if re.sub(" +", " ", line).startswith(start))


def test_the_summary_opens_the_report_with_counts_and_what_left_its_expectation(
    report: dict[str, Path],
) -> None:
    text = report["markdown"].read_text()
    assert text.index("## Summary") < text.index("## Verdict matrix")
    summary = _section(text, "Summary")
    row = _row(summary, "| gemma-3-270m-q4km | bare")
    cells = [c.strip() for c in row.strip("|").split("|")]
    # holds (T3, T6), fails (T4), inconclusive 0, n/a (S1), error 0; T4 left its measured expectation
    assert cells[2:] == ["2", "1", "0", "1", "0", "1", "0", "0"]
    assert re.search(r"\| smollm2-135m-q41 +\| shared-suffix +\| 0 +\| 1 +\| 0 +\| 0 +\| 1 ", summary)
    assert (
        "LEFT its expectation: T4-text-semantic-middle on gemma-3-270m-q4km [bare]: fails, expected holds"
        in summary
    )
    assert "ERROR: M1-modality-separate on smollm2-135m-q41" in summary
    assert "DECAYED: T5-text-first-layers-low on qwen2-audio-7b [bare]: holds -> inconclusive" in summary
    assert (
        "TEMPLATE-DEPENDENT (holds under one template, fails under the other): T3-text-language-early-late on "
        "smollm2-135m-q41" in summary
    )
    assert "T6-related-languages-overlap on gemma" not in summary  # holds against inconclusive: not flagged
    assert (
        "NOT COMPARED: 1 verdict(s) on synthetic speech" in summary
        and "S1-speech-transcript-late on qwen2" in summary
    )
    assert (
        "FIRST RUN (no recorded expectations; verdicts reported only): qwen2-audio-7b-instruct, smollm2"
        in summary
    )


def test_matrix_shows_both_templates_side_by_side_and_flags_template_dependence(
    report: dict[str, Path],
) -> None:
    matrix = _section(report["markdown"].read_text(), "Verdict matrix")
    header = _row(matrix, "| claim")
    for model in MODELS:
        assert f"{model} [bare]" in header and f"{model} [shared-suffix]" in header
    assert header.index("gemma-3-270m-q4km [bare]") < header.index("gemma-3-270m-q4km [shared-suffix]")
    t3 = [c.strip() for c in _row(matrix, "| T3-text-language-early-late@2").strip("|").split("|")]
    cols = [c.strip() for c in header.strip("|").split("|")]
    cell = dict(zip(cols, t3, strict=True))
    assert cell["gemma-3-270m-q4km [bare]"] == "holds (expected holds, measured) ◆"
    assert cell["gemma-3-270m-q4km [shared-suffix]"] == "holds (no expectation)"
    assert cell["smollm2-135m-q41 [bare]"].endswith("**template-dependent**")
    assert cell["smollm2-135m-q41 [shared-suffix]"].startswith("fails (first run)")
    assert cell["qwen2-audio-7b-instruct [bare]"] == "holds (first run; family: 1/1 agree) ◆"
    # Calibration column: each template's entry at ci size.
    assert (
        cell["rule calibration"].startswith("bare: FPR 1.2% meets; power 96.0% meets")
        and "shared-suffix: FPR" in cell["rule calibration"]
    )
    t4 = dict(
        zip(
            cols,
            [c.strip() for c in _row(matrix, "| T4-text-semantic-middle@2").strip("|").split("|")],
            strict=True,
        )
    )
    assert t4["gemma-3-270m-q4km [bare]"] == "**⚠ fails** (expected holds, measured) ◆"
    assert "template-dependent" not in t4["gemma-3-270m-q4km [shared-suffix]"]  # fails vs inconclusive
    t6 = dict(
        zip(
            cols,
            [c.strip() for c in _row(matrix, "| T6-related-languages-overlap@2").strip("|").split("|")],
            strict=True,
        )
    )
    assert (
        "template-dependent" not in t6["gemma-3-270m-q4km [bare]"] + t6["gemma-3-270m-q4km [shared-suffix]"]
    )
    assert t6["rule calibration"] == "bare: not calibrated; shared-suffix: not calibrated"
    t5 = dict(
        zip(
            cols,
            [c.strip() for c in _row(matrix, "| T5-text-first-layers-low@2").strip("|").split("|")],
            strict=True,
        )
    )
    assert t5["qwen2-audio-7b [bare]"] == "**decayed** inconclusive (decayed from holds, paper-reported) ◆"
    assert "no: gemma-3-270m-q4km [bare]" not in _row(
        matrix, "| T4-text-semantic-middle@2"
    )  # measured, not paper


def test_a_stale_calibration_file_says_so_in_the_matrix(
    tmp_path: Path, expectations_file: Path, no_figures: None
) -> None:
    calibration = tmp_path / "calibration.json"
    calibration.write_text(json.dumps(calibration_doc(stale=True)))
    records = [r for r in synthetic_records() if r.claim_id.startswith("T3")]
    text = write_report(records, tmp_path / "out", calibration_path=calibration)["markdown"].read_text()
    assert "| calibration stale (recalibration pending) |" in _row(_section(text, "Verdict matrix"), "| T3-")


def test_claim_sections_show_token_controls_secondary_variant_and_decisions(report: dict[str, Path]) -> None:
    text = report["markdown"].read_text()
    t3 = _section(text, "T3-text-language-early-late")
    header = [c.strip() for c in _row(t3, "| model").strip("|").split("|")]
    assert header[:5] == ["model", "template", "variant", "verdict", "status"]
    assert {"compared", "tok_last", "tok_mean", "explained by tokens", "token note"} <= set(header)
    rows = [
        dict(zip(header, [c.strip() for c in line.strip("|").split("|")], strict=True))
        for line in t3.splitlines()
        if line.startswith("| gemma")
    ]
    primary = next(
        r for r in rows if r["template"] == "bare (primary)" and r["variant"] == "nopunct (primary)"
    )
    assert (primary["effect"], primary["compared"], primary["tok_last"], primary["tok_mean"]) == (
        "0.250",
        "0.250",
        "0.050",
        "0.040",
    )
    assert primary["explained by tokens"] == "no" and primary["token note"] == "-"
    punct = next(
        r for r in rows if r["variant"] == "punct"
    )  # the secondary variant's verdict, under bare only
    assert punct["verdict"] == "inconclusive" and punct["status"].startswith("decayed")
    t4 = _section(text, "T4-text-semantic-middle")
    assert "tok_last, tok_mean not available: the model gives no content span" in t4
    s2 = _section(text, "S2-device-least-divergence")
    assert "Secondary decisions:" in s2
    assert (
        "S2-device-least-divergence on qwen2-audio-7b [bare]: device clustering is absent: holds (effect 0.010 "
        "[-0.020, 0.030], power 0.910) — upper bound < eps (reported beside the verdict, never deciding it)"
    ) in s2
    assert "**table2/block0 — qwen2-audio-7b [bare] (mean distance / all-factors distance)**" in s2


def test_decayed_findings_tell_a_small_move_from_a_collapse(report: dict[str, Path]) -> None:
    text = report["markdown"].read_text()
    small = _section(text, "T5-text-first-layers-low")
    assert "Decayed (expected a finding, now inconclusive):" in small
    low, high = 0.075 - T_95_11 * 0.02, 0.075 + T_95_11 * 0.02
    assert (
        f"effect 0.075 [{low:.3f}, {high:.3f}], delta=0.05: the estimate is still on the expected side"
        in small
    )
    assert "(a small move); expected holds (section 5.1)" in small
    collapse = _section(text, "T2-distance-grows")
    assert (
        "effect 0.010" in collapse
        and "the estimate has crossed the margin (a collapse); expected holds (Table 1)" in collapse
    )


def test_a_first_run_is_compared_with_its_familys_paper_expectations(report: dict[str, Path]) -> None:
    t3 = _section(report["markdown"].read_text(), "T3-text-language-early-late")
    assert (
        "T3-text-language-early-late on qwen2-audio-7b-instruct [bare]: holds; qwen2-audio-7b expects holds "
        "(paper-reported, Fig 4; holds for text (synthetic test entry)): agrees"
    ) in t3
    s1 = _section(report["markdown"].read_text(), "S1-speech-transcript-late")
    assert (
        "qwen2-audio-7b-instruct [bare]: fails; qwen2-audio-7b expects holds (paper-reported, Fig 6a; holds for "
        "real speech (synthetic test entry)): not comparable (real speech expected, synthetic speech run)"
    ) in s1


def test_real_speech_expectations_are_not_checked_against_synthetic_speech(report: dict[str, Path]) -> None:
    text = report["markdown"].read_text()
    s1 = _section(text, "S1-speech-transcript-late")
    assert "Not compared with the paper (expectation for real speech, run on synthetic speech):" in s1
    assert (
        "S1-speech-transcript-late on qwen2-audio-7b [bare]: holds; the expectation holds for real speech "
        "(synthetic test entry); this run's probe set speech-grid is synthetic speech"
    ) in s1
    matrix = _section(text, "Verdict matrix")
    assert "holds (paper: holds on real speech; not compared) ◆" in _row(matrix, "| S1-speech")
    assert "not comparable (synthetic speech): qwen2-audio-7b [bare]" in _row(matrix, "| S1-speech")
    assert (
        "Expectations hold for:" in s1 and "qwen2-audio-7b [bare]: real speech (synthetic test entry)" in s1
    )


def test_figures_show_both_templates_and_controls_with_their_data_beside(report: dict[str, Path]) -> None:
    out = report["markdown"].parent
    text = report["markdown"].read_text()
    images = re.findall(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)", text)
    assert "figures/T3-text-language-early-late-curves.png" in images and any(
        "tsne-gemma" in i for i in images
    )
    for image in images:
        assert (out / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "solid: bare, dashed: shared-suffix" in text and "token controls tok_last and tok_mean" in text
    csv = pd.read_csv(out / "figures/T3-text-language-early-late-curves.csv")
    parquet = pd.read_parquet(out / "figures/T3-text-language-early-late-curves.parquet")
    assert len(csv) == len(parquet) > 0 and list(csv.columns) == list(parquet.columns)
    assert np.allclose(csv["value"], parquet["value"])
    gemma = csv[(csv.model == "gemma-3-270m-q4km") & csv.primary_variant]
    assert set(gemma.template) == {"bare", "shared-suffix"}
    assert len(gemma[gemma.template == "bare"]) == 19 + 2  # emb, 17 blocks, final_norm, then the two controls
    controls = gemma[gemma.control]
    assert set(controls.column) == {"tok_last", "tok_mean"} and controls.depth.isna().all()
    layers = gemma[~gemma.control & (gemma.template == "bare")]
    assert (
        layers.depth.iloc[0] == 0.0 and layers.depth.iloc[-1] == 1.0 and layers.depth.is_monotonic_increasing
    )
    assert set(csv.variant.dropna()) == {
        "nopunct",
        "punct",
    }  # every record's curve, the secondary variant's too
    everything = pd.read_parquet(out / "curves.parquet")
    assert set(everything.claim_id) >= {"T3-text-language-early-late", "S2-device-least-divergence"}
    s2 = everything[everything.claim_id == "S2-device-least-divergence"]
    assert set(s2.series) == {"content/net", "speaker/net", "device/net"} and s2.se.notna().all()
    assert "[curves.csv](curves.csv)" in text


def test_html_is_self_contained(report: dict[str, Path]) -> None:
    html = report["html"].read_text()
    assert html.index('id="summary"') < html.index('id="verdict-matrix"')
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html and "<script" not in html and "@import" not in html
    images = re.findall(r'<img src="([^"]+)"', html)
    figures = list((report["markdown"].parent / "figures").glob("*.png"))
    assert len(images) == len(figures) > 0 and all(src.startswith("data:image/png;base64,") for src in images)
    assert 'class="v-fails unexpected"' in html and 'class="v-inconclusive decayed"' in html
    assert '<span class="dependent">template-dependent</span>' in html


def test_compare_pairs_by_unit_when_both_records_store_one_part() -> None:
    paired = compare_records(synthetic_records(), "gemma-3-270m-q4km")
    delta = next(
        d
        for d in paired.deltas
        if d.model == "smollm2-135m-q41" and d.template == "bare" and d.claim_id.startswith("T3")
    )
    assert delta.method == "paired jackknife" and delta.ci_low < delta.delta < delta.ci_high
    assert delta.delta == pytest.approx(0.18 - 0.25)
    skipped = {(c, m) for c, m, _ in paired.skipped}
    assert (
        "S1-speech-transcript-late",
        "qwen2-audio-7b [bare]",
    ) in skipped  # no gemma record of S1 with an effect
    a = make_record("T3-text-language-early-late", "gemma-3-270m-q4km", effect=0.2)
    b = make_record("T3-text-language-early-late", "smollm2-135m-q41", effect=0.3)
    assert b.measurement is not None
    b.measurement.payloads["parts"]["gap"]["levels"] = {"meaning_id": [f"x{i}" for i in range(12)]}
    unpaired = compare_records([a, b], "gemma-3-270m-q4km").deltas[0]
    half = stats.norm.ppf(0.95) * math.sqrt(2) * 0.02  # one-sided bounds at alpha from the two records' se
    assert unpaired.method.startswith("unpaired") and "unit levels differ" in unpaired.note
    assert (unpaired.ci_low, unpaired.ci_high) == pytest.approx((0.1 - half, 0.1 + half))


def test_compare_refuses_unknown_model_and_skips_other_probe_sets() -> None:
    with pytest.raises(ReportError, match="no records of that model"):
        compare_records(synthetic_records(), "qwen2-audio-7b-chat")
    records = [
        make_record("T3-text-language-early-late", "smollm2-135m-q41"),
        make_record("T3-text-language-early-late", "gemma-3-270m-q4km", probe_hash="e" * 64),
    ]
    comparison = compare_records(records, "smollm2-135m-q41@smol")
    assert not comparison.deltas and "different probe sets" in comparison.skipped[0][2]


@pytest.fixture
def no_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests of tables only: skip drawing (figures are covered by the module-scoped report)."""
    monkeypatch.setattr("benchmark.report.render_figures", lambda records, comparison=None: {})


def _accepted(tmp_path: Path, records: list[ClaimRecord]) -> Path:
    accept(records, "synthetic first acceptance", baselines_dir=tmp_path / "baselines", runner="test")
    return tmp_path / "baselines"


def _gemma_t3(**update: object) -> ClaimRecord:
    record = make_record("T3-text-language-early-late", "gemma-3-270m-q4km", effect=0.25)
    return record.model_copy(update=update, deep=True) if update else record


def test_baselines_are_keyed_files_with_reasons_and_the_nightly_cannot_write_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [
        _gemma_t3(),
        _gemma_t3(template="shared-suffix"),
        _gemma_t3(variant="punct", primary_variant=False),
    ]
    for reason in ("", "   "):
        with pytest.raises(ReportError, match="needs a reason"):
            accept(records, reason, baselines_dir=tmp_path)
    with pytest.raises(ReportError, match="pipeline errors"):
        accept([_gemma_t3(verdict="error")], "why", baselines_dir=tmp_path)
    monkeypatch.setenv(NIGHTLY_ENV, "1")
    with pytest.raises(ReportError, match="never writes them"):
        accept(records, "why", baselines_dir=tmp_path)
    monkeypatch.delenv(NIGHTLY_ENV)
    assert not any(tmp_path.iterdir())
    [path] = accept(records, "new tokenizer release", baselines_dir=tmp_path, runner="gpu-1")
    assert path == baseline_file(tmp_path, "gemma-3-270m-q4km", "ci", "float32")
    assert path.relative_to(tmp_path).as_posix() == "ci/float32/gemma-3-270m-q4km.json"
    stored = json.loads(path.read_text())
    assert stored["schema"] == "baselines/2" and len(stored["entries"]) == 3
    entry = stored["entries"][0]
    for key in (
        "claim_id",
        "claim_version",
        "model",
        "revision",
        "probe_set_hash",
        "template",
        "variant",
        "dtype",
        "profile",
    ):
        assert key in entry
    assert entry["reason"] == "new tokenizer release" and entry["runner"] == "gpu-1" and entry["accepted"]
    again = accept([_gemma_t3(verdict="inconclusive")], "re-run", baselines_dir=tmp_path)
    assert again == [path] and len(load_baselines(tmp_path)) == 3  # the same key is replaced, others kept


def test_regression_outcomes_and_which_fail(tmp_path: Path) -> None:
    base = [
        _gemma_t3(),
        _gemma_t3(template="shared-suffix"),
        _gemma_t3(variant="punct", primary_variant=False),
        make_record("T6-related-languages-overlap", "gemma-3-270m-q4km", effect=0.3),
        make_record("T4-text-semantic-middle", "gemma-3-270m-q4km", effect=0.3),
        make_record("T5-text-first-layers-low", "gemma-3-270m-q4km", effect=0.3),
    ]
    baselines = _accepted(tmp_path, base)
    strong_flip = make_record(
        "T3-text-language-early-late", "gemma-3-270m-q4km", verdict="fails", effect=-0.2
    )
    weak_flip = make_record(
        "T3-text-language-early-late",
        "gemma-3-270m-q4km",
        template="shared-suffix",
        verdict="fails",
        effect=0.01,
    )  # upper bound 0.046 <= delta, p 0.035 > 0.1 / 4 checks
    decay = make_record(
        "T6-related-languages-overlap", "gemma-3-270m-q4km", verdict="inconclusive", effect=0.07
    )
    moved = make_record("T4-text-semantic-middle", "gemma-3-270m-q4km", effect=0.33)
    other = make_record("T5-text-first-layers-low", "gemma-3-270m-q4km", effect=0.3, probe_hash="e" * 64)
    new = make_record("Q1-metrics-agree", "gemma-3-270m-q4km")
    result = check_records([strong_flip, weak_flip, decay, moved, other, new], baselines, calibration={})
    outcome = {c.label: c.outcome for c in result.checks}
    assert outcome == {
        "T3-text-language-early-late on gemma-3-270m-q4km [bare,nopunct]": "regression",
        "T3-text-language-early-late on gemma-3-270m-q4km [shared-suffix,nopunct]": "unconfirmed flip",
        "T6-related-languages-overlap on gemma-3-270m-q4km [bare,nopunct]": "decayed",
        "T4-text-semantic-middle on gemma-3-270m-q4km [bare,nopunct]": "moved",
        "T5-text-first-layers-low on gemma-3-270m-q4km [bare,nopunct]": "unmatched",
        "Q1-metrics-agree on gemma-3-270m-q4km [bare,nopunct]": "no baseline",
        "T3-text-language-early-late on gemma-3-270m-q4km [bare,punct]": "missing record",
    }
    assert {c.outcome for c in result.failures} == {"regression", "unmatched", "missing record"}
    assert result.exit_code == 1
    regression = next(c for c in result.checks if c.outcome == "regression")
    assert regression.message().startswith(
        "regression: T3-text-language-early-late on gemma-3-270m-q4km [bare"
    )
    assert regression.p_value is not None and regression.p_value < regression.threshold  # type: ignore[operator]
    weak = next(c for c in result.checks if c.outcome == "unconfirmed flip")
    assert weak.p_value is not None and weak.p_value > weak.threshold  # type: ignore[operator]
    unmatched = next(c for c in result.checks if c.outcome == "unmatched")
    assert (
        "probe_set_hash aaaaaaaaaaaaaaaa -> eeeeeeeeeeeeeeee" in unmatched.detail
        and "baselines accept" in unmatched.detail
    )
    assert check_records(base, baselines, calibration={}).exit_code == 0  # the accepted run itself passes
    errored = check_records(
        [_gemma_t3(verdict="error", measurement=None)], baselines, models=["gemma-3-270m-q4km"]
    )
    assert "error" in {c.outcome for c in errored.failures}
    other_model = check_records([make_record("T3-text-language-early-late", "smollm2-135m-q41")], baselines)
    assert other_model.exit_code == 0  # gemma did not run and was not expected: its baselines are not judged
    expected = check_records(
        [make_record("T3-text-language-early-late", "smollm2-135m-q41")],
        baselines,
        models=["gemma-3-270m-q4km"],
    )
    assert len(expected.of("missing record")) == 6


def test_the_regression_section_and_false_alarm_budget_in_the_report(
    tmp_path: Path, expectations_file: Path, no_figures: None
) -> None:
    baselines = _accepted(tmp_path, [_gemma_t3(), _gemma_t3(template="shared-suffix")])
    flip = make_record("T3-text-language-early-late", "gemma-3-270m-q4km", verdict="fails", effect=-0.2)
    text = write_report(
        [flip, _gemma_t3(template="shared-suffix")],
        tmp_path / "out",
        baselines_dir=baselines,
        calibration_path=tmp_path / "none.json",
    )["markdown"].read_text()
    assert "Nightly gate (baselines in" in _section(text, "Summary") and "**1 failure(s)**" in text
    regression = _section(text, "Regression against the baselines")
    assert re.search(
        r"\| regression +\| FAILS +\| T3-text-language-early-late on gemma-3-270m-q4km \[bare,nopunct\]",
        regression,
    )
    alarms = _section(text, "False-alarm budget of the nightly")
    assert "model whose accepted baseline is a finding, the ones that can flip): 2." in alarms
    assert "Expected spurious flips if every flip failed the night: 0.10" in alarms  # 2 x nominal 0.05
    assert "Expected spurious failures under the rule: 0.100 (budget 0.1)" in alarms
    assert "Assumption: nominal alpha (no calibration entry at size ci)." in alarms


def test_the_budget_holds_below_point_one_whatever_the_number_of_checks() -> None:
    calibration = calibration_doc()
    calibration["entries"]["T3-text-language-early-late|bare|ci"] = {
        "boundary_null": {"holds": 40, "trials": 500, "rate": 0.08, "ci95": [0.058, 0.107]}
    }
    records = [
        make_record("T3-text-language-early-late", f"m{i}", template=t)
        for i in range(300)
        for t in ("bare", "shared-suffix")
    ] + [make_record("T4-text-semantic-middle", "m", template="bare")]
    budget = alarm_budget(records, calibration, size="ci")
    assert budget.checks == 601
    assert (
        budget.expected_with_rule == pytest.approx(NIGHTLY_BUDGET)
        and budget.expected_with_rule <= NIGHTLY_BUDGET
    )
    # anti-conservative rule (upper bound 10.7% at alpha 5%): a stricter threshold in proportion
    bare = next(r for r in budget.rates if r.template == "bare")
    shared = next(r for r in budget.rates if r.template == "shared-suffix")
    assert bare.inflation == pytest.approx(0.107 / 0.05) and shared.inflation == 1.0  # shared: 2.6% < 5%
    assert budget.threshold(bare) == pytest.approx(0.1 / (601 * 0.107 / 0.05))
    assert budget.expected_without_rule == pytest.approx(300 * 0.107 + 300 * 0.026 + 0.05)
    stale = check_rate(
        {"stale": True, "entries": calibration["entries"]}, "T3-text-language-early-late", "bare", 0.05, "ci"
    )
    assert stale.rate == 0.05 and "stale" in stale.source
    assert check_rate(calibration, "T7-training-mix-shifts-cjk[a~b]", "bare", 0.05, "ci").source.startswith(
        "nominal"
    )


@pytest.mark.parametrize(
    ("rule", "verdict", "effect", "expected"),
    [
        (PRESENCE, "holds", 0.2, stats.t(11).sf((0.2 - 0.05) / 0.02)),
        (PRESENCE, "fails", 0.0, stats.t(11).sf((0.05 - 0.0) / 0.02)),
        ({"kind": "absence", "epsilon": 0.05, "alpha": 0.05}, "holds", 0.0, stats.t(11).sf(0.05 / 0.02)),
        ({"kind": "absence", "epsilon": 0.05, "alpha": 0.05}, "fails", 0.12, stats.t(11).sf(0.07 / 0.02)),
        (
            {"kind": "change", "delta": 0.05, "alpha": 0.05, "directions": {"gemma": "decrease"}},
            "holds",
            -0.12,
            stats.t(11).sf(0.07 / 0.02),
        ),
        (
            {"kind": "change", "delta": 0.05, "alpha": 0.05, "directions": {}},
            "holds",
            0.12,
            2 * stats.t(11).sf(0.07 / 0.02),
        ),
        (
            {"kind": "change", "delta": 0.05, "alpha": 0.05, "directions": {}},
            "fails",
            0.01,
            stats.t(11).sf(0.04 / 0.02),
        ),
    ],
)
def test_finding_p_values_follow_the_rule(rule: dict, verdict: str, effect: float, expected: float) -> None:
    record = make_record("X1", "gemma-3-270m-q4km", rule=rule, verdict=verdict, effect=effect)
    assert finding_p_value(record) == pytest.approx(expected, rel=1e-6)
    assert finding_p_value(record.model_copy(update={"verdict": "inconclusive"})) is None


def test_finding_p_values_are_the_records_own_when_stored() -> None:
    """A record that stores both sides' p-values (the kit's, skew widening included) is weighed by them."""
    record = make_record("X1", "gemma-3-270m-q4km", rule=PRESENCE, verdict="holds", effect=0.2)
    assert record.measurement is not None
    stored = record.model_copy(
        update={"measurement": record.measurement.model_copy(update={"p_value": 0.004, "p_fails": 0.9})}
    )
    assert finding_p_value(stored) == pytest.approx(0.004)
    assert finding_p_value(stored.model_copy(update={"verdict": "fails"})) == pytest.approx(0.9)


def test_load_records_from_files_and_folders(tmp_path: Path) -> None:
    records = synthetic_records()
    for r in records:
        r.save(
            record_path(
                tmp_path / "results",
                r.model,
                r.revision,
                r.probe_set_hash,
                r.claim_id,
                r.claim_version,
                r.template,
                r.variant,
            )
        )
    (tmp_path / "results" / "notes.json").write_text("{}")  # not a record name: ignored in folders
    assert len(load_records([tmp_path / "results"])) == len(records)
    one = next((tmp_path / "results").rglob("T3*@2[[]bare,nopunct].json"))
    assert load_records([one])[0].claim_id == "T3-text-language-early-late"
    bad = tmp_path / "bad@1.json"
    bad.write_text("{}")
    with pytest.raises(ReportError, match=r"bad@1\.json: not a readable claim record"):
        load_records([bad])
    with pytest.raises(ReportError, match="no such file"):
        load_records([tmp_path / "missing"])
    with pytest.raises(ReportError, match="no claim records"):
        write_report([], tmp_path / "out")


def test_duplicate_records_keep_the_newest_per_template(
    tmp_path: Path, expectations_file: Path, no_figures: None
) -> None:
    old = make_record(
        "T3-text-language-early-late", "gemma-3-270m-q4km", effect=0.1, expected="holds", status="measured"
    )
    new = old.model_copy(
        update={"created": "2026-02-01T00:00:00+00:00", "verdict": "fails", "meets_expectation": False}
    )
    other = make_record("T3-text-language-early-late", "gemma-3-270m-q4km", template="shared-suffix")
    text = write_report([new, old, other], tmp_path)["markdown"].read_text()
    assert "superseded by the record of 2026-02-01" in text
    row = _row(_section(text, "Verdict matrix"), "| T3-")
    assert "**⚠ fails** (expected holds, measured) ◆" in row and "holds (no expectation)" in row
