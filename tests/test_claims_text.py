"""Text claims T1-T7 and Q1: specs load, controls calibrate the rules, measures run on real dev latents.

Controls use semi-synthetic latents built from real Gemma-3-270M latents (skipped when the dev latents are not
on this machine): the positive control ``plant(power_at)`` must hold and the boundary null ``plant(delta)`` must
not, on fixed seeds (these few seeds are a smoke check of the calibration, not the 500-seed calibration run).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from benchmark.claims.data import CONTROLS, MEASURES, Budget, ClaimData, claim_data_from
from benchmark.claims.measures_text import aggregate_t7
from benchmark.claims.record import Measurement
from benchmark.claims.spec import ClaimSpec
from benchmark.claims.verdict import decide

SPECS = Path(__file__).resolve().parents[1] / "benchmark" / "claims" / "specs"
DEV = Path(os.environ.get("LALM_BENCH_DEV_LATENTS", "/work/dev-latents"))
GEMMA = "gemma-3-270m-q4km"
CLAIMS = [
    "T1-paraphrase-closer",
    "T2-distance-grows",
    "T3-text-language-early-late",
    "T4-text-semantic-middle",
    "T5-text-first-layers-low",
    "T6-related-languages-overlap",
    "Q1-metrics-agree",
]
BUDGET = Budget.for_profile("ci")
NO_FIGURES = {"tsne_layers": [], "dendrogram_layers": []}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Distances go through torch; with several test processes on 2 cores one thread is ~3x faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def spec(claim_id: str) -> ClaimSpec:
    return ClaimSpec.model_validate(yaml.safe_load((SPECS / f"{claim_id}.yaml").read_text(encoding="utf-8")))


def select(data: ClaimData, s: ClaimSpec, ids: set[str] | None = None) -> ClaimData:
    """What the evaluator passes: the spec's variant and sample filter (and optionally a subset of ids)."""
    keep = np.ones(len(data.samples), dtype=bool)
    for i, sample in enumerate(data.samples):
        if s.variant is not None and sample.variant != s.variant:
            keep[i] = False
        for axis, allowed in s.sample_filter.items():
            if sample.label(axis) not in allowed:
                keep[i] = False
        if ids is not None and sample.id not in ids:
            keep[i] = False
    return data.subset(keep)


def real(model: str, s: ClaimSpec, profile: str, *, ci_subset: bool = False) -> ClaimData:
    from benchmark.engine.extract import LatentSet
    from benchmark.probes.catalog import resolve_probes

    path = DEV / f"{model}__{s.probe_set}__{profile}.safetensors"
    if not path.exists():
        pytest.skip(f"dev latents {path} not present on this machine")
    data = claim_data_from(LatentSet.load(path), resolve_probes(s.probe_set, profile))
    ids = {x.id for x in resolve_probes(s.probe_set, "ci").samples} if ci_subset else None
    return select(data, s, ids)


def params_of(s: ClaimSpec) -> dict:
    return {**s.params, **NO_FIGURES}


def synthetic(s: ClaimSpec, profile: str) -> ClaimData:
    """Seeded Gaussian latents on the shipped probe set, Gemma-3-270M's layer count, for machines without dev
    latents: the controls shuffle the design and plant the effect, so they need no model to be exercised."""
    from benchmark.core.schema import layer_names
    from benchmark.probes.catalog import resolve_probes

    probes = resolve_probes(s.probe_set, profile)
    rng = np.random.default_rng(11)
    layers = layer_names(18)
    X = rng.standard_normal((len(probes.samples), len(layers), 48)) + 1.0
    X[:, 0] = 1.0  # emb: identical for every input under the shared suffix
    data = ClaimData(
        latents=X,
        layers=layers,
        samples=list(probes.samples),
        last_token_ids=np.zeros(len(probes.samples), dtype=np.int64),
        model="synthetic",
        model_kind="synthetic",
    )
    return select(data, s)


def control_base(s: ClaimSpec) -> ClaimData:
    """Paraphrase claims are cheap: full set (36 pairs). Parallel-text claims: the ci-sized design (12 meanings).
    Without dev latents on this machine: Gaussian latents (T2's null keeps only norm growth, which Gaussian
    layers do not have, so T2 needs real latents and skips with that reason)."""
    if (DEV / f"{GEMMA}__{s.probe_set}__full.safetensors").exists():
        return real(GEMMA, s, "full", ci_subset=s.probe_set == "text-parallel")
    if s.id == "T2-distance-grows":
        pytest.skip(
            "T2's controls need real latents (norm growth across depth); no dev latents on this machine"
        )
    return synthetic(s, "ci" if s.probe_set == "text-parallel" else "full")


# ------------------------------------------------------------------------------------------------- (a) specs


@pytest.mark.parametrize("claim_id", [*CLAIMS, "T7-training-mix-shifts-cjk"])
def test_spec_loads_and_names_a_registered_measure(claim_id: str) -> None:
    s = spec(claim_id)
    assert s.id == claim_id and s.version == 1
    assert s.statistic in MEASURES.names() and s.statistic in CONTROLS.names()
    assert s.rule.kind == "presence" and s.variant == "nopunct"
    assert s.cross_model == (claim_id == "T7-training-mix-shifts-cjk")


