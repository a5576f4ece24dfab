"""Cross-modal claims M1-M4 and M3's positive reference: claim files, controls, broken pipelines, real latents.

Controls run on whisper-base's real crossmodal ci latents when the dev file exists (``LALM_BENCH_DEV_LATENTS``,
default /work/dev-latents), otherwise on Gaussian latents with the shipped probe labels and a crossed factor
structure, so the calibration logic is exercised everywhere. A few seeds only: the 500-seed calibration is
``lalm-bench calibrate``'s job.
"""

from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from benchmark.claims.calibrate import run_controls
from benchmark.claims.data import CONTROLS, MEASURES, Budget, ClaimData, claim_data_from, load_measures
from benchmark.claims.evaluate import gate, select
from benchmark.claims.spec import ClaimSpec
from benchmark.claims.verdict import decide
from benchmark.probes.catalog import resolve_probes

SPEC_DIR = Path(__file__).resolve().parents[1] / "benchmark" / "claims" / "specs"
CLAIMS = (
    "M1-modality-separate",
    "M2-modality-gap-narrows",
    "M3-no-crossmodal-alignment",
    "M3-ref-text-translation-retrieval",
    "M4-multilingual-text-speech",
)
DEV_FILE = (
    Path(os.environ.get("LALM_BENCH_DEV_LATENTS", "/work/dev-latents"))
    / "whisper-base-ct2__crossmodal__ci.safetensors"
)
CI = Budget.for_profile("ci")
SEEDS = 2  # fixed seeds: deterministic; the 500-seed rates are lalm-bench calibrate's job


def _spec(claim_id: str) -> ClaimSpec:
    return ClaimSpec.model_validate(
        yaml.safe_load((SPEC_DIR / f"{claim_id}.yaml").read_text(encoding="utf-8"))
    )


@functools.cache
def _real() -> ClaimData | None:
    if not DEV_FILE.exists():
        return None
    from benchmark.engine.extract import LatentSet

    return claim_data_from(LatentSet.load(DEV_FILE), resolve_probes("crossmodal", "ci"))


@functools.cache
def _synthetic() -> ClaimData:
    """Latents = shared mean + meaning + language + modality + cell components + noise, per layer (6 blocks)."""
    probes = resolve_probes("crossmodal", "ci")
    rng = np.random.default_rng(20260101)
    layers = ["emb", *[f"block{i}" for i in range(6)], "final_norm"]
    d = 48
    cache: dict[tuple, np.ndarray] = {}

    def part(key: tuple, scale: float) -> np.ndarray:
        if key not in cache:
            cache[key] = rng.standard_normal((len(layers), d))
        return scale * cache[key]

    rows = []
    for s in probes.samples:
        rows.append(
            part(("mean",), 3.0)
            + part(("meaning", s.meaning_id), 0.7)
            + part(("language", s.language), 0.7)
            + part(("modality", s.modality), 0.7)
            + part(("cell", s.meaning_id, s.language, s.modality), 0.3)
            + rng.standard_normal((len(layers), d))
        )
    return ClaimData(
        latents=np.asarray(rows, dtype=np.float32),
        layers=layers,
        samples=list(probes.samples),
        last_token_ids=np.zeros(len(rows), dtype=np.int64),
        model="synthetic",
        model_kind="test",
    )


def _base(spec: ClaimSpec) -> ClaimData:
    return select(spec, _real() or _synthetic())


# ------------------------------------------------------------------------------------------------ claim files


@pytest.mark.parametrize("claim_id", CLAIMS)
def test_claim_file_loads_and_matches_its_measure(claim_id: str) -> None:
    spec = _spec(claim_id)
    load_measures()
    assert spec.id == claim_id
    assert spec.probe_set == "crossmodal"
    assert spec.statistic in MEASURES and spec.statistic in CONTROLS
    assert spec.params["alpha"] == spec.rule.alpha, "the measure's interval level must be the rule's alpha"
    if spec.rule.kind == "absence":
        assert spec.params["epsilon"] == spec.rule.epsilon, (
            "the measure's power margin must be the rule's epsilon"
        )
        assert (SPEC_DIR / f"{spec.reference}.yaml").exists()
    assert set(spec.requires_modalities) == {"text", "speech"}


def test_m3_reference_uses_m3_margin() -> None:
    m3, ref = _spec("M3-no-crossmodal-alignment"), _spec("M3-ref-text-translation-retrieval")
    assert m3.reference == ref.id
    assert ref.rule.delta == m3.rule.epsilon


def test_declared_design_must_match_the_measure() -> None:
    spec = _spec("M1-modality-separate")
    params = dict(spec.params, strata=["language"], secondary=False)
    with pytest.raises(ValueError, match="strata"):
        MEASURES.get(spec.statistic)(_base(spec), params, np.random.default_rng(0), CI)


def test_missing_modality_is_named() -> None:
    spec = _spec("M1-modality-separate")
    data = _synthetic()
    text_only = data.subset(np.asarray([s.modality == "text" for s in data.samples]))
    with pytest.raises(ValueError, match="speech"):
        MEASURES.get(spec.statistic)(text_only, dict(spec.params), np.random.default_rng(0), CI)


