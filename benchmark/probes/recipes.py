"""The shipped offline probe sets as recipes: authored text, eSpeak NG voices, device chains, profiles.

Each recipe turns the authored sources in ``fixtures/source/`` into a :class:`SetSpec` (items whose audio is
rendered on demand). Profiles: ``ci`` is the first block of meanings (and, in speech, a subset of voices);
``ci-alt`` is the next block of the same size with the voices ``ci`` leaves out where the set has any (see
:func:`profile_of`), so the same claims can be checked on other items of the same design; ``full`` is the
first :data:`FULL_MEANINGS` meanings (:data:`FULL_PARAPHRASES` paraphrase sets, :data:`GRID_N_SENTENCES`
grid sentences; speech-gain :data:`GAIN_N_SENTENCES` x :data:`GAIN_SPEAKERS`, speech-voices
:data:`VOICES_N_SENTENCES`) with every voice and device;
``pool`` is every sample, the items authored after ``full`` included (and, in speech-gain, the speakers ``full``
leaves out). Writing, hashing and checking the sets is :mod:`benchmark.probes.build`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.core.audio import PCM16_FULL_SCALE, SAMPLE_RATE, to_pcm16
from benchmark.core.schema import PAPER_LANGUAGES
from benchmark.probes import devices, gain, synth

GENERATOR = "benchmark.probes.build"
#: Bump when the recipe changes what any clip or sample is (the committed hashes then need --update).
RECIPE_VERSION = "1"
SEED = 20250611
#: Recording level of every stored speech clip except the raw clips of ``speech-gain`` (headroom for the chains).
RECORDING_PEAK_DBFS = -3.0
#: Leading silence added per take in ``speech-voices`` (ms) and the takes' quiet room-noise floor (dB SNR).
TAKE_SILENCE_MS = 40
TAKE_NOISE_SNR_DB = 40.0
#: Items rendered per batch (bounds the memory of cached syntheses).
RENDER_CHUNK = 240
#: Parallel eSpeak children (each clip is synthesised in its own forked process; see synth.py).
SYNTH_JOBS = 2

SET_NAMES: tuple[str, ...] = (
    "text-parallel",
    "text-paraphrase",
    "speech-parallel",
    "speech-grid",
    "speech-gain",
    "speech-voices",
    "crossmodal",
)

_FINAL_PUNCT = ".!?。！？…"

# Voices -------------------------------------------------------------------------------------------------

#: Voice variants used in every language of the parallel speech sets (2 male, 2 female presets).
PARALLEL_VARIANTS: tuple[str, ...] = ("m1", "f1", "m3", "f4")
PARALLEL_VARIANTS_CI: tuple[str, ...] = ("m1", "f1")
#: The ci-alt profile's voices: the other male and female preset of the set.
PARALLEL_VARIANTS_CI_ALT: tuple[str, ...] = ("m3", "f4")
#: Meanings (parallel sentences, paraphrase items) per cell of the ci and ci-alt profiles.
CI_MEANINGS = 12
#: Parallel meanings (m01-m38) of the ``full`` profile. Why a fixed count rather than "every item": ``full``'s
#: content hash keys recorded expectations, so items authored later (m39-m80) join only the ``pool`` profile.
FULL_MEANINGS = 38
#: Parallel meanings of the speech sets' ``pool`` profiles (speech-parallel, crossmodal: m01-m80): a fixed
#: count, not "every row of the source", so that a meaning added to the source changes no committed manifest
#: until this is raised on purpose. Why they are spoken at all: calibration at the full size draws samples of
#: 38 meanings from a population that has to be larger (CLAIMS.md, Calibration); with only m01-m38 every
#: full-size sample would be the whole set and the absence claims M3 and S6 could not be calibrated there.
POOL_MEANINGS = 80
#: Paraphrase sets of the ``full`` profile (p01-p72); the ``pool`` is every set (p01-p144). Raised from 36 on
#: 2026-12-06 on purpose (a fixed count, so it moves only on purpose): T1 decides on a per-pair contrast whose
#: token control (``tok_mean``) has a standard error of about 0.13 at 36 pairs, and its planted ``power_at``
#: held in 64-66% of full-size calibration samples, short of 80% (reports/calibration.md). 72 pairs bring that
#: error to about 0.09. Sets p73-p144 were authored for the pool that full-size samples of 72 are drawn from.
FULL_PARAPHRASES = 72

#: The six English accents of the grid (eSpeak voice names; labels in synth.ENGLISH_ACCENTS).
GRID_ACCENTS: tuple[str, ...] = ("en-us", "en", "en-gb-scotland", "en-029", "en-us-nyc", "en-gb-x-gbcwmd")
_MALE = ("m1", "m2", "m3", "m4", "m5", "m6", "m7")
_FEMALE = ("f1", "f2", "f3", "f4", "f5")
#: Age groups approximated by prosody only (rate in wpm, pitch and range on eSpeak's 0-100 scales).
AGE_PROSODY: dict[str, tuple[int, int, int]] = {"younger": (190, 62, 60), "older": (145, 38, 38)}


@dataclass(frozen=True)
class Speaker:
    """A labelled synthetic speaker of the English grid."""

    id: str
    voice: synth.Voice
    accent: str
    gender: str
    age_group: str


def grid_speakers() -> list[Speaker]:
    """6 accents x 2 genders x 2 age groups = 24 speakers; variants rotate so none aligns with a label."""
    speakers = []
    for i, accent_voice in enumerate(GRID_ACCENTS):
        for gender, variants in (("male", _MALE), ("female", _FEMALE)):
            for a, age in enumerate(AGE_PROSODY):
                variant = variants[(2 * i + a) % len(variants)]
                rate, pitch, prange = AGE_PROSODY[age]
                voice = synth.Voice(accent_voice, variant, rate, pitch, prange)
                accent = synth.ENGLISH_ACCENTS[accent_voice]
                speakers.append(Speaker(f"{accent}-{gender[0]}-{age}-{variant}", voice, accent, gender, age))
    return speakers


def grid_speakers_ci() -> list[Speaker]:
    """12 of the 24: one per accent and gender, age alternating so it is balanced within gender and accent."""
    chosen = []
    for i, accent_voice in enumerate(GRID_ACCENTS):
        accent = synth.ENGLISH_ACCENTS[accent_voice]
        for g, gender in enumerate(("male", "female")):
            age = list(AGE_PROSODY)[(i + g) % 2]
            chosen.extend(
                s for s in grid_speakers() if (s.accent, s.gender, s.age_group) == (accent, gender, age)
            )
    return chosen


def grid_speakers_ci_alt() -> list[Speaker]:
    """The 12 speakers ``ci`` leaves out: per accent and gender the other age group, so the balance is the same."""
    ci = {s.id for s in grid_speakers_ci()}
    return [s for s in grid_speakers() if s.id not in ci]


def profile_of(index: int, block: int) -> str | None:
    """``ci`` for the first ``block`` items of a source, ``ci-alt`` for the next ``block``, else ``None``.

    Why blocks in source order: ``ci`` has always been the first block, so ``ci-alt`` is the next one of the
    same size; a source too short for a whole second block gives a smaller ``ci-alt``, which
    :func:`_profiles` then leaves out rather than ship a profile of another size.
    """
    if index < block:
        return "ci"
    if index < 2 * block:
        return "ci-alt"
    return None


# Items ------------------------------------------------------------------------------------------------


@dataclass
class Item:
    """One sample of a set: its fields, and for speech the recipe that renders its audio."""

    fields: dict[str, Any]
    render: Callable[[], np.ndarray] | None = None
    render_key: str | None = None
    needs: tuple[tuple[str, synth.Voice], ...] = ()


@dataclass
class SetSpec:
    """Everything ``probeset.json`` holds besides the build block, plus the items."""

    name: str
    description: str
    caveats: list[str]
    items: list[Item]
    ci: list[str]
    ci_alt: list[str] = field(default_factory=list)
    #: ``full``'s ids; ``None`` means every item (the sets whose manifest is exactly their full profile).
    full: list[str] | None = None
    #: ``pool``'s ids (every item of the sets that have items beyond ``full``); empty: no pool profile.
    pool: list[str] = field(default_factory=list)
    version: str = RECIPE_VERSION
    extra_build: dict[str, Any] = field(default_factory=dict)


def strip_final_punct(text: str) -> str:
    """The ``nopunct`` variant: the sentence without its final punctuation (see CLAIMS.md, probe variant)."""
    return text.rstrip().rstrip(_FINAL_PUNCT).rstrip()


def _load(source_dir: Path, name: str, key: str) -> list[dict[str, Any]]:
    path = source_dir / name
    if not path.is_file():
        raise FileNotFoundError(
            f"probe-set source {path} is missing (authored text lives in fixtures/source/)"
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    if key not in data or not data[key]:
        raise ValueError(f"{path}: expected a non-empty list under {key!r}")
    return data[key]


SYNTHETIC_CAVEATS = [
    "All speech is synthesised with eSpeak NG (formant synthesis), not recorded: its voices are presets, not "
    "people; results on it do not stand for real speakers, recordings or demography.",
    "Clips are reproducible on the same platform; another libm, CPU or soxr build may change the last bit of "
    "some samples, and the check then names those clips.",
]


LANGUAGE_CAVEATS = [
    "eSpeak's Mandarin (cmn) is not recognised by Whisper-base; treat zh speech as language-coloured sound, "
    "not intelligible speech.",
    "Japanese speech is synthesised from kana (eSpeak cannot read kanji); the text samples keep the usual script.",
    "Whisper-base transcribes eSpeak English and Spanish well, German, Vietnamese and Indonesian partly, "
    "French poorly.",
]


def _speech_fields(**kwargs: Any) -> dict[str, Any]:
    return {"modality": "speech", "synthetic": True, **kwargs}


def _preprocessing(voice: synth.Voice, *steps: str) -> tuple[str, ...]:
    return (
        f"espeak-ng {synth.espeak_version()} voice={voice.espeak_name} rate={voice.rate_wpm} "
        f"pitch={voice.pitch} range={voice.pitch_range}",
        f"soxr {synth.ESPEAK_RATE_HZ}->{SAMPLE_RATE} Hz VHQ",
        *steps,
        "pcm16",
    )


class _Synth:
    """Memoised synthesis (the same text and voice feed several devices and sets)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], np.ndarray] = {}

    def __call__(self, text: str, voice: synth.Voice) -> np.ndarray:
        key = (text, voice.key)
        if key not in self._cache:
            self._cache[key] = synth.synthesise(text, voice)
        return self._cache[key]

    def clear(self) -> None:
        self._cache.clear()

    def prefetch(self, requests: Iterable[tuple[str, synth.Voice]]) -> None:
        """Synthesise many clips with SYNTH_JOBS children at a time."""
        todo = list(dict.fromkeys((t, v) for t, v in requests if (t, v.key) not in self._cache))
        with ThreadPoolExecutor(SYNTH_JOBS) as pool:
            for (text, voice), audio in zip(
                todo, pool.map(lambda tv: synth.synthesise(*tv), todo), strict=True
            ):
                self._cache[(text, voice.key)] = audio


