"""No template hands a claim its answer: prompts of the offline models depend on no label of the sample.

Whisper's prompt used to name the sample's language (``<|fr|>``), so every Whisper language claim was given its
answer. These tests prepare the same input with every label axis changed and require identical token ids, key
material and content spans, and they check that the detector itself catches a prompt filled from a label.
Only tokenizers are needed (no weights are loaded).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from benchmark.core.schema import Sample
from benchmark.engine.label_free import label_dependent_fields, template_placeholders
from benchmark.models import offline_assets
from benchmark.models.base import (
    Availability,
    Batch,
    LayerHandles,
    ModelAdapter,
    ModelSpec,
    PreparedInput,
    Template,
)
from benchmark.models.offline import build_adapter

OFFLINE = ("whisper-base-ct2", "whisper-tiny.en-ct2", "gemma-3-270m-q4km", "smollm2-135m-q41")
#: a labelled sample of each modality; every axis carries a value so that changing it is a change
LABELS: dict[str, Any] = {
    "language": "en",
    "meaning_id": "m01",
    "group_id": "g01",
    "pair_id": "p01",
    "pair_role": "anchor",
    "speaker": "espeak-m1",
    "gender": "male",
    "age_group": "adult",
    "accent": "en-us",
    "device": "clean",
    "variant": "punct",
    "voice_set": "multi",
    "normalisation": "raw",
}


def _sample(modality: str) -> Sample:
    audio = {"audio_path": "clip.wav"} if modality == "speech" else {}
    return Sample(id=f"x-{modality}", modality=modality, text="The cat sleeps.", **audio, **LABELS)


def _wave() -> np.ndarray:
    return (0.1 * np.sin(np.arange(16_000) / 7.0)).astype(np.float32)


@pytest.fixture(scope="module", params=OFFLINE)
def adapter(request: pytest.FixtureRequest) -> ModelAdapter:
    status = offline_assets.availability(request.param)
    if not status.available:
        pytest.skip(status.detail)
    return build_adapter(request.param)


def test_templates_hold_no_label_placeholder(adapter: ModelAdapter) -> None:
    assert template_placeholders(adapter) == []


def test_prepared_inputs_do_not_depend_on_any_label(adapter: ModelAdapter) -> None:
    checked = 0
    for modality in adapter.spec.modalities:
        sample = _sample(modality)
        wave = _wave() if modality == "speech" else None
        assert label_dependent_fields(adapter, sample, wave) == []
        checked += len([t for t in adapter.templates if modality in adapter.templates[t]])
    assert checked >= 2  # both templates of at least one modality were prepared


def test_multilingual_whisper_prompt_names_no_language() -> None:
    """Same text labelled en/fr/ja: identical ids, starting with start-of-transcript alone."""
    adapter = build_adapter("whisper-base-ct2")
    if not adapter.availability().available:
        pytest.skip(adapter.availability().detail)
    sot = adapter.token_id("<|startoftranscript|>")  # type: ignore[attr-defined]
    for template in ("bare", "shared-suffix"):
        ids = {
            lang: adapter.prepare(
                _sample("text").model_copy(update={"language": lang}), None, template
            ).tensors["input_ids"]
            for lang in ("en", "fr", "ja")
        }
        assert ids["en"] == ids["fr"] == ids["ja"]
        assert ids["en"][0] == sot and ids["en"][1] != adapter.token_id("<|en|>")  # type: ignore[attr-defined]
        speech = adapter.prepare(_sample("speech"), _wave(), template).tensors["input_ids"]
        assert speech[0] == sot and len(speech) == (1 if template == "bare" else 2)


# ---- the detector can fail -------------------------------------------------------------------------------------


class LabelLeakingAdapter(ModelAdapter):
    """A prompt filled from the sample's language and a key that hashes the speaker: what the checks must catch.

    SYNTHETIC: byte ids, no model; only ``prepare`` is used."""

    prepares_without_weights = True

    def __init__(self) -> None:
        super().__init__()
        self.spec = ModelSpec(
            name="label-leak-test",
            kind="text-lm",
            family="test",
            hub_id=None,
            revision="none",
            modalities=("text",),
            languages=("en", "fr", "de"),
            weights_source="none",
            description="test only",
        )
        self.templates = {
            "bare": {"text": Template("bare", "text", "<{language}>", "", "<{language}>{text}")}
        }

    def availability(self) -> Availability:
        return Availability(True, "no weights")

    @property
    def num_blocks(self) -> int:
        return 1

    def load(self, device: Any, dtype: Any) -> None:
        raise NotImplementedError

    def layer_handles(self) -> LayerHandles:
        raise NotImplementedError

    def prepare(self, sample: Sample, waveform: np.ndarray | None, template: str) -> PreparedInput:
        ids = list(f"<{sample.language}>{sample.text}".encode())
        return PreparedInput(
            sample.id, "text", len(ids), ids[-1], {"input_ids": ids}, {"speaker": str(sample.speaker)}
        )

    def collate(self, items: list[PreparedInput]) -> Batch:
        raise NotImplementedError

    def forward(self, batch: Batch) -> None:
        raise NotImplementedError


def test_detector_reports_a_prompt_filled_from_a_label() -> None:
    leaky = LabelLeakingAdapter()
    assert template_placeholders(leaky) == ["bare/text.prefix: {language}", "bare/text.rendered: {language}"]
    problems = label_dependent_fields(leaky, _sample("text"), None)
    assert "bare: language=fr changes tensors.input_ids" in problems
    assert "bare: speaker=speaker-a changes key_material.speaker" in problems
    assert not any("gender" in p for p in problems)  # axes the adapter ignores are not reported