# --------------------------------------------------------------------------------------------------- controls


@pytest.mark.parametrize("claim_id", CLAIMS)
def test_controls_positive_holds_and_boundary_does_not(claim_id: str) -> None:
    spec = _spec(claim_id)
    result = run_controls(spec, _base(spec), seeds=SEEDS, budget=CI, first_seed=11)
    assert result["positive"]["holds"] == SEEDS, result
    assert result["boundary_null"]["holds"] == 0, result


@pytest.mark.parametrize("claim_id", [c for c in CLAIMS if not c.startswith("M3-no")])
def test_shuffled_labels_never_hold_a_presence_claim(claim_id: str) -> None:
    spec = _spec(claim_id)
    controls = CONTROLS.get(spec.statistic)
    for seed in (0,):
        rng = np.random.default_rng(seed)
        shuffled = controls.shuffle(_base(spec), dict(spec.params), rng)
        m = MEASURES.get(spec.statistic)(shuffled, dict(spec.params), rng, CI)
        assert decide(spec.rule, m)[0] != "holds", (seed, m.effect, m.ci_low)
        assert abs(m.effect) < 0.05 or spec.id.startswith("M4"), m.effect  # M4's parts sit at -threshold


def test_plant_reaches_the_requested_size() -> None:
    for claim_id, size in (("M1-modality-separate", 0.3), ("M3-no-crossmodal-alignment", 0.25)):
        spec = _spec(claim_id)
        controls, fn = CONTROLS.get(spec.statistic), MEASURES.get(spec.statistic)
        rng = np.random.default_rng(3)
        m = fn(controls.plant(_base(spec), dict(spec.params), size, rng), dict(spec.params), rng, CI)
        assert m.effect == pytest.approx(size, abs=0.03), (claim_id, m.effect)


def test_absence_claim_cannot_hold_on_a_blind_pipeline() -> None:
    """Latents identical after emb (audio never reached the model): the gate errors, and the reference fails."""
    m3, ref = _spec("M3-no-crossmodal-alignment"), _spec("M3-ref-text-translation-retrieval")
    base = _base(m3)
    blind = base.latents.copy()
    blind[:, 1:] = blind[0, 1:]
    broken = ClaimData(
        latents=blind,
        layers=base.layers,
        samples=base.samples,
        last_token_ids=base.last_token_ids,
        model=base.model,
        model_kind=base.model_kind,
    )
    assert gate(broken), "the evaluator's gate must flag identical latents after emb"
    rng = np.random.default_rng(0)
    ref_m = MEASURES.get(ref.statistic)(broken, dict(ref.params, secondary=False), rng, CI)
    ref_verdict = decide(ref.rule, ref_m)[0]
    assert ref_verdict != "holds"
    m = MEASURES.get(m3.statistic)(broken, dict(m3.params, secondary=False), rng, CI)
    assert decide(m3.rule, m, reference_verdict=ref_verdict)[0] != "holds"


# ----------------------------------------------------------------------------------------------- real latents


@pytest.mark.skipif(not DEV_FILE.exists(), reason=f"dev latents {DEV_FILE} not extracted on this machine")
@pytest.mark.parametrize("claim_id", CLAIMS)
def test_measure_runs_on_real_whisper_latents(claim_id: str) -> None:
    spec = _spec(claim_id)
    data = select(spec, _real())
    params = dict(spec.params)
    if "tsne_layers" in params:
        params["tsne_layers"] = []  # t-SNE (figures only) takes ~30 s per layer here; see test_tsne_payload
    m = MEASURES.get(spec.statistic)(data, params, np.random.default_rng(0), CI)
    numbers = [m.effect, m.ci_low, m.ci_high, *m.numbers.values(), *(v for c in m.curves.values() for v in c)]
    assert all(math.isfinite(x) for x in numbers)
    assert m.ci_low <= m.ci_high
    assert m.token_control is not None and math.isfinite(m.token_control)
    assert len(json.dumps(m.payloads)) < 200_000
    assert decide(spec.rule, m, reference_verdict="holds")[0] in ("holds", "fails", "inconclusive")


def test_tsne_payload_is_small_and_labelled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The payload's shape and size; t-SNE itself is stubbed (slow here, and tested with the statistics)."""
    import benchmark.claims.measures_crossmodal as module

    monkeypatch.setattr(
        module, "tsne_2d", lambda X, *, rng, perplexity: np.asarray(X)[:, :2] + 0.0 * perplexity
    )
    spec = _spec("M4-multilingual-text-speech")
    params = dict(spec.params, tsne_layers=["block0"])
    m = MEASURES.get(spec.statistic)(select(spec, _synthetic()), params, np.random.default_rng(0), CI)
    tsne = m.payloads["tsne"]
    assert set(tsne["labels"]) == {"modality", "language"}
    assert len(tsne["layers"]["block0"]) == len(tsne["labels"]["language"]) <= 300
    assert len(json.dumps(m.payloads)) < 200_000