def _device_clip(base: np.ndarray, device: str, seed: int, name: str) -> np.ndarray:
    recorded = devices.apply_device(gain.set_peak(base, RECORDING_PEAK_DBFS, name=name), device, seed=seed)
    return gain.set_peak(recorded, RECORDING_PEAK_DBFS, name=name)


# Set recipes --------------------------------------------------------------------------------------------


def text_parallel(src: Path) -> SetSpec:
    meanings = _load(src, "parallel_sentences.json", "meanings")
    items: list[Item] = []
    profiles: dict[str, list[str]] = {"ci": [], "ci-alt": [], "full": []}
    for k, m in enumerate(meanings):
        block = profile_of(k, CI_MEANINGS)
        for lang in PAPER_LANGUAGES:
            text = m["texts"][lang]
            for variant, t in (("punct", text), ("nopunct", strip_final_punct(text))):
                sid = f"{m['meaning_id']}-{lang}-{variant}"
                items.append(
                    Item(
                        {
                            "id": sid,
                            "modality": "text",
                            "text": t,
                            "language": lang,
                            "meaning_id": m["meaning_id"],
                            "group_id": m["meaning_id"],
                            "variant": variant,
                            "extra": {"topic": m["topic"]},
                        }
                    )
                )
                if block is not None:
                    profiles[block].append(sid)
                if k < FULL_MEANINGS:
                    profiles["full"].append(sid)
    return SetSpec(
        "text-parallel",
        "Parallel sentences in the paper's 8 languages, with and without final "
        "punctuation (claims T3-T6, Q1).",
        [
            "Authored translations of short everyday sentences, not a corpus sample.",
            "The punct variant ends almost every sentence in the same token per script; early-layer "
            "language clusters on it can measure punctuation (compare nopunct).",
            f"Profiles: full takes the first {FULL_MEANINGS} meanings (m01-m38); pool is every meaning "
            "(m01-m80), the population that calibration draws full-size samples from. Meanings after m38 "
            "were authored later, by the same author and rules, and are in no other profile.",
        ],
        items,
        profiles["ci"],
        ci_alt=profiles["ci-alt"],
        full=profiles["full"],
        pool=[item.fields["id"] for item in items],
    )


