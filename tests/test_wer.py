"""WER function (pure, fast) and a real-weights check that the clean speech-grid clips are speech.

The slow test transcribes 4 clean-device clips with whisper-base-ct2 (real weights, CPU); the measured
table for the whole ``ci`` profile is ``reports/fixture_wer.md``.
"""

from __future__ import annotations

import pytest

from benchmark.engine.wer import edit_distance, english_clips, measure, normalise, wer, word_errors
from benchmark.models import offline_assets

#: Why 0.35: noise or silence gives WER near 1 (empty or hallucinated transcripts); eSpeak's formant voices
#: cost whisper-base a word or two per 8-word sentence on a close microphone (e.g. "played" -> "play"). A
#: ceiling of roughly one word in three separates "intelligible speech" from "not speech" with margin on both
#: sides, without asserting a recognition quality that synthetic voices do not have.
CLEAN_WER_CEILING = 0.35


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("The cat sat.", ["the", "cat", "sat"]),
        ("  Don't  STOP -- well-known, 'quoted' ", ["don't", "stop", "well-known", "quoted"]),
        ("Ｆｕｌｌ width!", ["full", "width"]),  # NFKC folds full-width letters
        ("...", []),
    ],
)
def test_normalise(text: str, words: list[str]) -> None:
    assert normalise(text) == words


@pytest.mark.parametrize(
    ("ref", "hyp", "distance"),
    [
        ("a b c", "a b c", 0),
        ("a b c", "a x c", 1),  # substitution
        ("a b c", "a c", 1),  # deletion
        ("a b c", "a b c d", 1),  # insertion
        ("a b c", "", 3),
        ("", "a b", 2),
        ("a b c d", "b c d a", 2),  # a rotation costs one deletion and one insertion
    ],
)
def test_edit_distance(ref: str, hyp: str, distance: int) -> None:
    assert edit_distance(ref.split(), hyp.split()) == distance


def test_wer_is_corpus_level_and_normalised() -> None:
    assert wer(["The cat sat."], ["the cat sat"]) == 0.0
    # 1 error in 2 words plus 0 in 8 words: 1/10, not the mean of per-utterance rates (0.25).
    assert wer(["a b", "c d e f g h i j"], ["a x", "c d e f g h i j"]) == pytest.approx(0.1)
    assert word_errors("one two three", "one three four five") == (3, 3)
    assert wer(["a"], ["a b c d"]) == 3.0  # insertions can push WER above 1


def test_wer_errors() -> None:
    with pytest.raises(ValueError, match="no words"):
        wer(["?!"], ["x"])
    with pytest.raises(ValueError, match="2 references but 1"):
        wer(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no utterances"):
        wer([], [])


@pytest.mark.slow
def test_clean_speech_grid_clips_are_speech() -> None:
    """4 clean clips of distinct sentences: whisper-base must mostly recover the words (see the ceiling)."""
    status = offline_assets.availability("whisper-base-ct2")
    if not status.available:
        pytest.skip(status.detail)
    from benchmark.probes.catalog import resolve_probes

    probe_set = resolve_probes("speech-grid", "ci")
    clean = [s for s in english_clips(probe_set) if s.device == "clean"]
    by_sentence = {s.group_id: s for s in clean}  # one clip per sentence
    samples = [by_sentence[key] for key in sorted(by_sentence)][:4]
    assert len(samples) == 4
    scores = measure(probe_set, samples)
    assert set(scores) == {"clean"}
    assert scores["clean"].clips == 4
    assert scores["clean"].wer < CLEAN_WER_CEILING, scores["clean"]