# ------------------------------------------------------------------------------------------------- (b) controls


@pytest.mark.parametrize("claim_id", CLAIMS)
def test_controls_positive_holds_boundary_does_not(claim_id: str) -> None:
    s = spec(claim_id)
    base = control_base(s)
    ctl, fn, params = CONTROLS.get(s.statistic), MEASURES.get(s.statistic), params_of(s)
    for size, want_hold in ((s.rule.power_at, True), (s.rule.delta, False)):
        for seed in (1000, 1001) if s.probe_set == "text-paraphrase" else (1000,):
            rng = np.random.default_rng(seed)
            planted = ctl.plant(ctl.shuffle(base, params, rng), params, size, rng)
            m = fn(planted, params, rng, BUDGET)
            verdict, why = decide(s.rule, m)
            assert (verdict == "holds") == want_hold, (
                f"{claim_id} planted {size} seed {seed}: {verdict} ({why})"
            )


# ------------------------------------------------------------------------------------------------- (c) broken


def test_norm_only_growth_fails_t2() -> None:
    """x_l = c_l x_0: every scale-free distance is constant over depth, so T2 must fail (not be inconclusive)."""
    from benchmark.claims.measures_text import distance_growth
    from benchmark.core.schema import Sample

    rng = np.random.default_rng(0)
    n, layers = 24, ["emb", *[f"block{i}" for i in range(6)], "final_norm"]
    x0 = rng.standard_normal((n, 16))
    X = x0[:, None, :] * np.geomspace(1.0, 50.0, len(layers))[None, :, None]
    samples = [
        Sample(
            id=f"s{i}", modality="text", text=f"t{i}", language="en", pair_id=f"p{i // 4}", variant="nopunct"
        )
        for i in range(n)
    ]
    data = ClaimData(
        latents=X,
        layers=layers,
        samples=samples,
        last_token_ids=np.zeros(n, dtype=int),
        model="synthetic",
        model_kind="text-lm",
    )
    m = distance_growth(data, {"metric": "cosine", "unit": "pair_id"}, rng, BUDGET)
    assert abs(m.effect) < 1e-9
    assert decide(spec("T2-distance-grows").rule, m)[0] == "fails"


@pytest.mark.parametrize("claim_id", [c for c in CLAIMS if c != "Q1-metrics-agree"])  # Q1: boundary test
def test_shuffled_labels_never_hold(claim_id: str) -> None:
    s = spec(claim_id)
    base = control_base(s)
    ctl, fn, params = CONTROLS.get(s.statistic), MEASURES.get(s.statistic), params_of(s)
    rng = np.random.default_rng(7)
    m = fn(ctl.shuffle(base, params, rng), params, rng, BUDGET)
    assert decide(s.rule, m)[0] != "holds"


def test_mixed_variants_are_refused() -> None:
    s = spec("T3-text-language-early-late")
    data = real(GEMMA, s.model_copy(update={"variant": None}), "full", ci_subset=True)
    with pytest.raises(ValueError, match="mixes probe variants"):
        MEASURES.get(s.statistic)(data, params_of(s), np.random.default_rng(0), BUDGET)


# ------------------------------------------------------------------------------------------------- T7


def _t6_like(gap: float, rng: np.random.Generator, se: float = 0.03) -> Measurement:
    draws = gap + se * rng.standard_normal(60)
    return Measurement(
        effect=gap,
        ci_low=gap - 0.05,
        ci_high=gap + 0.05,
        n_units=38,
        n_samples=304,
        n_boot=60,
        n_perm=200,
        resampling="synthetic",
        payloads={"t7": {"layer": "block0", "estimate": gap, "draws": draws.tolist(), "n_units": 38}},
    )


def test_aggregate_t7_orients_and_decides() -> None:
    rng = np.random.default_rng(0)
    rule = spec("T7-training-mix-shifts-cjk").rule
    holds = aggregate_t7(_t6_like(0.05, rng), _t6_like(0.45, rng))
    assert holds.effect == pytest.approx(0.40) and decide(rule, holds)[0] == "holds"
    assert decide(rule, aggregate_t7(_t6_like(0.45, rng), _t6_like(0.05, rng)))[0] == "fails"
    with pytest.raises(ValueError, match="payloads"):
        aggregate_t7(_t6_like(0.1, rng).model_copy(update={"payloads": {}}), _t6_like(0.1, rng))


# ------------------------------------------------------------------------------------------------- (d) real


@pytest.mark.parametrize("model,profile", [(GEMMA, "full"), ("whisper-base-ct2", "ci")])
@pytest.mark.parametrize("claim_id", CLAIMS)
def test_measure_runs_on_real_latents(claim_id: str, model: str, profile: str) -> None:
    s = spec(claim_id)
    data = real(model, s, profile, ci_subset=model == GEMMA and s.probe_set == "text-parallel")
    m = MEASURES.get(s.statistic)(data, params_of(s), np.random.default_rng(0), BUDGET)
    values = [m.effect, m.ci_low, m.ci_high, *m.numbers.values(), *(v for c in m.curves.values() for v in c)]
    assert np.isfinite(values).all()
    assert m.ci_low <= m.ci_high and m.n_samples == len(data.samples)
    Measurement.model_validate_json(m.model_dump_json())  # JSON round trip (records forbid NaN)