def text_paraphrase(src: Path) -> SetSpec:
    rows = _load(src, "paraphrases.json", "items")
    items: list[Item] = []
    profiles: dict[str, list[str]] = {"ci": [], "ci-alt": [], "full": []}
    for k, row in enumerate(rows):
        block = profile_of(k, CI_MEANINGS)
        pid = row["meaning_id"]
        meanings = {
            "anchor": pid,
            "paraphrase": pid,
            "adversarial": f"{pid}-adv",
            "unrelated": f"{pid}-unrel",
        }
        for role, meaning in meanings.items():
            for variant, t in (("punct", row[role]), ("nopunct", strip_final_punct(row[role]))):
                sid = f"{pid}-{role}-{variant}"
                items.append(
                    Item(
                        {
                            "id": sid,
                            "modality": "text",
                            "text": t,
                            "language": "en",
                            "meaning_id": meaning,
                            "group_id": pid,
                            "pair_id": pid,
                            "pair_role": role,
                            "variant": variant,
                        }
                    )
                )
                if block is not None:
                    profiles[block].append(sid)
                if k < FULL_PARAPHRASES:
                    profiles["full"].append(sid)
    return SetSpec(
        "text-paraphrase",
        "English anchors with a paraphrase, a PAWS-style adversarial "
        "(same words, other meaning) and an unrelated sentence (claims T1, T2).",
        [
            "Authored English items in the PAWS style, not PAWS itself; English only.",
            f"Profiles: full takes the first {FULL_PARAPHRASES} sets (p01-p{FULL_PARAPHRASES:02d}); pool is every "
            f"set (p01-p{len(rows):02d}), the population that calibration draws full-size samples from. Sets "
            f"after p{FULL_PARAPHRASES:02d} were authored later, by the same rules, and are in no other profile. "
            "Until 2026-12-06 full took p01-p36 (T1 lacked power at that size).",
        ],
        items,
        profiles["ci"],
        ci_alt=profiles["ci-alt"],
        full=profiles["full"],
        pool=[item.fields["id"] for item in items],
    )


