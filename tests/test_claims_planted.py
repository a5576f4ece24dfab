"""Planted negatives: claims that look near-certain can fail, and absence claims cannot hold on a blind pipeline.

- T2 must fail on latents that only grow in norm (x_l = c_l x_0);
- M1 must fail when modality carries no structure;
- M3 (and S6 by the same mechanism) never hold when speech content does not reach the model: zeroed audio is a
  pipeline error, shuffled meaning ids or a content-free speech path make the speech-content reference fail, so
  the absence is inconclusive.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.claims import registry
from benchmark.claims.controls import shuffle
from benchmark.claims.data import Budget, ClaimData
from benchmark.claims.evaluate import combined_reference, decide_measured, gate, measure, select
from benchmark.claims.spec import Shuffle
from benchmark.core.schema import Sample

BUDGET = Budget(100, 10, "test")
LAYERS = ["emb", *(f"block{i}" for i in range(6)), "final_norm"]
LANGS = ["en", "de", "fr", "ja"]


def _verdict(claim_id: str, data: ClaimData, reference: str | None = None) -> str:
    spec = registry.get_claim(claim_id)
    selected = select(spec, data, spec.select.variant)
    measured = measure(spec, selected, BUDGET, np.random.default_rng(0))
    return decide_measured(spec, measured, model="synthetic", reference_verdict=reference).verdict


def paraphrase_data(seed: int = 0) -> ClaimData:
    rng = np.random.default_rng(seed)
    roles = ("anchor", "paraphrase", "adversarial", "unrelated")
    samples, rows = [], []
    for p in range(12):
        for role in roles:
            samples.append(
                Sample(
                    id=f"p{p}-{role}",
                    modality="text",
                    text=f"{p}{role}",
                    language="en",
                    pair_id=f"p{p}",
                    pair_role=role,
                    variant="nopunct",
                )
            )
            rows.append(rng.normal(size=(8, 10)))
    return ClaimData(
        latents=np.asarray(rows, np.float32),
        layers=LAYERS,
        samples=samples,
        model="synthetic",
        model_kind="text-lm",
    )


def test_t2_fails_on_latents_that_only_grow_in_norm() -> None:
    data = paraphrase_data()
    grown = shuffle(data, Shuffle(named="norm_growth"), np.random.default_rng(0))
    assert _verdict("T2-distance-grows", grown) == "fails"


def crossmodal_data(*, speech: str = "content", modality: float = 3.0, seed: int = 0) -> ClaimData:
    """meanings x languages, text (one variant) and speech (two voices). ``speech``: ``content`` (clips carry
    their meaning), ``none`` (clips carry no content: a blind speech path) or ``zero`` (every clip identical)."""
    rng = np.random.default_rng(seed)
    d = 16
    meaning_dir = rng.normal(size=(12, d)) * 2.0
    lang_dir = rng.normal(size=(len(LANGS), d))
    modality_dir = rng.normal(size=(2, d))
    samples, rows = [], []
    for m in range(12):
        for i, lang in enumerate(LANGS):
            samples.append(
                Sample(
                    id=f"t-m{m}-{lang}",
                    modality="text",
                    text=f"{m}{lang}",
                    language=lang,
                    meaning_id=f"m{m}",
                    variant="nopunct",
                )
            )
            rows.append(
                meaning_dir[m] + lang_dir[i] + modality * modality_dir[0] + 0.5 * rng.normal(size=(8, d))
            )
            for voice in ("f1", "m1"):
                samples.append(
                    Sample(
                        id=f"s-m{m}-{lang}-{voice}",
                        modality="speech",
                        text=f"{m}{lang}",
                        language=lang,
                        meaning_id=f"m{m}",
                        speaker=voice,
                        audio_path=f"audio/{m}{lang}{voice}.wav",
                        audio_sha256=f"{m}{lang}{voice}".ljust(64, "0"),
                    )
                )
                if speech == "zero":
                    rows.append(np.ones((8, d)))
                else:
                    content = meaning_dir[m] if speech == "content" else rng.normal(size=d) * 2.0
                    rows.append(
                        content + lang_dir[i] + modality * modality_dir[1] + 0.5 * rng.normal(size=(8, d))
                    )
    return ClaimData(
        latents=np.asarray(rows, np.float32),
        layers=LAYERS,
        samples=samples,
        model="synthetic",
        model_kind="lalm",
        template="shared-suffix",
    )


def test_m1_fails_when_modality_carries_no_structure() -> None:
    assert _verdict("M1-modality-separate", crossmodal_data(modality=3.0)) == "holds"
    assert _verdict("M1-modality-separate", crossmodal_data(modality=0.0)) == "fails"


def _m3_with_references(data: ClaimData) -> str:
    references = {
        ref: _verdict(ref, data) for ref in registry.get_claim("M3-no-crossmodal-alignment").references
    }
    return _verdict("M3-no-crossmodal-alignment", data, combined_reference(list(references), references))


def test_speech_content_reference_holds_when_content_reaches_the_model() -> None:
    data = crossmodal_data(speech="content")
    assert _verdict("M3-ref-speech-content-retrieval", data) == "holds"


def test_a_content_free_speech_path_never_lets_m3_hold() -> None:
    data = crossmodal_data(speech="none")
    assert _verdict("M3-ref-speech-content-retrieval", data) != "holds"
    assert _m3_with_references(data) in ("inconclusive", "error")


def test_shuffled_meaning_ids_never_let_m3_hold() -> None:
    """Meaning ids shuffled within each (language, voice) cell of the speech: the design stays crossed, the ids
    no longer name what was said."""
    data = crossmodal_data(speech="content")
    rng = np.random.default_rng(3)
    cells: dict[tuple[str, str], list[int]] = {}
    for i, s in enumerate(data.samples):
        if s.modality == "speech":
            cells.setdefault((s.language, s.speaker), []).append(i)
    for rows in cells.values():
        permuted = rng.permutation([data.samples[i].meaning_id for i in rows])
        for i, meaning in zip(rows, permuted, strict=True):
            data.samples[i] = data.samples[i].model_copy(update={"meaning_id": str(meaning)})
    assert _verdict("M3-ref-speech-content-retrieval", data) != "holds"
    assert _m3_with_references(data) in ("inconclusive", "error")


def test_zeroed_audio_is_a_pipeline_error() -> None:
    spec = registry.get_claim("M3-no-crossmodal-alignment")
    data = select(spec, crossmodal_data(speech="zero"), spec.select.variant)
    problems = gate(spec, data)
    assert any("identical_latents" in p or "collapsed" in p for p in problems), problems


@pytest.mark.parametrize("claim_id", ["S6-speech-no-crosslingual-semantics", "M3-no-crossmodal-alignment"])
def test_absence_claims_name_a_speech_content_reference(claim_id: str) -> None:
    """The references guard what the absence is about: that speech content reaches the model."""
    refs = registry.get_claim(claim_id).references
    assert any("speech-content" in ref for ref in refs), refs
