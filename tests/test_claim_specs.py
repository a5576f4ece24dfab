"""Claim files decide: every key is read, unknown or unread keys are refused, a new claim of a known shape is
one YAML file (also a cross-model one), and missing requirements answer n/a naming what is missing."""

from __future__ import annotations

import copy
import importlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from benchmark.claims import registry
from benchmark.claims.data import Budget, ClaimData
from benchmark.claims.evaluate import NotApplicable, check_requirements, decide_measured, measure, select
from benchmark.claims.registry import SPEC_DIR
from benchmark.claims.spec import ClaimSpec
from benchmark.core.schema import Sample

SHIPPED = sorted(SPEC_DIR.glob("*.yaml"))


def load(name: str) -> dict:
    return yaml.safe_load((SPEC_DIR / f"{name}.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_claim_loads_and_is_named_after_its_file(path: Path) -> None:
    spec = ClaimSpec.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    assert spec.id == path.stem
    if not spec.cross_model:
        assert spec.control is not None  # every single-model claim has its controls


def test_the_catalogue_is_complete() -> None:
    catalogue = Path(__file__).resolve().parents[2] / "shared" / "CLAIMS.md"
    ids = {p.stem for p in SHIPPED}
    if catalogue.exists():
        import re

        wanted = set(re.findall(r"^\| ([A-Z][0-9]-[a-z0-9-]+)", catalogue.read_text(), flags=re.M))
        assert wanted <= ids, f"claims of the catalogue without a spec: {sorted(wanted - ids)}"
    assert len(ids) >= 22


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("measure", "metrik"), "cosine", "Extra inputs are not permitted"),
        (("rule", "dleta"), 0.1, "Extra inputs are not permitted"),
        (("measure", "components", "language", "params", "stratta"), ["x"], "takes no parameter"),
        (("measure", "components", "language", "score"), "silhouete", "unknown score"),
        (("measure", "parts", "early_minus_middle", "plus"), ["earli"], "unknown selector"),
        (("measure", "parts", "early_minus_middle", "plus"), ["other.early"], "unknown component"),
        (("templates", "run"), ["bare"], "needs templates.reason"),
        (("measure", "reduce"), "single", "needs 1..1 parts"),
        (("requires", "modalitiez"), ["text"], "Extra inputs are not permitted"),
        (("control", "plant", 0, "layer"), ["late"], "Extra inputs are not permitted"),
    ],
)
def test_unknown_or_inconsistent_keys_are_refused(path: tuple, value: object, message: str) -> None:
    data = copy.deepcopy(load("T3-text-language-early-late"))
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValidationError, match=message):
        ClaimSpec.model_validate(data)


def test_a_presence_rule_needs_its_constants_and_their_reasons() -> None:
    data = load("T3-text-language-early-late")
    del data["rule"]["reasons"]["delta"]
    with pytest.raises(ValidationError, match="no reason"):
        ClaimSpec.model_validate(data)
    data = load("T3-text-language-early-late")
    data["rule"]["power_at"] = 0.01
    with pytest.raises(ValidationError, match="power_at above delta"):
        ClaimSpec.model_validate(data)


def test_an_absence_claim_needs_a_reference() -> None:
    data = load("S6-speech-no-crosslingual-semantics")
    data["references"] = []
    with pytest.raises(ValidationError, match="positive reference"):
        ClaimSpec.model_validate(data)


# ---------------------------------------------------------------------------------------- synthetic data


def parallel_data(n_meanings: int = 8, n_lang: int = 4, strength: float = 3.0, seed: int = 0) -> ClaimData:
    """meaning x language text latents (emb, 6 blocks, final_norm) with language structure early and late."""
    rng = np.random.default_rng(seed)
    langs = ["en", "de", "fr", "ja", "zh", "es"][:n_lang]
    d, layers = 12, ["emb", *(f"block{i}" for i in range(6)), "final_norm"]
    lang_dir = rng.normal(size=(n_lang, d))
    meaning_dir = rng.normal(size=(n_meanings, d))
    profile = np.array([1.0, 1.0, 1.0, 0.1, 0.1, 1.0, 1.0, 1.0])
    samples, rows = [], []
    for m in range(n_meanings):
        for i, lang in enumerate(langs):
            samples.append(
                Sample(
                    id=f"m{m}-{lang}",
                    modality="text",
                    text=f"{m} {lang}",
                    language=lang,
                    meaning_id=f"m{m}",
                    variant="nopunct",
                )
            )
            rows.append(
                [
                    strength * profile[k] * lang_dir[i] + meaning_dir[m] + 0.4 * rng.normal(size=d)
                    for k in range(8)
                ]
            )
    return ClaimData(
        latents=np.asarray(rows, dtype=np.float32),
        layers=layers,
        samples=samples,
        model="synthetic",
        model_kind="text-lm",
        template="bare",
    )


def test_a_claim_of_a_known_shape_evaluates_on_synthetic_latents() -> None:
    spec = registry.get_claim("T3-text-language-early-late")
    data = select(spec, parallel_data(), "nopunct")
    measured = measure(spec, data, Budget(100, 10, "test"), np.random.default_rng(0))
    decision = decide_measured(spec, measured, model="synthetic", reference_verdict=None)
    assert decision.verdict == "holds", decision.reason
    flat = parallel_data(strength=0.0)
    measured = measure(spec, select(spec, flat, "nopunct"), Budget(100, 10, "test"), np.random.default_rng(0))
    assert decide_measured(spec, measured, model="synthetic", reference_verdict=None).verdict != "holds"


