"""Speech claims S1-S8 and D1: specs load, controls calibrate, shuffled data never pass, real latents run.

Controls are built from the real whisper-base dev latents when they exist (/work/dev-latents, or
``LALM_BENCH_DEV_LATENTS``) and otherwise from seeded Gaussian latents on the shipped probe set, so the
calibration logic is exercised either way. Few seeds here (CI time); the calibration run uses many more.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from benchmark.claims.data import CONTROLS, MEASURES, Budget, ClaimData, claim_data_from, load_measures
from benchmark.claims.registry import get_claim
from benchmark.claims.verdict import decide
from benchmark.probes.catalog import resolve_probes

load_measures()

DEV = Path(os.environ.get("LALM_BENCH_DEV_LATENTS", "/work/dev-latents"))
MODEL = "whisper-base-ct2"
BUDGET = Budget.for_profile("ci")
POSITIVE_SEEDS = (0, 1, 2)
BOUNDARY_SEEDS = (10,)
#: Absence claims whose ci design is too small for power 0.8 at epsilon (measured: D1 power ~0.4 with 12 speakers);
#: their positive control must come out inconclusive, never fails; the full profile (24 speakers) is the real test.
UNDERPOWERED_AT_CI = {"D1-no-demography"}

CLAIMS = [
    "S1-speech-transcript-late",
    "S2-device-least-divergence",
    "S3-normalisation-model-specific",
    "S4-single-voice-early",
    "S5-speech-language-all-layers",
    "S6-speech-no-crosslingual-semantics",
    "S7-related-languages-speech",
    "S8-content-over-speaker",
    "D1-no-demography",
]

_CACHE: dict[str, ClaimData] = {}


def _dev_path(probe_set: str) -> Path:
    return DEV / f"{MODEL}__{probe_set}__ci.safetensors"


def _synthetic(probe_set: str) -> ClaimData:
    """Gaussian latents on the shipped probe set (8 named layers, emb identical as with a shared suffix)."""
    probes = resolve_probes(probe_set, "ci")
    rng = np.random.default_rng(7)
    layers = ["emb", *[f"block{i}" for i in range(6)], "final_norm"]
    X = rng.standard_normal((len(probes.samples), len(layers), 48)) + 2.0
    X[:, 0] = 1.0
    return ClaimData(
        latents=X,
        layers=layers,
        samples=list(probes.samples),
        last_token_ids=np.zeros(len(probes.samples), dtype=np.int64),
        model="synthetic",
        model_kind="synthetic",
    )


def _base(probe_set: str) -> ClaimData:
    if probe_set not in _CACHE:
        path = _dev_path(probe_set)
        if path.exists():
            from benchmark.engine.extract import LatentSet

            _CACHE[probe_set] = claim_data_from(LatentSet.load(path), resolve_probes(probe_set, "ci"))
        else:
            _CACHE[probe_set] = _synthetic(probe_set)
    return _CACHE[probe_set]


def _quiet(params: dict) -> dict:
    return {**params, "tsne_layers": []}


def _verdict(claim_id: str, data: ClaimData, seed: int) -> str:
    spec = get_claim(claim_id)
    m = MEASURES.get(spec.statistic)(data, _quiet(spec.params), np.random.default_rng(seed), BUDGET)
    return decide(spec.rule, m, reference_verdict="holds")[0]


@pytest.mark.parametrize("claim_id", CLAIMS)
def test_spec_loads(claim_id: str) -> None:
    spec = get_claim(claim_id)
    assert spec.id == claim_id and spec.version == 1
    assert spec.statistic in MEASURES.names() and spec.statistic in CONTROLS.names()
    if spec.rule.kind == "absence":
        assert spec.reference and float(spec.params["epsilon"]) == spec.rule.epsilon


@pytest.mark.parametrize("claim_id", CLAIMS)
def test_controls(claim_id: str) -> None:
    """Positive control holds in most seeds; the boundary null never holds."""
    spec = get_claim(claim_id)
    ctl = CONTROLS.get(spec.statistic)
    params = _quiet(spec.params)
    base = _base(spec.probe_set)
    positive = 0.0 if spec.rule.kind == "absence" else float(spec.rule.power_at)
    boundary = float(spec.rule.epsilon if spec.rule.kind == "absence" else spec.rule.delta)
    holds = []
    for seed in POSITIVE_SEEDS:
        rng = np.random.default_rng(seed)
        holds.append(
            _verdict(claim_id, ctl.plant(ctl.shuffle(base, params, rng), params, positive, rng), seed)
        )
    if claim_id in UNDERPOWERED_AT_CI:
        # 12 speakers cannot give power 0.8 at epsilon: the rule must say inconclusive, never fails.
        assert "fails" not in holds, f"{claim_id}: true absence gave {holds}"
    else:
        assert sum(v == "holds" for v in holds) >= 2, f"{claim_id}: positive control verdicts {holds}"
    for seed in BOUNDARY_SEEDS:
        rng = np.random.default_rng(seed)
        verdict = _verdict(claim_id, ctl.plant(ctl.shuffle(base, params, rng), params, boundary, rng), seed)
        assert verdict != "holds", f"{claim_id}: boundary null (size {boundary}) held with seed {seed}"


@pytest.mark.parametrize("claim_id", [c for c in CLAIMS if get_claim(c).rule.kind == "presence"])
def test_shuffled_never_holds(claim_id: str) -> None:
    spec = get_claim(claim_id)
    ctl = CONTROLS.get(spec.statistic)
    base = _base(spec.probe_set)
    rng = np.random.default_rng(3)
    assert _verdict(claim_id, ctl.shuffle(base, _quiet(spec.params), rng), 3) != "holds"


@pytest.mark.parametrize("claim_id", [c for c in CLAIMS if get_claim(c).rule.kind == "absence"])
def test_blind_pipeline_never_holds(claim_id: str) -> None:
    """All latents identical after emb: the measure refuses (no noise to size an interval) or does not hold."""
    spec = get_claim(claim_id)
    base = _base(spec.probe_set)
    X = np.array(base.latents, dtype=np.float64)
    X[:, 1:] = X[:1, 1:]
    blind = ClaimData(
        latents=X,
        layers=base.layers,
        samples=base.samples,
        last_token_ids=base.last_token_ids,
        model=base.model,
        model_kind=base.model_kind,
    )
    try:
        verdict = _verdict(claim_id, blind, 0)
    except ValueError:
        return
    assert verdict != "holds"


@pytest.mark.parametrize("claim_id", CLAIMS)
def test_real_latents_finite(claim_id: str) -> None:
    spec = get_claim(claim_id)
    if not _dev_path(spec.probe_set).exists():
        pytest.skip(f"dev latents {_dev_path(spec.probe_set)} not extracted yet")
    m = MEASURES.get(spec.statistic)(
        _base(spec.probe_set), _quiet(spec.params), np.random.default_rng(0), BUDGET
    )
    values = [m.effect, m.ci_low, m.ci_high, *(v for c in m.curves.values() for v in c), *m.numbers.values()]
    assert np.isfinite(values).all()
    assert m.ci_low <= m.ci_high
