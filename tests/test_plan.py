"""The run's plan: inputs checked against each adapter's declared limits, cache state counted, notes collected.

Adapters whose processor comes with their weights (the hub LALMs) are checked against what they declare
(``max_audio_seconds``, ``max_text_tokens``) before anything loads; a stub adapter stands in for them here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmark.core.schema import Sample
from benchmark.models.base import Availability, ModelAdapter, ModelSpec, PreparedInput, Template
from benchmark.probes.io import load_probe_set
from benchmark.run.options import SessionOptions
from benchmark.run.plan import (
    describe_estimate,
    max_audio_seconds,
    max_text_tokens,
    notes_summary,
    stage_plan,
    survey,
    time_first_batch,
)
from tests.probe_factory import speech_row, text_row, tone, write_clip, write_manifest


class _Stub(ModelAdapter):
    """A text+speech adapter that prepares without weights (tokens = words) and declares its limits."""

    spec = ModelSpec(
        name="stub-lalm",
        kind="lalm",
        family="stub",
        hub_id="nobody/stub",
        revision="unresolved",
        modalities=("text", "speech"),
        languages=None,
        weights_source="test",
        description="stub",
    )

    def __init__(self, *, audio_s: float | None, tokens: int | None, prepares: bool) -> None:
        super().__init__()
        self.templates = {
            "shared-suffix": {
                m: Template("shared-suffix", m, "", "", "{content}")  # type: ignore[misc]
                for m in ("text", "speech")
            }
        }
        self.max_audio_seconds = audio_s
        self.max_text_tokens = tokens
        self.prepares_without_weights = prepares

    def availability(self) -> Availability:
        return Availability(True, "stub")

    def load(self, device: Any, dtype: Any) -> None:  # pragma: no cover - never loaded here
        raise AssertionError("the plan must not load weights")

    @property
    def num_blocks(self) -> int:
        return 2

    def layer_handles(self) -> Any:  # pragma: no cover
        raise AssertionError

    def prepare(self, sample: Sample, waveform: np.ndarray | None, template: str) -> PreparedInput:
        length = len(sample.text.split()) if waveform is None else 10
        return PreparedInput(sample.id, sample.modality, length, 1, {}, {"text": sample.text})

    def collate(self, items: list[PreparedInput]) -> Any:  # pragma: no cover
        raise AssertionError

    def forward(self, batch: Any) -> None:  # pragma: no cover
        raise AssertionError


def _set(tmp: Path) -> Any:
    folder = tmp / "set"
    write_clip(folder / "audio" / "short.wav", tone(0.5, rate=22_050), rate=22_050)
    write_clip(folder / "audio" / "long.wav", tone(2.5))
    rows = [
        speech_row("short", "audio/short.wav"),
        speech_row("long", "audio/long.wav"),
        text_row("few", "three short words"),
        text_row("many", " ".join(["word"] * 12)),
    ]
    write_manifest(folder, rows)
    return load_probe_set(folder)


def test_declared_limits_are_read_with_defaults() -> None:
    assert max_audio_seconds(_Stub(audio_s=30, tokens=448, prepares=True)) == 30.0
    assert max_text_tokens(_Stub(audio_s=30, tokens=448, prepares=True)) == 448
    assert max_audio_seconds(_Stub(audio_s=None, tokens=None, prepares=True)) is None
    assert max_text_tokens(_Stub(audio_s=None, tokens=None, prepares=True)) is None


def test_an_adapter_that_needs_its_weights_is_checked_against_its_declared_window(tmp_path: Path) -> None:
    probe_set = _set(tmp_path)
    found = survey(
        "stub", _Stub(audio_s=2.0, tokens=None, prepares=False), probe_set, "shared-suffix", SessionOptions()
    )
    assert found.cached is None and found.to_extract == 4  # cache state unknown before its processor loads
    assert len(found.problems) == 1
    assert "manifest.jsonl:2: field 'audio_path': model stub" in found.problems[0]
    assert "2.50 s" in found.problems[0] and "2-s window" in found.problems[0]
    assert notes_summary([found]) == ["set: 1 clip(s) resampled from 22050 Hz to 16000 Hz with soxr (HQ)"]


def test_text_over_the_declared_token_limit_and_cache_counts(tmp_path: Path) -> None:
    probe_set = _set(tmp_path)
    options = SessionOptions(cache_dir=tmp_path / "cache", device="cpu")
    found = survey("stub", _Stub(audio_s=None, tokens=5, prepares=True), probe_set, "shared-suffix", options)
    assert len(found.problems) == 1
    assert "manifest.jsonl:4: field 'text': model stub: 12 tokens" in found.problems[0]
    assert found.cached == 0 and sorted(found.missing) == ["few", "long", "short"]


def test_the_estimate_is_per_model_and_modality(tmp_path: Path) -> None:
    probe_set = _set(tmp_path)
    found = survey(
        "stub", _Stub(audio_s=None, tokens=None, prepares=True), probe_set, "shared-suffix", SessionOptions()
    )
    assert found.missing_of("speech") == ["long", "short"] and found.missing_of("text") == ["few", "many"]
    rates = {("stub", "speech"): (1.0, 10.0), ("stub", "text"): (1.0, 0.5)}
    sentence, seconds = describe_estimate([found], rates)
    assert seconds == 21.0
    assert "stub speech: 2 x 10.00 s = 20s" in sentence and "stub text: 2 x 0.50 s = 1.0s" in sentence
    assert stage_plan([found], rates) == {"extract stub": (4, 5.25)}
    sentence, _ = describe_estimate([found], {("stub", "text"): (1.0, 0.5)})
    assert "stub speech: 2 inputs, rate unknown" in sentence


def test_first_batch_timing_extracts_real_inputs_into_the_cache(tmp_path: Path) -> None:
    """One warm-up input plus ``size`` timed ones, spread over the set; all cached, and the plan's counts follow."""
    from benchmark.models.catalog import get_adapter
    from tests.probe_factory import parallel_text_set

    probe_set = load_probe_set(
        parallel_text_set(tmp_path / "set", meanings=3, languages=("en", "fr", "de", "es"))
    )
    options = SessionOptions(cache_dir=tmp_path / "cache", device="cpu")
    adapter = get_adapter("whisper-base-ct2")
    found = survey("whisper-base-ct2", adapter, probe_set, "shared-suffix", options)
    assert (found.cached, len(found.missing)) == (0, 12)
    timed = time_first_batch(adapter, found, options, modality="text", size=4)
    assert timed is not None and timed[0] >= 0 and timed[1] > 0
    assert (found.cached, len(found.missing)) == (5, 7)
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 5
    again = survey("whisper-base-ct2", adapter, probe_set, "shared-suffix", options)
    assert (again.cached, sorted(again.missing)) == (5, sorted(found.missing))


def test_a_clip_missing_under_both_templates_is_estimated_once(tmp_path: Path) -> None:
    """The session extracts every template in one pass and encodes each clip once; text is a pass per template."""
    probe_set = _set(tmp_path)
    stub = _Stub(audio_s=None, tokens=None, prepares=True)
    stub.templates["bare"] = {m: Template("bare", m, "", "", "{content}") for m in ("text", "speech")}  # type: ignore[misc]
    both = [survey("stub", stub, probe_set, t, SessionOptions()) for t in ("bare", "shared-suffix")]
    rates = {("stub", "speech"): (1.0, 10.0), ("stub", "text"): (1.0, 0.5)}
    sentence, seconds = describe_estimate(both, rates)
    assert seconds == 2 * 10.0 + 4 * 0.5, sentence
    assert "stub speech: 2 x 10.00 s" in sentence and "stub text: 4 x 0.50 s" in sentence