def _parallel_speech_items(
    src: Path, synth_: _Synth, variants: Sequence[str]
) -> tuple[list[Item], dict[str, list[str]]]:
    """Speech clips of the parallel sentences: every language with the same voice variants.

    Returns the items and the ``ci`` / ``ci-alt`` / ``full`` ids (each ci profile keeps its own voice
    variants; ``full`` is the first :data:`FULL_MEANINGS` meanings). The first :data:`POOL_MEANINGS` meanings
    are spoken: the ones after ``full`` belong to the ``pool`` profile only.
    """
    meanings = _pool_meanings(src)
    voices_of = {"ci": PARALLEL_VARIANTS_CI, "ci-alt": PARALLEL_VARIANTS_CI_ALT}
    items: list[Item] = []
    profiles: dict[str, list[str]] = {"ci": [], "ci-alt": [], "full": []}
    requests = []
    for k, m in enumerate(meanings):
        block = profile_of(k, CI_MEANINGS)
        for lang in PAPER_LANGUAGES:
            spoken = m["ja_kana"] if lang == "ja" else m["texts"][lang]
            for variant in variants:
                voice = synth.Voice(synth.LANGUAGE_VOICES[lang], variant)
                requests.append((spoken, voice))
                sid = f"{m['meaning_id']}-{lang}-{variant}"
                extra = {"topic": m["topic"]}
                if lang == "ja":
                    extra["transcript_script"] = "kana"
                fields = _speech_fields(
                    id=sid,
                    text=spoken,
                    language=lang,
                    meaning_id=m["meaning_id"],
                    group_id=m["meaning_id"],
                    speaker=f"espeak-{variant}",
                    gender=voice.gender,
                    device="clean",
                    preprocessing=_preprocessing(
                        voice,
                        f"peak {RECORDING_PEAK_DBFS:g} dBFS",
                        devices.describe("clean"),
                        f"peak {RECORDING_PEAK_DBFS:g} dBFS",
                    ),
                    extra=extra,
                )
                items.append(
                    Item(
                        fields,
                        render=_renderer(synth_, spoken, voice, "clean", sid),
                        render_key=f"parallel/{m['meaning_id']}/{lang}/{variant}",
                        needs=((spoken, voice),),
                    )
                )
                if block is not None and variant in voices_of[block]:
                    profiles[block].append(sid)
                if k < FULL_MEANINGS:
                    profiles["full"].append(sid)
    del requests
    return items, profiles


def _speech_pool_caveat(set_name: str) -> str:
    return (
        f"Profiles: full takes the first {FULL_MEANINGS} meanings (m01-m{FULL_MEANINGS:02d}); pool adds "
        f"m{FULL_MEANINGS + 1:02d}-m{POOL_MEANINGS:02d} (the same voices and text as {set_name}'s other "
        "meanings), the population that calibration draws full-size samples from; the added meanings are in "
        "no other profile of this set."
    )


def _renderer(
    synth_: _Synth, text: str, voice: synth.Voice, device: str, name: str, seed_parts: Sequence[object] = ()
) -> Callable[[], np.ndarray]:
    def render() -> np.ndarray:
        seed = gain.stable_seed(SEED, device, *(seed_parts or (name,)))
        return _device_clip(synth_(text, voice), device, seed, name)

    return render


def speech_parallel(src: Path, synth_: _Synth) -> SetSpec:
    items, profiles = _parallel_speech_items(src, synth_, PARALLEL_VARIANTS)
    return SetSpec(
        "speech-parallel",
        "The parallel sentences spoken in all 8 languages by the same eSpeak "
        f"voice variants ({', '.join(PARALLEL_VARIANTS)}), close microphone (claims S5-S7).",
        SYNTHETIC_CAVEATS
        + LANGUAGE_CAVEATS
        + [
            "The same variant preset in every language is the closest eSpeak comes to one speaker "
            "across languages; its per-language voices differ in phoneme inventory and prosody rules.",
            _speech_pool_caveat("speech-parallel"),
        ],
        items,
        profiles["ci"],
        ci_alt=profiles["ci-alt"],
        full=profiles["full"],
        pool=[item.fields["id"] for item in items],
    )


def _first_rows(src: Path, name: str, key: str, n: int, needed_by: str) -> list[dict[str, Any]]:
    """The first ``n`` rows of a source: a fixed count, so rows appended to a source change no manifest."""
    rows = _load(src, name, key)
    if len(rows) < n:
        raise ValueError(f"{name} has {len(rows)} {key}; {needed_by} needs {n}")
    return rows[:n]


def _pool_meanings(src: Path) -> list[dict[str, Any]]:
    return _first_rows(src, "parallel_sentences.json", "meanings", POOL_MEANINGS, "the speech sets' pool")


