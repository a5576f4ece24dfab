"""Tests of the fixture builder: determinism, device physics, gains, hash checks and label axes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from benchmark.core.audio import pcm16_wav_bytes, read_pcm16_wav, to_pcm16
from benchmark.core.schema import PAPER_LANGUAGES, ProbeSet, Sample
from benchmark.probes import build, devices, gain, recipes, synth

FS = 16000


def _stand_in_sources(root: Path) -> Path:
    """A tiny copy of the fixtures/source formats so the builder runs in seconds."""
    src = root / "source"
    src.mkdir(parents=True)
    texts = {
        "en": "The tea is hot.",
        "fr": "Le thé est chaud.",
        "de": "Der Tee ist heiß.",
        "zh": "茶很热。",
        "ja": "お茶は熱い。",
        "id": "Tehnya panas.",
        "vi": "Trà nóng.",
        "es": "El té está caliente.",
    }
    meanings = [  # three: ci (m01), ci-alt (m02), and m03 in the pool only (see _small_design)
        {"meaning_id": f"m{k:02d}", "topic": "food", "texts": texts, "ja_kana": "おちゃは あつい。"}
        for k in range(1, 4)
    ]
    (src / "parallel_sentences.json").write_text(json.dumps({"meanings": meanings}), encoding="utf-8")
    items = [
        {
            "meaning_id": f"p0{k}",
            "anchor": f"The dog chased the cat {k} times.",
            "paraphrase": f"The cat was chased by the dog {k} times.",
            "adversarial": f"The cat chased the dog {k} times.",
            "unrelated": "Rain fell on the hills.",
        }
        for k in (1, 2, 3)
    ]
    (src / "paraphrases.json").write_text(json.dumps({"items": items}), encoding="utf-8")
    sentences = [
        {"content_id": f"c{k:02d}", "text": t}
        for k, t in enumerate(
            [
                "Open the door.",
                "The bus is late.",
                "I like green tea.",
                "Call me at noon.",
                "Birds sing at dawn.",
                "Bring a warm coat.",
                "The shop is closed.",
                "We walked home.",
            ],
            1,
        )
    ]
    (src / "grid_sentences.json").write_text(json.dumps({"sentences": sentences}), encoding="utf-8")
    return src


def _small_design(patch: pytest.MonkeyPatch) -> None:
    """The stand-in's design: blocks of one item, full = the first two items, a text pool of three.

    2 grid sentences keep the stand-in build to seconds; the speech pools are not rendered here (the grid's
    would add 120 clips, the parallel sets' 48), their profiles are checked without synthesis in
    test_grid_pool_adds_sentences_unrendered, test_parallel_speech_pools_add_meanings_unrendered and
    test_gain_and_voices_pools_add_sentences_unrendered.
    """
    patch.setattr(recipes, "GRID_N_SENTENCES", 2)
    patch.setattr(recipes, "GRID_N_SENTENCES_CI", 1)
    patch.setattr(recipes, "GRID_N_SENTENCES_POOL", 2)
    patch.setattr(recipes, "CI_MEANINGS", 1)
    patch.setattr(recipes, "FULL_MEANINGS", 2)
    patch.setattr(recipes, "POOL_MEANINGS", 2)
    speakers = recipes.GAIN_CI_SPEAKERS  # speech-gain's pool equals its full: 2 sentences x ci's speakers
    _gain_design(patch, full=(2, speakers), pool=(2, speakers), before=(2, speakers))
    _voices_design(patch, full=2, pool=2, before=2)
    patch.setattr(recipes, "FULL_PARAPHRASES", 2)


@pytest.fixture(autouse=True)
def _small_grid(monkeypatch: pytest.MonkeyPatch) -> None:
    _small_design(monkeypatch)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return synth.synthesise("The quick brown fox jumps over the lazy dog.", synth.Voice("en-us", "m1"))


def _band_energy(x: np.ndarray, low: float, high: float) -> float:
    freqs, psd = signal.welch(x, fs=FS, nperseg=1024)
    band = (freqs >= low) & (freqs < high)
    return float(np.sum(psd[band]))


def test_same_clip_twice_gives_the_same_bytes() -> None:
    voice = synth.Voice("en-gb-scotland", "f2", 150, 40, 30)  # f2 has breath noise: needs eSpeak's seed
    first = synth.synthesise("The quick brown fox jumps over the lazy dog.", voice)
    synth.synthesise("Something else in between.", synth.Voice("de", "m3"))
    second = synth.synthesise("The quick brown fox jumps over the lazy dog.", voice)
    assert pcm16_wav_bytes(first) == pcm16_wav_bytes(second)
    for device in devices.DEVICES:
        a = devices.apply_device(first, device, seed=3)
        b = devices.apply_device(second, device, seed=3)
        assert pcm16_wav_bytes(a) == pcm16_wav_bytes(b), device


def test_espeak_version_is_recorded() -> None:
    assert synth.espeak_version().startswith("1.52")


def test_unknown_voice_names_the_voice() -> None:
    with pytest.raises(synth.SynthesisError, match="xx-yy"):
        synth.synthesise("hello", synth.Voice("xx-yy", "m1"))


def test_telephone_removes_energy_outside_300_3400_hz(speech: np.ndarray) -> None:
    noise = np.random.default_rng(0).standard_normal(FS * 2) * 0.1  # flat spectrum: every band has energy
    out = devices.apply_device(noise, "telephone", seed=0)
    for low, high in ((20.0, 200.0), (4000.0, 7900.0)):
        drop = 10 * np.log10(_band_energy(out, low, high) / _band_energy(noise, low, high))
        assert drop < -20.0, (low, high, drop)
    passband = 10 * np.log10(_band_energy(out, 500.0, 3000.0) / _band_energy(noise, 500.0, 3000.0))
    assert passband > -3.0
    # 8-bit mu-law leaves at most 256 distinct levels before resampling back
    assert len(np.unique(devices.mu_law_roundtrip(np.linspace(-1, 1, 10000)))) <= 256
    assert devices.apply_device(speech, "telephone", seed=0).shape == speech.shape


@pytest.mark.parametrize(
    ("device", "snr"), [("noisy", devices.NOISY_SNR_DB), ("far_field", devices.FAR_FIELD_SNR_DB)]
)
def test_noise_is_added_at_the_stated_snr(speech: np.ndarray, device: str, snr: float) -> None:
    out = devices.apply_device(speech, device, seed=11).astype(np.float64)
    if device == "far_field":
        rir = devices.room_impulse_response()
        reference = signal.fftconvolve(speech.astype(np.float64), rir)[: out.size]
    else:
        reference = speech.astype(np.float64)
    assert abs(devices.measured_snr_db(reference, out) - snr) < 0.5


def _schroeder_rt60(rir: np.ndarray, fs: int = FS) -> float:
    """T30: the -5 to -35 dB slope of the backward-integrated energy decay, extrapolated to 60 dB."""
    energy = np.cumsum(rir[::-1] ** 2)[::-1]
    edc = 10 * np.log10(energy / energy[0])
    start, stop = np.argmax(edc <= -5.0), np.argmax(edc <= -35.0)
    t = np.arange(start, stop) / fs
    slope = np.polyfit(t, edc[start:stop], 1)[0]
    return -60.0 / slope


def test_far_field_rt60_is_about_half_a_second() -> None:
    rt60 = _schroeder_rt60(devices.room_impulse_response())
    assert abs(rt60 - devices.FAR_FIELD_RT60_S) < 0.05, rt60


def test_cheap_mic_cuts_low_frequencies(speech: np.ndarray) -> None:
    noise = np.random.default_rng(1).standard_normal(FS * 2) * 0.1
    out = devices.apply_device(noise, "cheap_mic", seed=0)
    assert 10 * np.log10(_band_energy(out, 20.0, 50.0) / _band_energy(noise, 20.0, 50.0)) < -10.0
    assert abs(10 * np.log10(_band_energy(out, 500.0, 4000.0) / _band_energy(noise, 500.0, 4000.0))) < 1.0


def test_device_seed_changes_noise_only_when_asked(speech: np.ndarray) -> None:
    a = devices.apply_device(speech, "noisy", seed=1)
    b = devices.apply_device(speech, "noisy", seed=2)
    assert not np.array_equal(a, b)
    with pytest.raises(ValueError, match="unknown device 'radio'"):
        devices.apply_device(speech, "radio", seed=0)


def test_gains_within_range_and_normalised_peak_at_target(speech: np.ndarray) -> None:
    levels = [gain.draw_gain_db(gain.stable_seed("clip", k)) for k in range(200)]
    assert min(levels) >= gain.GAIN_RANGE_DBFS[0] and max(levels) <= gain.GAIN_RANGE_DBFS[1]
    assert max(levels) - min(levels) > 20.0  # the draw spreads over the range
    for level in levels[:5]:
        raw = gain.apply_gain(speech, level)
        assert abs(gain.peak_dbfs(raw) - level) < 1e-3
        peak = gain.peak_normalise(recipes._pcm_roundtrip(raw))
        assert abs(gain.peak_dbfs(peak) - gain.PEAK_TARGET_DBFS) < 1e-3
        assert np.max(np.abs(to_pcm16(peak))) == 32767  # full scale after PCM, not clipped


def test_strip_final_punct() -> None:
    assert recipes.strip_final_punct("Hello there.") == "Hello there"
    assert recipes.strip_final_punct("茶很热。") == "茶很热"
    assert recipes.strip_final_punct("¿Qué?") == "¿Qué"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("fixtures")
    _stand_in_sources(root)
    with pytest.MonkeyPatch.context() as patch:
        _small_design(patch)
        build.build_all(root, check=True)
    yield root


def _load(set_dir: Path) -> tuple[dict, list[Sample]]:
    meta = json.loads((set_dir / "probeset.json").read_text(encoding="utf-8"))
    rows = [
        json.loads(line) for line in (set_dir / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    return meta, [Sample(**row) for row in rows]


def test_rebuild_reproduces_every_clip(built: Path) -> None:
    reports = build.build_all(built, check=True)
    assert {r["mode"] for r in reports} == {"check"}


def test_tampered_hash_fails_naming_the_clip(built: Path) -> None:
    manifest = built / "speech-gain" / "manifest.jsonl"
    original = manifest.read_text(encoding="utf-8")
    rows = [json.loads(line) for line in original.splitlines()]
    victim = rows[3]["id"]
    rows[3]["audio_sha256"] = "0" * 64
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    try:
        with pytest.raises(build.FixtureMismatch, match=victim):
            build.build_all(built, check=True, sets=["speech-gain"])
    finally:
        manifest.write_text(original, encoding="utf-8")


def test_tampered_audio_fails_verification_naming_the_clip(built: Path) -> None:
    _, samples = _load(built / "speech-grid")
    victim = samples[7]
    path = built / "speech-grid" / victim.audio_path
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(build.FixtureMismatch, match=victim.id):
        build.verify_set(built / "speech-grid")
    build.build_all(built, check=True, sets=["speech-grid"])  # the rebuild restores it
    build.verify_set(built / "speech-grid")


def test_update_must_be_asked_for(built: Path) -> None:
    with pytest.raises(ValueError, match="unknown probe set"):
        build.build_all(built, sets=["nope"])


def _axes(samples: list[Sample]) -> set[str]:
    return set(ProbeSet(name="x", samples=samples).label_axes)


def test_probe_sets_carry_their_label_axes(built: Path) -> None:
    expected = {
        "text-parallel": {"language", "meaning_id", "variant"},
        "text-paraphrase": {"pair_role", "pair_id", "meaning_id", "variant"},
        "speech-parallel": {"language", "meaning_id", "speaker", "gender"},
        "speech-grid": {"meaning_id", "speaker", "gender", "age_group", "accent", "device"},
        "speech-gain": {"normalisation", "meaning_id", "speaker"},
        "speech-voices": {"voice_set", "meaning_id", "device", "speaker"},
        "crossmodal": {"modality", "language", "meaning_id"},
    }
    for name, axes in expected.items():
        meta, samples = _load(built / name)
        assert axes <= _axes(samples), (name, axes - _axes(samples))
        assert set(meta["profiles"]["ci"]) <= set(meta["profiles"]["full"])
        assert meta["build"]["espeak_version"] == synth.espeak_version()
        assert meta["caveats"], name
        for sample in samples:
            if sample.modality == "speech":
                assert sample.synthetic and sample.audio_sha256 and sample.audio_path.startswith("audio/")


def test_grid_is_fully_crossed_and_balanced(built: Path) -> None:
    _, samples = _load(built / "speech-grid")
    speakers = {s.speaker: (s.accent, s.gender, s.age_group) for s in samples}
    assert len({a for a, _, _ in speakers.values()}) >= 6
    assert len(samples) == len({s.meaning_id for s in samples}) * len(speakers) * len(devices.DEVICES)


def test_voice_sets_have_equal_n_and_equal_non_speaker_variation(built: Path) -> None:
    _, samples = _load(built / "speech-voices")
    by_set = {v: [s for s in samples if s.voice_set == v] for v in ("single", "multi")}
    assert len(by_set["single"]) == len(by_set["multi"])
    design = {
        v: sorted((s.meaning_id, s.device, s.extra["take"]) for s in rows) for v, rows in by_set.items()
    }
    assert design["single"] == design["multi"]
    assert len({s.speaker for s in by_set["single"]}) == 1 and len({s.speaker for s in by_set["multi"]}) > 1


def test_gain_set_pairs_raw_and_peak(built: Path) -> None:
    _, samples = _load(built / "speech-gain")
    for s in samples:
        audio = read_pcm16_wav(built / "speech-gain" / s.audio_path)
        assert gain.GAIN_RANGE_DBFS[0] <= s.gain_db <= gain.GAIN_RANGE_DBFS[1]
        if s.normalisation == "raw":
            assert abs(gain.peak_dbfs(audio) - s.gain_db) < 0.05
        else:
            assert abs(gain.peak_dbfs(audio) - gain.PEAK_TARGET_DBFS) < 0.01


def test_crossmodal_speech_is_the_speech_parallel_clip(built: Path) -> None:
    _, cross = _load(built / "crossmodal")
    _, parallel = _load(built / "speech-parallel")
    hashes = {s.id: s.audio_sha256 for s in parallel}
    speech = [s for s in cross if s.modality == "speech"]
    assert speech and all(hashes[s.id.removeprefix("speech-")] == s.audio_sha256 for s in speech)
    text_meanings = {s.meaning_id for s in cross if s.modality == "text"}
    assert {s.meaning_id for s in speech} == text_meanings


def test_every_set_has_a_pool_holding_the_later_items(built: Path) -> None:
    pools = {}
    for name in recipes.SET_NAMES:
        meta, samples = _load(built / name)
        profiles = meta["profiles"]
        assert set(profiles["ci"]) | set(profiles.get("ci-alt", [])) <= set(profiles["full"]), name
        assert set(profiles["full"]) <= set(profiles["pool"]) == {s.id for s in samples}, name
        assert any("pool" in c for c in meta["caveats"]), name
        pools[name] = {s.meaning_id for s in samples if s.id not in set(profiles["full"])}
    assert pools["text-parallel"] == {"m03"}
    assert pools["text-paraphrase"] == {"p03", "p03-adv", "p03-unrel"}
    # The stand-in's speech pools equal full: GRID_N_SENTENCES_POOL == GRID_N_SENTENCES, POOL_MEANINGS ==
    # FULL_MEANINGS and speech-gain's pool equals its full (their pools are checked unrendered below).
    speech = ("speech-grid", "speech-parallel", "crossmodal", "speech-gain", "speech-voices")
    assert all(pools[name] == set() for name in speech)


def _unrendered_profiles(spec: recipes.SetSpec) -> tuple[dict[str, list[str]], dict[str, dict]]:
    """A recipe's profiles and each item's fields, without synthesising anything (items render lazily)."""
    profiles = build._profiles(spec, [item.fields["id"] for item in spec.items])
    assert profiles["pool"] == [item.fields["id"] for item in spec.items]  # every sample, in manifest order
    return profiles, {item.fields["id"]: item.fields for item in spec.items}


def _by_profile(profiles: dict[str, list[str]], fields: dict[str, dict], key: str) -> dict[str, set]:
    return {p: {fields[i][key] for i in ids} for p, ids in profiles.items()}


NESTED_UNITS = {"ci": {"01"}, "ci-alt": {"02"}, "full": {"01", "02"}, "pool": {"01", "02", "03"}}


def _units(prefix: str) -> dict[str, set[str]]:
    """The stand-in's units per profile when its pool adds a third: ci the first, ci-alt the second."""
    return {p: {prefix + u for u in units} for p, units in NESTED_UNITS.items()}


def _gain_design(
    patch: pytest.MonkeyPatch, *, full: tuple[int, int], pool: tuple[int, int], before: tuple[int, int]
) -> None:
    """speech-gain's (sentences, speakers) of full, pool and the former full; ci takes the former's speakers."""
    patch.setattr(recipes, "GAIN_N_SENTENCES", full[0])
    patch.setattr(recipes, "GAIN_SPEAKERS", full[1])
    patch.setattr(recipes, "GAIN_N_SENTENCES_POOL", pool[0])
    patch.setattr(recipes, "GAIN_SPEAKERS_POOL", pool[1])
    patch.setattr(recipes, "GAIN_FULL_BEFORE", before)
    patch.setattr(recipes, "GAIN_CI_SPEAKERS", before[1])


def _voices_design(patch: pytest.MonkeyPatch, *, full: int, pool: int, before: int) -> None:
    """speech-voices' sentences of full, pool and the former full."""
    patch.setattr(recipes, "VOICES_N_SENTENCES", full)
    patch.setattr(recipes, "VOICES_N_SENTENCES_POOL", pool)
    patch.setattr(recipes, "VOICES_N_SENTENCES_BEFORE", before)


@pytest.mark.parametrize("name", ["speech-gain", "speech-voices"])
def test_gain_and_voices_pools_add_sentences_unrendered(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _stand_in_sources(tmp_path)
    monkeypatch.setattr(recipes, "GRID_N_SENTENCES_POOL", 3)
    _gain_design(monkeypatch, full=(2, 2), pool=(3, 3), before=(2, 2))
    _voices_design(monkeypatch, full=2, pool=3, before=2)
    recipe = recipes.speech_gain if name == "speech-gain" else recipes.speech_voices
    profiles, fields = _unrendered_profiles(recipe(src, recipes._Synth()))
    assert _by_profile(profiles, fields, "meaning_id") == _units("c")
    speakers = _by_profile(profiles, fields, "speaker")
    if name == "speech-gain":  # the pool adds speakers too: S3's units are sentences and speakers
        assert speakers["ci"] == speakers["ci-alt"] == speakers["full"]
        younger = [sp.id for sp in recipes.grid_speakers() if sp.age_group == "younger"]
        assert speakers["full"] == set(younger[:2]) and speakers["pool"] == set(younger[:3])
    else:
        assert speakers["pool"] == speakers["full"]


def test_gain_full_raise_keeps_the_former_clips_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A raised speech-gain ``full`` lists its former sentence x speaker clips first, then the added ones, and ci
    keeps its speakers: a stand-in raise from 2 x 2 to 3 x 3 in a pool of 4 x 4."""
    src = _stand_in_sources(tmp_path)
    _gain_design(monkeypatch, full=(3, 3), pool=(4, 4), before=(2, 2))
    profiles, fields = _unrendered_profiles(recipes.speech_gain(src, recipes._Synth()))
    speakers = [sp.id for sp in recipes.gain_speakers()]
    cells = [(fields[i]["meaning_id"], fields[i]["speaker"]) for i in profiles["full"]]
    former = {(f"c0{k}", sp) for k in (1, 2) for sp in speakers[:2]}
    assert len(cells) == 3 * 3 * 2
    assert set(cells[:8]) == former and not former & set(cells[8:])
    assert {fields[i]["speaker"] for i in profiles["ci"]} == set(speakers[:2])


def test_voices_full_raise_keeps_the_former_clips_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A raised speech-voices ``full`` lists its former sentences' clips first, then the added sentence's, and ci
    keeps its own: a stand-in raise from 2 to 3 sentences in a pool of 4."""
    src = _stand_in_sources(tmp_path)
    _voices_design(monkeypatch, full=3, pool=4, before=2)
    profiles, fields = _unrendered_profiles(recipes.speech_voices(src, recipes._Synth()))
    sentences = [fields[i]["meaning_id"] for i in profiles["full"]]
    per_sentence = len(recipes.devices.DEVICES) * recipes.VOICES_N_TAKES * 2
    assert len(sentences) == 3 * per_sentence
    assert set(sentences[: 2 * per_sentence]) == {"c01", "c02"} and set(sentences[2 * per_sentence :]) == {
        "c03"
    }
    assert {fields[i]["meaning_id"] for i in profiles["pool"]} == {"c01", "c02", "c03", "c04"}
    assert {fields[i]["meaning_id"] for i in profiles["ci"]} == {"c01"}


@pytest.mark.parametrize("name", ["speech-parallel", "crossmodal"])
def test_parallel_speech_pools_add_meanings_unrendered(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _stand_in_sources(tmp_path)
    monkeypatch.setattr(recipes, "POOL_MEANINGS", 3)
    recipe = recipes.speech_parallel if name == "speech-parallel" else recipes.crossmodal
    profiles, fields = _unrendered_profiles(recipe(src, recipes._Synth()))
    assert _by_profile(profiles, fields, "meaning_id") == _units("m")
    added = [i for i in profiles["pool"] if fields[i]["meaning_id"] == "m03"]
    voices = len(recipes.PARALLEL_VARIANTS if name == "speech-parallel" else recipes.PARALLEL_VARIANTS_CI)
    texts = 0 if name == "speech-parallel" else 2  # crossmodal: punct and nopunct text per language
    assert len(added) == len(PAPER_LANGUAGES) * (voices + texts), name
    monkeypatch.setattr(recipes, "POOL_MEANINGS", 4)  # the stand-in has 3 meanings
    with pytest.raises(
        ValueError, match=r"parallel_sentences\.json has 3 meanings; the speech sets' pool needs 4"
    ):
        recipe(src, recipes._Synth())


def test_grid_pool_adds_sentences_unrendered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _stand_in_sources(tmp_path)
    monkeypatch.setattr(recipes, "GRID_N_SENTENCES_POOL", 3)
    profiles, fields = _unrendered_profiles(recipes.speech_grid(src, recipes._Synth()))
    assert _by_profile(profiles, fields, "meaning_id") == _units("c")
    assert len(profiles["pool"]) == 3 * len(recipes.grid_speakers()) * len(devices.DEVICES)
    monkeypatch.setattr(recipes, "GRID_N_SENTENCES_POOL", 9)  # the stand-in has 8 sentences
    with pytest.raises(ValueError, match=r"grid_sentences\.json has 8 sentences; the grid needs 9"):
        recipes.speech_grid(src, recipes._Synth())


def test_profiles_must_nest() -> None:
    ids = ["a", "b", "c", "d"]
    spec = recipes.SetSpec("s", "", [], [], ci=["a"], ci_alt=["b"], full=["a", "b", "c"], pool=ids)
    assert build._profiles(spec, ids) == {"ci": ["a"], "ci-alt": ["b"], "full": ["a", "b", "c"], "pool": ids}
    with pytest.raises(ValueError, match="pool misses full samples \\['c'\\]"):
        build._profiles(recipes.SetSpec("s", "", [], [], ci=["a"], full=["a", "c"], pool=["a", "b"]), ids)
    with pytest.raises(ValueError, match="ci-alt samples outside full: \\['d'\\]"):
        build._profiles(recipes.SetSpec("s", "", [], [], ci=["a"], ci_alt=["d"], full=["a", "b"]), ids)