def test_missing_requirements_name_what_is_missing() -> None:
    spec = registry.get_claim("T3-text-language-early-late")
    few = select(spec, parallel_data(n_meanings=2), "nopunct")
    with pytest.raises(NotApplicable, match="needs >= 4 distinct meaning_id values, got 2"):
        check_requirements(spec, few)
    t1 = registry.get_claim("T1-paraphrase-closer")
    with pytest.raises(ValueError, match="needs axis pair_id"):
        check_requirements(t1, select(t1, parallel_data(), "nopunct"))


@pytest.fixture
def user_claims(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A folder of user claims (LALM_BENCH_CLAIMS_DIR): one single-model claim and one cross-model claim."""
    single = load("T3-text-language-early-late")
    single.update(
        id="X1-user-language-late",
        title="User claim: language clusters late",
        finding="Language clustering in the late band exceeds that in the middle band.",
    )
    single["measure"]["parts"] = {"late_minus_middle": {"plus": ["late"], "minus": ["middle"]}}
    single["measure"]["reduce"] = "single"
    single.pop("token_control")
    cross = load("T7-training-mix-shifts-cjk")
    cross.update(id="X2-user-cross", title="User cross-model claim")
    cross["measure"].update(
        base_claim="X1-user-language-late", part="late_minus_middle", role_a="model-a", role_b="model-b"
    )
    for spec in (single, cross):
        (tmp_path / f"{spec['id']}.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    monkeypatch.setenv("LALM_BENCH_CLAIMS_DIR", str(tmp_path))
    registry.claim_registry.cache_clear()
    yield tmp_path
    registry.claim_registry.cache_clear()


def test_a_yaml_only_claim_from_a_user_folder_evaluates(user_claims: Path) -> None:
    spec = registry.get_claim("X1-user-language-late")
    data = select(spec, parallel_data(), "nopunct")
    measured = measure(spec, data, Budget(100, 10, "test"), np.random.default_rng(0))
    assert decide_measured(spec, measured, model="synthetic", reference_verdict=None).verdict == "holds"


def test_a_yaml_only_cross_model_claim_pairs_two_models(user_claims: Path) -> None:
    from benchmark.claims.record import Measurement
    from benchmark.claims.shapes.cross_model import difference
    from benchmark.claims.verdict import decide
    from benchmark.run.cross_model import cross_model_pairs, cross_model_specs

    spec = registry.get_claim("X2-user-cross")
    assert spec in cross_model_specs()
    assert cross_model_pairs(spec, ["model-a1", "model-b1", "other"], lambda m: m) == [
        ("model-a1", "model-b1")
    ]
    base = registry.get_claim("X1-user-language-late")
    measurements = []
    for strength in (0.5, 3.0):
        data = select(base, parallel_data(strength=strength), "nopunct")
        m = measure(base, data, Budget(100, 10, "test"), np.random.default_rng(0))
        measurements.append(
            Measurement(
                effect=m.reduction.value,
                ci_low=0,
                ci_high=0,
                n_samples=m.n_samples,
                n_perm=100,
                resampling="",
                payloads=m.payloads,
            )
        )
    measured = difference(spec.measure, measurements[0], measurements[1])
    assert measured.reduction.value > 0
    assert "paired by unit" in measured.resampling
    assert decide(spec.rule, measured.reduction).verdict in ("holds", "inconclusive")


def test_shapes_are_modules_with_one_job() -> None:
    for name in ("band_contrast", "metric_agreement", "cross_model"):
        module = importlib.import_module(f"benchmark.claims.shapes.{name}")
        assert module.__doc__


def test_a_descriptive_rule_measures_but_gives_no_verdict() -> None:
    """D1 cannot be powered by any speech set here: its record keeps the effect, the interval and what the rule
    would read, with verdict n/a, and the same numbers under a deciding rule give that rule's verdict."""
    import numpy as np

    from benchmark.claims.evaluate import decide_measured
    from benchmark.claims.shapes import Measured
    from benchmark.stats.kit import Estimate, Reduction

    spec = registry.get_claim("D1-no-demography")
    assert spec.rule.descriptive
    units = np.array([0.31, 0.29, 0.33, 0.30, 0.32, 0.28, 0.34, 0.30, 0.31, 0.29, 0.32, 0.30])
    leave_one_out = (units.sum() - units) / (units.size - 1)
    est = Estimate(value=float(units.mean()), replicates={"speaker": leave_one_out}, null=np.zeros(50))
    measured = Measured(
        reduction=Reduction("single", (est,), ("x",)), n_units={"speaker": 12}, n_samples=12, resampling="-"
    )
    described = decide_measured(spec, measured, model="m", reference_verdict="holds")
    assert described.verdict == "n/a" and described.reason.startswith("descriptive, no verdict")
    assert "lower bound above the equivalence margin" in described.reason
    deciding = spec.model_copy(update={"rule": spec.rule.model_copy(update={"descriptive": None})})
    assert decide_measured(deciding, measured, model="m", reference_verdict="holds").verdict == "fails"
    assert (
        described.bounds == decide_measured(deciding, measured, model="m", reference_verdict="holds").bounds
    )


def test_q1_needs_enough_blocks_for_a_rank_correlation() -> None:
    """A model with 6 decoder blocks (whisper-base) answers n/a for Q1, naming the blocks it has."""
    from types import SimpleNamespace

    from benchmark.claims.evaluate import NotApplicable, check_requirements

    spec = registry.get_claim("Q1-metrics-agree")
    data = SimpleNamespace(samples=[SimpleNamespace(modality="text")] * 8, num_blocks=6)
    with pytest.raises(NotApplicable, match=r"needs >= 10 decoder blocks, the model has 6"):
        check_requirements(spec, data)  # type: ignore[arg-type]