def _grid_sentences(src: Path, n: int) -> list[dict[str, Any]]:
    return _first_rows(src, "grid_sentences.json", "sentences", n, "the grid")


#: Grid sentences of speech-grid's ``full`` profile (c01-c08; speech-gain and speech-voices were raised since).
GRID_N_SENTENCES = 8
GRID_N_SENTENCES_CI = 4
#: Grid sentences of speech-grid's ``pool`` profile (c01-c16): a fixed count, not "every row of the source",
#: so that a sentence added to the source changes no committed manifest until this is raised on purpose.
GRID_N_SENTENCES_POOL = 16


def speech_grid(src: Path, synth_: _Synth) -> SetSpec:
    sentences = _grid_sentences(src, GRID_N_SENTENCES_POOL)
    speakers = grid_speakers()
    voices_of = {"ci": {s.id for s in grid_speakers_ci()}, "ci-alt": {s.id for s in grid_speakers_ci_alt()}}
    items: list[Item] = []
    profiles: dict[str, list[str]] = {"ci": [], "ci-alt": [], "full": []}
    for k, row in enumerate(sentences):
        block = profile_of(k, GRID_N_SENTENCES_CI)
        for sp in speakers:
            for device in devices.DEVICES:
                sid = f"{row['content_id']}-{sp.id}-{device}"
                fields = _speech_fields(
                    id=sid,
                    text=row["text"],
                    language="en",
                    meaning_id=row["content_id"],
                    group_id=row["content_id"],
                    speaker=sp.id,
                    gender=sp.gender,
                    age_group=sp.age_group,
                    accent=sp.accent,
                    device=device,
                    preprocessing=_preprocessing(
                        sp.voice,
                        f"peak {RECORDING_PEAK_DBFS:g} dBFS",
                        devices.describe(device),
                        f"peak {RECORDING_PEAK_DBFS:g} dBFS",
                    ),
                )
                items.append(
                    Item(
                        fields,
                        render=_renderer(synth_, row["text"], sp.voice, device, sid),
                        render_key=f"grid/{sid}",
                        needs=((row["text"], sp.voice),),
                    )
                )
                if block is not None and sp.id in voices_of[block]:
                    profiles[block].append(sid)
                if k < GRID_N_SENTENCES:
                    profiles["full"].append(sid)
    return SetSpec(
        "speech-grid",
        f"English content x speaker x device grid: {GRID_N_SENTENCES} sentences x 24 synthetic speakers "
        "(6 accents x male/female x two age groups) x 5 devices (claims S1, S2, S8, D1); the pool profile "
        f"crosses all {GRID_N_SENTENCES_POOL} grid sentences with the same speakers and devices.",
        [
            *SYNTHETIC_CAVEATS,
            "Gender is eSpeak's male or female variant preset (formant and pitch settings), not a person.",
            "Age groups are an approximation by speaking rate and pitch only (younger: "
            f"{AGE_PROSODY['younger']}, older: {AGE_PROSODY['older']} as rate wpm, pitch, range); "
            "real ageing changes voice quality too.",
            "Accents are eSpeak's rule-based accent voices (" + ", ".join(GRID_ACCENTS) + "), not "
            "speakers of those accents.",
            "Devices are simulations with fixed physical parameters (see preprocessing); the cheap "
            "microphone uses its datasheet's band and S/N, not a measured response curve.",
            "Report the input-feature (log-mel) distances per factor (benchmark.probes.features) beside "
            "latent distances, so a latent effect can be set against how far the factor moves the input.",
            "Profiles: ci and ci-alt take disjoint sentences (c01-c04, c05-c08) and disjoint halves of the 24 "
            "speakers (each one speaker per accent and gender, age groups balanced within both).",
            f"Profiles: full takes sentences c01-c{GRID_N_SENTENCES:02d}; pool adds "
            f"c{GRID_N_SENTENCES + 1:02d}-c{GRID_N_SENTENCES_POOL:02d} with the same 24 speakers and 5 devices "
            "(no further voices), the population that calibration draws full-size samples from; the added "
            "sentences are in no other profile.",
        ],
        items,
        profiles["ci"],
        ci_alt=profiles["ci-alt"],
        full=profiles["full"],
        pool=[item.fields["id"] for item in items],
    )


#: speech-gain's ``full`` profile: grid sentences c01-c16 x the first 12 of :func:`gain_speakers` (the 12 younger
#: grid speakers: each accent x gender once). Raised from 8 x 8 on 2026-12-07 on purpose (fixed counts, so they
#: move only on purpose): S3 is decided two-sided on models without a paper direction, and at 8 x 8 its planted
#: ``power_at`` held in 38.5% (bare) and 12.5% (shared-suffix) of full-size calibration samples
#: (reports/calibration.md). Sentences and speakers both add to its standard error, sentences more; on samples
#: of the new pool its jackknife standard error under bare was about 0.030 at 16 x 12 (0.027 at 16 x 16, 0.024
#: at 24 x 12), against the 0.029 that 80% power needs. 16 x 12 keeps the accent x gender balance and half of
#: each pool axis unsampled, like the former size.
GAIN_N_SENTENCES = 16
GAIN_SPEAKERS = 12
#: The full profile before the raise (sentences, speakers): those clips stay first in ``full``, pinned.
GAIN_FULL_BEFORE: tuple[int, int] = (8, 8)
#: Speakers of the ``ci`` and ``ci-alt`` profiles (the first younger ones; unchanged by the raise).
GAIN_CI_SPEAKERS = 8
#: speech-gain's ``pool``: c01-c32 x all 24 grid speakers, the population that calibration draws full-size
#: samples from (larger than ``full`` on both of S3's unit axes). Sentences c17-c32 were authored for it.
GAIN_N_SENTENCES_POOL = 32
GAIN_SPEAKERS_POOL = 24


def gain_speakers() -> list[Speaker]:
    """The grid speakers in speech-gain's order: the 12 younger ones first (the speakers ``ci`` and the former
    ``full`` used), then the 12 older ones, so raising :data:`GAIN_SPEAKERS` never reorders earlier speakers."""
    grid = grid_speakers()
    return [sp for sp in grid if sp.age_group == "younger"] + [sp for sp in grid if sp.age_group != "younger"]


def _was_gain_full(k: int, s_index: int) -> bool:
    return k < GAIN_FULL_BEFORE[0] and s_index < GAIN_FULL_BEFORE[1]


def speech_gain(src: Path, synth_: _Synth) -> SetSpec:
    sentences = _grid_sentences(src, GAIN_N_SENTENCES_POOL)
    speakers = gain_speakers()[:GAIN_SPEAKERS_POOL]
    items: list[Item] = []
    profiles: dict[str, list[str]] = {"ci": [], "ci-alt": [], "full": []}
    # Manifest order, and so every profile's order: the former full's cells first, so that raising full only
    # appends to it (tests/test_pool_profiles.py, RAISED); sentence-major within each part, as before the raise.
    cells = sorted(
        itertools.product(range(len(sentences)), range(len(speakers))),
        key=lambda cell: (not _was_gain_full(*cell), cell),
    )
    for k, s_index in cells:
        row, sp = sentences[k], speakers[s_index]
        block = profile_of(k, GRID_N_SENTENCES_CI)
        in_full = k < GAIN_N_SENTENCES and s_index < GAIN_SPEAKERS
        base_id = f"{row['content_id']}-{sp.id}"
        level = gain.draw_gain_db(gain.stable_seed(SEED, "gain", base_id))
        for norm in ("raw", "peak"):
            sid = f"{base_id}-{norm}"
            step = (
                f"gain: peak at {level:.2f} dBFS"
                if norm == "raw"
                else f"gain: peak at {level:.2f} dBFS, then peak-normalised to {gain.PEAK_TARGET_DBFS:g} dBFS"
            )
            fields = _speech_fields(
                id=sid,
                text=row["text"],
                language="en",
                meaning_id=row["content_id"],
                group_id=row["content_id"],
                pair_id=base_id,
                speaker=sp.id,
                gender=sp.gender,
                age_group=sp.age_group,
                accent=sp.accent,
                device="clean",
                normalisation=norm,
                gain_db=level,
                preprocessing=_preprocessing(sp.voice, devices.describe("clean"), step),
            )

            def render(
                text: str = row["text"],
                voice: synth.Voice = sp.voice,
                lvl: float = level,
                norm: str = norm,
                name: str = sid,
            ) -> np.ndarray:
                raw = gain.apply_gain(synth_(text, voice), lvl, name=name)
                return raw if norm == "raw" else gain.peak_normalise(_pcm_roundtrip(raw), name=name)

            items.append(
                Item(fields, render=render, render_key=f"gain/{sid}", needs=((row["text"], sp.voice),))
            )
            if block is not None and s_index < GAIN_CI_SPEAKERS:
                profiles[block].append(sid)
            if in_full:
                profiles["full"].append(sid)
    return SetSpec(
        "speech-gain",
        f"Grid sentences x {GAIN_SPEAKERS} speakers, close microphone, each clip at a seeded input "
        f"level in [{gain.GAIN_RANGE_DBFS[0]:g}, {gain.GAIN_RANGE_DBFS[1]:g}] dBFS (peak), stored raw and "
        "peak-normalised to 0 dBFS (claim S3).",
        [
            *SYNTHETIC_CAVEATS,
            "Level is the only thing normalisation changes here (no device variation); the paper "
            "normalised real recordings from several devices.",
            "The peak version is normalised from the stored 16-bit raw clip, as a user would.",
            f"Profiles: ci-alt differs from ci in sentences only (c05-c08 against c01-c04); both use the same "
            f"{GAIN_CI_SPEAKERS} younger speakers, so the speaker axis could not change.",
            f"Profiles: full takes sentences c01-c{GAIN_N_SENTENCES:02d} and the first {GAIN_SPEAKERS} speakers "
            "(the 12 younger grid speakers first, then the older); pool crosses "
            f"c01-c{GAIN_N_SENTENCES_POOL:02d} with all {GAIN_SPEAKERS_POOL} grid speakers (the population that "
            "calibration draws full-size samples from); the added items are in no other profile.",
            f"Profiles: until 2026-12-07 full took c01-c{GAIN_FULL_BEFORE[0]:02d} x the first "
            f"{GAIN_FULL_BEFORE[1]} younger speakers (S3 lacked power at that size); those clips stay first.",
        ],
        items,
        profiles["ci"],
        ci_alt=profiles["ci-alt"],
        full=profiles["full"],
        pool=[item.fields["id"] for item in items],
    )


VOICES_N_TAKES = 6
VOICES_N_TAKES_CI = 4
#: speech-voices' ``full`` profile: grid sentences c01-c16 x every device, take and voice set. Raised from
#: c01-c08 on 2026-12-08 on purpose (a fixed count, so it moves only on purpose): at 8 sentences S4's planted
#: ``power_at`` held in 51.0% (bare) and 76.0% (shared-suffix) of full-size calibration samples
#: (reports/calibration.md). On the former pool's real whisper-base latents (scripts/unit_size_se.py) its
#: jackknife standard error under bare was about 0.045 at 8 sentences x 5 devices, 0.030 at 12 and 0.028 at 16,
#: against the ~0.03 that 80% power at 0.1 needs with delta 0.02. Fewer devices did not help (0.072 at 8 x 2
#: devices, 0.054 at 16 x 2): the devices average a meaning's clips, and the take factor's share falls as
#: sentences are added.
VOICES_N_SENTENCES = 16
#: The full profile's sentences before the raise: those clips stay first in ``full``, pinned.
VOICES_N_SENTENCES_BEFORE = 8
#: speech-voices' ``pool``: c01-c32 with the same voices, devices and takes, the population that calibration
#: draws full-size samples from (twice full's sentences, as before the raise).
VOICES_N_SENTENCES_POOL = 32
#: Takes (and so multi voices) per profile: ci-alt has the two that ci leaves out plus ci's first two, so like
#: ci its multi set holds the single voice's accent (en-us) and two male and two female voices.
VOICES_TAKES: dict[str, tuple[int, ...]] = {"ci": (0, 1, 2, 3), "ci-alt": (0, 1, 4, 5)}
SINGLE_VOICE = synth.Voice("en-us", "m1")
MULTI_VOICES: tuple[synth.Voice, ...] = (
    synth.Voice("en-us", "m3"),
    synth.Voice("en", "f1"),
    synth.Voice("en-gb-scotland", "m2"),
    synth.Voice("en-029", "f4"),
    synth.Voice("en-us-nyc", "m6"),
    synth.Voice("en-gb-x-gbcwmd", "f5"),
)


def _take(audio: np.ndarray, take: int, seed: int) -> np.ndarray:
    """Take ``take``: leading silence of take x 40 ms and a quiet seeded noise floor (40 dB SNR)."""
    padded = np.concatenate([np.zeros(take * TAKE_SILENCE_MS * SAMPLE_RATE // 1000, np.float32), audio])
    return devices.add_noise_at_snr(
        padded.astype(np.float64), TAKE_NOISE_SNR_DB, np.random.default_rng(seed), colour="white"
    ).astype(np.float32)


def speech_voices(src: Path, synth_: _Synth) -> SetSpec:
    # Sentence-major order: the former full's sentences (c01-c08) come first, so raising full only appends.
    sentences = _grid_sentences(src, VOICES_N_SENTENCES_POOL)
    items: list[Item] = []
    profiles: dict[str, list[str]] = {"ci": [], "ci-alt": [], "full": []}
    for k, row in enumerate(sentences):
        block = profile_of(k, GRID_N_SENTENCES_CI)
        for device in devices.DEVICES:
            for take in range(VOICES_N_TAKES):
                for voice_set in ("single", "multi"):
                    voice = SINGLE_VOICE if voice_set == "single" else MULTI_VOICES[take]
                    accent = synth.ENGLISH_ACCENTS[voice.name]
                    speaker = f"{accent}-{voice.variant}"
                    sid = f"{row['content_id']}-{device}-t{take}-{voice_set}"
                    seed_parts = (row["content_id"], device, take)  # the same for both voice sets
                    fields = _speech_fields(
                        id=sid,
                        text=row["text"],
                        language="en",
                        meaning_id=row["content_id"],
                        group_id=row["content_id"],
                        speaker=speaker,
                        gender=voice.gender,
                        accent=accent,
                        device=device,
                        voice_set=voice_set,
                        extra={"take": str(take)},
                        preprocessing=_preprocessing(
                            voice,
                            f"take {take}: {take * TAKE_SILENCE_MS} ms leading "
                            f"silence, white noise floor {TAKE_NOISE_SNR_DB:g} dB SNR",
                            f"peak {RECORDING_PEAK_DBFS:g} dBFS",
                            devices.describe(device),
                            f"peak {RECORDING_PEAK_DBFS:g} dBFS",
                        ),
                    )

                    def render(
                        text: str = row["text"],
                        voice: synth.Voice = voice,
                        take: int = take,
                        device: str = device,
                        parts: tuple[object, ...] = seed_parts,
                        name: str = sid,
                    ) -> np.ndarray:
                        taken = _take(synth_(text, voice), take, gain.stable_seed(SEED, "take", *parts))
                        return _device_clip(taken, device, gain.stable_seed(SEED, device, *parts), name)

                    items.append(
                        Item(fields, render=render, render_key=f"voices/{sid}", needs=((row["text"], voice),))
                    )
                    if block is not None and take in VOICES_TAKES[block]:
                        profiles[block].append(sid)
                    if k < VOICES_N_SENTENCES:
                        profiles["full"].append(sid)
    return SetSpec(
        "speech-voices",
        "One voice versus six voices with equal n and equal non-speaker variation: "
        "the same sentences, devices and takes (leading silence, noise floor, device noise seeds) in "
        "both subsets (claim S4).",
        [
            *SYNTHETIC_CAVEATS,
            "The single-voice subset repeats one voice over six takes; its takes differ only in timing, "
            "a quiet noise floor and device noise, exactly as the multi-voice takes do.",
            "The six voices mix accents and genders (eSpeak presets), so 'multi' varies accent as well "
            "as voice.",
            "Profiles: ci-alt takes other sentences (c05-c08 against c01-c04) and takes 0, 1, 4, 5 against "
            "ci's 0-3, so two of its four multi voices are new and two are shared with ci; the single voice "
            "is the same in both (the set has one), so the speaker axis could not change in full.",
            f"Profiles: full takes sentences c01-c{VOICES_N_SENTENCES:02d}; pool adds "
            f"c{VOICES_N_SENTENCES + 1:02d}-c{VOICES_N_SENTENCES_POOL:02d} with the same voices, devices and "
            "takes (the population that calibration draws full-size samples from; its takes are all of full's, "
            "so a full-size sample varies in sentences only); the added sentences are in no other profile.",
            f"Profiles: until 2026-12-08 full took c01-c{VOICES_N_SENTENCES_BEFORE:02d} (S4 lacked power at "
            "that size) and pool c01-c16; those clips stay first.",
        ],
        items,
        profiles["ci"],
        ci_alt=profiles["ci-alt"],
        full=profiles["full"],
        pool=[item.fields["id"] for item in items],
    )


def crossmodal(src: Path, synth_: _Synth) -> SetSpec:
    meanings = _pool_meanings(src)
    text = text_parallel(src)
    speech_items, _ = _parallel_speech_items(src, synth_, PARALLEL_VARIANTS_CI)
    items: list[Item] = []
    profiles: dict[str, list[str]] = {"ci": [], "ci-alt": [], "full": []}
    # Speech here has only the ci voices, so ci-alt differs from ci by meanings alone (in both modalities).
    block_of = {m["meaning_id"]: profile_of(k, CI_MEANINGS) for k, m in enumerate(meanings)}
    in_full = {m["meaning_id"] for m in meanings[:FULL_MEANINGS]}

    def add(item: Item, fields: dict[str, Any]) -> None:
        items.append(Item(fields, render=item.render, render_key=item.render_key, needs=item.needs))
        if block_of[fields["meaning_id"]] is not None:
            profiles[block_of[fields["meaning_id"]]].append(fields["id"])
        if fields["meaning_id"] in in_full:
            profiles["full"].append(fields["id"])

    for item in text.items:
        if item.fields["meaning_id"] in block_of:  # text-parallel's source may hold meanings beyond the pool
            add(item, dict(item.fields, id=f"text-{item.fields['id']}"))
    for item in speech_items:
        add(item, dict(item.fields, id=f"speech-{item.fields['id']}"))
    return SetSpec(
        "crossmodal",
        "Text and speech of the same meanings in all 8 languages, linked by meaning_id: "
        "text with and without final punctuation, speech by two voice variants (the same clips as "
        "speech-parallel) (claims M1-M4).",
        [
            *SYNTHETIC_CAVEATS,
            *LANGUAGE_CAVEATS,
            "Profiles: ci-alt differs from ci in meanings only (m13-m24 against m01-m12); the set's speech has "
            "the two ci voices (espeak-m1, espeak-f1) only, so the voice axis could not change.",
            _speech_pool_caveat("crossmodal"),
        ],
        items,
        profiles["ci"],
        ci_alt=profiles["ci-alt"],
        full=profiles["full"],
        pool=[item.fields["id"] for item in items],
    )


_RECIPES: dict[str, Callable[..., SetSpec]] = {
    "text-parallel": text_parallel,
    "text-paraphrase": text_paraphrase,
    "speech-parallel": speech_parallel,
    "speech-grid": speech_grid,
    "speech-gain": speech_gain,
    "speech-voices": speech_voices,
    "crossmodal": crossmodal,
}


def _pcm_roundtrip(audio: np.ndarray) -> np.ndarray:
    """What a clip becomes after writing it as 16-bit PCM and reading it back."""
    return (to_pcm16(audio).astype(np.float32) / PCM16_FULL_SCALE).astype(np.float32)
